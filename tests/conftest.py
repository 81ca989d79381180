"""Test setup: one torch thread, no network, adtool registries loaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _registries():
    from adtool.registry import register_all_modules

    register_all_modules()


@pytest.fixture
def warning_lines():
    """Warning lines logged to mmengine's current logger during the test."""
    import logging

    from mmengine.logging import MMLogger

    lines: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                lines.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = _Collect()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Two sample categories at 64 px: 6 train, 3 good + 2 per defect type in test."""
    from adtool.datasets import make_sample_dataset

    root = tmp_path_factory.mktemp("tiny_sample")
    return make_sample_dataset(
        root,
        seed=0,
        size=64,
        n_train=6,
        n_test_good=3,
        n_test_defect=2,
        categories=["tiles", "disk"],
    )


def sample_as(
    layout: str,
    sample_root,
    out,
    category: str = "disk",
    *,
    masks: bool = True,
    defects: bool = True,
    mask_dir: str = "masks",
):
    """The generated sample data of ``category`` rewritten in another dataset's layout.

    Args:
        layout: ``'folder'`` (``out/mybrick/{good, defect/<type>, masks/<type>}``),
            ``'btad'`` (``out/01/{train/ok, test/ok, test/ko, ground_truth/ko}``) or
            ``'visa'`` (``out/split_csv/1cls.csv`` + ``out/<category>/...``).
        sample_root: A folder written by ``make_sample_dataset`` (MVTec layout).
        out: Where to write the new tree.
        category: The sample category to copy. Defaults to ``'disk'``.
        masks: Folder: copy the masks. Defaults to True.
        defects: Folder: copy the defect images (False: normal-only data). Defaults to True.
        mask_dir: Folder: name of the mask folder. Defaults to ``'masks'``.

    Returns:
        The data root to pass as ``--data-root``.
    """
    import csv
    import shutil
    from pathlib import Path

    src = Path(sample_root) / category
    out = Path(out)
    goods = [("train", p) for p in sorted((src / "train" / "good").glob("*.png"))]
    goods += [("test", p) for p in sorted((src / "test" / "good").glob("*.png"))]
    bad = [
        (d.name, p)
        for d in sorted((src / "test").iterdir())
        if d.name != "good"
        for p in sorted(d.glob("*.png"))
    ]

    def mask_of(defect, img):
        return src / "ground_truth" / defect / f"{img.stem}_mask.png"

    def copy(a, b):
        b.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(a, b)

    if layout == "folder":
        base = out / "mybrick"
        for split, p in goods:
            copy(p, base / "good" / f"{split}_{p.name}")
        for defect, p in bad if defects else []:
            copy(p, base / "defect" / defect / p.name)
            if masks:
                copy(mask_of(defect, p), base / mask_dir / defect / f"{p.stem}_mask.png")
    elif layout == "btad":
        base = out / "01"
        for split, p in goods:
            copy(p, base / split / "ok" / p.name)
        for defect, p in bad:
            copy(p, base / "test" / "ko" / f"{defect}_{p.name}")
            copy(mask_of(defect, p), base / "ground_truth" / "ko" / f"{defect}_{p.name}")
    elif layout == "visa":
        rows = []
        for split, p in goods:
            rel = Path(category) / "Data" / "Images" / "Normal" / f"{split}_{p.name}"
            copy(p, out / rel)
            rows.append([category, split, "normal", rel.as_posix(), ""])
        for defect, p in bad:
            rel = Path(category) / "Data" / "Images" / "Anomaly" / f"{defect}_{p.name}"
            mrel = Path(category) / "Data" / "Masks" / "Anomaly" / f"{defect}_{p.name}"
            copy(p, out / rel)
            copy(mask_of(defect, p), out / mrel)
            rows.append([category, "test", "anomaly", rel.as_posix(), mrel.as_posix()])
        (out / "split_csv").mkdir(parents=True, exist_ok=True)
        with open(out / "split_csv" / "1cls.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["object", "split", "label", "image", "mask"])
            writer.writerows(rows)
    else:
        raise ValueError(f"unknown layout {layout}")
    return out


@pytest.fixture
def own_images(tiny_data, tmp_path):
    """Factory: ``own_images('folder', masks=False)`` -> a data root in that layout."""

    def make(layout: str, **kwargs):
        return sample_as(layout, tiny_data, tmp_path / f"{layout}_data", **kwargs)

    return make
