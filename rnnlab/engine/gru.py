"""GRU layer (PyTorch's `torch.nn.GRU`, one layer, one direction) with hand-written BPTT.

Shapes, names and gate order
----------------------------
x (B, T, D) batch-first, hidden size H, one state: h (B, H).
Parameters use PyTorch's names (suffix `_l0` in `torch.nn.GRU`), gates stacked in the
order r, z, n along the first axis:
``weight_ih`` (3H, D), ``weight_hh`` (3H, H), ``bias_ih`` (3H,), ``bias_hh`` (3H,).

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))      # b_hn inside the reset product
    h' = (1 - z) * n + z * h

Contract shared by the recurrent modules (rnn, gru, lstm)
---------------------------------------------------------
``forward(params, x, state0=None, mask=None, reverse=False)`` -> ``(hs, (hT,)), cache``

* x is cast to the parameters' dtype; everything stays in that dtype.
* state0: None (zeros) or ``(h0,)`` with h0 (B, H).
* mask: None or (B, T) of 0/1 (1 = real step). At a padded step the state is carried
  unchanged (h_t = h_{t-1}) and hs[:, t] = 0, so with post-padding hT is the state at the
  last real step and with pre-padding the state stays h0 until the real steps start.
  Padded inputs must be finite (they are multiplied by zero, not skipped).
* reverse=True runs t = T-1 ... 0 (the backward half of a bidirectional layer); hs stays
  aligned with the input positions and hT is the state after reading position 0.
* hs (B, T, H) is a read-only, non-contiguous view (time-major storage, transposed); it
  aliases the cache, so copy it before modifying. hT is a fresh (B, H) array.

``backward(params, dhs, dstateT, cache, dh_trace=None)`` -> ``dx, (dh0,), grads``

* dhs: (B, T, H) or None (only the final state is used); dstateT: ``(dhT,)`` with dhT an
  array or None. Gradients in dhs at padded positions are ignored (hs is constant 0 there).
* dx (B, T, D) (a transposed view of a time-major array), dh0 (B, H), grads: dict with the
  same keys as params. Inputs, upstream gradients and the cache are never modified.
* dh_trace: None, or a (T, B, H) array that backward fills with the total gradient
  dL/dh_t of the state after step t (from dhs and through the later steps), indexed by
  input position t (also with reverse=True). At a padded step h_t is the carried state.
  It changes nothing else; without it the loop pays one ``if`` per step.

Cache (a plain dict; nothing is kept between calls)
--------------------------------------------------
Gate activations for monitoring, each a read-only (B, T, H) view indexed by input position
(values at padded steps are computed but unused): ``"r"`` reset gate, ``"z"`` update gate,
``"n"`` candidate state; ``"hs"`` the output and ``"states"`` (T+1, B, H) the carried
states in ``lstm._slots``' layout (forward S[0] = h0, S[t+1] = h_t; reverse S[T] = h0,
S[t] = h_t). Internals, feature-major: ``"gates"`` (T, 4H, B) rows [r | z | -2 ghn | n]
with ghn = W_hn h_{t-1} + b_hn (scaled: see the notes below), ``"hx"`` (T+1, H+1, B) the states with a row of ones,
``"x"`` (D+1, T, B) the input with a row of ones, ``"mask"`` (T, 1, B) or None, ``"pad"``,
``"reverse"``.

Implementation notes (speed)
----------------------------
The recurrence runs feature-major, as in lstm.py: a state is (H, B) and a step's product
is W_hh (3H, H+1) @ [h; 1] (b_hn rides on the ones row), the operand layout in which
OpenBLAS with two threads runs these skinny GEMMs 1.4-1.9x faster than (B, H) @ (H, 3H).
The r and z rows are negated and the n rows scaled by -2 once per call, so that
sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 / (1 + exp(-2a)) - 1 are exp and three
cheap calls on the products as computed (float32 exp costs half of np.tanh). The forward
pass projects a chunk's inputs with one GEMM over its (steps x batch) columns (biases
ride on the ones row of x); BPTT computes a chunk's gate-derivative factors with a few
vectorised calls, runs the recurrence (seven calls per step), then folds the chunk into
the weight gradients and dx with GEMMs. Each call takes its buffers from one allocation
(``rnn._carve``: fresh memory is expensive).
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.lstm import _prepare_mask, _slots
from rnnlab.engine.rnn import (
    PARAM_NAMES,
    _bptt_chunks,
    _carve,
    _check_trace,
    _chunk_steps,
    _initial_state,
    _readonly,
    _time_major_view,
    _upstream,
)
from rnnlab.engine.rnn import init_params as _init_params

__all__ = ["NUM_STATES", "PARAM_NAMES", "init_params", "forward", "backward"]

NUM_STATES = 1  # (h,)


def init_params(
    rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32
) -> dict[str, np.ndarray]:
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H)); rows stacked r, z, n."""
    return _init_params(rng, input_size, hidden_size, dtype, gates=3)


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT,)), cache`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    b_ih, b_hh = params["bias_ih"], params["bias_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    H2, H3 = 2 * H, 3 * H
    xt = _time_major_view(x, D)
    T, B, _ = xt.shape
    h0 = _initial_state(state0, B, H, dtype)
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, s0, sT = _slots(T, reverse)
    K = _chunk_steps(T, B, H)
    shapes = [(T, 4 * H, B), (T + 1, H + 1, B), (D + 1, T, B), (H3 * K * B,), (H3, D + 1), (H3, H + 1), (H, B)]
    if m is not None:
        shapes.append((T, H, B))
    bufs = _carve(dtype, *shapes)
    G, HX, Xa, xp_flat, WihS, WhhS, tmp = bufs[:7]
    hs_buf = bufs[7] if m is not None else None

    np.copyto(Xa[:D], xt.transpose(2, 0, 1), casting="unsafe")
    Xa[D] = 1
    # Per call: r, z rows scaled by -1 and n rows by -2 (one exp then gives the sigmoids
    # and tanh(a) = 2 / (1 + exp(-2a)) - 1); the input weights carry the folded biases as a
    # last column [b_ir + b_hr, b_iz + b_hz, b_in], the recurrent ones [0, 0, b_hn] (b_hn
    # stays inside r * (...)).
    scale = np.full((H3, 1), -1, dtype=dtype)
    scale[H2:] = -2
    np.multiply(W_ih, scale, out=WihS[:, :D])
    np.copyto(WihS[:, D], b_ih)
    WihS[:H2, D] += b_hh[:H2]
    WihS[:, D] *= scale[:, 0]
    np.multiply(W_hh, scale, out=WhhS[:, :H])
    WhhS[:H2, H] = 0
    np.multiply(b_hh[H2:], scale[H2:, 0], out=WhhS[H2:, H])

    HX[:, H] = 1
    if h0 is None:
        HX[s0, :H] = 0
    else:
        np.copyto(HX[s0, :H], h0.T, casting="unsafe")
    off_prev = 1 if reverse else 0  # step t reads HX[t + off_prev], writes HX[t + off_out]
    off_out = 0 if reverse else 1
    one, two = dtype.type(1), dtype.type(2)
    skip = h0 is None  # first step from a zero state: the recurrent product is its bias column
    with np.errstate(over="ignore"):  # exp(-a) = inf gives sigmoid 0, as it should
        for t0, t1, steps in _bptt_chunks(T, K, not reverse):  # chunks in processing order
            kk = t1 - t0
            xpc = xp_flat[: H3 * kk * B].reshape(H3, kk, B)
            np.dot(WihS, Xa[:, t0:t1].reshape(D + 1, kk * B), out=xpc.reshape(H3, kk * B))
            for t in steps:
                xp = xpc[:, t - t0]
                g = G[t]
                rz, r, z, gn, n = g[:H2], g[:H], g[H:H2], g[H2:H3], g[H3:]
                hp = HX[t + off_prev]
                ho = HX[t + off_out, :H]
                if skip:
                    skip = False
                    np.copyto(g[:H3], WhhS[:, H:])
                else:
                    np.dot(WhhS, hp, out=g[:H3])
                np.add(rz, xp[:H2], out=rz)
                np.exp(rz, out=rz)
                np.add(rz, one, out=rz)
                np.divide(one, rz, out=rz)
                np.multiply(gn, r, out=n)
                np.add(n, xp[H2:], out=n)  # -2 a_n
                np.exp(n, out=n)
                np.add(n, one, out=n)
                np.divide(two, n, out=n)
                np.subtract(n, one, out=n)  # tanh(a_n)
                np.subtract(hp[:H], n, out=tmp)  # h' = n + z * (h - n)
                np.multiply(tmp, z, out=tmp)
                np.add(tmp, n, out=ho)
                if pad is not None:
                    np.copyto(ho, hp[:H], where=pad[t])

    Hs = HX[:, :H]
    hT = Hs[sT].T.copy()
    hs_fm = Hs[out] if m is None else np.multiply(Hs[out], m, out=hs_buf)  # (T, H, B)
    hs = _readonly(hs_fm.transpose(2, 0, 1))
    cache = {
        "x": Xa,
        "hx": HX,
        "states": _readonly(Hs.transpose(0, 2, 1)),
        "hs": hs,
        "gates": G,
        "r": _readonly(G[:, :H].transpose(2, 0, 1)),
        "z": _readonly(G[:, H:H2].transpose(2, 0, 1)),
        "n": _readonly(G[:, H3:].transpose(2, 0, 1)),
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
    }
    return (hs, (hT,)), cache


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    H2, H3, H4 = 2 * H, 3 * H, 4 * H
    Xa, HX, G = cache["x"], cache["hx"], cache["gates"]
    T, _, B = G.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT = _upstream(dhs, dstateT, B, T, H, dtype)  # dhs: a (T, B, H) view
    trace = _check_trace(dh_trace, T, B, H)
    off_prev = 1 if reverse else 0
    one = dtype.type(1)

    # With g = dL/dh_t (total) and c = dL/dh_{t-1} (the carry to the earlier step):
    #   da_z = g * z(1-z)(h_prev - n)        da_n = g * (1-z)(1-n^2)
    #   dghn = da_n * r                      da_r = da_n * r(1-r) ghn
    #   c    = g * z + [W_hn; W_hr; W_hz]^T [dghn; da_r; da_z]
    # Per chunk: Fr = r(1-r) ghn, F2 = [z(1-z)(h-n), (1-z)(1-n^2)], and DG (4H, k, B) rows
    # [dghn | da_r | da_z | da_n]: rows 0:3H are the hidden side (W_hh rows n, r, z), rows
    # H:4H the input side in PyTorch's r, z, n order.
    K = _chunk_steps(T, B, H)
    shapes = [(K, H, B), (K, 2, H, B), (K, H, B), (H4 * K * B,), (H, H3), (H, B), (H, B), (H, B)]
    shapes += [(H3, D + 1), (H3, H), (H,), (H3, D + 1), (H3, H), (H,), (H * K * B,), (K * B,)]
    if m is not None:
        shapes.append((K, H, B))
    if dhs is not None:
        shapes.append((K, H, B))
    bufs = _carve(dtype, *shapes)
    Fr, F2, omz, dg_flat, W_hidT, gh, g_buf, c = bufs[:8]
    acc_ih, acc_hh, acc_bhn, tmp_ih, tmp_hh, tmp_bhn, hc_flat, ones = bufs[8:16]
    zc_buf = bufs[16] if m is not None else None  # z with 1 at padded steps
    dh_buf = bufs[-1] if dhs is not None else None  # the chunk's dhs, feature-major, masked
    np.copyto(W_hidT, W_hh.reshape(3, H, H)[[2, 0, 1]].reshape(H3, H).T)  # rows n, r, z
    if dhT is None:
        c[...] = 0
    else:
        np.copyto(c, dhT.T)
    acc_ih[...] = 0  # last column: bias_ih
    acc_hh[...] = 0  # rows n, r, z
    acc_bhn[...] = 0
    ones[...] = 1
    dX = np.empty((T, B, D), dtype=dtype)

    for t0, t1, steps in _bptt_chunks(T, K, reverse):
        kk = t1 - t0
        nn = kk * B
        Gc = G[t0:t1]
        r, z, gn, n = Gc[:, :H], Gc[:, H:H2], Gc[:, H2:H3], Gc[:, H3:]
        h_prev = HX[t0 + off_prev : t1 + off_prev, :H]
        f_rr, f_z, f_n, oz = Fr[:kk], F2[:kk, 0], F2[:kk, 1], omz[:kk]
        np.subtract(r, one, out=f_rr)
        f_rr *= r
        f_rr *= gn  # gn holds -2 ghn (see forward)
        f_rr *= dtype.type(0.5)
        np.subtract(one, z, out=oz)
        np.subtract(h_prev, n, out=f_z)
        f_z *= z
        f_z *= oz
        np.multiply(n, n, out=f_n)
        np.subtract(one, f_n, out=f_n)
        f_n *= oz
        if m is not None:
            F2[:kk] *= m[t0:t1, None]  # padded steps: no gradient into the gates ...
            zc = zc_buf[:kk]
            np.copyto(zc, z)
            np.copyto(zc, one, where=pad[t0:t1])  # ... and the state passes straight through
        else:
            zc = z
        if dhs is not None:
            dsrc = dh_buf[:kk]
            if m is None:
                np.copyto(dsrc, dhs[t0:t1].transpose(0, 2, 1))
            else:
                np.multiply(dhs[t0:t1].transpose(0, 2, 1), m[t0:t1], out=dsrc)
        DG = dg_flat[: H4 * nn].reshape(H4, kk, B)
        for t in steps:
            k = t - t0
            if dhs is not None:
                np.add(c, dsrc[k], out=g_buf)
                g = g_buf
            else:
                g = c
            if trace is not None:
                np.copyto(trace[t], g.T, casting="same_kind")  # total dL/dh_t
            dgk = DG[:, k]
            dg = dgk.reshape(4, H, B)
            np.multiply(g, F2[k], out=dg[2:])  # da_z, da_n
            np.multiply(dg[3], r[k], out=dg[0])  # dghn
            np.multiply(dg[3], f_rr[k], out=dg[1])  # da_r
            np.multiply(g, zc[k], out=gh)
            np.dot(W_hidT, dgk[:H3], out=c)
            np.add(c, gh, out=c)
        # this chunk's share of the weight gradients and its dx rows
        dgc = DG.reshape(H4, nn)
        np.dot(dgc[H:], Xa[:, t0:t1].reshape(D + 1, nn).T, out=tmp_ih)
        acc_ih += tmp_ih
        hc = hc_flat[: H * nn].reshape(H, kk, B)
        np.copyto(hc, h_prev.transpose(1, 0, 2))
        np.dot(dgc[:H3], hc.reshape(H, nn).T, out=tmp_hh)
        acc_hh += tmp_hh
        np.dot(dgc[:H], ones[:nn], out=tmp_bhn)
        acc_bhn += tmp_bhn
        np.dot(dgc[H:].T, W_ih, out=dX[t0:t1].reshape(nn, D))

    bias_ih = acc_ih[:, D]
    bias_hh = np.empty(H3, dtype=dtype)
    bias_hh[:H2] = bias_ih[:H2]  # b_hr, b_hz enter exactly like b_ir, b_iz
    bias_hh[H2:] = acc_bhn
    grads = {
        "weight_ih": acc_ih[:, :D],
        "weight_hh": acc_hh.reshape(3, H, H)[[1, 2, 0]].reshape(H3, H),
        "bias_ih": bias_ih,
        "bias_hh": bias_hh,
    }
    return dX.transpose(1, 0, 2), (c.T.copy(),), grads
