"""Inverted dropout: keep each unit with probability 1 - p and scale kept units by 1/(1-p),
so the expected activation is unchanged and evaluation needs no rescaling.

Shapes: x, y, dy, dx and the mask all share one shape (the mask may also be broadcastable,
e.g. (B, 1, H) for one mask per sequence).
"""

from __future__ import annotations

import numpy as np


def _check_p(p) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout p must be in [0, 1] (got {p})")
    return p


def sample_mask(rng: np.random.Generator, shape, p: float, dtype=np.float32) -> np.ndarray:
    """Scaled keep mask: 1/(1-p) where kept, 0 where dropped (all zeros when p == 1)."""
    p = _check_p(p)
    if p == 1.0:
        return np.zeros(shape, dtype=dtype)
    # float32 uniforms are twice as cheap and resolve p to 2**-24, plenty for dropout.
    mask = (rng.random(shape, dtype=np.float32) >= p).astype(dtype)
    mask *= 1.0 / (1.0 - p)  # a Python float keeps the mask's dtype
    return mask


def forward(x: np.ndarray, p: float, rng: np.random.Generator | None, train: bool = True):
    """Returns (y, cache). In eval mode or with p == 0, y is x itself and cache marks it."""
    p = _check_p(p)
    if not train or p == 0.0:
        return x, {"identity": True, "mask": None}
    mask = sample_mask(rng, x.shape, p, x.dtype)
    return x * mask, {"identity": False, "mask": mask}


def backward(dy: np.ndarray, cache) -> np.ndarray:
    """dx = dy * mask (the same scaled mask), or dy unchanged for the identity case."""
    mask = cache["mask"]
    return dy if mask is None else dy * mask
