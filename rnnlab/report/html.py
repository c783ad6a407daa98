"""One self-contained HTML page for a run folder: `report.html`.

Everything is inside the page: inline CSS, every image as a base64 `data:` URI, no
scripts, no external resources, so the file can be mailed, archived or opened offline.
The page shows the run's status (a banner marks a partial report when the run did not
complete), the key metrics beside the baselines, the dashboard, the config, the
metrics table, every plot grouped by topic, the monitor's summary and previews of the
other CSV files. Whatever is missing is skipped; whatever cannot be read becomes a
warning line in the page. Every piece of text is HTML-escaped.

Light on purpose (standard library only): `rnnlab train` writes the report at the end
of each run, and `rnnlab report RUN_DIR` (re)builds it for any run folder.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import json
import math
import re
from html import escape
from pathlib import Path
from typing import Any

from rnnlab.record import summary as summary_file
from rnnlab.record.metrics_log import read_rows
from rnnlab.record.summary import Summary
from rnnlab.report import notes
from rnnlab.report.key_metrics import rows_by_split
from rnnlab.runtime.io import write_text

REPORT_NAME = "report.html"

# (section id, heading, plot names in display order); a plot goes to the first section
# naming its file stem (or a prefix of it followed by _ or -), the rest to "Other".
PLOT_SECTIONS: list[tuple[str, str, list[str]]] = [
    ("training", "Training", ["loss", "lr"]),
    ("gradients", "Gradients", ["gradient_flow", "grad_norms", "grad_hist"]),
    ("weights", "Weights", ["weight_hist", "spectral", "weight_heatmaps"]),
    ("states", "Hidden states", ["states_heatmap", "states_pca", "states_kmeans", "gates", "gate_saturation"]),
    ("predictions", "Predictions", ["predictions", "error_by_horizon", "forecast", "confusion", "roc", "pr"]),
]
OTHER_SECTION = ("other", "Other")
IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif"}

METRIC_ORDER = ["mae", "rmse", "mase", "smape", "mape", "mse", "r2", "huber",
                "accuracy", "top5_accuracy", "precision", "recall", "f1", "roc_auc", "average_precision",
                "cross_entropy", "perplexity", "bits_per_token", "bits_per_char"]
METRIC_LABELS = {"mse": "MSE", "rmse": "RMSE", "mae": "MAE", "r2": "R²", "mape": "MAPE %", "huber": "Huber",
                 "mase": "MASE", "smape": "sMAPE %",
                 "f1": "F1", "roc_auc": "ROC-AUC", "average_precision": "AP", "top5_accuracy": "top-5",
                 "cross_entropy": "nats/token", "bits_per_token": "bits/token", "bits_per_char": "bits/char"}
DASHBOARD_LABELS = {
    "seconds_per_epoch": "seconds per epoch (mean)",
    "samples_per_s": "samples per second (mean)",
    "peak_memory_mb": "peak memory (MB)",
    "improvement_rate": "val-loss improvement per epoch (last 3, relative)",
    "plateau": "plateau (no improvement > 0.1% in the last 3 epochs)",
    "oscillation": "oscillation (≥ 3 direction changes in the last 6 epochs)",
    "epochs_to_best": "epochs to best",
}
STATUS_CLASS = {"completed": "ok", "diverged": "bad", "failed": "bad", "interrupted": "warn", "running": "warn",
                "pruned": "warn"}
STATUS_NOTE = {
    "pruned": "the run was stopped early by rnnlab search's pruner (its validation metric trailed the other trials)",
    "diverged": "the run diverged (its loss turned NaN/inf) and stopped early",
    "interrupted": "the run was interrupted (Ctrl-C or SIGTERM) before it finished",
    "failed": "the run failed",
    "running": "the run has not finished (still running, or killed before it could write its final summary)",
}
MAX_METRIC_ROWS = 400  # metrics.csv rows shown (head and tail beyond that)
PREVIEW_ROWS = 20  # rows of the other CSV files shown
LOG_LINES = 60  # last lines of train.log shown
CELL_CHARS = 600  # characters of the probe drawn per unit

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:0 1.5rem 3rem;color:#1d2329;background:#fff;line-height:1.45}
header{border-bottom:2px solid #e3e7eb;padding:1.2rem 0 .6rem}
h1{font-size:1.6rem;margin:0 0 .3rem;word-break:break-all}
h2{font-size:1.25rem;margin:2rem 0 .6rem;padding-bottom:.2rem;border-bottom:1px solid #e3e7eb}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
.meta{color:#5b6670;font-size:.9rem;margin:.2rem 0}
.badge{display:inline-block;font-size:.8rem;font-weight:600;padding:.15rem .6rem;border-radius:1rem;
vertical-align:middle;margin-left:.5rem;text-transform:uppercase;letter-spacing:.04em}
.badge.ok{background:#d9f2e0;color:#17612e}.badge.bad{background:#fbdcdc;color:#8a1c1c}
.badge.warn{background:#fdf0c8;color:#7a5600}.badge.unknown{background:#e6e9ec;color:#38424b}
.banner{border:2px solid #c9302c;background:#fdecea;color:#5c1412;padding:.8rem 1rem;border-radius:.4rem;
margin:1rem 0;font-size:1.05rem}
.banner.warn{border-color:#d49a00;background:#fff7e0;color:#5a4100}
.warning{background:#fff7e0;border-left:4px solid #d49a00;padding:.4rem .8rem;margin:.5rem 0}
nav{margin:.8rem 0;font-size:.9rem}nav a{margin-right:.9rem;color:#2a5db0;text-decoration:none}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #dde2e6;padding:.25rem .6rem;text-align:right;white-space:nowrap}
th{background:#f3f5f7;font-weight:600}td.l,th.l{text-align:left;white-space:normal}
tr.model td{font-weight:600}tr.best td{background:#e3f4e8}tbody tr:nth-child(even){background:#fafbfc}
.scroll{overflow-x:auto}.scroll.tall{max-height:36rem;overflow-y:auto}
pre{background:#f6f8fa;border:1px solid #e3e7eb;border-radius:.3rem;padding:.7rem;overflow-x:auto;
font-size:.85rem;max-height:36rem}
.figs{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;border:1px solid #e3e7eb;border-radius:.3rem;padding:.5rem;background:#fff;max-width:100%}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.8rem;color:#5b6670;margin-top:.3rem}
.empty{color:#7b858e;font-style:italic}
details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
footer{margin-top:3rem;color:#7b858e;font-size:.8rem}
"""


