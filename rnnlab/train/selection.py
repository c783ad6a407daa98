"""Which epoch's weights a run keeps, and when it stops early: shared by both training loops.

The monitored validation value (val_loss, or val_accuracy negated so that lower is always
better) picks the best epoch, whose weights (and BatchNorm state) are kept. Early stopping
counts epochs since the last improvement by more than `min_delta`, so `min_delta` decides
when to stop but never which epoch is best (as in PyTorch Lightning).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


class ModelSelection:
    def __init__(self, monitor: str, patience: int | None, min_delta: float, params: dict, state: Any = None):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.value = math.inf
        self.epoch = 0  # 0: the initial weights
        self.params = {k: v.copy() for k, v in params.items()}
        self.state = state
        self._ref_value, self._ref_epoch = math.inf, 0

    def score(self, row: dict) -> float:
        return -row["val_accuracy"] if self.monitor == "val_accuracy" else row["val_loss"]

    def update(self, row: dict, params: dict, state: Any = None) -> bool:
        """Record epoch row["epoch"]; True when it is the new best (its weights are copied)."""
        s, epoch = self.score(row), row["epoch"]
        improved = s < self.value
        if improved:
            self.value, self.epoch = s, epoch
            self.params = {k: v.copy() for k, v in params.items()}
            self.state = state
        if s < self._ref_value - self.min_delta:
            self._ref_value, self._ref_epoch = s, epoch
        return improved

    def stop_message(self, epoch: int) -> str | None:
        """The early-stopping message after 1-based `epoch`, or None to go on."""
        if self.patience is not None and epoch - self._ref_epoch >= self.patience:
            return f"early stopping at epoch {epoch} (best epoch {self.epoch})"
        return None

    def after_epoch(self, epoch: int, row: dict, epoch_hook=None) -> tuple[str, str] | None:
        """(status, message) when the run stops after 1-based `epoch`, else None: "pruned" when
        the epoch hook (rnnlab search's pruner) returns a message, "completed" on early stopping."""
        stop = epoch_hook(epoch, row) if epoch_hook is not None else None
        if stop:
            return "pruned", str(stop)
        message = self.stop_message(epoch)
        return ("completed", message) if message else None

    def tests_last(self, restore_best_weights: bool, status: str, epochs_run: int) -> bool:
        """True when the last weights are tested (restore_best_weights=false), never after divergence."""
        return not restore_best_weights and status != "diverged" and epochs_run > 0


def record_stop(run_dir, summary: dict, status: str, message: str | None, epochs_run: int) -> None:
    """Write a stopped run's status at once: the test evaluation that follows can take a while,
    and a second signal during it must not leave summary.json saying "running"."""
    from rnnlab.runtime.io import write_json

    if status != "completed":
        write_json(Path(run_dir) / "summary.json", {**summary, "status": status, "message": message,
                                                    "epochs_run": epochs_run})
