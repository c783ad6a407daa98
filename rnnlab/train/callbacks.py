"""Hooks of the fit loop, as Keras' `Callback` and Lightning's hooks, and the ones every run uses.

    class MyCallback(Callback):
        def on_step(self, fit, info): ...          # after backward and the step's hygiene, before the update
        def on_step_end(self, fit, info): ...      # after the update; may return Stop(...) to end the run
        def epoch_columns(self, fit, row): ...     # extra metrics columns for the epoch's row
        def on_epoch_end(self, fit, row): ...      # after the row is recorded; may return Stop(...)
        def on_fit_end(self, fit): ...             # after the last epoch (or the stop), before the test

`fit` is the loop's state (`loop.Fit`: params, optimizer, schedule, rows, step, epoch...). A callback
that holds resources (a progress display, an event file) opens them in `session(fit)`, a context
manager the loop enters around the epochs. `state_dict()` / `load_state_dict()` carry a callback's
own state in the training checkpoint (early stopping's counters, the monitor's records), so a resumed
run goes on exactly: JSON values go to training_state.json, NumPy arrays to training_state.npz.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Any, NamedTuple

from rnnlab.train.selection import score


class Stop(NamedTuple):
    status: str  # "completed" (early stopping, lr-find) | "pruned"
    message: str


class StepInfo(NamedTuple):
    step: int  # 0-based over the run
    epoch: int  # 0-based
    loss: float
    raw_grads: dict  # the task's gradients, before penalties, noise and clipping
    grad_norm: float  # of the gradients used for the update (after clipping)
    n: int  # samples in the batch
    lr: float | None  # the learning rate used (None before the update)


class Callback:
    name = ""  # the key of its state in the training checkpoint (empty: nothing to keep)

    def session(self, fit):
        return nullcontext()

    def on_fit_start(self, fit) -> None:
        pass

    def on_step(self, fit, info: StepInfo) -> None:
        pass

    def on_step_end(self, fit, info: StepInfo) -> Stop | None:
        return None

    def epoch_columns(self, fit, row: dict[str, Any]) -> dict[str, Any]:
        return {}

    def on_epoch_end(self, fit, row: dict[str, Any]) -> Stop | None:
        return None

    def on_fit_end(self, fit) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        pass


class EarlyStopping(Callback):
    """Stop after `patience` epochs without an improvement by more than `min_delta` of the monitored
    score; min_delta decides when to stop, never which epoch is best (as in PyTorch Lightning)."""

    name = "early_stopping"

    def __init__(self, monitor: str, patience: int | None, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.ref_value, self.ref_epoch = math.inf, 0

    def on_epoch_end(self, fit, row) -> Stop | None:
        s, epoch = score(self.monitor, row), row["epoch"]
        if s < self.ref_value - self.min_delta:
            self.ref_value, self.ref_epoch = s, epoch
        if self.patience is not None and epoch - self.ref_epoch >= self.patience:
            return Stop("completed", f"early stopping at epoch {epoch} (best epoch {fit.selection.epoch})")
        return None

    def state_dict(self):
        return {"ref_value": self.ref_value, "ref_epoch": self.ref_epoch}

    def load_state_dict(self, d):
        self.ref_value = math.inf if d.get("ref_value") is None else float(d["ref_value"])
        self.ref_epoch = int(d.get("ref_epoch", 0))


class Pruning(Callback):
    """hook(epoch, row) -> message or None after each recorded epoch (1-based epoch); a message stops the
    run as "pruned" (rnnlab search's pruner)."""

    def __init__(self, hook):
        self.hook = hook

    def on_epoch_end(self, fit, row) -> Stop | None:
        message = self.hook(row["epoch"], row)
        return Stop("pruned", str(message)) if message else None


class Progress(Callback):
    """The live Rich progress bar (rnnlab.report.progress)."""

    def __init__(self, cfg, steps_per_epoch: int, n_train: int, console=None):
        from rnnlab.report.progress import TrainingProgress

        self.bar = TrainingProgress(cfg.train.epochs, steps_per_epoch, enabled=cfg.train.progress, console=console,
                                    samples_per_step=n_train / steps_per_epoch)

    def session(self, fit):
        return self.bar

    def on_step_end(self, fit, info) -> None:
        self.bar.batch(info.epoch, info.loss, info.lr)

    def on_epoch_end(self, fit, row) -> None:
        self.bar.epoch_end(row["epoch"] - 1, row["train_loss"], row["val_loss"], row["lr"],
                           val_accuracy=row.get("val_accuracy"), samples_per_s=row["samples_per_s"], rows=fit.rows)


class Monitor(Callback):
    """The run monitor (rnnlab.monitor): gradients every N steps, per-epoch analyses, end-of-run files."""

    name = "monitor"

    def __init__(self, monitor):
        self.monitor = monitor

    def on_step(self, fit, info) -> None:
        self.monitor.on_step(info.step, info.epoch, fit.params, info.raw_grads, info.grad_norm)

    def epoch_columns(self, fit, row) -> dict[str, Any]:
        t = time.perf_counter()
        cols = self.monitor.on_epoch_end(row["epoch"] - 1, fit.params, fit.state)
        return {**cols, "monitor_seconds": time.perf_counter() - t}

    def state_dict(self) -> dict[str, Any]:
        return self.monitor.state_dict()  # arrays among it go to training_state.npz

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.monitor.load_state_dict(d)
