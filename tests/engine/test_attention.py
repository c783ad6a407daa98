"""Attention layers: finite-difference gradients (float64) of every parameter and input, and
properties of the weights (masking, causality, padding junk, reference formulas)."""

import numpy as np
import pytest

from rnnlab.engine import attention as A
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

TOL = 1e-6
B, TQ, TK = 3, 4, 5


def _key_mask(b=B, t=TK):
    m = np.ones((b, t))
    m[0, -2:] = 0  # post-padded
    m[1, :2] = 0  # pre-padded
    return m


def _check(fwd, bwd, params, inputs, seed=0, zero_grads=()):
    """Gradcheck y = fwd(params, inputs) against bwd(params, w, cache) -> (dinputs dict, grads).

    zero_grads: parameters whose gradient is exactly zero (checked in absolute terms)."""
    rng = np.random.default_rng(seed)
    y, cache = fwd(params, inputs)
    w = rng.standard_normal(y.shape)

    def loss(_=None):
        return float(np.sum(fwd(params, inputs)[0] * w))

    w0 = w.copy()
    dinputs, grads = bwd(params, w, cache)
    np.testing.assert_array_equal(w, w0)  # the upstream gradient is never modified
    assert set(grads) == set(params)
    num = numeric_grads(loss, params)
    for k in zero_grads:  # exactly 0 in theory: the relative error of round-off is meaningless
        assert np.abs(grads[k]).max() < 1e-12 and np.abs(num[k]).max() < 1e-8, k
        grads, num = {**grads, k: num[k]}, num
    errs = max_rel_error(grads, num) if params else {}
    errs.update(max_rel_error(dinputs, numeric_grads(loss, inputs)))
    assert max(errs.values()) < TOL, errs
    assert np.isfinite(y).all()
    return y, cache


# ---------------------------------------------------------------- masked softmax


def test_masked_softmax_zero_at_masked_and_fully_masked_rows():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 3, 4))
    keep = np.ones((2, 3, 4), dtype=bool)
    keep[0, 0, 1:] = False
    keep[1, 2, :] = False  # fully masked row
    a = A.masked_softmax(s, keep)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a[~keep], 0)
    np.testing.assert_array_equal(a[1, 2], 0)
    np.testing.assert_allclose(a[0, 0], [1, 0, 0, 0])
    sums = a.sum(-1)
    np.testing.assert_allclose(np.delete(sums.ravel(), 5), 1)
    assert A.masked_softmax(s.astype(np.float32), keep).dtype == np.float32
    # A fully masked row gives zero gradient, never NaN.
    d = A.masked_softmax_backward(rng.standard_normal(a.shape), a)
    assert np.isfinite(d).all() and np.all(d[1, 2] == 0)


