"""Normalisation layers: LayerNorm over the last axis, and masked BatchNorm over batch and time.

Shapes: x (B, T, C) batch-first (LayerNorm accepts any (..., C)); gamma, beta (C,);
mask (B, T) of 0/1 (1 = real step) or None.

LayerNorm (Ba et al. 2016, ``torch.nn.LayerNorm(C)``; gamma/beta are torch's weight/bias)::

    y = gamma * (x - mean(x)) / sqrt(var(x) + eps) + beta      # mean, biased var over C

Every row is normalised on its own, so padding cannot leak into real steps; with a mask
the output at padded steps is set to 0 and their upstream gradient is ignored.

BatchNorm (``torch.nn.BatchNorm1d(C)`` applied to every step of every sequence)::

    train: mu, var = mean and biased variance of x over all REAL (b, t) (mask 1) per channel
    eval:  mu, var = running["mean"], running["var"]
    y = gamma * (x - mu) / sqrt(var + eps) + beta,   y = 0 at padded steps

In train mode the running statistics are updated PyTorch-style and *returned* (nothing is
stored): new = (1 - momentum) * old + momentum * batch, with the unbiased (n / (n - 1))
batch variance for the running var, n the number of real steps. ``forward(params, x, mask,
train, running) -> (y, new_running, cache)``; in eval mode new_running is ``running``
itself. Backward differentiates through the batch statistics in train mode and treats the
running statistics as constants in eval mode. Padded steps neither enter the statistics
nor receive a gradient (dx = 0 there).

The helpers ``ln_forward`` / ``ln_backward`` (LayerNorm over the last axis
without mask handling) are shared with ln_lstm.py.
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPS = 1e-5
DEFAULT_MOMENTUM = 0.1


def init_params(num_features: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """gamma = 1, beta = 0 (PyTorch's default for both LayerNorm and BatchNorm)."""
    if num_features < 1:
        raise ValueError(f"norm size must be >= 1 (got {num_features})")
    return {"gamma": np.ones(num_features, dtype=dtype), "beta": np.zeros(num_features, dtype=dtype)}


def init_running(num_features: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """BatchNorm running statistics: mean 0, var 1 (PyTorch's initial values)."""
    return {"mean": np.zeros(num_features, dtype=dtype), "var": np.ones(num_features, dtype=dtype)}


def _mask3(mask, lead_shape, dtype):
    """A (..., 1) 0/1 mask in dtype matching x's leading axes, or None."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(lead_shape):
        raise ValueError(f"mask must have shape {tuple(lead_shape)}, got {mask.shape}")
    return (mask != 0).astype(dtype)[..., None]


def _check_x(params, x):
    gamma = params["gamma"]
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[-1] != gamma.shape[0]:
        raise ValueError(f"norm expects last axis {gamma.shape[0]}, got input shape {x.shape}")
    return x.astype(gamma.dtype, copy=False)


# ----------------------------------------------------------------------------------------
# LayerNorm
# ----------------------------------------------------------------------------------------


def _mean_last(a):
    """a.mean(axis=-1, keepdims=True), the same numbers without np.mean's Python-level overhead
    (about 8 us a call, which the per-step LayerNorms of ln_lstm pay three times a step)."""
    return np.divide(np.add.reduce(a, axis=-1, keepdims=True), a.shape[-1])


def ln_forward(x, gamma, beta, eps):
    """LayerNorm over the last axis (gamma/beta broadcast against x). Returns y, (xhat, rstd)."""
    xc = x - _mean_last(x)
    var = _mean_last(xc * xc)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd
    return xhat * gamma + beta, (xhat, rstd)


def ln_backward(dy, gamma, ln_cache):
    """dx, dgamma, dbeta of ln_forward; dgamma/dbeta summed over the leading axes of dy
    that gamma does not have."""
    xhat, rstd = ln_cache
    dxhat = dy * gamma
    dx = rstd * (dxhat - _mean_last(dxhat) - xhat * _mean_last(dxhat * xhat))
    lead = tuple(range(dy.ndim - np.ndim(gamma)))
    return dx, (dy * xhat).sum(axis=lead), dy.sum(axis=lead)


def layer_norm_forward(params, x, mask=None, eps: float = DEFAULT_EPS):
    """Returns (y, cache); y has x's shape. mask, if given, has x.shape[:-1]."""
    x = _check_x(params, x)
    m = _mask3(mask, x.shape[:-1], x.dtype)
    y, ln_cache = ln_forward(x, params["gamma"], params["beta"], eps)
    if m is not None:
        y *= m
    return y, {"ln": ln_cache, "mask": m}


def layer_norm_backward(params, dy, cache):
    """Returns (dx, grads) with grads keyed like params."""
    m = cache["mask"]
    gamma = params["gamma"]
    dy = np.asarray(dy).astype(gamma.dtype, copy=False)
    if m is not None:
        dy = dy * m  # a new array: the upstream gradient is left untouched
    dx, dgamma, dbeta = ln_backward(dy, gamma, cache["ln"])
    return dx, {"gamma": dgamma, "beta": dbeta}


# ----------------------------------------------------------------------------------------
# BatchNorm over batch and time
# ----------------------------------------------------------------------------------------


def batch_norm_forward(
    params,
    x,
    mask=None,
    train: bool = True,
    running=None,
    momentum: float = DEFAULT_MOMENTUM,
    eps: float = DEFAULT_EPS,
):
    """Returns (y, new_running, cache); see the module docstring.

    x: (B, T, C) (any (..., C) works, with mask of shape x.shape[:-1]). running: dict
    with "mean" and "var" (C,), or None (train mode then starts from init_running).
    """
    x = _check_x(params, x)
    dtype = x.dtype
    C = x.shape[-1]
    m = _mask3(mask, x.shape[:-1], dtype)
    axes = tuple(range(x.ndim - 1))
    if running is None:
        if not train:
            raise ValueError("batch norm in eval mode needs running statistics")
        running = init_running(C, dtype)
    if train:
        if m is None:
            n = x.size // C
            mu = x.mean(axis=axes)
            xc = x - mu
            var = np.mean(xc * xc, axis=axes)
        else:
            n = int(m.sum())
            if n > 0:
                mu = (x * m).sum(axis=axes) / n
                xc = (x - mu) * m  # padded steps: 0, never enter the statistics
                var = (xc * xc).sum(axis=axes) / n
        if n < 2:
            raise ValueError(f"batch norm in train mode needs at least 2 real steps (got {n})")
        mom = float(momentum)
        unbiased = var * (n / (n - 1))
        new_running = {
            "mean": ((1 - mom) * running["mean"] + mom * mu).astype(running["mean"].dtype),
            "var": ((1 - mom) * running["var"] + mom * unbiased).astype(running["var"].dtype),
        }
    else:
        mu = running["mean"].astype(dtype, copy=False)
        var = running["var"].astype(dtype, copy=False)
        xc = x - mu
        n = None
        new_running = running
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd
    y = xhat * params["gamma"] + params["beta"]
    if m is not None:
        y *= m
        if not train:
            xhat = xhat * m
    cache = {"xhat": xhat, "rstd": rstd, "mask": m, "train": bool(train), "n": n}
    return y, new_running, cache


def batch_norm_backward(params, dy, cache):
    """Returns (dx, grads) with grads keyed like params (running stats get no gradient)."""
    gamma = params["gamma"]
    xhat, rstd, m, n = cache["xhat"], cache["rstd"], cache["mask"], cache["n"]
    dy = np.asarray(dy).astype(gamma.dtype, copy=False)
    if m is not None:
        dy = dy * m
    axes = tuple(range(dy.ndim - 1))
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)  # xhat is 0 at padded steps when masked
    dxhat = dy * gamma
    if not cache["train"]:
        return dxhat * rstd, {"gamma": dgamma, "beta": dbeta}
    # d/dx of (x - mu) / sigma with mu, var over the n real steps
    dx = (rstd / n) * (n * dxhat - dbeta * gamma - xhat * (dgamma * gamma))
    if m is not None:
        dx *= m
    return dx, {"gamma": dgamma, "beta": dbeta}


# ----------------------------------------------------------------------------------------
# graph forms (rnnlab.engine.lowering), with g's mask: padded steps 0
# ----------------------------------------------------------------------------------------


def lower_layer_norm(g, keys: dict[str, str], x: str, eps: float = DEFAULT_EPS) -> str:
    """LayerNormalization-17 over the last axis (biased variance, as here). keys: "gamma", "beta"."""
    y = g.op("LayerNormalization", [x, g.param(keys["gamma"]), g.param(keys["beta"])], axis=-1, epsilon=eps)
    return g.op("Mul", [y, g.mask3])


def lower_batch_norm(g, keys: dict[str, str], running: dict[str, str], x: str, eps: float = DEFAULT_EPS) -> str:
    """Evaluation mode: BatchNormalization with the running statistics, on (B, C, T) (its channel axis is 1).
    keys: "gamma", "beta"; running: "mean", "var" -> the state's names."""
    xc = g.op("Transpose", [x], perm=[0, 2, 1])
    y = g.op("BatchNormalization", [xc, g.param(keys["gamma"]), g.param(keys["beta"]), g.param(running["mean"]),
                                    g.param(running["var"])], epsilon=eps)
    return g.op("Mul", [g.op("Transpose", [y], perm=[0, 2, 1]), g.mask3])
