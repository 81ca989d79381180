"""Write docs/errors.md: what each bad input of issue 11 prints and its exit code.

    python tools/gen_errors_doc.py [--out docs/errors.md] [--only ID,ID] [--check]

Every case is a real command run in a subprocess on tiny generated data (64 px sample
images, random backbone weights, a PatchCore checkpoint fitted here), so the table says
what the tools do today, not what someone remembered. A case is one :class:`Case` entry
in :data:`CASES`: the command (placeholders in braces, filled in from :func:`prepare`) and
the exit code it should end with. ``--check`` exits 1 when an exit code differs from the
expected one (the table marks it). Takes a few minutes (about 25 subprocesses, each
importing torch).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Shrinks an anomaly config to the tiny data (not shown in the table's commands).
TINY = [
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]
CONFIG = "patchcore_effnetlite0_sample"


@dataclass(frozen=True)
class Case:
    """One bad input: the command, the exit code it should give, and what to show.

    Attributes:
        id: Short name, used by ``--only``.
        item: The item of issue 11 it belongs to.
        what: The mistake, for a person.
        cmd: ``tool`` (``train``, ``test``, ``infer``, ``benchmark`` or an ``adtool``
            sub-command) then its arguments; ``{name}`` is filled from :func:`prepare`.
        exit: The expected exit code.
        tiny: Append the tiny-data ``--cfg-options`` (hidden in the table).
        show: Regex of output lines to report when the command prints no ``error:`` line
            (a warning of a run that carries on).
        options: The case's own ``--cfg-options`` items (shown in the table).
    """

    id: str
    item: int
    what: str
    cmd: tuple[str, ...]
    exit: int
    tiny: bool = True
    show: str = r"^error:"
    options: tuple[str, ...] = ()


def _train(*extra: str) -> tuple[str, ...]:
    return ("train", CONFIG, "--data-root", "{data}", "--category", "tiles", *extra)


def _test(checkpoint: str, *extra: str) -> tuple[str, ...]:
    return (
        "test",
        CONFIG,
        checkpoint,
        "--data-root",
        "{data}",
        "--category",
        "tiles",
        "--work-dir",
        "{work}",
        *extra,
    )


def _infer(checkpoint: str, inputs: str = "{images}", *extra: str) -> tuple[str, ...]:
    return ("infer", CONFIG, checkpoint, inputs, "--out", "{work}/infer", *extra)


CASES: list[Case] = [
    Case("payload", 1, "checkpoint whose pickle would run a command", _test("{evil}"), 2),
    Case("payload-infer", 1, "the same checkpoint given to infer", _infer("{evil}"), 2),
    Case(
        "category-escape",
        2,
        "category with a path separator",
        (
            "train",
            CONFIG,
            "--data-root",
            "{data}",
            "--category",
            "../victim",
            "--work-dir",
            "{work}",
        ),
        2,
    ),
    Case(
        "top-level-typo",
        4,
        "first key of an override not in the config",
        _train("--work-dir", "{work}"),
        2,
        options=("modle.head.coreset_ratio=0.1",),
    ),
    Case(
        "print-config-typo",
        4,
        "nested key typo in print-config",
        ("print-config", CONFIG),
        2,
        tiny=False,
        options=("model.head.num_neighbor=3",),
    ),
    Case(
        "type-str-for-float",
        5,
        "value of the wrong type",
        _train("--work-dir", "{work}"),
        2,
        options=("model.head.coreset_ratio=abc",),
    ),
    Case(
        "type-float-for-int",
        5,
        "float where an int is expected",
        _train("--work-dir", "{work}"),
        2,
        options=("model.head.num_neighbors=3.5",),
    ),
    Case(
        "loader-key",
        5,
        "unknown DataLoader argument",
        _train("--work-dir", "{work}"),
        2,
        options=("train_dataloader.batchsize=4",),
    ),
    Case(
        "loader-type",
        5,
        "DataLoader argument of the wrong type",
        _train("--work-dir", "{work}"),
        2,
        options=("train_dataloader.batch_size=four",),
    ),
    Case(
        "option-without-equals",
        5,
        "`--cfg-options` item without `=`",
        _train("--work-dir", "{work}"),
        2,
        tiny=False,
        options=("model.head.coreset_ratio",),
    ),
    Case(
        "model-type",
        6,
        "unknown model type",
        _train("--work-dir", "{work}"),
        2,
        options=("model.type=PatchCor",),
    ),
    Case(
        "timm-arch",
        6,
        "unknown timm architecture",
        _train("--work-dir", "{work}"),
        2,
        options=("model.backbone.arch=resnet999",),
    ),
    Case("other-model", 7, "checkpoint of another model (STFPM)", _test("{stfpm}"), 2),
    Case("other-backbone", 7, "checkpoint of another backbone (ResNet-18)", _test("{r18}"), 2),
    Case("truncated", 7, "truncated checkpoint", _test("{truncated}"), 2),
    Case(
        "resume-corrupt",
        7,
        "`--resume` with a corrupt last checkpoint",
        _train("--work-dir", "{corrupt_run}", "--resume"),
        2,
    ),
    Case(
        "work-dir-unwritable",
        8,
        "work dir that cannot be written",
        _train("--work-dir", "{unwritable}/work"),
        2,
    ),
    Case(
        "out-unwritable",
        8,
        "infer `--out` that cannot be written",
        ("infer", CONFIG, "{good}", "{images}", "--out", "{unwritable}/out"),
        2,
    ),
    Case(
        "infer-bad-image",
        9,
        "one unreadable image in an infer folder",
        _infer("{good}", "{images_with_bad}"),
        1,
        show=r"(?i)warning|error",
    ),
    Case(
        "mask-size",
        10,
        "masks of another size than their images",
        ("train", CONFIG, "--data-root", "{data_small_masks}", "--category", "tiles"),
        0,
        show=r"masks differ in size",
    ),
    Case(
        "mask-missing",
        10,
        "an anomalous image without a mask",
        ("train", CONFIG, "--data-root", "{data_missing_mask}", "--category", "tiles"),
        0,
        show=r"have no mask",
    ),
    Case(
        "pool-window",
        12,
        "DFM pooling window that does not divide the feature map (224 px crop)",
        (
            "train",
            "dfm_effnetlite0_mvtec",
            "--data-root",
            "{data}",
            "--category",
            "tiles",
            "--work-dir",
            "{work}",
        ),
        2,
        tiny=False,
        options=(
            "model.backbone.weights=None",
            "train_dataloader.dataset.pipeline.1.size=224",
            "test_dataloader.dataset.pipeline.2.size=224",
        ),
    ),
    Case(
        "hf-num-classes",
        14,
        "classification folder with more classes than the config's num_classes",
        ("train", "vit_tiny_imagefolder", "--data-root", "{cls10}", "--work-dir", "{work}"),
        0,
        tiny=False,
        show=r"^error:|accuracy",
        options=("train_cfg.max_epochs=1", "param_scheduler.1.end=1"),
    ),
]

#: Items without a single command: where their behaviour is tested instead.
NOT_A_COMMAND = {
    3: (
        "a benchmark pair killed after results.json but before its thresholds and plots",
        "the rerun redoes the pair (tests/apis/test_benchmark.py interrupts a pair)",
    ),
    11: ("ResNet/WRN weights", "configs pin `*.tv_in1k`; see backbones/README.md"),
    13: ("STFPM defaults", "`loss_weight=2.0`, student without zero-init; configs/stfpm"),
}


def _png(path: Path, size: int, value: int = 100, mask: bool = False) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if mask else (size, size, 3)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def prepare(root: Path) -> dict[str, tuple[str, str]]:
    """Write the inputs every case needs under ``root``.

    Returns:
        ``{placeholder: (real path, what the table shows)}``.
    """
    import torch

    from adtool.apis import load_config, run_category
    from adtool.apis.core import use_dataset
    from adtool.datasets import make_sample_dataset
    from adtool.datasets.hf import make_classification_dataset
    from adtool.registry import MODELS, register_all_modules

    register_all_modules()
    data = make_sample_dataset(
        root / "data", seed=0, size=64, n_train=6, n_test_good=2, n_test_defect=1,
        categories=["tiles"],
    )  # fmt: skip
    good_run = root / "good"
    cfg = load_config(CONFIG, TINY)
    cfg.train_dataloader.dataset.data_root = str(data)
    cfg.test_dataloader.dataset.data_root = str(data)
    if cfg.get("val_dataloader"):
        cfg.val_dataloader.dataset.data_root = str(data)
    run_category(cfg, "tiles", good_run)
    good = good_run / "epoch_1.pth"

    files = root / "files"
    files.mkdir()

    class _Payload:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'PWNED'}",))

    torch.save({"meta": {}, "state_dict": {}, "message_hub": _Payload()}, files / "evil.pth")
    for name, config, key in [
        ("stfpm", "stfpm_effnetlite0_sample", "teacher"),
        ("r18", "patchcore_r18_mvtec", "backbone"),
    ]:
        other = load_config(config)
        use_dataset(other, "sample")
        other.model[key]["weights"] = None
        state = MODELS.build(other.model).state_dict()
        torch.save({"meta": {}, "state_dict": state}, files / f"{name}.pth")
    blob = good.read_bytes()
    (files / "truncated.pth").write_bytes(blob[: len(blob) // 2])

    corrupt_run = root / "corrupt_run"
    shutil.copytree(good_run, corrupt_run / "tiles")
    (corrupt_run / "tiles" / "epoch_1.pth").write_bytes(blob[: len(blob) // 3])
    (corrupt_run / "tiles" / "last_checkpoint").write_text(
        str(corrupt_run / "tiles" / "epoch_1.pth")
    )

    unwritable = files / "a_file"
    unwritable.write_text("a file, not a folder")

    images = data / "tiles" / "test" / "crack"
    with_bad = root / "images_with_bad"
    shutil.copytree(images, with_bad)
    (with_bad / "broken.png").write_bytes(b"not a png")

    small = root / "data_small_masks"
    shutil.copytree(data, small)
    for mask in (small / "tiles" / "ground_truth").rglob("*.png"):
        _png(mask, 32, 255, mask=True)
    missing = root / "data_missing_mask"
    shutil.copytree(data, missing)
    next((missing / "tiles" / "ground_truth").rglob("*.png")).unlink()

    cls = make_classification_dataset(root / "cls", n_train_per_class=3, n_val_per_class=1)
    for i in range(6):  # 10 classes: copies of the 4 generated ones under new names
        for split in ("train", "val"):
            source = sorted((cls / split).iterdir())[i % 4]
            shutil.copytree(source, cls / split / f"extra{i}")

    return {
        "data": (str(data), "data/sample"),
        "work": (str(root / "work"), "work_dirs/x"),
        "good": (str(good), "epoch_1.pth"),
        "evil": (str(files / "evil.pth"), "evil.pth"),
        "stfpm": (str(files / "stfpm.pth"), "stfpm.pth"),
        "r18": (str(files / "r18.pth"), "r18.pth"),
        "truncated": (str(files / "truncated.pth"), "truncated.pth"),
        "corrupt_run": (str(corrupt_run), "work_dirs/corrupt"),
        "unwritable": (str(unwritable), "a_file"),
        "images": (str(images), "data/sample/tiles/test/crack"),
        "images_with_bad": (str(with_bad), "images"),
        "data_small_masks": (str(small), "data/small_masks"),
        "data_missing_mask": (str(missing), "data/missing_mask"),
        "cls10": (str(cls), "data/cls10"),
        "tmp": (str(root), "<tmp>"),
    }


def command(case: Case, ctx: dict[str, tuple[str, str]], shown: bool = False) -> list[str]:
    """The case's argv (``shown``: as the table prints it, without the tiny options)."""
    tool, *args = case.cmd
    if tool in ("train", "test", "infer", "benchmark"):
        head = ["python", f"tools/{tool}.py"]
    else:
        head = ["adtool", tool]
    options = list(case.options) + ([] if shown or not case.tiny else TINY)
    if options:
        args = [*args, "--cfg-options", *options]
    index = 1 if shown else 0
    filled = [re.sub(r"\{(\w+)\}", lambda m: ctx[m.group(1)][index], a) for a in args]
    if shown:
        return head + filled
    if tool in ("train", "test", "infer", "benchmark"):
        return [sys.executable, str(REPO / "tools" / f"{tool}.py"), *filled]
    return [sys.executable, "-m", "adtool.cli", tool, *filled]