class ReportError(Exception):
    """Bad input for a report: the folder is missing or is not a run folder."""


# ------------------------------------------------------------------------------ helpers


def _e(v: Any) -> str:
    return escape(str(v), quote=True)


def fmt(v: Any) -> str:
    """A value as short display text (not yet escaped)."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if 1e4 <= abs(v) < 1e12:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        items = [fmt(x) for x in v[:8]]
        return "[" + ", ".join(items) + (f", … ({len(v)} items)" if len(v) > 8 else "") + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)


def _cell(text: str) -> str:
    """A CSV cell: numbers shortened to 4 significant digits, other text as it is."""
    try:
        f = float(text)
    except ValueError:
        return text
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return text.strip()
    return fmt(f)


def _table(header: list[str], rows: list[list[str]], left: int = 0, row_class: list[str] | None = None,
           tall: bool = False) -> str:
    """An HTML table; the first `left` columns are left-aligned text. Cells are escaped here."""
    def tcell(tag: str, i: int, v: str) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    head = "".join(tcell("th", i, h) for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{_e(row_class[r])}"' if row_class and row_class[r] else ""
        body.append(f"<tr{cls}>" + "".join(tcell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    scroll = "scroll tall" if tall else "scroll"
    return f'<div class="{scroll}"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _kv_table(pairs: list[tuple[str, Any]]) -> str:
    return _table(["", "value"], [[k, fmt(v)] for k, v in pairs], left=2)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


def _read_csv(path: Path, limit: int | None) -> tuple[list[str], list[list[str]], int]:
    """(header, first `limit` rows, total row count) of a CSV file."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows, n = [], 0
        for row in reader:
            if limit is None or n < limit:
                rows.append(row)
            n += 1
    return header, rows, n


