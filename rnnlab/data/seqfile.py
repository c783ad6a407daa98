"""Sequence classification from your own files: one label per sequence.

The files are read by rnnlab/data/seqformats (one reader per data.format: wide and long CSV,
NPZ, UCR/UEA .ts; `auto` decides by the extension and, for a CSV, by its columns, and meta
records the format and why). This module turns what they read into a task.

Labels (numbers or text) are sorted (numbers numerically, before text) and numbered
0..C-1; their names are TaskData.classes. Two classes give kind "binary" (one output,
BCE), more give "multiclass" (C outputs, cross entropy). Labels that look continuous
(fractions, or nearly one value per sequence) are refused: this is classification. The
split is stratified by label (every class keeps its share in each split) and seeded by the
generator passed to `load`; a separate test file can replace the test split. Features are
standardized per feature with a mean and std fitted on the real (unpadded) steps of the
train split (a cross-validation fold refits them on its training sequences: TaskData.refit).

Shapes: x (N, T, D) in the run dtype, post-padded with zeros; y int64 (N,); mask
(N, T) of 0/1 (1 = real step) or None when every sequence has all T steps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from rnnlab.data import seqformats
from rnnlab.data.base import DataError, Refit, Split, TaskData
from rnnlab.data.paths import resolve_path
from rnnlab.data.seqformats.common import Read, Seqs, class_order, listing
from rnnlab.data.seqformats.csvfiles import missing_error

# Labels look continuous (a regression target) when some is a fraction, or when there are more
# than this many distinct numbers and more than half as many as sequences.
CONTINUOUS_MIN_VALUES = 10


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


def _apply_nan_policy(seqs: Seqs, incomplete: np.ndarray, unfillable: np.ndarray, policy: str,
                      path: Path) -> tuple[Seqs, int]:
    """(sequences with missing values handled, how many were dropped)."""
    bad = incomplete | unfillable
    if not bad.any():
        return seqs, 0
    if policy == "error":
        raise missing_error(path, seqs.describe(np.flatnonzero(bad)))
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


def _read(path: Path, cfg) -> tuple[Read, int]:
    """(the file as read, with missing values handled; number of sequences dropped for them)."""
    got = seqformats.read(path, cfg)
    seqs, dropped = _apply_nan_policy(got.seqs, got.incomplete, got.unfillable, cfg.nan_policy, path)
    return replace(got, seqs=seqs), dropped


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
    path, main, test_path, test_read, dropped = _read_files(cfg)
    seqs, test = main.seqs, (test_read.seqs if test_read is not None else None)
    classes, y_all, y_test = _labels(path, main, test_path, test)
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
    padded, masks = _padded(parts)
    t = padded["train"].shape[1]
    splits, scaler = _splits(parts, padded, masks, np.arange(len(parts["train"][2])) if cfg.scale else None, dtype)
    binary = len(classes) == 2
    lengths_used = np.concatenate([lens for _, lens, _ in parts.values()])
    meta = {
        "task": "seqfile", "format": main.format, "format_reason": main.reason, **main.columns,
        "path": str(path.resolve()),
        "test_path": None if test_path is None else str(test_path.resolve()),
        "test_format": None if test_read is None else test_read.format,
        "test_format_reason": None if test_read is None else test_read.reason,
        "classes": list(classes), "n_classes": len(classes), "n_features": seqs.x.shape[2], "features": seqs.features,
        "max_len": t, "truncate": cfg.max_len,
        "lengths": {"min": int(lengths_used.min()), "max": int(lengths_used.max()),
                    "mean": float(lengths_used.mean())},
        "class_counts": {k: np.bincount(s.y, minlength=len(classes)).tolist() for k, s in splits.items()},
        "nan_policy": cfg.nan_policy, "dropped": dropped, "scale": bool(cfg.scale), "scaler": scaler,
    }
    data = TaskData(
        kind="binary" if binary else "multiclass", train=splits["train"], val=splits["val"], test=splits["test"],
        input_size=seqs.x.shape[2], output_size=1 if binary else len(classes),
        default_loss="bce" if binary else "cross_entropy",
        baselines={}, meta=meta, classes=list(classes),
    )
    if cfg.scale:
        data.refit = Refit("scaler", lambda rows, _val: _refitted(data, parts, padded, masks, rows, dtype))
    return data


def _read_files(cfg) -> tuple[Path, Read, Path | None, Read | None, int]:
    """(path, what was read, test path, what was read there, sequences dropped) of data.path and data.test_path."""
    if not cfg.path:
        raise DataError("data.path must name a sequence file (CSV, NPZ or .ts), e.g. data.path=train.csv")
    path = resolve_path(cfg.path)
    main, dropped = _read(path, cfg)
    test_path = test = None
    if cfg.test_path:
        test_path = resolve_path(cfg.test_path)
        test, test_dropped = _read(test_path, cfg)
        dropped += test_dropped
        if test.seqs.x.shape[2] != main.seqs.x.shape[2]:
            raise DataError(
                f"test file {test_path.name} has {test.seqs.x.shape[2]} features per step, "
                f"but {path.name} has {main.seqs.x.shape[2]}"
            )
    return path, main, test_path, test, dropped


def _continuous(labels: np.ndarray) -> str | None:
    """Why labels look like a regression target (fractions, or nearly one value per sequence), else None."""
    names = [lab for lab in labels if lab is not None]
    try:
        values = np.array([float(lab) for lab in names])
    except ValueError:
        return None  # text labels are classes
    if len(values) == 0 or not np.isfinite(values).all():
        return None
    distinct = np.unique(values)
    fractions = distinct[distinct != np.round(distinct)]
    if len(fractions):
        return f"{len(fractions)} of {len(distinct)} values are not whole numbers, e.g. {fractions[0]:g}"
    if len(distinct) > max(CONTINUOUS_MIN_VALUES, len(values) / 2):
        return f"{len(distinct)} distinct values for {len(values)} sequences"
    return None


def _labels(path: Path, main: Read, test_path: Path | None, test: Seqs | None):
    """(classes in order, training labels as indices, test labels as indices or None)."""
    seqs = main.seqs
    why = _continuous(seqs.labels)
    if why:
        raise DataError(
            f"{path.name}: the labels in {main.label_source} look continuous ({why}); seqfile is classification "
            "(one class per sequence): give class labels, whole numbers or text"
        )
    classes = sorted(set(seqs.labels), key=class_order)
    if len(classes) < 2:
        raise DataError(
            f"{path.name}: found only one class ({classes[0]!r}) in {main.label_source}; classification needs "
            "at least 2"
        )
    index = {name: i for i, name in enumerate(classes)}
    y_all = np.array([index[lab] for lab in seqs.labels], dtype=np.int64)
    y_test = None
    if test is not None:
        unknown = sorted({lab for lab in test.labels if lab not in index}, key=class_order)
        if unknown:
            raise DataError(
                f"test file {test_path.name} has labels not in {path.name}: {listing(repr(u) for u in unknown)} "
                "(every class must appear in training)"
            )
        y_test = np.array([index[lab] for lab in test.labels], dtype=np.int64)
    return classes, y_all, y_test


def _padded(parts) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every split padded to the longest sequence (unscaled), and its masks of real steps."""
    t = int(max(lens.max() for _, lens, _ in parts.values()))
    padded = {k: _pad(x, lens, t) for k, (x, lens, _) in parts.items()}
    masks = {k: (np.arange(t)[None, :] < lens[:, None]) for k, (_, lens, _) in parts.items()}
    return padded, masks


