"""Cross-validation folds: split indices, and re-split a loaded data set for fold i.

The development set is train + val of the loaded data, in that order (for the forecasting
windows of sine and csv that is time order: train windows come before val windows); the
test split is never touched, so every fold is tested on the same samples. Fold i trains on
its `train` indices of the development set and validates (model selection, early stopping,
the decision threshold) on its `val` indices.

Split functions follow scikit-learn (written here to avoid the dependency):

* `kfold`: KFold(n_splits=k, shuffle): k contiguous blocks of a (shuffled) order; the first
  n % k blocks have one sample more.
* `stratified_kfold`: StratifiedKFold: every class spread over the folds so each fold holds
  its share of the class within one sample, fold sizes within one sample of each other.
* `time_series_split`: TimeSeriesSplit(n_splits=k, test_size=val_size, gap, max_train_size):
  k validation blocks at the end of the development set; fold i trains on everything before
  its block minus `gap` samples (expanding window), or on at most max_train_size of them
  (sliding window).

Preprocessing fitted on training rows (scalers, vocabularies) is refitted on the fold's
training rows through the loader's `TaskData.refit`, so a fold's validation rows inform
nothing but its validation scores: see docs/design.md ("Cross-validation").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnlab.data.base import DataError, Split, TaskData

STRATEGIES = ("auto", "kfold", "stratified", "expanding", "sliding")
TIME_SERIES = ("expanding", "sliding")
# Fold assignment has its own random stream: SeedSequence([seed, CV_STREAM]), independent of the
# trainer's streams (children of SeedSequence(seed)), so shuffling the folds changes no other draw.
CV_STREAM = 0xC5
# meta["cv"]["preprocessing"] of a fold: "scaler and baselines refitted on the fold's training rows" (REFITTED after the
# loader's Refit.what), or NOTHING_TO_REFIT for data whose loader fits nothing on its training rows
# (adding, copy, seq2seq, data.scale=false).
REFITTED = "refitted on the fold's training rows"
NOTHING_TO_REFIT = "none needed"


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # indices into the development set, ascending
    val: np.ndarray
    gap: int = 0  # samples left out between train and val (time-series strategies)


# ----------------------------------------------------------------------------- split indices


def _need(n: int, k: int) -> None:
    if k < 2:
        raise DataError(f"cv.k must be >= 2 (got {k})")
    if k > n:
        raise DataError(f"cv.k={k} folds need at least {k} samples in the development set (train + val), "
                        f"which has {n}")


def kfold(n: int, k: int, shuffle: bool = True, rng: np.random.Generator | None = None) -> list[Fold]:
    _need(n, k)
    order = np.arange(n)
    if shuffle:
        order = (rng or np.random.default_rng(0)).permutation(n)
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    stops = np.cumsum(sizes)
    folds = []
    for i, (start, stop) in enumerate(zip(stops - sizes, stops, strict=True)):
        val = np.sort(order[start:stop])
        folds.append(Fold(i, np.setdiff1d(np.arange(n), val), val))
    return folds


def stratified_kfold(y: np.ndarray, k: int, shuffle: bool = True,
                     rng: np.random.Generator | None = None) -> list[Fold]:
    y = np.asarray(y).ravel()
    _need(len(y), k)
    rng = rng or np.random.default_rng(0)
    classes, codes = np.unique(y, return_inverse=True)
    # Deal the label-sorted samples out round-robin: fold i gets every k-th one from i, which fixes
    # how many of each class it holds (within one of the others) and its size (within one).
    dealt = np.sort(codes, kind="stable")
    counts = np.stack([np.bincount(dealt[i::k], minlength=len(classes)) for i in range(k)])  # (k, C)
    fold_of = np.empty(len(y), dtype=np.int64)
    for c in range(len(classes)):
        members = np.flatnonzero(codes == c)
        assignment = np.repeat(np.arange(k), counts[:, c])
        if shuffle:
            rng.shuffle(assignment)
        fold_of[members] = assignment
    everything = np.arange(len(y))
    return [Fold(i, everything[fold_of != i], everything[fold_of == i]) for i in range(k)]


def time_series_split(n: int, k: int, gap: int = 0, val_size: int | None = None,
                      max_train_size: int | None = None) -> list[Fold]:
    if k < 2:
        raise DataError(f"cv.k must be >= 2 (got {k})")
    size = n // (k + 1) if val_size is None else val_size
    if size < 1:
        raise DataError(f"cv.k={k} time-series folds need at least {k + 1} samples in the development set "
                        f"(train + val), which has {n}")
    if n - gap - size * k <= 0:
        raise DataError(f"cv.k={k} time-series folds with validation blocks of {size} and cv.gap={gap} need more "
                        f"than {gap + size * k} samples in the development set (train + val), which has {n}")
    folds = []
    for i, start in enumerate(range(n - k * size, n, size)):
        stop = start - gap
        first = 0 if max_train_size is None else max(0, stop - max_train_size)
        folds.append(Fold(i, np.arange(first, stop), np.arange(start, start + size), gap))
    return folds


# ----------------------------------------------------------------------------- choosing the folds


def is_windowed_series(data) -> bool:
    """Forecasting windows of one series (sine, csv): time-ordered and overlapping."""
    meta = getattr(data, "meta", {}) or {}
    return getattr(data, "kind", None) == "regression" and "n_in" in meta and "n_out" in meta


def _labels(data) -> np.ndarray | None:
    """One class label per sample of the development set, or None (regression, per-step labels)."""
    if getattr(data, "kind", None) not in ("binary", "multiclass") or data.train.y.ndim != 1:
        return None
    return np.concatenate([data.train.y, data.val.y])


def resolve_strategy(strategy: str, data) -> str:
    """auto: expanding windows for a forecasting series, stratified for one label per sample, else kfold."""
    if strategy != "auto":
        return strategy
    if is_windowed_series(data):
        return "expanding"
    return "stratified" if _labels(data) is not None else "kfold"


def resolve_gap(cv, data, strategy: str) -> int:
    """cv.gap, or by default n_out - 1 windows for forecasting windows (no target step in both parts)."""
    if cv.gap is not None:
        return int(cv.gap)
    if strategy in TIME_SERIES and is_windowed_series(data):
        return max(0, int(data.meta["n_out"]) - 1)
    return 0


def plan(data, cv, seed: int, data_name: str = "the data") -> tuple[str, list[Fold]]:
    """(resolved strategy, every fold) for a loaded data set; DataError (one line) when it cannot be split."""
    strategy = resolve_strategy(cv.strategy, data)
    n = len(data.train) + len(data.val)
    gap = resolve_gap(cv, data, strategy)
    if strategy not in TIME_SERIES:
        given = [f"cv.{key}" for key in ("gap", "val_size", "max_train_size") if getattr(cv, key) not in (None, 0)]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise DataError(f"{' and '.join(given)} {verb} to the time-series strategies expanding and sliding "
                            f"(cv.strategy resolves to {strategy} here)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, CV_STREAM]))
    if strategy == "kfold":
        return strategy, kfold(n, cv.k, cv.shuffle, rng)
    if strategy == "stratified":
        labels = _labels(data)
        if labels is None:
            what = (f"data '{data_name}' is regression" if getattr(data, "kind", None) == "regression"
                    else f"data '{data_name}' has no single label per sequence")
            raise DataError(f"cv.strategy=stratified needs one class label per sequence, but {what} "
                            "(use kfold, expanding or sliding)")
        return strategy, stratified_kfold(labels, cv.k, cv.shuffle, rng)
    max_train = cv.max_train_size
    if strategy == "sliding" and max_train is None:
        # The sliding window keeps the first fold's training length for every fold.
        max_train = time_series_split(n, cv.k, gap, cv.val_size)[0].train.size
    return strategy, time_series_split(n, cv.k, gap, cv.val_size, max_train)


def describe(fold: Fold, k: int, strategy: str) -> dict[str, Any]:
    """The `cv` entry of a fold's summary.json (JSON types only)."""
    out: dict[str, Any] = {"fold": fold.index, "k": k, "strategy": strategy,
                           "n_train": int(fold.train.size), "n_val": int(fold.val.size)}
    if strategy in TIME_SERIES:
        out.update(gap=fold.gap, train_range=[int(fold.train[0]), int(fold.train[-1]) + 1],
                   val_range=[int(fold.val[0]), int(fold.val[-1]) + 1])
    return out


