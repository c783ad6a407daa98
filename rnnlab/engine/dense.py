"""Fully connected (affine) layer: y = x @ W.T + b.

Shapes: x (..., in), weight (out, in), bias (out,), y (..., out). Any number of leading
axes is allowed (e.g. (B, T, in) for a per-timestep output projection); they are
flattened for the weight gradient.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.lowering import transposed


def init_params(rng: np.random.Generator, in_features: int, out_features: int,
                dtype=np.float32) -> dict[str, np.ndarray]:
    """PyTorch nn.Linear default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))."""
    if in_features < 1 or out_features < 1:
        raise ValueError(f"dense sizes must be >= 1 (got in={in_features}, out={out_features})")
    bound = 1.0 / np.sqrt(in_features)
    weight = rng.uniform(-bound, bound, size=(out_features, in_features)).astype(dtype)
    bias = rng.uniform(-bound, bound, size=(out_features,)).astype(dtype)
    return {"weight": weight, "bias": bias}


def forward(params: dict[str, np.ndarray], x: np.ndarray):
    """Returns (y, cache); the cache only needs x (the weight is read again in backward)."""
    w = params["weight"]
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"dense expects last axis {w.shape[1]}, got input shape {x.shape}")
    y = x @ w.T
    y += params["bias"]  # y is a fresh array, so adding in place is safe
    return y, x


def backward(params: dict[str, np.ndarray], dy: np.ndarray, cache):
    """Returns (dx, grads) with grads keyed like params."""
    x = cache
    w = params["weight"]
    dx = dy @ w
    # Collapse leading axes so one matmul sums the weight gradient over batch and time.
    x2 = x.reshape(-1, x.shape[-1])
    dy2 = dy.reshape(-1, dy.shape[-1])
    grads = {"weight": dy2.T @ x2, "bias": dy2.sum(axis=0)}
    return dx, grads


def lower(g, keys: dict[str, str], x: str) -> str:
    """The graph form (rnnlab.engine.lowering): MatMul by W^T and Add b, on any (..., in) x (Gemm is 2-D only).
    keys: "weight", "bias" -> the model's parameter names."""
    return g.op("Add", [g.op("MatMul", [x, transposed(g, keys["weight"])]), g.param(keys["bias"])])
