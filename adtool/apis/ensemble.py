"""Ensemble of the top-k models of a finished benchmark: ``tools/ensemble.py``.

Layer 5 of ``adtool.apis`` (above :mod:`adtool.apis.benchmark`). Per category, the k best
finished pairs of ``<D>/benchmark.json`` (image AUROC, ties by pixel AUPRO, pixel AUROC,
image F1-max: the benchmark's own ranking; earlier ensembles are not candidates) become
the members of one ``Ensemble`` config, ``<D>/<ensemble name>.py``, with members keyed by
category (``dict(disk=[dict(name, config, checkpoint), ...], ...)``). That config then
runs through the benchmark's own pair path (:func:`adtool.apis.core.run_category`: the
fit computes the members' statistics on the calibration images, the test writes the
DESIGN.md results into ``<D>/<ensemble name>/<category>/``), and the tables
``benchmark.{md,csv,json}`` and the heatmap are rebuilt with it as one more row (config)
after every category.

Calibration (where the statistics come from; never a test image):

* ``'holdout'`` (default; name ``ensemble_top<k>_<rule>``): a seeded ``fraction`` of each
  category's normal training images is held out (the datasets' ``holdout`` key). Each
  member's config is refitted/retrained on the rest through the same pair path, into
  ``<D>/ensemble_members/holdout<fraction>_seed<seed>/<config>/<category>/`` (shared by
  every rule and k; a finished one is reused), and the ensemble's statistics are computed
  on the held-out images only;
* ``'train'`` (name ``ensemble_top<k>_<rule>_train``): the benchmark's own checkpoints,
  statistics on the training images they were fitted on.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmengine.config import Config

from adtool.apis.benchmark import (
    ERROR_FILE,
    METRICS,
    RANK_KEYS,
    Pair,
    _run_pair,
    collect_rows,
    load_finished,
    pair_row,
    plan_pairs,
    write_tables,
)
from adtool.apis.checkpoints import last_checkpoint
from adtool.apis.config_index import config_root
from adtool.apis.core import check_category, load_config, parse_cfg_options
from adtool.apis.overrides import check_override_keys
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_write_text
from adtool.models.anomaly.ensemble.model import member_input_size

RULES = ("mean", "max", "rank", "weighted")
CALIBRATIONS = ("holdout", "train")
#: ``<D>/<MEMBERS_DIR>/holdout<fraction>_seed<seed>/``: members refitted without the
#: held-out images.
MEMBERS_DIR = "ensemble_members"
ENSEMBLE_MODEL = "Ensemble"
# Pipeline steps whose size follows the ensemble's input size.
_SIZED_STEPS = ("Resize",)


@dataclass
class EnsembleSummary:
    """What :func:`run_ensemble` did: the config, its members and its rows vs the best."""

    work_dir: Path
    name: str
    config: Path
    members: dict[str, list[dict]]
    comparison: list[dict] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.comparison if r["status"] == "failed"]

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        ok = sum(r["status"] == "ok" for r in self.comparison)
        text = (
            f"{self.name}: {ok}/{len(self.comparison)} categories ok (ran {self.ran}, skipped "
            f"{self.skipped} finished) -> {self.work_dir / 'benchmark.md'}"
        )
        if self.failed:
            text += f"; {len(self.failed)} FAILED, see error.txt in their folders"
        return text


def ensemble_name(top_k: int, rule: str, calibration: str = "holdout") -> str:
    """``ensemble_top3_mean`` (``_train`` appended for ``'train'`` calibration): the
    config stem, folder and table row of an ensemble."""
    name = f"ensemble_top{top_k}_{rule}"
    return name if calibration == "holdout" else f"{name}_{calibration}"


def members_dir(work_dir: str | os.PathLike, fraction: float, seed: int) -> Path:
    """Where the members refitted without the held-out images go."""
    return Path(work_dir) / MEMBERS_DIR / f"holdout{fraction:g}_seed{seed}"


def _holdout(fraction: float, seed: int, keep: str) -> dict:
    return {"fraction": float(fraction), "seed": int(seed), "keep": keep}


def _member_entry(name: str, pair_dir: Path, row: dict) -> dict:
    config = pair_dir / "config.py"
    if not config.is_file():
        raise DataError(
            f"{config} not found; the benchmark pair {name}/{pair_dir.name} must be "
            "rerun (tools/benchmark.py --force)"
        )
    return {
        "name": name,
        "config": str(config.resolve()),
        "checkpoint": str(tested_checkpoint(pair_dir)),
        **{k: row.get(k) for k in METRICS},
    }


def refit_members(
    members: dict[str, list[dict]],
    work_dir: Path,
    fraction: float,
    seed: int,
    *,
    force: bool = False,
    console=None,
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Each member refitted/retrained on its category's training images minus the held-out
    ``fraction`` (its benchmark config, ``train_dataloader.dataset.holdout`` added), and
    tested, through the benchmark's pair path; finished ones are reused unless ``force``.

    Returns:
        Per category the refitted members (their config, tested checkpoint and test
        metrics), and per category whose member failed, the reason (see its error.txt).
    """
    root = members_dir(work_dir, fraction, seed)
    refitted, failed = {}, {}
    for category, ms in members.items():
        out = []
        for m in ms:
            cfg = load_config(m["config"])
            for key in ("train_dataloader", "test_dataloader"):
                cfg[key]["dataset"]["category"] = category
            cfg.train_dataloader.dataset.holdout = _holdout(fraction, seed, "rest")
            pair = Pair(m["name"], category, root / m["name"] / category, "?", cfg)
            if force or load_finished(pair.out_dir, category) is None:
                start = time.perf_counter()
                if force:
                    (pair.out_dir / "results.json").unlink(missing_ok=True)
                _run_pair(pair)
                if console is not None:
                    console.print(
                        f"member {m['name']}/{category} refitted without the held-out "
                        f"{fraction:g} ({time.perf_counter() - start:.1f} s)",
                        highlight=False,
                    )
            row = pair_row(pair)
            if row["status"] != "ok":
                failed[category] = (
                    f"member {m['name']} refitted without the held-out images failed: "
                    f"{row['reason']} (see {pair.out_dir / ERROR_FILE})"
                )
                break
            out.append(_member_entry(m["name"], pair.out_dir, row))
        if category not in failed:
            refitted[category] = out
    return refitted, failed


