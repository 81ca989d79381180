"""D-FINE object detector wrapper (HGNetV2 backbone).

Paper: "D-FINE: Redefine Regression Task in DETRs as Fine-grained Distribution
Refinement", Peng et al., ICLR 2025, https://arxiv.org/abs/2410.13842. A real-time DETR
whose decoder layers refine each box edge as a probability distribution over offsets;
every query scores each class with a sigmoid, and the top-k (query, class) pairs are the
detections, no NMS.
"""

from __future__ import annotations

import torch
from mmengine.structures import BaseDataElement, InstanceData

from adtool.errors import DataError
from adtool.models.hf.base import HFTaskModel, import_transformers
from adtool.registry import MODELS


def xyxy_to_cxcywh_normalised(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 4) xyxy pixel boxes -> (N, 4) centre/size boxes relative to (width, height)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    cxcywh = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)
    return cxcywh / torch.tensor([width, height, width, height], dtype=boxes.dtype)


@MODELS.register_module()
class DFineDetector(HFTaskModel):
    """``transformers.DFineForObjectDetection`` trained with its own matcher and losses.

    Targets go to the model as ``labels=[{"class_labels", "boxes"}]`` with boxes as
    normalised (cx, cy, w, h) of the batch tensor; predictions are decoded by the RT-DETR
    image processor's ``post_process_object_detection`` (sigmoid scores, top-k over
    query x class) to xyxy boxes in input pixels.

    Args:
        num_classes: Number of object classes; a pretrained head of another size is
            replaced by a new random one.
        pretrained: Folder written by ``save_pretrained`` (e.g.
            ``'backbones/hf/dfine-small-coco'``). Defaults to None.
        hf_config: ``DFineConfig`` kwargs (random init, or overrides of the folder's),
            including ``backbone_config=dict(model_type='hgnet_v2', ...)``. Defaults to None.
        image_processor: ``RTDetrImageProcessor`` kwargs (built locally, never from the
            hub). Defaults to None (its defaults; only the post-processing is used).
        score_thr: Detections scoring below are dropped at prediction. Low, so that mAP
            sees the whole ranking; the threshold for use comes from the metric's
            best-F1 analysis. Defaults to 0.01.
        max_per_image: Detections kept per image (COCO evaluates at most 100).
            Defaults to 100.
        data_preprocessor: Batching/normalisation config. Defaults to 0-1 scaling
            (mean 0, std 255), as D-FINE's image processor does (no mean/std).
        init_cfg: mmengine init config. Defaults to None.
    """

    task = "detection"
    hf_model_class = "DFineForObjectDetection"
    hf_config_class = "DFineConfig"
    hub_id = "ustc-community/dfine-small-coco"

    def __init__(
        self,
        num_classes: int,
        pretrained: str | None = None,
        hf_config: dict | None = None,
        image_processor: dict | None = None,
        score_thr: float = 0.01,
        max_per_image: int = 100,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type="HFDataPreprocessor", mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]
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
        self.score_thr = float(score_thr)
        self.max_per_image = int(max_per_image)
        transformers = import_transformers()
        self.image_processor = transformers.RTDetrImageProcessor(**dict(image_processor or {}))

    def _forward(self, inputs: torch.Tensor, data_samples=None, labels=None):
        return self.model(pixel_values=inputs, labels=labels)

    def targets(self, inputs: torch.Tensor, data_samples: list[BaseDataElement]) -> list[dict]:
        """The model's ``labels`` argument: class ids and normalised cxcywh boxes per image."""
        height, width = inputs.shape[-2:]
        targets = []
        for sample in data_samples:
            gt = sample.gt_instances
            labels = torch.as_tensor(gt.labels, dtype=torch.long).reshape(-1)
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise DataError(
                    f"box label {int(labels.max())} outside 0..{self.num_classes - 1} in "
                    f"{sample.metainfo.get('img_path')}; set model.num_classes to the number "
                    "of categories"
                )
            boxes = torch.as_tensor(gt.bboxes, dtype=torch.float32).reshape(-1, 4)
            targets.append(
                {
                    "class_labels": labels.to(inputs.device),
                    "boxes": xyxy_to_cxcywh_normalised(boxes, height, width).to(inputs.device),
                }
            )
        return targets

    def loss(self, inputs: torch.Tensor, data_samples: list[BaseDataElement]) -> dict:
        outputs = self._forward(inputs, labels=self.targets(inputs, data_samples))
        parts = outputs.loss_dict
        # Logged without "loss" in the name: mmengine would add them to the total again.
        return {
            "loss": outputs.loss,
            "vfl": parts["loss_vfl"].detach(),
            "l1": parts["loss_bbox"].detach(),
            "giou": parts["loss_giou"].detach(),
        }

    def postprocess(
        self, outputs, data_samples: list[BaseDataElement], batch_shape: tuple[int, int]
    ) -> list[BaseDataElement]:
        """Decode raw outputs into ``pred_instances`` (xyxy input pixels, scores, labels).

        Args:
            outputs: Model outputs with ``logits`` (B, Q, C) and ``pred_boxes`` (B, Q, 4)
                normalised cxcywh of the batch tensor.
            data_samples: One per image; ``pred_instances`` is set on each.
            batch_shape: (height, width) of the batch tensor the boxes are relative to.
        """
        results = self.image_processor.post_process_object_detection(
            outputs,
            threshold=self.score_thr,
            target_sizes=[tuple(batch_shape)] * len(data_samples),
            use_focal_loss=bool(self.model.config.use_focal_loss),
        )
        for sample, result in zip(data_samples, results):
            # Scores arrive sorted (top-k), so the first max_per_image are the best.
            keep = slice(0, self.max_per_image)
            boxes = result["boxes"][keep].detach().float().cpu()
            h, w = sample.metainfo.get("img_shape", batch_shape)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            sample.pred_instances = InstanceData(
                bboxes=boxes,
                scores=result["scores"][keep].detach().float().cpu(),
                labels=result["labels"][keep].detach().long().cpu(),
            )
        return data_samples

    def predict(
        self, inputs: torch.Tensor, data_samples: list[BaseDataElement]
    ) -> list[BaseDataElement]:
        outputs = self._forward(inputs)
        return self.postprocess(outputs, data_samples, tuple(inputs.shape[-2:]))