# ---------------------------------------------------------------- additive (Bahdanau)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("single", [False, True], ids=["seq", "single"])
@pytest.mark.parametrize("sep_values", [False, True], ids=["v=k", "values"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_additive_gradients(masked, single, sep_values, bias):
    rng = np.random.default_rng(1)
    Dq, Dk, Dv, Att = 3, 4, 2, 5
    params = A.additive_init(rng, Dq, Dk, Att, bias=bias, dtype=np.float64)
    assert set(params) == {"W_q", "W_k", "v"} | ({"bias"} if bias else set())
    inputs = {"q": rng.standard_normal((B, Dq) if single else (B, TQ, Dq)), "k": rng.standard_normal((B, TK, Dk))}
    if sep_values:
        inputs["v"] = rng.standard_normal((B, TK, Dv))
    mask = _key_mask() if masked else None

    def fwd(p, x):
        return A.additive_forward(p, x["q"], x["k"], x.get("v"), mask)

    def bwd(p, w, cache):
        dq, dk, dv, g = A.additive_backward(p, w, cache)
        assert (dv is None) == (not sep_values)
        d = {"q": dq, "k": dk}
        if sep_values:
            d["v"] = dv
        return d, g

    y, cache = _check(fwd, bwd, params, inputs)
    wts = cache["weights"]
    assert wts.shape == ((B, TK) if single else (B, TQ, TK))
    assert y.shape == ((B,) if single else (B, TQ)) + ((Dv,) if sep_values else (Dk,))
    # the score formula, directly
    q = inputs["q"] if not single else inputs["q"][:, None]
    pre = (q @ params["W_q"].T)[:, :, None] + (inputs["k"] @ params["W_k"].T)[:, None] + params.get("bias", 0)
    ref = A.masked_softmax(np.tanh(pre) @ params["v"], None if mask is None else mask[:, None] > 0)
    np.testing.assert_allclose(wts, ref[:, 0] if single else ref, rtol=1e-12)


# ---------------------------------------------------------------- Luong dot / general


@pytest.mark.parametrize("score", ["dot", "general"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("single", [False, True], ids=["seq", "single"])
@pytest.mark.parametrize("sep_values", [False, True], ids=["v=k", "values"])
def test_luong_gradients(score, masked, single, sep_values):
    rng = np.random.default_rng(2)
    Dk = 4
    Dq = Dk if score == "dot" else 3
    params = A.luong_init(rng, Dq, Dk, score=score, dtype=np.float64)
    assert set(params) == (set() if score == "dot" else {"W"})
    inputs = {"q": rng.standard_normal((B, Dq) if single else (B, TQ, Dq)), "k": rng.standard_normal((B, TK, Dk))}
    if sep_values:
        inputs["v"] = rng.standard_normal((B, TK, 2))
    mask = _key_mask() if masked else None

    def fwd(p, x):
        return A.luong_forward(p, x["q"], x["k"], x.get("v"), mask)

    def bwd(p, w, cache):
        dq, dk, dv, g = A.luong_backward(p, w, cache)
        d = {"q": dq, "k": dk}
        if sep_values:
            d["v"] = dv
        return d, g

    _, cache = _check(fwd, bwd, params, inputs)
    q = inputs["q"] if not single else inputs["q"][:, None]
    W = params.get("W", np.eye(Dk))
    ref = A.masked_softmax(q @ W @ inputs["k"].transpose(0, 2, 1), None if mask is None else mask[:, None] > 0)
    np.testing.assert_allclose(cache["weights"], ref[:, 0] if single else ref, rtol=1e-12)


def test_luong_rejects_bad_score_and_width():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="score"):
        A.luong_init(rng, 3, 3, score="concat")
    with pytest.raises(ValueError, match="width"):
        A.luong_forward({}, np.zeros((2, 3)), np.zeros((2, 4, 5)))


# ---------------------------------------------------------------- scaled dot-product


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("tq", [TK, 3])
def test_scaled_dot_product_gradients(masked, causal, tq):
    rng = np.random.default_rng(3)
    inputs = {"q": rng.standard_normal((B, tq, 4)), "k": rng.standard_normal((B, TK, 4)),
              "v": rng.standard_normal((B, TK, 3))}
    mask = _key_mask() if masked else None

    def fwd(p, x):
        return A.scaled_dot_product_forward(x["q"], x["k"], x["v"], mask, causal)

    def bwd(p, w, cache):
        dq, dk, dv = A.scaled_dot_product_backward(w, cache)
        return {"q": dq, "k": dk, "v": dv}, {}

    _check(fwd, bwd, {}, inputs)


def _reference_sdp(q, k, v, mask=None, causal=False):
    """softmax(Q K^T / sqrt(d)) V, one row at a time over the visible keys."""
    out = np.zeros(q.shape[:2] + (v.shape[-1],))
    W = np.zeros(q.shape[:2] + (k.shape[1],))
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            vis = [j for j in range(k.shape[1]) if (mask is None or mask[b, j]) and (not causal or j <= i)]
            if not vis:
                continue
            s = np.array([q[b, i] @ k[b, j] for j in vis]) / np.sqrt(q.shape[-1])
            e = np.exp(s - s.max())
            W[b, i, vis] = e / e.sum()
            out[b, i] = W[b, i, vis] @ v[b, vis]
    return out, W


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_scaled_dot_product_matches_direct_formula_and_mask_properties(masked, causal):
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((B, TK, 4)), rng.standard_normal((B, TK, 4)), rng.standard_normal((B, TK, 3))
    mask = _key_mask() if masked else None
    y, cache = A.scaled_dot_product_forward(q, k, v, mask, causal)
    ref_y, ref_w = _reference_sdp(q, k, v, mask, causal)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-14)
    w = cache["weights"]
    np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-15)
    if not masked:  # the plain formula
        s = q @ k.transpose(0, 2, 1) / 2.0
        if causal:
            s = np.where(np.tril(np.ones((TK, TK))) > 0, s, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        np.testing.assert_allclose(y, (e / e.sum(-1, keepdims=True)) @ v, rtol=1e-12)
    keep = A._keep(mask, causal, TK, TK)
    keep = np.broadcast_to(np.ones((B, TK, TK), bool) if keep is None else keep, w.shape)
    np.testing.assert_array_equal(w[~keep], 0)  # masked: exactly 0
    rows = keep.any(-1)
    np.testing.assert_allclose(w.sum(-1)[rows], 1, rtol=1e-12)  # visible rows sum to one
    np.testing.assert_array_equal(w[~rows], 0)  # fully masked rows: zeros, output zeros
    np.testing.assert_array_equal(y[~rows], 0)
    if causal:
        np.testing.assert_array_equal(np.triu(w, k=1), 0)
    if masked and causal:
        assert (~rows).any()  # the pre-padded row has queries that see only padding


def test_scaled_dot_product_padding_junk_changes_nothing():
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((B, TQ, 4)), rng.standard_normal((B, TK, 4)), rng.standard_normal((B, TK, 3))
    mask = _key_mask()
    junk = mask[:, :, None] == 0
    k2 = np.where(junk, 1e3 * rng.standard_normal(k.shape), k)
    v2 = np.where(junk, 1e3 * rng.standard_normal(v.shape), v)
    y1, c1 = A.scaled_dot_product_forward(q, k, v, mask)
    y2, c2 = A.scaled_dot_product_forward(q, k2, v2, mask)
    np.testing.assert_array_equal(c1["weights"], c2["weights"])
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-15)
    dy = rng.standard_normal(y1.shape)
    d1, d2 = A.scaled_dot_product_backward(dy, c1), A.scaled_dot_product_backward(dy, c2)
    np.testing.assert_allclose(d1[0], d2[0], rtol=1e-12, atol=1e-15)  # dq
    for d in (d1[1], d1[2], d2[1], d2[2]):  # dk, dv: 0 at padded keys
        np.testing.assert_array_equal(d[mask == 0], 0)


# ---------------------------------------------------------------- multi-head


@pytest.mark.parametrize("heads", [1, 2, 3])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_multihead_self_attention_gradients(heads, masked, causal):
    rng = np.random.default_rng(6)
    D = 6
    params = A.multihead_init(rng, D, heads, dtype=np.float64)
    for n in "qkvo":  # non-zero biases so their gradients are checked on a generic point
        params[f"b_{n}"] = 0.3 * rng.standard_normal(D)
    inputs = {"x": rng.standard_normal((B, TK, D))}
    mask = _key_mask() if masked else None

    def fwd(p, x):
        return A.multihead_forward(p, x["x"], mask, causal, num_heads=heads)

    def bwd(p, w, cache):
        dx, dctx, g = A.multihead_backward(p, w, cache)
        assert dctx is None
        return {"x": dx}, g

    # b_k adds q_i . b_k to every score of row i: the softmax ignores it, its gradient is 0.
    y, cache = _check(fwd, bwd, params, inputs, zero_grads=("b_k",))
    w = cache["weights"]
    assert y.shape == (B, TK, D) and w.shape == (B, heads, TK, TK)
    if causal:
        np.testing.assert_array_equal(np.triu(w, k=1), 0)
    if masked:
        np.testing.assert_array_equal(w[:, :, :, :][np.broadcast_to(mask[:, None, None, :] == 0, w.shape)], 0)


@pytest.mark.parametrize("heads", [1, 2])
def test_multihead_cross_attention_gradients(heads):
    rng = np.random.default_rng(7)
    D = 4
    params = A.multihead_init(rng, D, heads, dtype=np.float64)
    inputs = {"x": rng.standard_normal((B, TQ, D)), "c": rng.standard_normal((B, TK, D))}
    mask = _key_mask()

    def fwd(p, x):
        return A.multihead_forward(p, x["x"], mask, num_heads=heads, context=x["c"])

    def bwd(p, w, cache):
        dx, dc, g = A.multihead_backward(p, w, cache)
        return {"x": dx, "c": dc}, g

    _, cache = _check(fwd, bwd, params, inputs, zero_grads=("b_k",))
    assert cache["weights"].shape == (B, heads, TQ, TK)


def test_multihead_one_head_identity_projections_equal_scaled_dot_product():
    rng = np.random.default_rng(8)
    D = 5
    eye, zero = np.eye(D), np.zeros(D)
    params = {"W_q": eye, "W_k": eye, "W_v": eye, "W_o": eye, "b_q": zero, "b_k": zero, "b_v": zero, "b_o": zero}
    x = rng.standard_normal((B, TK, D))
    mask = _key_mask()
    for causal in (False, True):
        y, c = A.multihead_forward(params, x, mask, causal, num_heads=1)
        ref, rc = A.scaled_dot_product_forward(x, x, x, mask, causal)
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c["weights"][:, 0], rc["weights"], rtol=1e-12, atol=1e-15)