def plot_section(stem: str) -> str:
    """The id of the section a plot belongs to (by its file stem)."""
    best, best_len = OTHER_SECTION[0], 0
    for sid, _, names in PLOT_SECTIONS:
        for name in names:
            if stem == name:
                return sid
            if len(name) > best_len and (stem.startswith(name + "_") or stem.startswith(name + "-")):
                best, best_len = sid, len(name)
    return best


# folders whose figures their own sections show (rnnlab explain, explain --maximize, attack)
OWN_SECTION_FOLDERS = ("explain", "maximize", "attack")


def find_images(run_dir: Path) -> list[Path]:
    """Every PNG/GIF in the run folder (any depth), skipping hidden folders and the checkpoint."""
    found = []
    for p in run_dir.rglob("*"):
        rel = p.relative_to(run_dir)
        if p.suffix.lower() not in IMAGE_TYPES or any(part.startswith(".") for part in rel.parts):
            continue
        if rel.parts[0] in ("checkpoint", *OWN_SECTION_FOLDERS) or not p.is_file():
            continue
        found.append(p)
    return sorted(found, key=lambda p: p.relative_to(run_dir).as_posix())


def _order_key(sid: str, path: Path) -> tuple:
    names = next((n for s, _, n in PLOT_SECTIONS if s == sid), [])
    stem = path.stem
    rank = next((i for i, n in enumerate(names) if stem == n or stem.startswith(n + "_") or stem.startswith(n + "-")),
                len(names))
    return (rank, path.suffix.lower() != ".png", path.name)


# ------------------------------------------------------------------------------ reading the folder


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ReportError(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise ReportError(f"not a folder: {run_dir}")
    if not (run_dir / "summary.json").is_file() and not (run_dir / ".hydra" / "config.yaml").is_file():
        raise ReportError(f"{run_dir} is not a run folder (no summary.json and no .hydra/config.yaml)")
    return run_dir


def read_summary(run_dir: Path, warnings: list[str]) -> Summary | None:
    path = run_dir / "summary.json"
    if not path.is_file():
        warnings.append("summary.json is missing: the run has not written its summary (it may not have started)")
        return None
    try:
        return summary_file.read(run_dir)
    except (OSError, ValueError, TypeError) as exc:
        warnings.append(f"summary.json could not be read ({exc}); the status and metrics are unknown")
        return None


# ------------------------------------------------------------------------------ sections


def _header(run_dir: Path, summary: dict | None) -> tuple[str, str]:
    status = str(summary.get("status", "unknown")) if summary else "unknown"
    cls = STATUS_CLASS.get(status, "unknown")
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    html = (f'<header><h1>{_e(run_dir.name)} <span class="badge {cls}">{_e(status)}</span></h1>'
            f'<p class="meta">run folder {_e(run_dir)} · report written {_e(now)} by rnnlab report</p></header>')
    return html, status


def _banner(status: str, summary: dict | None) -> str:
    if status == "completed":
        return ""
    if summary is None:
        what = "the run's summary is missing or unreadable, so its status is unknown"
    else:
        what = STATUS_NOTE.get(status, f"the run's status is '{status}'")
    msg = summary.get("message") if summary else None
    detail = f"<br>{_e(msg)}" if msg else ""
    cls = "banner warn" if status in ("interrupted", "running", "pruned") else "banner"
    return (f'<div class="{cls}" id="partial"><strong>Partial report:</strong> {_e(what)}. '
            f"It shows what the run folder holds.{detail}</div>")


ATTEMPT_COLUMNS = ("attempt", "seed_stream", "status", "epochs_run", "best_epoch", "best_val_loss", "val_metric",
                   "val_score", "baseline", "baseline_score", "chance")


def _run_notes(summary: dict | None) -> str:
    """The run's warnings (a box under the banner: a run at chance level), the data's counts and
    train.restarts' attempts (the kept one marked)."""
    if summary is None:
        return ""
    parts = []
    warnings = [w for w in summary.get("warnings") or [] if w]
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f'<div class="banner warn" id="warnings"><strong>Warnings:</strong><ul>{items}</ul></div>')
    line = notes.data_line(summary)
    if line:
        parts.append(f'<p class="meta" id="data">{_e(line)}</p>')
    attempts = [a for a in summary.get("attempts") or [] if isinstance(a, dict)]
    if len(attempts) > 1:
        kept = summary.get("kept_attempt")
        body = [[fmt(a.get(c)) for c in ATTEMPT_COLUMNS] for a in attempts]
        classes = ["model" if a.get("attempt") == kept else "" for a in attempts]
        parts.append(f"<details open><summary>{_e(notes.attempts_line(summary))}</summary>"
                     + _table(list(ATTEMPT_COLUMNS), body, left=3, row_class=classes) + "</details>")
    return "".join(parts)


