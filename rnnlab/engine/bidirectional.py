"""Merging the two directions of a bidirectional layer (``blocks.Recurrent`` runs them).

Each direction gives hs (B, T, H); the merged output is (B, T, 2H) for merge_mode "concat" and
(B, T, H) for "sum", "mean", "mul" (as Keras' `Bidirectional(merge_mode=...)`). Both directions
see the same mask; the reverse direction's outputs stay aligned with input positions, and its
final state is the state after reading position 0 (PyTorch's h_n[1]).
"""

from __future__ import annotations

import numpy as np

MERGE_MODES = ("concat", "sum", "mean", "mul")


def merge(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    """Merge two (..., H) arrays from the two directions."""
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mean":
        return 0.5 * (a + b)
    if mode == "mul":
        return a * b
    raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)} (got '{mode}')")


def merge_backward(dy: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str):
    """Gradients of merge(a, b, mode) with respect to a and b, given dy."""
    if mode == "concat":
        h = a.shape[-1]
        return dy[..., :h], dy[..., h:]
    if mode == "sum":
        return dy, dy
    if mode == "mean":
        half = 0.5 * dy
        return half, half
    if mode == "mul":
        return dy * b, dy * a
    raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)} (got '{mode}')")


def lower_merge(g, a: str, b: str, mode: str) -> str:
    """`merge` in graph ops (rnnlab.engine.lowering), the same arithmetic."""
    if mode == "concat":
        return g.op("Concat", [a, b], axis=-1)
    if mode == "sum":
        return g.op("Add", [a, b])
    if mode == "mean":
        return g.op("Mul", [g.const(np.array(0.5)), g.op("Add", [a, b])])
    if mode == "mul":
        return g.op("Mul", [a, b])
    raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)} (got '{mode}')")
