"""First-order optimizers following the update rules printed in PyTorch's torch.optim docs.

Shapes: params and grads are dicts name -> array; each grad has its parameter's shape.
`step` updates the parameter arrays IN PLACE (the trainer's params dict stays valid) and
never writes into a gradient. Per-parameter state (moments, buffers) is keyed by parameter
name and created lazily at the first step that sees the parameter, in its dtype.

Differences from torch worth knowing: the step counter t (bias corrections, Adagrad's
lr_decay, NAdam's momentum schedule) is one per optimizer, not one per parameter, so a
parameter left out of some steps' grads still uses the global t; NAdam's mu product is
likewise one scalar.

state_dict() is flat, name -> ndarray ("step" and "nadam.mu_product" as 0-d arrays, slots
as "<optimizer>.<slot>.<param>"), so it saves into an .npz without pickle.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

# ---------------------------------------------------------------- argument checks


def _num(key: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"optim.{key} must be a number (got {value!r})") from None


def _positive(key: str, value) -> float:
    v = _num(key, value)
    if not v > 0:  # also rejects NaN
        raise ValueError(f"optim.{key} must be > 0 (got {v})")
    return v


def _nonneg(key: str, value) -> float:
    v = _num(key, value)
    if not v >= 0:
        raise ValueError(f"optim.{key} must be >= 0 (got {v})")
    return v


def _unit(key: str, value, closed: bool = False) -> float:
    """Value in [0, 1), or [0, 1] when closed."""
    v = _num(key, value)
    if not (0 <= v <= 1 if closed else 0 <= v < 1):
        raise ValueError(f"optim.{key} must be in [0, 1{']' if closed else ')'} (got {v})")
    return v


def _flag(key: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"optim.{key} must be true or false (got {value!r})")
    return bool(value)


def _betas(value) -> tuple[float, float]:
    try:
        b1, b2 = (float(b) for b in value)
    except (TypeError, ValueError):
        b1 = b2 = math.nan
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"optim.betas must be two values in [0, 1) (got {value!r})")
    return b1, b2


# ---------------------------------------------------------------- base class


class Optimizer(ABC):
    """Shared step loop, lazy state, scratch buffers and state_dict plumbing.

    Subclasses set `name`, list their state slots in `_slots()` and implement
    `_update(key, p, g, lr)`, which must change p only in place.
    """

    name = ""

    def __init__(self, lr: float, weight_decay: float = 0.0):
        self.lr = _positive("lr", lr)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.t = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        # Two reusable per-parameter temporaries, so a step allocates nothing after the
        # first one. Not state: they are overwritten before being read in every step.
        self._scratch: dict[str, list[np.ndarray]] = {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in _kwargs(type(self)))
        return f"{type(self).__name__}({args})"

    # -- hooks for subclasses
    def _slots(self) -> tuple[str, ...]:
        return ()

    def _begin_step(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Per-step scalar work done once before the parameter loop."""

    @abstractmethod
    def _update(self, key: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        """Implemented by each concrete class."""

    # -- helpers for subclasses
    def _slot(self, key: str, slot: str, p: np.ndarray, fill: float = 0.0) -> np.ndarray:
        slots = self.state.setdefault(key, {})
        arr = slots.get(slot)
        if arr is None:
            arr = slots[slot] = np.full_like(p, fill)
        elif arr.shape != p.shape:
            raise ValueError(f"optimizer state {self.name}.{slot}.{key} has shape {arr.shape}, "
                             f"parameter has {p.shape}")
        return arr

    def _tmp(self, key: str, p: np.ndarray) -> list[np.ndarray]:
        bufs = self._scratch.get(key)
        if bufs is None or bufs[0].shape != p.shape or bufs[0].dtype != p.dtype:
            bufs = self._scratch[key] = [np.empty_like(p), np.empty_like(p)]
        return bufs

    def _l2(self, p: np.ndarray, g: np.ndarray, buf: np.ndarray) -> np.ndarray:
        """Coupled weight decay g + wd * p, written into buf (never into g)."""
        if not self.weight_decay:
            return g
        np.multiply(p, self.weight_decay, out=buf)
        buf += g
        return buf

    # -- public API
    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
             lr: float | None = None) -> None:
        """One update of every parameter that has a gradient; lr overrides self.lr once."""
        if lr is None:
            lr = self.lr
        else:
            lr = _nonneg("lr", lr)  # a schedule may legitimately reach 0
        missing = [k for k in grads if k not in params]
        if missing:
            raise KeyError(f"gradients for unknown parameters: {missing}")
        self.t += 1
        self._begin_step()
        for key, g in grads.items():
            p = params[key]
            g = np.asarray(g)
            if not isinstance(p, np.ndarray):
                raise TypeError(f"parameter {key!r} must be a numpy array to update in place")
            if g.shape != p.shape:
                raise ValueError(f"gradient {key!r} has shape {g.shape}, parameter {p.shape}")
            self._update(key, p, g, lr)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {"step": np.array(self.t, dtype=np.int64)}
        for key, slots in self.state.items():
            for slot, arr in slots.items():
                out[f"{self.name}.{slot}.{key}"] = arr.copy()
        out.update(self._extra_state())
        return out

    def load_state_dict(self, d: Mapping[str, np.ndarray]) -> None:
        if "step" not in d:
            raise ValueError("optimizer state_dict has no 'step' entry")
        state: dict[str, dict[str, np.ndarray]] = {}
        extra = {}
        for full, value in d.items():
            if full == "step":
                continue
            parts = full.split(".", 2)  # parameter names may contain dots themselves
            if parts[0] != self.name:
                raise ValueError(f"state entry {full!r} does not belong to optimizer "
                                 f"{self.name!r}")
            if len(parts) == 2:
                extra[parts[1]] = value
            elif parts[1] in self._slots():
                # Copy: later in-place updates must not write into the caller's arrays.
                state.setdefault(parts[2], {})[parts[1]] = np.array(value, copy=True)
            else:
                raise ValueError(f"state entry {full!r}: slot {parts[1]!r} is not used by "
                                 f"this {self.name} configuration (slots: {self._slots()})")
        self._load_extra(extra)
        self.t = int(d["step"])
        self.state = state

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_extra(self, extra: Mapping[str, np.ndarray]) -> None:
        if extra:
            raise ValueError(f"unexpected {self.name} state entries: {sorted(extra)}")