def run_case(case: Case, ctx: dict[str, tuple[str, str]], timeout: int = 600) -> tuple[int, str]:
    """Run one case; its exit code and the lines to show (paths made readable)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    env["COLUMNS"] = "400"  # one error line stays one line
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        command(case, ctx),
        cwd=ctx["tmp"][0],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = (proc.stdout + "\n" + proc.stderr).splitlines()
    picked = [ln for ln in lines if ln.startswith("error:")]
    if not picked:
        picked = [ln for ln in lines if re.search(case.show, ln)]
    message = " / ".join(_readable(ln, ctx) for ln in picked[:2]) or "(nothing printed)"
    if not picked and proc.returncode not in (0, 2):
        tail = [ln for ln in lines if ln.strip()][-1:]
        message = "traceback: " + _readable(tail[0], ctx) if tail else message
    return proc.returncode, message


def _readable(line: str, ctx: dict[str, tuple[str, str]]) -> str:
    line = re.sub(r"^.* - (WARNING|INFO) - ", "warning: ", line.strip())
    for real, shown in sorted(ctx.values(), key=lambda rs: -len(rs[0])):
        line = line.replace(real, shown)
    return line.replace("|", "\\|")


def render(rows: list[tuple[Case, int, str]], ctx: dict[str, tuple[str, str]]) -> str:
    """The Markdown page."""
    out = [
        "# Bad input: what adtool says",
        "",
        "Generated by `python tools/gen_errors_doc.py` (do not edit by hand): each row is a",
        "command run on tiny generated data, with the exit code it ended with and the lines",
        "it printed (`error:` lines, or the warning of a run that carries on). A user",
        "mistake ends with one line and exit code 2; a run that carries on past bad data",
        "warns once and exits 0, or 1 when some inputs could not be used. Anomaly commands",
        "also get `--cfg-options " + " ".join(TINY) + "` (not shown). Paths are shortened.",
        "",
        "| item | mistake | command | exit | message |",
        "| ---: | --- | --- | ---: | --- |",
    ]
    for case, code, message in rows:
        shown = " ".join(command(case, ctx, shown=True))
        status = f"{code}" if code == case.exit else f"**{code}** (expected {case.exit})"
        out.append(f"| {case.item} | {case.what} | `{shown}` | {status} | {message} |")
    out += ["", "Items without a single command:", ""]
    for item, (what, where) in sorted(NOT_A_COMMAND.items()):
        out.append(f"- {item}. {what}: {where}.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "errors.md"))
    parser.add_argument("--only", default=None, help="comma-separated case ids")
    parser.add_argument("--check", action="store_true", help="exit 1 on an unexpected code")
    args = parser.parse_args(argv)
    cases = CASES
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in CASES if c.id in wanted]
    with tempfile.TemporaryDirectory(prefix="adtool_errors_") as tmp:
        ctx = prepare(Path(tmp))
        rows = []
        for case in cases:
            code, message = run_case(case, ctx)
            print(f"[{case.id}] exit {code} (expected {case.exit}): {message}", flush=True)
            rows.append((case, code, message))
        if (Path(tmp) / "PWNED").exists():
            print("a checkpoint payload ran", file=sys.stderr)
            return 1
    if not args.only:
        Path(args.out).write_text(render(rows, ctx), encoding="utf-8")
        print(f"wrote {args.out}")
    bad = [c.id for c, code, _ in rows if code != c.exit]
    return 1 if args.check and bad else 0


if __name__ == "__main__":
    sys.exit(main())
