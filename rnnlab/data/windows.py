"""Time-ordered splits of forecasting windows.

A window starting at i reads steps [i, i + n_in) and predicts [i + n_in, i + n_in + n_out).
Windows go to train/val/test by where their *targets* fall in the series (targets that
straddle a boundary are dropped), so no target is seen by two splits; the inputs of the
first val/test windows may reach back into the previous split, history a forecaster has.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.base import DataError, Split, TaskData

STRATEGIES = ("direct", "recursive")


def split_windows(n: int, n_in: int, n_out: int, val_frac: float, test_frac: float, what: str = "the series"):
    """(index arrays {"train", "val", "test"}, first target step of each window, t_val).

    t_val is where the validation part of the series starts: fit scalers on [0, t_val).
    """
    n_win = n - n_in - n_out + 1
    if n_win < 1:
        raise DataError(f"{what} has {n} steps, shorter than n_in + n_out = {n_in + n_out}")
    first_target = np.arange(n_win) + n_in
    last_target = first_target + n_out - 1
    t_test = int(round(n * (1 - test_frac)))
    t_val = int(round(n * (1 - test_frac - val_frac)))
    idx = {
        "train": np.flatnonzero(last_target < t_val),
        "val": np.flatnonzero((first_target >= t_val) & (last_target < t_test)),
        "test": np.flatnonzero(first_target >= t_test),
    }
    for name, ix in idx.items():
        if len(ix) == 0:
            raise DataError(
                f"the {name} split has no windows: {what} ({n} steps) is too short for "
                f"n_in={n_in}, n_out={n_out} with val_frac={val_frac}, test_frac={test_frac}"
            )
    return idx, first_target, t_val


def as_recursive(data: TaskData) -> TaskData:
    """Turn a direct n_out-step forecasting task into a recursive one.

    The model learns the next step only (targets y[:, :1], one output); at evaluation it
    is rolled n_out steps, each prediction appended to the window as the newest value.
    That needs the input to be the target series alone (feature 0): covariates would
    have to be forecast too, so they are refused.
    """
    n_out = data.output_size
    if data.input_size != 1:
        raise DataError("data.strategy=recursive feeds predictions back as input, so it needs the target "
                        f"series alone; this data has {data.input_size} input features (drop the covariates "
                        "or use strategy=direct)")
    for name in ("val", "test"):
        data.horizon_targets[name] = getattr(data, name).y
    for name in ("train", "val", "test"):
        sp = getattr(data, name)
        setattr(data, name, Split(sp.x, np.ascontiguousarray(sp.y[:, :1]), sp.mask, sp.info))
    data.output_size = 1
    data.recursive_horizon = n_out
    data.meta["strategy"] = "recursive"
    return data
