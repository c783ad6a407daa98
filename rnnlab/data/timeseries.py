"""Forecasting from a CSV file: a date column, a target column, optional covariates.

Pipeline: read and check the file -> optional transform of the target (log, returns,
log returns, differences) and of the covariates -> windows of `n_in` steps predicting
the next `n_out` target values directly (one multi-output head) -> time-ordered split
(rnnlab.data.windows) -> per-column standardization fitted on the train
part only. Predictions are mapped back to the original units (undoing the scaler and
the transform from the last observed level of each window) for metrics and plots.

Shapes: x (N, n_in, 1 + n_covariates), y (N, n_out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError, Split, StandardScaler, TaskData
from rnnlab.data.paths import resolve_path
from rnnlab.data.windows import split_windows

TRANSFORMS = ("none", "log", "diff", "returns", "log_returns")
NAN_POLICIES = ("error", "drop", "ffill", "interpolate")


def read_table(path: Path, date_column: str | None, columns: list[str], nan_policy: str):
    """The named numeric columns (float64 DataFrame) and the dates; one-line DataError on bad input."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path} as CSV: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"data file has a header but no rows: {path}")
    wanted = ([date_column] if date_column else []) + columns
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path.name} has no column {', '.join(repr(m) for m in missing)} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    bad_text = values.isna() & frame[columns].notna()
    if bad_text.any().any():
        rows = (np.flatnonzero(bad_text.any(axis=1).to_numpy()) + 2).tolist()  # +2: header, 1-based
        raise DataError(f"{path.name}: non-numeric values in rows {_rows(rows)} (file line numbers)")
    nan_rows = values.isna().any(axis=1).to_numpy()
    if nan_rows.any():
        if nan_policy == "error":
            rows = (np.flatnonzero(nan_rows) + 2).tolist()
            raise DataError(
                f"{path.name}: missing values in rows {_rows(rows)} (set data.nan_policy to drop, ffill or interpolate)"
            )
        if nan_policy == "drop":
            keep = ~nan_rows
            values, frame = values[keep], frame[keep]
        elif nan_policy == "ffill":
            values = values.ffill().bfill()
        else:
            values = values.interpolate(limit_direction="both")
    dates = None
    if date_column:
        dates = pd.to_datetime(frame[date_column], errors="coerce")
        if dates.isna().any():
            rows = (np.flatnonzero(dates.isna().to_numpy()) + 2).tolist()
            raise DataError(f"{path.name}: unreadable dates in column '{date_column}', rows {_rows(rows)}")
        order = np.argsort(dates.to_numpy(), kind="stable")
        values, dates = values.iloc[order], dates.iloc[order]
    return values.reset_index(drop=True).astype(np.float64), (None if dates is None else dates.reset_index(drop=True))


