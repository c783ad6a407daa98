"""Time-series augmentation of training batches (`data.augment`).

Each augmentation is a pure function `fn(x, mask, rng, **params)` on a batch x (B, T, D)
of floats with an optional mask (B, T) of 0/1: it returns a new array of the same shape
and dtype (x is never modified), leaves padded steps (mask 0) as they are (zeros in
rnnlab's data) and, for the ones that move values along time, works on each sequence's
real steps only. Every one is the identity at zero strength (sigma 0, ratio 1, shift 0).

* jitter: additive Gaussian noise N(0, sigma^2) (Um et al. 2017).
* scaling: each sequence and channel multiplied by one factor ~ N(1, sigma^2) (Um et al. 2017).
* magnitude_warp: multiplied by a smooth random curve, a natural cubic spline through
  `knots` + 2 evenly spaced values ~ N(1, sigma^2), one curve per sequence and channel
  (Um et al. 2017).
* time_warp: the time axis distorted smoothly and monotonically: the local speed is a
  spline through `knots` + 2 values ~ N(1, sigma^2) (kept >= 0.1), its running sum maps
  step t to a position in [0, T-1] (first and last step fixed), and the sequence is
  resampled there by linear interpolation; the length is kept (Um et al. 2017;
  Iwana & Uchida 2021).
* window_slice: a random window of `ratio` * T steps, stretched back to T steps by linear
  interpolation (Le Guennec et al. 2016, as in Iwana & Uchida 2021).
* phase_shift: shifted by a random whole number of steps in [-max_shift, max_shift]. The
  default mode "edge" repeats the first (or last) value into the steps the shift opens,
  "zero" leaves 0 there, "circular" wraps around. For forecasting windows a circular
  shift glues the window's end to its start, a jump no real series makes, so edge is
  the default.
* mixup: pairs of sequences of the batch mixed, lam x_i + (1 - lam) x_perm[i], with one
  lam ~ Beta(alpha, alpha) per batch (Zhang et al. 2018). The targets must be mixed alike:
  `mixup` returns the pairing `Mix(perm, lam)`; the trainer mixes regression targets and,
  for class labels, the losses: lam L(y) + (1 - lam) L(y[perm]). The mask of a mixed pair
  is the union of both masks.

`apply(x, mask, specs, rng)` runs a list of specs in order; a spec is a dict
{"name": ..., params..., "p": probability per sequence} (see `normalize_specs`). A sequence
not drawn (probability 1 - p) is left alone; for mixup it is paired with itself.

References: B. K. Iwana, S. Uchida, "An empirical survey of data augmentation for time
series classification with neural networks", PLOS ONE 2021. T. T. Um et al., "Data
augmentation of wearable sensor data for Parkinson's disease monitoring using
convolutional neural networks", ICMI 2017. A. Le Guennec, S. Malinowski, R. Tavenard,
"Data augmentation for time series classification using convolutional neural networks",
AALTD 2016. H. Zhang, M. Cisse, Y. N. Dauphin, D. Lopez-Paz, "mixup: Beyond empirical
risk minimization", ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnlab.data.base import DataError

# The training batches' generator is SeedSequence(seed) child number AUGMENT_STREAM
# (= SeedSequence(seed).spawn(AUGMENT_STREAM + 1)[-1]): apart from the trainer's spawned
# streams, so switching augmentation on changes no other random number of a run.
AUGMENT_STREAM = 100
MIN_SPEED = 0.1  # time_warp: the slowest local speed, so the warp stays strictly increasing
SHIFT_MODES = ("edge", "zero", "circular")


@dataclass(frozen=True)
class Mix:
    """How mixup paired the batch: row i became lam x[i] + (1 - lam) x[perm[i]]."""

    perm: np.ndarray
    lam: float

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Float targets mixed like the inputs (regression)."""
        return (y + (1.0 - self.lam) * (y[self.perm] - y)).astype(y.dtype, copy=False)


# ---------------------------------------------------------------------------- helpers


def _valid(mask: np.ndarray | None) -> bool:
    """True when every step is real (no per-sequence handling needed)."""
    return mask is None or bool(np.all(mask > 0))


