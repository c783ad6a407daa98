"""Layer-normalised LSTM: finite-difference gradients, reference forward, masks, reverse."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import bidirectional, ln_lstm
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

B, T, D, H = 3, 5, 3, 4
# row 0 post-padded, row 1 pre-padded, row 2 fully real
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=np.float64)


def _setup(seed=0, dtype=np.float64, b=B, t=T):
    rng = np.random.default_rng(seed)
    p = ln_lstm.init_params(rng, D, H, dtype=np.float64)
    p = {k: v * 2.0 for k, v in p.items()}
    # non-trivial LN gains and biases, so that every parameter path is exercised
    for k in p:
        if k.endswith("_gamma"):
            p[k] = 1.0 + 0.3 * rng.standard_normal(p[k].shape)
        elif k.endswith("_beta"):
            p[k] = 0.3 * rng.standard_normal(p[k].shape)
    p = {k: v.astype(dtype) for k, v in p.items()}
    x = rng.standard_normal((b, t, D)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((b, H))).astype(dtype)
    c0 = rng.standard_normal((b, H)).astype(dtype)
    ws = tuple(rng.standard_normal(s).astype(dtype) for s in ((b, t, H), (b, H), (b, H)))
    return p, x, h0, c0, ws


def _ln(a, gamma, beta, groups):
    a2 = a.reshape(a.shape[0], groups, -1)
    mu = a2.mean(-1, keepdims=True)
    var = a2.var(-1, keepdims=True)
    return ((a2 - mu) / np.sqrt(var + 1e-5)).reshape(a.shape) * gamma + beta


def _naive_forward(p, x, h0, c0, mask=None, reverse=False, per_gate=True):
    """The equations of the module docstring, one step at a time."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    g_n = 4 if per_gate else 1
    h, c = h0.copy(), c0.copy()
    hs = np.zeros((x.shape[0], x.shape[1], H))
    for t in range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1]):
        z = (_ln(x[:, t] @ p["weight_ih"].T, p["ln_ih_gamma"], p["ln_ih_beta"], g_n)
             + _ln(h @ p["weight_hh"].T, p["ln_hh_gamma"], p["ln_hh_beta"], g_n) + p["bias"])
        i, f, g, o = sig(z[:, :H]), sig(z[:, H : 2 * H]), np.tanh(z[:, 2 * H : 3 * H]), sig(z[:, 3 * H :])
        c_new = f * c + i * g
        h_new = o * np.tanh(_ln(c_new, p["ln_c_gamma"], p["ln_c_beta"], 1))
        real = np.ones((x.shape[0], 1), bool) if mask is None else mask[:, t][:, None] > 0
        h, c = np.where(real, h_new, h), np.where(real, c_new, c)
        hs[:, t] = np.where(real, h_new, 0.0)
    return hs, h, c


@pytest.mark.parametrize(
    "reverse, use_mask, per_gate", [(False, True, True), (True, True, True), (False, False, False), (True, True, False)]
)
def test_ln_lstm_gradcheck(reverse, use_mask, per_gate):
    p, x, h0, c0, (w1, w2, w3) = _setup(1 + 2 * reverse + per_gate)
    mask = MASK if use_mask else None

    def run(a):
        prm = {k: a[k] for k in ln_lstm.PARAM_NAMES}
        return ln_lstm.forward(prm, a["x"], (a["h0"], a["c0"]), mask, reverse=reverse, per_gate=per_gate)

    def loss(a):
        (hs, (hT, cT)), _ = run(a)
        return float(np.sum(hs * w1) + np.sum(hT * w2) + np.sum(cT * w3))

    arrays = {**p, "x": x, "h0": h0, "c0": c0}
    (hs, (hT, cT)), cache = run(arrays)
    ref_hs, ref_h, ref_c = _naive_forward(p, x, h0, c0, mask, reverse, per_gate)
    np.testing.assert_allclose(hs, ref_hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cT, ref_c, rtol=1e-12, atol=1e-12)
    ups = (w1.copy(), w2.copy(), w3.copy())
    dx, (dh0, dc0), grads = ln_lstm.backward(p, ups[0], (ups[1], ups[2]), cache)
    for u, w in zip(ups, (w1, w2, w3), strict=True):
        np.testing.assert_array_equal(u, w)  # upstream gradients untouched
    assert set(grads) == set(ln_lstm.PARAM_NAMES)
    num = numeric_grads(loss, arrays)
    errs = max_rel_error({**grads, "x": dx, "h0": dh0, "c0": dc0}, num)
    assert max(errs.values()) < 1e-6, errs
    if use_mask:
        np.testing.assert_array_equal(dx[MASK == 0], 0.0)


