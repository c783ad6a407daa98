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
* reverse=True runs t = T-1 ... 0 (the backward half of a bidirectional layer); hs stays
  aligned with the input positions and hT is the state after reading position 0.
* hs (B, T, H) is a read-only, non-contiguous view (time-major storage, transposed); it
  aliases the cache, so copy it before modifying. hT is a fresh (B, H) array.

``backward(params, dhs, dstateT, cache)`` -> ``dx, (dh0,), grads``

* dhs: (B, T, H) or None (only the final state is used); dstateT: ``(dhT,)`` with dhT an
  array or None. Gradients in dhs at padded positions are ignored (hs is constant 0 there).
* dx (B, T, D) (a transposed view of a time-major array), dh0 (B, H), grads: dict with the
  same keys as params. Inputs and upstream gradients are never modified.

Cache (a plain dict; nothing is kept between calls)
--------------------------------------------------
Gate activations for monitoring, all (B, T, H) read-only views indexed by input position
(values at padded steps are computed but unused): ``"r"`` reset gate, ``"z"`` update gate,
``"n"`` candidate state; ``"hs"`` the output. Internals: ``"gates"`` (T, B, 3H) time-major
[r | z | n], ``"ghn"`` (T, B, H) = W_hn h_{t-1} + b_hn, ``"hmn"`` (T, B, H) = h_{t-1} - n_t,
``"states"`` (T+1, B, H), ``"x"`` (T, B, D), ``"mask"``, ``"reverse"``, ``"h0_zero"``.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.rnn import (
    PARAM_NAMES,
    _initial_state,
    _prepare_mask,
    _readonly,
    _slots,
    _time_major_input,
    _upstream,
)
from rnnlab.engine.rnn import init_params as _rnn_init

__all__ = ["NUM_STATES", "PARAM_NAMES", "init_params", "forward", "backward"]

NUM_STATES = 1  # (h,)


