"""Per-fold results of a cross-validation: rows from each fold's summary.json, mean and std, the table.

Only completed folds enter the mean and the standard deviation (n - 1, as `rnnlab compare`);
failed, diverged and interrupted folds are listed with their status. Metrics are the scalar
entries of the folds' `val_metrics` and `test_metrics` (val_mse, test_r2, test_accuracy, ...).
"""

from __future__ import annotations

import math
from typing import Any

from rich.markup import escape
from rich.table import Table

RUN_KEYS = ("epochs_run", "best_epoch", "best_val_loss", "runtime_s")
# Metrics shown in the printed table: the first MAX_SHOWN of these present (all go to cv_results.csv).
SHOWN = ("val_mse", "test_mse", "test_r2", "val_accuracy", "test_accuracy", "test_sequence_accuracy", "test_f1",
         "test_roc_auc")
MAX_SHOWN = 3  # an 80-column terminal holds the fold columns and three metrics
COLOURS = {"completed": "green", "diverged": "red", "failed": "red", "interrupted": "yellow"}


def fold_row(fold: int, summary: dict, plan_entry: dict) -> dict[str, Any]:
    """One fold: status, sizes (from the plan when the run wrote none), run numbers and scalar metrics."""
    cv = summary.get("cv") or plan_entry
    row: dict[str, Any] = {"fold": fold, "status": summary.get("status", "missing"),
                           "n_train": cv.get("n_train"), "n_val": cv.get("n_val")}
    for key in RUN_KEYS:
        row[key] = summary.get(key)
    for split in ("val", "test"):
        for name, value in (summary.get(f"{split}_metrics") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                row[f"{split}_{name}"] = float(value)
    return row


def preprocessing(summaries: list[dict]) -> str | None:
    """What the folds refitted on their training rows, from their summary.json `cv` entries (the folds
    agree), or None when no fold got as far as loading its data."""
    found = sorted({(s.get("cv") or {}).get("preprocessing") for s in summaries} - {None})
    return "; ".join(found) or None


def metric_columns(rows: list[dict]) -> list[str]:
    """val_* then test_* columns found in any row, in first-seen order."""
    seen: dict[str, None] = {}
    for split in ("val_", "test_"):
        for r in rows:
            for k in r:
                if k.startswith(split):
                    seen.setdefault(k)
    return list(seen)


def aggregate(rows: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    """(mean, std) of every numeric column over the completed folds; std is nan with one fold."""
    import numpy as np

    done = [r for r in rows if r["status"] == "completed"]
    cols = ["n_train", "n_val", *RUN_KEYS, *metric_columns(rows)]
    mean, std = {}, {}
    for c in cols:
        values = np.array([r.get(c) for r in done if isinstance(r.get(c), int | float)], dtype=np.float64)
        values = values[np.isfinite(values)]
        mean[c] = float(values.mean()) if len(values) else math.nan
        std[c] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, std


def results_frame(rows: list[dict], mean: dict, std: dict):
    """cv_results.csv: one row per fold, then the mean and std rows (fold column 'mean' / 'std')."""
    import pandas as pd

    cols = ["fold", "status", "n_train", "n_val", *RUN_KEYS, *metric_columns(rows)]
    frame = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    extra = pd.DataFrame([{"fold": label, "status": f"{sum(r['status'] == 'completed' for r in rows)} completed",
                           **{c: values.get(c) for c in cols[2:]}} for label, values in (("mean", mean),
                                                                                          ("std", std))])
    return pd.concat([frame, extra], ignore_index=True)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def results_table(rows: list[dict], mean: dict, std: dict, title: str) -> Table:
    present = set(metric_columns(rows))
    shown = [c for c in SHOWN if c in present][:MAX_SHOWN]
    table = Table(title=title, title_justify="left")
    for col in ("fold", "status", "n_train", "n_val", "best", *shown):
        table.add_column(col, justify="left" if col in ("fold", "status") else "right")
    for r in rows:
        colour = COLOURS.get(r["status"], "white")
        table.add_row(str(r["fold"]), f"[{colour}]{escape(r['status'])}[/]", _fmt(r["n_train"]), _fmt(r["n_val"]),
                      _fmt(r.get("best_epoch")), *(_fmt(r.get(c)) for c in shown))
    n = sum(r["status"] == "completed" for r in rows)
    table.add_section()
    for label, values in (("mean", mean), ("std", std)):
        table.add_row(f"[bold]{label}[/]", f"n={n}", _fmt(values.get("n_train")), _fmt(values.get("n_val")),
                      _fmt(values.get("best_epoch")), *(_fmt(values.get(c)) for c in shown))
    return table