def _metric_columns(metric_dicts: list[dict]) -> list[str]:
    keys: list[str] = []
    for m in metric_dicts:
        for k, v in m.items():
            if k not in keys and k != "threshold" and isinstance(v, int | float) and not isinstance(v, bool):
                keys.append(k)
    ordered = [k for k in METRIC_ORDER if k in keys]
    return ordered + [k for k in keys if k not in ordered]


def _summary_section(summary: dict | None) -> str:
    parts = ['<section id="summary"><h2>Summary</h2>']
    if summary is None:
        parts.append('<p class="empty">No readable summary.json.</p></section>')
        return "".join(parts)
    blocks = rows_by_split(summary)
    dicts = [m for rows in blocks.values() for _, m, _ in rows]
    if dicts:
        cols = _metric_columns(dicts)
        body, classes = [], []
        for split, rows in blocks.items():
            for name, m, best in rows:
                body.append([name + (" (best)" if best else ""), split, *(fmt(m.get(c)) for c in cols)])
                classes.append(" ".join(c for c, on in (("model", name == "model"), ("best", best)) if on))
        parts.append("<h3>Key metrics (model beside the baselines; best row of each split marked)</h3>")
        parts.append(_table(["model / baseline", "split", *(METRIC_LABELS.get(k, k) for k in cols)], body,
                            left=2, row_class=classes))
    else:
        parts.append('<p class="empty">No validation or test metrics (the run stopped before its evaluation).</p>')
    dash = summary.get("dashboard")
    if isinstance(dash, dict) and dash:
        parts.append("<h3>Dashboard</h3>")
        parts.append(_kv_table([(DASHBOARD_LABELS.get(k, k), v) for k, v in dash.items()]))
    skip = {"val_metrics", "test_metrics", "baselines", "dashboard"}
    facts = []
    for k, v in summary.items():
        if k in skip or (k == "monitor" and isinstance(v, dict)):
            continue
        facts.append((k, v))
    if facts:
        parts.append("<h3>Run</h3>")
        parts.append(_kv_table(facts))
    parts.append("</section>")
    return "".join(parts)


def _config_section(run_dir: Path, warnings: list[str]) -> str:
    parts = ['<section id="config"><h2>Config</h2>']
    found = False
    for name, title in (("config.yaml", "Composed config (.hydra/config.yaml)"),
                        ("overrides.yaml", "Command-line overrides (.hydra/overrides.yaml)")):
        path = run_dir / ".hydra" / name
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            warnings.append(f".hydra/{name} could not be read ({exc})")
            continue
        found = True
        parts.append(f"<h3>{_e(title)}</h3><pre>{_e(text)}</pre>")
    if not found:
        parts.append('<p class="empty">No .hydra/config.yaml in this run folder.</p>')
    parts.append("</section>")
    return "".join(parts)


def _metrics_section(run_dir: Path, warnings: list[str]) -> str:
    parts = ['<section id="metrics"><h2>Metrics per epoch</h2>']
    path = run_dir / "metrics.csv"
    if not path.is_file():
        parts.append('<p class="empty">No metrics.csv (no epoch was completed).</p></section>')
        return "".join(parts)
    try:
        header, rows = read_rows(path)  # without a line torn by a killed run
        n = len(rows)
    except (OSError, csv.Error) as exc:
        warnings.append(f"metrics.csv could not be read ({exc})")
        parts.append('<p class="empty">metrics.csv could not be read.</p></section>')
        return "".join(parts)
    note = ""
    if n > MAX_METRIC_ROWS:
        half = MAX_METRIC_ROWS // 2
        rows = rows[:half] + [["…"] * len(header)] + rows[-half:]
        note = f'<p class="meta">{n} epochs: the first and last {half} are shown.</p>'
    parts.append(note + _table(header, [[_cell(c) for c in r] for r in rows], tall=True))
    parts.append("</section>")
    return "".join(parts)