def init_params(
    rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32
) -> dict[str, np.ndarray]:
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H)); rows stacked r, z, n."""
    return _rnn_init(rng, input_size, hidden_size, dtype, gates=3)


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT,)), cache`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    b_ih, b_hh = params["bias_ih"], params["bias_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    H2, H3 = 2 * H, 3 * H
    X = _time_major_input(x, D, dtype)
    T, B, _ = X.shape
    h0 = _initial_state(state0, B, H, dtype)
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, h0_slot, order = _slots(T, reverse)

    # r and z rows negated once, so exp() of the pre-activation gives exp(-a) directly and
    # sigmoid(a) = 1 / (1 + exp(-a)) costs three cheap calls.
    sign = np.ones(H3, dtype=dtype)
    sign[:H2] = -1
    W_ihT = np.empty((D, H3), dtype=dtype)
    np.multiply(W_ih.T, sign, out=W_ihT)
    W_hhT = np.empty((H, H3), dtype=dtype)
    np.multiply(W_hh.T, sign, out=W_hhT)
    bias = b_ih.copy()
    bias[:H2] += b_hh[:H2]
    bias *= sign
    b_hn = b_hh[H2:]

    XP = np.dot(X.reshape(T * B, D), W_ihT).reshape(T, B, H3)
    XP += bias

    S = np.empty((T + 1, B, H), dtype=dtype)
    if h0 is None:
        S[h0_slot] = 0
    else:
        np.copyto(S[h0_slot], h0, casting="unsafe")
    gates = np.empty((T, B, H3), dtype=dtype)
    ghn = np.empty((T, B, H), dtype=dtype)
    hmn = np.empty((T, B, H), dtype=dtype)
    GH = np.empty((B, H3), dtype=dtype)
    GHrz, GHn = GH[:, :H2], GH[:, H2:]
    off_prev = 1 if reverse else 0  # step t reads S[t + off_prev], writes S[t + off_out]
    off_out = 0 if reverse else 1
    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(-a) -> inf gives sigmoid 0, as it should
        for t in order:
            g = gates[t]
            rz, r, z, n = g[:, :H2], g[:, :H], g[:, H:H2], g[:, H2:]
            xp = XP[t]
            hp = S[t + off_prev]
            ho = S[t + off_out]
            gn = ghn[t]
            if skip:
                skip = False
                np.exp(xp[:, :H2], out=rz)
                gn[...] = b_hn
            else:
                np.dot(hp, W_hhT, out=GH)
                np.add(GHrz, xp[:, :H2], out=rz)
                np.exp(rz, out=rz)
                np.add(GHn, b_hn, out=gn)
            rz += 1
            np.reciprocal(rz, out=rz)
            np.multiply(gn, r, out=n)
            n += xp[:, H2:]
            np.tanh(n, out=n)
            d = hmn[t]
            np.subtract(hp, n, out=d)
            np.multiply(d, z, out=ho)
            ho += n
            if pad is not None:
                np.copyto(ho, hp, where=pad[t])

    hT = S[order[-1] + off_out].copy() if T else S[h0_slot].copy()
    hs_tm = S[out] if m is None else S[out] * m
    hs = _readonly(hs_tm.transpose(1, 0, 2))
    gv = gates.transpose(1, 0, 2)
    cache = {
        "x": X,
        "states": S,
        "hs": hs,
        "gates": gates,
        "r": _readonly(gv[:, :, :H]),
        "z": _readonly(gv[:, :, H:H2]),
        "n": _readonly(gv[:, :, H2:]),
        "ghn": ghn,
        "hmn": hmn,
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
        "h0_zero": h0 is None,
    }
    return (hs, (hT,)), cache


def backward(params, dhs, dstateT, cache):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    H2, H3, H4 = 2 * H, 3 * H, 4 * H
    X, S = cache["x"], cache["states"]
    T, B, _ = X.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT = _upstream(dhs, dstateT, B, T, H, dtype)
    out, prev, h0_slot, order = _slots(T, reverse)
    gates, ghn, hmn = cache["gates"], cache["ghn"], cache["hmn"]
    r, z, n = gates[..., :H], gates[..., H:H2], gates[..., H2:]

    # Per-step factors, all at once. With G = dL/dh_t (total):
    #   da_z = G * (h_prev - n) z (1 - z)          da_n = G * (1 - z)(1 - n^2)
    #   dghn = da_n * r                            da_r = da_n * ghn r (1 - r)
    #   dh_prev = G * z + [da_r, da_z, dghn] @ W_hh
    # F (T, B, 4, H) = [r, Fr, Fz, Fn] so that two broadcast multiplies per step give
    # DG (T, B, 4, H) = [dghn, da_r, da_z, da_n]: the input side is DG[..., 1:4] (order
    # r, z, n) and the hidden side DG[..., 0:3] (order n, r, z).
    F = np.empty((T, B, 4, H), dtype=dtype)
    Fr, Fz, Fn = F[:, :, 1], F[:, :, 2], F[:, :, 3]
    F[:, :, 0] = r
    omz = np.subtract(1, z)
    np.subtract(1, r, out=Fr)
    Fr *= r
    Fr *= ghn
    np.multiply(z, omz, out=Fz)
    Fz *= hmn
    np.multiply(n, n, out=Fn)
    np.subtract(1, Fn, out=Fn)
    Fn *= omz
    if m is None:
        Zc = z  # dh_prev/dh_t through the direct path
    else:
        F[:, :, 2:] *= m[:, :, :, None]
        Zc = np.where(pad, 1, z).astype(dtype, copy=False)  # padded steps carry h
        if dhs is not None:
            dhs = dhs * m  # gradients at padded positions are ignored

    W_perm = np.concatenate([W_hh[H2:], W_hh[:H2]])  # rows n, r, z to match DG[..., 0:3]
    DG = np.empty((T, B, 4, H), dtype=dtype)
    DG2 = DG.reshape(T, B, H4)
    g = np.empty((B, H), dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    gb = g[:, None, :]
    border = order[::-1]
    for i, t in enumerate(border):
        if i == 0:
            if dhT is not None:
                g[...] = dhT
                if dhs is not None:
                    g += dhs[t]
            elif dhs is not None:
                g[...] = dhs[t]
            else:
                g[...] = 0
        else:
            tn = border[i - 1]
            np.multiply(g, Zc[tn], out=tmp)  # direct path, before g is overwritten
            np.dot(DG2[tn, :, :H3], W_perm, out=g)
            g += tmp
            if dhs is not None:
                g += dhs[t]
        dg = DG[t]
        np.multiply(gb, F[t, :, 2:], out=dg[:, 2:])
        np.multiply(dg[:, 3:], F[t, :, :2], out=dg[:, :2])

    # dh0
    if T:
        tn = border[-1]
        dh0 = np.dot(DG2[tn, :, :H3], W_perm)
        np.multiply(g, Zc[tn], out=tmp)
        dh0 += tmp
    else:
        dh0 = np.zeros((B, H), dtype) if dhT is None else dhT.copy()

    TB = T * B
    DGf = DG2.reshape(TB, H4)
    grads = {}
    grads["weight_ih"] = np.dot(DGf[:, H:].T, X.reshape(TB, D))
    if cache["h0_zero"]:
        DGr = (DG2[:-1] if reverse else DG2[1:]).reshape(-1, H4)
        Wp = np.dot(DGr[:, :H3].T, S[1:T].reshape(-1, H))
    else:
        Wp = np.dot(DGf[:, :H3].T, S[prev].reshape(TB, H))
    grads["weight_hh"] = np.concatenate([Wp[H:], Wp[:H]])
    sums = DGf.sum(axis=0)
    grads["bias_ih"] = sums[H:].copy()
    grads["bias_hh"] = np.concatenate([sums[H:H3], sums[:H]])
    dX = np.dot(DGf[:, H:], W_ih).reshape(T, B, D)
    return dX.transpose(1, 0, 2), (dh0,), grads
