"""Source series for a continuous seq2seq run (data=sine2cosine): a CSV with one series per row (data.t_in
numbers each; a header row is skipped), an .npz with ``x`` (N, t_in) or (N, t_in, 1), or such an array
(or one series) from Python; encoded as the data set encodes its sources (`seq2seq_tasks.encode_series`:
raw values, no scaling, every step real)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rnnlab.data import seq2seq_tasks as S
from rnnlab.data.base import DataError
from rnnlab.data.inputs import Inputs
from rnnlab.data.inputs.arrays import arrays_of

READS_NPZ = True  # x of an .npz is series of values here, not the arrays reader's model inputs


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    import pandas as pd

    del cfg
    t_in = meta["t_in"]
    if isinstance(source, Path) and source.suffix.lower() != ".npz":
        names, values = _csv(source, t_in)
    else:
        names, values = _arrays(source, t_in)
    src, mask = S.encode_series(values, dtype)
    return Inputs(src, mask, pd.DataFrame({"input": names}))


def _csv(path: Path, t_in: int) -> tuple[list[str], np.ndarray]:
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        raise DataError(f"{path.name} is not a CSV file (give one series of {t_in} numbers per row)")
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(raw.decode("utf-8", errors="replace").splitlines()))
            if any(c.strip() for c in r)]
    if rows and _numbers(rows[0][1]) is None:
        rows = rows[1:]  # the header
    if not rows:
        raise DataError(f"{path.name} has no series (one row of {t_in} numbers per series)")
    values = []
    for line, row in rows:
        got = _numbers(row)
        if got is None:
            k = next(k for k, c in enumerate(row) if _number(c) is None)
            raise DataError(f"{path.name} row {line}, value {k + 1}: {row[k].strip()!r} is not a finite number")
        if len(got) != t_in:
            raise DataError(f"{path.name} row {line} has {len(got)} values, but the model reads series of "
                            f"{t_in} steps (data.t_in)")
        values.append(got)
    return [f"row {line}" for line, _ in rows], np.array(values)


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _numbers(row: list[str]) -> list[float] | None:
    got = [_number(c) for c in row]
    return None if any(v is None for v in got) else got


def _arrays(source, t_in: int) -> tuple[list[str], np.ndarray]:
    x, _, what = arrays_of(source)
    if x.ndim == 1:
        x = x[None]  # one series
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim != 2 or x.shape[1] != t_in or not len(x):
        raise DataError(f"{what}: give series as x (N, {t_in}) or (N, {t_in}, 1), the model reads {t_in} steps "
                        f"(data.t_in) (got shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise DataError(f"{what}: x must hold finite numbers")
    return [f"x[{i}]" for i in range(len(x))], x.astype(np.float64)
