"""Distributed runs: start torch.distributed, gather samples to the main process, share state.

A run started by ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh`` (srun) sets
``cfg.launcher`` to ``'pytorch'`` or ``'slurm'``. :func:`prepare_config` then starts the
process group before mmengine's runner is built (mmengine's own start-up calls
``torch.cuda.set_device`` and so fails on a CPU-only machine), with nccl when CUDA is
available and gloo otherwise, and adds mmengine's ``SyncBuffersHook`` so that every rank
tests with the same batch-norm statistics.

mmengine's ``DefaultSampler`` gives rank ``r`` the samples ``r, r + W, r + 2W, ...`` of the
(shuffled) order, padded with the first samples so every rank holds as many;
:func:`gather_to_main` undoes both, so the main process sees each sample once, in the
order a one-process run sees them. Results are gathered by message passing
(``gather_object``): no shared folder is needed and nothing is left in the working folder.
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
from collections.abc import Hashable, Sequence
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.dist import (
    broadcast_object_list,
    gather_object,
    get_rank,
    get_world_size,
    is_main_process,
)
from mmengine.logging import print_log
from torch import nn

from adtool.errors import ConfigError

LAUNCHERS = ("none", "pytorch", "slurm")


def default_backend() -> str:
    """``'nccl'`` when CUDA is available, else ``'gloo'``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def slurm_environment(
    environ: dict[str, str], first_host: str | None = None, port: int | None = None
) -> dict[str, str]:
    """torch.distributed's ``env://`` variables for a task started by ``srun``.

    Args:
        environ: The task's environment (``SLURM_PROCID``, ``SLURM_NTASKS``,
            ``SLURM_LOCALID``, ``SLURM_NODELIST``).
        first_host: The job's first node, which hosts the rendezvous. Defaults to None
            (asked of ``scontrol show hostnames``).
        port: Rendezvous port. Defaults to None (``MASTER_PORT`` if set, else 29500).

    Returns:
        ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
    """
    missing = [k for k in ("SLURM_PROCID", "SLURM_NTASKS") if k not in environ]
    if missing:
        raise ConfigError(
            f"--launcher slurm needs {', '.join(missing)} in the environment; start the run "
            "with srun (tools/slurm_train.sh) or use --launcher pytorch with torchrun"
        )
    if "MASTER_ADDR" in environ:
        addr = environ["MASTER_ADDR"]
    elif first_host is not None:
        addr = first_host
    else:
        nodes = environ.get("SLURM_NODELIST", "")
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True
        )
        addr = out.stdout.split()[0]
    return {
        "RANK": environ["SLURM_PROCID"],
        "WORLD_SIZE": environ["SLURM_NTASKS"],
        "LOCAL_RANK": environ.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": addr,
        "MASTER_PORT": str(port or environ.get("MASTER_PORT", 29500)),
    }


def init_distributed(launcher: str, dist_cfg: dict | None = None) -> str | None:
    """Start the default process group once (a no-op for ``'none'`` or when started).

    Args:
        launcher: ``'none'``, ``'pytorch'`` (torchrun's environment) or ``'slurm'``.
        dist_cfg: ``env_cfg.dist_cfg``: ``backend`` (default: :func:`default_backend`),
            ``timeout`` in seconds, ``port`` (slurm). Defaults to None.

    Returns:
        The backend in use, or None for a one-process run.

    Raises:
        ConfigError: for an unknown launcher or a launcher without its environment.
    """
    if launcher not in LAUNCHERS:
        raise ConfigError(f"unknown launcher '{launcher}'; use one of {', '.join(LAUNCHERS)}")
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_backend()
    if launcher == "none":
        return None
    dist_cfg = dict(dist_cfg or {})
    if launcher == "slurm":
        os.environ.update(slurm_environment(dict(os.environ), port=dist_cfg.get("port")))
    missing = [
        k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
    ]
    if missing:
        raise ConfigError(
            f"--launcher {launcher} needs {', '.join(missing)} in the environment; start the "
            "run with tools/dist_train.sh (torchrun) or leave --launcher at none"
        )
    backend = dist_cfg.get("backend") or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    kwargs = {}
    if dist_cfg.get("timeout") is not None:
        kwargs["timeout"] = datetime.timedelta(seconds=float(dist_cfg["timeout"]))
    torch_dist.init_process_group(backend=backend, **kwargs)
    return backend


