"""Which epoch's weights a run keeps.

The monitored validation value (val_loss, or val_accuracy negated so that lower is always
better) picks the best epoch, whose weights (and BatchNorm state) are kept. When to stop
early is `callbacks.EarlyStopping`'s decision, on the same score.
"""

from __future__ import annotations

import math
from typing import Any


def score(monitor: str, row: dict) -> float:
    """The monitored value of a metrics row, lower is better."""
    return -row["val_accuracy"] if monitor == "val_accuracy" else row["val_loss"]


class ModelSelection:
    def __init__(self, monitor: str, params: dict, state: Any = None):
        self.monitor = monitor
        self.value = math.inf
        self.epoch = 0  # 0: the initial weights
        self.params = {k: v.copy() for k, v in params.items()}
        self.state = state

    def update(self, row: dict, params: dict, state: Any = None) -> bool:
        """Record epoch row["epoch"]; True when it is the new best (its weights are copied)."""
        s = score(self.monitor, row)
        if s < self.value:
            self.value, self.epoch = s, row["epoch"]
            self.params = {k: v.copy() for k, v in params.items()}
            self.state = state
            return True
        return False

    def tests_last(self, restore_best_weights: bool, status: str, epochs_run: int) -> bool:
        """True when the last weights are tested (restore_best_weights=false), never after divergence."""
        return not restore_best_weights and status != "diverged" and epochs_run > 0

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch}

    def load_state_dict(self, d: dict[str, Any], params: dict, state: Any = None) -> None:
        """Restore the best value and epoch; params/state: the best epoch's weights (from checkpoint/)."""
        self.value = math.inf if d.get("value") is None else float(d["value"])
        self.epoch = int(d["epoch"])
        self.params = {k: v.copy() for k, v in params.items()}
        self.state = state
