"""Learning-rate schedules as pure functions of training progress.

`lr_at(step, epoch, history) -> float`: step is the global optimizer step (0-based, counted
before the update), epoch the 0-based current epoch, history the monitored validation
metric of every completed epoch (len(history) == epoch in a normal run). Nothing is kept
between calls, so resuming from a checkpoint replays exactly; plateau recomputes its
reductions from history each time.

Build with `make_schedule(cfg, base_lr, epochs, steps_per_epoch)`, where cfg holds `name`
and the options of conf/sched/<name>.yaml. `lr_curve` tabulates a schedule per step.
"""

from __future__ import annotations

import inspect
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------- argument checks


def _num(key: str, value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"sched.{key} must be a number (got {value!r})")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"sched.{key} must be a number (got {value!r})") from None


def _int(key: str, value, low: int) -> int:
    v = _num(key, value)
    if not (v.is_integer() and v >= low):
        raise ValueError(f"sched.{key} must be an integer >= {low} (got {value!r})")
    return int(v)


def _positive(key: str, value) -> float:
    v = _num(key, value)
    if not v > 0:
        raise ValueError(f"sched.{key} must be > 0 (got {v})")
    return v


def _nonneg(key: str, value) -> float:
    v = _num(key, value)
    if not v >= 0:
        raise ValueError(f"sched.{key} must be >= 0 (got {v})")
    return v


def _choice(key: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"sched.{key} must be one of {', '.join(choices)} (got {value!r})")
    return value


# ---------------------------------------------------------------- schedules


