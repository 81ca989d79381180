"""The data sample that travels from dataset to model to metric."""

from __future__ import annotations

import torch
from mmengine.structures import BaseDataElement


class AnomalyDataSample(BaseDataElement):
    """One image's annotations and predictions.

    Metainfo: ``img_path``, ``defect_type`` (``'good'`` for normal images), ``category``,
    ``ori_shape`` (H, W of the file) and ``img_shape`` (H, W fed to the model).

    Data fields:
        gt_label: 0 (normal) or 1 (anomalous), a 0-d long tensor.
        gt_mask: (H, W) uint8 tensor at ``img_shape``, 1 on defect pixels; absent when the
            dataset has no masks (a normal image with masks known gets an all-zero mask).
        pred_score: 0-d float tensor, higher is more anomalous.
        anomaly_map: (H, W) float tensor at ``img_shape``.
    """

    @property
    def gt_label(self) -> torch.Tensor:
        return self._gt_label

    @gt_label.setter
    def gt_label(self, value) -> None:
        self.set_field(torch.as_tensor(value, dtype=torch.long), "_gt_label", dtype=torch.Tensor)

    @gt_label.deleter
    def gt_label(self) -> None:
        del self._gt_label

    @property
    def gt_mask(self) -> torch.Tensor:
        return self._gt_mask

    @gt_mask.setter
    def gt_mask(self, value) -> None:
        self.set_field(torch.as_tensor(value, dtype=torch.uint8), "_gt_mask", dtype=torch.Tensor)

    @gt_mask.deleter
    def gt_mask(self) -> None:
        del self._gt_mask

    @property
    def pred_score(self) -> torch.Tensor:
        return self._pred_score

    @pred_score.setter
    def pred_score(self, value) -> None:
        self.set_field(
            torch.as_tensor(value, dtype=torch.float32), "_pred_score", dtype=torch.Tensor
        )

    @pred_score.deleter
    def pred_score(self) -> None:
        del self._pred_score

    @property
    def anomaly_map(self) -> torch.Tensor:
        return self._anomaly_map

    @anomaly_map.setter
    def anomaly_map(self, value) -> None:
        self.set_field(
            torch.as_tensor(value, dtype=torch.float32), "_anomaly_map", dtype=torch.Tensor
        )

    @anomaly_map.deleter
    def anomaly_map(self) -> None:
        del self._anomaly_map