# ----------------------------------------------------------------------------- re-splitting


def _concat(a, b):
    if a is None and b is None:
        return None
    if hasattr(a, "iloc"):  # pandas info tables
        import pandas as pd

        return pd.concat([a, b], ignore_index=True)
    return np.concatenate([a, b])


def _rows(a, idx: np.ndarray):
    if a is None:
        return None
    if hasattr(a, "iloc"):
        return a.iloc[idx].reset_index(drop=True)
    return np.ascontiguousarray(a[idx])


def _dev_split(train: Split, val: Split) -> Split:
    masks = (train.mask, val.mask)
    if (masks[0] is None) != (masks[1] is None):  # one split padded, the other full length
        masks = tuple(np.ones(s.x.shape[:2], dtype=s.x.dtype) if m is None else m
                      for m, s in zip(masks, (train, val), strict=True))
    info = (train.info, val.info) if train.info is not None and val.info is not None else (None, None)
    tm = (train.target_mask, val.target_mask)
    if (tm[0] is None) != (tm[1] is None):
        tm = tuple(np.ones(s.y.shape, dtype=s.x.dtype) if m is None else m for m, s in zip(tm, (train, val),
                                                                                          strict=True))
    return Split(_concat(train.x, val.x), _concat(train.y, val.y), _concat(*masks), _concat(*info), _concat(*tm))


