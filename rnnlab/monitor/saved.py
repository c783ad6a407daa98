"""The monitor's accumulators as arrays, for the training checkpoint (exact resume).

A tracker's `state_dict()` is flat: names to JSON values (counters, names, steps) or NumPy arrays
(records, curves, histogram counts), which the recorder stores in `training_state.npz` rather than
in JSON. Records (lists of rows) travel as one array per column; `.tolist()` gives back the very
Python ints, floats and strings the rows held, so the CSV files a resumed run writes are the
uninterrupted run's byte for byte.

    arrays = columns(rows, ("step", "param", "norm"), "grad.")   # {"grad.step": int64, "grad.param": <U, ...}
    rows = records(arrays, ("step", "param", "norm"), "grad.")   # [(0, "w", 0.5), ...] (tuples)
    cached = Columns(("step", "param", "norm"), "grad.")         # cached(rows): converts new rows only
"""

from __future__ import annotations

from typing import Any

import numpy as np


def columns(rows: list, names: tuple[str, ...], prefix: str) -> dict[str, np.ndarray]:
    """Rows (tuples in `names` order, or dicts with those keys) as one array per column."""
    as_tuples = [tuple(r[n] for n in names) if isinstance(r, dict) else tuple(r) for r in rows]
    cols = list(zip(*as_tuples, strict=True)) if as_tuples else [()] * len(names)
    return {prefix + n: np.asarray(c) for n, c in zip(names, cols, strict=True)}


class Columns:
    """`columns` of a list of rows that only grows (a tracker's records): converts the rows added since the
    last call only, so a checkpoint every few steps does not redo a long run's records each time."""

    def __init__(self, names: tuple[str, ...], prefix: str):
        self.names, self.prefix = names, prefix
        self.done: list | None = None  # the list converted so far, and its length then
        self.n, self.arrays = 0, columns([], names, prefix)

    def __call__(self, rows: list) -> dict[str, np.ndarray]:
        if rows is not self.done or len(rows) < self.n:  # another list (a loaded state): from scratch
            self.done, self.n, self.arrays = rows, 0, columns([], self.names, self.prefix)
        if len(rows) > self.n:
            new = columns(rows[self.n:], self.names, self.prefix)
            self.arrays = new if self.n == 0 else {k: np.concatenate([a, new[k]]) for k, a in self.arrays.items()}
            self.n = len(rows)
        return dict(self.arrays)


def records(arrays: dict[str, Any], names: tuple[str, ...], prefix: str) -> list[tuple]:
    """The rows `columns` stored, as tuples of Python values."""
    return list(zip(*(np.asarray(arrays[prefix + n]).tolist() for n in names), strict=True))


def number(v: float | None) -> np.ndarray:
    """A float that may be None or NaN (strict JSON would turn both into null), as a 0-d array."""
    return np.array([] if v is None else [float(v)], dtype=np.float64)


def unnumber(a) -> float | None:
    a = np.asarray(a)
    return None if a.size == 0 else float(a[0])


def floats(d: dict[str, float], prefix: str) -> dict[str, Any]:
    """{name: float} (NaN allowed) as a names list (JSON) and a values array."""
    return {prefix + "names": list(d), prefix + "values": np.asarray([float(v) for v in d.values()],
                                                                      dtype=np.float64)}


def unfloats(state: dict[str, Any], prefix: str) -> dict[str, float]:
    return dict(zip(state[prefix + "names"], np.asarray(state[prefix + "values"]).tolist(), strict=True))


def ragged(parts: list[np.ndarray], prefix: str, dtype) -> dict[str, np.ndarray]:
    """A list of 1-d arrays of different lengths as their concatenation and lengths."""
    return {prefix + "values": np.concatenate([np.asarray(p, dtype=dtype).reshape(-1) for p in parts])
            if parts else np.zeros(0, dtype=dtype),
            prefix + "lengths": np.asarray([len(p) for p in parts], dtype=np.int64)}


def unragged(state: dict[str, Any], prefix: str) -> list[np.ndarray]:
    values, lengths = np.asarray(state[prefix + "values"]), np.asarray(state[prefix + "lengths"])
    return [a.copy() for a in np.split(values, np.cumsum(lengths)[:-1])] if len(lengths) else []
