"""The fixed probe batch: the first `size` sequences of the validation split.

Fixed so that per-epoch pictures (gradient flow, states) compare the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Probe:
    x: np.ndarray  # (P, T, D) floats or (P, T) token ids
    y: np.ndarray
    mask: np.ndarray | None
    target_mask: np.ndarray | None


def make_probe(data, size: int) -> Probe | None:
    split = data.val if len(data.val) else data.train
    if len(split) == 0:
        return None
    n = min(size, len(split))
    idx = np.arange(n)
    tmask = getattr(split, "target_mask", None)
    return Probe(
        x=split.x[idx],
        y=split.y[idx],
        mask=None if split.mask is None else split.mask[idx],
        target_mask=None if tmask is None else tmask[idx],
    )
