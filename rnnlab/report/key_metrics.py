"""The model beside its baselines, one block of rows per split, the best row of each marked: what the
Rich summary table and the HTML report both show (the metrics: rnnlab.analysis.metrics)."""

from __future__ import annotations

from typing import Any

from rnnlab.analysis.metrics import best_row

SPLITS = ("val", "test")


def baseline_label(name: str, entry: Any) -> str:
    """A baseline's row name, with the model it chose when it says so (ets: "ets ETS(A,Ad,N)")."""
    model = entry.get("model") if isinstance(entry, dict) else None
    return f"{name} {model}" if model else name


def rows_by_split(summary: Any) -> dict[str, list[tuple[str, dict, bool]]]:
    """{split: [(row name, metrics, is the best row)]}: the model first, then each baseline with metrics there."""
    rows = [("model", {s: summary.get(f"{s}_metrics") for s in SPLITS})]
    baselines = summary.get("baselines")
    if isinstance(baselines, dict):
        for name, b in baselines.items():
            if isinstance(b, dict):
                rows.append((baseline_label(name, b), {s: b.get(f"{s}_metrics") for s in SPLITS}))
    task = summary.get("task", "regression")
    out = {}
    for split in SPLITS:
        shown = [(name, ms[split]) for name, ms in rows if isinstance(ms[split], dict) and ms[split]]
        best = best_row([m for _, m in shown], task) if len(shown) > 1 else None
        out[split] = [(name, m, k == best) for k, (name, m) in enumerate(shown)]
    return out
