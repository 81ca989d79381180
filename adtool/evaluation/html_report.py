"""One self-contained ``report.html`` a person can read, built from the files of a run.

``write_html_report(folder)`` recognises what the folder holds and writes
``<folder>/report.html``:

* a category run (``results.json``, written by tools/train.py / test.py): the image and
  pixel metrics, the thresholds, the confusion matrix, the score histogram with the
  thresholds, ROC and PR curves, the worst false positives / false negatives at the
  confusion threshold with their anomaly-map overlays (``worst/``, see
  :func:`adtool.evaluation.report.worst_cases`) and the per-defect AUROC;
* a work dir of several categories (``<folder>/<category>/results.json``): a summary
  table, then one such section per category;
* a benchmark (``benchmark.json``, tools/benchmark.py): the models x categories heatmap,
  the winner of each category, every pair's metrics (folded) with a link to its own
  report.

Everything is read from disk, so the report can be rebuilt at any time
(``adtool report DIR``). Images are embedded as base64 PNG and the style is inline: the
page needs no network, no other file and no JavaScript library (offline line PCs). A
small inline script records script errors and undecoded images into the
``data-report-check`` attribute of ``<html>``, which the browser test reads. Strings
from the files are escaped (``html.escape``); the page is written atomically.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adtool.errors import DataError
from adtool.fileio import atomic_write_text

REPORT_NAME = "report.html"
WORST_INDEX = "worst/worst.json"
THRESHOLD_NAMES = ("f1_percentile", "f1_uniform", "youden_j", "percentile_95")
THRESHOLD_HELP = {
    "f1_percentile": "best image F1 over the score percentiles",
    "f1_uniform": "best image F1 over a uniform grid of scores",
    "youden_j": "ROC point with the largest TPR - FPR",
    "percentile_95": "95th percentile of the normal scores",
    "percentile_99": "99th percentile of the normal scores",
    "percentile_99_9": "99.9th percentile of the normal scores",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;
background:#f5f6f8;line-height:1.4}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:1.35em}header p{margin:4px 0 0;color:#c9cfdb;font-size:.9em}
main{padding:8px 24px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 16px;
margin:14px 0}
h2{font-size:1.2em;margin:6px 0 10px}h3{font-size:1.02em;margin:14px 0 6px}
table{border-collapse:collapse;font-size:.9em;margin:4px 0 8px}
th,td{border:1px solid #dde1e8;padding:3px 9px;text-align:right}
th{background:#eef1f5}td.l,th.l{text-align:left}
tr.best td{font-weight:bold;background:#eaf6ea}
.note{color:#6b7385;font-size:.88em}
.bad{color:#b42318;font-weight:bold}.ok{color:#2e7d32}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}
.plots img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px}
.tile{border:1px solid #dde1e8;border-radius:4px;padding:6px;background:#fafbfc}
.tile img{width:100%;height:auto;image-rendering:pixelated}
.tile.err{border-color:#b42318;background:#fdf1f0}
.badge{display:inline-block;padding:0 6px;border-radius:3px;font-size:.8em;color:#fff;
background:#6b7385}.tile.err .badge{background:#b42318}
.cm td{min-width:80px}nav a{margin-right:10px}
details{margin:6px 0}summary{cursor:pointer}
code{background:#eef1f5;padding:0 3px;border-radius:3px}
header code{background:#39414f;color:#fff}
"""

# Records script errors and images that did not decode; the browser test reads the result.
_CHECK_SCRIPT = """
(function(){var errors=[];
window.addEventListener('error',function(e){var t=e.target;
errors.push(t&&t.tagName?('resource '+t.tagName+' failed'):(String(e.message)+' line '+e.lineno));
},true);
window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);
var broken=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);})
.map(function(i){return i.getAttribute('alt')||'image';});
var sections=Array.prototype.map.call(document.querySelectorAll('[data-section]'),
function(s){return s.getAttribute('data-section');});
document.documentElement.setAttribute('data-report-check',JSON.stringify(
{errors:errors,images:imgs.length,broken:broken,sections:sections}));});})();
"""