def _figure(run_dir: Path, path: Path, warnings: list[str]) -> str:
    rel = path.relative_to(run_dir).as_posix()
    try:
        data = path.read_bytes()
    except OSError as exc:
        warnings.append(f"{rel} could not be read ({exc})")
        return ""
    if not data:
        warnings.append(f"{rel} is empty")
        return ""
    uri = f"data:{IMAGE_TYPES[path.suffix.lower()]};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<figure><img src="{uri}" alt="{_e(rel)}"><figcaption>{_e(rel)}</figcaption></figure>'


def _plot_sections(run_dir: Path, warnings: list[str]) -> tuple[str, list[tuple[str, str]]]:
    groups: dict[str, list[Path]] = {}
    for p in find_images(run_dir):
        groups.setdefault(plot_section(p.stem), []).append(p)
    sections = [(sid, title) for sid, title, _ in PLOT_SECTIONS]
    if groups.get(OTHER_SECTION[0]):
        sections.append(OTHER_SECTION)
    parts = []
    for sid, title in sections:
        imgs = sorted(groups.get(sid, []), key=lambda p, s=sid: _order_key(s, p))
        figs = "".join(_figure(run_dir, p, warnings) for p in imgs)
        if not figs:
            figs = '<p class="empty">No plots of this kind in the run folder.</p>'
        else:
            figs = f'<div class="figs">{figs}</div>'
        parts.append(f'<section id="{sid}"><h2>{_e(title)}</h2>{figs}</section>')
    return "".join(parts), sections


def _monitor_section(summary: dict | None) -> str:
    mon = summary.get("monitor") if summary else None
    if not isinstance(mon, dict) or not mon:
        return ""
    return f'<section id="monitor"><h2>Monitor</h2>{_kv_table(_flatten(mon))}</section>'


def _files_section(run_dir: Path, warnings: list[str]) -> str:
    csvs = sorted(p for p in run_dir.glob("*.csv") if p.name != "metrics.csv" and p.is_file())
    if not csvs:
        return ""
    parts = ['<section id="files"><h2>Data files</h2>']
    for p in csvs:
        try:
            header, rows, n = _read_csv(p, PREVIEW_ROWS)
        except (OSError, csv.Error) as exc:
            warnings.append(f"{p.name} could not be read ({exc})")
            continue
        shown = f"first {len(rows)} of {n} rows" if n > len(rows) else f"{n} rows"
        parts.append(f"<details><summary>{_e(p.name)} ({_e(shown)})</summary>"
                     f"{_table(header, [[_cell(c) for c in r] for r in rows])}</details>")
    parts.append("</section>")
    return "".join(parts)


EXPLAIN_SAMPLES = 5  # text samples coloured in the report (explain/tokens.html has them all)
EXPLAIN_TOP = 15  # rows of the global view's tables


def _explain_section(run_dir: Path, warnings: list[str]) -> str:
    """`rnnlab explain`'s summary (explain/explain.json): per method its checks, the warnings, and for a text
    model the first samples' tokens coloured by the first method (from explain/steps.csv)."""
    path = run_dir / "explain" / "explain.json"
    if not path.is_file():
        return ""
    try:
        s = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        warnings.append(f"explain/explain.json could not be read ({exc})")
        return ""
    rows = []
    for name, m in s.get("methods", {}).items():
        rnd = (m.get("randomisation") or {}).get("stages") or [{}]
        dele = m.get("deletion") or {}
        rows.append([_e(name), fmt(m.get("completeness_gap_rel_max")), fmt(dele.get("area_method")),
                     fmt(dele.get("area_random")), fmt(rnd[-1].get("spearman")), fmt(m.get("truth_share")),
                     fmt(m.get("seconds"))])
    header = ["method", "completeness gap (max)", "deletion area", "random orders", "Spearman, randomised",
              "share on the known answer", "seconds"]
    what = (f"{len(s.get('samples', []))} {s.get('split')} samples, target {s.get('target')}, baseline "
            f"{s.get('baseline')}")
    notes = "".join(f'<p class="warning">{_e(w)}</p>' for w in s.get("warnings", []))
    return (f'<section id="explain"><h2>Explanations</h2><p>{_e(what)} (explain/)</p>'
            f"{_table(header, rows, left=1)}{notes}{_explain_tokens(run_dir, warnings)}"
            f"{_explain_overview(s.get('overview'))}{_explain_figures(run_dir, warnings)}</section>")