def test_multihead_heads_are_independent_scaled_dot_products():
    """Head j attends with columns j*dh:(j+1)*dh of the projections."""
    rng = np.random.default_rng(9)
    D, h = 6, 3
    params = A.multihead_init(rng, D, h, dtype=np.float64)
    x = rng.standard_normal((2, 4, D))
    y, c = A.multihead_forward(params, x, num_heads=h)
    q, k, v = (x @ params[f"W_{n}"].T + params[f"b_{n}"] for n in "qkv")
    dh = D // h
    parts = [A.scaled_dot_product_forward(q[..., j * dh:(j + 1) * dh], k[..., j * dh:(j + 1) * dh],
                                          v[..., j * dh:(j + 1) * dh])[0] for j in range(h)]
    ref = np.concatenate(parts, axis=-1) @ params["W_o"].T + params["b_o"]
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_multihead_init_and_validation():
    rng = np.random.default_rng(0)
    p = A.multihead_init(rng, 8, 2)
    assert set(p) == set(A.MHA_KEYS) and all(v.dtype == np.float32 for v in p.values())
    assert p["W_q"].shape == (8, 8) and np.all(p["b_o"] == 0)
    with pytest.raises(ValueError, match="divisible"):
        A.multihead_init(rng, 6, 4)
    with pytest.raises(ValueError, match="divisible"):
        A.multihead_forward(p, np.zeros((1, 2, 8), np.float32), num_heads=3)
    y, c = A.multihead_forward(p, rng.standard_normal((2, 3, 8)).astype(np.float32), num_heads=2)
    dx, _, g = A.multihead_backward(p, np.ones_like(y), c)
    assert y.dtype == dx.dtype == np.float32 and all(v.dtype == np.float32 for v in g.values())


