"""Tests for rnnlab.engine.gru: gradchecks, a naive reference, masking, dtypes, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.engine import gru, rnn
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

B, T, D, H = 3, 5, 4, 3

# row 0: post-padded (3 real steps), row 1: full, row 2: pre-padded (2 pads)
MIXED_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], dtype=np.float64)


def sigmoid(a):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def naive_forward(p, x, h0=None, mask=None, reverse=False):
    """Step-by-step reference straight from the equations (batch-first, no tricks).

    Returns hs, hT and the gates r, z, n as (B, T, H).
    """
    Bn, Tn, _ = x.shape
    Hn = p["weight_hh"].shape[1]
    W_ir, W_iz, W_in = np.split(p["weight_ih"], 3)
    W_hr, W_hz, W_hn = np.split(p["weight_hh"], 3)
    b_ir, b_iz, b_in = np.split(p["bias_ih"], 3)
    b_hr, b_hz, b_hn = np.split(p["bias_hh"], 3)
    h = np.zeros((Bn, Hn)) if h0 is None else np.array(h0, dtype=np.float64)
    hs = np.zeros((Bn, Tn, Hn))
    gates = {k: np.zeros((Bn, Tn, Hn)) for k in "rzn"}
    steps = range(Tn - 1, -1, -1) if reverse else range(Tn)
    for t in steps:
        xt = x[:, t]
        r = sigmoid(xt @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = sigmoid(xt @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = np.tanh(xt @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
        hn = (1 - z) * n + z * h
        for k, v in zip("rzn", (r, z, n), strict=True):
            gates[k][:, t] = v
        if mask is None:
            h = hn
            hs[:, t] = h
        else:
            mt = mask[:, t][:, None]
            h = mt * hn + (1 - mt) * h
            hs[:, t] = mt * hn
    return hs, h, gates


def make_case(seed, dtype=np.float64, with_h0=True):
    rng = np.random.default_rng(seed)
    p = gru.init_params(rng, D, H, dtype=np.float64)
    p = {k: v * 2.0 for k, v in p.items()}  # not too contractive, so every input matters
    x = rng.standard_normal((B, T, D))
    h0 = rng.standard_normal((B, H)) * 0.5 if with_h0 else None
    return _cast(p, x, h0, dtype)


def _cast(p, x, h0, dtype):
    p = {k: v.astype(dtype) for k, v in p.items()}
    return p, x.astype(dtype), None if h0 is None else h0.astype(dtype)


def loss_weights(seed=123):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, T, H)), rng.standard_normal((B, H))


def run_gradcheck(mask, reverse, with_h0, use_hs, use_hT, seed=0):
    p, x, h0 = make_case(seed, with_h0=with_h0)
    W1, W2 = loss_weights()
    W1 = W1 if use_hs else np.zeros_like(W1)
    W2 = W2 if use_hT else np.zeros_like(W2)

    arrays = dict(p)
    arrays["x"] = x
    if with_h0:
        arrays["h0"] = h0

    def loss(a):
        params = {k: a[k] for k in gru.PARAM_NAMES}
        st = (a["h0"],) if with_h0 else None
        (hs, (hT,)), _ = gru.forward(params, a["x"], st, mask, reverse)
        return float(np.sum(hs * W1) + np.sum(hT * W2))

    params = {k: arrays[k] for k in gru.PARAM_NAMES}
    st = (h0,) if with_h0 else None
    _, cache = gru.forward(params, x, st, mask, reverse)
    dx, (dh0,), grads = gru.backward(
        params, W1 if use_hs else None, (W2 if use_hT else None,), cache
    )
    analytic = dict(grads)
    analytic["x"] = dx
    if with_h0:
        analytic["h0"] = dh0
    numeric = numeric_grads(loss, arrays)
    errs = max_rel_error(analytic, numeric)
    assert max(errs.values()) < 1e-6, errs
    if not with_h0:
        # dh0 is still returned: check it against a zero h0 made explicit
        def loss0(a):
            (hs, (hT,)), _ = gru.forward(params, x, (a["h0"],), mask, reverse)
            return float(np.sum(hs * W1) + np.sum(hT * W2))

        num0 = numeric_grads(loss0, {"h0": np.zeros((B, H))})
        assert max_rel_error({"h0": dh0}, num0)["h0"] < 1e-6
    return errs


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(reverse, masked):
    mask = MIXED_MASK if masked else None
    run_gradcheck(mask, reverse, with_h0=True, use_hs=True, use_hT=True)


@pytest.mark.parametrize(
    "with_h0,use_hs,use_hT,masked,reverse",
    [
        (False, True, True, False, False),  # state0=None
        (False, True, True, True, True),  # state0=None, masked, reverse
        (True, False, True, False, False),  # dhs=None (final state only)
        (True, False, True, True, True),  # dhs=None, masked, reverse
        (True, True, False, False, False),  # dhT=None
        (True, True, False, True, False),  # dhT=None, masked
    ],
)
def test_gradcheck_variants(with_h0, use_hs, use_hT, masked, reverse):
    mask = MIXED_MASK if masked else None
    run_gradcheck(mask, reverse, with_h0, use_hs, use_hT)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_matches_naive_reference(reverse, masked, with_h0):
    mask = MIXED_MASK if masked else None
    p, x, h0 = make_case(1, with_h0=with_h0)
    (hs, (hT,)), cache = gru.forward(p, x, None if h0 is None else (h0,), mask, reverse)
    ref_hs, ref_hT, ref_gates = naive_forward(p, x, h0, mask, reverse)
    np.testing.assert_allclose(hs, ref_hs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hT, ref_hT, rtol=0, atol=1e-12)
    # documented gate activations in the cache, (B, T, H) by input position
    real = np.ones((B, T), bool) if mask is None else mask.astype(bool)
    for k in "rzn":
        assert cache[k].shape == (B, T, H)
        np.testing.assert_allclose(cache[k][real], ref_gates[k][real], rtol=0, atol=1e-12)


def test_extreme_preactivations_saturate_cleanly():
    """exp overflow inside the sigmoid must give 0/1 gates, no warnings or NaNs."""
    p, x, h0 = make_case(9)
    x = x * 1e4
    (hs, (hT,)), cache = gru.forward(p, x, (h0,))
    assert np.all(np.isfinite(hs)) and np.all(np.isfinite(hT))
    assert np.all((cache["r"] >= 0) & (cache["r"] <= 1))
    ref_hs, _, _ = naive_forward(p, x, h0)
    np.testing.assert_allclose(hs, ref_hs, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_mask_semantics(reverse):
    p, x, h0 = make_case(2)
    (hs, (hT,)), _ = gru.forward(p, x, (h0,), MIXED_MASK, reverse)
    assert np.all(hs[MIXED_MASK == 0] == 0)
    # post-padded row 0 (3 real steps) == running its unpadded prefix alone
    (hs0, (hT0,)), _ = gru.forward(p, x[0:1, :3], (h0[0:1],), None, reverse)
    np.testing.assert_allclose(hT[0], hT0[0], atol=1e-12)
    np.testing.assert_allclose(hs[0, :3], hs0[0], atol=1e-12)
    # pre-padded row 2 (2 pads) == running its real suffix from h0
    (hs2, (hT2,)), _ = gru.forward(p, x[2:3, 2:], (h0[2:3],), None, reverse)
    np.testing.assert_allclose(hT[2], hT2[0], atol=1e-12)
    np.testing.assert_allclose(hs[2, 2:], hs2[0], atol=1e-12)
    (hs1, (hT1,)), _ = gru.forward(p, x[1:2], (h0[1:2],), None, reverse)
    np.testing.assert_allclose(hT[1], hT1[0], atol=1e-12)
    # gradients sent to padded positions are ignored
    _, cache = gru.forward(p, x, (h0,), MIXED_MASK, reverse)
    W1, W2 = loss_weights()
    dx_a, (dh0_a,), g_a = gru.backward(p, W1, (W2,), cache)
    dx_b, (dh0_b,), g_b = gru.backward(p, W1 * MIXED_MASK[:, :, None], (W2,), cache)
    np.testing.assert_array_equal(dx_a, dx_b)
    np.testing.assert_array_equal(dh0_a, dh0_b)
    for k in g_a:
        np.testing.assert_array_equal(g_a[k], g_b[k])


def test_fully_padded_row_keeps_h0():
    p, x, h0 = make_case(3)
    mask = np.ones((B, T))
    mask[1] = 0
    (hs, (hT,)), _ = gru.forward(p, x, (h0,), mask)
    np.testing.assert_array_equal(hT[1], h0[1])
    assert np.all(hs[1] == 0)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_float32_matches_float64(masked, reverse):
    mask = MIXED_MASK if masked else None
    p64, x64, h064 = make_case(4)
    p32, x32, h032 = _cast(p64, x64, h064, np.float32)
    W1, W2 = loss_weights()
    outs = []
    for p, x, h0 in ((p64, x64, h064), (p32, x32, h032)):
        (hs, (hT,)), cache = gru.forward(p, x, (h0,), mask, reverse)
        dx, (dh0,), g = gru.backward(p, W1, (W2,), cache)
        outs.append({"hs": hs, "hT": hT, "dx": dx, "dh0": dh0, **g})
    for k in outs[0]:
        assert outs[1][k].dtype == np.float32, k
        np.testing.assert_allclose(outs[1][k], outs[0][k], rtol=1e-4, atol=2e-5, err_msg=k)


def test_dtype_preserved_and_inputs_untouched():
    p, x, h0 = make_case(5, dtype=np.float32)
    x64 = x.astype(np.float64)  # x is cast to the parameters' dtype
    mask = MIXED_MASK.copy()
    W1, W2 = loss_weights()
    dhs, dhT = W1.astype(np.float32), W2.astype(np.float32)
    before = [a.copy() for a in (*p.values(), x64, h0, mask, dhs, dhT)]
    for m in (None, mask):
        for rev in (False, True):
            (hs, (hT,)), cache = gru.forward(p, x64, (h0,), m, rev)
            dx, (dh0,), grads = gru.backward(p, dhs, (dhT,), cache)
            for a in (hs, hT, dx, dh0, *grads.values(), cache["r"], cache["z"], cache["n"]):
                assert a.dtype == np.float32
            assert hs.shape == (B, T, H) and hT.shape == (B, H)
            assert dx.shape == (B, T, D) and dh0.shape == (B, H)
            assert set(grads) == set(p)
            for k in p:
                assert grads[k].shape == p[k].shape
    after = [*p.values(), x64, h0, mask, dhs, dhT]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_hidden_state_between_calls():
    """Interleaving two forward/backward pairs gives the same as running them in turn."""
    p, x, h0 = make_case(6)
    W1, W2 = loss_weights()
    x2 = x[:, ::-1] * 0.5
    _, ca = gru.forward(p, x, (h0,))
    ref = gru.backward(p, W1, (W2,), ca)
    _, ca = gru.forward(p, x, (h0,))
    _, cb = gru.forward(p, x2, None, MIXED_MASK, True)
    gru.backward(p, W1, (None,), cb)
    got = gru.backward(p, W1, (W2,), ca)
    np.testing.assert_array_equal(ref[0], got[0])
    for k in ref[2]:
        np.testing.assert_array_equal(ref[2][k], got[2][k])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_several_backward_chunks(monkeypatch, reverse, masked):
    """BPTT in chunks of 2 steps (T=5: chunks of 2, 2, 1) gives the same exact gradients."""
    monkeypatch.setattr(rnn, "CHUNK_ELEMS", 2 * B * H)
    assert rnn._chunk_steps(T, B, H) == 2
    mask = MIXED_MASK if masked else None
    run_gradcheck(mask, reverse, True, True, True)


def test_cache_untouched_and_outputs_read_only():
    p, x, h0 = make_case(10, with_h0=True)
    W1, W2 = loss_weights()
    (hs, (hT,)), cache = gru.forward(p, x, (h0,), MIXED_MASK, True)
    snapshot = {k: v.copy() for k, v in cache.items() if isinstance(v, np.ndarray)}
    first = gru.backward(p, W1, (W2,), cache)
    second = gru.backward(p, W1, (W2,), cache)
    for k, v in snapshot.items():
        np.testing.assert_array_equal(cache[k], v, err_msg=k)
    np.testing.assert_array_equal(first[0], second[0])
    for k in first[2]:
        np.testing.assert_array_equal(first[2][k], second[2][k])
    with pytest.raises(ValueError):
        hs[0, 0, 0] = 1.0  # hs aliases the cache: read-only
    hT[0, 0] = 1.0  # hT is a fresh array


def test_init_params():
    rng = np.random.default_rng(0)
    p = gru.init_params(rng, 7, 16)
    assert list(p) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    shapes = {"weight_ih": (48, 7), "weight_hh": (48, 16), "bias_ih": (48,), "bias_hh": (48,)}
    for k, v in p.items():
        assert v.shape == shapes[k] and v.dtype == np.float32
        assert np.all(np.abs(v) <= 0.25) and np.abs(v).max() > 0.2
    p64 = gru.init_params(np.random.default_rng(0), 7, 16, dtype=np.float64)
    assert all(v.dtype == np.float64 for v in p64.values())


def test_matches_torch():
    torch = pytest.importorskip("torch")
    for reverse in (False, True):
        p, x, h0 = make_case(8)
        W1, W2 = loss_weights()
        mod = torch.nn.GRU(D, H, batch_first=True).double()
        with torch.no_grad():
            for k, v in p.items():
                getattr(mod, f"{k}_l0").copy_(torch.from_numpy(v))
        x_in = x[:, ::-1].copy() if reverse else x  # torch's reverse = run on flipped input
        xt = torch.tensor(x_in, requires_grad=True)
        h0t = torch.tensor(h0[None], requires_grad=True)
        hs_t, hT_t = mod(xt, h0t)
        W1_in = W1[:, ::-1].copy() if reverse else W1
        loss = (hs_t * torch.from_numpy(W1_in)).sum() + (hT_t[0] * torch.from_numpy(W2)).sum()
        loss.backward()
        hs_ref = hs_t.detach().numpy()
        dx_ref = xt.grad.numpy()
        if reverse:
            hs_ref, dx_ref = hs_ref[:, ::-1], dx_ref[:, ::-1]

        (hs, (hT,)), cache = gru.forward(p, x, (h0,), None, reverse)
        dx, (dh0,), grads = gru.backward(p, W1, (W2,), cache)
        np.testing.assert_allclose(hs, hs_ref, atol=1e-12)
        np.testing.assert_allclose(hT, hT_t[0].detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
        np.testing.assert_allclose(dh0, h0t.grad[0].numpy(), atol=1e-10)
        for k, g in grads.items():
            np.testing.assert_allclose(g, getattr(mod, f"{k}_l0").grad.numpy(), atol=1e-10)
