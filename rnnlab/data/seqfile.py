"""Sequence classification from your own files: one label per sequence.

Three layouts (data.format; `auto` picks npz by the extension, and for a CSV `long`
when it has both the id and the time column, else `wide`):

- wide CSV: one sequence per row, a label column, and the other columns (or the
  listed feature_columns) the time steps of one feature. Empty cells at the end of a
  row make it shorter (variable length); an empty cell before a value is missing.
- long CSV: one time step per row with an id, a time and a label column and one or
  more feature columns; rows are grouped by id (in order of first appearance) and
  sorted by time. The label must be the same on every row of an id.
- NPZ: arrays x (N, T, D) or (N, T), y (N,), and optionally mask (N, T) of 0/1
  (post-padding) or lengths (N,).

Labels (numbers or text) are sorted (numbers numerically, before text) and numbered
0..C-1; their names are TaskData.classes. Two classes give kind "binary" (one output,
BCE), more give "multiclass" (C outputs, cross entropy). The split is stratified by
label (every class keeps its share in each split) and seeded by the generator passed
to `load`; a separate test file can replace the test split. Features are standardized
per feature with a mean and std fitted on the real (unpadded) steps of the train split.

Shapes: x (N, T, D) in the run dtype, post-padded with zeros; y int64 (N,); mask
(N, T) of 0/1 (1 = real step) or None when every sequence has all T steps.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError, Split, TaskData
from rnnlab.data.paths import resolve_path

FORMATS = ("auto", "wide", "long", "npz")
NAN_POLICIES = ("error", "drop", "fill")
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz")


@dataclass
class _Seqs:
    """Sequences read from one file, before splitting and scaling."""

    x: np.ndarray  # (N, T, D) float64; steps past a sequence's length are ignored
    lengths: np.ndarray  # (N,) int
    labels: np.ndarray  # (N,) object: label names (str), None where missing
    features: list[str] | None  # feature names (long CSV), else None
    describe: Callable[[np.ndarray], str]  # sequence indices -> "rows 3, 4 (file line numbers)"

    def take(self, keep: np.ndarray) -> _Seqs:
        idx = np.flatnonzero(keep)
        return replace(self, x=self.x[idx], lengths=self.lengths[idx], labels=self.labels[idx],
                       describe=lambda sel, idx=idx, d=self.describe: d(idx[sel]))


def _listing(items, limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _check_file(path: Path) -> None:
    if not path.is_file():
        where = f" (nor inside $RNNLAB_DATA={os.environ['RNNLAB_DATA']})" if "RNNLAB_DATA" in os.environ else ""
        raise DataError(f"data file not found: {path}{where}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


# ---------------------------------------------------------------- labels


def _label_names(values) -> np.ndarray:
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


def _class_order(name: str):
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


# ---------------------------------------------------------------- CSV


def _read_csv(path: Path):
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


def _columns_of(frame) -> str:
    return ", ".join(frame.columns)


def _need_column(frame, path: Path, column: str, key: str, what: str) -> None:
    if column not in frame.columns:
        raise DataError(f"{path.name} has no {what} column '{column}' (set {key}; columns: {_columns_of(frame)})")


def _feature_columns(frame, path: Path, listed: list[str] | None, exclude: list[str]) -> list[str]:
    """The listed feature columns, or every other column holding numbers (text-only columns skipped)."""
    import pandas as pd

    if listed:
        missing = [c for c in listed if c not in frame.columns]
        if missing:
            raise DataError(
                f"{path.name} has no column {', '.join(repr(m) for m in missing)} in data.feature_columns "
                f"(columns: {_columns_of(frame)})"
            )
        return list(listed)
    cols = []
    for c in frame.columns:
        if c in exclude:
            continue
        col = frame[c]
        numeric = pd.api.types.is_numeric_dtype(col)
        if not numeric and col.notna().any() and pd.to_numeric(col, errors="coerce").notna().sum() == 0:
            continue  # a text column (names, notes): not a feature
        cols.append(c)
    if not cols:
        raise DataError(f"{path.name} has no numeric feature columns (columns: {_columns_of(frame)})")
    return cols


def _numeric(frame, columns: list[str], path: Path) -> np.ndarray:
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
            f"{path.name}: non-numeric values in rows {_listing(rows + 2)} (file line numbers), "
            f"e.g. {str(raw.iloc[r][c])!r} in column '{c}'"
        )
    return values.to_numpy(dtype=np.float64)


def _times(column, path: Path, name: str) -> np.ndarray:
    """A time column as sortable float64 (numbers, or dates as nanoseconds); NaN where empty."""
    import pandas as pd

    num = pd.to_numeric(column, errors="coerce")
    bad = num.isna() & column.notna()
    if not bad.any():
        return num.to_numpy(dtype=np.float64)
    dates = None
    if num.isna().all():  # no numbers at all: dates
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dates = pd.to_datetime(column, errors="coerce")
        bad = dates.isna() & column.notna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        raise DataError(
            f"{path.name}: time column '{name}' has values that are neither numbers nor dates in rows "
            f"{_listing(rows + 2)} (file line numbers), e.g. {str(column.iloc[rows[0]])!r}"
        )
    ns = dates.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    ns[dates.isna().to_numpy()] = np.nan
    return ns


def _missing_error(path: Path, where: str) -> DataError:
    return DataError(f"{path.name}: missing values in {where}; set data.nan_policy to drop or fill")


def _read_wide(path: Path, frame, cfg) -> tuple[_Seqs, np.ndarray, np.ndarray]:
    _need_column(frame, path, cfg.label_column, "data.label_column", "label")
    steps = _feature_columns(frame, path, cfg.feature_columns, [cfg.label_column, cfg.id_column])
    v = _numeric(frame, steps, path)  # (N, T)
    n, t = v.shape
    has = ~np.isnan(v)
    lengths = np.where(has.any(axis=1), t - np.argmax(has[:, ::-1], axis=1), 0)
    gaps = (~has & (np.arange(t)[None, :] < lengths[:, None])).any(axis=1)
    labels = _label_names(frame[cfg.label_column].to_numpy())
    no_label = np.array([lab is None for lab in labels], dtype=bool)
    seqs = _Seqs(v[:, :, None], lengths, labels, None,
                 lambda idx: f"rows {_listing(np.asarray(idx) + 2)} (file line numbers)")
    return seqs, gaps | no_label | (lengths == 0), no_label | (lengths == 0)


def _read_long(path: Path, frame, cfg) -> tuple[_Seqs, np.ndarray, np.ndarray]:
    import pandas as pd

    id_col, time_col, label_col = cfg.id_column, cfg.time_column, cfg.label_column
    _need_column(frame, path, id_col, "data.id_column", "id")
    _need_column(frame, path, time_col, "data.time_column", "time")
    _need_column(frame, path, label_col, "data.label_column", "label")
    feats = _feature_columns(frame, path, cfg.feature_columns, [id_col, time_col, label_col])
    values = _numeric(frame, feats, path)  # (R, D)
    time = _times(frame[time_col], path, time_col)
    labels = _label_names(frame[label_col].to_numpy())
    id_na = frame[id_col].isna().to_numpy()
    no_key = id_na | np.isnan(time)
    lab_na = np.array([lab is None for lab in labels], dtype=bool)
    cell_na = lab_na | np.isnan(values).any(axis=1)
    if cfg.nan_policy == "error" and (no_key | cell_na).any():
        raise _missing_error(path, f"rows {_listing(np.flatnonzero(no_key | cell_na) + 2)} (file line numbers)")
    if no_key.any() and cfg.nan_policy == "fill":
        raise DataError(
            f"{path.name}: empty '{id_col}' or '{time_col}' cells in rows "
            f"{_listing(np.flatnonzero(no_key) + 2)} (file line numbers); nan_policy=fill fills only "
            "features and labels, use drop"
        )
    rows = np.flatnonzero(~no_key)  # rows that belong to a sequence
    codes, uniques = pd.factorize(frame[id_col].to_numpy()[rows], sort=False)
    n = len(uniques)
    # one label per id
    per_id = pd.Series(labels[rows]).groupby(codes)
    changes = per_id.nunique(dropna=True)
    if (changes > 1).any():
        c = int(changes.index[np.argmax(changes.to_numpy() > 1)])
        found = sorted({lab for lab in labels[rows][codes == c] if lab is not None}, key=_class_order)
        raise DataError(
            f"{path.name}: the label changes within id '{uniques[c]}' ({_listing(found)}); "
            "a sequence needs one label on all its rows"
        )
    seq_labels = np.empty(n, dtype=object)
    first = per_id.first()
    seq_labels[first.index.to_numpy()] = first.to_numpy()
    seq_labels = np.array([None if (lab is None or lab != lab) else lab for lab in seq_labels], dtype=object)
    # time order within each id
    order = np.lexsort((time[rows], codes))
    codes_s, time_s, rows_s = codes[order], time[rows][order], rows[order]
    dup = np.flatnonzero((codes_s[1:] == codes_s[:-1]) & (time_s[1:] == time_s[:-1]))
    if len(dup):
        r = rows_s[dup[0] + 1]
        raise DataError(
            f"{path.name}: id '{uniques[codes_s[dup[0]]]}' has time {str(frame[time_col].iloc[r])!r} more than once "
            f"(rows {rows_s[dup[0]] + 2} and {r + 2}, file line numbers)"
        )
    lengths = np.bincount(codes_s, minlength=n)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(len(rows_s)) - starts[codes_s]
    x = np.full((n, int(lengths.max()), len(feats)), np.nan)
    x[codes_s, pos] = values[rows_s]
    incomplete = np.bincount(codes, weights=cell_na[rows], minlength=n) > 0
    no_label = np.array([lab is None for lab in seq_labels], dtype=bool)
    names = np.asarray(uniques, dtype=object)
    seqs = _Seqs(x, lengths, seq_labels, feats,
                 lambda idx: f"sequences with id {_listing(repr(str(i)) for i in names[np.asarray(idx)])}")
    return seqs, incomplete | no_label, no_label


# ---------------------------------------------------------------- NPZ


def _read_npz(path: Path) -> tuple[_Seqs, np.ndarray, np.ndarray]:
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as NPZ: {str(exc).strip().splitlines()[0]}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path.name} holds a single array; save an NPZ archive with np.savez(path, x=..., y=...)")
    with z:
        keys = list(z.files)
        for k in ("x", "y"):
            if k not in keys:
                raise DataError(
                    f"{path.name} has no array '{k}' (arrays: {', '.join(keys) or 'none'}); "
                    "it needs x (N, T, D) or (N, T) and y (N,)"
                )
        if "mask" in keys and "lengths" in keys:
            raise DataError(f"{path.name} has both 'mask' and 'lengths'; give one of them")
        arrays = {}
        for k in ("x", "y", "mask", "lengths"):
            if k in keys:
                try:
                    arrays[k] = z[k]
                except ValueError:
                    raise DataError(
                        f"{path.name}: array '{k}' holds Python objects; save numbers or fixed-width "
                        "strings (e.g. np.asarray(labels, dtype=str))"
                    ) from None
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise DataError(
            f"{path.name}: x must have shape (N, T, D) or (N, T) with N, T, D >= 1 (got {arrays['x'].shape})"
        )
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path.name}: x must be numeric (got dtype {x.dtype})")
    n, t, _ = x.shape
    if y.shape != (n,):
        raise DataError(f"{path.name}: y must have shape (N,) = ({n},) to match x (got {y.shape})")
    if "mask" in arrays:
        m = arrays["mask"]
        if m.shape != (n, t):
            raise DataError(f"{path.name}: mask must have shape (N, T) = ({n}, {t}) to match x (got {m.shape})")
        if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
            raise DataError(f"{path.name}: mask must hold only 0 and 1")
        lengths = m.sum(axis=1).astype(np.int64)
        bad = np.flatnonzero((m != (np.arange(t)[None, :] < lengths[:, None])).any(axis=1))
        if len(bad):
            raise DataError(
                f"{path.name}: mask must be 1 on the first steps and 0 after them (post-padding); "
                f"sequences {_listing(bad)} (0-based) are not"
            )
    elif "lengths" in arrays:
        lens = arrays["lengths"]
        if lens.shape != (n,):
            raise DataError(f"{path.name}: lengths must have shape (N,) = ({n},) to match x (got {lens.shape})")
        if lens.dtype.kind not in "iuf" or not np.all(np.mod(lens, 1) == 0) or lens.min() < 0 or lens.max() > t:
            raise DataError(f"{path.name}: lengths must be whole numbers in 0..{t} (T of x)")
        lengths = lens.astype(np.int64)
    else:
        lengths = np.full(n, t, dtype=np.int64)
    xf = x.astype(np.float64)
    real = np.arange(t)[None, :] < lengths[:, None]
    gaps = (np.isnan(xf).any(axis=2) & real).any(axis=1)
    labels = _label_names(y)
    no_label = np.array([lab is None for lab in labels], dtype=bool)
    seqs = _Seqs(xf, lengths, labels, None, lambda idx: f"sequences {_listing(np.asarray(idx))} (0-based)")
    return seqs, gaps | no_label | (lengths == 0), no_label | (lengths == 0)


# ---------------------------------------------------------------- common steps


def _fill_gaps(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along time within each sequence, back-fill leading ones, 0 where a feature has no value."""
    t = x.shape[1]
    x = x.copy()
    x[~(np.arange(t)[None, :] < lengths[:, None])] = np.nan  # padding must not fill real steps
    steps = np.arange(t)[None, :, None]
    for flip in (False, True):
        a = x[:, ::-1] if flip else x
        pos = np.where(np.isnan(a), 0, steps)
        np.maximum.accumulate(pos, axis=1, out=pos)
        a = np.take_along_axis(a, pos, axis=1)
        x = a[:, ::-1] if flip else a
    return np.nan_to_num(x, nan=0.0)