def read_benchmark(work_dir: str | os.PathLike) -> dict:
    """``<work_dir>/benchmark.json`` of a benchmark run.

    Raises:
        DataError: when the file is missing or is not a benchmark table.
    """
    path = Path(work_dir) / "benchmark.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(
            f"no readable benchmark.json in {work_dir}; pass --from-benchmark the --work-dir "
            "of a finished tools/benchmark.py run"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("pairs"), list):
        raise DataError(f"{path} is not a benchmark table (no 'pairs'); rerun tools/benchmark.py")
    return payload


def _rank(row: dict) -> tuple:
    return tuple(-float("inf") if row.get(k) is None else row[k] for k in RANK_KEYS)


def top_pairs(rows: Sequence[dict], category: str, top_k: int) -> list[dict]:
    """The ``top_k`` finished, non-ensemble rows of ``category``, best first (benchmark
    ranking; equal rows keep the table's order)."""
    candidates = [
        r
        for r in rows
        if r.get("category") == category
        and r.get("status") == "ok"
        and r.get("model") != ENSEMBLE_MODEL
        and r.get("image_AUROC") is not None
    ]
    return sorted(candidates, key=_rank, reverse=True)[:top_k]


def tested_checkpoint(pair_dir: Path) -> Path:
    """The checkpoint a finished pair tested (its thresholds are stored in it).

    Raises:
        DataError: when the pair's folder holds no such checkpoint.
    """
    results = load_finished(pair_dir) or {}
    train = results.get("train") or {}
    candidates = []
    if train.get("tested") == "best" and train.get("best_checkpoint"):
        candidates.append(Path(train["best_checkpoint"]))
    if train.get("checkpoint"):
        candidates.append(Path(train["checkpoint"]))
    if results.get("checkpoint"):
        candidates.append(Path(results["checkpoint"]))
    last = last_checkpoint(pair_dir)
    if last is not None:
        candidates.append(last)
    for path in candidates:
        if not path.is_absolute():
            path = pair_dir / path
        if path.is_file():
            return path.resolve()
    raise DataError(
        f"no checkpoint found for the benchmark pair {pair_dir}; rerun that pair "
        "(tools/benchmark.py --force) so that its checkpoint is written"
    )