def _splits(parts, padded, masks, fit_rows: np.ndarray | None, dtype) -> tuple[dict[str, Split], dict | None]:
    """({split: Split}, scaler or None): with fit_rows (indices into train + val, in that order) every split
    scaled per feature by the mean and std of those sequences' real steps, unscaled without; masks unless
    every sequence fills the padded length."""
    scaler = None
    if fit_rows is not None:
        dev, dev_masks = (np.concatenate([a["train"], a["val"]])[fit_rows] for a in (padded, masks))
        real = dev[dev_masks]  # (real steps of the sequences fitted on, D)
        mean = real.mean(axis=0)
        std = real.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        scaler = {"mean": mean.tolist(), "std": std.tolist()}
        padded = {k: (padded[k] - mean) / std * masks[k][:, :, None] for k in padded}
    full = all(m.all() for m in masks.values())
    splits = {
        k: Split(
            np.ascontiguousarray(padded[k], dtype=dtype), parts[k][2],
            None if full else masks[k].astype(dtype),
        )
        for k in ("train", "val", "test")
    }
    return splits, scaler


def _refitted(data: TaskData, parts, padded, masks, rows: np.ndarray, dtype) -> TaskData:
    """The data scaled by the real steps of development rows `rows` (a cross-validation fold's training rows)."""
    splits, scaler = _splits(parts, padded, masks, rows, dtype)
    return data.refitted(**splits, meta={"scaler": scaler})
