"""EfficientAD.

"EfficientAD: Accurate Visual Anomaly Detection at Millisecond-Level Latencies", Batzner,
Heckler and König, WACV 2024, https://arxiv.org/abs/2303.14535. A student PDN regresses a
frozen teacher PDN's features (local anomalies: their squared difference) and an
autoencoder's output (logical anomalies: the student/autoencoder difference); each map is
normalised by quantiles of validation maps and their mean scores a pixel, the maximum an
image.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from PIL import Image

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.fast_inference import FoldedNetworks, fast_inference_enabled
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

from .networks import AutoEncoder, pdn, pdn_output_size

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def hard_feature_loss(distances: torch.Tensor, quantile: float = 0.999) -> torch.Tensor:
    """Mean of the largest ``ceil((1 - quantile) * N)`` of the ``N`` squared distances.

    The paper's hard-feature loss (Sec. 3.2): only the elements at or above the
    ``quantile`` of all (channel, position) distances of the batch train the student.
    """
    flat = distances.flatten()
    k = max(1, math.ceil(round((1.0 - quantile) * flat.numel(), 6)))
    return flat.topk(k, sorted=False).values.mean()


def quantile_normalize(
    maps: torch.Tensor, q_start: torch.Tensor, q_end: torch.Tensor
) -> torch.Tensor:
    """The paper's map normalisation: ``q_start`` -> 0 and ``q_end`` -> 0.1, linear."""
    return 0.1 * (maps - q_start) / (q_end - q_start)


