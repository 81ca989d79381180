"""Overlays: files per defect type, one global colour scale, contours drawn."""

import numpy as np
import pytest
from PIL import Image

from adtool.visualization import overlays


def _arrays(tmp_path):
    rng = np.random.default_rng(0)
    defects = ["good"] * 4 + ["crack"] * 3 + ["hole"] * 1
    maps = rng.random((8, 12, 16)).astype(np.float16)
    maps[5] = 3.0  # the global maximum
    maps[0] = -1.0  # the global minimum
    masks = np.zeros((8, 12, 16), np.uint8)
    masks[4:, 2:6, 3:9] = 1
    paths = []
    for i, defect in enumerate(defects):
        path = tmp_path / "img" / defect / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (30, 40), dtype=np.uint8)).save(path)  # grey
        paths.append(str(path))
    paths[7] = str(tmp_path / "missing.png")
    return {
        "scores": maps.reshape(8, -1).max(1).astype(np.float32),
        "labels": np.array([0] * 4 + [1] * 4),
        "img_paths": paths,
        "defect_types": defects,
        "maps": maps,
        "masks": masks,
    }


@pytest.fixture
def captured(monkeypatch):
    figures = []
    save = overlays.save_figure

    def capture(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(overlays, "save_figure", capture)
    return figures


def test_overlays_per_defect(tmp_path, captured):
    arrays = _arrays(tmp_path)
    written = overlays.save_overlays(arrays, tmp_path / "out", max_per_defect=2, threshold=0.5)
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)
    assert names == [
        "maps/crack/004.png", "maps/crack/005.png", "maps/good/000.png", "maps/good/001.png",
        "maps/hole/missing.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    assert not list((tmp_path / "out").rglob("*.tmp"))

    fig = captured[0]  # crack/004: input, heat overlay, contours
    assert len(fig.axes) == 3
    background, heat = fig.axes[1].images
    assert background.get_array().shape == (12, 16, 3)  # resized to the map, made RGB
    assert heat.get_clim() == pytest.approx((-1.0, 3.0))  # global, not per image
    assert heat.get_cmap().name == "jet" and heat.get_alpha() == 0.5
    assert len(fig.axes[2].collections) == 2  # gt contour + predicted contour
    assert "not readable" in captured[-1].axes[0].get_title()  # hole's image file is missing


def test_without_masks_or_threshold_two_panels(tmp_path, captured):
    arrays = _arrays(tmp_path)
    arrays["masks"] = None
    written = overlays.save_overlays(arrays, tmp_path, max_per_defect=1)
    assert len(written) == 3
    assert len(captured[0].axes) == 2


def test_no_maps_writes_nothing(tmp_path):
    arrays = _arrays(tmp_path)
    arrays["maps"] = None
    assert overlays.save_overlays(arrays, tmp_path / "out") == []
    assert not (tmp_path / "out").exists()


def test_overlay_background_is_the_image_the_model_saw(tmp_path):
    """With a centre crop, the file resized to the map size would be misaligned."""
    import numpy as np
    from PIL import Image

    from adtool.visualization.overlays import _load_image

    full = np.zeros((40, 40, 3), np.uint8)
    full[:, :20] = 255  # left half white
    Image.fromarray(full).save(tmp_path / "a.png")
    seen = full[10:30, 5:25]  # a crop: its columns 0..14 white, 15..19 black
    out = _load_image(str(tmp_path / "a.png"), 20, 20, seen)
    assert np.array_equal(out, seen)
    assert out[:, :15].min() == 255 and out[:, 15:].max() == 0
    # Without the seen image, the file is resized instead (white up to column 10 too).
    resized = _load_image(str(tmp_path / "a.png"), 20, 20)
    assert resized[:, :9].min() == 255 and resized[:, 11:].max() == 0
    # A seen image of another size is resized to the map.
    assert _load_image(None, 10, 10, seen).shape == (10, 10, 3)