# ---------------------------------------------------------------- SGD family


class _SGDFamily(Optimizer):
    """theta -= lr * d, with d the (optionally momentum / Nesterov) direction.

    Momentum buffer: b_1 = g_1, b_t = mu b_{t-1} + (1 - dampening) g_t.
    """

    momentum = 0.0
    dampening = 0.0
    nesterov = False

    def _slots(self):
        return ("buf",) if self.momentum else ()

    def _update(self, key, p, g, lr):
        s, s2 = self._tmp(key, p)
        d = self._l2(p, g, s2)
        if self.momentum:
            slots = self.state.setdefault(key, {})
            if "buf" not in slots:  # first step for this parameter: b_1 = g_1, undamped
                buf = slots["buf"] = np.array(d, dtype=p.dtype, copy=True)
            else:
                buf = slots["buf"]
                buf *= self.momentum
                if self.dampening:
                    np.multiply(d, 1.0 - self.dampening, out=s)
                    buf += s
                else:
                    buf += d
            if self.nesterov:  # look ahead: d + mu * b_t
                np.multiply(buf, self.momentum, out=s)
                s += d
                s *= lr
            else:
                np.multiply(buf, lr, out=s)
        else:
            np.multiply(d, lr, out=s)
        p -= s


class SGD(_SGDFamily):
    name = "sgd"

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)


