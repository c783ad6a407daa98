"""Losses with mean reduction: each is f(pred, target, mask=None, **opts) -> (value, dpred).

Shapes: elementwise losses (mse, mae, huber, bce, binary focal) take pred and target of one shape
(..., D); cross entropy and multiclass focal take logits (N, C) or (B, T, C) and integer labels (N,) or (B, T).
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


def _smoothing(label_smoothing) -> float:
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"loss.label_smoothing must be in [0, 1] (got {label_smoothing})")
    return eps


def smooth_binary_targets(target, eps: float):
    """y (1 - eps) + eps / 2: hard 0/1 targets become eps/2 and 1 - eps/2."""
    return target * (1.0 - eps) + 0.5 * eps if eps > 0 else target


def bce_with_logits(pred, target, mask=None, label_smoothing: float = 0.0):
    """Binary cross entropy on logits x with targets y in [0, 1] (hard or soft).

    Written as max(x, 0) - x y + log1p(exp(-|x|)) so exp never overflows; the gradient
    sigmoid(x) - y uses the same exp(-|x|) for both signs of x. label_smoothing eps
    replaces y by y (1 - eps) + eps / 2.
    """
    eps = _smoothing(label_smoothing)
    pred, target, w, count = _elementwise(pred, target, mask)
    target = smooth_binary_targets(target, eps)
    e = np.exp(-np.abs(pred))
    elem = np.maximum(pred, 0) - pred * target + np.log1p(e)
    sig = np.where(pred >= 0, 1.0, e) / (1.0 + e)
    return _reduce(elem, sig.astype(pred.dtype, copy=False) - target, w, count)


def softmax_cross_entropy(logits, labels, mask=None, label_smoothing: float = 0.0):
    """Mean over positions of -sum_c q_c log softmax(logits)_c with
    q = (1 - eps) onehot(label) + eps / C (PyTorch label_smoothing semantics).

    Labels at masked positions are ignored, so padding may hold any integer.
    """
    eps = _smoothing(label_smoothing)
    logits, labels, w, count = _class_inputs(logits, labels, mask, "cross entropy")
    n_cls = logits.shape[-1]
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


def _class_inputs(logits, labels, mask, what: str):
    """Checked (logits, labels with padding set to 0, mask weights, count) for the softmax losses."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim < 2 or labels.shape != logits.shape[:-1]:
        raise ValueError(f"{what} wants logits (..., C) and labels of the leading "
                         f"shape, got {logits.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what} labels must be integers (got dtype {labels.dtype})")
    n_cls = logits.shape[-1]
    w, count = _weights(mask, labels.shape, logits.dtype)
    if w is not None:
        labels = np.where(w > 0, labels, 0)  # padding labels may be out of range
    if labels.size and (labels.min() < 0 or labels.max() >= n_cls):
        raise ValueError(f"{what} labels must be in [0, {n_cls}) "
                         f"(got min {labels.min()}, max {labels.max()})")
    return logits, labels, w, count


def _log_sigmoid(x):
    """log sigmoid(x) = -softplus(-x), without overflow."""
    return -(np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x))))