def _take(split: Split, idx: np.ndarray) -> Split:
    return Split(_rows(split.x, idx), _rows(split.y, idx), _rows(split.mask, idx), _rows(split.info, idx),
                 _rows(split.target_mask, idx))


def _row_inverse(inverse, n_train: int, n_val: int, fold: Fold):
    """The loader's inverse (rows of its own train/val split) for the fold's train/val rows.

    A loader's inverse may depend on the row (csv: each window's last level undoes a
    difference or return transform), so each fold row is mapped through its original split
    at its original position. Valid for inverses that treat rows independently, as all ours do.
    """
    parts = (("train", 0, n_train), ("val", n_train, n_val))

    def to_original(y: np.ndarray, split: str) -> np.ndarray:
        if split not in ("train", "val"):
            return inverse(y, split)
        rows = fold.train if split == "train" else fold.val
        y = np.asarray(y, dtype=np.float64)
        out = None
        for name, offset, size in parts:
            sel = (rows >= offset) & (rows < offset + size)
            if not sel.any():
                continue
            full = np.zeros((size, *y.shape[1:]))
            full[rows[sel] - offset] = y[sel]
            mapped = inverse(full, name)[rows[sel] - offset]
            if out is None:
                out = np.empty((len(rows), *mapped.shape[1:]))
            out[sel] = mapped
        return out if out is not None else np.zeros((0, *y.shape[1:]))

    return to_original


def _fold_rows(parts: dict[str, np.ndarray], fold: Fold) -> dict[str, np.ndarray] | None:
    """Per-split rows ({"train", "val", ...}) re-split into the fold's train and val rows (others kept);
    None without both train and val rows."""
    if "train" not in parts or "val" not in parts:
        return None
    dev = np.concatenate([parts["train"], parts["val"]])
    return {**parts, "train": dev[fold.train], "val": dev[fold.val]}


def _resplit_baselines(baselines: dict, fold: Fold) -> tuple[dict, list[str]]:
    """Baselines rebuilt on the fold's val rows; those without train rows cannot be, and are dropped."""
    resplit = {name: _fold_rows(parts, fold) for name, parts in baselines.items()}
    return {k: v for k, v in resplit.items() if v is not None}, [k for k, v in resplit.items() if v is None]


def _refit(data: TaskData, fold: Fold) -> tuple[TaskData, str]:
    """The data with its preprocessing fitted on the fold's training rows, and what that was (for meta["cv"])."""
    if data.refit is None:
        return data, NOTHING_TO_REFIT
    refitted = data.refit.fit(fold.train, fold.val)
    refitted.refit = None  # its rows are re-split next: a refit of them would address the wrong rows
    return refitted, f"{data.refit.what} {REFITTED}"


def resplit(data, cv, seed: int, data_name: str = "the data"):
    """The data set with train/val replaced by fold `cv.fold` of train + val (test untouched).

    Call it before `as_recursive` (the recursive view keeps only one-step targets of train).
    The loader's preprocessing is refitted on the fold's training rows first (`TaskData.refit`).
    `data.meta["cv"]` records the fold (see `describe`) and what was refitted ("preprocessing").
    """
    if getattr(data, "recursive_horizon", None):
        raise ValueError("resplit needs the direct task; apply as_recursive after it")
    strategy, folds = plan(data, cv, seed, data_name)
    if not 0 <= cv.fold < len(folds):
        raise DataError(f"cv.fold must be in 0..{len(folds) - 1} (got {cv.fold})")
    fold = folds[cv.fold]
    n_train, n_val = len(data.train), len(data.val)
    entry = describe(fold, cv.k, strategy)
    if isinstance(data, TaskData):
        data, entry["preprocessing"] = _refit(data, fold)
        dev = _dev_split(data.train, data.val)
        data.train, data.val = _take(dev, fold.train), _take(dev, fold.val)
        data.contiguous = False  # a fold's rows are not one stream (train.stateful refuses it)
        data.baselines, dropped = _resplit_baselines(data.baselines, fold)
        # without the loader's train rows the report falls back to mapping the fold's targets back
        data.original_targets = _fold_rows(data.original_targets, fold) or {}
        if dropped:
            entry["dropped_baselines"] = dropped
        if data.inverse is not None:
            data.inverse = _row_inverse(data.inverse, n_train, n_val, fold)
    else:  # a Seq2SeqTask: splits of aligned arrays with .batch(idx)
        from rnnlab.data.seq2seq_tasks import Seq2SeqSplit

        tr, va = data.train, data.val
        dev = Seq2SeqSplit(*(np.concatenate([getattr(tr, f), getattr(va, f)])
                             for f in ("src", "src_mask", "tgt_in", "tgt_out", "tgt_mask")))
        data.train, data.val = dev.batch(fold.train), dev.batch(fold.val)
        entry["preprocessing"] = NOTHING_TO_REFIT
    data.meta = {**data.meta, "cv": entry}
    if "val_origins" in data.meta:  # forecasting: the fold's validation windows are its origins
        data.meta["val_origins"] = len(data.val)
    return data
