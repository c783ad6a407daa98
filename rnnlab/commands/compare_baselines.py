"""`rnnlab compare --baselines`: the baselines of the compared runs as rows of the ranking.

A forecasting run's summary holds its baselines' metrics (naive, seasonal naive, drift, mean,
ETS; a classifier's majority class), so "does any run beat ETS?" is one look at the table:
the baselines are ranked among the runs, named "baseline: NAME". Runs on the same data and
split share their baselines, which then show once; a baseline whose numbers differ between
runs (other data, another split) shows once per run, the run's label in brackets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from rnnlab.commands.compare import BASELINE as STATUS
from rnnlab.report.key_metrics import baseline_label

PREFIX = "baseline: "


def baseline_rows(runs: list, metric_cols: list[str]) -> list[dict[str, Any]]:
    """One comparison row per distinct baseline of the runs (completed runs, in their order)."""
    found: dict[str, list[tuple[Any, dict]]] = {}
    for r in runs:
        for name, b in (r.summary.get("baselines") or {}).items():
            if not isinstance(b, dict) or not any(isinstance(b.get(f"{s}_metrics"), dict) for s in ("test", "val")):
                continue
            same = json.dumps([b.get("val_metrics"), b.get("test_metrics")], sort_keys=True, default=str)
            entries = found.setdefault(name, [])
            if all(key != same for _, _, key in entries):
                entries.append((r, b, same))
    rows = []
    for name, entries in found.items():
        for r, b, _ in entries:
            label = PREFIX + baseline_label(name, b) + (f" ({r.label})" if len(entries) > 1 else "")
            row: dict[str, Any] = {"rank": None, "run": label, "status": STATUS, "included": True, "overrides": ""}
            for c in metric_cols:
                split, metric = c.split("_", 1)
                value = (b.get(f"{split}_metrics") or {}).get(metric)
                row[c] = float(value) if isinstance(value, int | float) else math.nan
            row["path"] = str(r.path)
            rows.append(row)
    return rows


def rerank(rows: list[dict], metric: str, sort_key: Callable[[float], tuple]) -> list[dict]:
    """Runs and baselines ranked together by the metric; rows left out of the ranking stay last, unranked."""
    ranked = sorted((r for r in rows if r["included"]), key=lambda r: sort_key(r[metric]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    return ranked + [r for r in rows if not r["included"]]


def verdict(table, metric: str, higher: bool) -> str | None:
    """How many runs beat the best baseline on the metric, in one line (None without both)."""
    is_base = table["status"] == STATUS
    runs = table[~is_base & table["included"]][metric].dropna()
    bases = table[is_base][["run", metric]].dropna()
    if runs.empty or bases.empty:
        return None
    best = bases.loc[bases[metric].idxmax() if higher else bases[metric].idxmin()]
    beat = int((runs > best[metric]).sum() if higher else (runs < best[metric]).sum())
    name = best["run"][len(PREFIX):]
    return f"Best baseline on {metric}: {name} ({best[metric]:.4g}); {beat} of {len(runs)} completed runs beat it."
