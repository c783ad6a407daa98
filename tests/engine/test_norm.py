"""LayerNorm and masked BatchNorm: finite-difference gradients, statistics, running stats."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import norm
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

B, T, C = 3, 5, 4
# row 0 post-padded, row 1 pre-padded, row 2 fully real
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=np.float64)


def _params(rng, c=C, dtype=np.float64):
    return {"gamma": (1.0 + 0.5 * rng.standard_normal(c)).astype(dtype),
            "beta": rng.standard_normal(c).astype(dtype)}


def _data(rng, shape=(B, T, C)):
    # per-channel offsets and scales, so normalisation really changes the data
    return rng.standard_normal(shape) * np.array([1.0, 3.0, 0.5, 2.0]) + np.array([2.0, -1.0, 0.0, 5.0])


# ---------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("shape, use_mask", [((6, C), False), ((B, T, C), False), ((B, T, C), True)])
def test_layer_norm_gradcheck(shape, use_mask):
    rng = np.random.default_rng(0)
    p = _params(rng)
    x = _data(rng, shape)
    w_out = rng.standard_normal(shape)
    mask = MASK if use_mask else None
    arrays = {**p, "x": x}

    def loss(a):
        y, _ = norm.layer_norm_forward({"gamma": a["gamma"], "beta": a["beta"]}, a["x"], mask)
        return float(np.sum(y * w_out))

    y, cache = norm.layer_norm_forward(p, x, mask)
    dy = w_out.copy()
    dx, grads = norm.layer_norm_backward(p, dy, cache)
    np.testing.assert_array_equal(dy, w_out)
    errs = max_rel_error({**grads, "x": dx}, numeric_grads(loss, arrays))
    assert max(errs.values()) < 1e-6, errs
    if use_mask:
        np.testing.assert_array_equal(y[MASK == 0], 0.0)
        np.testing.assert_array_equal(dx[MASK == 0], 0.0)


def test_layer_norm_rows_have_mean_0_var_1_before_affine():
    rng = np.random.default_rng(1)
    x = _data(rng) * 10.0
    y, _ = norm.layer_norm_forward(norm.init_params(C, np.float64), x)
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-5)  # eps = 1e-5 against var ~ 100+
    p = _params(rng)
    y2, _ = norm.layer_norm_forward(p, x)
    np.testing.assert_allclose(y2, y * p["gamma"] + p["beta"], rtol=1e-12, atol=1e-12)
    # matches the formula (torch.nn.LayerNorm semantics: biased variance, eps inside sqrt)
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_layer_norm_float32_and_inputs_untouched():
    rng = np.random.default_rng(2)
    p = norm.init_params(C)
    assert p["gamma"].dtype == np.float32
    x = _data(rng).astype(np.float32)
    x0 = x.copy()
    y, cache = norm.layer_norm_forward(p, x, MASK)
    dx, g = norm.layer_norm_backward(p, np.ones_like(y), cache)
    assert y.dtype == dx.dtype == g["gamma"].dtype == g["beta"].dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError, match="last axis"):
        norm.layer_norm_forward(p, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mask must have shape"):
        norm.layer_norm_forward(p, x, np.ones((B, T + 1)))


# ---------------------------------------------------------------- BatchNorm


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("use_mask", [False, True])
def test_batch_norm_gradcheck(train, use_mask):
    rng = np.random.default_rng(3)
    p = _params(rng)
    x = _data(rng)
    w_out = rng.standard_normal((B, T, C))
    mask = MASK if use_mask else None
    running = {"mean": rng.standard_normal(C), "var": rng.uniform(0.5, 2.0, C)}
    arrays = {**p, "x": x}

    def loss(a):
        y, _, _ = norm.batch_norm_forward({"gamma": a["gamma"], "beta": a["beta"]}, a["x"], mask,
                                          train=train, running=running)
        return float(np.sum(y * w_out))

    y, new_running, cache = norm.batch_norm_forward(p, x, mask, train=train, running=running)
    dy = w_out.copy()
    dx, grads = norm.batch_norm_backward(p, dy, cache)
    np.testing.assert_array_equal(dy, w_out)
    errs = max_rel_error({**grads, "x": dx}, numeric_grads(loss, arrays))
    assert max(errs.values()) < 1e-6, errs
    if use_mask:
        np.testing.assert_array_equal(y[MASK == 0], 0.0)
        np.testing.assert_array_equal(dx[MASK == 0], 0.0)
    if not train:
        assert new_running is running


def test_batch_norm_train_stats_ignore_padded_steps():
    rng = np.random.default_rng(4)
    p = norm.init_params(C, np.float64)
    x = _data(rng)
    x_garbage = x.copy()
    x_garbage[MASK == 0] = 1e3
    running = norm.init_running(C, np.float64)
    y, r1, _ = norm.batch_norm_forward(p, x, MASK, train=True, running=running, momentum=0.1)
    y2, r2, _ = norm.batch_norm_forward(p, x_garbage, MASK, train=True, running=running, momentum=0.1)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(r1["mean"], r2["mean"])
    real = x[MASK > 0]  # (n, C)
    n = real.shape[0]
    # real steps normalised with the real steps' statistics: mean 0, var 1 per channel
    np.testing.assert_allclose(y[MASK > 0].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y[MASK > 0].var(axis=0), real.var(axis=0) / (real.var(axis=0) + 1e-5), rtol=1e-12)
    # PyTorch momentum update, unbiased variance for the running var; input dict untouched
    np.testing.assert_allclose(r1["mean"], 0.1 * real.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(r1["var"], 0.9 + 0.1 * real.var(axis=0) * n / (n - 1), rtol=1e-12)
    np.testing.assert_array_equal(running["mean"], 0.0)
    np.testing.assert_array_equal(running["var"], 1.0)
    # same as a plain (n, C) batch of the real steps
    y_flat, r_flat, _ = norm.batch_norm_forward(p, real, None, train=True, running=running)
    np.testing.assert_allclose(y[MASK > 0], y_flat, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r1["var"], r_flat["var"], rtol=1e-12)


def test_batch_norm_eval_uses_running_stats_and_they_converge():
    rng = np.random.default_rng(5)
    p = _params(rng)
    mean = np.array([2.0, -1.0, 0.0, 5.0])
    std = np.array([1.0, 3.0, 0.5, 2.0])
    running = norm.init_running(C, np.float64)
    for _ in range(150):
        x = rng.standard_normal((8, 20, C)) * std + mean
        mask = (rng.random((8, 20)) < 0.7).astype(np.float64)
        x[mask == 0] = 50.0  # padded garbage must not bias the running stats
        _, running, _ = norm.batch_norm_forward(p, x, mask, train=True, running=running, momentum=0.1)
    # EMA of ~110-sample batch statistics: sd ~0.025 std (mean), ~0.03 relative (var)
    assert np.all(np.abs(running["mean"] - mean) < 0.12 * std), running["mean"]
    np.testing.assert_allclose(running["var"], std**2, rtol=0.15)
    # one fixed batch, repeated: the running stats converge to its exact (unbiased) stats
    r_fixed = norm.init_running(C, np.float64)
    for _ in range(300):
        _, r_fixed, _ = norm.batch_norm_forward(p, x, mask, train=True, running=r_fixed)
    real = x[mask > 0]
    np.testing.assert_allclose(r_fixed["mean"], real.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r_fixed["var"], real.var(axis=0, ddof=1), rtol=1e-9)
    # eval mode: a fixed affine map from the running statistics, batch-independent
    x = rng.standard_normal((2, 6, C)) * std + mean
    y, r_same, _ = norm.batch_norm_forward(p, x, None, train=False, running=running)
    assert r_same is running
    ref = (x - running["mean"]) / np.sqrt(running["var"] + 1e-5) * p["gamma"] + p["beta"]
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    y1, _, _ = norm.batch_norm_forward(p, x[:1], None, train=False, running=running)
    np.testing.assert_allclose(y1, y[:1], rtol=1e-12, atol=1e-12)


def test_batch_norm_float32_and_errors():
    rng = np.random.default_rng(6)
    p = norm.init_params(C)
    x = _data(rng).astype(np.float32)
    y, r, cache = norm.batch_norm_forward(p, x, MASK, train=True, running=norm.init_running(C))
    dx, g = norm.batch_norm_backward(p, np.ones_like(y), cache)
    assert y.dtype == dx.dtype == g["gamma"].dtype == r["mean"].dtype == r["var"].dtype == np.float32
    with pytest.raises(ValueError, match="running statistics"):
        norm.batch_norm_forward(p, x, MASK, train=False, running=None)
    with pytest.raises(ValueError, match="at least 2 real steps"):
        one = np.zeros((B, T))
        one[0, 0] = 1
        norm.batch_norm_forward(p, x, one, train=True)
    # running None in train mode starts from the PyTorch initial values
    _, r0, _ = norm.batch_norm_forward(p, x, MASK, train=True)
    np.testing.assert_allclose(r0["mean"], r["mean"])
