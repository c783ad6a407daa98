"""Mini-batches: shuffling, length bucketing for padded sequences, and trimming pad columns.

With a mask (variable-length sequences, e.g. reviews padded to maxlen), batches are
drawn from length-sorted buckets (as torchtext's BucketIterator): the shuffled training
set is cut into pools of `pool` batches, each pool is sorted by length and cut into
batches, and the batch order is shuffled. Each batch is then trimmed to the columns
where some sequence has a real step, so a batch of short reviews costs short BPTT.
Masks make both invisible to the result: a sequence's output does not depend on how
much padding surrounds it.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.base import Split


def real_columns(mask: np.ndarray | None, T: int) -> slice:
    """The smallest column range holding every real step of the batch."""
    if mask is None:
        return slice(0, T)
    cols = np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return slice(0, min(T, 1))
    return slice(int(cols[0]), int(cols[-1]) + 1)


def per_step_targets(split: Split) -> bool:
    """True when y has one target per time step (pooling "none" tasks)."""
    tmask = getattr(split, "target_mask", None)
    return tmask is not None and split.y.ndim == 2 and split.y.shape[1] == split.x.shape[1]


def take(split: Split, idx: np.ndarray, trim: bool = True):
    """(x, y, mask, target_mask) of the rows idx, cut to their real columns when trim."""
    x = split.x[idx]
    mask = None if split.mask is None else split.mask[idx]
    y = split.y[idx]
    tmask = getattr(split, "target_mask", None)
    tmask = None if tmask is None else tmask[idx]
    if trim and mask is not None:
        cols = real_columns(mask, x.shape[1])
        x, mask = x[:, cols], mask[:, cols]
        if per_step_targets(split):
            y, tmask = y[:, cols], tmask[:, cols]
    return x, y, mask, tmask


def lengths(split: Split) -> np.ndarray | None:
    return None if split.mask is None else (split.mask > 0).sum(axis=1)


def train_batches(split: Split, batch_size: int, rng: np.random.Generator, bucket: bool = True,
                  pool: int = 50, shuffle: bool = True) -> list[np.ndarray]:
    """Index arrays of one epoch's batches."""
    return batch_order(len(split), batch_size, rng, lengths(split) if bucket else None, pool, shuffle)


def batch_order(n: int, batch_size: int, rng: np.random.Generator, lens: np.ndarray | None = None,
                pool: int = 50, shuffle: bool = True) -> list[np.ndarray]:
    """One epoch's batches of rows 0..n-1: shuffled, and with lens length-bucketed in pools of `pool` batches
    (shuffle=False, train.shuffle: the rows in order, nothing drawn from rng)."""
    if not shuffle:
        return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    if lens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    step = batch_size * pool
    for i in range(0, len(order), step):
        chunk = order[i : i + step]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    return [batches[k] for k in rng.permutation(len(batches))]


def eval_batches(split: Split, batch_size: int) -> list[np.ndarray]:
    """Batches for evaluation, grouped by length when there is a mask (order restored by the caller)."""
    lens = lengths(split)
    order = np.arange(len(split)) if lens is None else np.argsort(lens, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
