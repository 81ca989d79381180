"""Training caches: a frozen network's outputs per sample, and the decoded images.

Without a random train transform, a training image reaches the model identical every
epoch, so what a frozen network computes from it (STFPM's teacher, FastFlow's extractor)
and what the deterministic head of the pipeline makes of it (decoding, resizing) are the
same every epoch too. :class:`FrozenFeatureCache` keeps the first; :class:`DecodeCache`
the second. :class:`~adtool.engine.hooks.TrainingCacheHook` decides and attaches both; the
config's top-level ``feature_cache`` and ``decode_cache`` dicts bound their memory.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
import torch

from adtool.errors import ConfigError

#: Defaults of the config's ``feature_cache`` / ``decode_cache`` dicts.
FEATURE_CACHE_DEFAULTS = dict(enabled="auto", max_memory_mb=2048, spill_dir=None)
DECODE_CACHE_DEFAULTS = dict(enabled="auto", max_memory_mb=1024)

_MB = 1024 * 1024


def cache_options(name: str, value, defaults: dict) -> dict:
    """The config's ``name`` dict merged over ``defaults``, checked (one-line ConfigError).

    ``value`` may be None (the defaults), a bool (shorthand for ``enabled``) or a dict.
    """
    if value is None:
        value = {}
    elif isinstance(value, bool):
        value = dict(enabled=value)
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a dict like {defaults}, got {value!r}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ConfigError(f"{name} has no key {unknown[0]!r}; its keys are {sorted(defaults)}")
    options = dict(defaults, **value)
    if options["enabled"] not in ("auto", True, False):
        raise ConfigError(
            f"{name}.enabled must be 'auto', True or False, got {options['enabled']!r}"
        )
    limit = options["max_memory_mb"]
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
        raise ConfigError(f"{name}.max_memory_mb must be a number >= 0 (MB), got {limit!r}")
    return options


# ---------------------------------------------------------------------- pipelines


def pipeline_transforms(dataset) -> list | None:
    """The transforms of a dataset's pipeline (mmengine ``Compose``), None if unknown.

    A ``ConcatDataset`` (multi-class training) gives its datasets' transforms together; a
    wrapper with one ``dataset`` gives that one's.
    """
    datasets = getattr(dataset, "datasets", None)
    if datasets is not None:
        found = [pipeline_transforms(d) for d in datasets]
        return None if any(t is None for t in found) else [t for ts in found for t in ts]
    if not hasattr(dataset, "pipeline") and hasattr(dataset, "dataset"):
        return pipeline_transforms(dataset.dataset)
    transforms = getattr(getattr(dataset, "pipeline", None), "transforms", None)
    return None if transforms is None else list(transforms)


def first_random_transform(transforms: Sequence) -> str | None:
    """The name of the first transform that is or may be random, None if all are not.

    A transform declares itself with a class attribute ``random`` (adtool's all do); one
    without it counts as random, since its outputs cannot be assumed to repeat.
    """
    for transform in transforms:
        if getattr(transform, "random", True) is not False:
            return type(transform).__name__
    return None


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 0


class DecodeCache:
    """A dataset pipeline that runs its deterministic head once per sample.

    The head is the leading transforms with ``random = False`` (loading, resizing,
    cropping), never the last transform (the packer, whose tensors and data sample are
    cheap to make and would otherwise be shared between epochs). Its result dict is kept
    per ``sample_idx`` (mmengine's dataset index) while the cached arrays fit in
    ``max_bytes``; later samples are decoded every epoch as before. Each call returns a
    deep copy, so the rest of the pipeline may change it freely.

    Args:
        pipeline: The dataset's ``Compose``.
        max_bytes: Bound on the cached arrays' bytes.
    """

    def __init__(self, pipeline, max_bytes: int) -> None:
        self.pipeline = pipeline
        transforms = list(pipeline.transforms)
        n = 0
        while n < len(transforms) - 1 and getattr(transforms[n], "random", True) is False:
            n += 1
        self.head, self.tail = transforms[:n], transforms[n:]
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.full = False
        self._store: dict[int, dict] = {}

    @property
    def transforms(self) -> list:
        return self.head + self.tail

    def __len__(self) -> int:
        return len(self._store)

    def __call__(self, data: dict) -> dict | None:
        key = data.get("sample_idx")
        cached = None if key is None else self._store.get(key)
        if cached is not None:
            data = copy.deepcopy(cached)
        else:
            for t in self.head:
                data = t(data)
                if data is None:
                    return None
            size = _nbytes(data)
            if key is not None and not self.full and self.nbytes + size <= self.max_bytes:
                self._store[key] = copy.deepcopy(data)
                self.nbytes += size
            elif key is not None:
                self.full = True
        for t in self.tail:
            data = t(data)
            if data is None:
                return None
        return data

    def __repr__(self) -> str:
        return f"DecodeCache(head={self.head}, tail={self.tail}, cached={len(self)})"


def cacheable_datasets(dataset) -> list:
    """The datasets whose ``pipeline`` a :class:`DecodeCache` can take (with ``Compose``)."""
    if hasattr(dataset, "datasets"):
        return [d for sub in dataset.datasets for d in cacheable_datasets(sub)]
    if not hasattr(dataset, "pipeline") and hasattr(dataset, "dataset"):
        return cacheable_datasets(dataset.dataset)
    return [dataset] if hasattr(getattr(dataset, "pipeline", None), "transforms") else []


# ---------------------------------------------------------------------- frozen features


class FrozenFeatureCache:
    """Per-sample outputs of a model's frozen part, in memory then in memory-mapped files.

    The model's ``frozen_features(inputs)`` returns a tensor or a list/tuple of tensors,
    each with the batch first; the cache stores every sample's rows under its key (the
    image path, with the tile index under tiling). :meth:`features` returns a batch's
    features: computed (and stored) for samples it has not seen, read for the others.
    While the stored rows fit in ``max_bytes`` they stay in memory; past it they go to
    ``numpy.memmap`` files in a temporary folder under ``spill_dir``, removed by
    :meth:`close` (or when the cache is collected).

    Args:
        max_bytes: Bound on the rows kept in memory.
        spill_dir: Folder for the memory-mapped files. Defaults to the system's temp dir.
        chunk_rows: Samples per memory-mapped file. Defaults to 256.
    """

    def __init__(
        self, max_bytes: int, spill_dir: str | Path | None = None, chunk_rows: int = 256
    ) -> None:
        self.max_bytes = max_bytes
        self.spill_dir = spill_dir
        self.chunk_rows = chunk_rows
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._kind: type | None = None  # tensor, list or tuple: what the model returns
        self._layout: list[tuple[tuple[int, ...], torch.dtype]] | None = None
        self._ram: dict[Hashable, list[torch.Tensor]] = {}
        self._spilled: dict[Hashable, tuple[int, int]] = {}  # key -> (chunk, row)
        self._chunks: list[list[np.memmap]] = []
        self._chunk_fill = 0
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __len__(self) -> int:
        return len(self._ram) + len(self._spilled)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._ram or key in self._spilled

    @property
    def spilled(self) -> int:
        """How many samples live in memory-mapped files."""
        return len(self._spilled)

    def features(
        self,
        keys: Sequence[Hashable],
        inputs: torch.Tensor,
        compute: Callable[[torch.Tensor], torch.Tensor | Sequence[torch.Tensor]],
    ):
        """The frozen features of the batch ``inputs`` whose samples are ``keys``.

        A batch of unseen samples is computed as one batch and returned as computed (the
        first epoch is exactly the uncached one); seen samples are read back, unseen ones
        among them computed as a smaller batch.
        """
        missing = [i for i, key in enumerate(keys) if key not in self]
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if len(missing) == len(keys):
            computed = compute(inputs)
            self._store(keys, computed)
            return computed
        if missing:
            self._store([keys[i] for i in missing], compute(inputs[missing]))
        levels = zip(*(self._read(key) for key in keys))
        stacked = [torch.stack(rows).to(inputs.device) for rows in levels]
        if self._kind is torch.Tensor:
            return stacked[0]
        return self._kind(stacked)

    def _store(self, keys: Sequence[Hashable], computed) -> None:
        levels = [computed] if isinstance(computed, torch.Tensor) else list(computed)
        if self._kind is None:
            self._kind = torch.Tensor if isinstance(computed, torch.Tensor) else type(computed)
            self._layout = [(tuple(t.shape[1:]), t.dtype) for t in levels]
        for i, key in enumerate(keys):
            if key in self:  # a sample twice in one batch (a distributed sampler's padding)
                continue
            rows = [level[i].detach().cpu().clone() for level in levels]
            size = sum(r.numel() * r.element_size() for r in rows)
            if self.nbytes + size <= self.max_bytes:
                self._ram[key] = rows
                self.nbytes += size
            else:
                self._spill(key, rows)

    def _spill(self, key: Hashable, rows: list[torch.Tensor]) -> None:
        if self._tmp is None:
            if self.spill_dir is not None:
                Path(self.spill_dir).mkdir(parents=True, exist_ok=True)
            self._tmp = tempfile.TemporaryDirectory(prefix="feature_cache_", dir=self.spill_dir)
        if not self._chunks or self._chunk_fill == self.chunk_rows:
            c = len(self._chunks)
            self._chunks.append(
                [
                    np.memmap(
                        Path(self._tmp.name) / f"chunk{c}_level{level}.npy",
                        dtype=torch.empty((), dtype=dtype).numpy().dtype,
                        mode="w+",
                        shape=(self.chunk_rows, *shape),
                    )
                    for level, (shape, dtype) in enumerate(self._layout)
                ]
            )
            self._chunk_fill = 0
        chunk = len(self._chunks) - 1
        for memmap, row in zip(self._chunks[chunk], rows):
            memmap[self._chunk_fill] = row.numpy()
        self._spilled[key] = (chunk, self._chunk_fill)
        self._chunk_fill += 1

    def _read(self, key: Hashable) -> list[torch.Tensor]:
        rows = self._ram.get(key)
        if rows is not None:
            return rows
        chunk, row = self._spilled[key]
        return [torch.from_numpy(np.array(m[row])) for m in self._chunks[chunk]]

    def close(self) -> None:
        """Drop every row and delete the memory-mapped files."""
        self._ram.clear()
        self._spilled.clear()
        self._chunks = []
        self.nbytes = 0
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def sample_keys(data_samples) -> list[tuple] | None:
    """Cache keys of a (possibly tiled) training batch: (img_path, tile_index) per sample.

    None when a sample has no ``img_path`` (the batch is then not cached).
    """
    if not data_samples:
        return None
    keys = []
    for sample in data_samples:
        path = sample.metainfo.get("img_path") if sample is not None else None
        if path is None:
            return None
        keys.append((str(path), sample.metainfo.get("tile_index")))
    return keys
