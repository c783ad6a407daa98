"""Tests for rnnlab.engine.lstm: finite-difference gradients, masking, reverse, dtypes, torch."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import lstm
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads, rel_error

B, T, D, H = 3, 5, 4, 3
PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# row 0 post-padded, row 1 pre-padded, row 2 fully real
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=np.float64)


def _setup(seed=0, dtype=np.float64, b=B, t=T, d=D, h=H):
    rng = np.random.default_rng(seed)
    p = lstm.init_params(rng, d, h, dtype=np.float64)
    # larger weights than the init so that gates are not all near 0.5 (a stronger check)
    p = {k: (v * 3.0).astype(dtype) for k, v in p.items()}
    x = rng.standard_normal((b, t, d)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((b, h))).astype(dtype)
    c0 = rng.standard_normal((b, h)).astype(dtype)
    w1 = rng.standard_normal((b, t, h)).astype(dtype)
    w2 = rng.standard_normal((b, h)).astype(dtype)
    w3 = rng.standard_normal((b, h)).astype(dtype)
    return p, x, h0, c0, (w1, w2, w3)


def _naive_forward(p, x, h0, c0, mask=None, reverse=False):
    """Plain per-step LSTM (float64), the same mask semantics; returns hs, hT, cT, gates."""
    b, t_len, _ = x.shape
    h_size = p["weight_hh"].shape[1]
    h, c = h0.copy(), c0.copy()
    hs = np.zeros((b, t_len, h_size))
    gates = np.zeros((t_len, b, 4 * h_size))
    steps = range(t_len - 1, -1, -1) if reverse else range(t_len)
    for t in steps:
        z = x[:, t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        zi, zf, zg, zo = np.split(z, 4, axis=1)
        i = 1.0 / (1.0 + np.exp(-zi))
        f = 1.0 / (1.0 + np.exp(-zf))
        g = np.tanh(zg)
        o = 1.0 / (1.0 + np.exp(-zo))
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        if mask is None:
            h, c = h_new, c_new
            hs[:, t] = h_new
        else:
            real = mask[:, t][:, None] > 0
            h = np.where(real, h_new, h)
            c = np.where(real, c_new, c)
            hs[:, t] = np.where(real, h_new, 0.0)
    return hs, h, c, gates


def _run(p, x, state0, mask, reverse, ws, use_dhs=True, use_dh=True, use_dc=True):
    """Loss sum(hs*w1) + sum(hT*w2) + sum(cT*w3) (terms switchable) and its analytic grads."""
    w1, w2, w3 = ws
    (hs, (hT, cT)), cache = lstm.forward(p, x, state0, mask, reverse)
    loss = 0.0
    if use_dhs:
        loss += float(np.sum(hs * w1))
    if use_dh:
        loss += float(np.sum(hT * w2))
    if use_dc:
        loss += float(np.sum(cT * w3))
    dx, (dh0, dc0), grads = lstm.backward(
        p, w1 if use_dhs else None, (w2 if use_dh else None, w3 if use_dc else None), cache
    )
    return loss, dx, dh0, dc0, grads


GRAD_CASES = {
    "plain": {},
    "mask": {"mask": True},
    "reverse": {"reverse": True},
    "reverse_mask": {"reverse": True, "mask": True},
    "state0_none": {"state0": "none"},
    "state0_none_mask": {"state0": "none", "mask": True},
    "h0_zero": {"state0": "h0_zero"},
    "dhs_none": {"use_dhs": False},
    "dhs_none_reverse_mask": {"use_dhs": False, "reverse": True, "mask": True},
    "dhT_none": {"use_dh": False},
    "dcT_none": {"use_dc": False},
    "dstate_none": {"use_dh": False, "use_dc": False, "mask": True},
    # several (uneven) chunks of steps in the backward pass
    "chunked": {"chunks": True},
    "chunked_reverse_mask": {"chunks": True, "reverse": True, "mask": True},
    "chunked_state0_none": {"chunks": True, "state0": "none", "use_dhs": False},
}


def _small_chunks(monkeypatch):
    """Backward chunks of 2 steps (T = 5 gives 2 + 2 + 1) instead of one for the sequence."""
    monkeypatch.setattr(lstm, "_BWD_ROWS", 2 * B)


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradcheck(case, monkeypatch):
    opt = GRAD_CASES[case]
    if opt.get("chunks"):
        _small_chunks(monkeypatch)
    p, x, h0, c0, ws = _setup(seed=1)
    mask = MASK if opt.get("mask") else None
    reverse = opt.get("reverse", False)
    flags = {k: opt.get(k, True) for k in ("use_dhs", "use_dh", "use_dc")}
    s0 = opt.get("state0")
    if s0 == "h0_zero":
        h0 = np.zeros_like(h0)
    if s0 == "none":
        # gradients w.r.t. the implicit zero state are checked against an explicit one
        h0, c0 = np.zeros_like(h0), np.zeros_like(c0)

    arrays = dict(p, x=x, h0=h0, c0=c0)

    def loss_fn(a):
        params = {k: a[k] for k in PARAMS}
        return _run(params, a["x"], (a["h0"], a["c0"]), mask, reverse, ws, **flags)[0]

    num = numeric_grads(loss_fn, arrays)
    state0 = None if s0 == "none" else (h0, c0)
    _, dx, dh0, dc0, grads = _run(p, x, state0, mask, reverse, ws, **flags)
    assert set(grads) == set(PARAMS)
    analytic = dict(grads, x=dx, h0=dh0, c0=dc0)
    errs = max_rel_error(analytic, num)
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("chunks", [False, True])
def test_matches_naive_reference_float64(chunks, monkeypatch):
    if chunks:
        _small_chunks(monkeypatch)
    p, x, h0, c0, _ = _setup(seed=2)
    for mask in (None, MASK):
        for reverse in (False, True):
            (hs, (hT, cT)), cache = lstm.forward(p, x, (h0, c0), mask, reverse)
            rhs, rh, rc, rgates = _naive_forward(p, x, h0, c0, mask, reverse)
            np.testing.assert_allclose(hs, rhs, rtol=0, atol=1e-12)
            np.testing.assert_allclose(hT, rh, rtol=0, atol=1e-12)
            np.testing.assert_allclose(cT, rc, rtol=0, atol=1e-12)
            if mask is None:  # at padded steps the cached gates are a discarded update
                acts = lstm.gate_activations(cache)
                for k, name in enumerate("ifgo"):
                    ref = rgates[:, :, k * H : (k + 1) * H]
                    np.testing.assert_allclose(acts[name], ref, rtol=0, atol=1e-12)
    # the state0=None path (first recurrent GEMM skipped) and extreme pre-activations
    big = {k: v * 40.0 for k, v in p.items()}
    zeros = np.zeros_like(h0)
    (hs, (hT, cT)), _ = lstm.forward(big, x)
    with np.errstate(over="ignore"):
        rhs, rh, rc, _ = _naive_forward(big, x, zeros, zeros)
    assert np.all(np.isfinite(hs))
    np.testing.assert_allclose(hs, rhs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cT, rc, rtol=0, atol=1e-12)


def test_gate_activations_view():
    p, x, h0, c0, _ = _setup(seed=3)
    _, cache = lstm.forward(p, x, (h0, c0))
    acts = lstm.gate_activations(cache)
    assert list(acts) == ["i", "f", "g", "o"]
    for name, a in acts.items():
        assert a.shape == (T, B, H)
        lo = -1.0 if name == "g" else 0.0
        assert np.all(a >= lo) and np.all(a <= 1.0)
    # c_t = f c_{t-1} + i g and h_t = o tanh(c_t) at every step
    cells = cache["cells"]
    c_prev = np.concatenate([c0[None], cells[:-1]])
    np.testing.assert_allclose(cells, acts["f"] * c_prev + acts["i"] * acts["g"], atol=1e-12)
    np.testing.assert_allclose(cache["tanh_cells"], np.tanh(cells), atol=1e-12)
    hs = cache["hs"].transpose(1, 0, 2)
    np.testing.assert_allclose(hs, acts["o"] * np.tanh(cells), atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_padding_carries_state(reverse):
    p, x, h0, c0, _ = _setup(seed=4)
    (hs, (hT, cT)), cache = lstm.forward(p, x, (h0, c0), MASK, reverse)
    assert np.all(hs[MASK == 0] == 0)
    assert np.all(hs[MASK == 1] != 0)
    for row, (lo, hi) in enumerate([(0, 3), (2, 5), (0, 5)]):
        sl = slice(row, row + 1)
        (hs1, (h1, c1)), _ = lstm.forward(p, x[sl, lo:hi], (h0[sl], c0[sl]), reverse=reverse)
        np.testing.assert_allclose(hT[sl], h1, rtol=0, atol=1e-13)
        np.testing.assert_allclose(cT[sl], c1, rtol=0, atol=1e-13)
        np.testing.assert_allclose(hs[sl, lo:hi], hs1, rtol=0, atol=1e-13)
    # before the first real step (in processing order) the state is still (h0, c0)
    cells = cache["cells"]
    lead = 0 if reverse else 1  # forward: pre-padded row 1; reverse: post-padded row 0
    pos = [3, 4] if reverse else [0, 1]
    for t in pos:
        np.testing.assert_array_equal(cells[t, lead], c0[lead])


def test_float32_matches_float64():
    p64, x64, h0, c0, (w1, w2, w3) = _setup(seed=5, b=4, t=7, d=5, h=6)
    mask = np.ones((4, 7))
    mask[0, 5:] = 0
    mask[1, :2] = 0
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    for reverse in (False, True):
        outs = []
        for p, dt in ((p64, np.float64), (p32, np.float32)):
            s0 = (h0.astype(dt), c0.astype(dt))
            (hs, (hT, cT)), cache = lstm.forward(p, x64.astype(dt), s0, mask, reverse)
            dx, (dh0, dc0), g = lstm.backward(
                p, w1.astype(dt), (w2.astype(dt), w3.astype(dt)), cache
            )
            outs.append([hs, hT, cT, dx, dh0, dc0] + [g[k] for k in PARAMS])
        for a64, a32 in zip(*outs, strict=True):
            assert a32.dtype == np.float32
            assert rel_error(a64, a32) < 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved_and_inputs_untouched(dtype):
    p, x, h0, c0, (w1, w2, w3) = _setup(seed=6, dtype=dtype)
    x_other = x.astype(np.float64 if dtype == np.float32 else np.float32)  # cast on entry
    mask = MASK.copy()
    originals = [a.copy() for a in (*p.values(), x_other, h0, c0, mask, w1, w2, w3)]
    for reverse in (False, True):
        for m in (None, mask):
            (hs, (hT, cT)), cache = lstm.forward(p, x_other, (h0, c0), m, reverse)
            dx, (dh0, dc0), grads = lstm.backward(p, w1, (w2, w3), cache)
            for a in (hs, hT, cT, dx, dh0, dc0, *grads.values(), cache["gates"]):
                assert a.dtype == dtype
            assert hs.shape == (B, T, H) and dx.shape == (B, T, D)
            assert dh0.shape == dc0.shape == hT.shape == cT.shape == (B, H)
            for k in PARAMS:
                assert grads[k].shape == p[k].shape
    after = [*p.values(), x_other, h0, c0, mask, w1, w2, w3]
    for a, b in zip(originals, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_backward_twice_same_result():
    """The cache is not consumed: backward can run twice and gives the same gradients."""
    p, x, h0, c0, (w1, w2, w3) = _setup(seed=7)
    _, cache = lstm.forward(p, x, (h0, c0), MASK)
    r1 = lstm.backward(p, w1, (w2, w3), cache)
    r2 = lstm.backward(p, w1, (w2, w3), cache)
    np.testing.assert_array_equal(r1[0], r2[0])
    for k in PARAMS:
        np.testing.assert_array_equal(r1[2][k], r2[2][k])


def test_init_params_shapes_and_bounds():
    rng = np.random.default_rng(0)
    p = lstm.init_params(rng, 7, 16)
    assert set(p) == set(PARAMS)
    assert p["weight_ih"].shape == (64, 7)
    assert p["weight_hh"].shape == (64, 16)
    assert p["bias_ih"].shape == p["bias_hh"].shape == (64,)
    for v in p.values():
        assert v.dtype == np.float32
        assert np.all(np.abs(v) <= 0.25)
        assert np.abs(v).max() > 0.2  # spread over the whole range
    assert lstm.init_params(rng, 3, 4, dtype=np.float64)["weight_hh"].dtype == np.float64
    assert lstm.NUM_STATES == 2


def test_matches_torch():
    torch = pytest.importorskip("torch")
    p, x, h0, c0, (w1, w2, w3) = _setup(seed=8)
    for reverse in (False, True):
        net = torch.nn.LSTM(D, H, batch_first=True).double()
        with torch.no_grad():
            for k, v in p.items():
                getattr(net, f"{k}_l0").copy_(torch.from_numpy(v))
        # torch runs forward in time: feed it the time-reversed sequence for reverse=True
        flip = (lambda a: a[:, ::-1].copy()) if reverse else (lambda a: a)
        xt = torch.from_numpy(flip(x)).requires_grad_()
        h0t = torch.from_numpy(h0.copy())[None].requires_grad_()
        c0t = torch.from_numpy(c0.copy())[None].requires_grad_()
        out, (hn, cn) = net(xt, (h0t, c0t))
        loss = (
            (out * torch.from_numpy(flip(w1))).sum()
            + (hn[0] * torch.from_numpy(w2)).sum()
            + (cn[0] * torch.from_numpy(w3)).sum()
        )
        loss.backward()
        (hs, (hT, cT)), cache = lstm.forward(p, x, (h0, c0), reverse=reverse)
        dx, (dh0, dc0), grads = lstm.backward(p, w1, (w2, w3), cache)
        np.testing.assert_allclose(hs, flip(out.detach().numpy()), atol=1e-12)
        np.testing.assert_allclose(hT, hn[0].detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(cT, cn[0].detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, flip(xt.grad.numpy()), atol=1e-12)
        np.testing.assert_allclose(dh0, h0t.grad[0].numpy(), atol=1e-12)
        np.testing.assert_allclose(dc0, c0t.grad[0].numpy(), atol=1e-12)
        for k in PARAMS:
            np.testing.assert_allclose(grads[k], getattr(net, f"{k}_l0").grad.numpy(), atol=1e-12)