def _explain_figures(run_dir: Path, warnings: list[str]) -> str:
    """explain/heatmap_*.png (series) and layers.png."""
    folder = run_dir / "explain"
    figs = sorted(folder.glob("heatmap_*.png"), key=lambda p: int(p.stem[8:]) if p.stem[8:].isdigit() else 0)
    figs += [p for p in [folder / "layers.png"] if p.is_file()]
    if not figs:
        return ""
    return f'<div class="figs">{"".join(_figure(run_dir, p, warnings) for p in figs)}</div>'


def _explain_overview(view) -> str:
    """The global view: top tokens both ways, or features and lags by attribution and permutation."""
    if not isinstance(view, dict):
        return ""
    head = (f"<h3>Over {_e(view.get('samples'))} samples</h3><p>{_e(view.get('method'))} attributions, target "
            f"{_e(view.get('target'))}.</p>")
    if "tokens" in view:
        tok = view["tokens"]
        rows = [[r["token"], fmt(r["mean"]), fmt(r["count"])] for r in tok.get("positive", [])[:EXPLAIN_TOP]]
        neg = [[r["token"], fmt(r["mean"]), fmt(r["count"])] for r in tok.get("negative", [])[:EXPLAIN_TOP]]
        return (head + f"<p>Tokens seen at least {_e(tok.get('min_count'))} times, by mean attribution.</p>"
                + _table(["towards", "mean", "count"], rows, left=1)
                + _table(["against", "mean", "count"], neg, left=1))
    parts = [head]
    for part, title in (("features", "feature"), ("lags", "lag")):
        rows = [[r["name"], fmt(r["share"]), fmt(r["permutation_drop"]), fmt(r["permutation_std"])]
                for r in view.get(part, [])[:EXPLAIN_TOP]]
        parts.append(_table([title, "share of |attribution|", "permutation: score drop", "std"], rows, left=1))
    return "".join(parts)


