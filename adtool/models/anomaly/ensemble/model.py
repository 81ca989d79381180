"""Ensemble: trained anomaly models, their scores and maps normalised on normal images and
fused by a rule.

No paper: the step the original framework describes for a quality engineer ("compare many
models on the product, then combine the best 3-5"). Each member is a trained adtool model
(its config + checkpoint, loaded by :func:`adtool.apis.checkpoints.load_model`) and keeps
its own preprocessing. Its image score and anomaly map are put on a common scale with
statistics of the NORMAL images of the ensemble's training loader only (the calibration
images; :class:`MemberNormalizer`, fitted by the ``FitLoop`` pass that ``tools/train.py``
runs), then fused. ``tools/ensemble.py`` makes them normal training images that no member
was fitted on (``holdout=dict(keep='held')`` on the ensemble's training dataset, the
members retrained with ``keep='rest'``): a member scores its own training images lower
than new normal ones (a memory bank: almost zero), which would shrink its standard
deviation and let it dominate the fusion. The fit records, per member, how many
calibration images it was fitted on (``model_info.calibration`` in results.json). Rules:

* ``mean``: the mean of the members' z-scores ``(s - mean_train) / std_train``;
* ``max``: their maximum (the most alarmed member decides);
* ``rank``: the mean of each member's empirical CDF of its calibration scores (map
  values: the ECDF of its calibration pixels), i.e. "what share of normal calibration
  images scored lower". It saturates at 1 above the largest calibration value;
* ``weighted``: the z-scores averaged with the config's ``weights`` (equal by default;
  never fitted on test labels).

Maps are fused the same way, each member's map resized (bilinear) to the input size
first; a member without maps (image-only) joins the score only. The fused score then gets
the ensemble's own :class:`~adtool.models.postprocess.PostProcessor` thresholds at test
time, like any model's.

Inputs: the ensemble's pipeline resizes images to the largest member input size with no
normalisation (``AnomalyDataPreprocessor`` without mean/std: float 0-255); each member
resizes them to its own pipeline's ``Resize`` size (bilinear, antialiased) and applies its
own data preprocessor's mean/std (and channel order) before its ``outputs``, so a member
differs from its stand-alone run only by that second resampling. A member whose test
pipeline crops, flips or does anything but load, resize and pack is refused.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from adtool.errors import AdtoolError, ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.registry import MODELS

from .normalizer import MemberNormalizer

RULES = ("mean", "max", "rank", "weighted")
#: Pipeline steps that keep the whole image (so a member sees what the ensemble sees).
_KEPT_STEPS = ("LoadAnomalyImage", "LoadAnomalyMask", "Resize", "PackAnomalyInputs")
#: Map values sampled per training image for the map quantiles (a strided sample).
_MAP_SAMPLE_PER_IMAGE = 4096


def member_input_size(cfg: Config, name: str = "member") -> tuple[int, int]:
    """(H, W) that a member's test pipeline resizes to.

    Raises:
        ConfigError: when the pipeline has no ``Resize`` or a step that does not keep
            the whole image (a crop: the member's map would cover part of the image).
    """
    loader = cfg.get("test_dataloader") or {}
    steps = (loader.get("dataset") or {}).get("pipeline") or []
    size = None
    for step in steps:
        kind = step.get("type") if isinstance(step, Mapping) else None
        if kind not in _KEPT_STEPS:
            raise ConfigError(
                f"ensemble member {name}: its test pipeline has a {kind} step; members must "
                f"see whole images ({', '.join(_KEPT_STEPS)} only): use a config without it"
            )
        if kind == "Resize":
            value = step.get("size")
            size = (int(value), int(value)) if isinstance(value, int) else tuple(map(int, value))
    if size is None:
        raise ConfigError(
            f"ensemble member {name}: its test pipeline has no Resize step; add "
            "dict(type='Resize', size=...) so that the ensemble knows its input size"
        )
    return size


def member_training_paths(cfg: Config) -> set[str] | None:
    """The (real) paths of the images a member config's training loader yields, or None
    when its dataset cannot be listed (moved data, a dataset without paths)."""
    from adtool.registry import DATASETS

    loader = cfg.get("train_dataloader") or {}
    spec = loader.get("dataset")
    if not spec:
        return None
    spec = copy.deepcopy(spec.to_dict() if hasattr(spec, "to_dict") else dict(spec))
    spec["pipeline"] = []
    try:
        dataset = DATASETS.build(spec)
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    except (AdtoolError, OSError, KeyError, TypeError, ValueError):
        return None  # recorded as unknown, never fatal
    paths = {info.get("img_path") for info in infos}
    return None if None in paths else {os.path.realpath(str(p)) for p in paths}


def _member_name(spec: Mapping, index: int) -> str:
    name = spec.get("name")
    if name:
        return str(name)
    return os.path.splitext(os.path.basename(str(spec.get("checkpoint", ""))))[0] or str(index)


@MODELS.register_module()
class Ensemble(BaseAnomalyModel):
    """Trained anomaly models whose normalised scores and maps are fused by a rule.

    Args:
        members: ``[dict(config=PATH, checkpoint=PATH, name=...), ...]`` (two or more;
            ``name`` optional), or such lists keyed by category
            (``dict(disk=[...], twill=[...])``, as ``tools/ensemble.py`` writes them):
            then ``category`` picks one, filled in from the data by
            :meth:`settings_from_data` (``--category``, or a checkpoint's dataset meta).
        rule: ``'mean'``, ``'max'``, ``'rank'`` or ``'weighted'``. Defaults to ``'mean'``.
        weights: One non-negative weight per member for ``'weighted'`` (normalised to sum
            to 1); None gives equal weights. Defaults to None.
        category: The category whose members to load when ``members`` is keyed by
            category. Defaults to None.
        map_quantiles: Quantiles kept of each member's training map values (the map
            ECDF of ``'rank'``). Defaults to 1001.
        antialias: Antialias when resizing the input to a smaller member size.
            Defaults to True.
        data_preprocessor: The ensemble's batch builder; it must not normalise (each
            member applies its own mean/std). Defaults to
            ``dict(type='AnomalyDataPreprocessor')``.
        init_cfg: Unused (members come with their weights). Defaults to None.
    """

    #: Members are trained models: never in training mode, never given gradients.
    frozen_parts = ("members",)
    #: Members tile themselves when their own configs say so.
    supports_tiling = False

    def __init__(
        self,
        members: list | dict,
        rule: Literal["mean", "max", "rank", "weighted"] = "mean",
        weights: Sequence[float] | None = None,
        category: str | None = None,
        map_quantiles: int = 1001,
        antialias: bool = True,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="AnomalyDataPreprocessor")
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if getattr(self.data_preprocessor, "_enable_normalize", False):
            raise ConfigError(
                "Ensemble: model.data_preprocessor must not set mean/std (each member "
                "normalises with its own); use dict(type='AnomalyDataPreprocessor')"
            )
        if rule not in RULES:
            raise ConfigError(f"Ensemble: unknown rule '{rule}'; use one of {', '.join(RULES)}")
        specs = self._members_of(members, category)
        self.rule = rule
        self.category = category
        self.antialias = antialias
        self.member_names = [_member_name(s, i) for i, s in enumerate(specs)]
        loaded, sizes, self.member_configs = [], [], []
        for spec, name in zip(specs, self.member_names):
            model, cfg = self._load_member(spec, name)
            loaded.append(model)
            sizes.append(member_input_size(cfg, name))
            self.member_configs.append(cfg)
        self.members = nn.ModuleList(loaded)
        self.members.requires_grad_(False)
        self.member_sizes = sizes
        #: The largest member input size: what the ensemble's pipeline should resize to.
        self.input_size = (max(h for h, _ in sizes), max(w for _, w in sizes))
        # Not saved: the config decides the weights (a checkpoint fits any rule).
        self.register_buffer("weights", self._weights(weights, len(specs)), persistent=False)
        self.normalizer = MemberNormalizer(len(specs), map_quantiles)
        self._collected: list[tuple[torch.Tensor, list]] = []
        self._collected_paths: list[str] = []

    # ------------------------------------------------------------------ building

    @staticmethod
    def _members_of(members: list | dict, category: str | None) -> list[Mapping]:
        if isinstance(members, Mapping):
            if category is None:
                raise ConfigError(
                    "Ensemble: members are given per category "
                    f"({', '.join(map(str, members))}); pass --category NAME"
                )
            if category not in members:
                raise ConfigError(
                    f"Ensemble: no members for category '{category}'; this ensemble has "
                    f"{', '.join(map(str, members))}"
                )
            members = members[category]
        specs = list(members)
        if len(specs) < 2:
            raise ConfigError(
                f"Ensemble: needs two or more members, got {len(specs)}; list "
                "dict(config=..., checkpoint=...) for each"
            )
        for i, spec in enumerate(specs):
            unknown = sorted(
                (set(spec) if isinstance(spec, Mapping) else set())
                - {"config", "checkpoint", "name"}
            )
            if unknown:
                raise ConfigError(
                    f"Ensemble: member {i} has unknown key '{unknown[0]}'; a member takes "
                    "config, checkpoint and name"
                )
            if (
                not isinstance(spec, Mapping)
                or not spec.get("config")
                or not spec.get("checkpoint")
            ):
                raise ConfigError(
                    f"Ensemble: member {i} must be dict(config=PATH, checkpoint=PATH), got {spec!r}"
                )
        return specs

    @staticmethod
    def _load_member(spec: Mapping, name: str):
        # adtool.apis sits above the models; imported when an ensemble is built.
        from adtool.apis.checkpoints import load_model
        from adtool.apis.core import load_config

        cfg = load_config(spec["config"])
        if cfg.get("task", "anomaly") != "anomaly":
            raise ConfigError(f"ensemble member {name}: {spec['config']} is not an anomaly model")
        model, _ = load_model(cfg, spec["checkpoint"])
        if not isinstance(model, BaseAnomalyModel):
            raise ConfigError(
                f"ensemble member {name}: {type(model).__name__} is not an anomaly model"
            )
        return model, cfg

    @staticmethod
    def _weights(weights: Sequence[float] | None, k: int) -> torch.Tensor:
        if weights is None:
            return torch.full((k,), 1.0 / k)
        values = [float(w) for w in weights]
        if len(values) != k or any(w < 0 for w in values) or sum(values) <= 0:
            raise ConfigError(
                f"Ensemble: weights must be {k} non-negative numbers (one per member) with a "
                f"positive sum, got {list(weights)}"
            )
        total = sum(values)
        return torch.tensor([w / total for w in values])

    @classmethod
    def settings_from_data(
        cls, model_cfg: Mapping, dataset_cfg: Mapping, metainfo: Mapping | None = None
    ) -> dict:
        """Model keys the data decides: the category, when members are keyed by category
        (a checkpoint's dataset meta first, else the dataset config's category)."""
        if not isinstance(model_cfg.get("members"), Mapping):
            return {}
        category = (metainfo or {}).get("category") or dataset_cfg.get("category")
        return {} if category is None else {"category": str(category)}

    def train(self, mode: bool = True) -> Ensemble:
        super().train(mode)
        self.members.eval()
        return self

    # ------------------------------------------------------------------ members

    def member_outputs(
        self, index: int, inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Member ``index``'s (B,) scores and (B, H, W) maps (None: image-only) of a
        (B, 3, H, W) float 0-255 batch: resized to its input size, normalised its way;
        maps resized back to (H, W)."""
        member = self.members[index]
        size = tuple(inputs.shape[-2:])
        x = inputs
        if tuple(self.member_sizes[index]) != size:
            x = F.interpolate(
                x,
                size=self.member_sizes[index],
                mode="bilinear",
                align_corners=False,
                antialias=self.antialias,
            )
        pre = member.data_preprocessor
        if getattr(pre, "_channel_conversion", False):
            x = x[:, [2, 1, 0], ...]
        if getattr(pre, "_enable_normalize", False):
            x = (x - pre.mean) / pre.std
        scores, maps = member.outputs(x)
        scores = scores.reshape(-1).float()
        if maps is not None:
            maps = maps.float()
            if tuple(maps.shape[-2:]) != size:
                maps = F.interpolate(
                    maps[:, None], size=size, mode="bilinear", align_corners=False
                )[:, 0]
        return scores, maps

    def all_member_outputs(self, inputs: torch.Tensor):
        """(K, B) member scores and the K maps (each (B, H, W) or None)."""
        outs = [self.member_outputs(k, inputs) for k in range(len(self.members))]
        return torch.stack([s for s, _ in outs]), [m for _, m in outs]

    # ------------------------------------------------------------------ fusion

    def fuse_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """(K, B) raw member scores -> (B,) fused score by the rule."""
        norm = self.normalizer
        if self.rule == "rank":
            return norm.score_ranks(scores).mean(0)
        z = norm.z_scores(scores)
        if self.rule == "max":
            return z.amax(0)
        if self.rule == "weighted":
            return (self.weights[:, None] * z).sum(0)
        return z.mean(0)

    def fuse_maps(self, maps: list[torch.Tensor | None]) -> torch.Tensor | None:
        """K raw member maps ((B, H, W) or None) -> (B, H, W) fused map by the rule."""
        kept = [(k, m) for k, m in enumerate(maps) if m is not None]
        if not kept:
            return None
        norm = self.normalizer
        if self.rule == "rank":
            return torch.stack([norm.map_ranks(k, m) for k, m in kept]).mean(0)
        z = torch.stack([norm.z_maps(k, m) for k, m in kept])
        if self.rule == "max":
            return z.amax(0)
        if self.rule == "weighted":
            w = self.weights[[k for k, _ in kept]]
            return (w[:, None, None, None] * z).sum(0) / w.sum().clamp_min(1e-12)
        return z.mean(0)

    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, H, W) float 0-255 images -> fused scores (B,) and maps (B, H, W)."""
        if not bool(self.normalizer.fitted):
            raise ConfigError(
                "Ensemble has no training statistics; run tools/train.py on its config (the "
                "fit computes them) or load the checkpoint that run wrote"
            )
        scores, maps = self.all_member_outputs(inputs)
        return self.fuse_scores(scores), self.fuse_maps(maps)

    # ------------------------------------------------------------------ fit (FitLoop)

    @torch.no_grad()
    def fit_step(self, data_batch: dict) -> None:
        """Keep the members' scores and map statistics on one batch of training images."""
        data = self.data_preprocessor(data_batch, False)
        scores, maps = self.all_member_outputs(data["inputs"])
        summaries = []
        for m in maps:
            if m is None:
                summaries.append(None)
                continue
            flat = m.double().flatten(1)
            step = max(1, flat.shape[1] // _MAP_SAMPLE_PER_IMAGE)
            summaries.append(
                (float(flat.sum()), float((flat * flat).sum()), flat.numel(), flat[:, ::step])
            )
        self._collected.append((scores.cpu(), summaries))
        for sample in data_batch.get("data_samples") or []:
            path = getattr(sample, "img_path", None)
            if path is not None:
                self._collected_paths.append(os.path.realpath(str(path)))

    def fit(self) -> None:
        """Fit the normaliser on everything :meth:`fit_step` kept (the calibration images)
        and record how many of them each member was fitted on."""
        if not self._collected:
            raise RuntimeError("Ensemble.fit() called before any fit_step")
        batches, self._collected = self._collected, []
        paths, self._collected_paths = set(self._collected_paths), []
        scores = torch.cat([s for s, _ in batches], dim=1)
        k = len(self.members)
        sums, samples = [], []
        for i in range(k):
            parts = [b[1][i] for b in batches]
            if any(p is None for p in parts):
                sums.append(None)
                samples.append(None)
                continue
            sums.append(
                (sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts))
            )
            samples.append(torch.cat([p[3].flatten() for p in parts]).float())
        self.normalizer.fit(list(scores), sums, samples)
        member_paths = [member_training_paths(cfg) for cfg in self.member_configs]
        self.normalizer.set_calibration(
            scores.shape[1] if not paths else len(paths),
            [None if p is None else len(p) for p in member_paths],
            [None if p is None or not paths else len(p & paths) for p in member_paths],
        )

    def results_info(self) -> dict:
        """What the ensemble's numbers depend on (written into results.json)."""
        return {
            "rule": self.rule,
            "category": self.category,
            "members": [
                {"name": n, "input_size": list(s), "weight": float(w)}
                for n, s, w in zip(self.member_names, self.member_sizes, self.weights)
            ],
            "calibration": self.normalizer.calibration(),
        }