class Schedule(ABC):
    """Base: every schedule starts from base_lr (the optimizer's lr)."""

    name = ""

    def __init__(self, optim_lr: float, epochs: float, steps_per_epoch: int):
        self.base_lr = optim_lr
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch

    @abstractmethod
    def lr_at(self, step: int, epoch: int, history: Sequence[float] = ()) -> float:
        """Implemented by each concrete class."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={getattr(self, k)!r}" for k in _options(type(self)))
        return f"{type(self).__name__}(base_lr={self.base_lr!r}{', ' if opts else ''}{opts})"


class Constant(Schedule):
    name = "constant"

    def lr_at(self, step, epoch, history=()):
        return self.base_lr


class StepDecay(Schedule):
    """base_lr * gamma ** (epoch // step_size) (torch StepLR)."""

    name = "step"

    def __init__(self, optim_lr, epochs, steps_per_epoch, *, step_size=10, gamma=0.1):
        super().__init__(optim_lr, epochs, steps_per_epoch)
        self.step_size = _int("step_size", step_size, 1)
        self.gamma = _positive("gamma", gamma)

    def lr_at(self, step, epoch, history=()):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class Exponential(Schedule):
    """base_lr * gamma ** epoch (torch ExponentialLR)."""

    name = "exponential"

    def __init__(self, optim_lr, epochs, steps_per_epoch, *, gamma=0.95):
        super().__init__(optim_lr, epochs, steps_per_epoch)
        self.gamma = _positive("gamma", gamma)

    def lr_at(self, step, epoch, history=()):
        return self.base_lr * self.gamma ** epoch


class Cosine(Schedule):
    """eta_min + (base_lr - eta_min) (1 + cos(pi T / t_max)) / 2 with T the epoch (or the
    fractional epoch step / steps_per_epoch when per_step). T is clamped to t_max, so the
    rate stays at eta_min past the end instead of rising again as torch's formula would."""

    name = "cosine"

    def __init__(self, optim_lr, epochs, steps_per_epoch, *, t_max=None, eta_min=0.0,
                 per_step=False):
        super().__init__(optim_lr, epochs, steps_per_epoch)
        self.t_max = float(epochs) if t_max is None else _positive("t_max", t_max)
        self.eta_min = _nonneg("eta_min", eta_min)
        if self.eta_min > optim_lr:
            raise ValueError(f"sched.eta_min must be <= the base lr {optim_lr} "
                             f"(got {self.eta_min})")
        if not isinstance(per_step, (bool, np.bool_)):
            raise ValueError(f"sched.per_step must be true or false (got {per_step!r})")
        self.per_step = bool(per_step)

    def lr_at(self, step, epoch, history=()):
        t = step / self.steps_per_epoch if self.per_step else epoch
        t = min(t, self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1.0 + math.cos(math.pi * t / self.t_max)) / 2.0


class Plateau(Schedule):
    """torch ReduceLROnPlateau, replayed over the completed epochs' metrics: after more
    than `patience` epochs without an improvement beyond `threshold` the rate is
    multiplied by `factor` (not below min_lr), then `cooldown` epochs are ignored."""

    name = "plateau"
    _EPS = 1e-8  # torch's default eps: reductions smaller than this are skipped

    def __init__(self, optim_lr, epochs, steps_per_epoch, *, mode="min", factor=0.1,
                 patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0):
        super().__init__(optim_lr, epochs, steps_per_epoch)
        self.mode = _choice("mode", mode, ("min", "max"))
        self.factor = _num("factor", factor)
        if not 0 <= self.factor < 1:
            raise ValueError(f"sched.factor must be in [0, 1) (got {self.factor})")
        self.patience = _int("patience", patience, 0)
        self.threshold = _nonneg("threshold", threshold)
        self.threshold_mode = _choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = _int("cooldown", cooldown, 0)
        self.min_lr = _nonneg("min_lr", min_lr)

    def _better(self, a: float, best: float) -> bool:
        th = self.threshold
        if self.mode == "min":
            return a < (best * (1.0 - th) if self.threshold_mode == "rel" else best - th)
        return a > (best * (1.0 + th) if self.threshold_mode == "rel" else best + th)

    def lr_at(self, step, epoch, history=()):
        lr = self.base_lr
        best = math.inf if self.mode == "min" else -math.inf
        bad = cooldown_left = 0
        for value in itertools.islice(history, max(epoch, 0)):
            value = float(value)
            if self._better(value, best):
                best, bad = value, 0
            else:
                bad += 1
            if cooldown_left > 0:
                cooldown_left -= 1
                bad = 0  # bad epochs during cooldown do not count
            if bad > self.patience:
                new_lr = max(lr * self.factor, self.min_lr)
                if lr - new_lr > self._EPS:
                    lr = new_lr
                cooldown_left, bad = self.cooldown, 0
        return lr


class Cyclic(Schedule):
    """torch CyclicLR per optimizer step: a triangle from base_lr up to max_lr in
    step_size_up steps and back in step_size_down; triangular2 halves the amplitude each
    cycle, exp_range scales it by gamma ** step."""

    name = "cyclic"

    def __init__(self, optim_lr, epochs, steps_per_epoch, *, base_lr=None, max_lr=0.01,
                 step_size_up=2000, step_size_down=None, mode="triangular", gamma=1.0):
        low = optim_lr if base_lr is None else _nonneg("base_lr", base_lr)
        super().__init__(low, epochs, steps_per_epoch)
        self.max_lr = _positive("max_lr", max_lr)
        if self.max_lr < low:
            raise ValueError(f"sched.max_lr must be >= base_lr {low} (got {self.max_lr})")
        self.step_size_up = _int("step_size_up", step_size_up, 1)
        self.step_size_down = (self.step_size_up if step_size_down is None
                               else _int("step_size_down", step_size_down, 1))
        self.mode = _choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = _num("gamma", gamma)
        if not 0 < self.gamma <= 1:
            raise ValueError(f"sched.gamma must be in (0, 1] (got {self.gamma})")

    def lr_at(self, step, epoch, history=()):
        total = self.step_size_up + self.step_size_down
        ratio = self.step_size_up / total
        cycle = math.floor(1 + step / total)
        x = 1.0 + step / total - cycle  # position within the cycle, in [0, 1)
        height = x / ratio if x <= ratio else (x - 1.0) / (ratio - 1.0)
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 1.0 / 2.0 ** (cycle - 1)
        else:
            scale = self.gamma ** step
        return self.base_lr + (self.max_lr - self.base_lr) * height * scale


class Warmup(Schedule):
    """Linear warmup, per step, from start_factor * base_lr to base_lr over warmup_steps
    (or warmup_epochs * steps_per_epoch when warmup_steps is 0); then the `after` schedule
    runs with its step, epoch and history counted from the end of the warmup."""

    name = "warmup"

    def __init__(self, optim_lr, epochs, steps_per_epoch, *, warmup_epochs=5, warmup_steps=0,
                 start_factor=0.1, after=None):
        super().__init__(optim_lr, epochs, steps_per_epoch)
        self.warmup_epochs = _int("warmup_epochs", warmup_epochs, 0)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        self.start_factor = _num("start_factor", start_factor)
        if not 0 < self.start_factor <= 1:
            raise ValueError(f"sched.start_factor must be in (0, 1] (got {self.start_factor})")
        if self.warmup_steps:
            self.length = self.warmup_steps
            rest = max(epochs - self.warmup_steps / steps_per_epoch, 1.0 / steps_per_epoch)
        else:
            self.length = self.warmup_epochs * steps_per_epoch
            # A run shorter than its warmup never reaches `after`; keep it buildable.
            rest = max(epochs - self.warmup_epochs, 1)
        if after is not None and not isinstance(after, Mapping):
            raise ValueError(f"sched.after must be a schedule config (got {after!r})")
        self.after = _build({"name": "cosine"} if after is None else after,
                            optim_lr, rest, steps_per_epoch)

    def lr_at(self, step, epoch, history=()):
        if step < self.length:
            frac = step / self.length
            return self.base_lr * (self.start_factor + (1.0 - self.start_factor) * frac)
        a_step = step - self.length
        if self.warmup_steps:
            a_epoch = a_step // self.steps_per_epoch
        else:
            a_epoch = epoch - self.warmup_epochs
        skipped = max(epoch - a_epoch, 0)  # epochs (and their metrics) owned by the warmup
        return self.after.lr_at(a_step, max(a_epoch, 0), list(history)[skipped:])


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, StepDecay, Exponential, Cosine, Plateau, Cyclic, Warmup)
}