# ---------------------------------------------------------------- attention pooling


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("attn_size", [None, 3])
def test_attention_pooling_gradients(masked, attn_size):
    rng = np.random.default_rng(10)
    F = 4
    params = A.pool_init(rng, F, attn_size, dtype=np.float64)
    inputs = {"h": rng.standard_normal((B, TK, F))}
    mask = _key_mask() if masked else None

    def fwd(p, x):
        return A.pool_forward(p, x["h"], mask)

    def bwd(p, w, cache):
        dh, g = A.pool_backward(p, w, cache)
        return {"h": dh}, g

    y, cache = _check(fwd, bwd, params, inputs)
    w = cache["weights"]
    assert y.shape == (B, F) and w.shape == (B, TK)
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-12)
    if masked:
        np.testing.assert_array_equal(w[mask == 0], 0)
    e = np.tanh(inputs["h"] @ params["weight"].T + params["bias"]) @ params["v"]
    ref = A.masked_softmax(e, None if mask is None else mask > 0)
    np.testing.assert_allclose(y, np.einsum("bt,btf->bf", ref, inputs["h"]), rtol=1e-12)


def test_attention_pooling_padding_junk_and_empty_sequence():
    rng = np.random.default_rng(11)
    F = 3
    params = A.pool_init(rng, F, dtype=np.float64)
    h = rng.standard_normal((B, TK, F))
    mask = _key_mask()
    mask[2] = 0  # an empty sequence pools to zeros
    h2 = np.where(mask[:, :, None] == 0, 1e3 * rng.standard_normal(h.shape), h)
    y1, c1 = A.pool_forward(params, h, mask)
    y2, c2 = A.pool_forward(params, h2, mask)
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(y1[2], 0)
    np.testing.assert_array_equal(c1["weights"][2], 0)
    assert np.isfinite(y2).all()
    dy = rng.standard_normal(y1.shape)
    (dh1, g1), (dh2, g2) = A.pool_backward(params, dy, c1), A.pool_backward(params, dy, c2)
    np.testing.assert_array_equal(dh1[mask == 0], 0)
    np.testing.assert_array_equal(dh2[mask == 0], 0)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-12, atol=1e-15)
    # The unpadded prefix of row 0 pools to the same vector.
    y0, _ = A.pool_forward(params, h[:1, :3])
    np.testing.assert_allclose(y1[:1], y0, rtol=1e-12)


