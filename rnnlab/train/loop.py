"""The fit loop, for every task: epochs of steps, the step's hygiene, model selection, statuses.

    fit = Fit.start(task, cfg)
    run(fit, recorder, callbacks)    # -> fit.status: completed | diverged | interrupted | failed | pruned

One step: the task's loss and gradients -> hygiene (penalties, noise, clipping) -> callbacks'
`on_step` -> finite check -> the schedule's lr -> the optimizer's update -> the cells'
projections -> `on_step_end`. One epoch: steps, then the task's validation, the row of
metrics (with the callbacks' columns), model selection, the recorder's epoch files, then
`on_epoch_end` (pruning, early stopping, progress). With train.checkpoint_every_steps the recorder
also saves checkpoint_last every N steps, with the position inside the epoch (`position`). A NaN/inf
loss, gradient or validation loss ends the run as `diverged`; Ctrl-C or SIGTERM as `interrupted`; a
data-parallel worker's death as `failed`; every outcome keeps the recorder's last good files.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnlab.engine.optim import Optimizer, make_optimizer
from rnnlab.engine.parallel import WorkerError
from rnnlab.engine.schedules import Schedule, make_schedule
from rnnlab.runtime import signals
from rnnlab.train.callbacks import Callback, StepInfo, Stop
from rnnlab.train.hygiene import StepHygiene
from rnnlab.train.position import EpochPosition
from rnnlab.train.selection import ModelSelection


class Diverged(RuntimeError):
    pass


@dataclass
class Fit:
    """The loop's state: everything a resumed run needs is here or in the task's streams."""

    task: Any
    cfg: Any
    params: dict[str, np.ndarray]
    state: dict  # the model's state (BatchNorm statistics)
    optimizer: Optimizer
    schedule: Schedule
    hygiene: StepHygiene
    selection: ModelSelection
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    rows: list[dict[str, Any]] = field(default_factory=list)
    lr_trace: list[float] = field(default_factory=list)
    history: list[float] = field(default_factory=list)  # val losses (ReduceLROnPlateau follows them)
    status: str = "running"
    message: str | None = None
    mid_epoch: bool = False  # stopped inside an epoch: the weights are past the last recorded epoch
    position: EpochPosition | None = None  # inside an epoch: its batches and partial sums (mid-epoch resume)

    @classmethod
    def start(cls, task, cfg) -> Fit:
        params, state = task.init_model(np.dtype(cfg.train.dtype))
        sched = make_schedule(cfg.sched, cfg.optim["lr"], cfg.train.epochs, task.steps_per_epoch)
        hygiene = StepHygiene(cfg.train, cfg.reg, task.streams.noise)
        return cls(task, cfg, params, state, make_optimizer(**cfg.optim), sched, hygiene,
                   ModelSelection(cfg.train.monitor, params, state))

    def stop(self, status: str, message: str | None) -> None:
        self.status, self.message = status, message


def run(fit: Fit, recorder, callbacks: list[Callback]) -> Fit:
    recorder.begin(fit)
    try:
        with ExitStack() as stack:
            stack.enter_context(signals.handling())  # SIGTERM stops the run like Ctrl-C
            # Overflow on the way to divergence is expected; the finite checks catch it.
            stack.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
            stack.enter_context(fit.task.session())  # e.g. the data-parallel workers
            for cb in callbacks:
                stack.enter_context(cb.session(fit))
                cb.on_fit_start(fit)
            _epochs(fit, recorder, callbacks)
            for cb in callbacks:  # inside the sessions: a logger's last words reach an open writer
                cb.on_fit_end(fit)
    except KeyboardInterrupt:  # while the sessions open or close
        if fit.status == "running":
            fit.stop("interrupted", f"interrupted after {len(fit.rows)} completed epochs")
    except WorkerError as exc:  # a data-parallel worker that died while the workers start or stop
        if fit.status in ("running", "completed"):
            fit.stop("failed", str(exc))
    recorder.stopped(fit)
    return fit


def _epochs(fit: Fit, recorder, callbacks: list[Callback]) -> None:
    """The epochs, and how they end: completed, or stopped (diverged, interrupted, failed, a callback's Stop)."""
    try:
        with signals.unmasked():  # an interrupt a library turned into another error is still one
            while fit.status == "running" and fit.epoch < fit.cfg.train.epochs:
                _epoch(fit, recorder, callbacks)
    except Diverged as exc:
        fit.stop("diverged", str(exc))
    except KeyboardInterrupt:
        fit.stop("interrupted", f"interrupted after {len(fit.rows)} completed epochs")
    except WorkerError as exc:  # a data-parallel worker failed or died: keep what was done
        fit.stop("failed", str(exc))
    if fit.status == "running":
        fit.stop("completed", None)


def _epoch(fit: Fit, recorder, callbacks: list[Callback]) -> None:
    t0 = time.perf_counter()
    fit.mid_epoch = True
    row: dict[str, Any] = {"epoch": fit.epoch + 1, **fit.task.begin_epoch(fit.epoch)}
    # a resumed mid-epoch checkpoint brings its position; else the epoch's batch order is drawn now
    pos = fit.position = fit.position or EpochPosition.start(fit.task.epoch_batches(fit.epoch), fit.hygiene.columns)
    n0 = pos.count  # samples taken before a resume: the timing columns measure this segment
    for batch in pos.remaining():
        out = fit.task.train_step(fit.params, fit.state, batch)
        grads, gnorm, pen = fit.hygiene(fit.params, out.grads)
        info = StepInfo(fit.step, fit.epoch, out.loss, out.grads, gnorm, out.n, None)
        for cb in callbacks:
            cb.on_step(fit, info)  # the monitor sees the raw gradients before the update
        if not (math.isfinite(out.loss) and math.isfinite(gnorm)):
            raise Diverged(f"loss became {out.loss} (gradient norm {gnorm}) at epoch {fit.epoch + 1}, step {fit.step}")
        lr = fit.schedule.lr_at(fit.step, fit.epoch, fit.history)
        fit.optimizer.step(fit.params, grads, lr=lr)
        fit.task.after_step(fit.params)  # the cells' projections (IndRNN's recurrent bound)
        fit.state = out.state  # a new dict each step: the best epoch's state stays as it was
        fit.lr_trace.append(lr)
        fit.step += 1
        pos.add(out.loss, out.n, gnorm, pen)
        stop = _first_stop(cb.on_step_end(fit, info._replace(lr=lr)) for cb in callbacks)
        if stop is not None:
            return fit.stop(*stop)  # the partial epoch is not recorded (lr-find)
        if recorder.step_due(fit):  # train.checkpoint_every_steps
            with signals.deferred():
                recorder.step_saved(fit)
    val = fit.task.validate(fit.params, fit.state)
    if not math.isfinite(val["val_loss"]):
        raise Diverged(f"validation loss became {val['val_loss']} at epoch {fit.epoch + 1}")
    seconds = time.perf_counter() - t0
    row = {"epoch": row.pop("epoch"), "lr": fit.lr_trace[-1], **row, "train_loss": pos.total / pos.count,
           "val_loss": val.pop("val_loss"), "grad_norm": pos.gnorm_sum / fit.task.steps_per_epoch, "seconds": seconds,
           "samples_per_s": (pos.count - n0) / seconds, **{c: v / pos.count for c, v in pos.penalties.items()}, **val}
    for cb in callbacks:
        row.update(cb.epoch_columns(fit, row))
    with signals.deferred():  # the epoch is recorded whole: row, metrics line, best checkpoint
        recorder.epoch_end(fit, row, improved=fit.selection.update(row, fit.params, fit.state))
        fit.rows.append(row)
        fit.history.append(row["val_loss"])
        fit.epoch += 1
        fit.mid_epoch, fit.position = False, None
    stop = _first_stop(cb.on_epoch_end(fit, row) for cb in callbacks)
    if stop is not None:
        fit.stop(*stop)
    with signals.deferred():
        recorder.epoch_saved(fit)  # checkpoint_last with the training state, the callbacks' included


def _first_stop(results) -> Stop | None:
    """Run every hook (the generator), keep the first Stop."""
    stops = [r for r in results if r is not None]
    return stops[0] if stops else None
