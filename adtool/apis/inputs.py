"""The images an inference run reads: the one input lister of ``adtool.apis``.

Layer 1 (imports no other apis module); :mod:`~adtool.apis.inference` (anomaly models)
and :mod:`~adtool.apis.tasks` (HuggingFace task models) both list their inputs here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from adtool.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def list_inputs(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    exclude: str | os.PathLike | None = None,
) -> list[Path]:
    """Image files: each file as given, each folder's images recursively, sorted.

    Hidden files and folders (``.name``) inside an input folder are skipped.

    Args:
        inputs: Image files and/or folders.
        exclude: A folder whose images are skipped when found in an input folder (the
            output folder, so that a rerun does not score its own overlays). Defaults to
            None.

    Raises:
        DataError: for a missing path, a file that is not an image, or no image at all.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    skip = Path(exclude) if exclude is not None else None
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and not (skip is not None and _inside(p, skip))
            )
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{path} is not an image ({', '.join(IMAGE_EXTENSIONS)}); pass images or "
                    "a folder"
                )
            found.append(path)
        else:
            raise DataError(f"input {path} not found; pass an image file or a folder of images")
    if not found:
        raise DataError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {', '.join(map(str, inputs))}"
        )
    return found


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output names: the file stem, or ``<folder>_<stem>`` where stems repeat (then a
    counter if even those repeat)."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.stem] = counts.get(path.stem, 0) + 1
    names, used = [], set()
    for p in paths:
        name = p.stem if counts[p.stem] == 1 else f"{p.parent.name}_{p.stem}"
        base, k = name, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names.append(name)
    return names