def test_attention_pooling_keeps_float32():
    rng = np.random.default_rng(12)
    params = A.pool_init(rng, 4)
    h = rng.standard_normal((2, 5, 4)).astype(np.float32)
    y, c = A.pool_forward(params, h, np.array([[1, 1, 1, 0, 0], [1] * 5]))
    dh, g = A.pool_backward(params, np.ones_like(y), c)
    assert y.dtype == dh.dtype == c["weights"].dtype == np.float32
    assert all(v.dtype == np.float32 for v in g.values())


# ---------------------------------------------------------------- attention maps


def test_attention_heatmap_draws_matrices_and_vectors(tmp_path):
    from rnnlab.report.attention_plots import attention_heatmap

    rng = np.random.default_rng(13)
    _, c = A.scaled_dot_product_forward(*(rng.standard_normal((1, 4, 2)) for _ in range(3)), causal=True)
    p = attention_heatmap(c["weights"][0], tmp_path / "plots" / "m.png", xlabels=list("abcd"), ylabels=list("wxyz"))
    assert p.stat().st_size > 0
    _, c = A.pool_forward(A.pool_init(rng, 2), rng.standard_normal((1, 5, 2)).astype(np.float32))
    assert attention_heatmap(c["weights"][0], tmp_path / "v.png", mask=np.arange(5) < 3).stat().st_size > 0
    with pytest.raises(ValueError, match="shape"):
        attention_heatmap(np.zeros((1, 2, 3)), tmp_path / "bad.png")


@pytest.mark.slow  # a plot (2.3 s); the pooling weights are checked fast (masked softmax, explain --method attention)
def test_states_analysis_draws_attention_pooling_weights(tmp_path):
    from rnnlab.config.schema import MonitorConf
    from rnnlab.engine import model as M
    from rnnlab.monitor.probe import Probe
    from rnnlab.monitor.states import analyse_states
    from rnnlab.record.folder import RunFolder

    spec = M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1, bidirectional=True,
                       pooling="attention")
    params = M.init_params(spec, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 7, 2)).astype(np.float32)
    mask = np.ones((5, 7))
    mask[0, 4:] = 0
    out = analyse_states(MonitorConf(), spec, params, Probe(x, np.zeros(5), mask, None), RunFolder(tmp_path))
    assert "plots/attention.png" in out["files"]
    assert (tmp_path / "plots" / "attention.png").stat().st_size > 0
