"""Gradient clipping over a dict of gradients (name -> array of any shape).

Both functions return a new dict and never write into the input arrays, so a caller may
keep the unclipped gradients (e.g. to log their norm) alongside the clipped ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """sqrt of the sum of squares of every entry of every gradient, accumulated in float64
    so that float32 gradients of ~1e5 entries still give an exact-to-rounding norm."""
    total = 0.0
    for g in grads.values():
        flat = np.asarray(g, dtype=np.float64).reshape(-1)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_by_global_norm(grads: Mapping[str, np.ndarray], max_norm: float):
    """Scale all gradients by max_norm / norm when norm > max_norm.

    Returns (new_grads, norm_before). Unlike torch's clip_grad_norm_ no 1e-6 is added to
    the norm, so the clipped norm is max_norm to rounding. When norm <= max_norm, or the
    norm is not finite (nothing sensible to scale by; the caller sees it in norm_before
    and can skip the step), the dict holds the very same arrays.
    """
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"clip.max_norm must be > 0 (got {max_norm})")
    norm = global_norm(grads)
    if norm <= max_norm or not math.isfinite(norm):
        return dict(grads), norm
    scale = max_norm / norm
    # A Python float scale keeps each gradient's own dtype.
    return {k: g * scale for k, g in grads.items()}, norm


def clip_by_value(grads: Mapping[str, np.ndarray], clip_value: float) -> dict[str, np.ndarray]:
    """Clamp every entry to [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    if not clip_value > 0:
        raise ValueError(f"clip.clip_value must be > 0 (got {clip_value})")
    return {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}