def _apply_nan_policy(seqs: _Seqs, incomplete: np.ndarray, unfillable: np.ndarray, policy: str,
                      path: Path) -> tuple[_Seqs, int]:
    """(sequences with missing values handled, how many were dropped)."""
    bad = incomplete | unfillable
    if not bad.any():
        return seqs, 0
    if policy == "error":
        raise _missing_error(path, seqs.describe(np.flatnonzero(bad)))
    if policy == "drop":
        if bad.all():
            raise DataError(f"{path.name}: every sequence has missing values; nothing is left after dropping them")
        return seqs.take(~bad), int(bad.sum())
    if unfillable.any():
        raise DataError(
            f"{path.name}: {seqs.describe(np.flatnonzero(unfillable))} have no label or no values, "
            "which nan_policy=fill cannot fill (use drop)"
        )
    return replace(seqs, x=_fill_gaps(seqs.x, seqs.lengths)), 0


def _read(path: Path, cfg) -> tuple[str, _Seqs, int]:
    """(format used, sequences, number dropped for missing values)."""
    if cfg.format not in FORMATS:
        raise DataError(f"unknown data.format '{cfg.format}' (choose from: {', '.join(FORMATS)})")
    if cfg.nan_policy not in NAN_POLICIES:
        raise DataError(f"unknown data.nan_policy '{cfg.nan_policy}' (choose from: {', '.join(NAN_POLICIES)})")
    _check_file(path)
    fmt = cfg.format
    if fmt == "auto":
        if path.name.lower().endswith(".npz"):
            fmt = "npz"
        elif not _is_csv(path):
            raise DataError(
                f"cannot tell the format of {path.name} from its extension "
                "(use .csv, .tsv or .npz, or set data.format to wide, long or npz)"
            )
    if fmt == "npz":
        seqs, incomplete, unfillable = _read_npz(path)
    else:
        frame = _read_csv(path)
        if fmt == "auto":
            fmt = "long" if {cfg.id_column, cfg.time_column} <= set(frame.columns) else "wide"
        reader = _read_long if fmt == "long" else _read_wide
        seqs, incomplete, unfillable = reader(path, frame, cfg)
    seqs, dropped = _apply_nan_policy(seqs, incomplete, unfillable, cfg.nan_policy, path)
    return fmt, seqs, dropped