def map_quantiles(
    maps: torch.Tensor, quantiles: tuple[float, float], max_elements: int = 2**24
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``quantiles`` of all values of ``maps`` (evenly subsampled past torch's limit)."""
    flat = maps.flatten().float()
    if flat.numel() > max_elements:
        flat = flat[torch.linspace(0, flat.numel() - 1, max_elements).long()]
    q = torch.quantile(flat, torch.tensor(quantiles, dtype=flat.dtype))
    return q[0], q[1]


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; [] when it does not exist."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def dataset_batches(dataset, batch_size: int = 8):
    """Pseudo-collated batches of ``dataset`` in order: one pass whatever the loader's
    sampler (an ``InfiniteSampler`` never ends; every rank sees every image)."""
    for start in range(0, len(dataset), batch_size):
        yield pseudo_collate(
            [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        )


def held_out_paths(paths: list[str], fraction: float, seed: int = 0) -> set[str]:
    """The validation images: ``n - int((1 - fraction) * n)`` of ``paths``, seeded.

    As the official code's ``random_split`` of the training images (10 %): the held-out
    images never train the networks and give the map quantiles.
    """
    paths = sorted(paths)
    if fraction <= 0 or len(paths) < 2:
        return set()
    n_val = len(paths) - int((1.0 - fraction) * len(paths))
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))
    return {paths[i] for i in order[:n_val].tolist()}


@MODELS.register_module()
class EfficientAD(BaseAnomalyModel):
    """Teacher PDN (frozen) + student PDN (2x channels) + autoencoder.

    Args:
        teacher: Config of the teacher (``PDNBackbone``: ``size`` small/medium and the
            distilled ``weights``).
        input_size: Square input side in pixels (the autoencoder's shapes follow it).
            Defaults to 256.
        hard_quantile: Quantile of the hard-feature loss. Defaults to 0.999.
        penalty_dir: Folder of out-of-distribution natural images for the student's
            pretraining penalty (paper: ImageNet; official code: Imagenette). When it is
            missing or empty the penalty is off and the log and results say so.
            Defaults to ``'data/imagenette'``.
        penalty_weight: Weight of the penalty. Defaults to 1.0.
        validation_fraction: Fraction of the training images held out (never trained on)
            whose maps give the normalisation quantiles. Defaults to 0.1.
        map_quantiles: Quantiles of the validation maps sent to 0 and 0.1. Defaults to
            (0.9, 0.995).
        width: Hidden-channel multiplier of the student and autoencoder (1 = the paper's).
            Defaults to 1.0.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        teacher: dict,
        input_size: int = 256,
        hard_quantile: float = 0.999,
        penalty_dir: str | None = "data/imagenette",
        penalty_weight: float = 1.0,
        validation_fraction: float = 0.1,
        map_quantiles: tuple[float, float] = (0.9, 0.995),
        width: float = 1.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0.0 <= validation_fraction < 1.0:
            raise ConfigError(
                f"EfficientAD validation_fraction must be in [0, 1), got {validation_fraction}"
            )
        self.teacher = MODELS.build(teacher)
        self.teacher.requires_grad_(False)
        channels = self.teacher.out_channels[0]
        padding = bool(getattr(self.teacher, "padding", False))
        size = getattr(self.teacher, "size", "small")
        self.channels = channels
        self.input_size = int(input_size)
        self.student = pdn(size, 2 * channels, padding, width)
        self.autoencoder = AutoEncoder(self.input_size, channels, padding, width)
        self.out_side = pdn_output_size(self.input_size, padding)
        # Without padding the PDN map covers the image minus a 4-position border
        # (the official code pads it back before resizing).
        self.border = 0 if padding else (self.input_size // 4 - self.out_side) // 2
        self.hard_quantile = hard_quantile
        self.penalty_weight = penalty_weight
        self.validation_fraction = validation_fraction
        self.quantiles = tuple(map_quantiles)
        self.register_buffer("teacher_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, channels, 1, 1))
        # (q_start, q_end) of the local (student/teacher) and global (student/autoencoder)
        # maps; (0, 0.1) leaves a map unchanged until after_train sets them.
        self.register_buffer("quantiles_st", torch.tensor([0.0, 0.1]))
        self.register_buffer("quantiles_ae", torch.tensor([0.0, 0.1]))
        self.penalty_dir = penalty_dir
        self._penalty_images = self._find_penalty_images()
        self._held_out: set[str] = set()
        self._validation: list[torch.Tensor] = []
        self.notes = {
            "teacher": getattr(self.teacher, "weights_path", None)
            or "weights=None (random init, or the tested checkpoint's)",
        }
        self.notes["penalty"] = self._penalty_note()
        # Set by train()/eval(): at test, the three PDN/autoencoder networks run through
        # channels-last copies (adtool/models/fast_inference.py); outputs are the same.
        self.fast_inference = False
        self._folded = FoldedNetworks()

    # ------------------------------------------------------------------ set-up

    def _find_penalty_images(self) -> list[Path]:
        if self.penalty_dir is None or self.penalty_weight == 0:
            return []
        return list_images(self.penalty_dir)

    def _penalty_note(self) -> str:
        if self._penalty_images:
            return f"on: {len(self._penalty_images)} images from {self.penalty_dir}"
        if self.penalty_dir is None or self.penalty_weight == 0:
            return "off (penalty_dir=None or penalty_weight=0)"
        return (
            f"off (fallback): no images in {self.penalty_dir}; put natural images (e.g. "
            "Imagenette) there or set model.penalty_dir"
        )

    def results_info(self) -> dict:
        """What this run used that the numbers depend on (written into results.json)."""
        return dict(self.notes)

    def train(self, mode: bool = True) -> EfficientAD:
        super().train(mode)
        self.teacher.eval()
        return self

    # ------------------------------------------------------------------ networks

    def teacher_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Channel-normalised teacher output (training statistics, before_train)."""
        with torch.no_grad():
            return (self._run("teacher", inputs) - self.teacher_mean) / self.teacher_std

    def _run(self, name: str, inputs: torch.Tensor) -> torch.Tensor:
        """The part ``name`` on ``inputs``; in the optimised test path, its channels-last
        copy (oneDNN's channels-last convolutions and pooling: about 1.6x at batch 1)."""
        net = getattr(self, name)
        if self.fast_inference and fast_inference_enabled() and not torch.is_grad_enabled():
            return self._folded.run(name, net.net if name == "teacher" else net, inputs)
        return net(inputs)

    def raw_maps(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Local (teacher/student) and global (autoencoder/student) maps, (B, 1, h, w)."""
        teacher = self.teacher_features(inputs)
        student = self._run("student", inputs)
        autoencoder = self._run("autoencoder", inputs)
        c = self.channels
        map_st = (teacher - student[:, :c]).pow(2).mean(1, keepdim=True)
        map_ae = (autoencoder - student[:, c:]).pow(2).mean(1, keepdim=True)
        return map_st, map_ae

    # ------------------------------------------------------------------ lifecycle

    def _unnormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        dp = self.data_preprocessor
        return (inputs * dp.std + dp.mean) / 255.0

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        dp = self.data_preprocessor
        return (images * 255.0 - dp.mean) / dp.std

    @torch.no_grad()
    def before_train(self, train_loader) -> None:
        """Hold out the validation images; teacher channel mean/std on the others."""
        dataset = train_loader.dataset
        paths = []
        if hasattr(dataset, "get_data_info"):
            paths = [str(dataset.get_data_info(i)["img_path"]) for i in range(len(dataset))]
        self._held_out = held_out_paths(paths, self.validation_fraction)
        self._validation = []
        device = self.teacher_mean.device
        total = torch.zeros(self.channels, dtype=torch.float64, device=device)
        squares = torch.zeros_like(total)
        count = torch.zeros((), dtype=torch.float64, device=device)
        for batch in dataset_batches(dataset):
            keep, held = self._split_batch(batch)
            if held is not None:
                self._validation.extend(held["inputs"])
            if keep is None:
                continue
            out = self.teacher(self.data_preprocessor(keep, False)["inputs"]).double()
            total += out.sum((0, 2, 3))
            squares += out.pow(2).sum((0, 2, 3))
            count += out.shape[0] * out.shape[2] * out.shape[3]
        mean = total / count
        std = (squares / count - mean.pow(2)).clamp_min(1e-12).sqrt()
        self.teacher_mean.copy_(mean.view(1, -1, 1, 1).float())
        self.teacher_std.copy_(std.view(1, -1, 1, 1).float())
        n_val = len(self._held_out)
        self.notes["validation"] = (
            f"{n_val} of {len(paths)} training images held out for the map quantiles"
            if n_val
            else "no held-out images (validation_fraction=0 or < 2 images): map quantiles "
            "from the training images (fallback)"
        )
        level = logging.INFO if self._penalty_images else logging.WARNING
        print_log(f"EfficientAD penalty {self.notes['penalty']}", logger="current", level=level)
        print_log(f"EfficientAD: {self.notes['validation']}", logger="current")

    def _split_batch(self, batch: dict) -> tuple[dict | None, dict | None]:
        """(training part, held-out part) of a pseudo-collated batch; None when empty."""
        samples = batch.get("data_samples") or [None] * len(batch["inputs"])
        flags = [
            s is not None and str(s.metainfo.get("img_path")) in self._held_out for s in samples
        ]
        if not any(flags):
            return batch, None
        parts = []
        for wanted in (False, True):
            idx = [i for i, f in enumerate(flags) if f == wanted]
            if not idx:
                parts.append(None)
                continue
            part = {"inputs": [batch["inputs"][i] for i in idx]}
            if batch.get("data_samples"):
                part["data_samples"] = [batch["data_samples"][i] for i in idx]
            parts.append(part)
        return parts[0], parts[1]

    @torch.no_grad()
    def after_train(self, train_loader) -> None:
        """Quantiles of the local and global maps of the held-out training images."""
        was_training = self.training
        self.eval()
        maps_st, maps_ae = [], []
        if self._validation:
            batches = [
                {"inputs": self._validation[i : i + 8]} for i in range(0, len(self._validation), 8)
            ]
        else:
            batches = dataset_batches(train_loader.dataset)
        for batch in batches:
            inputs = self.data_preprocessor(batch, False)["inputs"]
            map_st, map_ae = self.raw_maps(inputs)
            maps_st.append(map_st.cpu())
            maps_ae.append(map_ae.cpu())
        q_st = map_quantiles(torch.cat(maps_st), self.quantiles)
        q_ae = map_quantiles(torch.cat(maps_ae), self.quantiles)
        self.quantiles_st.copy_(torch.stack(q_st))
        self.quantiles_ae.copy_(torch.stack(q_ae))
        self._validation = []
        self.train(was_training)

    # ------------------------------------------------------------------ training

    def _penalty_batch(self, n: int, device) -> torch.Tensor | None:
        """``n`` random out-of-distribution images, as the official code prepares them:
        resized to twice the input side, grey with probability 0.3, centre-cropped."""
        if not self._penalty_images:
            return None
        side = self.input_size
        images = []
        for _ in range(n):
            path = random.choice(self._penalty_images)
            with Image.open(path) as img:
                img = img.convert("RGB").resize((2 * side, 2 * side), Image.BILINEAR)
            if random.random() < 0.3:
                img = img.convert("L").convert("RGB")
            left = side // 2
            img = img.crop((left, left, left + side, left + side))
            images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
        batch = torch.stack(images).float().to(device) / 255.0
        return self._normalize(batch)

    def _augment(self, inputs: torch.Tensor) -> torch.Tensor:
        """The autoencoder's input: one of brightness, contrast or saturation, x[0.8, 1.2]."""
        images = self._unnormalize(inputs).clamp(0, 1)
        factor = random.uniform(0.8, 1.2)
        adjust = random.choice((TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation))
        return self._normalize(adjust(images, factor))

    def train_step(self, data, optim_wrapper) -> dict[str, torch.Tensor]:
        """One Adam step on the training part of the batch; held-out images are skipped."""
        keep, _ = self._split_batch(data)
        if keep is None:
            return {"loss": torch.zeros(())}
        return super().train_step(keep, optim_wrapper)

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        c = self.channels
        teacher = self.teacher_features(inputs)
        student = self.student(inputs)
        loss_hard = hard_feature_loss((teacher - student[:, :c]).pow(2), self.hard_quantile)
        losses = {"loss_st": loss_hard}
        penalty = self._penalty_batch(inputs.shape[0], inputs.device)
        if penalty is not None:
            losses["loss_penalty"] = (
                self.penalty_weight * self.student(penalty)[:, :c].pow(2).mean()
            )
        augmented = self._augment(inputs)
        teacher_aug = self.teacher_features(augmented)
        autoencoder = self.autoencoder(augmented)
        student_aug = self.student(augmented)[:, c:]
        losses["loss_ae"] = (teacher_aug - autoencoder).pow(2).mean()
        losses["loss_stae"] = (autoencoder - student_aug).pow(2).mean()
        return losses

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        map_st, map_ae = self.raw_maps(inputs)
        if self.border:
            # The border the unpadded PDN does not see scores 0 before normalisation (as
            # anomalib), i.e. below every quantile: the official code pads the normalised
            # map with 0, which sits above 90 % of normal pixels.
            map_st = F.pad(map_st, [self.border] * 4)
            map_ae = F.pad(map_ae, [self.border] * 4)
        map_st = quantile_normalize(map_st, *self.quantiles_st)
        map_ae = quantile_normalize(map_ae, *self.quantiles_ae)
        maps = self.to_input_map(0.5 * map_st + 0.5 * map_ae, inputs.shape[-2:])
        return self.image_score_from_map(maps), maps
