"""The run's vital signs for summary.json["dashboard"]: speed, memory and how the validation loss moves.

`dashboard(rows)` is a pure function of the metrics rows (dicts with epoch, val_loss,
seconds, samples_per_s, ...) so it can be tested on rows made by hand; the trainer
passes the process's peak memory from `peak_memory_mb()`.

* seconds_per_epoch, samples_per_s: means over the epochs run.
* improvement_rate: relative val-loss improvement per epoch over the last 3 epochs
  ((v[-4] - v[-1]) / |v[-4]| / 3; fewer epochs when fewer were run; > 0 is improving).
* plateau: no relative improvement above 1e-3 of the best val loss in the last
  `patience` epochs over the best before them.
* oscillation: the val loss changed direction at least 3 times in the last 6 epochs.
* epochs_to_best: the epoch of the best val loss (highest val accuracy with
  monitor="val_accuracy").
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

PATIENCE = 3
PLATEAU_TOL = 1e-3
RATE_WINDOW = 3
OSC_WINDOW = 6
OSC_CHANGES = 3


def _finite(values) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def _mean(values) -> float | None:
    vals = _finite(values)
    return sum(vals) / len(vals) if vals else None


def improvement_rate(val: Sequence[float], window: int = RATE_WINDOW) -> float | None:
    """Relative improvement per epoch over the last `window` epochs (None with fewer than 2 values)."""
    if len(val) < 2:
        return None
    k = min(window, len(val) - 1)
    ref = val[-k - 1]
    return (ref - val[-1]) / max(abs(ref), 1e-12) / k


def is_plateau(val: Sequence[float], patience: int = PATIENCE, tol: float = PLATEAU_TOL) -> bool:
    """True when the last `patience` epochs beat the best before them by no more than `tol` (relative)."""
    if len(val) <= patience:
        return False
    before = min(val[:-patience])
    recent = min(val[-patience:])
    return (before - recent) / max(abs(before), 1e-12) <= tol


def is_oscillating(val: Sequence[float], window: int = OSC_WINDOW, changes: int = OSC_CHANGES) -> bool:
    """True when the val loss changed direction (up/down) at least `changes` times in the last `window` epochs."""
    recent = val[-window:]
    signs = [1 if b > a else -1 for a, b in zip(recent, recent[1:], strict=False) if b != a]
    return sum(1 for a, b in zip(signs, signs[1:], strict=False) if a != b) >= changes


def epochs_to_best(rows: Sequence[dict[str, Any]], monitor: str = "val_loss") -> int | None:
    key, sign = ("val_accuracy", -1.0) if monitor == "val_accuracy" else ("val_loss", 1.0)
    best, best_epoch = math.inf, None
    for i, r in enumerate(rows):
        vals = _finite([r.get(key)])
        if vals and sign * vals[0] < best:
            best, best_epoch = sign * vals[0], int(r.get("epoch", i + 1))
    return best_epoch


def dashboard(rows: Sequence[dict[str, Any]], monitor: str = "val_loss", patience: int = PATIENCE,
              peak_memory_mb: float | None = None) -> dict[str, Any]:
    """Speed, memory and val-loss trend of a run from its metrics rows (an empty list gives Nones/False)."""
    val = _finite(r.get("val_loss") for r in rows)
    rate = improvement_rate(val)
    return {
        "seconds_per_epoch": _mean(r.get("seconds") for r in rows),
        "samples_per_s": _mean(r.get("samples_per_s") for r in rows),
        "peak_memory_mb": peak_memory_mb,
        "improvement_rate": rate,
        "plateau": is_plateau(val, patience),
        "oscillation": is_oscillating(val),
        "epochs_to_best": epochs_to_best(rows, monitor),
    }


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process in MB (ru_maxrss: KB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