def _rows(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def apply_transform(level: np.ndarray, kind: str, name: str) -> np.ndarray:
    """Transformed series aligned with `level`: element i depends on levels up to i (i >= 1)."""
    if kind == "none":
        return level.copy()
    if kind in ("log", "log_returns") and np.any(level <= 0):
        raise DataError(f"transform '{kind}' needs positive values, but '{name}' has values <= 0")
    if kind == "returns" and np.any(level[:-1] == 0):
        raise DataError(f"transform 'returns' divides by '{name}', which has zeros")
    if kind == "log":
        return np.log(level)
    out = np.empty_like(level)
    out[0] = np.nan  # the first difference or return is undefined; windows start after it
    if kind == "diff":
        out[1:] = np.diff(level)
    elif kind == "returns":
        out[1:] = level[1:] / level[:-1] - 1.0
    else:
        out[1:] = np.diff(np.log(level))
    return out


def invert_transform(values: np.ndarray, anchor: np.ndarray, kind: str) -> np.ndarray:
    """Levels from transformed future values (N, h), given the last observed level (N,)."""
    a = anchor[:, None]
    if kind == "none":
        return values
    if kind == "log":
        return np.exp(values)
    if kind == "diff":
        return a + np.cumsum(values, axis=1)
    if kind == "returns":
        return a * np.cumprod(1.0 + values, axis=1)
    return a * np.exp(np.cumsum(values, axis=1))


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    del rng  # the file decides everything; kept for the loader signature
    path = resolve_path(cfg.path, cfg.default_file)
    columns = [cfg.target] + [c for c in cfg.covariates if c != cfg.target]
    table, dates = read_table(path, cfg.date_column, columns, cfg.nan_policy)
    level = table[cfg.target].to_numpy()
    feats = [apply_transform(level, cfg.transform, cfg.target)]
    for c in columns[1:]:
        feats.append(apply_transform(table[c].to_numpy(), cfg.covariate_transform, c))
    feats = np.stack(feats, axis=1)  # (L, F), column 0 = transformed target
    start = 1 if np.isnan(feats[0]).any() else 0  # the first difference/return is undefined
    n, n_in, n_out = len(level) - start, cfg.n_in, cfg.n_out
    need = n_in + n_out
    min_len = int(np.ceil(need / max(1e-9, 1 - cfg.val_frac - cfg.test_frac))) + 2
    if n < min_len:
        raise DataError(
            f"{path.name}: the series has {n} usable rows, too short for n_in={n_in} + n_out={n_out} "
            f"with val_frac={cfg.val_frac}, test_frac={cfg.test_frac} (need at least {min_len})"
        )
    feats, level_s = feats[start:], level[start:]
    idx, first_target, t_val = split_windows(n, n_in, n_out, cfg.val_frac, cfg.test_frac, what=path.name)
    n_win = len(first_target)

    scalers = [StandardScaler.fit(feats[:t_val, j]) if cfg.scale else StandardScaler() for j in range(feats.shape[1])]
    scaled = np.stack([s.transform(feats[:, j]) for j, s in enumerate(scalers)], axis=1).astype(dtype)
    win = np.lib.stride_tricks.sliding_window_view(scaled, n_in, axis=0)  # (L-n_in+1, F, n_in)
    x_all = np.ascontiguousarray(win[:n_win].transpose(0, 2, 1))
    tgt = np.lib.stride_tricks.sliding_window_view(scaled[:, 0], n_out)[n_in:][:n_win]
    anchor = level_s[first_target - 1]  # last observed level before each window's targets
    season = cfg.seasonal_period

    def to_original(y_scaled: np.ndarray, split_name: str) -> np.ndarray:
        y = scalers[0].inverse(np.asarray(y_scaled, dtype=np.float64))
        base = level_s[-1:] if split_name == "future" else anchor[idx[split_name]]
        return invert_transform(y, base, cfg.transform)

    baselines = {}
    # train rows too, so cross-validation folds (rnnlab/data/folds.py) can score them on any val rows
    for name, ix in idx.items():
        naive = np.repeat(anchor[ix][:, None], n_out, axis=1)
        baselines.setdefault("naive_last", {})[name] = naive
        if season and season > 0:
            # y[t+h] forecast as y[t+h-season*k], the latest value one or more seasons back
            h = np.arange(1, n_out + 1)
            back = first_target[ix][:, None] - 1 + h - season * np.ceil(h / season).astype(int)
            baselines.setdefault(f"seasonal_naive_{season}", {})[name] = level_s[np.maximum(back, 0)]

    last_window = np.ascontiguousarray(scaled[-n_in:][None])  # input for the forecast past the data
    meta = {
        "path": str(path), "target": cfg.target, "covariates": columns[1:], "transform": cfg.transform,
        "covariate_transform": cfg.covariate_transform, "n_in": n_in, "n_out": n_out,
        "scalers": [s.to_dict() for s in scalers],
    }
    split = {k: Split(x_all[ix], np.ascontiguousarray(tgt[ix])) for k, ix in idx.items()}
    return TaskData(
        kind="regression", train=split["train"], val=split["val"], test=split["test"],
        input_size=scaled.shape[1], output_size=n_out, default_loss="mse", scaler=scalers[0],
        baselines=baselines, meta=meta, inverse=to_original,
        future={
            "x": last_window,
            "dates": None if dates is None else dates.iloc[start:].reset_index(drop=True),
            "history": level_s,
        },
    )
