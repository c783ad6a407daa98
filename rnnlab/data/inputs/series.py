"""A series to forecast from (data=csv, sine): the next n_out values after its last row.

The file (or DataFrame) needs the run's date column (when it had one), target and covariates; other
columns are ignored, as training ignored them. Its last n_in rows (after the transform, which needs
one row more for differences and returns) are scaled with the run's scalers; the forecast is mapped
back through the scaler and the transform from the series' last level, and dated on the run's
calendar (its frequency, or the file's when the run had none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data import calendar
from rnnlab.data.base import DataError, StandardScaler
from rnnlab.data.inputs import Inputs
from rnnlab.data.timeseries import features, frame_table, invert_transform, read_table


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    spec = _Series.of(cfg, meta)
    if isinstance(source, Path):
        table, dates = read_table(source, spec.date_column, spec.columns, spec.nan_policy, spec.duplicates)
        what = source.name
    else:
        table, dates = frame_table(_frame(source, spec), "the series", spec.date_column, spec.columns,
                                   spec.nan_policy, spec.duplicates)
        what = "the series"
    level, feats, start = features(table, spec.columns, spec)
    n_in = meta["n_in"]
    if len(level) - start < n_in:
        why = f" (one more for transform {spec.transform})" if start else ""
        raise DataError(f"{what} has {len(level)} rows, but the model reads the last {n_in}{why}: "
                        f"give at least {n_in + start} rows")
    scalers = [StandardScaler(**s) for s in meta.get("scalers", [meta.get("scaler", {})])]
    window = np.stack([s.transform(feats[-n_in:, j]) for j, s in enumerate(scalers)], axis=1)
    last = level[-1]

    def to_original(y_scaled: np.ndarray) -> np.ndarray:
        y = scalers[0].inverse(np.asarray(y_scaled, dtype=np.float64))
        return invert_transform(y, np.full(len(y), last), spec.transform)

    out_dates = None
    if dates is not None:
        freq = meta.get("freq") or calendar.infer_freq(dates)[0]
        if freq:
            out_dates = calendar.iso(calendar.future_dates(dates.iloc[-1], meta["n_out"], freq), freq)
    origin = {"last_row": len(level), "last_value": float(last)}
    if dates is not None:
        origin["last_date"] = calendar.iso(dates.iloc[-1:], meta.get("freq"))[0]
    import pandas as pd

    return Inputs(window[None].astype(dtype), None, pd.DataFrame([origin]), to_original, out_dates)


@dataclass
class _Series:
    """The run's series settings: data=csv's config, or the one value column a sine run reads."""

    target: str
    columns: list[str]
    date_column: str | None
    transform: str
    covariate_transform: str
    nan_policy: str
    duplicates: str

    @classmethod
    def of(cls, cfg, meta: dict) -> _Series:
        target = meta.get("target") or "value"
        return cls(target, [target, *meta.get("covariates", [])], getattr(cfg, "date_column", None),
                   meta.get("transform", "none"), meta.get("covariate_transform", "none"),
                   getattr(cfg, "nan_policy", "error"), getattr(cfg, "duplicates", "error"))


def _frame(source, spec: _Series):
    """A DataFrame from what Python gave: a DataFrame, a Series or an array of the target's values."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, pd.Series) and spec.date_column and isinstance(source.index, pd.DatetimeIndex):
        return pd.DataFrame({spec.date_column: source.index, spec.target: source.to_numpy()})
    values = np.asarray(source, dtype=np.float64)
    if values.ndim != 1 or len(spec.columns) > 1 or spec.date_column:
        raise DataError(f"give the series as a DataFrame with columns {', '.join(_wanted(spec))}")
    return pd.DataFrame({spec.target: values})


def _wanted(spec: _Series) -> list[str]:
    return ([spec.date_column] if spec.date_column else []) + spec.columns
