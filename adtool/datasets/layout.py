"""Which dataset layout a data folder holds, so that ``--data-root`` alone picks the preset.

:func:`detect_layout` looks at the folder tree only (no image is read) and returns the
short name of the dataset preset (``configs/_base_/datasets/<name>.py``) whose layout it
finds, the category folder it was found in (or None), and a one-line description. The
checks, in order:

- VisA: ``<root>/split_csv/`` (the release's split files);
- MVTec AD (and the generated sample data): ``<root>/<category>/train/good`` and
  ``<root>/<category>/test/``;
- BTAD: ``<root>/<category>/train/ok``;
- Folder: ``<root>/<category>/good/`` (with ``defect/`` and ``masks/`` when there are
  defects and masks); a ``<root>/good/`` folder is the category ``<root>`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from adtool.errors import DataError

from .base import list_subdirs

#: The expected trees, shown when a folder matches none of them.
EXPECTED_TREES = (
    "MVTec <root>/<category>/{train/good, test/<defect>, ground_truth/<defect>}",
    "VisA <root>/{split_csv/1cls.csv, <category>/...}",
    "BTAD <root>/<category>/{train/ok, test/ok, test/ko, ground_truth/ko}",
    "Folder <root>/<category>/{good, defect[/<defect_type>], masks (optional)}",
)


class Layout(NamedTuple):
    """A recognised layout: the preset name, the root to read and the category found."""

    dataset: str
    data_root: Path
    category: str | None
    description: str
    #: Category folders of that layout found under ``data_root`` (empty for VisA, whose
    #: categories are the split file's).
    categories: tuple[str, ...] = ()


def _is_mvtec(folder: Path) -> bool:
    return (folder / "train" / "good").is_dir() and (folder / "test").is_dir()


def _is_btad(folder: Path) -> bool:
    return (folder / "train" / "ok").is_dir()


def _is_folder(folder: Path) -> bool:
    return (folder / "good").is_dir()


_CHECKS = (
    ("mvtec", _is_mvtec, "MVTec (train/good + test/)"),
    ("btad", _is_btad, "BTAD (train/ok)"),
    ("folder", _is_folder, "Folder (good/ + defect/)"),
)


def detect_layout(data_root: str | Path, category: str | None = None) -> Layout:
    """The dataset layout under ``data_root`` (see the module docstring).

    Args:
        data_root: The folder given as ``--data-root``.
        category: The category asked for (one name), or None to look at every
            sub-folder. Defaults to None.

    Returns:
        The :class:`Layout`. ``category`` is the asked one, else None (every category
        of that layout), except for a Folder given as the category folder itself
        (``<root>/good``): then ``data_root`` is its parent and ``category`` its name.

    Raises:
        DataError: one line with the expected trees when no layout matches.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataError(
            f"data root {root} does not exist; pass --data-root pointing at your data folder"
        )
    if (root / "split_csv").is_dir():
        return Layout("visa", root, category, "VisA (split_csv/)")
    candidates = [root / category] if category else list_subdirs(root)
    for name, check, text in _CHECKS:
        found = tuple(folder.name for folder in candidates if check(folder))
        if found:
            if name == "folder" and not any((root / c / "defect").is_dir() for c in found):
                text = "Folder (good/ only: normal-only)"
            return Layout(name, root, category, text, found)
    if not category and _is_folder(root):
        # --data-root mydata/mybrick: the category folder itself.
        here = root.resolve()
        text = "Folder (good/ + defect/)" if (here / "defect").is_dir() else "Folder (good/ only)"
        return Layout("folder", here.parent, here.name, text, (here.name,))
    where = root / category if category else root
    raise DataError(
        f"no known data layout in {where}; expected one of: {' | '.join(EXPECTED_TREES)}; "
        "or pass --dataset mvtec|visa|btad|folder|sample"
    )
