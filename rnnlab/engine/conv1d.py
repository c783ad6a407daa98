"""Causal 1-D convolution over time (PyTorch ``nn.Conv1d`` weights, batch-first data).

Shapes: x (B, T, C_in) -> y (B, T, C_out); weight (C_out, C_in, k) (PyTorch's Conv1d
layout), bias (C_out,); mask (B, T) of 0/1 (1 = real step) or None.

    y[b, t, o] = act(bias[o] + sum_{c, j} weight[o, c, j] * x[b, t - (k-1-j)*d, c])

with kernel size k (from the weight), dilation d and x[b, s] = 0 for s < 0: the input is
zero-padded on the left by (k-1)*d steps, so output t only sees inputs at steps <= t
(tap j = k-1 is the current step, tap 0 the oldest) and T is preserved. This equals
``torch.nn.Conv1d(C_in, C_out, k, dilation=d, padding=(k-1)*d)`` on x.transpose(1, 2)
with the last (k-1)*d outputs dropped. ``activation`` is None (affine) or "relu".

Masks: inputs at padded steps are treated as 0 (so padding never leaks into real steps,
whether it is pre- or post-padding), and the output at padded steps is set to 0 (not
bias, not act(bias)). In backward the upstream gradient at padded steps is ignored and dx
is 0 there.

Implementation: im2col via ``sliding_window_view`` on the left-padded input (one copy to a
(B*T, C_in*k) matrix), one GEMM forward; backward is two GEMMs plus one strided add per
kernel tap (a loop over k, never over B or T). The cache holds the column matrix.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = (None, "relu")


def init_params(
    rng: np.random.Generator, in_channels: int, out_channels: int, kernel_size: int, dtype=np.float32
) -> dict[str, np.ndarray]:
    """PyTorch Conv1d default: weight and bias ~ U(-1/sqrt(C_in*k), 1/sqrt(C_in*k))
    (kaiming_uniform with a=sqrt(5) gives this bound for the weight)."""
    if in_channels < 1 or out_channels < 1 or kernel_size < 1:
        raise ValueError(
            f"conv1d sizes must be >= 1 (got in={in_channels}, out={out_channels}, k={kernel_size})"
        )
    bound = 1.0 / np.sqrt(in_channels * kernel_size)
    weight = rng.uniform(-bound, bound, size=(out_channels, in_channels, kernel_size)).astype(dtype)
    bias = rng.uniform(-bound, bound, size=(out_channels,)).astype(dtype)
    return {"weight": weight, "bias": bias}


def receptive_field(kernel_size: int, dilation: int = 1) -> int:
    """Number of input steps (current one included) that one output step sees."""
    return (kernel_size - 1) * dilation + 1


def _mask3(mask, B: int, T: int, dtype):
    """(B, T, 1) mask in dtype, or None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (B, T):
        raise ValueError(f"mask must have shape ({B}, {T}), got {mask.shape}")
    return (mask != 0).astype(dtype)[:, :, None]


def forward(params, x, mask=None, dilation: int = 1, activation: str | None = None):
    """Returns (y (B, T, C_out), cache). x is cast to the weight's dtype."""
    w = params["weight"]
    dtype = w.dtype
    C_out, C_in, k = w.shape
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None or 'relu' (got {activation!r})")
    dilation = int(dilation)
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1 (got {dilation})")
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != C_in:
        raise ValueError(f"x must have shape (B, T, {C_in}), got {x.shape}")
    B, T, _ = x.shape
    m = _mask3(mask, B, T, dtype)
    P = (k - 1) * dilation
    xp = np.zeros((B, P + T, C_in), dtype=dtype)  # left zero-padding (causal)
    if m is None:
        np.copyto(xp[:, P:], x, casting="unsafe")
    else:
        np.multiply(x, m, out=xp[:, P:], casting="unsafe")  # padded steps read as 0
    # (B, T, C_in, P+1) windows; every dilation-th entry gives the k taps (oldest first).
    win = np.lib.stride_tricks.sliding_window_view(xp, P + 1, axis=1)[..., ::dilation]
    cols = win.reshape(B * T, C_in * k)  # copy: rows (b, t), columns (c, j) like the weight
    y = cols @ w.reshape(C_out, C_in * k).T
    y += params["bias"]
    y = y.reshape(B, T, C_out)
    if activation == "relu":
        np.maximum(y, 0, out=y)
    if m is not None:
        y *= m
    cache = {"cols": cols, "y": y if activation == "relu" else None, "mask": m,
             "dilation": dilation, "shape": (B, T, C_in)}
    return y, cache


def backward(params, dy, cache):
    """Returns (dx (B, T, C_in), grads) with grads keyed like params."""
    w = params["weight"]
    C_out, C_in, k = w.shape
    B, T, _ = cache["shape"]
    d = cache["dilation"]
    m = cache["mask"]
    dy = np.asarray(dy)
    if dy.shape != (B, T, C_out):
        raise ValueError(f"dy must have shape ({B}, {T}, {C_out}), got {dy.shape}")
    dz = dy if m is None else dy * m  # padded outputs are constants: no gradient
    if cache["y"] is not None:  # relu: y > 0 exactly where the pre-activation is > 0
        dz = dz * (cache["y"] > 0)
    dz = dz.astype(w.dtype, copy=False).reshape(B * T, C_out)
    grads = {
        "weight": (dz.T @ cache["cols"]).reshape(C_out, C_in, k),
        "bias": dz.sum(axis=0),
    }
    dcols = (dz @ w.reshape(C_out, C_in * k)).reshape(B, T, C_in, k)
    P = (k - 1) * d
    dxp = np.zeros((B, P + T, C_in), dtype=w.dtype)
    for j in range(k):  # tap j of output t reads padded position t + j*d
        dxp[:, j * d : j * d + T] += dcols[..., j]
    dx = dxp[:, P:]
    if m is not None:
        dx *= m  # inputs at padded steps were replaced by 0
    return dx, grads


def lower(g, keys: dict[str, str], x: str, dilation: int = 1, activation: str | None = None) -> str:
    """The graph form (rnnlab.engine.lowering) with g's mask: inputs at padded steps read as 0, a Conv
    over (B, C, T) padded (k-1)*d on the left only (causal; the weight is used as is: ONNX Conv is the same
    cross-correlation), outputs at padded steps 0. keys: "weight", "bias" -> the model's names."""
    k = g.value(keys["weight"]).shape[2]
    xc = g.op("Transpose", [g.op("Mul", [x, g.mask3])], perm=[0, 2, 1])
    y = g.op("Conv", [xc, g.param(keys["weight"]), g.param(keys["bias"])], kernel_shape=[k],
             dilations=[int(dilation)], pads=[(k - 1) * int(dilation), 0])
    y = g.op("Transpose", [y], perm=[0, 2, 1])
    if activation == "relu":
        y = g.op("Relu", [y])
    return g.op("Mul", [y, g.mask3])