def select_members(
    payload: dict, work_dir: Path, categories: Sequence[str], top_k: int
) -> dict[str, list[dict]]:
    """Per category, ``[{name, config, checkpoint, image_AUROC, pixel_AUPRO, ...}]``.

    Raises:
        ConfigError: for ``top_k < 2`` or a category the benchmark did not run.
        DataError: when a category has fewer than two finished pairs, or a pair lacks its
            config.py or checkpoint.
    """
    if top_k < 2:
        raise ConfigError(
            f"--top-k must be 2 or more (an ensemble of one is the model), got {top_k}"
        )
    rows = payload["pairs"]
    known = list(dict.fromkeys(r.get("category") for r in rows))
    selected = {}
    for category in categories:
        if category not in known:
            raise ConfigError(
                f"category '{category}' is not in the benchmark of {work_dir}; it has "
                f"{', '.join(map(str, known))}"
            )
        best = top_pairs(rows, category, top_k)
        if len(best) < 2:
            raise DataError(
                f"category '{category}' has {len(best)} finished model(s) in {work_dir}; an "
                "ensemble needs two or more (finish the benchmark's pairs first)"
            )
        selected[category] = [
            _member_entry(row["config"], work_dir / row["config"] / category, row) for row in best
        ]
    return selected


def _resize_pipeline(pipeline: list, size: tuple[int, int]) -> list:
    steps = copy.deepcopy(pipeline)
    for step in steps:
        if isinstance(step, dict) and step.get("type") in _SIZED_STEPS:
            step["size"] = list(size) if size[0] != size[1] else size[0]
    return steps