def _maximize_section(run_dir: Path, warnings: list[str]) -> str:
    """`rnnlab explain --maximize`'s result (maximize/maximize.json and maximize.png)."""
    path = run_dir / "maximize" / "maximize.json"
    if not path.is_file():
        return ""
    try:
        s = json.loads(path.read_text())
        ref = s["training_samples"]
        what = (f"{s['goal']}: {fmt(s['activation'])} after {s['iterations']} iterations over {s['length']} steps; "
                f"training samples: mean {fmt(ref['mean'])}, 99th percentile {fmt(ref['p99'])}, max {fmt(ref['max'])}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.append(f"maximize/maximize.json could not be read ({exc})")
        return ""
    tokens = f"<p>Nearest tokens: {_e(' '.join(s['nearest_tokens']))}</p>" if s.get("nearest_tokens") else ""
    plot = run_dir / "maximize" / "maximize.png"
    fig = f'<div class="figs">{_figure(run_dir, plot, warnings)}</div>' if plot.is_file() else ""
    return (f'<section id="maximize"><h2>Activation maximisation</h2><p>{_e(what)} (maximize/)</p>'
            f"{tokens}{fig}</section>")


def _explain_tokens(run_dir: Path, warnings: list[str]) -> str:
    path = run_dir / "explain" / "steps.csv"
    try:
        header, rows, _ = _read_csv(path, None) if path.is_file() else ([], [], 0)
    except (OSError, csv.Error) as exc:
        warnings.append(f"explain/steps.csv could not be read ({exc})")
        return ""
    if "token" not in header or len(header) <= header.index("token") + 1:
        return ""
    col = header.index("token") + 1
    by_sample: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        try:
            by_sample.setdefault(r[0], []).append((r[header.index("token")], float(r[col])))
        except (ValueError, IndexError):
            continue  # a row cut short: the others still show
    parts = [f"<p>Tokens coloured by {_e(header[col])}: green towards the target, red against it.</p>"]
    for sample, items in list(by_sample.items())[:EXPLAIN_SAMPLES]:
        scale = max((abs(v) for _, v in items), default=0.0) or 1.0
        spans = " ".join(f'<span style="background:rgba({"40,160,60" if v >= 0 else "210,50,50"},'
                         f'{abs(v) / scale:.2f})" title="{v:.4g}">{_e(tok)}</span>' for tok, v in items)
        parts.append(f"<p><b>sample {_e(sample)}</b>: {spans}</p>")
    return "".join(parts)


def _attack_section(run_dir: Path, warnings: list[str]) -> str:
    """`rnnlab attack`'s results (attack/attack.json): the metric per eps (rows) and method (columns), its
    plot attack/attack.png, and for a text model the tokens whose embeddings moved most."""
    path = run_dir / "attack" / "attack.json"
    if not path.is_file():
        return ""
    try:
        s = json.loads(path.read_text())
        metrics, methods = list(s["metrics"]), list(s["methods"])
        cells = {(r["method"], r["eps"], m): r.get(m) for r in s["results"] for m in metrics}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.append(f"attack/attack.json could not be read ({exc})")
        return ""
    epsilons = sorted({eps for _, eps, _ in cells})
    header = ["eps", *(f"{method} {m}" for method in methods for m in metrics)]
    rows = [[fmt(eps), *(fmt(cells.get((method, eps, m))) for method in methods for m in metrics)]
            for eps in epsilons]
    ball = (f"an L2 ball per sample on the embeddings, radius eps x {fmt(s['ball'].get('mean_embedding_norm'))} "
            "(the mean embedding norm) x sqrt(real steps)" if s.get("inputs") == "embeddings"
            else "an L-infinity ball of eps x each feature's standard deviation (train split)")
    clean = ", ".join(f"{m} {fmt((s.get('clean') or {}).get(m))}" for m in metrics)
    what = (f"{s.get('n_samples')} {s.get('split')} samples, {ball}; clean: {clean}; PGD "
            f"{(s.get('pgd') or {}).get('steps')} steps (attack/)")
    plot = run_dir / "attack" / "attack.png"
    fig = f'<div class="figs">{_figure(run_dir, plot, warnings)}</div>' if plot.is_file() else ""
    tokens = ""
    if s.get("tokens"):
        at = s.get("tokens_at") or {}
        words = ", ".join(f"{t['token']} ({t['count']}x, {fmt(t['vs_even'])})" for t in s["tokens"])
        tokens = (f"<p>Tokens whose embeddings moved most ({_e(at.get('method'))}, eps {_e(fmt(at.get('eps')))}; "
                  f"occurrences, mean norm over an even spread of the budget): {_e(words)}</p>")
    return (f'<section id="attack"><h2>Adversarial examples</h2><p>{_e(what)}</p>'
            f"{_table(header, rows)}{fig}{tokens}</section>")


def _language_model_section(run_dir: Path, summary: dict | None, warnings: list[str]) -> str:
    """A language model's samples (summary.json) and its readable cells (units.csv, unit_activations.csv)."""
    samples = (summary or {}).get("samples") or []
    if not samples:
        return ""
    parts = ['<section id="language"><h2>Language model</h2><h3>Samples</h3>']
    for s in samples:
        t = s.get("temperature")
        label = "greedy" if t == 0 else f"temperature {fmt(t)}"
        parts.append(f"<p><b>{_e(label)}</b></p><pre>{_e(str(s.get('text', '')))}</pre>")
    parts.append(_cells_html(run_dir, warnings))
    return "".join(parts) + "</section>"


def _cells_html(run_dir: Path, warnings: list[str]) -> str:
    """The units that track text features, and the best one of each drawn over the probe text."""
    import numpy as np

    from rnnlab.report.text_cells_plots import unit_html

    units_path, acts_path = run_dir / "units.csv", run_dir / "unit_activations.csv"
    if not (units_path.is_file() and acts_path.is_file()):
        return ""
    try:
        header, rows, _ = _read_csv(units_path, None)
        act_header, act_rows, _ = _read_csv(acts_path, None)
        chars = "".join(r[act_header.index("char")] or " " for r in act_rows[:CELL_CHARS])
    except (OSError, csv.Error, ValueError) as exc:
        warnings.append(f"units.csv or unit_activations.csv could not be read ({exc})")
        return ""
    rows = [[*row[:3], fmt(float(row[3]))] for row in rows if len(row) >= 4]
    parts = ["<h3>Cells you can read</h3><p>Hidden units whose activation over the test probe correlates most "
             "with a text feature (Pearson r; units.csv), and the best of each drawn over the first characters "
             "(red positive, blue negative; hover for the value).</p>", _table(header, rows, left=2)]
    seen = set()
    for feature, layer, unit, r in rows:
        if feature in seen:
            continue
        seen.add(feature)
        col = f"{layer}.u{unit}"
        if col in act_header:
            k = act_header.index(col)
            values = np.array([float(x[k]) for x in act_rows[:CELL_CHARS]])
            parts.append(f'<div class="cells">{unit_html(chars, values, f"{feature}: {col}, r = {r}")}</div>')
    return "".join(parts)


def _log_section(run_dir: Path) -> str:
    path = run_dir / "train.log"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    except OSError:
        return ""
    if not lines:
        return ""
    tail = lines[-LOG_LINES:]
    title = f"train.log (last {len(tail)} of {len(lines)} lines)" if len(lines) > len(tail) else "train.log"
    return (f'<section id="log"><h2>Log</h2><details><summary>{_e(title)}</summary>'
            f"<pre>{_e(chr(10).join(tail))}</pre></details></section>")


# ------------------------------------------------------------------------------ the page


def render_report(run_dir: str | Path) -> tuple[str, list[str]]:
    """(the page, warnings about files that could not be read). Raises ReportError on bad input."""
    run_dir = check_run_dir(run_dir)
    warnings: list[str] = []
    summary = read_summary(run_dir, warnings)
    header, status = _header(run_dir, summary)
    body = [
        _summary_section(summary),
        _config_section(run_dir, warnings),
        _metrics_section(run_dir, warnings),
    ]
    plots_html, plot_sections = _plot_sections(run_dir, warnings)
    body.append(plots_html)
    extra = [(_language_model_section(run_dir, summary, warnings), ("language", "Language model")),
             (_monitor_section(summary), ("monitor", "Monitor")),
             (_explain_section(run_dir, warnings), ("explain", "Explanations")),
             (_maximize_section(run_dir, warnings), ("maximize", "Activation maximisation")),
             (_attack_section(run_dir, warnings), ("attack", "Adversarial examples")),
             (_files_section(run_dir, warnings), ("files", "Data files")),
             (_log_section(run_dir), ("log", "Log"))]
    body.extend(html for html, _ in extra if html)
    toc = [("summary", "Summary"), ("config", "Config"), ("metrics", "Metrics"), *plot_sections,
           *(link for html, link in extra if html)]
    nav = "<nav>" + "".join(f'<a href="#{_e(sid)}">{_e(title)}</a>' for sid, title in toc) + "</nav>"
    warn_html = "".join(f'<p class="warning">Warning: {_e(w)}</p>' for w in warnings)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(run_dir.name)} · {_e(status)} · rnnlab report</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{header}\n{_banner(status, summary)}{_run_notes(summary)}{warn_html}\n{nav}\n<main>\n" + "\n".join(body)
        + "\n</main>\n"
        "<footer>Written by rnnlab report; self-contained (images embedded, no external resources).</footer>\n"
        "</body>\n</html>\n"
    )
    return page, warnings


def write_report(run_dir: str | Path, output: str | Path | None = None) -> tuple[Path, list[str]]:
    """Render the report of `run_dir` and write it atomically (default RUN_DIR/report.html).

    `output` may be a file or an existing folder (the page is then written into it as report.html).
    """

    page, warnings = render_report(run_dir)
    out = Path(output) if output is not None else Path(run_dir) / REPORT_NAME
    if out.is_dir():
        out = out / REPORT_NAME
    return write_text(out, page), warnings
