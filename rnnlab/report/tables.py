"""Rich tables printed at the end of a run."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from rnnlab.report import notes
from rnnlab.report.key_metrics import rows_by_split


def fmt_cell(v: Any, other=str) -> str:
    """A table cell: "-" for None, 4 significant digits for floats, `other(v)` for the rest."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return other(v)


def summary_table(summary: dict[str, Any]) -> Table:
    """Model against baselines on val and test (the best row of each split marked), plus the run's vital signs."""
    status = summary.get("status", "?")
    colour = {"completed": "green", "diverged": "red", "interrupted": "yellow", "pruned": "yellow",
              "failed": "red"}.get(status, "white")
    table = Table(title=f"Run summary: [{colour}]{status}[/]", title_justify="left")
    table.add_column("model / baseline")
    table.add_column("split")
    task = summary.get("task", "regression")
    if task == "regression":
        cols = {"mae": "MAE", "rmse": "RMSE", "mase": "MASE", "smape": "sMAPE %", "mape": "MAPE %", "r2": "R2"}
    elif "perplexity" in (summary.get("test_metrics") or summary.get("val_metrics") or {}):  # per token of a stream
        cols = {"accuracy": "accuracy", "top5_accuracy": "top-5", "perplexity": "perplexity",
                "bits_per_token": "bits/token", "bits_per_char": "bits/char"}
    else:
        cols = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1"}
        if task == "binary":
            cols["roc_auc"] = "ROC-AUC"
    for label in cols.values():
        table.add_column(label, justify="right")
    for split, rows in rows_by_split(summary).items():  # one block per split: the rows compared sit together
        for k, (name, m, best) in enumerate(rows):
            table.add_row(name + (" (best)" if best else ""), split, *(fmt_cell(m.get(c)) for c in cols),
                          style="bold" if best else None, end_section=k == len(rows) - 1)
    if not table.rows:  # stopped before its test (interrupted in it, a full disk, bad input)
        table.add_row("model", "-", *(["-"] * len(cols)))
    extra = ""
    if summary.get("threshold") is not None:
        extra = f"threshold {summary['threshold']:.3f} ({summary.get('threshold_source')})  ·  "
    table.caption = extra + (
        ("no test metrics  ·  " if not summary.get("test_metrics") else "") +
        f"best epoch {summary.get('best_epoch') or '-'} of {summary.get('epochs_run') or 0}  ·  "
        f"{summary.get('n_params')} parameters  ·  {fmt_cell(summary.get('runtime_s'))} s  ·  "
        f"seed {summary.get('seed')}  ·  {summary.get('run_dir')}"
    )
    table.caption += notes_caption(summary)
    return table


def notes_caption(summary: dict[str, Any]) -> str:
    """More caption lines: the data's counts, train.restarts' attempts and the run's warnings (yellow)."""
    lines = [escape(line) for line in (notes.data_line(summary), notes.attempts_line(summary)) if line]
    lines += [f"[yellow]warning: {escape(str(w))}[/]" for w in summary.get("warnings") or []]
    return "".join("\n" + line for line in lines)
