"""ViT image classification wrapper.

Paper: "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
Dosovitskiy et al., ICLR 2021, https://arxiv.org/abs/2010.11929. The image is cut into
patches, embedded as tokens with a [CLS] token; the transformer's [CLS] output is classified.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from adtool.errors import ConfigError, DataError
from adtool.models.hf.base import HFTaskModel
from adtool.registry import MODELS


@MODELS.register_module()
class ViTClassifier(HFTaskModel):
    """``transformers.ViTForImageClassification`` trained with cross-entropy.

    Args:
        num_classes: Number of classes; a pretrained head of another size is replaced
            by a new random one. None (the configs' default) is filled by the run path
            from the dataset's class folders (``ImageFolderCls.model_settings``).
        pretrained: Folder written by ``save_pretrained`` (e.g.
            ``'backbones/hf/vit-base-patch16-224'``). Defaults to None.
        hf_config: ``ViTConfig`` kwargs (random init, or overrides of the folder's).
            Defaults to None.
        label_smoothing: Cross-entropy label smoothing. Defaults to 0.0.
        data_preprocessor: Batching/normalisation config. Defaults to None (0-255 floats;
            configs set ImageNet mean/std or 127.5/127.5 as the checkpoint expects).
        init_cfg: mmengine init config. Defaults to None.
    """

    task = "classification"
    hf_model_class = "ViTForImageClassification"
    hf_config_class = "ViTConfig"
    hub_id = "google/vit-base-patch16-224"

    def __init__(
        self,
        num_classes: int | None,
        pretrained: str | None = None,
        hf_config: dict | None = None,
        label_smoothing: float = 0.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if num_classes is None:
            raise ConfigError(
                "ViTClassifier num_classes is unset and no class folders were found to count; "
                "pass --data-root with <root>/train/<class>/ folders or set model.num_classes"
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
        self.label_smoothing = float(label_smoothing)

    def _forward(self, inputs: torch.Tensor, data_samples=None):
        size = self.model.config.image_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        # A different input size than the checkpoint's interpolates the position embeddings.
        interpolate = tuple(inputs.shape[-2:]) != size
        return self.model(pixel_values=inputs, interpolate_pos_encoding=interpolate)

    def loss(self, inputs: torch.Tensor, data_samples: list[BaseDataElement]) -> dict:
        labels = torch.as_tensor(
            [int(s.gt_label) for s in data_samples], dtype=torch.long, device=inputs.device
        )
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(
                f"class label {int(labels.max())} outside 0..{self.num_classes - 1}; set "
                "model.num_classes to the number of class folders"
            )
        logits = self._forward(inputs).logits
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss, "acc": accuracy.detach()}

    def predict(
        self, inputs: torch.Tensor, data_samples: list[BaseDataElement]
    ) -> list[BaseDataElement]:
        probs = self._forward(inputs).logits.float().softmax(dim=1).cpu()
        for sample, p in zip(data_samples, probs):
            sample.pred_scores = p
            sample.pred_label = int(p.argmax())
        return data_samples
