"""A run's main metric: the one number a table of runs shows for each run and ranks them by.

`rnnlab compare` ranks by it unless told `--metric`, and the table at the end of `rnnlab train -m`
shows it for every job. Regression (forecasting, the adding problem, continuous seq2seq): the test
MSE; classification (binary, multiclass, token seq2seq): the test accuracy. Both are in every
completed run's `test_metrics`.
"""

from __future__ import annotations

import math
from typing import Any

MAIN_METRIC = {"regression": "test_mse", "classification": "test_accuracy"}
# Which way a metric is better, by its name without the split (test_mae -> mae): the one list compare,
# search and the multirun table read. Anything ending in "loss" is lower-is-better too.
LOWER_IS_BETTER = frozenset({"mse", "rmse", "mae", "mase", "smape", "mape", "huber", "loss"})
HIGHER_IS_BETTER = frozenset({"r2", "accuracy", "f1", "precision", "recall", "roc_auc", "average_precision",
                              "sequence_accuracy", "accuracy_at_0.5"})


def higher_is_better(base: str) -> bool | None:
    """True or False for a metric's name without its split (mae, accuracy, val_loss's loss); None when unknown."""
    if base in HIGHER_IS_BETTER:
        return True
    if base in LOWER_IS_BETTER or base.endswith("loss"):
        return False
    return None


def family(task: str | None) -> str | None:
    """'regression' or 'classification' for a summary's task (None when the run never said)."""
    if task is None:
        return None
    return "regression" if task == "regression" else "classification"


def main_metric(summary: dict[str, Any] | Any) -> tuple[str, float | None] | None:
    """(name, value) of a run's main metric from its summary; value None when the run has none (it
    stopped before its test); None when the summary does not say what the task was."""
    fam = family(summary.get("task"))
    if fam is None:
        return None
    name = MAIN_METRIC[fam]
    split, key = name.split("_", 1)
    value = (summary.get(f"{split}_metrics") or {}).get(key)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return name, float(value) if ok else None