class Momentum(_SGDFamily):
    name = "momentum"

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, dampening: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.momentum = _unit("momentum", momentum)
        self.dampening = _unit("dampening", dampening, closed=True)


class Nesterov(_SGDFamily):
    name = "nesterov"
    nesterov = True

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.momentum = _unit("momentum", momentum)
        if self.momentum == 0:  # torch refuses this too: it would silently be plain SGD
            raise ValueError("optim.momentum must be in (0, 1) for nesterov (got 0.0)")


# ---------------------------------------------------------------- RMSprop


class RMSprop(Optimizer):
    """v = alpha v + (1-alpha) g^2; centered subtracts the squared running mean of g;
    theta -= lr g / (sqrt(v~) + eps), through a momentum buffer when momentum > 0."""

    name = "rmsprop"

    def __init__(self, lr: float = 0.001, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.alpha = _unit("alpha", alpha)
        self.eps = _positive("eps", eps)
        self.momentum = _unit("momentum", momentum)
        self.centered = _flag("centered", centered)

    def _slots(self):
        return ("v",) + (("g_avg",) if self.centered else ()) + (
            ("buf",) if self.momentum else ())

    def _update(self, key, p, g, lr):
        s, s2 = self._tmp(key, p)
        d = self._l2(p, g, s2)
        a = self.alpha
        v = self._slot(key, "v", p)
        v *= a
        np.multiply(d, d, out=s)
        s *= 1.0 - a
        v += s
        if self.centered:
            g_avg = self._slot(key, "g_avg", p)
            g_avg *= a
            np.multiply(d, 1.0 - a, out=s)
            g_avg += s
            np.multiply(g_avg, g_avg, out=s)
            np.subtract(v, s, out=s)
            np.maximum(s, 0, out=s)  # v >= g_avg^2 in exact arithmetic; rounding may not
            np.sqrt(s, out=s)
        else:
            np.sqrt(v, out=s)
        s += self.eps
        np.divide(d, s, out=s)
        if self.momentum:
            buf = self._slot(key, "buf", p)
            buf *= self.momentum
            buf += s
            np.multiply(buf, lr, out=s)
        else:
            s *= lr
        p -= s


# ---------------------------------------------------------------- Adam family


class Adam(Optimizer):
    """m, v: exponential moments of g; theta -= lr m^ / (sqrt(v^) + eps) with
    m^ = m / (1 - b1^t), v^ = v / (1 - b2^t) (amsgrad: v replaced by its running max,
    taken before the bias correction as torch does). weight_decay is coupled L2."""

    name = "adam"
    decoupled = False

    def __init__(self, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(lr, weight_decay)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)
        self.amsgrad = _flag("amsgrad", amsgrad)

    def _slots(self):
        return ("m", "v", "v_max") if self.amsgrad else ("m", "v")

    def _update(self, key, p, g, lr):
        s, s2 = self._tmp(key, p)
        b1, b2 = self.betas
        if self.decoupled:
            if self.weight_decay:
                p *= 1.0 - lr * self.weight_decay
            d = g
        else:
            d = self._l2(p, g, s2)
        m = self._slot(key, "m", p)
        v = self._slot(key, "v", p)
        m *= b1
        np.multiply(d, 1.0 - b1, out=s)
        m += s
        v *= b2
        np.multiply(d, d, out=s)
        s *= 1.0 - b2
        v += s
        if self.amsgrad:
            v_max = self._slot(key, "v_max", p)
            np.maximum(v_max, v, out=v_max)
            v = v_max
        # sqrt(v / bc2) + eps computed as sqrt(v) / sqrt(bc2) + eps (torch's order).
        np.sqrt(v, out=s)
        s *= 1.0 / math.sqrt(1.0 - b2 ** self.t)
        s += self.eps
        np.divide(m, s, out=s)
        s *= lr / (1.0 - b1 ** self.t)
        p -= s


class AdamW(Adam):
    """Adam with decoupled weight decay: theta *= 1 - lr * wd before the Adam step."""

    name = "adamw"
    decoupled = True

    def __init__(self, lr: float = 0.001, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(lr, betas, eps, weight_decay, amsgrad)


class NAdam(Optimizer):
    """Adam with Nesterov momentum and the momentum schedule
    mu_t = b1 (1 - 0.5 * 0.96^(t psi)) (Dozat 2016, as in torch.optim.NAdam)."""

    name = "nadam"

    def __init__(self, lr: float = 0.002, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 0.004):
        super().__init__(lr, weight_decay)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)
        self.momentum_decay = _nonneg("momentum_decay", momentum_decay)
        self.mu_product = 1.0

    def _slots(self):
        return ("m", "v")

    def _begin_step(self):
        b1, psi, t = self.betas[0], self.momentum_decay, self.t
        self._mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        self._mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        self.mu_product *= self._mu

    def _update(self, key, p, g, lr):
        s, s2 = self._tmp(key, p)
        b1, b2 = self.betas
        d = self._l2(p, g, s2)
        m = self._slot(key, "m", p)
        v = self._slot(key, "v", p)
        m *= b1
        np.multiply(d, 1.0 - b1, out=s)
        m += s
        v *= b2
        np.multiply(d, d, out=s)
        s *= 1.0 - b2
        v += s
        np.divide(v, 1.0 - b2 ** self.t, out=s)
        np.sqrt(s, out=s)
        s += self.eps  # s is the denominator from here on
        # Gradient term first (d may live in s2, which is then reused), then momentum term.
        np.multiply(d, lr * (1.0 - self._mu) / (1.0 - self.mu_product), out=s2)
        s2 /= s
        p -= s2
        np.multiply(m, lr * self._mu_next / (1.0 - self.mu_product * self._mu_next), out=s2)
        s2 /= s
        p -= s2

    def _extra_state(self):
        return {"nadam.mu_product": np.array(self.mu_product, dtype=np.float64)}

    def _load_extra(self, extra):
        unknown = set(extra) - {"mu_product"}
        if unknown or "mu_product" not in extra:
            raise ValueError(f"nadam state needs exactly 'nadam.mu_product' besides slots "
                             f"(got extra entries {sorted(extra)})")
        self.mu_product = float(extra["mu_product"])


# ---------------------------------------------------------------- Adagrad


class Adagrad(Optimizer):
    """sum += g^2; theta -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps)."""

    name = "adagrad"

    def __init__(self, lr: float = 0.01, lr_decay: float = 0.0, eps: float = 1e-10,
                 initial_accumulator_value: float = 0.0, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        self.lr_decay = _nonneg("lr_decay", lr_decay)
        self.eps = _positive("eps", eps)
        self.initial_accumulator_value = _nonneg("initial_accumulator_value",
                                                 initial_accumulator_value)

    def _slots(self):
        return ("sum",)

    def _update(self, key, p, g, lr):
        s, s2 = self._tmp(key, p)
        d = self._l2(p, g, s2)
        acc = self._slot(key, "sum", p, fill=self.initial_accumulator_value)
        np.multiply(d, d, out=s)
        acc += s
        np.sqrt(acc, out=s)
        s += self.eps
        np.divide(d, s, out=s)
        s *= lr / (1.0 + (self.t - 1) * self.lr_decay)
        p -= s


# ---------------------------------------------------------------- factory

OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, RMSprop, Adam, AdamW, Adagrad, NAdam)
}


def _kwargs(cls: type[Optimizer]) -> list[str]:
    return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]


def make_optimizer(name: str, **kwargs) -> Optimizer:
    """Optimizer by config name; kwargs are the YAML keys (make_optimizer(**cfg) works)."""
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    valid = _kwargs(cls)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"optim.{name} does not take {unknown}; valid keys: {valid}")
    return cls(**kwargs)
