"""The layer-normalised LSTM computes the equations of its docstring (its own maths; the contract
suite checks its gradients, masks, directions and runner)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import cells

B, T, D, H = 3, 5, 3, 4
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=np.float64)


def _ln(a, gamma, beta, groups):
    a2 = a.reshape(a.shape[0], groups, -1)
    mu = a2.mean(-1, keepdims=True)
    var = a2.var(-1, keepdims=True)
    return ((a2 - mu) / np.sqrt(var + 1e-5)).reshape(a.shape) * gamma + beta


def _equations(p, x, h, c, mask, reverse, per_gate):
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    g_n = 4 if per_gate else 1
    hs = np.zeros((x.shape[0], x.shape[1], H))
    for t in range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1]):
        z = (_ln(x[:, t] @ p["weight_ih"].T, p["ln_ih_gamma"], p["ln_ih_beta"], g_n)
             + _ln(h @ p["weight_hh"].T, p["ln_hh_gamma"], p["ln_hh_beta"], g_n) + p["bias"])
        i, f, g, o = sig(z[:, :H]), sig(z[:, H : 2 * H]), np.tanh(z[:, 2 * H : 3 * H]), sig(z[:, 3 * H :])
        c_new = f * c + i * g
        h_new = o * np.tanh(_ln(c_new, p["ln_c_gamma"], p["ln_c_beta"], 1))
        real = mask[:, t][:, None] > 0
        h, c = np.where(real, h_new, h), np.where(real, c_new, c)
        hs[:, t] = np.where(real, h_new, 0.0)
    return hs, h, c


@pytest.mark.parametrize("per_gate", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_ln_lstm_computes_its_equations(reverse, per_gate):
    cell = cells.get("ln_lstm")
    rng = np.random.default_rng(1)
    p = cell.init_params(rng, D, H, np.float64)
    for k in p:  # non-trivial LN gains and biases
        p[k] = (1.0 + 0.3 * rng.standard_normal(p[k].shape) if k.endswith("_gamma") else
                0.3 * rng.standard_normal(p[k].shape) if k.endswith("_beta") else 2.0 * p[k])
    x = rng.standard_normal((B, T, D))
    h0, c0 = 0.5 * rng.standard_normal((B, H)), rng.standard_normal((B, H))
    (hs, (hT, cT)), _ = cell.forward(p, x, (h0, c0), MASK, reverse, per_gate=per_gate)
    ref = _equations(p, x, h0, c0, MASK, reverse, per_gate)
    for a, b in zip((hs, hT, cT), ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_ln_lstm_init():
    p = cells.get("ln_lstm").init_params(np.random.default_rng(9), D, H)
    assert p["bias"].shape == p["ln_ih_gamma"].shape == p["ln_hh_beta"].shape == (4 * H,)
    assert p["ln_c_gamma"].shape == p["ln_c_beta"].shape == (H,)
    np.testing.assert_array_equal(p["ln_ih_gamma"], 1.0)
    np.testing.assert_array_equal(p["ln_c_beta"], 0.0)
    assert np.abs(p["weight_hh"]).max() <= 1 / np.sqrt(H)