# ---------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_value(value: Any) -> str:
    """A threshold or score: 6 significant digits."""
    return "n/a" if not isinstance(value, int | float) else f"{value:.6g}"


def _png_data(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(path: Path, alt: str, width: int | None = None) -> str:
    """An embedded ``<img>``; a note when the file is missing."""
    src = _png_data(path)
    if src is None:
        return f'<p class="note">{_e(path.name)} not found in {_e(path.parent)}</p>'
    size = f' style="max-width:{width}px"' if width else ""
    return f'<img src="{src}" alt="{_e(alt)}"{size}>'


def _table(
    head: Iterable[str], rows: Iterable[Iterable], left: int | set[int] = 1, cls: str = ""
) -> str:
    """A table of already escaped cells.

    ``left``: the number of leading left-aligned (text) columns, or their indexes. A row
    may start with a 1-tuple holding the ``<tr>`` attributes (e.g. ``' class="best"'``).
    """
    left = set(range(left)) if isinstance(left, int) else left
    out = [f'<table class="{cls}">' if cls else "<table>", "<tr>"]
    out += [f'<th class="l">{h}</th>' if i in left else f"<th>{h}</th>" for i, h in enumerate(head)]
    out.append("</tr>")
    for row in rows:
        cells = list(row)
        attrs = ""
        if cells and isinstance(cells[0], tuple):
            attrs, cells = cells[0][0], cells[1:]
        out.append(f"<tr{attrs}>")
        out += [
            f'<td class="l">{c}</td>' if i in left else f"<td>{c}</td>" for i, c in enumerate(cells)
        ]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _page(title: str, subtitle: str, body: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style>"
        f"<script>{_CHECK_SCRIPT}</script></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{subtitle}</p></header><main>{body}"
        f'<p class="note">Written by adtool report on {_e(stamp)} from the files in this '
        "folder; rebuild it with <code>adtool report DIR</code>.</p></main></body></html>\n"
    )


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in str(text)) or "x"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _load_category(folder: Path) -> dict:
    data = _read_json(folder / "results.json")
    if not isinstance(data, dict):
        raise DataError(
            f"no readable results.json in {folder}; run tools/train.py or tools/test.py to write it"
        )
    if "image" not in data:
        raise DataError(
            f"{folder / 'results.json'} holds no image metrics (a '{data.get('task')}' task "
            "run?); the HTML report covers anomaly runs"
        )
    return data


# ------------------------------------------------------------------- one category


def _metrics_html(results: dict) -> str:
    image = results.get("image") or {}
    pixel = results.get("pixel")
    rows = [["image", _e("AUROC"), _fmt(image.get("AUROC"))]]
    rows += [
        ["image", "AUPR", _fmt(image.get("AUPR"))],
        ["image", "F1-max", _fmt(image.get("F1_max"))],
    ]
    if pixel:
        limit = pixel.get("fpr_limit")
        rows += [
            ["pixel", "AUROC", _fmt(pixel.get("AUROC"))],
            [
                "pixel",
                "AUPRO" + ("" if limit is None else f" (FPR &le; {limit:g})"),
                _fmt(pixel.get("AUPRO")),
            ],
        ]
        if "F1_max" in pixel:
            rows.append(["pixel", "F1-max", _fmt(pixel.get("F1_max"))])
    notes = [n for n in (image.get("note"), (pixel or {}).get("note")) if n]
    if not pixel:
        notes.append("no pixel metrics: the data has no masks or the method scores images only")
    return _table(("level", "metric", "value"), rows, left=2, cls="metrics") + "".join(
        f'<p class="note">{_e(n)}</p>' for n in notes
    )


