"""Time-ordered splits of forecasting windows: where validation and test start, and which windows each split gets.

The split rule (the README's "Forecasting: the split" has a worked example):

* The series has L rows: the file's rows sorted by date, with data.test_path's rows appended.
  Sizes count these rows. A difference or return transform drops the first row (its change
  is undefined), so the windows run over rows 1..L-1 and the first window's input starts at
  the file's second data row; that does not change what a size means.
* The test part is the last `test_size` rows; or the rows dated `test_start` or later; or the
  rows of `test_path`; or by default the last round(test_frac * n) of the n usable rows.
* The validation part is the `val_size` rows right before the test part; or the rows from
  `val_start` up to it; or round(val_frac * n) rows before it (with both fractions, the rows
  from round(n * (1 - val_frac - test_frac)) on, as before).
* A window reads n_in rows and predicts the next n_out. The test windows are the windows whose
  targets all lie in the test part, one per forecast origin, origins every step (stride 1):
  test_size - n_out + 1 of them, so test_size = n_out gives exactly one, whose targets are the
  last n_out rows. The validation windows have all their targets in the validation part, the
  training windows all theirs before it (strategy=recursive trains on one-step targets, so its
  training windows run up to the validation part). No target is in two splits; the inputs of
  the first validation and test windows reach back into the part before, history a forecaster has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.data.base import DataError, Split, TaskData

STRATEGIES = ("direct", "recursive")
DEFAULT_FRAC = 0.15  # the validation or test fraction when the part is stated no other way


def fraction(cfg, part: str) -> float | None:
    """data.{part}_frac, the default fraction when the part is stated no other way, else None."""
    frac = getattr(cfg, f"{part}_frac")
    if frac is not None:
        return frac
    stated = any(getattr(cfg, f"{part}_{k}", None) is not None for k in ("size", "start", "path"))
    return None if stated else DEFAULT_FRAC


@dataclass(frozen=True)
class Parts:
    """Where the validation and test parts start, as positions in the usable series (after the rows
    the transform drops), and how they were stated (for messages)."""

    val: int
    test: int
    rule: str


def part_starts(cfg, n_rows: int, skip: int = 0, dates=None, test_rows: int | None = None,
                what: str = "the series") -> Parts:
    """The validation and test parts of a series of n_rows rows (its first `skip` dropped by the transform).

    cfg: the window config (val_frac/val_size[/val_start], test_frac/test_size[/test_start]);
    dates: the rows' dates (for the *_start options); test_rows: the rows of data.test_path, appended last.
    """
    n = n_rows - skip
    test_by, val_by = _stated(cfg, "test", test_rows), _stated(cfg, "val")
    val_frac, test_frac = fraction(cfg, "val"), fraction(cfg, "test")
    if test_rows is not None:
        t_test = n_rows - test_rows
    elif cfg.test_size is not None:
        t_test = n_rows - cfg.test_size
    elif getattr(cfg, "test_start", None) is not None:
        t_test = _date_row(dates, cfg.test_start, "data.test_start", what)
    else:
        t_test = skip + int(round(n * (1 - test_frac)))
    if cfg.val_size is not None:
        t_val = t_test - cfg.val_size
    elif getattr(cfg, "val_start", None) is not None:
        t_val = _date_row(dates, cfg.val_start, "data.val_start", what)
        if t_val >= t_test:
            raise DataError(f"data.val_start={cfg.val_start} is not before the test part ({test_by}) of {what}")
    elif test_frac is not None:
        t_val = skip + int(round(n * (1 - test_frac - val_frac)))
    else:
        t_val = t_test - int(round(n * val_frac))
    if t_test - skip <= 0 or t_val - skip <= 0:
        key = test_by if t_test - skip <= 0 else val_by
        raise DataError(f"{key} leaves no rows to train on: {what} has {n_rows} rows"
                        + (f" ({skip} dropped by the transform)" if skip else ""))
    return Parts(t_val - skip, t_test - skip, f"{val_by}, {test_by}")


def _stated(cfg, part: str, file_rows: int | None = None) -> str:
    if file_rows is not None:
        return f"data.test_path ({file_rows} rows)"
    for key in ("size", "start", "frac"):
        value = getattr(cfg, f"{part}_{key}", None)
        if value is not None:
            return f"data.{part}_{key}={value}"
    return f"data.{part}_frac={DEFAULT_FRAC} (the default)"


def _date_row(dates, when: str, key: str, what: str) -> int:
    """The first row dated `when` or later."""
    import pandas as pd

    if dates is None:
        raise DataError(f"{key} needs dates: set data.date_column")
    stamp = pd.Timestamp(when)
    if dates.dt.tz is not None and stamp.tz is None:
        stamp = stamp.tz_localize(dates.dt.tz)
    row = int(dates.searchsorted(stamp, side="left"))
    if row >= len(dates):
        raise DataError(f"{key}={when} is after the last date ({dates.iloc[-1].date()}) of {what}")
    if row == 0:
        raise DataError(f"{key}={when} is not after the first date ({dates.iloc[0].date()}) of {what}: "
                        "nothing is left to train on")
    return row


def split_windows(n: int, n_in: int, n_out: int, parts: Parts, train_horizon: int | None = None,
                  what: str = "the series"):
    """(index arrays {"train", "val", "test"}, first target position of each window) over n usable rows.

    Window i reads positions [i, i + n_in) and predicts [i + n_in, i + n_in + n_out).
    train_horizon: the targets a training window is trained on (1 for strategy=recursive; default n_out).
    Fit scalers on [0, parts.val).
    """
    n_win = n - n_in - n_out + 1
    if n_win < 1:
        raise DataError(f"{what} has {n} steps, shorter than n_in + n_out = {n_in + n_out}")
    first_target = np.arange(n_win) + n_in
    last_target = first_target + n_out - 1
    h = n_out if train_horizon is None else train_horizon
    idx = {
        "train": np.flatnonzero(first_target + h - 1 < parts.val),
        "val": np.flatnonzero((first_target >= parts.val) & (last_target < parts.test)),
        "test": np.flatnonzero(first_target >= parts.test),
    }
    sizes = {"train": parts.val, "val": parts.test - parts.val, "test": n - parts.test}
    for name, ix in idx.items():
        if len(ix) == 0 and name == "train":
            raise DataError(f"{what} is too short for n_in={n_in} + n_out={n_out} with {parts.rule}: "
                            f"the train split has no windows (its part has {sizes[name]} of {n} usable rows)")
        if len(ix) == 0:
            raise DataError(f"the {name} part has {sizes[name]} rows ({parts.rule}), fewer than "
                            f"n_out={n_out}: no {name} window fits in {what}")
    return idx, first_target


def covered(windows: np.ndarray, n_in: int, horizon: int, n: int) -> np.ndarray:
    """Boolean mask (n,) of the usable rows that the given windows read or are trained on (their n_in
    inputs and first `horizon` targets), each row once however many windows overlap it: what the scalers
    are fitted on. For the loader's training windows that is rows [0, parts.val); for a cross-validation
    fold, the rows of its training windows (rnnlab/data/folds.py)."""
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, windows, 1)
    np.add.at(edges, np.asarray(windows) + n_in + horizon, -1)
    return np.cumsum(edges[:n]) > 0


def origins(idx: dict, first_target: np.ndarray, skip: int = 0, dates=None, freq: str | None = None) -> dict:
    """The forecast origins of the validation and test windows, for the meta data: their counts, and the
    first test origin (the last observed row before its targets) as a date, or a row of the series as loaded."""
    first = int(first_target[idx["test"][0]]) - 1 + skip
    if dates is not None:
        from rnnlab.data.calendar import iso

        label = iso(dates.iloc[[first, first + 1]], freq)
        origin, target = label
    else:
        origin, target = first, first + 1
    return {"test_origins": int(len(idx["test"])), "val_origins": int(len(idx["val"])),
            "test_first_origin": origin, "test_first_target": target}


def target_rows(ix: np.ndarray, first_target: np.ndarray, skip: int = 0) -> np.ndarray:
    """Split.info of forecasting windows: each window's first target row in the series as loaded (int64, (N,)),
    which the report labels the targets by (their dates, or these steps)."""
    return (first_target[ix] + skip).astype(np.int64)


def as_stream(data: TaskData) -> TaskData:
    """Turn a forecasting task into a stream: each split's series (rebuilt from its consecutive windows: the first
    window, then each next window's newest row) with the next value of the target (feature 0, scaled) as the
    target of every step, cut into non-overlapping windows of n_in steps in order (`contiguous`), so that
    train.stateful can read it whole. Metrics are one-step-ahead errors in the target's units after the scaler
    (after data.transform when there is one); the per-window baselines, the forecast past the data and the
    mapping back through a transform do not apply and are dropped."""
    n_in = data.train.x.shape[1]
    for name in ("train", "val", "test"):
        sp = getattr(data, name)
        if len(sp) == 0:
            raise DataError(f"data.strategy=stream: the {name} split has no window")
        x = np.concatenate([sp.x[0], sp.x[1:, -1]])  # (n_in + N - 1, D): the split's rows in order
        y = np.concatenate([sp.x[0, 1:, 0], sp.y[:, 0]])  # each row's next target value
        m = len(x) // n_in
        if m < 1:
            raise DataError(f"data.strategy=stream: the {name} split has {len(x)} rows, fewer than data.n_in")
        setattr(data, name, Split(x[: m * n_in].reshape(m, n_in, -1), y[: m * n_in].reshape(m, n_in, 1)))
    data.output_size, data.contiguous = 1, True
    data.baselines, data.future, data.inverse, data.mase_scale = {}, None, None, None
    data.original_targets, data.horizon_targets = {}, {}
    data.sample_unit = "sequences"
    data.meta["strategy"] = "stream"
    return data


def as_recursive(data: TaskData) -> TaskData:
    """Turn a direct n_out-step forecasting task into a recursive one.

    The model learns the next step only (targets y[:, :1], one output); at evaluation it
    is rolled n_out steps, each prediction appended to the window as the newest value.
    That needs the input to be the target series alone (feature 0): covariates would
    have to be forecast too, so they are refused. The loader cut the training windows
    for one-step targets already (split_windows' train_horizon), so none is lost at the
    validation boundary.
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
