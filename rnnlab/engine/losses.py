"""Losses with mean reduction: each is f(pred, target, mask=None, **opts) -> (value, dpred).

Shapes: elementwise losses (mse, mae, huber, bce) take pred and target of one shape
(..., D); cross entropy takes logits (N, C) or (B, T, C) and integer labels (N,) or (B, T).
mask has the leading shape of target (e.g. (B, T)) and is broadcast over trailing axes;
zero entries are excluded from both the sum and the count, so padded steps neither add
loss nor dilute the mean. value is a Python float, dpred has pred's shape and dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _weights(mask, full_shape, dtype):
    """Mask broadcast to full_shape as a 0/1 array in dtype, plus the count it selects."""
    if mask is None:
        return None, float(np.prod(full_shape))
    mask = np.asarray(mask)
    if mask.shape != tuple(full_shape[: mask.ndim]):
        raise ValueError(f"loss mask shape {mask.shape} must be a leading part of {full_shape}")
    w = mask.astype(dtype).reshape(mask.shape + (1,) * (len(full_shape) - mask.ndim))
    w = np.broadcast_to(w, full_shape)
    return w, float(w.sum(dtype=np.float64))


def _elementwise(pred, target, mask):
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"loss pred shape {pred.shape} != target shape {target.shape}")
    target = target.astype(pred.dtype, copy=False)
    w, count = _weights(mask, pred.shape, pred.dtype)
    return pred, target, w, count


def _reduce(elem, grad, w, count):
    """Mean of elem over selected entries; grad (a fresh array) is scaled in place.

    w has elem's shape; grad may carry one more trailing axis (the classes of cross
    entropy), which w is broadcast over.
    """
    if count == 0:  # everything masked: nothing to learn from this batch
        return 0.0, np.zeros_like(grad)
    if w is not None:
        elem = elem * w
        grad *= w.reshape(w.shape + (1,) * (grad.ndim - w.ndim))
    grad *= 1.0 / count
    return float(elem.sum(dtype=np.float64) / count), grad


def mse(pred, target, mask=None):
    pred, target, w, count = _elementwise(pred, target, mask)
    diff = pred - target
    return _reduce(diff * diff, 2.0 * diff, w, count)


def mae(pred, target, mask=None):
    """Subgradient sign(diff), which is 0 where pred == target."""
    pred, target, w, count = _elementwise(pred, target, mask)
    diff = pred - target
    return _reduce(np.abs(diff), np.sign(diff), w, count)


def huber(pred, target, mask=None, delta: float = 1.0):
    """0.5 d^2 for |d| <= delta, delta (|d| - delta/2) beyond (PyTorch HuberLoss)."""
    if not delta > 0:
        raise ValueError(f"loss.delta must be > 0 (got {delta})")
    pred, target, w, count = _elementwise(pred, target, mask)
    diff = pred - target
    absd = np.abs(diff)
    elem = np.where(absd <= delta, 0.5 * diff * diff, delta * (absd - 0.5 * delta))
    return _reduce(elem, np.clip(diff, -delta, delta), w, count)


def bce_with_logits(pred, target, mask=None):
    """Binary cross entropy on logits x with targets y in [0, 1] (hard or soft).

    Written as max(x, 0) - x y + log1p(exp(-|x|)) so exp never overflows; the gradient
    sigmoid(x) - y uses the same exp(-|x|) for both signs of x.
    """
    pred, target, w, count = _elementwise(pred, target, mask)
    e = np.exp(-np.abs(pred))
    elem = np.maximum(pred, 0) - pred * target + np.log1p(e)
    sig = np.where(pred >= 0, 1.0, e) / (1.0 + e)
    return _reduce(elem, sig.astype(pred.dtype, copy=False) - target, w, count)


def softmax_cross_entropy(logits, labels, mask=None, label_smoothing: float = 0.0):
    """Mean over positions of -sum_c q_c log softmax(logits)_c with
    q = (1 - eps) onehot(label) + eps / C (PyTorch label_smoothing semantics).

    Labels at masked positions are ignored, so padding may hold any integer.
    """
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"loss.label_smoothing must be in [0, 1] (got {label_smoothing})")
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim < 2 or labels.shape != logits.shape[:-1]:
        raise ValueError(f"cross entropy wants logits (..., C) and labels of the leading "
                         f"shape, got {logits.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"cross entropy labels must be integers (got dtype {labels.dtype})")
    n_cls = logits.shape[-1]
    w, count = _weights(mask, labels.shape, logits.dtype)
    if w is not None:
        labels = np.where(w > 0, labels, 0)  # padding labels may be out of range
    if labels.size and (labels.min() < 0 or labels.max() >= n_cls):
        raise ValueError(f"cross entropy labels must be in [0, {n_cls}) "
                         f"(got min {labels.min()}, max {labels.max()})")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    sumexp = exp.sum(axis=-1, keepdims=True)
    logp = shifted - np.log(sumexp)
    lab = labels[..., None]
    nll = -np.take_along_axis(logp, lab, axis=-1)[..., 0]
    grad = exp / sumexp  # softmax, minus the smoothed target below
    if eps > 0:
        nll = (1.0 - eps) * nll - (eps / n_cls) * logp.sum(axis=-1)
        grad -= eps / n_cls
    np.put_along_axis(grad, lab, np.take_along_axis(grad, lab, axis=-1) - (1.0 - eps), -1)
    return _reduce(nll, grad, w, count)


_LOSSES: dict[str, Callable] = {
    "mse": mse,
    "mae": mae,
    "huber": huber,
    "bce": bce_with_logits,
    "cross_entropy": softmax_cross_entropy,
}


def get_loss(name: str) -> Callable:
    """Loss function by config name."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(sorted(_LOSSES))}") from None