def ensemble_config_text(
    members: dict[str, list[dict]],
    rule: str,
    weights: Sequence[float] | None,
    top_k: int,
    source: str | None = None,
    cfg_options: dict | Sequence[str] | None = None,
    holdout: dict | None = None,
) -> str:
    """The text of an ensemble config: runtime + fit schedule, the top member's data
    loaders at the largest member input size (``holdout``: the training loader keeps the
    held-out images only; None: every training image), and the Ensemble model; then
    ``cfg_options`` (``--cfg-options`` style), checked like any override."""
    member_cfgs = {m["config"]: Config.fromfile(m["config"]) for ms in members.values() for m in ms}
    sizes = [member_input_size(c, Path(p).parent.parent.name) for p, c in member_cfgs.items()]
    size = (max(h for h, _ in sizes), max(w for _, w in sizes))
    first_category = next(iter(members))
    top = member_cfgs[members[first_category][0]["config"]]
    base = config_root() / "_base_"
    cfg = Config.fromfile(str(base / "default_runtime.py"))
    cfg.merge_from_dict(Config.fromfile(str(base / "schedules" / "fit.py")).to_dict())
    loaders = {}
    for key in ("train_dataloader", "test_dataloader"):
        loader = copy.deepcopy(top[key].to_dict())
        loader["dataset"]["pipeline"] = _resize_pipeline(loader["dataset"]["pipeline"], size)
        loader["dataset"]["category"] = first_category
        loader["dataset"].pop("holdout", None)
        if key == "train_dataloader" and holdout is not None:
            loader["dataset"]["holdout"] = _holdout(holdout["fraction"], holdout["seed"], "held")
        loaders[key] = loader
    model = dict(
        type=ENSEMBLE_MODEL,
        rule=rule,
        weights=None if weights is None else [float(w) for w in weights],
        members={
            c: [{k: m[k] for k in ("name", "config", "checkpoint")} for m in ms]
            for c, ms in members.items()
        },
        data_preprocessor=dict(type="AnomalyDataPreprocessor"),
    )
    body = Config(
        dict(
            **cfg.to_dict(),
            model=model,
            **loaders,
            val_dataloader=None,
            val_cfg=None,
            val_evaluator=None,
            test_evaluator=copy.deepcopy(top["test_evaluator"].to_dict()),
        )
    )
    options = parse_cfg_options(cfg_options)
    if options:
        check_override_keys(body, options)
        body.merge_from_dict(options)
    if holdout is None:
        where = "# their scores and maps normalised on the normal training images they were fitted"
        where += f"\n# on, and fused by '{rule}'."
    else:
        where = (
            f"# each refitted without a held-out {holdout['fraction']:g} of the normal training "
            f"images (seed {holdout['seed']}),\n# their scores and maps normalised on those "
            f"held-out images and fused by '{rule}'."
        )
    lines = [
        f"# {ensemble_name(top_k, rule, 'train' if holdout is None else 'holdout')}: the top "
        f"{top_k} models per category of a benchmark,",
        where,
        "# Written by tools/ensemble.py"
        + (f" from {source}" if source else "")
        + f" on {time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "# Fit (training-image statistics) + test: tools/train.py THIS.py --category C;",
        "# test a saved one: tools/test.py THIS.py CHECKPOINT --category C.",
        f"# Members per category (best first), input {size[0]}x{size[1]} (the largest member's):",
    ]
    for category, ms in members.items():
        names = ", ".join(
            f"{m['name']} ({m['image_AUROC']:.4f})"
            if m.get("image_AUROC") is not None
            else m["name"]
            for m in ms
        )
        lines.append(f"#   {category}: {names}")
    if holdout is not None:
        lines.append("# (image AUROCs: the refitted members', tested on the whole test split)")
    return "\n".join(lines) + "\n" + body.pretty_text


def _table_pairs(payload: dict, work_dir: Path, skip: set[tuple[str, str]]) -> list[Pair]:
    """The benchmark's pairs (earlier ensembles included), read back from its table."""
    pairs = []
    for row in payload["pairs"]:
        key = (row.get("config"), row.get("category"))
        if key in skip or None in key:
            continue
        out = work_dir / str(row["config"]) / str(row["category"])
        pairs.append(Pair(str(row["config"]), str(row["category"]), out, str(row["model"]), None))
    return pairs


def compare_rows(
    rows: list[dict],
    name: str,
    categories: Sequence[str],
    members: dict[str, list[dict]] | None = None,
) -> list[dict]:
    """Per category: the ensemble's metrics, the best single model's (the benchmark's),
    who wins, and with ``members`` the top member's metrics as the ensemble used it
    (``top_member_*``: refitted without the held-out images under holdout calibration)."""
    out = []
    for category in categories:
        own = next(r for r in rows if r["config"] == name and r["category"] == category)
        singles = [
            r
            for r in rows
            if r["category"] == category and r["model"] != ENSEMBLE_MODEL and r["status"] == "ok"
        ]
        best = max(singles, key=_rank) if singles else None
        entry = {"category": category, "status": own["status"], "reason": own["reason"]}
        entry["best_single"] = None if best is None else best["config"]
        for key in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO"):
            mine = own.get(key)
            theirs = None if best is None else best.get(key)
            entry[key] = mine
            entry[f"best_{key}"] = theirs
            entry[f"delta_{key}"] = None if mine is None or theirs is None else mine - theirs
        top = ((members or {}).get(category) or [None])[0]
        entry["top_member"] = None if top is None else top["name"]
        for key in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO"):
            entry[f"top_member_{key}"] = None if top is None else top.get(key)
        out.append(entry)
    return out


