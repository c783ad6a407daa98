"""Weight penalties: L1, L2 and their sum (elastic net), as (value, gradient) pairs.

Only weight matrices are penalized (parameter names holding ".weight"); biases are not.

* L1: l1 * sum |W|, subgradient l1 * sign(W) (0 where W == 0).
* L2: 0.5 * l2 * sum W^2, gradient l2 * W (plain weight decay for SGD).
* elastic net: both terms with their own coefficients, reported apart.

Shapes: params is a dict name -> array; each gradient has its parameter's shape and dtype.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def is_penalized(name: str) -> bool:
    """Weight matrices only: biases (and anything else without '.weight') are not decayed."""
    return ".weight" in name


def l1_penalty(params: Mapping[str, np.ndarray], l1: float) -> tuple[float, dict[str, np.ndarray]]:
    """l1 * sum |W| over weight matrices, with the subgradient l1 * sign(W)."""
    value, grads = 0.0, {}
    for k, v in params.items():
        if is_penalized(k):
            value += l1 * float(np.abs(v).sum(dtype=np.float64))
            grads[k] = (l1 * np.sign(v)).astype(v.dtype, copy=False)
    return value, grads


def l2_penalty(params: Mapping[str, np.ndarray], l2: float) -> tuple[float, dict[str, np.ndarray]]:
    """0.5 * l2 * sum ||W||^2 over weight matrices, with the gradient l2 * W."""
    value, grads = 0.0, {}
    for k, v in params.items():
        if is_penalized(k):
            value += 0.5 * l2 * float(np.vdot(v, v))
            grads[k] = (l2 * v).astype(v.dtype, copy=False)
    return value, grads


def penalties(params: Mapping[str, np.ndarray], l1: float = 0.0, l2: float = 0.0):
    """The active penalties: ({"l1_loss": v, "l2_loss": v} for coefficients > 0, summed gradients)."""
    values: dict[str, float] = {}
    grads: dict[str, np.ndarray] = {}
    for name, coef, fn in (("l1_loss", l1, l1_penalty), ("l2_loss", l2, l2_penalty)):
        if coef > 0:
            values[name], g = fn(params, coef)
            for k, v in g.items():
                grads[k] = grads[k] + v if k in grads else v
    return values, grads


def add_grads(grads: Mapping[str, np.ndarray], extra: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """grads + extra (new arrays where extra has an entry; the others are the same arrays)."""
    return {k: g + extra[k] if k in extra else g for k, g in grads.items()}
