"""Attention layers: additive (Bahdanau), Luong dot / general, scaled dot-product,
multi-head self-attention and attention pooling, as stateless forward/backward pairs.

Shapes (batch first): queries (B, Tq, Dq), or one query per sequence (B, Dq) for the additive
and Luong layers (the output then has no Tq axis either); keys (B, Tk, Dk); values (B, Tk, Dv)
(the keys themselves when values is None); key mask (B, Tk) of 0/1 (1 = a real step) or None.
Attention weights are (B, Tq, Tk) ((B, Tk) for a single query, (B, h, Tq, Tk) for h heads,
(B, T) for pooling) and every forward puts them in ``cache["weights"]`` so they can be drawn.

Layers:

* additive (Bahdanau): score(q, k_j) = v^T tanh(W_q q + W_k k_j + b); params ``W_q`` (A, Dq),
  ``W_k`` (A, Dk), ``v`` (A,) and optionally ``bias`` (A,); context = sum_j a_j value_j.
* Luong: "dot" score q . k_j (no parameters, Dq == Dk) or "general" score q^T W k_j with
  ``W`` (Dq, Dk).
* scaled dot-product: softmax(Q K^T / sqrt(d)) V, d = Q's last axis, with a key mask and an
  optional causal mask (query i sees keys j <= i, top-left aligned as torch's ``is_causal``).
* multi-head self-attention: h heads of width D / h on x (B, T, D) (keys and values from an
  optional ``context`` (B, Tk, D) instead: cross-attention); params ``W_q``, ``W_k``, ``W_v``,
  ``W_o`` (D, D) in the Dense convention y = x W^T + b, biases ``b_q``, ``b_k``, ``b_v``, ``b_o``
  (D,). Padded query rows are computed like real ones; mask them downstream.
* attention pooling (the "custom attention layer" on top of a BiLSTM): e_t = v^T tanh(W h_t + b),
  a = softmax of e over the unmasked steps, pooled = sum_t a_t h_t; params ``weight`` (A, F),
  ``bias`` (A,), ``v`` (A,); h (B, T, F) -> pooled (B, F).

Masking: masked positions get weight exactly 0 (their scores are replaced by -inf before the
softmax, so junk at padded steps, even huge, never changes an output or a gradient). A row with
every key masked (an empty sequence, or a causal row whose visible keys are all padding) has
all-zero weights, hence a zero context (additive bias of the output projection only, for
multi-head), and passes no gradient; it never produces NaN.

Calls: ``out, cache = X_forward(params, ...)``, ``d_inputs..., grads = X_backward(params, dout,
cache)`` with grads keyed like params (input gradients that do not apply are None). Upstream
gradients are never modified in place.
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.engine import lowering

# --------------------------------------------------------------------------------------
# masked softmax
# --------------------------------------------------------------------------------------


def causal_keep(tq: int, tk: int) -> np.ndarray:
    """(tq, tk) bool: query i may see key j when j <= i."""
    return np.tril(np.ones((tq, tk), dtype=bool))


def _keep(mask, causal: bool, tq: int, tk: int, lead: int = 0):
    """Bool array broadcastable to (B, [h,] Tq, Tk), or None when nothing is masked.

    mask (B, Tk); `lead` extra axes (heads) are inserted after the batch axis."""
    keep = None
    if mask is not None:
        m = np.asarray(mask) != 0
        keep = m.reshape((m.shape[0],) + (1,) * lead + (1, m.shape[1]))
    if causal:
        c = causal_keep(tq, tk)
        keep = c if keep is None else keep & c
    return keep


def masked_softmax(scores: np.ndarray, keep=None) -> np.ndarray:
    """Softmax over the last axis, with weight exactly 0 where keep is False.

    keep: None or bool broadcastable to scores. A row with nothing kept gives all zeros.
    """
    if keep is None:
        z = scores
    else:
        z = np.where(keep, scores, -np.inf)
    m = np.max(z, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # fully masked row: exp(-inf - 0) = 0 everywhere
    e = np.exp(z - m)
    s = e.sum(axis=-1, keepdims=True)
    return (e / np.where(s > 0, s, 1)).astype(scores.dtype, copy=False)


def masked_softmax_backward(da: np.ndarray, a: np.ndarray) -> np.ndarray:
    """d scores from d weights; zero at masked positions (their weight is 0)."""
    return a * (da - np.sum(da * a, axis=-1, keepdims=True))


def _attend(scores, values, keep):
    """weights = masked softmax(scores); context = weights @ values."""
    w = masked_softmax(scores, keep)
    return w @ values, w


def _attend_backward(dctx, w, values):
    """(d scores, d values) of _attend."""
    dw = dctx @ np.swapaxes(values, -1, -2)
    dvalues = np.swapaxes(w, -1, -2) @ dctx
    return masked_softmax_backward(dw, w), dvalues


def _as_queries(query):
    """(B, Tq, Dq) view and whether a single (B, Dq) query was given."""
    query = np.asarray(query)
    if query.ndim == 2:
        return query[:, None, :], True
    if query.ndim != 3:
        raise ValueError(f"query must be (B, Dq) or (B, Tq, Dq), got shape {query.shape}")
    return query, False


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


# --------------------------------------------------------------------------------------
# additive (Bahdanau) attention
# --------------------------------------------------------------------------------------


def additive_init(rng: np.random.Generator, query_size: int, key_size: int, attn_size: int,
                  bias: bool = True, dtype=np.float32) -> dict[str, np.ndarray]:
    """W_q, W_k ~ U(+-1/sqrt(in)) (as nn.Linear), v ~ U(+-1/sqrt(A)), bias ~ U(+-1/sqrt(Dk))."""
    p = {"W_q": _uniform(rng, 1 / np.sqrt(query_size), (attn_size, query_size), dtype),
         "W_k": _uniform(rng, 1 / np.sqrt(key_size), (attn_size, key_size), dtype),
         "v": _uniform(rng, 1 / np.sqrt(attn_size), (attn_size,), dtype)}
    if bias:
        p["bias"] = _uniform(rng, 1 / np.sqrt(key_size), (attn_size,), dtype)
    return p


def additive_forward(params, query, keys, values=None, mask=None):
    """context (B, [Tq,] Dv), cache (weights in cache["weights"])."""
    q, single = _as_queries(query)
    qp = q @ params["W_q"].T  # (B, Tq, A)
    kp = keys @ params["W_k"].T  # (B, Tk, A)
    pre = qp[:, :, None, :] + kp[:, None, :, :]  # (B, Tq, Tk, A)
    if "bias" in params:
        pre += params["bias"]  # fresh array
    t = np.tanh(pre)
    scores = t @ params["v"]  # (B, Tq, Tk)
    vals = keys if values is None else values
    ctx, w = _attend(scores, vals, _keep(mask, False, q.shape[1], keys.shape[1]))
    cache = {"q": q, "keys": keys, "values": values, "t": t, "weights": w[:, 0] if single else w,
             "w": w, "single": single}
    return (ctx[:, 0] if single else ctx), cache


def additive_backward(params, dctx, cache):
    """Returns dquery, dkeys, dvalues (None when values were the keys), grads."""
    w, t, q, keys = cache["w"], cache["t"], cache["q"], cache["keys"]
    if cache["single"]:
        dctx = dctx[:, None, :]
    vals = keys if cache["values"] is None else cache["values"]
    ds, dvals = _attend_backward(dctx, w, vals)
    grads = {"v": np.einsum("bija,bij->a", t, ds)}
    dpre = ds[..., None] * params["v"] * (1 - t * t)  # (B, Tq, Tk, A)
    dqp = dpre.sum(axis=2)
    dkp = dpre.sum(axis=1)
    if "bias" in params:
        grads["bias"] = dqp.sum(axis=(0, 1))
    grads["W_q"] = np.einsum("bia,bid->ad", dqp, q)
    grads["W_k"] = np.einsum("bja,bjd->ad", dkp, keys)
    dq = dqp @ params["W_q"]
    dk = dkp @ params["W_k"]
    if cache["values"] is None:
        dk = dk + dvals
        dvals = None
    return (dq[:, 0] if cache["single"] else dq), dk, dvals, grads


# --------------------------------------------------------------------------------------
# Luong attention: dot and general scores
# --------------------------------------------------------------------------------------

LUONG_SCORES = ("dot", "general")


def luong_init(rng: np.random.Generator, query_size: int, key_size: int, score: str = "general",
               dtype=np.float32) -> dict[str, np.ndarray]:
    """{} for "dot"; {"W": (Dq, Dk) ~ U(+-1/sqrt(Dk))} for "general"."""
    if score not in LUONG_SCORES:
        raise ValueError(f"score must be one of {', '.join(LUONG_SCORES)} (got '{score}')")
    if score == "dot":
        return {}
    return {"W": _uniform(rng, 1 / np.sqrt(key_size), (query_size, key_size), dtype)}


def luong_forward(params, query, keys, values=None, mask=None):
    """Score "general" when params has "W", else "dot". context (B, [Tq,] Dv), cache."""
    q, single = _as_queries(query)
    qw = q @ params["W"] if "W" in params else q  # (B, Tq, Dk)
    if qw.shape[-1] != keys.shape[-1]:
        raise ValueError(f"query width {qw.shape[-1]} does not match key width {keys.shape[-1]}")
    scores = qw @ np.swapaxes(keys, 1, 2)
    vals = keys if values is None else values
    ctx, w = _attend(scores, vals, _keep(mask, False, q.shape[1], keys.shape[1]))
    cache = {"q": q, "qw": qw, "keys": keys, "values": values, "w": w,
             "weights": w[:, 0] if single else w, "single": single}
    return (ctx[:, 0] if single else ctx), cache


def luong_backward(params, dctx, cache):
    """Returns dquery, dkeys, dvalues (None when values were the keys), grads."""
    w, q, qw, keys = cache["w"], cache["q"], cache["qw"], cache["keys"]
    if cache["single"]:
        dctx = dctx[:, None, :]
    vals = keys if cache["values"] is None else cache["values"]
    ds, dvals = _attend_backward(dctx, w, vals)
    dqw = ds @ keys
    dk = np.swapaxes(ds, 1, 2) @ qw
    grads = {}
    if "W" in params:
        grads["W"] = np.einsum("bid,bie->de", q, dqw)
        dq = dqw @ params["W"].T
    else:
        dq = dqw
    if cache["values"] is None:
        dk = dk + dvals
        dvals = None
    return (dq[:, 0] if cache["single"] else dq), dk, dvals, grads


# --------------------------------------------------------------------------------------
# scaled dot-product attention
# --------------------------------------------------------------------------------------


def _sdp(q, k, v, keep):
    scale = 1.0 / math.sqrt(q.shape[-1])  # a Python float keeps float32 arrays float32
    scores = (q @ np.swapaxes(k, -1, -2)) * scale
    ctx, w = _attend(scores, v, keep)
    return ctx, w, scale


def _sdp_backward(dctx, q, k, v, w, scale):
    ds, dv = _attend_backward(dctx, w, v)
    ds = ds * scale
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, dv


def scaled_dot_product_forward(q, k, v, mask=None, causal: bool = False):
    """softmax(Q K^T / sqrt(d)) V: q (B, Tq, d), k (B, Tk, d), v (B, Tk, dv) -> (B, Tq, dv), cache."""
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError("scaled dot-product attention needs (B, T, d) queries, keys and values")
    ctx, w, scale = _sdp(q, k, v, _keep(mask, causal, q.shape[1], k.shape[1]))
    return ctx, {"q": q, "k": k, "v": v, "weights": w, "scale": scale}


def scaled_dot_product_backward(dctx, cache):
    """Returns dq, dk, dv."""
    c = cache
    return _sdp_backward(dctx, c["q"], c["k"], c["v"], c["weights"], c["scale"])


# --------------------------------------------------------------------------------------
# multi-head (self-)attention
# --------------------------------------------------------------------------------------

MHA_KEYS = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o")


def multihead_init(rng: np.random.Generator, d_model: int, num_heads: int, dtype=np.float32):
    """Xavier-uniform projections and zero biases (as torch.nn.MultiheadAttention)."""
    if num_heads < 1 or d_model % num_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
    bound = np.sqrt(6.0 / (2 * d_model))
    p = {}
    for n in "qkvo":
        p[f"W_{n}"] = _uniform(rng, bound, (d_model, d_model), dtype)
        p[f"b_{n}"] = np.zeros(d_model, dtype=dtype)
    return p


def _split(x, h):
    B, T, D = x.shape
    return x.reshape(B, T, h, D // h).transpose(0, 2, 1, 3)  # (B, h, T, D/h)


def _merge(x):
    B, h, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, h * d)


def multihead_forward(params, x, mask=None, causal: bool = False, num_heads: int = 1, context=None):
    """y (B, T, D), cache (weights (B, h, T, Tk) in cache["weights"]).

    Self-attention on x (B, T, D); with `context` (B, Tk, D) keys and values come from it
    (mask then masks the context's steps)."""
    D = x.shape[-1]
    if num_heads < 1 or D % num_heads:
        raise ValueError(f"d_model ({D}) must be divisible by num_heads ({num_heads})")
    src = x if context is None else context
    q = x @ params["W_q"].T + params["b_q"]
    k = src @ params["W_k"].T + params["b_k"]
    v = src @ params["W_v"].T + params["b_v"]
    qh, kh, vh = _split(q, num_heads), _split(k, num_heads), _split(v, num_heads)
    keep = _keep(mask, causal, x.shape[1], src.shape[1], lead=1)
    ctx, w, scale = _sdp(qh, kh, vh, keep)
    cm = _merge(ctx)  # (B, T, D)
    y = cm @ params["W_o"].T + params["b_o"]
    cache = {"x": x, "context": context, "qh": qh, "kh": kh, "vh": vh, "weights": w, "scale": scale,
             "cm": cm, "num_heads": num_heads}
    return y, cache


def multihead_backward(params, dy, cache):
    """Returns dx, dcontext (None for self-attention), grads."""
    c = cache
    x = c["x"]
    src = x if c["context"] is None else c["context"]
    g = {}
    dy2 = dy.reshape(-1, dy.shape[-1])
    g["W_o"] = dy2.T @ c["cm"].reshape(-1, dy.shape[-1])
    g["b_o"] = dy2.sum(axis=0)
    dctx = _split(dy @ params["W_o"], c["num_heads"])
    dqh, dkh, dvh = _sdp_backward(dctx, c["qh"], c["kh"], c["vh"], c["weights"], c["scale"])
    dx = np.zeros_like(x, dtype=dy.dtype)
    dsrc = dx if c["context"] is None else np.zeros_like(src, dtype=dy.dtype)
    for n, dh, inp in (("q", dqh, x), ("k", dkh, src), ("v", dvh, src)):
        d = _merge(dh)
        d2 = d.reshape(-1, d.shape[-1])
        g[f"W_{n}"] = d2.T @ inp.reshape(-1, inp.shape[-1])
        g[f"b_{n}"] = d2.sum(axis=0)
        if n == "q":
            dx += d @ params["W_q"]
        else:
            dsrc += d @ params[f"W_{n}"]
    grads = {k: g[k] for k in MHA_KEYS}
    return dx, (None if c["context"] is None else dsrc), grads


# --------------------------------------------------------------------------------------
# attention pooling over a sequence
# --------------------------------------------------------------------------------------


def pool_init(rng: np.random.Generator, feature_size: int, attn_size: int | None = None,
              dtype=np.float32) -> dict[str, np.ndarray]:
    """weight (A, F), bias (A,) ~ U(+-1/sqrt(F)) (nn.Linear), v (A,) ~ U(+-1/sqrt(A)); A = F by default."""
    a = feature_size if attn_size is None else attn_size
    b = 1 / np.sqrt(feature_size)
    return {"weight": _uniform(rng, b, (a, feature_size), dtype), "bias": _uniform(rng, b, (a,), dtype),
            "v": _uniform(rng, 1 / np.sqrt(a), (a,), dtype)}


def pool_forward(params, h, mask=None):
    """pooled (B, F) = sum_t a_t h_t, a = softmax_t(v^T tanh(W h_t + b)) over unmasked steps;
    cache["weights"] (B, T). A sequence with no real step pools to zeros."""
    u = np.tanh(h @ params["weight"].T + params["bias"])  # (B, T, A)
    e = u @ params["v"]  # (B, T)
    keep = None if mask is None else np.asarray(mask) != 0
    w = masked_softmax(e, keep)
    pooled = np.einsum("bt,btf->bf", w, h)
    return pooled, {"h": h, "u": u, "weights": w}


def pool_backward(params, dpooled, cache):
    """Returns dh (B, T, F) (0 at masked steps), grads."""
    h, u, w = cache["h"], cache["u"], cache["weights"]
    dw = np.einsum("btf,bf->bt", h, dpooled)
    de = masked_softmax_backward(dw, w)
    dpre = de[:, :, None] * params["v"] * (1 - u * u)  # (B, T, A)
    d2 = dpre.reshape(-1, dpre.shape[-1])
    grads = {"weight": d2.T @ h.reshape(-1, h.shape[-1]), "bias": d2.sum(axis=0),
             "v": np.einsum("bt,bta->a", de, u)}
    dh = w[:, :, None] * dpooled[:, None, :] + dpre @ params["weight"]
    return dh, grads


# --------------------------------------------------------------------------------------
# graph forms (rnnlab.engine.lowering): the same arithmetic in graph ops. `p` maps the layer's
# parameter names to the model's; keep is a bool key mask (B, Tk) name or None.
# --------------------------------------------------------------------------------------


def _lower_single_query(g, scores, memory, keep):
    """Weights (B, Tk) and context (B, Dv) of one query's scores (B, 1, Tk) over memory (B, Tk, Dv)."""
    keep3 = None if keep is None else g.op("Unsqueeze", [keep, g.const(lowering.axes(1))])
    w = lowering.masked_softmax(g, scores, keep3)
    flat = g.const(np.array([0, -1], dtype=np.int64))
    ctx = g.op("Reshape", [g.op("MatMul", [w, memory]), flat])
    return ctx, g.op("Reshape", [w, flat])


def luong_lower(g, p: dict[str, str], query: str, memory: str, keep: str | None):
    """luong_forward for one query (B, Dq) over memory (B, Tk, Dk) (values = the keys): (context, weights)."""
    qw = g.op("MatMul", [query, g.param(p["W"])]) if "W" in p else query
    scores = g.op("MatMul", [g.op("Unsqueeze", [qw, g.const(lowering.axes(1))]),
                             g.op("Transpose", [memory], perm=[0, 2, 1])])  # (B, 1, Tk)
    return _lower_single_query(g, scores, memory, keep)


def additive_lower(g, p: dict[str, str], query: str, memory: str, keep: str | None):
    """additive_forward for one query (B, Dq) over memory (B, Tk, Dk) (values = the keys): (context, weights)."""
    qp = g.op("MatMul", [query, lowering.transposed(g, p["W_q"])])  # (B, A)
    kp = g.op("MatMul", [memory, lowering.transposed(g, p["W_k"])])  # (B, Tk, A)
    pre = g.op("Add", [g.op("Unsqueeze", [qp, g.const(lowering.axes(1))]), kp])
    if "bias" in p:
        pre = g.op("Add", [pre, g.param(p["bias"])])
    scores = g.op("MatMul", [g.op("Tanh", [pre]), g.param(p["v"])])  # (B, Tk)
    return _lower_single_query(g, g.op("Unsqueeze", [scores, g.const(lowering.axes(1))]), memory, keep)


def multihead_lower(g, p: dict[str, str], x: str, keep: str | None, causal: bool, num_heads: int, d_model: int):
    """multihead_forward (self-attention) on x (B, T, D): y (B, T, D)."""
    d = d_model // num_heads

    def proj(n, inp):
        return g.op("Add", [g.op("MatMul", [inp, lowering.transposed(g, p[f"W_{n}"])]), g.param(p[f"b_{n}"])])

    def split(a):  # (B, T, D) -> (B, h, T, D/h)
        return g.op("Transpose", [g.op("Reshape", [a, g.const(np.array([0, 0, num_heads, d], dtype=np.int64))])],
                    perm=[0, 2, 1, 3])

    qh, kh, vh = (split(proj(n, x)) for n in "qkv")
    scores = g.op("Mul", [g.op("MatMul", [qh, g.op("Transpose", [kh], perm=[0, 1, 3, 2])]),
                          g.const(np.array(1.0 / math.sqrt(d)))])
    allowed = None if keep is None else g.op("Unsqueeze", [keep, g.const(lowering.axes(1, 2))])  # (B, 1, 1, T)
    if causal:  # key j visible from query i when j <= i, for any T
        T = g.op("Gather", [g.op("Shape", [x]), g.const(np.array(1, dtype=np.int64))], axis=0)
        pos = g.op("Range", [g.const(np.array(0, dtype=np.int64)), T, g.const(np.array(1, dtype=np.int64))])
        tri = g.op("LessOrEqual", [g.op("Unsqueeze", [pos, g.const(lowering.axes(0))]),
                                   g.op("Unsqueeze", [pos, g.const(lowering.axes(1))])])  # (T, T) [i, j]: j <= i
        allowed = tri if allowed is None else g.op("And", [allowed, tri])
    w = lowering.masked_softmax(g, scores, allowed)
    ctx = g.op("Transpose", [g.op("MatMul", [w, vh])], perm=[0, 2, 1, 3])
    merged = g.op("Reshape", [ctx, g.const(np.array([0, 0, d_model], dtype=np.int64))])
    return proj("o", merged)


def pool_lower(g, p: dict[str, str], h: str, keep: str | None) -> str:
    """pool_forward on h (B, T, F): the pooled features (B, F)."""
    u = g.op("Tanh", [g.op("Add", [g.op("MatMul", [h, lowering.transposed(g, p["weight"])]), g.param(p["bias"])])])
    w = lowering.masked_softmax(g, g.op("MatMul", [u, g.param(p["v"])]), keep)  # (B, T)
    pooled = g.op("MatMul", [g.op("Unsqueeze", [w, g.const(lowering.axes(1))]), h])  # (B, 1, F)
    return g.op("Reshape", [pooled, g.const(np.array([0, -1], dtype=np.int64))])
