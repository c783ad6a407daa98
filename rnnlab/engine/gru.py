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
``"n"`` candidate state; and ``"hs"`` the output. Internals: ``"gates"`` (T, 3, B, H)
time-major [r, z, n], ``"ghn"`` (T, B, H) = W_hn h_{t-1} + b_hn, ``"states"`` (T+1, B, H)
(see ``rnn._slots``), ``"x"`` (T, B, D+1) the input with a column of ones (bias_ih rides
in the GEMMs), ``"mask"``, ``"pad"``, ``"reverse"``, ``"h0_zero"``.

Implementation notes (speed)
----------------------------
Every per-step operand is a contiguous (B, H) block: gates live gate-major per step and
the recurrent product is one batched ``matmul`` (B, H) @ (3, H, H). The r and z weight
rows are negated once per call so that sigmoid(a) = 1 / (1 + exp(-a)) is exp, +1,
reciprocal on the pre-activation as computed. Both passes walk over chunks of steps that
reuse the same small buffers, and each call takes its buffers from one allocation
(``rnn._carve``: fresh memory is expensive, first-touch page faults). The forward pass
projects a chunk's inputs with three GEMMs over its (steps x batch) rows (biases ride on
the ones column); BPTT computes a chunk's gate-derivative factors with a few vectorised
calls, runs the recurrence (7 calls per step), then the chunk's weight gradients and dx
rows as GEMMs.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.rnn import (
    PARAM_NAMES,
    _bptt_chunks,
    _carve,
    _check_trace,
    _chunk_steps,
    _initial_state,
    _prepare_mask,
    _readonly,
    _slots,
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
    xt = _time_major_view(x, D)
    T, B, _ = xt.shape
    h0 = _initial_state(state0, B, H, dtype)
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, _, h0_slot, order = _slots(T, reverse)
    K = _chunk_steps(T, B, H)

    shapes = [(T, 3, B, H), (T + 1, B, H), (T, B, H), (T, B, D + 1), (3, K, B, H)]
    shapes += [(3, D + 1, H), (H, 3 * H), (3, H), (B, H), (B, 3 * H), (B, H)]
    if m is not None:
        shapes.append((T, B, H))
    bufs = _carve(dtype, *shapes)
    gates, S, ghn, Xa, xp_buf = bufs[:5]  # gates: r, z, n; xp_buf: one chunk's projections
    WihT, WhhT, bias, b_hn, gh, tmp = bufs[5:11]
    hs_buf = bufs[11] if m is not None else None

    # input with a column of ones: the biases ride in the input-projection GEMMs
    np.copyto(Xa[:, :, :D], xt, casting="unsafe")
    Xa[:, :, D] = 1
    # Weights per call: r, z rows negated; input weights with the folded biases as a last
    # row [-(b_ir + b_hr), -(b_iz + b_hz), b_in]; b_hn stays apart (inside r * (...)).
    sign = np.array([-1, -1, 1], dtype=dtype)[:, None, None]
    np.multiply(W_ih.reshape(3, H, D).transpose(0, 2, 1), sign, out=WihT[:, :D])
    np.copyto(bias, b_ih.reshape(3, H))
    bias[:2] += b_hh[: 2 * H].reshape(2, H)
    np.multiply(bias, sign[:, :, 0], out=WihT[:, D])
    np.multiply(W_hh.reshape(3, H, H).transpose(0, 2, 1), sign, out=WhhT.reshape(H, 3, H).transpose(1, 0, 2))
    b_hn[...] = b_hh[2 * H :]  # tiled: a broadcast add is ~2x slower

    if h0 is None:
        S[h0_slot] = 0
    else:
        np.copyto(S[h0_slot], h0, casting="unsafe")
    gh_rz, gh_n = gh.reshape(B, 3, H)[:, :2].transpose(1, 0, 2), gh[:, 2 * H :]
    off_prev = 1 if reverse else 0  # step t reads S[t + off_prev], writes S[t + off_out]
    off_out = 0 if reverse else 1
    skip = h0 is None  # first step from a zero state: no recurrent GEMM
    with np.errstate(over="ignore"):  # exp(-a) = inf gives sigmoid 0, as it should
        for t0, t1, steps in _bptt_chunks(T, K, not reverse):  # chunks in processing order
            kk = t1 - t0
            xpc = xp_buf[:, :kk]
            np.matmul(Xa[t0:t1].reshape(kk * B, D + 1), WihT, out=xpc.reshape(3, kk * B, H))
            for t in steps:
                xp = xpc[:, t - t0]
                g = gates[t]
                rz, r, z, n = g[:2], g[0], g[1], g[2]
                hp = S[t + off_prev]
                ho = S[t + off_out]
                gn = ghn[t]
                if skip:
                    skip = False
                    np.copyto(rz, xp[:2])
                    np.copyto(gn, b_hn)
                else:
                    np.dot(hp, WhhT, out=gh)
                    np.add(gh_rz, xp[:2], out=rz)
                    np.add(gh_n, b_hn, out=gn)
                np.exp(rz, out=rz)
                rz += 1
                np.reciprocal(rz, out=rz)
                np.multiply(gn, r, out=tmp)
                np.add(xp[2], tmp, out=n)
                np.tanh(n, out=n)
                np.subtract(hp, n, out=tmp)  # h' = n + z * (h - n)
                tmp *= z
                np.add(tmp, n, out=ho)
                if pad is not None:
                    np.copyto(ho, hp, where=pad[t])

    hT = S[order[-1] + off_out].copy()
    hs_tm = S[out] if m is None else np.multiply(S[out], m, out=hs_buf)
    hs = _readonly(hs_tm.transpose(1, 0, 2))
    cache = {
        "x": Xa,
        "states": S,
        "hs": hs,
        "gates": gates,
        "ghn": ghn,
        "r": _readonly(gates[:, 0].transpose(1, 0, 2)),
        "z": _readonly(gates[:, 1].transpose(1, 0, 2)),
        "n": _readonly(gates[:, 2].transpose(1, 0, 2)),
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
        "h0_zero": h0 is None,
    }
    return (hs, (hT,)), cache


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    Xa, S, gates, ghn = cache["x"], cache["states"], cache["gates"], cache["ghn"]
    T, B, _ = Xa.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT = _upstream(dhs, dstateT, B, T, H, dtype)
    trace = _check_trace(dh_trace, T, B, H)
    off_prev = 1 if reverse else 0

    # With G = dL/dh_t (total) and c = dL/dh_{t-1} (the carry to the earlier step):
    #   da_z = G * z(1-z)(h_prev - n)        da_n = G * (1-z)(1-n^2)
    #   dghn = da_n * r                      da_r = da_n * r(1-r) ghn
    #   c    = G * z + [dghn, da_r, da_z] @ [W_hn; W_hr; W_hz]
    # Chunk buffers, gate-major so that each gate's (steps*B, H) block is contiguous:
    #   Fr = r(1-r) ghn, F2 = [z(1-z)(h-n), (1-z)(1-n^2)], DG = [dghn, da_r, da_z, da_n]
    # (DG[0:3] is the hidden side, DG[1:4] the input side in PyTorch's r, z, n order).
    K = _chunk_steps(T, B, H)
    shapes = [(K, B, H), (2, K, B, H), (K, B, H), (K, B, 4 * H), (3 * H, H), (B, H), (B, H)]
    shapes += [(B, H), (3 * H, D + 1), (3 * H, H), (H,), (3 * H, D + 1), (3 * H, H), (H,)]
    shapes += [(1,), (K * B,)]
    if m is not None:
        shapes.append((K, B, H))
    if dhs is not None and m is not None:
        shapes.append((K, B, H))
    bufs = _carve(dtype, *shapes)
    Fr, F2, omz, DG, W_hid, gh, G, c = bufs[:8]
    acc_ih, acc_hh, acc_bhn, tmp_ih, tmp_hh, tmp_bhn, tmp_x, ones = bufs[8:16]
    zc_buf = bufs[16] if m is not None else None  # z with 1 at padded steps
    dh_buf = bufs[-1] if (dhs is not None and m is not None) else None  # masked dhs
    np.copyto(W_hid.reshape(3, H, H), W_hh.reshape(3, H, H)[[2, 0, 1]])  # rows n, r, z
    W_in = W_ih
    H3 = 3 * H
    if dhT is None:
        c[...] = 0
    else:
        np.copyto(c, dhT)
    acc_ih[...] = 0  # last column: bias_ih
    acc_hh[...] = 0  # rows n, r, z
    acc_bhn[...] = 0
    ones[...] = 1
    dX = np.empty((T, B, D), dtype=dtype)

    for t0, t1, steps in _bptt_chunks(T, K, reverse):
        kk = t1 - t0
        nn = kk * B
        r, z, n = gates[t0:t1, 0], gates[t0:t1, 1], gates[t0:t1, 2]
        h_prev = S[t0 + off_prev : t1 + off_prev]
        f_rr, f_z, f_n, oz = Fr[:kk], F2[0, :kk], F2[1, :kk], omz[:kk]
        np.subtract(1, r, out=f_rr)
        f_rr *= r
        f_rr *= ghn[t0:t1]
        np.subtract(1, z, out=oz)
        np.subtract(h_prev, n, out=f_z)
        f_z *= z
        f_z *= oz
        np.multiply(n, n, out=f_n)
        np.subtract(1, f_n, out=f_n)
        f_n *= oz
        if m is not None:
            F2[:, :kk] *= m[t0:t1]  # padded steps: no gradient into the gates ...
            zc = zc_buf[:kk]
            np.copyto(zc, z)
            np.copyto(zc, 1, where=pad[t0:t1])  # ... and the state passes straight through
            if dhs is not None:
                np.multiply(dhs[t0:t1], m[t0:t1], out=dh_buf[:kk])
        else:
            zc = z
        dh_src = dh_buf if dh_buf is not None else dhs  # (per step: a (B, H) block)
        dh_off = t0 if dh_buf is not None else 0
        for t in steps:
            k = t - t0
            if dh_src is not None:
                np.add(c, dh_src[t - dh_off], out=G)
                g = G
            else:
                g = c
            if trace is not None:
                np.copyto(trace[t], g, casting="same_kind")  # total dL/dh_t
            dgk = DG[k]
            dg = dgk.reshape(B, 4, H).transpose(1, 0, 2)
            np.multiply(g, F2[:, k], out=dg[2:])  # da_z, da_n
            np.multiply(dg[3], r[k], out=dg[0])  # dghn
            np.multiply(dg[3], f_rr[k], out=dg[1])  # da_r
            np.multiply(g, zc[k], out=gh)
            np.dot(dgk[:, :H3], W_hid, out=c)
            c += gh
        # this chunk's share of the weight gradients and its dx rows
        dgc = DG[:kk].reshape(nn, 4 * H)
        dg_in = dgc[:, H:]
        dg_hid = dgc[:, :H3]
        np.dot(dg_in.T, Xa[t0:t1].reshape(nn, D + 1), out=tmp_ih)
        acc_ih += tmp_ih
        np.dot(dg_hid.T, h_prev.reshape(nn, H), out=tmp_hh)
        acc_hh += tmp_hh
        np.dot(ones[:nn], dgc[:, :H], out=tmp_bhn)
        acc_bhn += tmp_bhn
        np.dot(dg_in, W_in, out=dX[t0:t1].reshape(nn, D))

    bias_ih = acc_ih[:, D]
    bias_hh = np.empty(3 * H, dtype=dtype)
    bias_hh[: 2 * H] = bias_ih[: 2 * H]  # b_hr, b_hz enter exactly like b_ir, b_iz
    bias_hh[2 * H :] = acc_bhn
    grads = {
        "weight_ih": acc_ih[:, :D],
        "weight_hh": acc_hh.reshape(3, H, H)[[1, 2, 0]].reshape(3 * H, H),
        "bias_ih": bias_ih,
        "bias_hh": bias_hh,
    }
    return dX.transpose(1, 0, 2), (c.copy(),), grads