def run_ensemble(
    work_dir: str | os.PathLike,
    *,
    top_k: int = 3,
    rule: str = "mean",
    categories: str | Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    calibration: str = "holdout",
    holdout_fraction: float = 0.2,
    holdout_seed: int = 0,
    force: bool = False,
    threads: int | None = None,
    cfg_options: dict | Sequence[str] | None = None,
    command: str | None = None,
    console=None,
) -> EnsembleSummary:
    """Build, fit and test the top-``top_k`` ensemble of a finished benchmark.

    Args:
        work_dir: The benchmark's ``--work-dir`` (holds ``benchmark.json``).
        top_k: Members per category. Defaults to 3.
        rule: ``'mean'``, ``'max'``, ``'rank'`` or ``'weighted'``. Defaults to ``'mean'``.
        categories: ``'a,b'``, a list, or None / ``'all'`` for every benchmark category.
        weights: ``'weighted'``: one weight per member (best first). Defaults to None
            (equal weights).
        calibration: ``'holdout'``: refit each member without a held-out share of the
            normal training images and compute the statistics on those; ``'train'``:
            the benchmark's members, statistics on their own training images. Defaults to
            ``'holdout'``.
        holdout_fraction: ``'holdout'``: the share of normal training images held out.
            Defaults to 0.2.
        holdout_seed: ``'holdout'``: the seed of the split. Defaults to 0.
        force: Rerun categories whose ensemble results are finished (and, under
            ``'holdout'``, refit their members again). Defaults to False.
        threads: ``torch.set_num_threads`` for the run. Defaults to None.
        cfg_options: Overrides written into the ensemble config. Defaults to None.
        command: The command line, recorded in ``benchmark.json``. Defaults to None.
        console: rich console for progress lines. Defaults to a stderr console.

    Returns:
        The config written, the members and the ensemble-vs-best comparison per category.

    Raises:
        ConfigError: for an unknown rule or calibration, a holdout fraction outside
            (0, 1), weights for another rule or of the wrong length, ``top_k < 2``, or a
            category the benchmark lacks.
        DataError: when the benchmark is missing, a category has fewer than two finished
            models, or a member's files are missing.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    if rule not in RULES:
        raise ConfigError(f"unknown rule '{rule}'; use one of {', '.join(RULES)}")
    if calibration not in CALIBRATIONS:
        raise ConfigError(
            f"unknown calibration '{calibration}'; use holdout (statistics on held-out normal "
            "training images) or train (on the members' own training images)"
        )
    if calibration == "holdout" and not 0 < holdout_fraction < 1:
        raise ConfigError(f"--holdout-fraction must be in (0, 1), got {holdout_fraction}")
    if weights is not None and rule != "weighted":
        raise ConfigError(f"--weights applies to --rule weighted only (got --rule {rule})")
    if weights is not None and len(weights) != top_k:
        raise ConfigError(
            f"--weights needs {top_k} values (one per member, best first), got {len(weights)}"
        )
    if threads is not None:
        import torch

        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    work_dir = Path(work_dir)
    payload = read_benchmark(work_dir)
    known = list(dict.fromkeys(r.get("category") for r in payload["pairs"]))
    if categories is None or categories == "all":
        chosen = [c for c in known if c is not None]
    elif isinstance(categories, str):
        chosen = [c.strip() for c in categories.split(",") if c.strip()]
    else:
        chosen = list(categories)
    for category in chosen:
        check_category(category)
    members = select_members(payload, work_dir, chosen, top_k)
    if weights is not None and any(len(ms) != top_k for ms in members.values()):
        short = next(c for c, ms in members.items() if len(ms) != top_k)
        raise DataError(
            f"category '{short}' has only {len(members[short])} finished models for "
            f"{top_k} weights; pass fewer --weights with a smaller --top-k"
        )
    name = ensemble_name(top_k, rule, calibration)
    holdout = None
    failed: dict[str, str] = {}
    if calibration == "holdout":
        holdout = {"fraction": float(holdout_fraction), "seed": int(holdout_seed)}
        members, failed = refit_members(
            members, work_dir, holdout_fraction, holdout_seed, force=force, console=console
        )
        if not members:
            first = next(iter(failed.values()))
            raise DataError(f"no category's members could be refitted; {first}")
    config_path = work_dir / f"{name}.py"
    atomic_write_text(
        config_path,
        ensemble_config_text(
            members,
            rule,
            weights,
            top_k,
            source=str(work_dir),
            cfg_options=cfg_options,
            holdout=holdout,
        ),
    )
    ens_pairs = plan_pairs([config_path], work_dir, categories=",".join(chosen))
    others = _table_pairs(payload, work_dir, {(p.config, p.category) for p in ens_pairs})
    all_pairs = [*others, *ens_pairs]
    settings = dict(payload.get("settings") or {})
    ensembles = dict(settings.get("ensembles") or {})
    calibration_setting = {"calibration": calibration, "holdout": holdout}
    previous = ensembles.get(name) or {}
    # Results of another calibration (or an older run that recorded none) are stale.
    stale = {k: previous.get(k) for k in calibration_setting} != calibration_setting
    ensembles[name] = {
        "rule": rule,
        **calibration_setting,
        "members_dir": None
        if holdout is None
        else str(members_dir(work_dir, holdout_fraction, holdout_seed)),
        "top_k": top_k,
        "weights": None if weights is None else [float(w) for w in weights],
        "cfg_options": [f"{k}={v}" for k, v in parse_cfg_options(cfg_options).items()],
        "config": str(config_path),
        "members": {c: [m["name"] for m in ms] for c, ms in members.items()},
        "command": command,
    }
    settings["ensembles"] = ensembles
    table_command = payload.get("command")
    for pair in ens_pairs:
        if pair.category in failed:
            (pair.out_dir / "results.json").unlink(missing_ok=True)
            atomic_write_text(pair.out_dir / ERROR_FILE, f"DataError: {failed[pair.category]}\n")
    to_run = [
        p
        for p in ens_pairs
        if p.category not in failed
        and (force or stale or load_finished(p.out_dir, p.category) is None)
    ]
    write_tables(work_dir, *collect_rows(all_pairs), settings, table_command)
    console.print(
        f"{name}: {len(ens_pairs)} categories, {len(ens_pairs) - len(to_run)} already "
        f"finished, {len(to_run)} to run; config {config_path}",
        highlight=False,
    )
    for pair in to_run:
        start = time.perf_counter()
        if force or stale:
            (pair.out_dir / "results.json").unlink(missing_ok=True)
        _run_pair(pair)
        rows, means = collect_rows(all_pairs)
        write_tables(work_dir, rows, means, settings, table_command)
        row = next(r for r in rows if r["config"] == name and r["category"] == pair.category)
        state = (
            f"ok, image AUROC {row['image_AUROC']:.4f}"
            if row["status"] == "ok" and row["image_AUROC"] is not None
            else f"{row['status']}: {row['reason']}"
        )
        console.print(
            f"{name}/{pair.category}: {state} ({time.perf_counter() - start:.1f} s)",
            highlight=False,
        )
    rows, _ = collect_rows(all_pairs)
    return EnsembleSummary(
        work_dir,
        name,
        config_path,
        members,
        compare_rows(rows, name, chosen, members),
        ran=len(to_run),
        skipped=len(ens_pairs) - len(to_run),
    )