def test_ln_lstm_gradcheck_without_dhs_or_state_grads():
    p, x, h0, c0, (w1, w2, w3) = _setup(7)
    arrays = {**p, "x": x}

    def loss(a):
        (_, (hT, _)), _ = ln_lstm.forward({k: a[k] for k in ln_lstm.PARAM_NAMES}, a["x"], None, MASK)
        return float(np.sum(hT * w2))

    _, cache = ln_lstm.forward(p, x, None, MASK)
    dx, (dh0, dc0), grads = ln_lstm.backward(p, None, (w2, None), cache)
    errs = max_rel_error({**grads, "x": dx}, numeric_grads(loss, arrays))
    assert max(errs.values()) < 1e-6, errs
    # only dhs: dstateT may be None
    _, cache = ln_lstm.forward(p, x, (h0, c0))
    dx2, _, _ = ln_lstm.backward(p, w1, None, cache)
    assert dx2.shape == x.shape


@pytest.mark.parametrize("reverse", [False, True])
def test_ln_lstm_padding_never_changes_real_steps(reverse):
    p, x, h0, c0, _ = _setup(3)
    (hs, (hT, cT)), _ = ln_lstm.forward(p, x, (h0, c0), MASK, reverse=reverse)
    x2 = x.copy()
    x2[MASK == 0] = 100.0  # garbage at padded steps
    (hs2, (hT2, cT2)), _ = ln_lstm.forward(p, x2, (h0, c0), MASK, reverse=reverse)
    np.testing.assert_array_equal(hs2, hs)
    np.testing.assert_array_equal(hT2, hT)
    np.testing.assert_array_equal(cT2, cT)
    np.testing.assert_array_equal(hs[MASK == 0], 0.0)
    # each sequence equals the run over its real steps alone (pre- and post-padding)
    for b in range(B):
        real = np.flatnonzero(MASK[b])
        (hs_b, (hT_b, cT_b)), _ = ln_lstm.forward(
            p, x[b : b + 1, real], (h0[b : b + 1], c0[b : b + 1]), reverse=reverse
        )
        np.testing.assert_allclose(hs[b, real], hs_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hT[b], hT_b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cT[b], cT_b[0], rtol=1e-12, atol=1e-12)


