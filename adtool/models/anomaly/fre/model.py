"""FRE (Feature Reconstruction Error).

"FRE: A Fast Method For Anomaly Detection And Segmentation", Ndiour, Ahuja, Tickoo,
BMVC 2023, https://arxiv.org/abs/2211.12650. A shallow linear autoencoder learns the
normal images' pooled deep features (ResNet-50 layer3, 2 x 2 average pooling); a pooled
position scores the squared error with which the AE reconstructs its features, an image
the sum over positions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import backbone_feature_shapes, size2
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


@MODELS.register_module()
class FRE(BaseAnomalyModel):
    """Frozen backbone (one level) + :class:`AvgPoolNeck` + :class:`TiedLinearAE`.

    Training minimises the mean squared error between the pooled, flattened features and
    their reconstruction (anomalib: ``MSELoss``, Adam lr 1e-3, 220 epochs); the backbone
    stays frozen and in eval mode. At test time the error map on the pooled grid
    (ResNet-50 layer3 at 256 px pooled by 2: 8 x 8) is upsampled bilinearly to the input,
    as anomalib does, and the image scores the sum of the squared errors over the grid
    (anomalib), not the map's maximum.

    The AE needs the length of the flattened vector when it is built, so the model
    computes it from the backbone at ``input_size`` and the pooling window and gives it
    to the head (``input_dim``); images of another size are refused with a message.

    Args:
        backbone: Config of the frozen feature extractor (a single level).
        head: Config of the autoencoder (:class:`TiedLinearAE`; ``input_dim`` filled).
        neck: Config of the pooling. Defaults to ``AvgPoolNeck(kernel_size=2)`` (paper).
        input_size: Image size (H, W) or side the model is built for; must match the
            pipeline's ``Resize``. Defaults to 256 (anomalib).
        cache_features: Keep each training image's pooled features after its first
            forward and reuse them in later epochs, keyed by image path and checked
            against a hash of the network input (a randomly augmented image misses and is
            recomputed). The backbone forward is nearly all of an epoch's cost and the
            backbone is frozen, so with a deterministic pipeline this gives the same
            training as recomputing, at the cost of memory (N x input_dim floats:
            ~260 KB per image for the paper's 65536-d vectors). Defaults to False.
        blur_sigma: Std of a Gaussian smoothing of the upsampled map, in pixels; 0 keeps
            the bilinear map. Defaults to 0 (anomalib).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    # Its hooks only empty the feature cache (keyed by path and input, so tiles too).
    supports_tiling = True

    def __init__(
        self,
        backbone: dict,
        head: dict,
        neck: dict | None = None,
        input_size: int | Sequence[int] = 256,
        cache_features: bool = False,
        blur_sigma: float = 0.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.input_size = size2(input_size)
        self.backbone = MODELS.build(backbone)
        if getattr(self.backbone, "frozen", True) is False:
            raise ConfigError("FRE trains only its autoencoder; set model.backbone.frozen=True")
        self.backbone.requires_grad_(False)
        self.neck = MODELS.build(
            neck if neck is not None else dict(type="AvgPoolNeck", kernel_size=2)
        )
        self.feature_shape = self._pooled_shape()
        head = dict(head)
        input_dim = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        if head.get("input_dim") not in (None, input_dim):
            raise ConfigError(
                f"FRE computes model.head.input_dim from the backbone and model.input_size "
                f"({input_dim}), the config says {head['input_dim']}; remove it from the config"
            )
        head["input_dim"] = input_dim
        self.head = MODELS.build(head)
        self.cache_features = cache_features
        self.blur_sigma = blur_sigma
        # Training image path -> (hash of its network input, its pooled features).
        self._feature_cache: dict[str, tuple[bytes, torch.Tensor]] = {}

    def _pooled_shape(self) -> tuple[int, int, int]:
        shapes = backbone_feature_shapes(self.backbone, self.input_size)
        if len(shapes) != 1:
            raise ConfigError(
                f"FRE takes one feature level, got {len(shapes)}; set "
                "model.backbone.out_indices to a single level, e.g. (3,)"
            )
        c, h, w = shapes[0]
        k = getattr(self.neck, "kernel_size", 1)
        if h % k or w % k:
            raise ConfigError(
                f"FRE: model.neck.kernel_size={k} does not divide the {h} x {w} feature map "
                f"of {self.input_size[0]} x {self.input_size[1]} images; use an input size "
                f"whose feature map is a multiple of {k} (e.g. 256 px for stride 16)"
            )
        return (c, h // k, w // k)

    def train(self, mode: bool = True) -> FRE:
        super().train(mode)
        # Batch-norm statistics of the frozen backbone must never update.
        self.backbone.eval()
        return self

    def before_train(self, train_loader) -> None:
        """Start every training run (and a resumed one) with an empty feature cache."""
        self._feature_cache.clear()

    def after_train(self, train_loader) -> None:
        """Free the cached training features."""
        self._feature_cache.clear()

    @torch.no_grad()
    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, C, h, w) pooled backbone features."""
        if tuple(inputs.shape[-2:]) != self.input_size:
            raise ConfigError(
                f"FRE was built for {self.input_size[0]}x{self.input_size[1]} images but got "
                f"{inputs.shape[-2]}x{inputs.shape[-1]}; set model.input_size to the "
                "pipeline's Resize size"
            )
        return self.neck(list(self.backbone(inputs)))

    @torch.no_grad()
    def cached_features(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> torch.Tensor:
        """:meth:`features`, reusing a training image's features when its input is unchanged."""
        paths = [None if s is None else s.metainfo.get("img_path") for s in data_samples or []]
        if len(paths) != len(inputs) or None in paths:
            return self.features(inputs)
        digests = [
            hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest()
            for x in inputs
        ]
        hits = [self._feature_cache.get(p, (None, None)) for p in paths]
        if all(h[0] == d for h, d in zip(hits, digests)):
            return torch.stack([h[1] for h in hits])
        feats = self.features(inputs)
        for path, digest, feat in zip(paths, digests, feats):
            self._feature_cache[path] = (digest, feat.clone())
        return feats

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        if self.cache_features:
            feats = self.cached_features(inputs, data_samples)
        else:
            feats = self.features(inputs)
        flat = feats.flatten(1)
        return dict(loss=F.mse_loss(self.head(flat), flat))

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        error_map = self.head.error_map(self.features(inputs))
        scores = error_map.flatten(1).sum(1)
        return scores, self.to_input_map(error_map, inputs.shape[-2:], self.blur_sigma)