def _thresholds_html(results: dict) -> str:
    thresholds = results.get("thresholds") or {}
    chosen = (results.get("confusion") or {}).get("threshold")
    rows = []
    names = [*THRESHOLD_NAMES, *(n for n in thresholds if n not in THRESHOLD_NAMES and n != "nfa")]
    for name in names:
        entry = thresholds.get(name)
        if entry is None:
            continue
        extra = ", ".join(
            f"{_e(k)} {_e(_fmt(v))}" for k, v in entry.items() if k not in ("value", "note")
        )
        if entry.get("note"):
            extra += (", " if extra else "") + _e(entry["note"])
        marker = " (confusion matrix)" if name == chosen else ""
        rows.append(
            [
                ((' class="best"',) if name == chosen else ("",)),
                f"<code>{_e(name)}</code>{marker}",
                _e(_fmt_value(entry.get("value"))),
                _e(THRESHOLD_HELP.get(name, "")),
                extra,
            ]
        )
    nfa = thresholds.get("nfa")
    text = ""
    if nfa:
        text = (
            '<p class="note">nfa (a-contrario, acts on the NFA map): precision '
            f"{_e(_fmt(nfa.get('precision')))}, recall {_e(_fmt(nfa.get('recall')))}, F1 "
            f"{_e(_fmt(nfa.get('f1')))}</p>"
        )
    return (
        _table(("threshold", "value", "rule", "at this threshold"), rows, left={0, 2, 3})
        + '<p class="note">An image is anomalous when its score &ge; the threshold.</p>'
        + text
    )


def _confusion_html(results: dict) -> str:
    c = results.get("confusion") or {}
    if c.get("threshold") is None:
        return f'<p class="note">No confusion matrix: {_e(c.get("note", "no threshold"))}</p>'
    rows = [
        ["true normal", _e(c.get("TN")), f'<span class="bad">{_e(c.get("FP"))}</span>'],
        ["true anomalous", f'<span class="bad">{_e(c.get("FN"))}</span>', _e(c.get("TP"))],
    ]
    return (
        f"<p>At <code>{_e(c['threshold'])}</code> = {_e(_fmt_value(c.get('threshold_value')))}"
        f": accuracy {_e(_fmt(c.get('accuracy')))}, precision {_e(_fmt(c.get('precision')))}, "
        f"recall {_e(_fmt(c.get('recall')))}.</p>"
        + _table(("", "predicted normal", "predicted anomalous"), rows, left=1, cls="cm")
    )


def _per_defect_html(results: dict) -> str:
    per_defect = results.get("per_defect") or {}
    if not per_defect:
        return '<p class="note">No anomalous images in the test split.</p>'
    rows = [
        [f"<code>{_e(name)}</code>", _e(_fmt(entry.get("image_AUROC"))), _e(entry.get("n"))]
        for name, entry in per_defect.items()
    ]
    return (
        _table(("defect", "image AUROC", "images"), rows, left=1, cls="per-defect")
        + '<p class="note">Each defect type against the normal test images.</p>'
    )


