"""Causal conv1d: finite-difference gradients, causality, masks, loop reference, init."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import conv1d
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

B, T, CI, CO = 3, 7, 2, 3
# row 0 post-padded, row 1 pre-padded, row 2 fully real
MASK = np.array([[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], dtype=np.float64)


def _loop_conv(p, x, dilation=1, activation=None, mask=None):
    """Direct definition: y[b, t, o] = b[o] + sum_{c, j} W[o, c, j] x[b, t - (k-1-j) d, c]."""
    w, bias = p["weight"], p["bias"]
    c_out, _, k = w.shape
    b_, t_len, _ = x.shape
    if mask is not None:
        x = x * mask[:, :, None]
    y = np.zeros((b_, t_len, c_out))
    for b in range(b_):
        for t in range(t_len):
            acc = bias.astype(np.float64).copy()
            for j in range(k):
                s = t - (k - 1 - j) * dilation
                if s >= 0:
                    acc += w[:, :, j] @ x[b, s]
            if activation == "relu":
                acc = np.maximum(acc, 0)
            y[b, t] = acc
    if mask is not None:
        y *= mask[:, :, None]
    return y


def _setup(seed, k, dtype=np.float64, ci=CI, co=CO):
    rng = np.random.default_rng(seed)
    p = conv1d.init_params(rng, ci, co, k, dtype=dtype)
    p = {n: (v * 2.0).astype(dtype) for n, v in p.items()}
    x = rng.standard_normal((B, T, ci)).astype(dtype)
    w_out = rng.standard_normal((B, T, co)).astype(dtype)
    return p, x, w_out


@pytest.mark.parametrize(
    "k, dilation, activation, use_mask",
    [(1, 1, None, False), (3, 1, None, True), (2, 3, "relu", True), (3, 2, "relu", False), (4, 2, None, True)],
)
def test_conv1d_gradcheck_and_matches_loop(k, dilation, activation, use_mask):
    p, x, w_out = _setup(k * 10 + dilation, k)
    mask = MASK if use_mask else None
    y, cache = conv1d.forward(p, x, mask, dilation=dilation, activation=activation)
    assert y.shape == (B, T, CO) and y.dtype == np.float64
    np.testing.assert_allclose(y, _loop_conv(p, x, dilation, activation, mask), rtol=1e-12, atol=1e-12)
    if activation == "relu":  # no pre-activation within reach of the finite-difference step
        pre = _loop_conv(p, x, dilation, None, None)
        if mask is not None:
            pre = _loop_conv(p, x * mask[:, :, None], dilation, None, None)[mask > 0]
        assert np.abs(pre).min() > 1e-4
        assert (pre < 0).any() and (pre > 0).any()
    arrays = {"weight": p["weight"], "bias": p["bias"], "x": x}

    def loss(a):
        out, _ = conv1d.forward({"weight": a["weight"], "bias": a["bias"]}, a["x"], mask,
                                dilation=dilation, activation=activation)
        return float(np.sum(out * w_out))

    dy = w_out.copy()
    dx, grads = conv1d.backward(p, dy, cache)
    np.testing.assert_array_equal(dy, w_out)  # upstream gradient untouched
    errs = max_rel_error({**grads, "x": dx}, numeric_grads(loss, arrays))
    assert max(errs.values()) < 1e-6, errs
    if use_mask:
        np.testing.assert_array_equal(y[MASK == 0], 0.0)
        np.testing.assert_array_equal(dx[MASK == 0], 0.0)


@pytest.mark.parametrize("k, dilation", [(3, 1), (2, 4), (5, 2)])
def test_conv1d_is_causal(k, dilation):
    p, x, _ = _setup(3, k)
    y, _ = conv1d.forward(p, x, dilation=dilation, activation="relu")
    rng = np.random.default_rng(4)
    for t in range(T - 1):
        x2 = x.copy()
        x2[:, t + 1 :] = rng.standard_normal(x2[:, t + 1 :].shape)
        y2, _ = conv1d.forward(p, x2, dilation=dilation, activation="relu")
        np.testing.assert_array_equal(y2[:, : t + 1], y[:, : t + 1])
        # ...while the current step does matter (the last tap is the current input)
        x3 = x.copy()
        x3[:, t] += 1.0
        y3, _ = conv1d.forward(p, x3, dilation=dilation)
        y0, _ = conv1d.forward(p, x, dilation=dilation)
        assert not np.allclose(y3[:, t], y0[:, t])
    # output t depends on exactly the inputs t, t-d, ..., t-(k-1)d
    _, cache = conv1d.forward(p, x, dilation=dilation)
    t = T - 1
    dy = np.zeros((B, T, CO))
    dy[:, t] = 1.0
    dx, _ = conv1d.backward(p, dy, cache)
    seen = sorted({t - j * dilation for j in range(k) if t - j * dilation >= 0})
    assert sorted(np.flatnonzero(np.abs(dx).sum(axis=(0, 2)))) == seen
    assert conv1d.receptive_field(k, dilation) == (k - 1) * dilation + 1


def test_conv1d_padding_does_not_leak_into_real_steps():
    p, x, _ = _setup(5, 3)
    y, _ = conv1d.forward(p, x, MASK, dilation=2)
    x2 = x.copy()
    x2[MASK == 0] = 100.0  # garbage at padded steps
    y2, _ = conv1d.forward(p, x2, MASK, dilation=2)
    np.testing.assert_array_equal(y2, y)
    # a pre-padded sequence gives its real steps exactly what the unpadded sequence gives
    real = x[1:2, 2:]
    y_short, _ = conv1d.forward(p, real, dilation=2)
    np.testing.assert_allclose(y[1:2, 2:], y_short, rtol=1e-12, atol=1e-12)


def test_conv1d_init_float32_and_bad_inputs():
    rng = np.random.default_rng(6)
    p = conv1d.init_params(rng, 8, 5, 3)
    assert p["weight"].shape == (5, 8, 3) and p["bias"].shape == (5,)
    assert p["weight"].dtype == np.float32 and p["bias"].dtype == np.float32
    bound = 1 / np.sqrt(8 * 3)
    assert np.abs(p["weight"]).max() <= bound and np.abs(p["weight"]).max() > 0.8 * bound
    assert np.abs(p["bias"]).max() <= bound
    x = rng.standard_normal((4, 20, 8))  # float64 input is cast to the weight dtype
    x0 = x.copy()
    y, cache = conv1d.forward(p, x, dilation=2, activation="relu")
    assert y.dtype == np.float32 and y.shape == (4, 20, 5)
    dx, g = conv1d.backward(p, np.ones_like(y), cache)
    assert dx.dtype == g["weight"].dtype == g["bias"].dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    ref = _loop_conv({k: v.astype(np.float64) for k, v in p.items()}, x.astype(np.float32).astype(np.float64),
                     2, "relu")
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="x must have shape"):
        conv1d.forward(p, np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="activation"):
        conv1d.forward(p, x, activation="tanh")
    with pytest.raises(ValueError, match="dilation"):
        conv1d.forward(p, x, dilation=0)
    with pytest.raises(ValueError, match="mask must have shape"):
        conv1d.forward(p, x, mask=np.ones((4, 19)))
