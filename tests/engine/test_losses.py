"""Losses: values against plain formulas, finite-difference gradients, masks, names."""

import numpy as np
import pytest

from rnnlab.engine import losses
from rnnlab.engine.gradcheck import numeric_grad, rel_error

RNG = np.random.default_rng(0)
PRED = RNG.standard_normal((3, 4, 2)) * 2.0
TARGET = RNG.standard_normal((3, 4, 2))
MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)  # (B, T) padding


def _check_grad(fn, pred, *args, **kw):
    value, grad = fn(pred, *args, **kw)
    num = numeric_grad(lambda: fn(pred, *args, **kw)[0], pred)
    assert grad.shape == pred.shape and grad.dtype == pred.dtype
    assert rel_error(grad, num) < 1e-6
    return value, grad


ELEMENTWISE = {
    "mse": lambda d: d**2,
    "mae": np.abs,
    "huber": lambda d: np.where(np.abs(d) <= 1.0, 0.5 * d**2, np.abs(d) - 0.5),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("use_mask", [False, True])
def test_regression_losses(name, use_mask):
    fn = losses.get_loss(name)
    pred = PRED.copy()
    mask = MASK if use_mask else None
    value, _ = _check_grad(fn, pred, TARGET, mask=mask)
    elem = ELEMENTWISE[name](PRED - TARGET)
    expected = elem[MASK].mean() if use_mask else elem.mean()
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(pred, PRED)  # input untouched


def test_masked_positions_get_zero_gradient_and_do_not_dilute_mean():
    _, grad = losses.mse(PRED, TARGET, mask=MASK)
    np.testing.assert_array_equal(grad[~MASK], 0.0)
    # Mean over the 9 unmasked (B, T) positions times 2 features = 18 elements.
    assert losses.mse(PRED, TARGET, mask=MASK)[0] == pytest.approx(
        ((PRED - TARGET) ** 2)[MASK].sum() / 18)
    value, grad = losses.mse(PRED, TARGET, mask=np.zeros((3, 4)))
    assert value == 0.0 and not grad.any()


def test_huber_both_sides_of_delta():
    delta = 0.7
    d = np.array([-2.0, -0.5, -0.1, 0.3, 0.69, 0.71, 3.0])  # away from the kink at +-delta
    target = np.zeros_like(d)
    value, grad = _check_grad(losses.huber, d.copy(), target, delta=delta)
    expected = np.where(np.abs(d) <= delta, 0.5 * d**2, delta * (np.abs(d) - 0.5 * delta))
    assert value == pytest.approx(expected.mean(), rel=1e-12)
    np.testing.assert_allclose(grad * d.size, np.clip(d, -delta, delta))
    with pytest.raises(ValueError, match="delta must be > 0"):
        losses.huber(d, target, delta=0.0)


def test_mae_subgradient_zero_at_zero():
    _, grad = losses.mae(np.array([1.0, 2.0, -1.0]), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(grad, [0.0, 1 / 3, -1 / 3])


@pytest.mark.parametrize("use_mask", [False, True])
def test_bce_with_logits(use_mask):
    target = (RNG.random(PRED.shape) > 0.5).astype(np.float64)
    target[0, 0] = 0.3  # soft targets are allowed
    mask = MASK if use_mask else None
    value, _ = _check_grad(losses.bce_with_logits, PRED.copy(), target, mask=mask)
    sig = 1 / (1 + np.exp(-PRED))
    elem = -(target * np.log(sig) + (1 - target) * np.log(1 - sig))
    assert value == pytest.approx(elem[MASK].mean() if use_mask else elem.mean(), rel=1e-10)


def test_bce_is_stable_for_huge_logits():
    x = np.array([-1000.0, -50.0, 50.0, 1000.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32)
    value, grad = losses.get_loss("bce")(x, y)
    assert value == pytest.approx((1000 + 0 + 0 + 1000) / 4, rel=1e-6)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad * 4, [-1.0, 0.0, 0.0, 1.0], atol=1e-6)


def _ce_reference(logits, labels, eps):
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    n_cls = logits.shape[-1]
    q = (1 - eps) * np.eye(n_cls)[labels] + eps / n_cls
    return -(q * logp).sum(-1)


@pytest.mark.parametrize("shape", [(5,), (3, 4)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("use_mask", [False, True])
def test_cross_entropy(shape, eps, use_mask):
    logits = RNG.standard_normal(shape + (6,)) * 3
    labels = RNG.integers(0, 6, shape)
    mask = None
    if use_mask:
        mask = MASK if shape == (3, 4) else np.array([1, 0, 1, 1, 0], bool)
        labels = np.where(mask, labels, -100)  # padding labels may hold anything
    value, _ = _check_grad(losses.softmax_cross_entropy, logits.copy(), labels, mask=mask,
                           label_smoothing=eps)
    ref = _ce_reference(logits, np.where(labels < 0, 0, labels), eps)
    expected = ref[mask].mean() if use_mask else ref.mean()
    assert value == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_errors_and_float32():
    logits = np.zeros((2, 3), np.float32)
    value, grad = losses.get_loss("cross_entropy")(logits, np.array([0, 2]))
    assert value == pytest.approx(np.log(3)) and grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        losses.softmax_cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        losses.softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.softmax_cross_entropy(logits, np.array([0, 1]), label_smoothing=1.5)


def test_get_loss_names_and_shape_errors():
    for name in ("mse", "mae", "huber", "bce", "cross_entropy", "focal"):
        assert callable(losses.get_loss(name))
    with pytest.raises(ValueError, match="valid: bce, cross_entropy, focal, huber, mae, mse"):
        losses.get_loss("hinge")
    with pytest.raises(ValueError, match="shape"):
        losses.mse(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="mask shape"):
        losses.mse(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.ones(3))


# ---------------------------------------------------------------- bce label smoothing, focal


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("use_mask", [False, True])
def test_bce_label_smoothing(eps, use_mask):
    target = (RNG.random(PRED.shape) > 0.5).astype(np.float64)
    mask = MASK if use_mask else None
    value, _ = _check_grad(losses.bce_with_logits, PRED.copy(), target, mask=mask, label_smoothing=eps)
    ref, _ = losses.bce_with_logits(PRED, target * (1 - eps) + eps / 2, mask=mask)
    assert value == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.bce_with_logits(PRED, target, label_smoothing=-0.1)


def _binary_focal_reference(x, y, gamma, alpha):
    p = 1 / (1 + np.exp(-x))
    a1, a0 = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
    return -a1 * y * (1 - p) ** gamma * np.log(p) - a0 * (1 - y) * p**gamma * np.log(1 - p)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("use_mask", [False, True])
def test_binary_focal(gamma, alpha, use_mask):
    target = (RNG.random(PRED.shape) > 0.5).astype(np.float64)
    target[0, 0, 0] = 0.3  # soft targets too
    mask = MASK if use_mask else None
    value, _ = _check_grad(losses.focal, PRED.copy(), target, mask=mask, gamma=gamma, alpha=alpha)
    ref = _binary_focal_reference(PRED, target, gamma, alpha)
    assert value == pytest.approx(ref[MASK].mean() if use_mask else ref.mean(), rel=1e-10)
    _check_grad(losses.focal, PRED.copy(), target, mask=mask, gamma=gamma, alpha=alpha, label_smoothing=0.1)


def test_focal_gamma_0_alpha_none_is_bce_and_ce():
    target = (RNG.random(PRED.shape) > 0.5).astype(np.float64)
    v, g = losses.focal(PRED, target, gamma=0.0)
    vb, gb = losses.bce_with_logits(PRED, target)
    assert v == pytest.approx(vb, rel=1e-12)
    np.testing.assert_allclose(g, gb, rtol=1e-12, atol=1e-15)
    logits = RNG.standard_normal((3, 4, 5)) * 3
    labels = RNG.integers(0, 5, (3, 4))
    for eps in (0.0, 0.1):
        v, g = losses.focal(logits, labels, mask=MASK, gamma=0.0, label_smoothing=eps)
        vc, gc = losses.softmax_cross_entropy(logits, labels, mask=MASK, label_smoothing=eps)
        assert v == pytest.approx(vc, rel=1e-12)
        np.testing.assert_allclose(g, gc, rtol=1e-10, atol=1e-14)


def _softmax_focal_reference(logits, labels, gamma, alpha, eps=0.0):
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    n_cls = logits.shape[-1]
    q = (1 - eps) * np.eye(n_cls)[labels] + eps / n_cls
    a = np.ones(n_cls) if alpha is None else np.asarray(alpha)
    return -(q * a * (1 - np.exp(logp)) ** gamma * logp).sum(-1)


@pytest.mark.parametrize("shape", [(6,), (3, 4)])
@pytest.mark.parametrize("gamma", [0.0, 0.7, 2.0])
@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0, 0.25]])
def test_multiclass_focal(shape, gamma, alpha):
    logits = RNG.standard_normal(shape + (4,)) * 2
    labels = RNG.integers(0, 4, shape)
    mask = MASK if shape == (3, 4) else None
    for eps in (0.0, 0.1):
        value, _ = _check_grad(losses.focal, logits.copy(), labels, mask=mask, gamma=gamma, alpha=alpha,
                               label_smoothing=eps)
        ref = _softmax_focal_reference(logits, labels, gamma, alpha, eps)
        assert value == pytest.approx(ref[mask].mean() if mask is not None else ref.mean(), rel=1e-10)


def test_focal_is_finite_when_confident_and_keeps_float32():
    logits = np.array([[60.0, -60.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    value, grad = losses.focal(logits, np.array([0, 1]), gamma=0.5)
    assert np.isfinite(value) and np.isfinite(grad).all() and grad.dtype == np.float32
    value, grad = losses.focal(np.array([-80.0, 80.0], np.float32), np.array([0.0, 1.0], np.float32), gamma=0.5)
    assert np.isfinite(value) and np.isfinite(grad).all() and grad.dtype == np.float32


def test_focal_errors():
    with pytest.raises(ValueError, match="gamma"):
        losses.focal(PRED, TARGET, gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        losses.focal(PRED, TARGET, alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        losses.focal(PRED, TARGET, alpha=[0.1, 0.2])
    with pytest.raises(ValueError, match="3 non-negative class weights"):
        losses.focal(np.zeros((2, 3)), np.array([0, 1]), alpha=[1.0, 2.0])
