"""The objective: a number from a trial's summary.json, and its per-epoch stand-in for pruning.

`val_loss` means the best epoch's validation loss (`best_val_loss`, the checkpoint the test
metrics come from); `<split>_<name>` reads `summary["<split>_metrics"][name]` (test_mse,
val_accuracy, test_f1, ...), as `rnnlab compare --metric` does; any other name is a top-level
number of summary.json (test_loss, final_val_loss, runtime_s, ...).
"""

from __future__ import annotations

import math
import re
from typing import Any

from rnnlab.analysis.main_metric import HIGHER_IS_BETTER, LOWER_IS_BETTER
from rnnlab.search import SearchError

TOP_LEVEL = ("best_val_loss", "final_val_loss", "final_train_loss", "test_loss", "runtime_s",
             "seconds_per_epoch", "n_params", "best_epoch", "epochs_run")
SPLIT_RE = re.compile(r"^(val|test)_(\w+)$")
# the metrics' directions (rnnlab.analysis.main_metric), and the run's own numbers: less time, fewer parameters
LOWER = LOWER_IS_BETTER | {"runtime_s", "seconds_per_epoch", "n_params", "best_epoch", "epochs_run"}
HIGHER = HIGHER_IS_BETTER
ALIASES = {"val_loss": "best_val_loss"}


def check_metric(metric: str) -> None:
    if metric in ALIASES or metric in TOP_LEVEL or SPLIT_RE.match(metric):
        return
    raise SearchError(f"unknown metric '{metric}' (a number of summary.json: val_loss, test_loss, test_mse, "
                      "val_mae, test_r2, val_accuracy, test_f1, runtime_s, ...)")


def _base_name(metric: str) -> str:
    metric = ALIASES.get(metric, metric)
    for prefix in ("best_val_", "final_val_", "final_train_", "val_", "test_"):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def natural_direction(metric: str) -> str | None:
    """minimize for losses and errors, maximize for accuracies and scores, None when unknown."""
    name = _base_name(metric)
    if name in LOWER:
        return "minimize"
    if name in HIGHER:
        return "maximize"
    return None


def choose_direction(metric: str, direction: str | None) -> str:
    if direction is not None:
        if direction not in ("minimize", "maximize"):
            raise SearchError(f"--direction must be minimize or maximize (got '{direction}')")
        return direction
    found = natural_direction(metric)
    if found is None:
        raise SearchError(f"cannot tell whether a higher or lower {metric} is better: give --direction")
    return found


def read_metric(summary: dict[str, Any], metric: str) -> float | None:
    """The objective's value in a summary (None when the summary has no such number)."""
    name = ALIASES.get(metric, metric)
    value = summary.get(name)
    if value is None:
        m = SPLIT_RE.match(name)
        if m:
            value = (summary.get(f"{m.group(1)}_metrics") or {}).get(m.group(2))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def available_metrics(summary: dict[str, Any]) -> list[str]:
    names = [k for k in TOP_LEVEL if isinstance(summary.get(k), int | float)]
    for split in ("val", "test"):
        names += [f"{split}_{k}" for k, v in (summary.get(f"{split}_metrics") or {}).items()
                  if isinstance(v, int | float)]
    return names


def epoch_column(metric: str, row_keys) -> str:
    """The metrics.csv column reported to the pruner each epoch: the validation twin of the
    objective when the trainer records it per epoch (val_accuracy), else val_loss."""
    m = SPLIT_RE.match(ALIASES.get(metric, metric))
    if m and f"val_{m.group(2)}" in row_keys and m.group(2) != "loss":
        return f"val_{m.group(2)}"
    return "val_loss"


def epoch_value(row: dict[str, Any], column: str, direction: str) -> float:
    """The epoch's value as the study's direction reads it (sign flipped when the column runs the other way)."""
    value = float(row[column])
    natural = natural_direction(column) or direction
    return value if natural == direction or not math.isfinite(value) else -value
