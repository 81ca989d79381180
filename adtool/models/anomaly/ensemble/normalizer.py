"""Per-member statistics of normal training images, and the maps onto a common scale.

An ensemble can only fuse scores that mean the same thing: a PatchCore distance, a PaDiM
Mahalanobis distance and a flow's negative log-likelihood differ in scale and offset.
:class:`MemberNormalizer` keeps, for each of the K members and as buffers (so an ensemble
checkpoint carries them), what the members gave on the NORMAL TRAINING images:

* image scores: their mean and standard deviation, and the sorted scores themselves
  (the empirical CDF of the ``rank`` rule);
* map values: their mean and standard deviation over every pixel, and ``map_quantiles``
  evenly spaced quantiles of a strided sample of the pixels (the ECDF of map values,
  linear between the quantiles).

It also keeps what the statistics were computed on (the calibration): how many images,
how many images each member was fitted on, and how many of the calibration images each
member was fitted on (0 for every member: held-out images; -1: unknown).

Nothing here sees a test image or a label.
"""

from __future__ import annotations

import torch
from torch import nn

#: A standard deviation below this (a member that scores every training image alike)
#: counts as this, so that a z-score stays finite.
MIN_STD = 1e-12


class MemberNormalizer(nn.Module):
    """Training-image statistics of K members; z-scores and ECDF ranks from them.

    Args:
        num_members: K.
        map_quantiles: Quantiles kept of each member's training map values (the map ECDF).
            Defaults to 1001 (steps of 0.1 %).
    """

    def __init__(self, num_members: int, map_quantiles: int = 1001) -> None:
        super().__init__()
        self.num_members = num_members
        self.map_quantiles = map_quantiles
        self.register_buffer("score_mean", torch.zeros(num_members))
        self.register_buffer("score_std", torch.ones(num_members))
        self.register_buffer("map_mean", torch.zeros(num_members))
        self.register_buffer("map_std", torch.ones(num_members))
        # (K, N) sorted training scores; (K, Q) quantiles of training map values. Their
        # sizes are known after fitting only: a checkpoint's shape is taken on load.
        self.register_buffer("train_scores", torch.zeros(num_members, 0))
        self.register_buffer("map_table", torch.zeros(num_members, 0))
        self.register_buffer("fitted", torch.tensor(False))
        # What the statistics were computed on (-1: unknown, e.g. an older checkpoint).
        self.register_buffer("calibration_images", torch.tensor(-1))
        self.register_buffer("member_images", torch.full((num_members,), -1))
        self.register_buffer("shared_images", torch.full((num_members,), -1))

    # ------------------------------------------------------------------ fitting

    @torch.no_grad()
    def fit(
        self,
        scores: list[torch.Tensor],
        map_sums: list[tuple[float, float, int]] | None = None,
        map_samples: list[torch.Tensor] | None = None,
    ) -> None:
        """Set the statistics from what each member gave on the training images.

        Args:
            scores: Per member, its (N,) training image scores.
            map_sums: Per member, ``(sum, sum of squares, count)`` of all its training map
                values (float64 sums), or None for a member without maps.
            map_samples: Per member, a sample of its training map values (the quantiles
                are taken from it), or None for a member without maps.
        """
        if len(scores) != self.num_members:
            raise ValueError(f"{len(scores)} score lists for {self.num_members} members")
        n = min(len(s) for s in scores)
        stacked = torch.stack([s.double().flatten()[:n] for s in scores])
        self.train_scores = stacked.sort(dim=1).values.float()
        self.score_mean.copy_(stacked.mean(1).float())
        std = stacked.std(1, unbiased=False) if n > 1 else torch.zeros(self.num_members)
        self.score_std.copy_(std.clamp_min(MIN_STD).float())
        tables = torch.zeros(self.num_members, self.map_quantiles)
        q = torch.linspace(0, 1, self.map_quantiles, dtype=torch.float64)
        for k in range(self.num_members):
            sums = None if map_sums is None else map_sums[k]
            sample = None if map_samples is None else map_samples[k]
            if sums is None or sample is None or sums[2] == 0:
                continue
            total, squares, count = sums
            mean = total / count
            var = max(squares / count - mean * mean, 0.0)
            self.map_mean[k] = mean
            self.map_std[k] = max(var**0.5, MIN_STD)
            tables[k] = torch.quantile(sample.double().flatten(), q).float()
        self.map_table = tables
        self.fitted.fill_(True)

    @torch.no_grad()
    def set_calibration(
        self, images: int, member_images: list[int | None], shared: list[int | None]
    ) -> None:
        """Record the calibration: ``images`` images; per member, the images it was fitted
        on and how many of the calibration images are among them (None: unknown)."""
        self.calibration_images.fill_(int(images))
        for k in range(self.num_members):
            self.member_images[k] = -1 if member_images[k] is None else int(member_images[k])
            self.shared_images[k] = -1 if shared[k] is None else int(shared[k])

    def calibration(self) -> dict:
        """``{'kind', 'images', 'member_training_images', 'shared_with_members'}``: kind is
        ``'holdout'`` when no member was fitted on any calibration image, ``'train'`` when
        every member was fitted on all of them, ``'mixed'`` between, ``'unknown'`` when a
        member's training images could not be listed (counts of -1 become None)."""
        n = int(self.calibration_images)
        seen = [int(v) for v in self.shared_images]
        if n < 0 or any(v < 0 for v in seen):
            kind = "unknown"
        elif all(v == 0 for v in seen):
            kind = "holdout"
        elif all(v == n for v in seen):
            kind = "train"
        else:
            kind = "mixed"
        known = lambda v: None if v < 0 else v  # noqa: E731
        return {
            "kind": kind,
            "images": known(n),
            "member_training_images": [known(int(v)) for v in self.member_images],
            "shared_with_members": [known(v) for v in seen],
        }

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The tables' sizes are only known after fitting: take the checkpoint's shapes.
        for name in ("train_scores", "map_table"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
        # Checkpoints written before the calibration was recorded: unknown.
        for name in ("calibration_images", "member_images", "shared_images"):
            state_dict.setdefault(prefix + name, torch.full_like(getattr(self, name), -1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ scales

    def z_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """(K, B) member scores -> ``(s - mean) / std`` of each member's training scores."""
        return (scores - self.score_mean[:, None]) / self.score_std[:, None]

    def z_maps(self, k: int, maps: torch.Tensor) -> torch.Tensor:
        """Member ``k``'s (B, H, W) maps -> ``(m - mean) / std`` of its training map values."""
        return (maps - self.map_mean[k]) / self.map_std[k]

    def score_ranks(self, scores: torch.Tensor) -> torch.Tensor:
        """(K, B) member scores -> ECDF of each member's training scores: the share of
        training scores ``<= s`` (0 below all, 1 at or above the largest)."""
        below = self.train_scores[:, None, :] <= scores[:, :, None]  # (K, B, N)
        return below.float().mean(-1)

    def map_ranks(self, k: int, maps: torch.Tensor) -> torch.Tensor:
        """Member ``k``'s (B, H, W) maps -> ECDF of its training map values, linear
        between the stored quantiles (0 at or below the smallest, 1 at or above the
        largest)."""
        table = self.map_table[k].contiguous()
        q = table.numel()
        flat = maps.contiguous().flatten()
        right = torch.searchsorted(table, flat, right=True).clamp(1, q - 1)
        lo, hi = table[right - 1], table[right]
        frac = ((flat - lo) / (hi - lo).clamp_min(MIN_STD)).clamp(0, 1)
        ranks = (right - 1 + frac) / (q - 1)
        ranks = torch.where(flat >= table[-1], torch.ones_like(ranks), ranks)
        ranks = torch.where(flat <= table[0], torch.zeros_like(ranks), ranks)
        return ranks.view_as(maps)
