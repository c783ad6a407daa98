"""Smith's learning-rate range test (`rnnlab lr-find`) as a fit-loop callback.

    finder = LRFinder(start=1e-7, end=10.0, steps=100)
    api.train(rc, run_dir, callbacks=[finder], hooks=[finder.summary_entry])
    finder.suggestion        # the lr at the steepest descent of the smoothed loss (or None)

The callback replaces the run's schedule by an exponential sweep, lr_k = start (end/start)^(k/(steps-1))
at optimizer step k, and records each step's loss (the batch's loss before the update that uses lr_k,
as fastai and Lightning pair them) with its smoothed value: the exponential moving average with
beta = 0.98 and bias correction, avg_k = beta avg_{k-1} + (1 - beta) loss_k, smoothed_k = avg_k / (1 - beta^(k+1)).
The sweep stops after `steps` steps, as soon as the smoothed loss exceeds 4x its minimum, or when the
loss becomes NaN/inf (which the loop calls divergence; for a range test it is the expected end, so the
run is recorded as completed). Smith, "Cyclical Learning Rates for Training Neural Networks" (2017);
fastai's `lr_find`; Lightning's `Tuner.lr_find`.

The suggestion (`suggest`) is the lr where the smoothed loss falls fastest against log lr: the minimum of
d smoothed / d log(lr), ignoring the first `skip_start` and last `skip_end` points (the smoothing's
warm-up and the blow-up at the end).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnlab.engine.schedules import Schedule
from rnnlab.train.callbacks import Callback, Stop


class LRFindError(ValueError):
    """A range the test cannot sweep (--start, --end, --steps); the message is one line."""

BETA = 0.98  # smoothing of the loss (fastai's and Lightning's default)
DIVERGE_FACTOR = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum
SKIP_START, SKIP_END = 10, 5  # points the suggestion ignores at either end
NOTE = ("learning-rate range test: the learning rate was swept exponentially from {start:g} to {end:g}, "
        "so the weights in checkpoint/ and the test metrics are not those of a trained model; the result is "
        "lr_find.csv, plots/lr_find.png and the suggested lr")


def sweep_lr(step: int, start: float, end: float, steps: int) -> float:
    """The learning rate at optimizer step `step` (0-based) of an exponential sweep over `steps` steps."""
    return start * (end / start) ** (step / (steps - 1))


class ExponentialSweep(Schedule):
    """lr_k = start (end/start)^(k/(steps-1)) at optimizer step k, whatever the epoch."""

    name = "lr_find"

    def __init__(self, start: float, end: float, steps: int):
        super().__init__(start, epochs=1, steps_per_epoch=steps)
        self.start, self.end, self.steps = start, end, steps

    def lr_at(self, step, epoch, history=()):
        return sweep_lr(step, self.start, self.end, self.steps)

    def __repr__(self) -> str:
        return f"ExponentialSweep(start={self.start!r}, end={self.end!r}, steps={self.steps!r})"


def smooth(losses: Sequence[float], beta: float = BETA) -> np.ndarray:
    """Bias-corrected exponential moving average of the losses (fastai's `SmoothenValue`)."""
    out, avg = np.empty(len(losses)), 0.0
    for k, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out[k] = avg / (1 - beta ** (k + 1))
    return out


def suggest(lrs: Sequence[float], smoothed: Sequence[float], skip_start: int = SKIP_START,
            skip_end: int = SKIP_END) -> int | None:
    """Index of the suggested lr: the minimum of d smoothed / d log(lr) over the finite points, the first
    `skip_start` and the last `skip_end` of them left out (fewer on a short curve: at most a tenth at the
    start and a twentieth at the end, at least one each). None when fewer than 3 points remain."""
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(smoothed) & (lrs > 0))
    n = len(idx)
    if n - skip_start - skip_end < 3:
        skip_start, skip_end = max(1, min(skip_start, n // 10)), max(1, min(skip_end, n // 20))
    idx = idx[skip_start: n - skip_end]
    if len(idx) < 3:
        return None
    slope = np.gradient(smoothed[idx], np.log(lrs[idx]))
    return int(idx[int(np.argmin(slope))])


def check_range(start: float, end: float, steps: int) -> None:
    """ValueError with one line unless 0 < start < end (finite) and steps >= 2."""
    if not (math.isfinite(start) and start > 0):
        raise LRFindError(f"--start must be a positive learning rate (got {start:g})")
    if not (math.isfinite(end) and end > start):
        raise LRFindError(f"--end must be a finite learning rate above --start {start:g} (got {end:g})")
    if steps < 2:
        raise LRFindError(f"--steps must be >= 2 (got {steps})")


class LRFinder(Callback):
    """The range test: sweeps the lr, records (lr, loss, smoothed loss) per step, stops, suggests."""

    def __init__(self, start: float = 1e-7, end: float = 10.0, steps: int = 100, beta: float = BETA,
                 diverge_factor: float = DIVERGE_FACTOR):
        check_range(start, end, steps)
        self.start, self.end, self.steps, self.beta, self.diverge_factor = start, end, steps, beta, diverge_factor
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._avg = 0.0
        self.best = math.inf  # the smoothed loss's minimum so far
        self.stopped: str | None = None  # why the sweep ended
        self.suggestion: float | None = None

    # ---------------------------------------------------------------- the loop's hooks
    def on_fit_start(self, fit) -> None:
        fit.schedule = ExponentialSweep(self.start, self.end, self.steps)

    def on_step(self, fit, info) -> None:
        # Recorded here, before the loop's finite check, so a NaN/inf loss that ends the run is on the curve.
        lr = fit.schedule.lr_at(info.step, info.epoch, fit.history)  # the lr the update after this loss uses
        k = len(self.losses)
        self._avg = self.beta * self._avg + (1 - self.beta) * info.loss
        s = self._avg / (1 - self.beta ** (k + 1))
        self.lrs.append(float(lr))
        self.losses.append(float(info.loss))
        self.smoothed.append(float(s))

    def on_step_end(self, fit, info) -> Stop | None:
        s, k = self.smoothed[-1], len(self.smoothed) - 1
        if k > 0 and s > self.diverge_factor * self.best:
            self.stopped = (f"the smoothed loss {s:.4g} exceeded {self.diverge_factor:g}x its minimum "
                            f"{self.best:.4g} at lr {self.lrs[-1]:.3g} (step {k + 1} of {self.steps})")
        self.best = min(self.best, s)
        if self.stopped is None and len(self.losses) >= self.steps:
            self.stopped = f"swept {self.steps} steps up to lr {self.lrs[-1]:.3g}"
        return Stop("completed", f"lr-find: {self.stopped}") if self.stopped else None

    def on_fit_end(self, fit) -> None:
        if fit.status == "diverged":  # NaN/inf at a large lr: the expected end of a range test
            where = f" at lr {self.lrs[-1]:.3g} (step {len(self.lrs)} of {self.steps})" if self.lrs else ""
            self.stopped = f"the loss diverged{where}: {fit.message}"
            fit.stop("completed", f"lr-find: {self.stopped}")
        elif self.stopped is None:
            self.stopped = fit.message or f"the run ended after {len(self.lrs)} of {self.steps} steps ({fit.status})"
        i = suggest(self.lrs, self.smoothed)
        self.suggestion = None if i is None else self.lrs[i]

    # ---------------------------------------------------------------- results
    def rows(self) -> list[dict[str, float]]:
        """lr_find.csv: one row per step."""
        return [{"step": k, "lr": lr, "loss": loss, "smoothed_loss": s}
                for k, (lr, loss, s) in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=True))]

    def summary_entry(self, fit=None) -> dict[str, Any]:
        """A `hooks` entry for summary.json (at the start: the settings; at the end: the result too)."""
        finite = [(s, lr) for s, lr in zip(self.smoothed, self.lrs, strict=True) if math.isfinite(s)]
        entry = {"start": self.start, "end": self.end, "steps": self.steps, "beta": self.beta,
                 "diverge_factor": self.diverge_factor, "steps_run": len(self.lrs), "stopped": self.stopped,
                 "suggested_lr": self.suggestion,
                 "override": None if self.suggestion is None else f"optim.lr={format_lr(self.suggestion)}",
                 "min_smoothed_loss_lr": min(finite)[1] if finite else None,
                 "note": NOTE.format(start=self.start, end=self.end)}
        return {"lr_find": entry}


def format_lr(lr: float) -> str:
    """Two significant digits, as Hydra reads it back: 0.0012, 3e-05, 0.5."""
    return f"{float(f'{lr:.2g}'):g}"