def _stratified(y: np.ndarray, classes: list[str], val_frac: float, test_frac: float,
                rng: np.random.Generator, what: str) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c, name in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = len(idx)
        n_test = int(np.floor(n * test_frac + 0.5))
        n_val = int(np.floor(n * (val_frac + test_frac) + 0.5)) - n_test  # rounded once, not twice up
        if n - n_val - n_test < 1:
            raise DataError(
                f"{what}: class '{name}' has only {n} sequence(s), too few for val_frac={val_frac} and "
                f"test_frac={test_frac} (every class needs at least one training sequence)"
            )
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: rng.permutation(np.concatenate(v)) for k, v in parts.items()}


def _pad(x: np.ndarray, lengths: np.ndarray, t: int) -> np.ndarray:
    """x cut or zero-padded to t steps, zeros past each sequence's length."""
    out = np.zeros((x.shape[0], t, x.shape[2]))
    k = min(t, x.shape[1])
    out[:, :k] = x[:, :k]
    out[~(np.arange(t)[None, :] < lengths[:, None])] = 0.0
    return out


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    """The sequence file (and data.test_path's) as a classification task: labels encoded, split
    (stratified), padded with masks, optionally scaled on the training steps."""
    path, fmt, seqs, test_path, test_fmt, test, dropped = _read_files(cfg)
    classes, y_all, y_test = _labels(cfg, path, fmt, seqs, test_path, test)
    test_frac = 0.0 if test is not None else cfg.test_frac
    idx = _stratified(y_all, classes, cfg.val_frac, test_frac, rng, path.name)
    lengths_all = seqs.lengths if cfg.max_len is None else np.minimum(seqs.lengths, cfg.max_len)
    parts = {k: (seqs.x[ix], lengths_all[ix], y_all[ix]) for k, ix in idx.items() if k != "test" or test is None}
    if test is not None:
        t_len = test.lengths if cfg.max_len is None else np.minimum(test.lengths, cfg.max_len)
        parts["test"] = (test.x, t_len, y_test)
    for k, (_, lens, _) in parts.items():
        if len(lens) == 0:
            raise DataError(
                f"{path.name}: the {k} split is empty ({len(y_all)} sequences with val_frac={cfg.val_frac}, "
                f"test_frac={test_frac})"
            )
    splits, t, scaler = _padded_splits(parts, cfg.scale, dtype)
    binary = len(classes) == 2
    lengths_used = np.concatenate([lens for _, lens, _ in parts.values()])
    meta = {
        "task": "seqfile", "format": fmt, "path": str(path),
        "test_path": None if test_path is None else str(test_path), "test_format": test_fmt,
        "classes": list(classes), "n_classes": len(classes), "n_features": seqs.x.shape[2], "features": seqs.features,
        "max_len": t, "truncate": cfg.max_len,
        "lengths": {"min": int(lengths_used.min()), "max": int(lengths_used.max()),
                    "mean": float(lengths_used.mean())},
        "class_counts": {k: np.bincount(s.y, minlength=len(classes)).tolist() for k, s in splits.items()},
        "nan_policy": cfg.nan_policy, "dropped": dropped, "scale": bool(cfg.scale), "scaler": scaler,
    }
    return TaskData(
        kind="binary" if binary else "multiclass", train=splits["train"], val=splits["val"], test=splits["test"],
        input_size=seqs.x.shape[2], output_size=1 if binary else len(classes),
        default_loss="bce" if binary else "cross_entropy",
        baselines={}, meta=meta, classes=list(classes),
    )


