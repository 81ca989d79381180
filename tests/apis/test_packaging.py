"""The configs ship with the package: a wheel built from the repo holds every config under
adtool/.mim/configs, and the installed package finds them from any folder."""

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None or importlib.util.find_spec("pip") is None,
    reason="building a wheel needs pip and setuptools in this environment",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built (offline, no build isolation) from a copy of the repo's sources."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "configs", src / "configs", ignore=ignore)
    # symlinks=True keeps adtool/.mim/configs a link to configs/, as in the repo.
    shutil.copytree(REPO / "adtool", src / "adtool", symlinks=True, ignore=ignore)
    assert (src / "adtool" / ".mim" / "configs").is_symlink()
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run(
        [*cmd, "-w", str(out), str(src)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("adtool-*.whl")
    return found


def test_wheel_holds_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"adtool/.mim/configs/{p.relative_to(REPO / 'configs').as_posix()}"
        for p in (REPO / "configs").rglob("*")
        if p.suffix in (".py", ".md") and "__pycache__" not in p.parts
    }
    assert expected and expected <= names, sorted(expected - names)[:5]


def test_installed_package_finds_its_configs_from_any_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import adtool.apis.config_index as c; "
        "print(c.config_root()); print(len(c.list_configs())); "
        "print(c.resolve_config('patchcore').stem)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("ADTOOL_CONFIG_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    root, count, default = done.stdout.split()
    assert Path(root) == site / "adtool" / ".mim" / "configs"
    repo_configs = [p for p in (REPO / "configs").glob("*/*.py") if p.parent.name != "_base_"]
    assert int(count) == len(repo_configs)
    assert default == "patchcore_wrn50_mvtec"
    # ADTOOL_CONFIG_DIR still overrides the packaged configs.
    mine = tmp_path / "mine" / "toy"
    mine.mkdir(parents=True)
    (mine / "toy_r18_mvtec.py").write_text("default = True\n")
    env["ADTOOL_CONFIG_DIR"] = str(mine.parent)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert done.stdout.split()[:2] == [str(mine.parent), "1"], done.stderr[-2000:]
