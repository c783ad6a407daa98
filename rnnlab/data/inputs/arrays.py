"""Inputs as arrays: an ``.npz`` with ``x`` (and ``mask``), or ``x`` / ``(x, mask)`` from Python, checked
against what the model was trained on (rank, features, token ids)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError
from rnnlab.data.inputs import Inputs


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    del cfg
    x, mask, what = arrays_of(source)
    tokens = meta.get("vocab_size") is not None or "vocab" in meta
    if tokens:
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"{what}: x must be token ids (N, T) of integers for this model (got {x.dtype} {x.shape})")
        x = x.astype(np.int64)
    else:
        if x.ndim != 3:
            raise DataError(f"{what}: x must be (N, T, D) (got shape {x.shape})")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"{what}: x must hold finite numbers")
        x = x.astype(dtype)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != x.shape[:2]:
            raise DataError(f"{what}: mask shape {mask.shape} does not match x's (N, T) {x.shape[:2]}")
        mask = (mask != 0).astype(dtype)
    return Inputs(x, mask)


def arrays_of(source) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(x, mask or None, what to call them) from an .npz path (arrays x and mask), (x, mask) or x."""
    if isinstance(source, Path):
        try:
            with np.load(source, allow_pickle=False) as f:
                if "x" not in f.files:
                    raise DataError(f"{source.name}: no array 'x' (arrays: {', '.join(f.files) or 'none'})")
                return f["x"], (f["mask"] if "mask" in f.files else None), source.name
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read {source.name} as .npz: {str(exc).splitlines()[0]}") from None
    if isinstance(source, tuple):
        x, mask = source
        return np.asarray(x), mask, "inputs"
    return np.asarray(source), None, "inputs"
