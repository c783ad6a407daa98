"""Reading a CSV into a frame and its columns into numbers, with one-line errors naming rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError
from rnnlab.data.seqformats.common import listing

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")


def is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


def read_csv(path: Path):
    import pandas as pd

    sep = "\t" if ".tsv" in path.name.lower() else ","
    try:
        frame = pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path} as CSV: {str(exc).strip().splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"data file has a header but no rows: {path}")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def columns_of(frame) -> str:
    return ", ".join(frame.columns)


def need_column(frame, path: Path, column: str, key: str, what: str) -> None:
    if column not in frame.columns:
        raise DataError(f"{path.name} has no {what} column '{column}' (set {key}; columns: {columns_of(frame)})")


def is_text(col) -> bool:
    """A column with values, none of them a number (names, notes, dates)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) or not col.notna().any():
        return False
    return pd.to_numeric(col, errors="coerce").notna().sum() == 0


def feature_columns(frame, path: Path, listed: list[str] | None, exclude: list[str]) -> list[str]:
    """The listed feature columns, or every other column holding numbers (text-only columns skipped)."""
    if listed:
        missing = [c for c in listed if c not in frame.columns]
        if missing:
            raise DataError(
                f"{path.name} has no column {', '.join(repr(m) for m in missing)} in data.feature_columns "
                f"(columns: {columns_of(frame)})"
            )
        return list(listed)
    cols = [c for c in frame.columns if c not in exclude and not is_text(frame[c])]
    if not cols:
        raise DataError(f"{path.name} has no numeric feature columns (columns: {columns_of(frame)})")
    return cols


def numeric(frame, columns: list[str], path: Path) -> np.ndarray:
    """The columns as float64 (R, D); NaN where empty; one-line error naming rows with text."""
    import pandas as pd

    raw = frame[columns]
    values = raw.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any().any():
        rows = np.flatnonzero(bad.any(axis=1).to_numpy())
        r = rows[0]
        c = columns[int(np.flatnonzero(bad.iloc[r].to_numpy())[0])]
        raise DataError(
            f"{path.name}: non-numeric values in rows {listing(rows + 2)} (file line numbers), "
            f"e.g. {str(raw.iloc[r][c])!r} in column '{c}'"
        )
    return values.to_numpy(dtype=np.float64)


def time_values(column) -> tuple[np.ndarray, np.ndarray]:
    """(sortable float64 values, rows that are neither numbers nor dates) of a time column: numbers as
    they are, dates (when no cell is a number) as nanoseconds; NaN where empty or unreadable."""
    import pandas as pd

    num = pd.to_numeric(column, errors="coerce")
    bad = (num.isna() & column.notna()).to_numpy()
    if not bad.any():
        return num.to_numpy(dtype=np.float64), bad
    if num.notna().any():  # numbers and text mixed: the text is bad
        return num.to_numpy(dtype=np.float64), bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(column, errors="coerce")
    ns = dates.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    ns[dates.isna().to_numpy()] = np.nan
    return ns, (dates.isna() & column.notna()).to_numpy()


def times(column, path: Path, name: str) -> np.ndarray:
    """A time column as sortable float64 (numbers, or dates as nanoseconds); NaN where empty."""
    values, bad = time_values(column)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{path.name}: time column '{name}' has values that are neither numbers nor dates in rows "
            f"{listing(rows + 2)} (file line numbers), e.g. {str(column.iloc[rows[0]])!r}"
        )
    return values
