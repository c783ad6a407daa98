"""Forecasting from a CSV file: a date column, a target column, optional covariates.

Pipeline: read and check the file (and data.test_path's, appended) -> its calendar
(rnnlab.data.calendar: the frequency and the season) -> optional transform of the target (log, returns,
log returns, differences) and of the covariates -> windows of `n_in` steps predicting
the next `n_out` target values directly (one multi-output head) -> time-ordered split
(rnnlab.data.windows) -> per-column standardization fitted on the train
part only (the rows the training windows cover; a cross-validation fold refits it on its
own). Predictions are mapped back to the original units (undoing the scaler and
the transform from the last observed level of each window) for metrics and plots.

Shapes: x (N, n_in, 1 + n_covariates), y (N, n_out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data import baselines as B
from rnnlab.data.base import DataError, Refit, Split, StandardScaler, TaskData
from rnnlab.data.calendar import default_season, infer_freq, offset
from rnnlab.data.paths import resolve_path
from rnnlab.data.windows import covered, origins, part_starts, split_windows, target_rows

TRANSFORMS = ("none", "log", "diff", "returns", "log_returns")
NAN_POLICIES = ("error", "drop", "ffill", "interpolate")


def read_table(path: Path, date_column: str | None, columns: list[str], nan_policy: str,
               duplicates: str = "error"):
    """The named numeric columns (float64 DataFrame) and the dates, sorted by date; one-line DataError on bad input.

    Row numbers in messages are the file's line numbers (the header is line 1).
    """
    return frame_table(_read_csv(path), path.name, date_column, columns, nan_policy, duplicates)


def frame_table(frame, name: str, date_column: str | None, columns: list[str], nan_policy: str,
                duplicates: str = "error"):
    """`read_table` of a DataFrame already read (`name` names it in messages)."""
    wanted = ([date_column] if date_column else []) + columns
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name} has no column {', '.join(repr(m) for m in missing)} "
            f"(columns: {', '.join(' '.join(str(c).split()) for c in frame.columns)})"  # one line, whatever the header
        )
    values = _numbers(frame, columns, name)
    values, frame = _fill(values, frame, nan_policy, name)
    if not date_column:
        return values.reset_index(drop=True).astype(np.float64), None
    dates = _dates(frame[date_column], date_column, name)
    order = np.argsort(dates.to_numpy(), kind="stable")
    values, dates = _duplicates(values.iloc[order], dates.iloc[order], duplicates, name)
    return values.reset_index(drop=True).astype(np.float64), dates.reset_index(drop=True)


def _read_csv(path: Path):
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
    return frame


def _lines(index) -> list[int]:
    """File line numbers of rows (by their index in the file's frame): the header is line 1."""
    return (np.asarray(index) + 2).tolist()


def _numbers(frame, columns: list[str], what: str):
    """The columns as floats; text and infinities are refused (an inf cell made the run diverge)."""
    import pandas as pd

    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    bad_text = values.isna() & frame[columns].notna()
    if bad_text.any().any():
        raise DataError(f"{what}: non-numeric values in rows {_rows(_lines(values.index[bad_text.any(axis=1)]))} "
                        "(file line numbers)")
    infinite = np.isinf(values.to_numpy(dtype=np.float64)).any(axis=1)
    if infinite.any():
        raise DataError(f"{what}: infinite values in rows {_rows(_lines(values.index[infinite]))} "
                        "(file line numbers)")
    return values


def _fill(values, frame, nan_policy: str, what: str):
    """Empty cells by data.nan_policy: refused, their rows dropped, or filled."""
    nan_rows = values.isna().any(axis=1).to_numpy()
    if not nan_rows.any():
        return values, frame
    if nan_policy == "error":
        raise DataError(f"{what}: missing values in rows {_rows(_lines(values.index[nan_rows]))} "
                        "(set data.nan_policy to drop, ffill or interpolate)")
    if nan_policy == "drop":
        return values[~nan_rows], frame[~nan_rows]
    if nan_policy == "ffill":
        return values.ffill().bfill(), frame
    return values.interpolate(limit_direction="both"), frame


def _dates(column, name: str, what: str):
    import pandas as pd

    dates = pd.to_datetime(column, errors="coerce")
    if dates.isna().any():
        rows = _rows(_lines(dates.index[dates.isna()]))
        raise DataError(f"{what}: unreadable dates in column '{name}', rows {rows}")
    return dates


def _duplicates(values, dates, policy: str, what: str):
    """Rows sharing a date (sorted by date): refused naming them, or aggregated by data.duplicates."""
    repeated = dates.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return values, dates
    if policy == "error":
        groups = {}
        for line, day in zip(_lines(dates.index[repeated]), dates[repeated], strict=True):
            groups.setdefault(day, []).append(line)
        shown = [f"{day.isoformat().removesuffix('T00:00:00')} (rows {', '.join(map(str, lines))})"
                 for day, lines in list(groups.items())[:3]]
        more = f" and {len(groups) - 3} more" if len(groups) > 3 else ""
        raise DataError(f"{what}: duplicate dates {'; '.join(shown)}{more} (set data.duplicates to mean, "
                        "last, first or sum to aggregate them)")
    merged = values.groupby(dates.to_numpy(), sort=True).agg(policy)
    return merged, dates.drop_duplicates().set_axis(merged.index)


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


def read_series(cfg, path: Path, columns: list[str]):
    """(table, dates, test rows): data.path's rows, and data.test_path's appended (test rows None without one)."""
    import pandas as pd

    table, dates = read_table(path, cfg.date_column, columns, cfg.nan_policy, cfg.duplicates)
    if not cfg.test_path:
        return table, dates, None
    test_file = resolve_path(cfg.test_path)
    test, test_dates = read_table(test_file, cfg.date_column, columns, cfg.nan_policy, cfg.duplicates)
    if dates is not None and test_dates.iloc[0] <= dates.iloc[-1]:
        raise DataError(f"data.test_path {test_file.name} must continue {path.name}: its first date "
                        f"{test_dates.iloc[0].date()} is not after {path.name}'s last date {dates.iloc[-1].date()}")
    dates = None if dates is None else pd.concat([dates, test_dates], ignore_index=True)
    return pd.concat([table, test], ignore_index=True), dates, len(test)


def series_calendar(cfg, dates) -> tuple[str | None, str | None, int]:
    """(frequency, where it came from, season of the seasonal-naive baseline)."""
    if cfg.freq:
        freq, source = offset(cfg.freq).freqstr, "data.freq"
    elif dates is not None:
        freq, source = infer_freq(dates)
    else:
        freq, source = None, None
    season = cfg.seasonal_period if cfg.seasonal_period is not None else default_season(freq)
    return freq, source, season


def features(table, columns: list[str], cfg):
    """(target levels (L,), transformed features (L, F) with the target first, rows the transform drops)."""
    level = table[cfg.target].to_numpy()
    feats = [apply_transform(level, cfg.transform, cfg.target)]
    for c in columns[1:]:
        feats.append(apply_transform(table[c].to_numpy(), cfg.covariate_transform, c))
    feats = np.stack(feats, axis=1)
    return level, feats, 1 if np.isnan(feats[0]).any() else 0  # the first difference/return is undefined


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    del rng  # the file decides everything; kept for the loader signature
    path = resolve_path(cfg.path, cfg.default_file)
    columns = [cfg.target] + [c for c in cfg.covariates if c != cfg.target]
    table, dates, test_rows = read_series(cfg, path, columns)
    freq, freq_source, season = series_calendar(cfg, dates)
    level, feats, start = features(table, columns, cfg)
    n, n_in, n_out = len(level) - start, cfg.n_in, cfg.n_out
    parts = part_starts(cfg, len(level), start, dates, test_rows, what=path.name)
    feats, level_s = feats[start:], level[start:]
    train_horizon = 1 if cfg.strategy == "recursive" else n_out  # recursive trains on one-step targets
    idx, first_target = split_windows(n, n_in, n_out, parts, train_horizon, what=path.name)
    anchor = level_s[first_target - 1]  # last observed level before each window's targets

    def scaled(train_windows):
        """The fields that depend on the scalers, with a scaler per column fitted on the rows
        `train_windows` cover: the train part of the series, or a cross-validation fold's."""
        steps = covered(train_windows, n_in, train_horizon, n)
        scalers = [StandardScaler.fit(feats[steps, j]) if cfg.scale else StandardScaler()
                   for j in range(feats.shape[1])]
        return {**scaled_windows(feats, scalers, idx, first_target, start, n_in, n_out, dtype),
                "inverse": _inverse(scalers[0], level_s, anchor, idx, cfg.transform)}

    fields = scaled(idx["train"])

    # Baselines on the level series in original units, fitted before the first origin of the split
    # they forecast (train rows too, so cross-validation folds can score them on any val rows).
    first = {name: first_target[ix] for name, ix in idx.items()}  # each window forecasts from its first target
    baselines, models = B.split_forecasts(level_s, first, n_out, season, B.wanted(cfg))
    truth = np.lib.stride_tricks.sliding_window_view(level_s, n_out)  # row i: the n_out levels from step i

    meta = {
        "path": str(path.resolve()), "target": cfg.target, "covariates": columns[1:], "transform": cfg.transform,
        "covariate_transform": cfg.covariate_transform, "n_in": n_in, "n_out": n_out,
        **fields["meta"], "freq": freq, "freq_source": freq_source,
        "seasonal_period": season,
        "test_path": None if test_rows is None else str(resolve_path(cfg.test_path).resolve()),
        **origins(idx, first_target, start, dates, freq), "baseline_models": models,
    }
    data = TaskData(
        kind="regression", train=fields["train"], val=fields["val"], test=fields["test"],
        input_size=feats.shape[1], output_size=n_out, default_loss="mse", scaler=fields["scaler"],
        baselines=baselines, meta=meta, inverse=fields["inverse"], sample_unit="windows",
        mase_scale=B.mase_scale(level_s[: first["test"].min()], season),
        original_targets={name: truth[ix] for name, ix in first.items()},
        # dates and history: every row as loaded (predictions.csv labels targets by their row)
        future={"x": fields["future"]["x"], "dates": dates, "history": level, "freq": freq},
    )
    dev = np.concatenate([idx["train"], idx["val"]])  # development rows: the train windows, then the val windows

    def refit(rows, val_rows):
        fold = data.refitted(**scaled(dev[rows])) if cfg.scale else data.refitted()
        fold.baselines = B.refit_dev(data.baselines, level_s, first_target[dev], len(idx["train"]), val_rows, n_out,
                                     season)
        return fold

    data.refit = Refit("scalers and baselines" if cfg.scale else "baselines", refit)
    return data


def scaled_windows(feats, scalers, idx, first_target, start, n_in, n_out, dtype) -> dict:
    """TaskData fields of the windows with the features scaled per column: the three splits, the scaler of
    the target, the input of the forecast past the data, the scalers in the meta data."""
    scaled = np.stack([s.transform(feats[:, j]) for j, s in enumerate(scalers)], axis=1).astype(dtype)
    n_win = len(first_target)
    win = np.lib.stride_tricks.sliding_window_view(scaled, n_in, axis=0)  # (L-n_in+1, F, n_in)
    x_all = np.ascontiguousarray(win[:n_win].transpose(0, 2, 1))
    tgt = np.lib.stride_tricks.sliding_window_view(scaled[:, 0], n_out)[n_in:][:n_win]
    splits = {k: Split(x_all[ix], np.ascontiguousarray(tgt[ix]), info=target_rows(ix, first_target, start))
              for k, ix in idx.items()}
    return {**splits, "scaler": scalers[0], "meta": {"scalers": [s.to_dict() for s in scalers]},
            "future": {"x": np.ascontiguousarray(scaled[-n_in:][None])}}  # input for the forecast past the data


def _inverse(scaler: StandardScaler, level, anchor, idx, transform: str):
    """Model outputs (scaled) of a split -> original units: the target's scaler undone, then the transform
    from each window's last observed level (the last level of the data for the forecast past it)."""

    def to_original(y_scaled: np.ndarray, split_name: str) -> np.ndarray:
        y = scaler.inverse(np.asarray(y_scaled, dtype=np.float64))
        base = level[-1:] if split_name == "future" else anchor[idx[split_name]]
        return invert_transform(y, base, transform)

    return to_original