def binary_focal_with_logits(pred, target, mask=None, gamma: float = 2.0, alpha: float | None = None,
                             label_smoothing: float = 0.0):
    """Focal loss (Lin et al. 2017) on logits x with targets y in [0, 1], p = sigmoid(x):

        -a1 y (1 - p)^gamma log p - a0 (1 - y) p^gamma log(1 - p)

    with a1 = alpha, a0 = 1 - alpha (a1 = a0 = 1 when alpha is None), so gamma = 0 and
    alpha = None give bce. Linear in y, so soft (smoothed, mixed) targets are exact.
    """
    gamma = float(gamma)
    if not gamma >= 0:
        raise ValueError(f"loss.gamma must be >= 0 (got {gamma})")
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"loss.alpha must be in [0, 1] for binary focal loss (got {alpha})")
    eps = _smoothing(label_smoothing)
    pred, target, w, count = _elementwise(pred, target, mask)
    y = smooth_binary_targets(target, eps)
    a1, a0 = (1.0, 1.0) if alpha is None else (float(alpha), 1.0 - float(alpha))
    logp, log1mp = _log_sigmoid(pred), _log_sigmoid(-pred)
    p, q = np.exp(logp), np.exp(log1mp)  # sigmoid(x), 1 - sigmoid(x), both accurate
    qg, pg = q**gamma, p**gamma
    elem = -a1 * y * qg * logp - a0 * (1 - y) * pg * log1mp
    grad = a1 * y * qg * (gamma * p * logp - q) + a0 * (1 - y) * pg * (p - gamma * q * log1mp)
    return _reduce(elem, grad.astype(pred.dtype, copy=False), w, count)


def softmax_focal(logits, labels, mask=None, gamma: float = 2.0, alpha=None, label_smoothing: float = 0.0):
    """Multiclass focal loss: -sum_c q_c alpha_c (1 - p_c)^gamma log p_c with p = softmax(logits)
    and q the (smoothed) one-hot label; alpha is None (all 1) or one weight per class.

    gamma = 0 and alpha = None give softmax_cross_entropy. Gradient, with u = 1 - p and
    a_c = q_c alpha_c u_c^gamma (gamma p_c log p_c / u_c - 1): dL/dz_j = a_j - p_j sum_c a_c.
    """
    gamma = float(gamma)
    if not gamma >= 0:
        raise ValueError(f"loss.gamma must be >= 0 (got {gamma})")
    eps = _smoothing(label_smoothing)
    logits, labels, w, count = _class_inputs(logits, labels, mask, "focal loss")
    n_cls = logits.shape[-1]
    if alpha is None:
        alpha_c = np.ones(n_cls)
    else:
        alpha_c = np.asarray(alpha, dtype=np.float64).reshape(-1)
        if alpha_c.shape != (n_cls,) or (alpha_c < 0).any():
            raise ValueError(f"loss.alpha must be {n_cls} non-negative class weights (got {list(alpha_c)})")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    p = np.exp(logp)
    u = -np.expm1(logp)  # 1 - p, accurate when p is near 1
    q = np.full(logp.shape, eps / n_cls, dtype=logp.dtype)
    np.put_along_axis(q, labels[..., None], 1.0 - eps + eps / n_cls, -1)
    q = q * alpha_c.astype(logp.dtype)
    ug = u**gamma
    elem = -(q * ug * logp).sum(axis=-1)
    # p log p / u -> -1 as u -> 0
    ratio = np.where(u > 0, p * logp / np.where(u > 0, u, 1.0), -1.0)
    a = q * ug * (gamma * ratio - 1.0)
    grad = a - p * a.sum(axis=-1, keepdims=True)
    return _reduce(elem, grad.astype(logits.dtype, copy=False), w, count)


def focal(pred, target, mask=None, gamma: float = 2.0, alpha=None, label_smoothing: float = 0.0):
    """Focal loss: softmax_focal for integer labels of logits (..., C), else binary_focal_with_logits."""
    target = np.asarray(target)
    pred = np.asarray(pred)
    if np.issubdtype(target.dtype, np.integer) and pred.ndim == target.ndim + 1:
        return softmax_focal(pred, target, mask, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)
    if alpha is not None and np.ndim(alpha) > 0:
        raise ValueError(f"loss.alpha must be one number in [0, 1] for binary focal loss (got {alpha})")
    return binary_focal_with_logits(pred, target, mask, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing)


_LOSSES: dict[str, Callable] = {
    "mse": mse,
    "mae": mae,
    "huber": huber,
    "bce": bce_with_logits,
    "cross_entropy": softmax_cross_entropy,
    "focal": focal,
}


def get_loss(name: str) -> Callable:
    """Loss function by config name."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(sorted(_LOSSES))}") from None
