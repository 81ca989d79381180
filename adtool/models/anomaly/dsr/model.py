"""DSR.

"DSR - A dual subspace re-projection network for surface anomaly detection", Zavrtanik,
Kristan and Skocaj, ECCV 2022, https://arxiv.org/abs/2207.14315. A two-level VQ-VAE
(general object appearance, pretrained on ImageNet in the paper) quantises an image; a
subspace restriction module per level pulls the quantised features back to the normal
subspace of the object and an object-specific decoder turns them into the normal image;
an anomaly detection U-Net compares it with the general decoder's image, and an
upsampling U-Net refines that map. Anomalies for training are made in codebook space
(quantised vectors inside Perlin masks replaced by near or far codebook entries), so no
external anomaly source is needed for the main stage. A pixel scores the upsampled
softmax anomaly probability; an image the maximum of the detection module's map after a
mean filter (21 x 21 in the paper's code).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub, print_log
from mmengine.optim import OptimWrapperDict

from adtool.errors import ConfigError, WeightsNotFoundError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.weights import (
    WEIGHT_EXTENSIONS,
    default_backbone_dir,
    map_by_key_order,
    read_state_dict,
)
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

from .networks import Reprojection, UNet
from .vq import DiscreteLatentModel, codebook_anomalies

PHASES = ("vq", "reprojection", "upsampling")
# vq_state buffer values: where the VQ model's weights came from.
VQ_RANDOM, VQ_LOADED, VQ_TRAINED = 0, 1, 2
# The official code's / anomalib's file name of the ImageNet VQ model (128 x 4096).
OFFICIAL_VQ_FILE = "vq_model_pretrained_128_4096.pckl"


def current_epoch() -> int:
    """The runner's current (0-based) epoch, as mmengine's RuntimeInfoHook publishes it."""
    return int(MessageHub.get_current_instance().get_info("epoch", 0) or 0)


@MODELS.register_module()
class DSR(BaseAnomalyModel):
    """General VQ model + re-projection stage + upsampling module, trained in phases.

    Phases, by epoch (0-based) of one training run; in each, only that phase's submodule
    has gradients (the others are frozen, as the paper trains them in separate stages)
    and only its optimiser steps (``optim_wrapper`` keys ``vq``, ``reprojection``,
    ``upsampling``, built by ``MultiOptimWrapperConstructor``):

    * ``vq`` (epochs ``[0, vq_epochs)``, only when the VQ model is not loaded from
      ``vq_weights``): the two-level VQ-VAE on the clean training images (MSE +
      commitment 0.25, EMA codebooks);
    * ``reprojection`` (up to ``upsampling_epoch``): subspace restriction modules,
      object-specific decoder and anomaly detection module on codebook-space anomalies
      (Perlin masks ``gt_mask`` of the pipeline, clean images ``img_clean``); loss = L2 of
      each level's restored features to the clean quantisation + 10 x L2 of the
      object-specific image to the clean image + focal loss of the detection map;
    * ``upsampling`` (from ``upsampling_epoch``): the upsampling module on image-level
      anomalies (the pipeline's ``TextureAnomalyBlend`` inputs and masks), focal loss.

    Inputs are normalised to [0, 1] (data preprocessor mean 0, std 255), as the official
    code feeds its networks; the input sides must be multiples of 32, at least 64.

    Args:
        embedding_dim: Codebook vector size. Defaults to 128 (paper).
        num_embeddings: Entries per codebook. Defaults to 4096 (paper).
        hidden: Channels of the VQ encoders and both image decoders. Defaults to 128.
        residual_layers: Residual blocks per stack. Defaults to 2.
        residual_hidden: Hidden channels of a residual block. Defaults to 64.
        anomaly_width: First-stage channels of the anomaly detection U-Net. Defaults to 64.
        upsampling_width: First-stage channels of the upsampling U-Net. Defaults to 64.
        upsampling_residual: The upsampling U-Net adds its output (last convolution
            zero-initialised) to the detection map's log-probabilities, so that it starts
            as the identity and learns a correction; not in the paper, for short schedules
            where the plain module has not learnt enough. Defaults to False (paper).
        anomaly_strength: Smallest codebook-anomaly strength lambda (drawn uniformly in
            ``[anomaly_strength, 1]`` per image and level). Defaults to 0.2 (paper code).
        image_loss_weight: Weight of the object-specific image L2. Defaults to 10.
        commitment: VQ commitment cost of the local VQ stage. Defaults to 0.25.
        vq_weights: The general VQ model: a source name (``'imagenet'`` looks for
            ``<backbone_dir>/dsr_vq_imagenet.{safetensors,pth,pt,bin}``, then the official
            ``vq_model_pretrained_128_4096.pckl``), a file path, or None (train it here).
            A missing file with ``vq_epochs > 0`` falls back to training it here (logged).
            Defaults to ``'imagenet'``.
        backbone_dir: Folder searched for the VQ file. Defaults to ``$ADTOOL_BACKBONE_DIR``
            or ``./backbones``.
        vq_epochs: Epochs of the local VQ stage. Defaults to 0.
        vq_sees_anomalies: The local VQ stage trains on the pipeline's inputs (half of
            them with texture anomalies) instead of the clean images, so that its codebooks
            represent more than the normal object (ImageNet's role in the paper).
            Defaults to True.
        upsampling_epoch: First epoch of the upsampling phase. Defaults to 490 (70% of
            700, anomalib's split of the paper's schedule).
        score_kernel: Side of the mean filter before the image maximum. Defaults to 21.
        loss_focal: Config of the focal loss. Defaults to ``FocalLoss`` gamma 2.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        embedding_dim: int = 128,
        num_embeddings: int = 4096,
        hidden: int = 128,
        residual_layers: int = 2,
        residual_hidden: int = 64,
        anomaly_width: int = 64,
        upsampling_width: int = 64,
        upsampling_residual: bool = False,
        anomaly_strength: float = 0.2,
        image_loss_weight: float = 10.0,
        commitment: float = 0.25,
        vq_weights: str | None = "imagenet",
        backbone_dir: str | None = None,
        vq_epochs: int = 0,
        vq_sees_anomalies: bool = True,
        upsampling_epoch: int = 490,
        score_kernel: int = 21,
        loss_focal: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if score_kernel < 1 or score_kernel % 2 == 0:
            raise ConfigError(f"DSR score_kernel must be an odd number >= 1, got {score_kernel}")
        if not 0.0 < anomaly_strength <= 1.0:
            raise ConfigError(f"DSR anomaly_strength must be in (0, 1], got {anomaly_strength}")
        if vq_epochs < 0 or upsampling_epoch < 0:
            raise ConfigError(
                f"DSR vq_epochs and upsampling_epoch must be >= 0, got {vq_epochs}, "
                f"{upsampling_epoch}"
            )
        if vq_epochs and upsampling_epoch <= vq_epochs:
            raise ConfigError(
                f"DSR upsampling_epoch ({upsampling_epoch}) must come after the VQ stage's "
                f"vq_epochs ({vq_epochs}), leaving epochs for the re-projection stage"
            )
        self.vq = DiscreteLatentModel(
            hidden, residual_layers, residual_hidden, num_embeddings, embedding_dim
        )
        self.reprojection = Reprojection(
            embedding_dim, hidden, residual_layers, residual_hidden, anomaly_width
        )
        self.upsampling = UNet(3 + 3 + 2, 2, upsampling_width)
        self.upsampling_residual = bool(upsampling_residual)
        if self.upsampling_residual:
            torch.nn.init.zeros_(self.upsampling.out.weight)
            torch.nn.init.zeros_(self.upsampling.out.bias)
        self.register_buffer("vq_state", torch.tensor(VQ_RANDOM))
        self.anomaly_strength = float(anomaly_strength)
        self.image_loss_weight = float(image_loss_weight)
        self.commitment = float(commitment)
        self.vq_weights = vq_weights
        self.backbone_dir = backbone_dir
        self.vq_epochs = int(vq_epochs)
        self.vq_sees_anomalies = bool(vq_sees_anomalies)
        self.upsampling_epoch = int(upsampling_epoch)
        self.score_kernel = int(score_kernel)
        self.loss_focal = MODELS.build(loss_focal or dict(type="FocalLoss", gamma=2.0))
        self.phase: str | None = None
        self.notes: dict = {}

    # ------------------------------------------------------------------ VQ source

    def vq_candidates(self) -> list[Path]:
        """Files tried, in order, for ``vq_weights`` (empty for None)."""
        if self.vq_weights is None:
            return []
        source = str(self.vq_weights)
        path = Path(source).expanduser()
        if path.suffix or "/" in source:
            return [path]
        folder = default_backbone_dir(self.backbone_dir)
        files = [folder / f"dsr_vq_{source}.{ext}" for ext in WEIGHT_EXTENSIONS]
        return files + ([folder / OFFICIAL_VQ_FILE] if source == "imagenet" else [])

    def load_vq(self, path: str | Path) -> None:
        """Load the general VQ model from a file: its own keys, a DSR checkpoint's ``vq.*``
        keys, or the official naming (same tensors in the same order)."""
        state = read_state_dict(path)
        if any(k.startswith("vq.") for k in state):
            state = {k[3:]: v for k, v in state.items() if k.startswith("vq.")}
        reference = self.vq.state_dict()
        if set(state) != set(reference):
            try:
                state = map_by_key_order(state, reference, "DSR's VQ model")
            except WeightsNotFoundError as e:
                raise WeightsNotFoundError(
                    f"{path} is not a DSR VQ model of this size (embedding_dim, "
                    f"num_embeddings, hidden): {e}"
                ) from None
        self.vq.load_state_dict(state)
        self.vq_state.fill_(VQ_LOADED)

    def vq_trained_here(self) -> bool:
        """Whether this run's schedule starts with the VQ stage."""
        return int(self.vq_state) != VQ_LOADED and self.vq_epochs > 0

    def before_train(self, train_loader) -> None:
        """Load the general VQ model, or plan its local stage; one log line names which."""
        n_train = len(getattr(train_loader, "dataset", []) or [])
        if int(self.vq_state) == VQ_TRAINED:  # resumed after (part of) a local VQ stage
            self.notes["vq"] = (
                f"trained here on {n_train} training images ({self.vq_epochs} epochs)"
            )
            return
        tried = self.vq_candidates()
        found = next((p for p in tried if p.is_file()), None)
        if found is not None:
            self.load_vq(found)
            self.notes["vq"] = f"loaded from {found}"
            level = logging.INFO
        elif self.vq_epochs > 0:
            self.notes["vq"] = (
                f"trained here on {n_train} training images ({self.vq_epochs} epochs)"
            )
            if tried:
                self.notes["vq"] += f"; no file at {', '.join(map(str, tried))}"
            level = logging.WARNING if tried else logging.INFO
        else:
            looked = f"looked in: {', '.join(map(str, tried))}; " if tried else ""
            raise WeightsNotFoundError(
                f"DSR's general VQ model not found; {looked}place the file there (or a DSR "
                "checkpoint, whose vq.* weights are used), or set model.vq_epochs > 0 to "
                "train it on the training images as the first stage"
            )
        schedule = (
            f"phases: vq epochs 1-{self.vq_epochs}, " if self.vq_trained_here() else "phases: "
        )
        first = self.vq_epochs + 1 if self.vq_trained_here() else 1
        schedule += (
            f"re-projection epochs {first}-{self.upsampling_epoch}, upsampling from epoch "
            f"{self.upsampling_epoch + 1}"
        )
        self.notes["schedule"] = schedule
        print_log(f"DSR VQ model: {self.notes['vq']}; {schedule}", logger="current", level=level)

    def results_info(self) -> dict:
        """What the numbers depend on (written into results.json as ``model_info``)."""
        if "vq" in self.notes:
            return dict(self.notes)
        state = {VQ_LOADED: "loaded from a file", VQ_TRAINED: "trained locally"}
        return {"vq": state.get(int(self.vq_state), "untrained") + " (tested from a checkpoint)"}

    # ------------------------------------------------------------------ phases

    def phase_at(self, epoch: int) -> str:
        """The phase that trains in (0-based) ``epoch``."""
        if self.vq_trained_here() and epoch < self.vq_epochs:
            return "vq"
        return "reprojection" if epoch < self.upsampling_epoch else "upsampling"

    def set_phase(self, phase: str) -> None:
        """Give gradients to ``phase``'s submodule only (the VQ codebooks move by EMA)."""
        if phase not in PHASES:
            raise ValueError(f"DSR phase must be one of {PHASES}, got {phase!r}")
        for name in PHASES:
            getattr(self, name).requires_grad_(name == phase)
        for quantizer in (self.vq.vq_top, self.vq.vq_bottom):
            quantizer.embedding.weight.requires_grad_(False)
        if phase != self.phase and self.phase is not None:
            print_log(f"DSR: phase {phase} from epoch {current_epoch() + 1}", logger="current")
        self.phase = phase

    # ------------------------------------------------------------------ networks

    def _check_size(self, inputs: torch.Tensor) -> None:
        h, w = inputs.shape[-2:]
        if h % 32 or w % 32 or min(h, w) < 64:
            raise ConfigError(
                f"DSR needs input sides divisible by 32 and >= 64 (its top features are "
                f"pooled to 1/32), got {h} x {w}; change the pipelines' Resize size"
            )

    def specific_image(self, q_top: torch.Tensor, q_bottom: torch.Tensor):
        """Subspace restriction of both levels, then the object-specific decoder.

        Returns (restored top features, restored bottom features, object-specific image).
        """
        rep = self.reprojection
        feat_top, rq_top = rep.restrict_top(q_top, self.vq.vq_top)
        feat_bottom, rq_bottom = rep.restrict_bottom(q_bottom, self.vq.vq_bottom)
        image = rep.decoder(torch.cat((self.vq.upsample_top(rq_top), rq_bottom), 1))
        return feat_top, feat_bottom, image

    def detect(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Images -> (general image, object-specific image, detection softmax (B, 2, H, W))."""
        self._check_size(inputs)
        enc = self.vq.encode(inputs)
        general = self.vq.decode(enc["q_top"], enc["q_bottom"])
        _, _, specific = self.specific_image(enc["q_top"], enc["q_bottom"])
        detection = self.reprojection.anomaly_module(specific, general).softmax(1)
        return general, specific, detection

    def refine(
        self, general: torch.Tensor, specific: torch.Tensor, detection: torch.Tensor
    ) -> torch.Tensor:
        """The upsampling module's (B, 2, H, W) logits of the final map."""
        logits = self.upsampling(specific, general, detection)
        if self.upsampling_residual:
            logits = logits + detection.clamp_min(1e-6).log()
        return logits

    # ------------------------------------------------------------------ training

    def _targets(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised anomaly-free images, (B, H, W) 0/1 masks) of a training batch."""
        if not data_samples or not all("img_clean" in s and "gt_mask" in s for s in data_samples):
            raise ConfigError(
                "DSR's training samples need img_clean and gt_mask: the train pipeline must "
                "end with PerlinAnomalyMask, TextureAnomalyBlend and "
                "PackAnomalyInputs(image_keys=['img_clean']) (configs/dsr/dsr_mvtec.py)"
            )
        clean = torch.stack([s.img_clean for s in data_samples]).to(inputs.device).float()
        dp = self.data_preprocessor
        clean = (clean - dp.mean) / dp.std if getattr(dp, "_enable_normalize", True) else clean
        masks = torch.stack([s.gt_mask for s in data_samples]).to(inputs.device).long()
        return clean, masks

    def _strength(self, batch: int, device: torch.device) -> torch.Tensor:
        low = self.anomaly_strength
        return (torch.rand(batch) * (1.0 - low) + low).to(device)

    @torch.no_grad()
    def latent_anomalies(self, clean: torch.Tensor, masks: torch.Tensor) -> dict:
        """Codebook-space anomalies of a clean batch (the official code's choice of levels).

        Per image: with probability 1/2 both levels (the top anomaly, the bottom level
        re-quantised from it, then a bottom anomaly on that), else only the top or only the
        bottom level. Returns the clean quantisations ``q_top``/``q_bottom``, the anomalous
        ``a_top``/``a_bottom``, the general decoder's image of the latter and the
        ground-truth mask at the image size (the pooled mask of the level that carries
        the anomaly, upsampled).
        """
        enc = self.vq.encode(clean)
        batch, device = clean.shape[0], clean.device
        m = masks[:, None].float()
        s_top, s_bottom = self._strength(batch, device), self._strength(batch, device)
        vq = self.vq
        anom_top = codebook_anomalies(enc["z_top"], enc["q_top"], vq.vq_top, m, s_top)
        z_b, q_b = vq.requantize_bottom(enc["enc_bottom"], anom_top)
        bottom_both = codebook_anomalies(z_b, q_b, vq.vq_bottom, m, s_bottom)
        bottom_only = codebook_anomalies(
            enc["z_bottom"], enc["q_bottom"], vq.vq_bottom, m, s_bottom
        )
        both = (torch.rand(batch) < 0.5).to(device)
        top_only = ~both & (torch.rand(batch) < 0.5).to(device)
        bottom_alone = ~both & ~top_only
        sel = lambda flags: flags[:, None, None, None]  # noqa: E731
        a_top = torch.where(sel(bottom_alone), enc["q_top"], anom_top)
        a_bottom = torch.where(sel(both), bottom_both, bottom_only)
        a_bottom = torch.where(sel(top_only), enc["q_bottom"], a_bottom)
        size = clean.shape[-2:]
        mask_top = F.interpolate(F.adaptive_max_pool2d(m, enc["q_top"].shape[-2:]), size=size)
        mask_bottom = F.interpolate(F.adaptive_max_pool2d(m, enc["q_bottom"].shape[-2:]), size=size)
        target = torch.where(sel(bottom_alone), mask_bottom, mask_top)[:, 0].long()
        return dict(
            q_top=enc["q_top"],
            q_bottom=enc["q_bottom"],
            a_top=a_top,
            a_bottom=a_bottom,
            general=vq.decode(a_top, a_bottom),
            mask=target,
        )

    def phase_losses(
        self, phase: str, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> dict[str, torch.Tensor]:
        """The loss terms of one batch in ``phase``."""
        self._check_size(inputs)
        clean, masks = self._targets(inputs, data_samples)
        if phase == "vq":
            # The pipeline's images, half with texture anomalies: without ImageNet, these
            # widen what the general appearance codebooks can represent beyond the object.
            return self.vq.vq_losses(inputs if self.vq_sees_anomalies else clean, self.commitment)
        if phase == "reprojection":
            lat = self.latent_anomalies(clean, masks)
            feat_top, feat_bottom, specific = self.specific_image(lat["a_top"], lat["a_bottom"])
            logits = self.reprojection.anomaly_module(specific.detach(), lat["general"])
            return dict(
                loss_top=F.mse_loss(feat_top, lat["q_top"]),
                loss_bottom=F.mse_loss(feat_bottom, lat["q_bottom"]),
                loss_image=self.image_loss_weight * F.mse_loss(specific, clean),
                loss_focal=self.loss_focal(logits, lat["mask"]),
            )
        with torch.no_grad():
            general, specific, detection = self.detect(inputs)
        logits = self.refine(general, specific, detection)
        return dict(loss_upsampling=self.loss_focal(logits, masks))

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        """The loss terms of the current epoch's phase."""
        return self.phase_losses(self.phase_at(current_epoch()), inputs, data_samples)

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One step of the current epoch's phase, with that phase's optimiser only."""
        needed = set(PHASES) if self.vq_trained_here() else set(PHASES[1:])
        if not isinstance(optim_wrapper, OptimWrapperDict) or not needed <= set(
            optim_wrapper.keys()
        ):
            raise ConfigError(
                "DSR needs optim_wrapper=dict(constructor='MultiOptimWrapperConstructor', "
                "vq=dict(...), reprojection=dict(...), upsampling=dict(...)) "
                "(configs/dsr/dsr_mvtec.py)"
            )
        phase = self.phase_at(current_epoch())
        self.set_phase(phase)
        wrapper = optim_wrapper[phase]
        data = self.data_preprocessor(data, True)
        with wrapper.optim_context(getattr(self, phase)):
            losses = self.phase_losses(phase, data["inputs"], data["data_samples"])
        loss, log_vars = self.parse_losses(losses)
        wrapper.update_params(loss)
        if phase == "vq":
            self.vq_state.fill_(VQ_TRAINED)
        return log_vars

    # ------------------------------------------------------------------ inference

    def score_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, H, W) detection maps -> (B,) image scores: maximum of the mean-filtered map."""
        k = self.score_kernel
        return F.avg_pool2d(maps[:, None], k, stride=1, padding=k // 2).flatten(1).amax(1)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        general, specific, detection = self.detect(inputs)
        maps = self.refine(general, specific, detection).softmax(1)[:, 1]
        return self.score_from_map(detection[:, 1]), maps