def _keep_padding(out: np.ndarray, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is not None:
        out = np.where(mask[:, :, None] > 0, out, x)
    return out.astype(x.dtype, copy=False)


def _per_sequence(fn: Callable, x: np.ndarray, mask: np.ndarray | None, rng, **params) -> np.ndarray:
    """fn(x (B, T, D), rng, **params) on full-length batches; with padding, each sequence's real steps alone."""
    if _valid(mask):
        return np.asarray(fn(np.asarray(x, dtype=np.float64), rng, **params)).astype(x.dtype, copy=False)
    out = np.array(x, copy=True)
    for i in range(len(x)):
        pos = np.flatnonzero(mask[i] > 0)
        if len(pos):
            out[i, pos] = fn(np.asarray(x[i : i + 1, pos], dtype=np.float64), rng, **params)[0]
    return out


def natural_cubic_spline(xk: np.ndarray, yk: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Natural cubic spline through (xk, yk[..., k]) evaluated at x; yk (..., K) -> (..., len(x)).

    Equal knot values give exactly that constant (the curve is y_i + t (y_{i+1} - y_i) + cubic
    terms that vanish), so zero-strength warps are exact identities.
    """
    xk = np.asarray(xk, dtype=np.float64)
    yk = np.asarray(yk, dtype=np.float64)
    k = len(xk)
    h = np.diff(xk)
    m = np.zeros(yk.shape)  # second derivatives; natural ends: 0
    if k > 2:
        a = np.zeros((k - 2, k - 2))
        idx = np.arange(k - 2)
        a[idx, idx] = 2 * (h[:-1] + h[1:])
        a[idx[1:], idx[:-1]] = h[1:-1]
        a[idx[:-1], idx[1:]] = h[1:-1]
        slope = np.diff(yk, axis=-1) / h
        rhs = 6 * np.diff(slope, axis=-1)  # (..., k-2)
        m[..., 1:-1] = np.linalg.solve(a, rhs.reshape(-1, k - 2).T).T.reshape(rhs.shape)
    i = np.clip(np.searchsorted(xk, x, side="right") - 1, 0, k - 2)
    hi = h[i]
    t = (x - xk[i]) / hi
    y0, y1, m0, m1 = yk[..., i], yk[..., i + 1], m[..., i], m[..., i + 1]
    # y0 + t (y1 - y0) + h^2/6 [ m0 ((1-t)^3 - (1-t)) + m1 (t^3 - t) ]
    return y0 + t * (y1 - y0) + hi**2 / 6 * (m0 * ((1 - t) ** 3 - (1 - t)) + m1 * (t**3 - t))


def _random_curves(rng, shape: tuple[int, ...], length: int, knots: int, sigma: float) -> np.ndarray:
    """Smooth curves (*shape, length) through knots + 2 values ~ N(1, sigma^2), evenly spaced."""
    values = rng.normal(1.0, sigma, size=(*shape, knots + 2))
    if length == 1:
        return values[..., :1]
    xk = np.linspace(0, length - 1, knots + 2)
    return natural_cubic_spline(xk, values, np.arange(length, dtype=np.float64))


def _resample(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """x (B, T, D) read at fractional steps positions (B, T') by linear interpolation -> (B, T', D)."""
    t = x.shape[1]
    lo = np.clip(np.floor(positions).astype(np.int64), 0, max(t - 2, 0))
    hi = np.minimum(lo + 1, t - 1)
    w = (positions - lo)[:, :, None]
    rows = np.arange(len(x))[:, None]
    return x[rows, lo] + w * (x[rows, hi] - x[rows, lo])


# ---------------------------------------------------------------------- augmentations


def jitter(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, sigma: float = 0.03) -> np.ndarray:
    """Additive Gaussian noise N(0, sigma^2) on every real step (Um et al. 2017)."""
    noise = rng.normal(0.0, 1.0, size=x.shape) * sigma
    return _keep_padding(x + noise, x, mask)


def scaling(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    """Each sequence and channel times one factor ~ N(1, sigma^2) (Um et al. 2017)."""
    factor = rng.normal(1.0, sigma, size=(x.shape[0], 1, x.shape[2]))
    return _keep_padding(x * factor, x, mask)


def _magnitude_warp(x, rng, knots, sigma):
    b, t, d = x.shape
    return x * np.moveaxis(_random_curves(rng, (b, d), t, knots, sigma), 1, 2)


def magnitude_warp(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, sigma: float = 0.2,
                   knots: int = 4) -> np.ndarray:
    """Times a smooth random curve (a spline through knots + 2 values ~ N(1, sigma^2)) per channel (Um et al. 2017)."""
    return _per_sequence(_magnitude_warp, x, mask, rng, knots=knots, sigma=sigma)


def time_warp_path(length: int, rng: np.random.Generator, sigma: float = 0.2, knots: int = 4,
                   batch: int = 1) -> np.ndarray:
    """Warped read positions (batch, length): strictly increasing from 0 to length - 1.

    The local speed is a smooth curve through knots + 2 values ~ N(1, sigma^2), floored at
    MIN_SPEED; the positions are its running sum, scaled to end at length - 1.
    """
    if length < 2:
        rng.normal(size=(batch, knots + 2))  # same draws whatever the length
        return np.zeros((batch, length))
    speed = np.maximum(_random_curves(rng, (batch,), length - 1, knots, sigma), MIN_SPEED)
    total = speed.sum(axis=1, keepdims=True)
    path = np.concatenate([np.zeros((batch, 1)), np.cumsum(speed, axis=1)], axis=1)
    path = path * ((length - 1) / total)
    path[:, -1] = length - 1  # exact end point, whatever the rounding
    return path


def _time_warp(x, rng, knots, sigma):
    return _resample(x, time_warp_path(x.shape[1], rng, sigma, knots, batch=len(x)))


def time_warp(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, sigma: float = 0.2,
              knots: int = 4) -> np.ndarray:
    """Smooth monotone distortion of time, resampled linearly; length, first and last step kept (Um et al. 2017)."""
    return _per_sequence(_time_warp, x, mask, rng, knots=knots, sigma=sigma)


def _window_slice(x, rng, ratio):
    b, t, _ = x.shape
    width = max(1, int(np.ceil(ratio * t)))
    start = rng.integers(0, t - width + 1, size=b)
    if width == 1:
        positions = np.broadcast_to(start[:, None], (b, t)).astype(np.float64)
    else:
        positions = start[:, None] + np.linspace(0, width - 1, t)[None, :]
    return _resample(x, positions)


def window_slice(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, ratio: float = 0.9) -> np.ndarray:
    """A random window of ceil(ratio T) steps, stretched back to T steps (Le Guennec et al. 2016)."""
    return _per_sequence(_window_slice, x, mask, rng, ratio=ratio)


def _phase_shift(x, rng, max_shift, mode):
    b, t, _ = x.shape
    shift = rng.integers(-max_shift, max_shift + 1, size=b)
    src = np.arange(t)[None, :] - shift[:, None]  # out[t] = x[t - shift]
    rows = np.arange(b)[:, None]
    if mode == "circular":
        return x[rows, src % t]
    out = x[rows, np.clip(src, 0, t - 1)]
    if mode == "zero":
        out = np.where(((src >= 0) & (src < t))[:, :, None], out, 0.0)
    return out


def phase_shift(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, max_shift: int = 3,
                mode: str = "edge") -> np.ndarray:
    """Shifted in time by a random whole number of steps in [-max_shift, max_shift].

    mode "edge" (default) fills the opened steps with the nearest value, "zero" with 0,
    "circular" wraps around (which joins a forecasting window's end to its start).
    """
    if mode not in SHIFT_MODES:
        raise ValueError(f"phase_shift mode must be one of {', '.join(SHIFT_MODES)} (got '{mode}')")
    return _per_sequence(_phase_shift, x, mask, rng, max_shift=int(max_shift), mode=mode)


def mixup(x: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, alpha: float = 0.2,
          selected: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, Mix]:
    """(lam x + (1 - lam) x[perm], union of the masks, Mix(perm, lam)), lam ~ Beta(alpha, alpha) (Zhang et al. 2018).

    Rows not in `selected` (a boolean (B,) array; default all) are paired with themselves.
    """
    b = len(x)
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(b)
    if selected is not None:
        perm = np.where(selected, perm, np.arange(b))
    out = (x + (1.0 - lam) * (x[perm] - x)).astype(x.dtype, copy=False)  # rows paired with themselves: exact
    if mask is not None:
        mask = np.maximum(mask, mask[perm])
    return out, mask, Mix(perm=perm, lam=lam)


# ------------------------------------------------------------------- specs and apply


@dataclass(frozen=True)
class Param:
    default: Any
    kind: str  # "float", "int" or "choice"
    check: Callable[[Any], bool]
    rule: str  # what check accepts, for the error message


def _nonneg(v) -> bool:
    return v >= 0


AUGMENTATIONS: dict[str, tuple[Callable, dict[str, Param]]] = {
    "jitter": (jitter, {"sigma": Param(0.03, "float", _nonneg, ">= 0")}),
    "scaling": (scaling, {"sigma": Param(0.1, "float", _nonneg, ">= 0")}),
    "magnitude_warp": (magnitude_warp, {"sigma": Param(0.2, "float", _nonneg, ">= 0"),
                                        "knots": Param(4, "int", lambda v: v >= 1, "an integer >= 1")}),
    "time_warp": (time_warp, {"sigma": Param(0.2, "float", _nonneg, ">= 0"),
                              "knots": Param(4, "int", lambda v: v >= 1, "an integer >= 1")}),
    "window_slice": (window_slice, {"ratio": Param(0.9, "float", lambda v: 0 < v <= 1, "in (0, 1]")}),
    "phase_shift": (phase_shift, {"max_shift": Param(3, "int", _nonneg, "an integer >= 0"),
                                  "mode": Param("edge", "choice", lambda v: v in SHIFT_MODES,
                                                f"one of {', '.join(SHIFT_MODES)}")}),
    "mixup": (mixup, {"alpha": Param(0.2, "float", lambda v: v > 0, "> 0")}),
}
P_RULE = Param(1.0, "float", lambda v: 0 <= v <= 1, "in [0, 1]")


def _convert(value: Any, param: Param) -> Any:
    """The value as the param's type, or None when it has the wrong type."""
    if param.kind == "choice":
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if param.kind == "int":
        return int(value) if float(value).is_integer() else None
    return float(value)


def normalize_specs(value: Any, key: str = "data.augment") -> list[dict[str, Any]]:
    """Names or dicts -> full dicts {"name", params..., "p"}; ValueError (one line naming the key) on bad input."""
    if value is None:
        return []
    if isinstance(value, str | dict) or not hasattr(value, "__iter__"):
        raise ValueError(f"{key} must be a list of augmentation names or {{name: ..., ...}} entries (got {value!r})")
    names = ", ".join(AUGMENTATIONS)
    out = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not hasattr(entry, "items") or "name" not in entry:
            raise ValueError(f"{where} must be an augmentation name or a mapping with a 'name' (got {entry!r})")
        entry = dict(entry.items())
        name = entry.pop("name")
        if name not in AUGMENTATIONS:
            raise ValueError(f"{where}: unknown augmentation '{name}' (choose from: {names})")
        params = {**AUGMENTATIONS[name][1], "p": P_RULE}
        spec: dict[str, Any] = {"name": name}
        for pname, param in params.items():
            raw = entry.pop(pname, param.default)
            v = _convert(raw, param)
            if v is None or not param.check(v):
                raise ValueError(f"{where} ({name}): {pname} must be {param.rule} (got {raw!r})")
            spec[pname] = v
        if entry:
            raise ValueError(f"{where} ({name}): unknown parameter '{next(iter(entry))}' "
                             f"(parameters: {', '.join(params)})")
        out.append(spec)
    if sum(s["name"] == "mixup" for s in out) > 1:
        raise ValueError(f"{key} may hold mixup once (it pairs the batch's sequences)")
    return out


def parse_names(text: str) -> list[dict[str, Any]]:
    """Specs from a comma-separated list of names (the CLI's --aug jitter,time_warp), with default parameters."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--aug needs at least one augmentation name (e.g. --aug jitter,time_warp)")
    return normalize_specs(names, key="--aug")


def apply(x: np.ndarray, mask: np.ndarray | None, specs: list, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray | None, Mix | None]:
    """Run the specs in order -> (x, mask, Mix or None). Each spec draws which sequences it touches (p)."""
    specs = normalize_specs(specs, key="specs")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating) or x.ndim != 3:
        raise ValueError(f"augmentation needs float inputs of shape (B, T, D) (got {x.dtype} {x.shape})")
    mix = None
    for spec in specs:
        fn = AUGMENTATIONS[spec["name"]][0]
        params = {k: v for k, v in spec.items() if k not in ("name", "p")}
        selected = rng.random(len(x)) < spec["p"]
        if spec["name"] == "mixup":
            x, mask, mix = fn(x, mask, rng, selected=selected, **params)
        elif selected.all():
            x = fn(x, mask, rng, **params)
        elif selected.any():
            x = x.copy()
            x[selected] = fn(x[selected], None if mask is None else mask[selected], rng, **params)
    return x, mask, mix


# ----------------------------------------------------------------------------- trainer


def stream(seed: int) -> np.random.Generator:
    """The augmentation generator of a run (SeedSequence child AUGMENT_STREAM of the run's seed)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(AUGMENT_STREAM,)))


class Augmenter:
    """The training batches' augmentation: `xb, mb, mix = augmenter(xb, mb)` (mix: Mix or None)."""

    def __init__(self, specs: list, rng: np.random.Generator):
        self.specs = normalize_specs(specs)
        self.rng = rng

    def __call__(self, x: np.ndarray, mask: np.ndarray | None):
        return apply(x, mask, self.specs, self.rng)


def for_training(cfg, data) -> Augmenter | None:
    """The run's Augmenter, or None without data.augment; DataError (one line) when it cannot apply."""
    specs = getattr(cfg.data, "augment", None) or []
    if not specs:
        return None

    if data.embedding or not np.issubdtype(data.train.x.dtype, np.floating) or data.train.x.ndim != 3:
        raise DataError(f"data.augment needs float inputs (B, T, D), but data '{cfg.data.name}' has "
                        f"{data.train.x.dtype} inputs of shape {data.train.x.shape[1:]}")
    reg = getattr(cfg, "reg", None)
    if getattr(reg, "mixup_alpha", 0) > 0 and any(s["name"] == "mixup" for s in normalize_specs(specs)):
        raise DataError("data.augment has mixup and reg.mixup_alpha > 0: both mix the batch; use one of them")
    return Augmenter(specs, stream(cfg.seed))
