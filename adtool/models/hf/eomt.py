"""EoMT semantic segmentation wrapper.

Paper: "Your ViT is Secretly an Image Segmentation Model", Kerssies et al., CVPR 2025,
https://arxiv.org/abs/2503.19108. A plain ViT whose last blocks also process learned
query tokens; each query predicts a class and a mask (a dot product with the upscaled
patch tokens), and a pixel's class scores are the class probabilities of the queries
weighted by their mask probabilities (Mask2Former-style mask classification).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from adtool.errors import ConfigError, DataError
from adtool.models.hf.base import HFTaskModel, import_transformers
from adtool.registry import MODELS


def semantic_to_mask_targets(
    sem_seg: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """One semantic mask -> the mask-classification targets of its classes.

    Args:
        sem_seg: (H, W) class indices, ``ignore_index`` for pixels that count nowhere.
        num_classes: Number of classes K.
        ignore_index: Label of ignored pixels. Defaults to 255.

    Returns:
        ``(mask_labels, class_labels)``: float (M, H, W) binary masks, one per class present
        in the image, and long (M,) their classes (ascending). Ignored pixels are 0 in every
        mask, as in the transformers image processors.
    """
    sem_seg = sem_seg.long()
    valid = sem_seg != ignore_index
    if valid.any() and (sem_seg[valid].min() < 0 or sem_seg[valid].max() >= num_classes):
        raise DataError(
            f"mask class {int(sem_seg[valid].max())} outside 0..{num_classes - 1} (and not the "
            f"ignore index {ignore_index}); set model.num_classes to the number of classes"
        )
    # Ignored pixels go to an extra class that is dropped again.
    onehot = F.one_hot(torch.where(valid, sem_seg, num_classes), num_classes + 1)[..., :-1]
    onehot = onehot.permute(2, 0, 1)
    present = onehot.flatten(1).any(1)
    class_labels = torch.nonzero(present).flatten()
    return onehot[present].float(), class_labels


@MODELS.register_module()
class EomtSegmenter(HFTaskModel):
    """``transformers.EomtForUniversalSegmentation`` for semantic segmentation.

    Training uses the model's own loss (Hungarian matching, cross-entropy on classes,
    BCE + dice on masks, for every masked-attention block) with one target mask per
    class present in the image. Prediction follows the EoMT image processor's
    ``post_process_semantic_segmentation``: per-pixel class scores = softmax class
    probabilities (no-object dropped) x sigmoid mask probabilities, summed over queries,
    at the input size; the label map is their argmax.

    Args:
        num_classes: Number of semantic classes (background included if it is a class);
            a pretrained head of another size is replaced by a new random one.
        pretrained: Folder written by ``save_pretrained`` (e.g.
            ``'backbones/hf/ade20k_semantic_eomt_large_512'``). Defaults to None.
        hf_config: ``EomtConfig`` kwargs (random init, or overrides of the folder's).
            Defaults to None.
        ignore_index: Mask label of ignored pixels. Defaults to 255.
        image_processor: ``EomtImageProcessor`` kwargs (built locally, never from the
            hub). Defaults to None (its defaults; only the post-processing is used).
        data_preprocessor: Batching/normalisation config. Defaults to ImageNet mean/std
            (0-255 scale), as EoMT's image processor does.
        init_cfg: mmengine init config. Defaults to None.
    """

    task = "segmentation"
    hf_model_class = "EomtForUniversalSegmentation"
    hf_config_class = "EomtConfig"
    hub_id = "tue-mps/ade20k_semantic_eomt_large_512"

    def __init__(
        self,
        num_classes: int,
        pretrained: str | None = None,
        hf_config: dict | None = None,
        ignore_index: int = 255,
        image_processor: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type="HFDataPreprocessor",
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
            )
        hf_config = {**dict(hf_config or {}), "num_labels": int(num_classes)}
        super().__init__(
            pretrained=pretrained,
            hf_config=hf_config,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
            ignore_mismatched_sizes=True,
        )
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        transformers = import_transformers()
        self.image_processor = transformers.EomtImageProcessor(**dict(image_processor or {}))

    @property
    def input_size(self) -> tuple[int, int]:
        size = self.model.config.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def _forward(self, inputs: torch.Tensor, data_samples=None, **targets):
        # The query/patch token layout is fixed at config.image_size // patch_size.
        if tuple(inputs.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise ConfigError(
                f"EoMT takes {h}x{w} inputs (hf_config image_size) but got "
                f"{inputs.shape[-2]}x{inputs.shape[-1]}; resize to it in the pipeline "
                f"(ResizeWithTargets size={h})"
            )
        return self.model(pixel_values=inputs, **targets)

    def loss(self, inputs: torch.Tensor, data_samples: list[BaseDataElement]) -> dict:
        mask_labels, class_labels = [], []
        for sample in data_samples:
            masks, classes = semantic_to_mask_targets(
                sample.gt_sem_seg, self.num_classes, self.ignore_index
            )
            mask_labels.append(masks.to(inputs.device))
            class_labels.append(classes.to(inputs.device))
        outputs = self._forward(inputs, mask_labels=mask_labels, class_labels=class_labels)
        return {"loss": outputs.loss}

    def segmentation_scores(self, outputs, size: tuple[int, int]) -> torch.Tensor:
        """(B, K, H, W) per-pixel class scores at ``size``, by the image processor's logic."""
        scores = self.image_processor.post_process_semantic_segmentation(
            outputs,
            target_sizes=[tuple(size)] * outputs.class_queries_logits.shape[0],
            size={"shortest_edge": size[0], "longest_edge": size[1]},
            return_segmentation_scores=True,
        )
        return torch.stack([s.segmentation_scores for s in scores])

    def predict(
        self, inputs: torch.Tensor, data_samples: list[BaseDataElement]
    ) -> list[BaseDataElement]:
        outputs = self._forward(inputs)
        scores = self.segmentation_scores(outputs, tuple(inputs.shape[-2:]))
        labels = scores.argmax(1).cpu()
        for sample, label_map in zip(data_samples, labels):
            h, w = sample.metainfo.get("img_shape", label_map.shape)
            sample.pred_sem_seg = label_map[:h, :w]
        return data_samples
