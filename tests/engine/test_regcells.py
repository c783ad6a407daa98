"""regcells: per-step rnn/lstm/gru with recurrent dropout and zoneout (float64 gradient checks, properties)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import bidirectional, dropout, gru, lstm, regcells, rnn
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

B, T, D, H = 3, 5, 3, 4
# row 0 post-padded, row 1 pre-padded, row 2 fully real
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=np.float64)
FAST = {"rnn": rnn, "lstm": lstm, "gru": gru}
# (cell, nonlinearity)
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
REGS = ["plain", "recurrent_dropout", "zoneout", "both", "zoneout_eval"]


def _opts(cell, nl):
    return {"nonlinearity": nl} if cell == "rnn" else {}


def _setup(cell, seed=0):
    rng = np.random.default_rng(seed)
    p = regcells.get(cell).init_params(rng, D, H, dtype=np.float64)
    p = {k: v * 2.0 for k, v in p.items()}  # larger weights: non-trivial gates and saturation
    x = rng.standard_normal((B, T, D))
    n = regcells.get(cell).NUM_STATES
    s0 = tuple(0.7 * rng.standard_normal((B, H)) for _ in range(n))
    return rng, p, x, s0


def _reg_kwargs(cell, reg, rng):
    kw = {}
    if reg in ("recurrent_dropout", "both"):
        kw["rec_mask"] = dropout.sample_mask(rng, (B, H), 0.4, np.float64)
    if reg in ("zoneout", "both"):
        ms = tuple((rng.random((T, B, H)) < 0.35).astype(np.float64) for _ in range(2))
        kw["zone_masks"] = ms if cell == "lstm" else ms[0]
    if reg == "zoneout_eval":
        kw["zoneout_eval"] = (0.3, 0.2) if cell == "lstm" else 0.3
    return kw


@pytest.mark.parametrize("cell, nl", CELLS, ids=[f"{c}-{n}" for c, n in CELLS])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("reg", REGS)
def test_regcells_gradcheck(cell, nl, reverse, reg):
    rng, p, x, s0 = _setup(cell, seed=100 * CELLS.index((cell, nl)) + 2 * REGS.index(reg) + reverse)
    kw = _reg_kwargs(cell, reg, rng)
    mod = regcells.get(cell)
    n = mod.NUM_STATES
    w_hs = rng.standard_normal((B, T, H))
    w_s = tuple(rng.standard_normal((B, H)) for _ in range(n))
    snames = ("h0", "c0")[:n]

    def run(a):
        prm = {k: a[k] for k in mod.PARAM_NAMES}
        return mod.forward(prm, a["x"], tuple(a[s] for s in snames), MASK, reverse, **_opts(cell, nl), **kw)

    def loss(a):
        (hs, sT), _ = run(a)
        return float(np.sum(hs * w_hs) + sum(np.sum(s * w) for s, w in zip(sT, w_s, strict=True)))

    arrays = {**p, "x": x, **dict(zip(snames, s0, strict=True))}
    (hs, sT), cache = run(arrays)
    masks_before = {k: np.copy(v) for k, v in kw.items() if not isinstance(v, (tuple, float))}
    dx, ds0, grads = mod.backward(p, w_hs, w_s, cache)
    for k, v in masks_before.items():
        np.testing.assert_array_equal(kw[k], v)  # masks untouched
    assert set(grads) == set(mod.PARAM_NAMES)
    errs = max_rel_error({**grads, "x": dx, **dict(zip(snames, ds0, strict=True))}, numeric_grads(loss, arrays))
    assert max(errs.values()) < 1e-6, errs
    np.testing.assert_array_equal(dx[MASK == 0], 0.0)
    np.testing.assert_array_equal(hs[MASK == 0], 0.0)


@pytest.mark.parametrize("cell, nl", CELLS, ids=[f"{c}-{n}" for c, n in CELLS])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("masked", [False, True])
def test_no_regularizer_equals_fast_cell(cell, nl, reverse, masked):
    """No masks and zoneout rate 0: the fast cell's outputs, states and gradients (to 1e-12)."""
    rng, p, x, s0 = _setup(cell, seed=11)
    mask = MASK if masked else None
    fast, mod = FAST[cell], regcells.get(cell)
    (hs_f, sT_f), c_f = fast.forward(p, x, s0, mask, reverse, **_opts(cell, nl))
    for kw in ({}, {"zoneout_eval": 0.0}, {"rec_mask": np.ones((B, H))}):
        (hs, sT), c = mod.forward(p, x, s0, mask, reverse, **_opts(cell, nl), **kw)
        np.testing.assert_allclose(hs, hs_f, rtol=1e-12, atol=1e-12)
        for a, b in zip(sT, sT_f, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        w = rng.standard_normal((B, T, H))
        ws = tuple(rng.standard_normal((B, H)) for _ in sT)
        tr_f, tr = np.empty((T, B, H)), np.empty((T, B, H))
        dx_f, ds_f, g_f = fast.backward(p, w, ws, c_f, dh_trace=tr_f)
        dx, ds, g = mod.backward(p, w, ws, c, dh_trace=tr)
        np.testing.assert_allclose(dx, dx_f, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tr, tr_f, rtol=1e-12, atol=1e-12)
        for a, b in zip(ds, ds_f, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        for k in mod.PARAM_NAMES:
            np.testing.assert_allclose(g[k], g_f[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("how", ["masks", "eval"])
def test_zoneout_one_keeps_the_initial_state(cell, how):
    _, p, x, s0 = _setup(cell, seed=2)
    mod = regcells.get(cell)
    kw = {"zone_masks": np.ones((T, B, H))} if how == "masks" else {"zoneout_eval": 1.0}
    (hs, sT), _ = mod.forward(p, x, s0, MASK, **kw)
    for a, b in zip(sT, s0, strict=True):
        np.testing.assert_array_equal(a, b)
    expect = np.where(MASK[:, :, None] > 0, s0[0][:, None, :], 0.0)
    np.testing.assert_array_equal(hs, expect)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_zoneout_mask_selects_per_unit_and_step(cell):
    """A unit zoned out at step t keeps h_{t-1}; the others take the plain cell's update."""
    rng, p, x, s0 = _setup(cell, seed=3)
    mod = regcells.get(cell)
    zm = (rng.random((T, B, H)) < 0.5).astype(np.float64)
    zc = np.zeros((T, B, H))  # lstm: c never zoned, so h_new is the plain step's from the same state
    kw = {"zone_masks": (zm, zc)} if cell == "lstm" else {"zone_masks": zm}
    (hs, sT), cache = mod.forward(p, x, s0, None, **kw)
    h_prev = cache["h_prev"]
    for t in range(T):
        state = (h_prev[t],) + ((cache["c_prev"][t],) if cell == "lstm" else ())
        (h1, _), _ = FAST[cell].forward(p, x[:, t : t + 1], state)
        expect = np.where(zm[t] > 0, h_prev[t], h1[:, 0])
        np.testing.assert_allclose(hs[:, t], expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_dropout_mask_is_the_same_at_every_step(cell):
    """A unit dropped for a sequence never enters the recurrent product of that sequence, at any
    step: its W_hh column has no effect there; kept units see their (scaled) state at every step."""
    rng, p, x, s0 = _setup(cell, seed=4)
    mod = regcells.get(cell)
    rm = np.full((B, H), 1.0 / 0.5)
    rm[0, 1] = rm[2, 3] = 0.0
    (hs, _), _ = mod.forward(p, x, s0, None, rec_mask=rm)
    q = {k: v.copy() for k, v in p.items()}
    q["weight_hh"][:, 1] += 5.0
    (hs2, _), _ = mod.forward(q, x, s0, None, rec_mask=rm)
    np.testing.assert_allclose(hs2[0], hs[0], rtol=1e-12, atol=1e-12)
    assert not np.allclose(hs2[1], hs[1]) and not np.allclose(hs2[2], hs[2])
    # the mask acts like scaling W_hh's columns for that sequence, identically at every step
    for b in range(B):
        qb = {k: v.copy() for k, v in p.items()}
        qb["weight_hh"] = p["weight_hh"] * rm[b]
        if cell == "gru":  # the GRU's carry z * h_{t-1} uses the undropped state: compare the plain way
            continue
        (hb, _), _ = FAST[cell].forward(qb, x[b : b + 1], tuple(s[b : b + 1] for s in s0))
        np.testing.assert_allclose(hs[b], hb[0], rtol=1e-12, atol=1e-12)


def test_bidirectional_wrapper_with_per_direction_masks():
    rng, p, x, s0 = _setup("lstm", seed=5)
    q = regcells.LSTM.init_params(rng, D, H, dtype=np.float64)
    dir_opts = tuple(
        {"rec_mask": dropout.sample_mask(rng, (B, H), 0.3, np.float64),
         "zone_masks": tuple((rng.random((T, B, H)) < 0.3).astype(np.float64) for _ in range(2))}
        for _ in range(2)
    )
    w_y = rng.standard_normal((B, T, 2 * H))

    def loss(a):
        (yy, _), _ = bidirectional.forward(regcells.LSTM, p, q, a["x"], mask=MASK, dir_opts=dir_opts)
        return float(np.sum(yy * w_y))

    (y, (sf, sb)), bc = bidirectional.forward(regcells.LSTM, p, q, x, mask=MASK, dir_opts=dir_opts)
    assert y.shape == (B, T, 2 * H) and len(sf) == len(sb) == 2
    assert bc["f"]["reverse"] is False and bc["b"]["reverse"] is True
    dx, _, gf, gb = bidirectional.backward(regcells.LSTM, p, q, w_y, (None, None), bc)
    assert set(gf) == set(gb) == set(regcells.PARAM_NAMES)
    assert max_rel_error({"x": dx}, numeric_grads(loss, {"x": x.copy()}))["x"] < 1e-6


def test_float32_inputs_untouched_and_errors():
    rng = np.random.default_rng(9)
    p = regcells.GRU.init_params(rng, D, H)
    assert all(v.dtype == np.float32 for v in p.values()) and p["weight_hh"].shape == (3 * H, H)
    x = rng.standard_normal((B, T, D))
    x0 = x.copy()
    zm = (rng.random((T, B, H)) < 0.5).astype(np.float32)
    (hs, (hT,)), cache = regcells.GRU.forward(p, x, None, MASK, zone_masks=zm,
                                              rec_mask=dropout.sample_mask(rng, (B, H), 0.5))
    dx, (dh0,), g = regcells.GRU.backward(p, np.ones_like(hs), None, cache)
    assert hs.dtype == hT.dtype == dx.dtype == dh0.dtype == np.float32
    assert all(v.dtype == np.float32 for v in g.values())
    np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError, match="x must have shape"):
        regcells.GRU.forward(p, np.zeros((B, T, D + 1)))
    with pytest.raises(ValueError, match="rec_mask must have shape"):
        regcells.GRU.forward(p, x, rec_mask=np.ones((B, H + 1)))
    with pytest.raises(ValueError, match="zone_masks must have shape"):
        regcells.GRU.forward(p, x, zone_masks=np.ones((T, B, H + 1)))
    with pytest.raises(ValueError, match="zoneout rate"):
        regcells.GRU.forward(p, x, zoneout_eval=1.5)
    with pytest.raises(ValueError, match="nonlinearity"):
        regcells.RNN.forward(regcells.RNN.init_params(rng, D, H), x, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="support rnn, lstm, gru"):
        regcells.get("ln_lstm")
    with pytest.raises(ValueError, match="cache of a gru"):
        regcells.LSTM.backward(p, None, None, cache)


# ---------------------------------------------------------------- config: reg.recurrent_dropout, reg.zoneout


def test_reg_config_keys_reach_the_model_spec():
    from types import SimpleNamespace

    from rnnlab.commands.hydra_bridge import compose_and_validate
    from rnnlab.config.validate import ConfigError
    from rnnlab.train.trainer import build_spec

    data = SimpleNamespace(input_size=1, output_size=1, embedding=None)
    for name, key in (("zoneout", "zoneout"), ("recurrent_dropout", "recurrent_dropout")):
        rc = compose_and_validate([f"reg={name}"])
        assert rc.reg.name == name and getattr(rc.reg, key) > 0
        spec = build_spec(rc, data)
        assert getattr(spec, key) == getattr(rc.reg, key) and spec.recurrent_regularized
    rc = compose_and_validate(["reg=dropout", "reg.zoneout=0.2", "reg.recurrent_dropout=0.1", "arch=gru"])
    spec = build_spec(rc, data)
    assert (spec.zoneout, spec.recurrent_dropout, spec.cell) == (0.2, 0.1, "gru")
    assert not build_spec(compose_and_validate(["reg=none"]), data).recurrent_regularized
    for bad in ("reg.zoneout=1.0", "reg.recurrent_dropout=-0.1"):
        with pytest.raises(ConfigError) as exc:
            compose_and_validate([bad])
        msg = str(exc.value)
        assert "\n" not in msg and bad.split("=")[0] in msg and "[0, 1)" in msg
    with pytest.raises(ConfigError, match="arch.cell rnn, lstm or gru"):
        build_spec(compose_and_validate(["arch=ln_lstm", "reg=zoneout"]), data)
    rc = compose_and_validate(["experiment=regularization_comparison"])
    assert rc.reg.name == "none" and rc.reg.zoneout == 0 and rc.reg.recurrent_dropout == 0