def prepare_config(cfg) -> None:
    """Start the process group of ``cfg.launcher`` and adapt ``cfg`` to the world size.

    Records the backend in ``cfg.env_cfg.dist_cfg`` (so the written config.py tells) and,
    with more than one process, adds ``SyncBuffersHook``: each rank sees its own share of
    the data, so batch-norm running statistics would otherwise differ between ranks
    (mmengine averages them at the end of every epoch).
    """
    launcher = cfg.get("launcher", "none")
    env_cfg = cfg.setdefault("env_cfg", {})
    backend = init_distributed(launcher, env_cfg.get("dist_cfg"))
    if backend is None:
        return
    env_cfg.setdefault("dist_cfg", {})["backend"] = backend
    hooks = cfg.setdefault("custom_hooks", [])
    if get_world_size() > 1 and not any(h.get("type") == "SyncBuffersHook" for h in hooks):
        hooks.append(dict(type="SyncBuffersHook"))


def main_value(value: Any) -> Any:
    """The main process's ``value``, on every rank (e.g. a name built from the clock)."""
    if get_world_size() == 1:
        return value
    box = [value]
    broadcast_object_list(box, src=0)
    return box[0]


def ddp_wrapper_cfg(model: nn.Module, find_unused_parameters: bool = False) -> dict | None:
    """The ``model_wrapper_cfg`` of a distributed run, or None to leave ``model`` unwrapped.

    A model with no trainable parameter (a memory bank, a Gaussian fit) has no gradient to
    average, and torch's ``DistributedDataParallel`` refuses such a module. On the CPU,
    DDP takes no ``device_ids``; on CUDA mmengine's default (``LOCAL_RANK``) applies.
    """
    if not any(p.requires_grad for p in model.parameters()):
        return None
    cfg = dict(
        type="MMDistributedDataParallel",
        broadcast_buffers=False,
        find_unused_parameters=find_unused_parameters,
    )
    if not torch.cuda.is_available():
        cfg["device_ids"] = None
    return cfg


def _interleave(parts: Sequence[Sequence[Any]]) -> list:
    """Per-rank shares of a strided split -> one list in the sampler's order."""
    longest = max((len(p) for p in parts), default=0)
    return [part[i] for i in range(longest) for part in parts if i < len(part)]


def drop_padding(items: list, keys: Sequence[Hashable | None], world_size: int) -> list:
    """Drop the tail that mmengine's ``DefaultSampler`` repeats so every rank gets as many.

    The padded order is the real order followed by its first ``p < world_size`` samples
    again; the largest such ``p`` whose keys (image paths) repeat the head is dropped.
    Without keys nothing can be told apart and ``items`` comes back whole.
    """
    if len(items) != len(keys):
        raise ValueError(f"{len(items)} items but {len(keys)} keys")
    n = len(items)
    for p in range(min(world_size - 1, n - 1), 0, -1):
        head, tail = keys[:p], keys[n - p :]
        if None not in tail and list(tail) == list(head):
            return items[: n - p]
    return items


def gather_to_main(
    items: list, size: int | None = None, keys: Sequence[Hashable | None] | None = None
) -> list | None:
    """Every rank's ``items`` (its share of a ``DefaultSampler`` split) on the main process.

    Args:
        items: This rank's per-sample items, in its loader's order.
        size: Length of the dataset: the sampler's padding beyond it is dropped. Defaults
            to None (then ``keys`` tell the padding, see :func:`drop_padding`).
        keys: One hashable per item (e.g. the image path). Defaults to None.

    Returns:
        On the main process, each sample's item once in the one-process order; None on
        the other ranks. One process: ``items`` itself (cut to ``size``).
    """
    world_size = get_world_size()
    if world_size == 1:
        return list(items) if size is None else list(items)[:size]
    payload = list(items) if keys is None else list(zip(keys, items))
    parts = gather_object(payload, dst=0)
    if get_rank() != 0:
        return None
    merged = _interleave(parts)
    if size is not None:
        merged = merged[:size]
    if keys is None:
        return merged
    merged_keys = [k for k, _ in merged]
    if None in merged_keys:
        print_log(
            "samples without an img_path: the sampler's padding cannot be told apart, so up "
            f"to {world_size - 1} samples may count twice",
            logger="current",
            level=logging.WARNING,
        )
    return drop_padding([item for _, item in merged], merged_keys, world_size)


def broadcast_buffers(module: nn.Module) -> None:
    """Load the main process's buffers (a fitted memory bank, statistics) on every rank.

    A buffer's shape may differ between ranks before (a bank is sized by fitting); the
    modules that hold such buffers take the incoming shape when loading.
    """
    if get_world_size() == 1:
        return
    names = {name for name, _ in module.named_buffers()}
    box = [None]
    if is_main_process():
        box[0] = {k: v.cpu() for k, v in module.state_dict().items() if k in names}
    broadcast_object_list(box, src=0)
    if not is_main_process():
        result = module.load_state_dict(box[0], strict=False)
        if result.unexpected_keys:
            raise RuntimeError(
                f"rank {get_rank()} has no buffers {result.unexpected_keys[:3]} of the main "
                "process: the ranks built different models"
            )