def _worst_from_scores(folder: Path, results: dict, k: int = 6) -> dict | None:
    """The worst-case selection rebuilt from scores.csv (runs written before ``worst/``)."""
    try:
        with open(folder / "scores.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    import numpy as np

    from adtool.evaluation.report import worst_cases

    try:
        scores = np.array([float(r["score"]) for r in rows], dtype=np.float64)
        labels = np.array([int(r["gt_label"]) for r in rows], dtype=np.int64)
    except (KeyError, ValueError):
        return None
    selection = worst_cases(results, scores, labels, k)
    selection["has_maps"] = False
    for key in ("false_positives", "false_negatives"):
        for item in selection[key]:
            row = rows[item["index"]]
            item.update(img_path=row["img_path"], defect_type=row["defect_type"], file=None)
    return selection


def _thumbnail(path: str | None) -> str | None:
    """An image file as an embedded PNG of at most 256 px (for runs without ``worst/``)."""
    if not path:
        return None
    import io

    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((256, 256))
            buf = io.BytesIO()
            img.save(buf, format="png")
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tile(folder: Path, item: dict, kind: str) -> str:
    err = item.get("error")
    if err is None:
        badge = "no threshold"
    elif err:
        badge = "false positive" if kind == "fp" else "false negative"
    else:
        badge = "correct"
    src = _png_data(folder / item["file"]) if item.get("file") else _thumbnail(item.get("img_path"))
    name = Path(item["img_path"]).name if item.get("img_path") else f"image {item.get('index')}"
    alt = f"{kind} {item.get('rank', '')} {name}"
    picture = (
        f'<img src="{src}" alt="{_e(alt)}">'
        if src
        else f'<p class="note">{_e(name)}: image not readable</p>'
    )
    return (
        f'<div class="tile{" err" if err else ""}" data-kind="{kind}" '
        f'data-img-path="{_e(item.get("img_path") or "")}" data-score="{_e(item.get("score"))}">'
        f'{picture}<div><span class="badge">{_e(badge)}</span> score '
        f"<b>{_e(_fmt_value(item.get('score')))}</b></div>"
        f'<div class="note">{_e(item.get("defect_type", ""))}: {_e(name)}</div></div>'
    )


def _worst_html(folder: Path, results: dict) -> str:
    selection = _read_json(folder / WORST_INDEX)
    note = ""
    if not isinstance(selection, dict):
        selection = _worst_from_scores(folder, results)
        note = (
            '<p class="note">This run has no worst/ folder (written by an older adtool or '
            "without test arrays): the images are read from their paths, without maps.</p>"
        )
    if selection is None:
        return '<p class="note">No scores.csv: the worst cases cannot be shown.</p>'
    value = selection.get("threshold_value")
    at = (
        f"at <code>{_e(selection.get('threshold'))}</code> = {_e(_fmt_value(value))}"
        if value is not None
        else "(no threshold: the split has one class)"
    )
    legend = (
        "Each image: the input as the model saw it, then the anomaly map over it (one colour "
        "scale for every image; ground truth outlined in green, the region above the pixel "
        "threshold in red)."
        if selection.get("has_maps")
        else "The method scores images only (or the maps were not kept): inputs without maps."
    )
    parts = [f"<p>{legend}</p>", note]
    for key, kind, title, count_key, order in (
        (
            "false_positives",
            "fp",
            "Worst false positives",
            "n_false_positives",
            "highest-scored normal",
        ),
        (
            "false_negatives",
            "fn",
            "Worst false negatives",
            "n_false_negatives",
            "lowest-scored anomalous",
        ),
    ):
        items = selection.get(key) or []
        count = selection.get(count_key)
        head = f"{count} {at}" if count is not None else at
        parts.append(
            f'<h3 data-section="{kind}">{title}: {head}</h3>'
            f'<p class="note">The {len(items)} {order} images of the test split.</p>'
        )
        if items:
            parts.append(
                '<div class="grid">' + "".join(_tile(folder, i, kind) for i in items) + "</div>"
            )
        else:
            parts.append(f'<p class="note">No {order.split()[-1]} images in the test split.</p>')
    return "".join(parts)


def _run_info(results: dict) -> str:
    timing = results.get("timing") or {}
    bits = [
        f"model <b>{_e(results.get('model', '-'))}</b>",
        f"config <code>{_e(results.get('config', '-'))}</code>",
        f"dataset {_e(results.get('dataset', '-'))}",
        f"category <b>{_e(results.get('category', '-'))}</b>",
        f"{_e(results.get('n_train', 'n/a'))} training / {_e(results.get('n_test', 'n/a'))} "
        "test images",
    ]
    if timing:
        bits.append(
            f"train {_e(_fmt(timing.get('train_s'), 1))} s, test "
            f"{_e(_fmt(timing.get('test_images_per_s'), 1))} images/s"
        )
    if results.get("checkpoint"):
        bits.append(f"checkpoint <code>{_e(results['checkpoint'])}</code>")
    return " &middot; ".join(bits)


def category_section(folder: Path, results: dict, prefix: str = "", level: int = 2) -> str:
    """The sections of one category's results (metrics ... per-defect AUROC) as HTML."""
    h = f"h{level}"
    pid = _anchor(prefix) + "-" if prefix else ""

    def section(key: str, title: str, content: str) -> str:
        return (
            f'<section id="{pid}{key}" data-section="{key}"><{h}>{title}</{h}>{content}</section>'
        )

    plots = "".join(
        f'<figure data-section="{key}">{_img(folder / name, alt, 420)}'
        f"<figcaption>{caption}</figcaption></figure>"
        for key, name, alt, caption in (
            ("roc", "roc.png", "ROC curve", "ROC (image level)"),
            ("pr", "pr.png", "precision-recall curve", "precision-recall (image level)"),
        )
    )
    return "".join(
        [
            section("metrics", "Metrics", _metrics_html(results)),
            section("thresholds", "Thresholds", _thresholds_html(results)),
            section("confusion", "Confusion matrix", _confusion_html(results)),
            section(
                "histogram",
                "Score histogram with the thresholds",
                _img(folder / "histogram.png", "score histogram", 700),
            ),
            f'<section id="{pid}curves"><{h}>ROC and precision-recall</{h}>'
            f'<div class="plots">{plots}</div></section>',
            section(
                "worst", "Worst false positives and false negatives", _worst_html(folder, results)
            ),
            section("per-defect", "Per-defect image AUROC", _per_defect_html(results)),
        ]
    )


def category_report_html(folder: str | os.PathLike) -> str:
    """The page of one category run folder."""
    folder = Path(folder)
    results = _load_category(folder)
    title = f"{results.get('config') or results.get('model')} / {results.get('category')}"
    return _page(f"adtool report: {title}", _run_info(results), category_section(folder, results))


# ------------------------------------------------------------------- a work dir


def category_folders(work_dir: str | os.PathLike) -> list[Path]:
    """Sub-folders of ``work_dir`` holding an anomaly ``results.json``, sorted by name."""
    found = []
    for child in sorted(Path(work_dir).iterdir()):
        data = _read_json(child / "results.json") if child.is_dir() else None
        if isinstance(data, dict) and "image" in data:
            found.append(child)
    return found


def _summary_rows(entries: list[tuple[Path, dict]], link: str) -> list[list]:
    rows = []
    for folder, r in entries:
        image, pixel, c = r.get("image") or {}, r.get("pixel") or {}, r.get("confusion") or {}
        target = (
            f"#{_anchor(folder.name)}" if link == "anchor" else f"{_e(folder.name)}/{REPORT_NAME}"
        )
        rows.append(
            [
                f'<a href="{target}">{_e(r.get("category", folder.name))}</a>',
                _e(r.get("config", "-")),
                _e(_fmt(image.get("AUROC"))),
                _e(_fmt(image.get("AUPR"))),
                _e(_fmt(image.get("F1_max"))),
                _e(_fmt(pixel.get("AUROC"))),
                _e(_fmt(pixel.get("AUPRO"))),
                f"<code>{_e(c.get('threshold'))}</code> {_e(_fmt_value(c.get('threshold_value')))}",
                _e(c.get("FP", "n/a")),
                _e(c.get("FN", "n/a")),
                _e(r.get("n_test", "n/a")),
            ]
        )
    return rows


def _mean(values: Iterable) -> float | None:
    kept = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def work_dir_report_html(work_dir: str | os.PathLike, folders: list[Path] | None = None) -> str:
    """The page of a work dir with several categories: summary table, then each category."""
    work_dir = Path(work_dir)
    folders = category_folders(work_dir) if folders is None else folders
    entries = [(f, _load_category(f)) for f in folders]
    head = (
        "category", "config", "image AUROC", "image AUPR", "image F1", "pixel AUROC",
        "pixel AUPRO", "threshold", "FP", "FN", "test images",
    )  # fmt: skip
    rows = _summary_rows(entries, "anchor")
    means = [
        _mean((r.get(block) or {}).get(key) for _, r in entries)
        for block, key in (("image", "AUROC"), ("image", "AUPR"), ("image", "F1_max"),
                           ("pixel", "AUROC"), ("pixel", "AUPRO"))
    ]  # fmt: skip
    rows.append([(' class="best"',), "mean", "", *(_e(_fmt(m)) for m in means), "", "", "", ""])
    nav = "".join(f'<a href="#{_anchor(f.name)}">{_e(f.name)}</a>' for f in folders)
    body = [
        f'<section id="summary" data-section="summary"><h2>Summary</h2><nav>{nav}</nav>'
        + _table(head, rows, left=2)
        + "</section>"
    ]
    for folder, results in entries:
        body.append(
            f'<div id="{_anchor(folder.name)}" data-section="category" '
            f'data-category="{_e(folder.name)}"><h2>{_e(folder.name)}</h2>'
            f'<p class="note">{_run_info(results)}</p>'
            + category_section(folder, results, prefix=folder.name, level=3)
            + "</div>"
        )
    configs = sorted({str(r.get("config")) for _, r in entries})
    subtitle = (
        f"{len(entries)} categories in {_e(work_dir)} &middot; config {_e(', '.join(configs))}"
    )
    return _page(f"adtool report: {work_dir.name}", subtitle, "".join(body))


# ------------------------------------------------------------------- a benchmark


def _pair_summary(folder: Path, results: dict) -> str:
    return (
        f'<p class="note">{_run_info(results)}</p>'
        + _metrics_html(results)
        + _confusion_html(results)
        + _per_defect_html(results)
    )


def benchmark_report_html(bench_dir: str | os.PathLike) -> str:
    """The page of a tools/benchmark.py work dir (read from ``benchmark.json``)."""
    bench_dir = Path(bench_dir)
    data = _read_json(bench_dir / "benchmark.json")
    if not isinstance(data, dict) or "pairs" not in data:
        raise DataError(
            f"{bench_dir / 'benchmark.json'} is missing or unreadable; run tools/benchmark.py "
            "with --work-dir pointing here"
        )
    pairs, means = data.get("pairs") or [], data.get("means") or []
    settings = data.get("settings") or {}
    categories = list(dict.fromkeys(r["category"] for r in pairs))
    body = []
    if data.get("command"):
        body.append(f"<section><h2>Command</h2><pre>{_e(data['command'])}</pre></section>")
    body.append(
        '<section id="heatmap" data-section="heatmap"><h2>Image AUROC: models x categories</h2>'
        + _img(bench_dir / "benchmark_heatmap.png", "benchmark heatmap")
        + '<p class="note">Best of each column outlined in red.</p></section>'
    )

    def link(row: dict) -> str:
        folder = bench_dir / str(row["config"]) / str(row["category"])
        for name in (REPORT_NAME, "results.txt", "error.txt"):
            if (folder / name).is_file():
                return f'<a href="{_e(row["config"])}/{_e(row["category"])}/{name}">{name}</a>'
        return ""

    metric_keys = ("image_AUROC", "image_AUPR", "image_F1_max", "pixel_AUROC", "pixel_AUPRO")
    winners = []
    for category in [*categories, "mean"]:
        group = [r for r in (means if category == "mean" else pairs) if r["category"] == category]
        best = [r for r in group if r.get("best")]
        ranked = sorted(
            (r for r in group if r.get("image_AUROC") is not None),
            key=lambda r: -r["image_AUROC"],
        )
        runner = next((r for r in ranked if not r.get("best")), None)
        margin = (
            _fmt(best[0]["image_AUROC"] - runner["image_AUROC"])
            if best and runner is not None
            else "n/a"
        )
        winners.append(
            [
                "<b>mean</b>" if category == "mean" else _e(category),
                ", ".join(f"<code>{_e(r['config'])}</code>" for r in best) or "none finished",
                *(_e(_fmt(best[0].get(k))) if best else "n/a" for k in metric_keys),
                _e(runner["config"]) if runner else "-",
                _e(margin),
                link(best[0]) if best and category != "mean" else "",
            ]
        )
    body.append(
        '<section id="winners" data-section="winners"><h2>Winner per category</h2>'
        + _table(
            (
                "category",
                "best config",
                "image AUROC",
                "image AUPR",
                "image F1",
                "pixel AUROC",
                "pixel AUPRO",
                "runner-up",
                "AUROC margin",
                "report",
            ),
            winners,
            left=2,
        )  # fmt: skip
        + '<p class="note">Highest image AUROC, ties broken by pixel AUPRO, pixel AUROC, '
        "image F1-max; the mean winner among configs that finished every category.</p></section>"
    )
    rows = []
    for r in pairs:
        status = r.get("status")
        cls = ' class="best"' if r.get("best") else ""
        rows.append(
            [
                (cls,),
                f"<code>{_e(r['config'])}</code>",
                _e(r["category"]),
                *(_e(_fmt(r.get(k))) for k in metric_keys),
                _e(_fmt(r.get("train_s"), 1)),
                _e(_fmt(r.get("images_per_s"), 1)),
                _e(status)
                if status == "ok"
                else f'<span class="bad">{_e(status)}</span> ' + _e(r.get("reason") or ""),
                link(r),
            ]
        )
    body.append(
        '<section id="pairs" data-section="pairs"><h2>Every pair</h2>'
        + _table(
            (
                "config",
                "category",
                "image AUROC",
                "image AUPR",
                "image F1",
                "pixel AUROC",
                "pixel AUPRO",
                "train s",
                "images/s",
                "status",
                "report",
            ),
            rows,
            left=2,
        )  # fmt: skip
        + "</section>"
    )
    details = []
    for r in pairs:
        folder = bench_dir / str(r["config"]) / str(r["category"])
        results = _read_json(folder / "results.json") if r.get("status") == "ok" else None
        if not isinstance(results, dict) or "image" not in results:
            continue
        details.append(
            f'<details data-pair="{_e(r["config"])}/{_e(r["category"])}"><summary><code>'
            f"{_e(r['config'])}</code> / {_e(r['category'])}: image AUROC "
            f"{_e(_fmt(r.get('image_AUROC')))} {link(r)}</summary>"
            + _pair_summary(folder, results)
            + "</details>"
        )
    body.append(
        '<section id="pair-summaries" data-section="pair-summaries"><h2>Pair summaries</h2>'
        + ("".join(details) or '<p class="note">No finished pair yet.</p>')
        + "</section>"
    )
    n_ok = sum(r.get("status") == "ok" for r in pairs)
    subtitle = (
        f"{len(pairs)} pairs ({n_ok} ok) &middot; {len(means)} configs x {len(categories)} "
        f"categories &middot; data {_e(settings.get('data_root') or 'each config data_root')}"
        f" &middot; tables updated {_e(settings.get('updated', '-'))}"
    )
    return _page(f"adtool benchmark: {bench_dir.name}", subtitle, "".join(body))


# ------------------------------------------------------------------------ entry


def report_kind(folder: str | os.PathLike) -> str:
    """``'benchmark'``, ``'category'`` or ``'work_dir'``: what :func:`write_html_report`
    makes of ``folder``.

    Raises:
        DataError: for a folder that holds none of them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; pass a work dir written by adtool")
    if (folder / "benchmark.json").is_file():
        return "benchmark"
    if (folder / "results.json").is_file():
        return "category"
    if category_folders(folder):
        return "work_dir"
    raise DataError(
        f"{folder} holds no results.json, benchmark.json or category folders with a "
        "results.json; pass the work dir of tools/train.py, test.py or benchmark.py"
    )


def write_html_report(folder: str | os.PathLike, pair_reports: bool = True) -> Path:
    """Write ``<folder>/report.html`` for a category run, a work dir or a benchmark.

    Args:
        folder: the folder (see :func:`report_kind`).
        pair_reports: for a benchmark, also write the report of every finished pair that
            has none (the benchmark page links to them). Defaults to True.

    Returns:
        The written path.

    Raises:
        DataError: when the folder holds nothing to report on.
    """
    folder = Path(folder)
    kind = report_kind(folder)
    if kind == "benchmark":
        if pair_reports:
            for config_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                for pair in category_folders(config_dir):
                    if not (pair / REPORT_NAME).is_file():
                        write_html_report(pair)
        text = benchmark_report_html(folder)
    elif kind == "category":
        text = category_report_html(folder)
    else:
        text = work_dir_report_html(folder)
    path = folder / REPORT_NAME
    atomic_write_text(path, text)
    return path