def test_ln_lstm_reverse_is_forward_on_flipped_input():
    p, x, h0, c0, (w1, w2, w3) = _setup(4)
    (hs_r, (hT_r, cT_r)), cache_r = ln_lstm.forward(p, x, (h0, c0), reverse=True)
    (hs_f, (hT_f, cT_f)), cache_f = ln_lstm.forward(p, x[:, ::-1], (h0, c0))
    np.testing.assert_allclose(hs_r, hs_f[:, ::-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hT_r, hT_f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cT_r, cT_f, rtol=1e-12, atol=1e-12)
    dx_r, ds_r, g_r = ln_lstm.backward(p, w1, (w2, w3), cache_r)
    dx_f, ds_f, g_f = ln_lstm.backward(p, w1[:, ::-1], (w2, w3), cache_f)
    np.testing.assert_allclose(dx_r, dx_f[:, ::-1], rtol=1e-10, atol=1e-12)
    for a, b in zip(ds_r, ds_f, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for k in ln_lstm.PARAM_NAMES:
        np.testing.assert_allclose(g_r[k], g_f[k], rtol=1e-10, atol=1e-12)


def test_ln_lstm_dh_trace_and_bidirectional_wrapper():
    p, x, h0, c0, (w1, w2, w3) = _setup(5)
    _, cache = ln_lstm.forward(p, x, (h0, c0), MASK)
    trace = np.full((T, B, H), np.nan)
    dx, ds, g = ln_lstm.backward(p, w1, (w2, w3), cache, dh_trace=trace)
    dx0, ds0, g0 = ln_lstm.backward(p, w1, (w2, w3), cache)
    np.testing.assert_array_equal(dx, dx0)
    assert np.isfinite(trace).all()
    # the last position: dL/dh_{T-1} = dhT (+ dhs there if real)
    np.testing.assert_allclose(trace[T - 1], w2 + w1[:, T - 1] * MASK[:, T - 1, None], rtol=1e-12)
    # works as a cell in the bidirectional wrapper (contract: NUM_STATES, forward, backward)
    q = _setup(6)[0]
    (y, (sf, sb)), bc = bidirectional.forward(ln_lstm, p, q, x, mask=MASK)
    assert y.shape == (B, T, 2 * H) and len(sf) == len(sb) == ln_lstm.NUM_STATES
    w_y = np.random.default_rng(8).standard_normal(y.shape)

    def loss(a):
        (yy, _), _ = bidirectional.forward(ln_lstm, p, q, a["x"], mask=MASK)
        return float(np.sum(yy * w_y))

    dxb, _, gf, gb = bidirectional.backward(ln_lstm, p, q, w_y, (None, None), bc)
    arrays = {"x": x.copy()}
    assert max_rel_error({"x": dxb}, numeric_grads(loss, arrays))["x"] < 1e-6
    assert set(gf) == set(gb) == set(ln_lstm.PARAM_NAMES)


def test_ln_lstm_init_float32_and_errors():
    rng = np.random.default_rng(9)
    p = ln_lstm.init_params(rng, D, H)
    assert set(p) == set(ln_lstm.PARAM_NAMES)
    assert p["weight_ih"].shape == (4 * H, D) and p["weight_hh"].shape == (4 * H, H)
    assert p["bias"].shape == p["ln_ih_gamma"].shape == p["ln_hh_beta"].shape == (4 * H,)
    assert p["ln_c_gamma"].shape == p["ln_c_beta"].shape == (H,)
    assert all(v.dtype == np.float32 for v in p.values())
    np.testing.assert_array_equal(p["ln_ih_gamma"], 1.0)
    np.testing.assert_array_equal(p["ln_c_beta"], 0.0)
    assert np.abs(p["weight_hh"]).max() <= 1 / np.sqrt(H)
    x = rng.standard_normal((B, T, D))  # float64 input cast to float32
    x0 = x.copy()
    (hs, (hT, cT)), cache = ln_lstm.forward(p, x, None, MASK)
    dx, (dh0, dc0), g = ln_lstm.backward(p, np.ones_like(hs), None, cache)
    assert hs.dtype == hT.dtype == cT.dtype == dx.dtype == dh0.dtype == dc0.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g.values())
    np.testing.assert_array_equal(x, x0)
    gates = ln_lstm.gate_activations(cache)
    assert set(gates) == {"i", "f", "g", "o"} and gates["o"].shape == (T, B, H)
    with pytest.raises(ValueError, match="x must have shape"):
        ln_lstm.forward(p, np.zeros((B, T, D + 1)))
    with pytest.raises(ValueError, match="mask must have shape"):
        ln_lstm.forward(p, x, None, np.ones((B, T + 1)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        ln_lstm.forward(p, x, (np.zeros((B, H + 1)), None))
    with pytest.raises(ValueError, match="state0"):
        ln_lstm.forward(p, x, (np.zeros((B, H)),))
