"""What every sequence-file reader hands back, and the small helpers the readers share."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError


@dataclass
class Seqs:
    """Sequences read from one file, before splitting and scaling."""

    x: np.ndarray  # (N, T, D) float64; steps past a sequence's length are ignored
    lengths: np.ndarray  # (N,) int
    labels: np.ndarray  # (N,) object: label names (str), None where missing
    features: list[str] | None  # feature names (long CSV), else None
    describe: Callable[[np.ndarray], str]  # sequence indices -> "rows 3, 4 (file line numbers)"

    def take(self, keep: np.ndarray) -> Seqs:
        idx = np.flatnonzero(keep)
        return replace(self, x=self.x[idx], lengths=self.lengths[idx], labels=self.labels[idx],
                       describe=lambda sel, idx=idx, d=self.describe: d(idx[sel]))


@dataclass
class Read:
    """A reader's result: the sequences, which of them miss values, and how the format was decided."""

    seqs: Seqs
    incomplete: np.ndarray  # (N,) bool: a missing value or label (nan_policy decides)
    unfillable: np.ndarray  # (N,) bool: no label or no steps at all (only drop helps)
    format: str  # "wide", "long", "npz" or "ts"
    reason: str  # why this format, for meta and the console, e.g. "column 'id' repeats in runs of 12 rows; ..."
    label_source: str = "label column 'label'"  # where the labels came from, for messages
    columns: dict[str, str] = field(default_factory=dict)  # long CSV: {"id_column": ..., "time_column": ...}


def listing(items, limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_file(path: Path) -> None:
    if not path.is_file():
        where = f" (nor inside $RNNLAB_DATA={os.environ['RNNLAB_DATA']})" if "RNNLAB_DATA" in os.environ else ""
        raise DataError(f"data file not found: {path}{where}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")


def label_names(values) -> np.ndarray:
    """Label values -> names (str), None where missing; integral numbers lose their '.0'."""
    a = np.asarray(values)
    out = np.empty(len(a), dtype=object)
    if a.dtype.kind in "iuf":
        f = a.astype(np.float64)
        for i, v in enumerate(f):
            out[i] = None if np.isnan(v) else (str(int(v)) if v.is_integer() else repr(float(v)))
        return out
    for i, v in enumerate(a):
        missing = v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v == "")
        out[i] = None if missing else (v.decode() if isinstance(v, bytes) else str(v))
    return out


def class_order(name: str):
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def missing_flags(x: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(incomplete, unfillable) of sequences in (N, T, D) with NaN for missing values: a NaN within the
    length or no label is incomplete; no label or no steps cannot be filled."""
    real = np.arange(x.shape[1])[None, :] < lengths[:, None]
    gaps = (np.isnan(x).any(axis=2) & real).any(axis=1)
    no_label = np.array([lab is None for lab in labels], dtype=bool)
    return gaps | no_label | (lengths == 0), no_label | (lengths == 0)
