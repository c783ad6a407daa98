"""CSV sequence files: wide (one sequence per row) and long (one time step per row).

- wide: a label column, and the other columns (or the listed feature_columns) the time steps
  of one feature. Empty cells at the end of a row make it shorter (variable length); an
  empty cell before a value is missing. Id columns (layout.py) are not steps.
- long: one time step per row with an id, a time and a label column and one or more feature
  columns; rows are grouped by id (in order of first appearance) and sorted by time
  (numbers or dates). The label must be the same on every row of an id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError
from rnnlab.data.seqformats import layout as layouts
from rnnlab.data.seqformats.common import Read, Seqs, class_order, label_names, listing, missing_flags
from rnnlab.data.seqformats.csvparse import feature_columns, need_column, numeric, read_csv, times


def missing_error(path: Path, where: str) -> DataError:
    return DataError(f"{path.name}: missing values in {where}; set data.nan_policy to drop or fill")


def read(path: Path, cfg, fmt: str, reason: str) -> Read:
    """The CSV as `fmt` (wide, long, or auto: decided by layout.detect)."""
    frame = read_csv(path)
    if getattr(cfg, "unlabeled", False) and cfg.label_column not in frame.columns:
        frame = frame.assign(**{cfg.label_column: None})  # new inputs to predict: no labels to read
    need_column(frame, path, cfg.label_column, "data.label_column", "label")
    if fmt == "auto":
        lay = layouts.detect(frame, path, cfg)
    elif fmt == "long":
        lay = layouts.long_columns(frame, path, cfg)
    else:
        named = [c for c in frame.columns if c != cfg.label_column and layouts.id_named(c)]
        ids = (cfg.id_column,) if cfg.id_column else tuple(named)
        lay = layouts.Layout("wide", None, None, reason, ids + layouts.row_numbers(frame))
    return (_read_long if lay.format == "long" else _read_wide)(path, frame, cfg, lay)


def _read_wide(path: Path, frame, cfg, lay: layouts.Layout) -> Read:
    steps = feature_columns(frame, path, cfg.feature_columns, [cfg.label_column, *lay.skip])
    v = numeric(frame, steps, path)  # (N, T)
    n, t = v.shape
    has = ~np.isnan(v)
    lengths = np.where(has.any(axis=1), t - np.argmax(has[:, ::-1], axis=1), 0)
    labels = label_names(frame[cfg.label_column].to_numpy())
    seqs = Seqs(v[:, :, None], lengths, labels, None,
                lambda idx: f"rows {listing(np.asarray(idx) + 2)} (file line numbers)")
    incomplete, unfillable = missing_flags(seqs.x, lengths, labels)
    return Read(seqs, incomplete, unfillable, "wide", lay.reason, f"label column '{cfg.label_column}'")


def _read_long(path: Path, frame, cfg, lay: layouts.Layout) -> Read:
    import pandas as pd

    id_col, time_col, label_col = lay.id_column, lay.time_column, cfg.label_column
    feats = feature_columns(frame, path, cfg.feature_columns, [id_col, time_col, label_col, *lay.skip])
    values = numeric(frame, feats, path)  # (R, D)
    time = times(frame[time_col], path, time_col)
    labels = label_names(frame[label_col].to_numpy())
    id_na = frame[id_col].isna().to_numpy()
    no_key = id_na | np.isnan(time)
    lab_na = np.array([lab is None and not getattr(cfg, "unlabeled", False) for lab in labels], dtype=bool)
    cell_na = lab_na | np.isnan(values).any(axis=1)
    if cfg.nan_policy == "error" and (no_key | cell_na).any():
        raise missing_error(path, f"rows {listing(np.flatnonzero(no_key | cell_na) + 2)} (file line numbers)")
    if no_key.any() and cfg.nan_policy == "fill":
        raise DataError(
            f"{path.name}: empty '{id_col}' or '{time_col}' cells in rows "
            f"{listing(np.flatnonzero(no_key) + 2)} (file line numbers); nan_policy=fill fills only "
            "features and labels, use drop"
        )
    rows = np.flatnonzero(~no_key)  # rows that belong to a sequence
    codes, uniques = pd.factorize(frame[id_col].to_numpy()[rows], sort=False)
    n = len(uniques)
    seq_labels = _one_label_per_id(path, labels, rows, codes, uniques)
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
    seqs = Seqs(x, lengths, seq_labels, feats,
                lambda idx: f"sequences with id {listing(repr(str(i)) for i in names[np.asarray(idx)])}")
    return Read(seqs, incomplete | no_label, no_label, "long", lay.reason, f"label column '{label_col}'",
                {"id_column": id_col, "time_column": time_col})


def _one_label_per_id(path: Path, labels, rows, codes, uniques) -> np.ndarray:
    """Each id's label (None where all its rows lack one); refused when it changes within an id."""
    import pandas as pd

    per_id = pd.Series(labels[rows]).groupby(codes)
    changes = per_id.nunique(dropna=True)
    if (changes > 1).any():
        c = int(changes.index[np.argmax(changes.to_numpy() > 1)])
        found = sorted({lab for lab in labels[rows][codes == c] if lab is not None}, key=class_order)
        raise DataError(
            f"{path.name}: the label changes within id '{uniques[c]}' ({listing(found)}); "
            "a sequence needs one label on all its rows"
        )
    seq_labels = np.empty(len(uniques), dtype=object)
    first = per_id.first()
    seq_labels[first.index.to_numpy()] = first.to_numpy()
    return np.array([None if (lab is None or lab != lab) else lab for lab in seq_labels], dtype=object)