def _options(cls: type[Schedule]) -> list[str]:
    """The YAML keys of a schedule: its keyword-only constructor arguments."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _build(cfg: Mapping, base_lr: float, epochs: float, steps_per_epoch: int) -> Schedule:
    opts = dict(cfg)
    name = opts.pop("name", None)
    cls = SCHEDULES.get(name)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    valid = _options(cls)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(f"sched.{name} does not take {unknown}; valid keys: {valid}")
    return cls(base_lr, epochs, steps_per_epoch, **opts)


def make_schedule(cfg: Mapping, base_lr: float, epochs: int, steps_per_epoch: int) -> Schedule:
    """Schedule from a config mapping {name, **options} (a dict or an OmegaConf node);
    base_lr is the optimizer's lr, epochs and steps_per_epoch the run's length."""
    base_lr = _positive("base_lr (the optimizer lr)", base_lr)
    epochs = _int("epochs", epochs, 1)
    steps_per_epoch = _int("steps_per_epoch", steps_per_epoch, 1)
    return _build(cfg, base_lr, epochs, steps_per_epoch)


def lr_curve(schedule: Schedule, epochs: int, steps_per_epoch: int,
             history: Sequence[float] | None = None) -> np.ndarray:
    """Learning rate of every step of a run (float64, length epochs * steps_per_epoch);
    epoch e sees history[:e], as during training."""
    hist = [] if history is None else list(history)
    out = np.empty(epochs * steps_per_epoch, dtype=np.float64)
    for e in range(epochs):
        for b in range(steps_per_epoch):
            s = e * steps_per_epoch + b
            out[s] = schedule.lr_at(s, e, hist[:e])
    return out