def _read_files(cfg):
    """(path, format, sequences, test path, test format, test sequences, dropped) of data.path and data.test_path."""
    if not cfg.path:
        raise DataError("data.path must name a sequence file (CSV or NPZ), e.g. data.path=train.csv")
    path = resolve_path(cfg.path)
    fmt, seqs, dropped = _read(path, cfg)
    test_path = test_fmt = test = None
    if cfg.test_path:
        test_path = resolve_path(cfg.test_path)
        test_fmt, test, test_dropped = _read(test_path, cfg)
        dropped += test_dropped
        if test.x.shape[2] != seqs.x.shape[2]:
            raise DataError(
                f"test file {test_path.name} has {test.x.shape[2]} features per step, "
                f"but {path.name} has {seqs.x.shape[2]}"
            )
    return path, fmt, seqs, test_path, test_fmt, test, dropped


def _labels(cfg, path, fmt, seqs, test_path, test):
    """(classes in order, training labels as indices, test labels as indices or None)."""
    classes = sorted(set(seqs.labels), key=_class_order)
    if len(classes) < 2:
        source = "y" if fmt == "npz" else f"label column '{cfg.label_column}'"
        raise DataError(
            f"{path.name}: found only one class ({classes[0]!r}) in {source}; classification needs at least 2"
        )
    index = {name: i for i, name in enumerate(classes)}
    y_all = np.array([index[lab] for lab in seqs.labels], dtype=np.int64)
    y_test = None
    if test is not None:
        unknown = sorted({lab for lab in test.labels if lab not in index}, key=_class_order)
        if unknown:
            raise DataError(
                f"test file {test_path.name} has labels not in {path.name}: {_listing(repr(u) for u in unknown)} "
                "(every class must appear in training)"
            )
        y_test = np.array([index[lab] for lab in test.labels], dtype=np.int64)
    return classes, y_all, y_test


def _padded_splits(parts, scale: bool, dtype):
    """({split: Split}, padded length, scaler or None): every split padded to the longest sequence, with
    masks unless every sequence fills it, scaled by the training steps' mean and std when asked."""
    t = int(max(lens.max() for _, lens, _ in parts.values()))
    padded = {k: _pad(x, lens, t) for k, (x, lens, _) in parts.items()}
    masks = {k: (np.arange(t)[None, :] < lens[:, None]) for k, (_, lens, _) in parts.items()}
    scaler = None
    if scale:
        real = padded["train"][masks["train"]]  # (real train steps, D)
        mean = real.mean(axis=0)
        std = real.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        scaler = {"mean": mean.tolist(), "std": std.tolist()}
        for k in padded:
            padded[k] = (padded[k] - mean) / std * masks[k][:, :, None]
    full = all(m.all() for m in masks.values())
    splits = {
        k: Split(
            np.ascontiguousarray(padded[k], dtype=dtype), parts[k][2],
            None if full else masks[k].astype(dtype),
        )
        for k in ("train", "val", "test")
    }
    return splits, t, scaler
