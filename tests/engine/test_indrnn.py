"""IndRNN's own maths: its equations, units that recur only on themselves, the bound on |u| and why it
matters (memory and gradients over thousands of steps), and the trainer and weight monitor applying
and reading it. The cell contract (gradients, masks, directions, runner, regularizers) is checked for
IndRNN with every other cell in test_cells_contract.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.engine import cells
from rnnlab.record import checkpoint

CELL = cells.get("indrnn")
B, T, D, H = 3, 6, 2, 4


def _params(seed=0, u=None):
    p = CELL.init_params(np.random.default_rng(seed), D, H, np.float64)
    if u is not None:
        p["weight_hh"] = np.asarray(u, dtype=np.float64)
    return p


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_indrnn_computes_its_equation(nonlinearity):
    """h_t = f(W x_t + u * h_{t-1} + b), u elementwise; reverse reads the steps backwards."""
    p = _params(1, u=[0.3, -0.9, 1.0, 0.0])
    rng = np.random.default_rng(2)
    x, h0 = rng.standard_normal((B, T, D)), rng.standard_normal((B, H))
    f = (lambda a: np.maximum(a, 0)) if nonlinearity == "relu" else np.tanh
    for reverse in (False, True):
        h, ref = h0, np.zeros((B, T, H))
        for t in range(T - 1, -1, -1) if reverse else range(T):
            h = f(x[:, t] @ p["weight_ih"].T + p["weight_hh"] * h + p["bias"])
            ref[:, t] = h
        (hs, (hT,)), _ = CELL.forward(p, x, (h0,), None, reverse, nonlinearity=nonlinearity)
        np.testing.assert_allclose(hs, ref, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(hT, h, rtol=1e-13, atol=1e-13)


def test_units_recur_only_on_themselves():
    """Changing u_k changes unit k's states and nothing else in the layer (no recurrent matrix)."""
    p = _params(3)
    x = np.random.default_rng(4).standard_normal((B, T, D))
    (hs, _), _ = CELL.forward(p, x, None, None, False, nonlinearity="tanh")
    q = {k: v.copy() for k, v in p.items()}
    q["weight_hh"][2] += 0.3
    (hs2, _), _ = CELL.forward(q, x, None, None, False, nonlinearity="tanh")
    changed = np.abs(hs2 - hs).max(axis=(0, 1)) > 0
    assert changed.tolist() == [False, False, True, False]


def test_memory_and_gradients_over_five_thousand_steps():
    """With relu and u = 1 a unit holds its value and passes dL/dh back unchanged for 5000 steps; with
    u = 0.99 both shrink as 0.99^k, exactly: the bound on |u| sets how long a unit remembers."""
    steps = 5000
    p = _params(5, u=[1.0, 0.99, 1.0, 0.5])
    p["weight_ih"][:] = 0.0
    p["bias"][:] = 0.0  # no input: each unit only carries its initial state
    h0 = np.array([[2.0, 2.0, 3.0, 1.0]])
    x = np.zeros((1, steps, D))
    (hs, (hT,)), cache = CELL.forward(p, x, (h0,), None, False)
    np.testing.assert_allclose(hT[0], [2.0, 2.0 * 0.99**steps, 3.0, 0.5**steps * 1.0], rtol=1e-9, atol=1e-300)
    trace = np.empty((steps, 1, H))
    _, (dh0,), grads = CELL.backward(p, None, (np.ones((1, H)),), cache, dh_trace=trace)
    np.testing.assert_allclose(dh0[0], [1.0, 0.99**steps, 1.0, 0.5**steps], rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(trace[0, 0, 0] / trace[-1, 0, 0], 1.0)  # the monitor's first-over-last ratio
    assert 0 < trace[0, 0, 1] / trace[-1, 0, 1] < 1e-21
    # d hT / d u_j = sum over steps of u_j^(k-1) h0_j: 5000 h0 for u = 1
    np.testing.assert_allclose(grads["weight_hh"][0], steps * 2.0, rtol=1e-9)


def test_the_bound_on_u_init_projection_and_options():
    opts = CELL.resolve({"recurrent_max": 0.8, "recurrent_min": 0.5})
    p = CELL.init_params(np.random.default_rng(0), D, 64, np.float32, **opts)
    assert p["weight_hh"].shape == (64,) and p["weight_hh"].dtype == np.float32
    assert 0.5 <= p["weight_hh"].min() and p["weight_hh"].max() <= 0.8
    u = np.array([1.5, -2.0, 0.1, -0.3, 0.6, 0.0], dtype=np.float32)
    q = {"weight_hh": u}
    CELL.after_step(q, **opts)
    assert q["weight_hh"] is u  # in place: the optimizer's array
    np.testing.assert_allclose(u, [0.8, -0.8, 0.5, -0.5, 0.6, 0.5])  # |u| into [0.5, 0.8], the sign kept
    with pytest.raises(ValueError, match=r"recurrent_min \(0.9\) must not exceed recurrent_max \(0.8\)"):
        CELL.resolve({"recurrent_max": 0.8, "recurrent_min": 0.9})
    with pytest.raises(ValueError, match="recurrent_max must be >= 0.0"):
        CELL.resolve({"recurrent_max": -1.0})
    with pytest.raises(api.ConfigError) as exc:
        api.compose(["arch=indrnn", "arch.cell_options.recurrent_min=2"])
    assert str(exc.value) == "arch.cell_options: recurrent_min (2) must not exceed recurrent_max (1.0)"
    rc = api.compose(["arch=indrnn", "arch.nonlinearity=tanh", "arch.cell_options.recurrent_max=1.01"])
    assert (rc.arch.cell, rc.arch.nonlinearity, rc.arch.cell_options) == ("indrnn", "tanh", {"recurrent_max": 1.01})


def test_training_keeps_u_in_bounds_and_the_weight_monitor_reads_the_vector(tmp_path):
    """A large learning rate pushes u out of its range; after every step the trainer projects it back.
    The weight monitor analyses diag(u): singular values |u|, spectral radius max |u|."""
    rc = api.compose(["debug=tiny", "arch=indrnn", "monitor=full", "optim=sgd", "optim.lr=5.0",
                      "arch.cell_options.recurrent_max=0.9", "train.restore_best_weights=false", "train.epochs=2"])
    summary = api.train(rc, tmp_path / "run")
    assert summary.status == "completed"
    _, params, _ = checkpoint.load(tmp_path / "run" / "checkpoint_last")
    for layer in (0, 1):
        u = params[f"rnn.weight_hh_l{layer}"]
        assert u.shape == (8,) and np.abs(u).max() <= 0.9 + 1e-7
    w = pd.read_csv(tmp_path / "run" / "weights.csv")
    last = w[(w["epoch"] == 2) & (w["param"] == "rnn.weight_hh_l0")]
    assert last["block"].tolist() == ["all"]
    u0 = np.abs(params["rnn.weight_hh_l0"])
    np.testing.assert_allclose(last[["spectral_radius", "sv_max", "sv_min"]].to_numpy()[0],
                               [u0.max(), u0.max(), u0.min()], rtol=1e-5)
    assert summary["monitor"]["spectral_radius"]["l0"] == pytest.approx(u0.max(), rel=1e-5)
