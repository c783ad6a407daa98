"""LSTM layer (PyTorch's `torch.nn.LSTM`, one layer, one direction) with hand-written BPTT.

Shapes and names
----------------
x (B, T, D) batch-first, hidden size H, two states: h (B, H) and c (B, H).
Parameters use PyTorch's names (suffix `_l0` in `torch.nn.LSTM`) and gate order
**i, f, g, o** (input, forget, cell candidate, output) along the 4H rows:
``weight_ih`` (4H, D), ``weight_hh`` (4H, H), ``bias_ih`` (4H,), ``bias_hh`` (4H,).

    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Contract (shared with rnn.py and gru.py)
----------------------------------------
``forward(params, x, state0=None, mask=None, reverse=False)`` -> ``(hs, (hT, cT)), cache``

* x is cast to the parameters' dtype; everything stays in that dtype.
* state0: None (zeros) or ``(h0, c0)``, each (B, H) (an entry may be None for zeros).
* mask: None or (B, T) of 0/1 (1 = real step). At a padded step the state is carried
  unchanged (h_t = h_{t-1}, c_t = c_{t-1}) and hs[:, t] = 0, so with post-padding the
  final state is the state at the last real step and with pre-padding it stays at
  (h0, c0) until the real steps start.
* reverse=True runs t = T-1 ... 0 (the backward half of a bidirectional layer); hs stays
  aligned with the input positions and (hT, cT) is the state after reading position 0.
* hs (B, T, H) is a read-only, non-contiguous view (time-major storage, transposed); it
  aliases the cache, so copy it before modifying. hT and cT are fresh (B, H) arrays.

``backward(params, dhs, dstateT, cache)`` -> ``dx, (dh0, dc0), grads``

* dhs: (B, T, H) or None (only the final state is used); dstateT: ``(dhT, dcT)``, each an
  array or None (or dstateT None). Gradients in dhs at padded positions are ignored.
* dx (B, T, D) (a transposed view of a time-major array), dh0 and dc0 (B, H), grads: a
  dict with the same keys as params. Inputs and upstream gradients are never modified.

Cache (a plain dict; nothing is kept between calls)
--------------------------------------------------
All time-major arrays are indexed by *input* time position t (also when reverse=True):

* ``"gates"`` (T, B, 4H): gate activations at step t, columns [i | f | g | o] (each H wide,
  after sigmoid/tanh); ``gate_activations(cache)`` splits them into four (T, B, H) views.
* ``"cells"`` (T, B, H): cell state c_t after step t; ``"tanh_cells"`` (T, B, H): tanh(c_t).
* ``"hs"`` the output view (B, T, H); ``"x"`` the time-major input (T, B, D);
  ``"h_states"``, ``"c_states"`` (T+1, B, H) carried states including the initial one
  (slot layout as in rnn.py: forward S[0] = s0, S[t+1] = s_t; reverse S[T] = s0, S[t] = s_t);
  ``"mask"`` (T, B, 1) or None, ``"pad"``, ``"reverse"``, ``"h0_zero"``.

At padded steps the cached gates and tanh_cells are those of an update that was computed
and discarded (the carried cell state is in ``"cells"``).

Implementation notes (speed)
----------------------------
One GEMM projects all time steps' inputs; the loop does one GEMM per step for the
recurrence. The recurrent and input weight rows are pre-scaled (by -1 for the sigmoid gates,
-2 for g), so each step evaluates all four gates with a single exp over the (B, 4H) block:
sigmoid(z) = 1 / (1 + exp(-z)), tanh(z) = 2 sigmoid(2z) - 1. The backward pass prepares the
local derivatives for a few steps at a time (vectorised, cache-sized chunks), so each step
is five or six NumPy calls; weight gradients, bias gradients and dx are single GEMMs after
the loop.
"""

from __future__ import annotations

import numpy as np

NUM_STATES = 2  # (h, c)
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = ("i", "f", "g", "o")

# Steps are processed in chunks of about this many (step, batch) rows: the forward pass
# projects one chunk's inputs just before using it, the backward pass prepares a chunk's
# local derivatives together and folds the chunk into the weight gradients with GEMMs of
# this many rows, so each chunk's working set stays in cache.
_FWD_ROWS = 256
_BWD_ROWS = 512


def _chunks(T: int, B: int, rows: int, backwards: bool):
    """[(a, b), ...] covering 0..T-1 in chunks of about rows / B steps, in visiting order."""
    k = max(1, min(T, rows // max(1, B)))
    spans = [(a, min(a + k, T)) for a in range(0, T, k)]
    return spans[::-1] if backwards else spans


def init_params(
    rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32
) -> dict[str, np.ndarray]:
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H)); rows in gate order i, f, g, o.

    (The forget-gate bias is not special-cased.)
    """
    k = 1.0 / np.sqrt(hidden_size)
    G = 4 * hidden_size
    shapes = {
        "weight_ih": (G, input_size),
        "weight_hh": (G, hidden_size),
        "bias_ih": (G,),
        "bias_hh": (G,),
    }
    return {name: rng.uniform(-k, k, size=shape).astype(dtype) for name, shape in shapes.items()}


def gate_activations(cache) -> dict[str, np.ndarray]:
    """The cached gate activations as four (T, B, H) views keyed "i", "f", "g", "o"."""
    G = cache["gates"]
    return {name: G[k] for k, name in enumerate(GATES)}


# ----------------------------------------------------------------------------------------
# helpers (time-major layout, states, mask)
# ----------------------------------------------------------------------------------------


def _time_major_input(x, D: int, dtype) -> np.ndarray:
    """Contiguous (T, B, D) version of x (B, T, D) in dtype (no copy if it already is one)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    xt = x.transpose(1, 0, 2)
    if xt.dtype == dtype and xt.flags.c_contiguous:
        return xt  # e.g. the hs view of a previous layer
    X = np.empty(xt.shape, dtype=dtype)
    np.copyto(X, xt, casting="unsafe")
    return X


def _state_pair(state0, B: int, H: int):
    """(h0 or None, c0 or None); None means zeros."""
    if state0 is None:
        return None, None
    if not isinstance(state0, (tuple, list)) or len(state0) != 2:
        raise ValueError("state0 must be None or a tuple (h0, c0)")
    out = []
    for name, s in zip(("h0", "c0"), state0, strict=True):
        if s is not None:
            s = np.asarray(s)
            if s.shape != (B, H):
                raise ValueError(f"{name} must have shape ({B}, {H}), got {s.shape}")
        out.append(s)
    return out[0], out[1]


def _prepare_mask(mask, B: int, T: int, dtype):
    """Returns (m (T, B, 1) in dtype, pad (T, B, 1) bool), or (None, None)."""
    if mask is None:
        return None, None
    mask = np.asarray(mask)
    if mask.shape != (B, T):
        raise ValueError(f"mask must have shape ({B}, {T}), got {mask.shape}")
    pad = (mask.T == 0)[:, :, None]
    m = np.logical_not(pad).astype(dtype)
    return m, pad


def _slots(T: int, reverse: bool):
    """Slot layout of a (T+1, B, H) state buffer S (same as rnn.py).

    Forward: S[0] = s0, S[t+1] = s_t.  Reverse: S[T] = s0, S[t] = s_t.  Returns
    (out slice, prev slice, initial slot, processing order); S[out] and S[prev] are
    (T, B, H) blocks in input-time order, step t reads S[t + off_prev] and writes
    S[t + off_out].
    """
    if reverse:
        return slice(0, T), slice(1, T + 1), T, range(T - 1, -1, -1)
    return slice(1, T + 1), slice(0, T), 0, range(T)


def _upstream(dhs, dstateT, B: int, T: int, H: int, dtype):
    """(dhs as a (T, B, H) view or None, dhT or None, dcT or None), validated and cast."""
    if dhs is not None:
        dhs = np.asarray(dhs)
        if dhs.shape != (B, T, H):
            raise ValueError(f"dhs must have shape ({B}, {T}, {H}), got {dhs.shape}")
        dhs = dhs.astype(dtype, copy=False).transpose(1, 0, 2)
    if dstateT is None:
        return dhs, None, None
    if not isinstance(dstateT, (tuple, list)) or len(dstateT) != 2:
        raise ValueError("dstateT must be a tuple (dhT, dcT)")
    out = []
    for name, d in zip(("dhT", "dcT"), dstateT, strict=True):
        if d is not None:
            d = np.asarray(d)
            if d.shape != (B, H):
                raise ValueError(f"{name} must have shape ({B}, {H}), got {d.shape}")
            d = d.astype(dtype, copy=False)
        out.append(d)
    return dhs, out[0], out[1]


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------------------
# forward / backward
# ----------------------------------------------------------------------------------------


def _scaled_weights(params, dtype):
    """Pre-scaled weights (rows times -1 for the sigmoid gates, -2 for g), gate-split.

    Returns W_in (4, D+1, H) (input weights with the summed biases as the last input row)
    and W_rec (4, H, H) so that x_aug @ W_in[k] + h @ W_rec[k] = scale_k * z_k.
    """
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    H4, D = W_ih.shape
    H = H4 // 4
    scale = np.array([-1.0, -1.0, -2.0, -1.0], dtype=dtype)[:, None, None]
    W_in = np.empty((4, D + 1, H), dtype=dtype)
    np.multiply(W_ih.reshape(4, H, D).transpose(0, 2, 1), scale, out=W_in[:, :D])
    b = (params["bias_ih"] + params["bias_hh"]).reshape(4, 1, H)
    np.multiply(b, scale, out=W_in[:, D:])
    W_rec = np.ascontiguousarray((W_hh.reshape(4, H, H) * scale).transpose(0, 2, 1))
    return W_in, W_rec


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT, cT)), cache`` (see module docstring)."""
    W_ih = params["weight_ih"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    B, T, _ = x.shape
    h0, c0 = _state_pair(state0, B, H)
    if h0 is not None and not h0.any():
        h0 = None  # a zero h0 lets the first step skip its recurrent GEMM
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, s0, _ = _slots(T, reverse)
    off_prev = 1 if reverse else 0
    off_out = 0 if reverse else 1

    # One allocation for everything the cache keeps: a single large block is reused by
    # malloc from call to call, several smaller ones tend to be page-faulted in every time.
    nG, nS, nX = 4 * T * B * H, (T + 1) * B * H, T * B * (D + 1)
    arena = np.empty(nG + 3 * nS + nX, dtype=dtype)
    # gates (4, T, B, H), filled chunk by chunk with the input projection (one call, 4 GEMMs
    # over the chunk's rows); the loop adds the recurrent term and applies the
    # nonlinearities in place.
    G = arena[:nG].reshape(4, T, B, H)
    Hs = arena[nG : nG + nS].reshape(T + 1, B, H)
    Cs = arena[nG + nS : nG + 2 * nS].reshape(T + 1, B, H)
    TC = arena[nG + 2 * nS : nG + 3 * nS].reshape(T + 1, B, H)[:T]
    # time-major input with a column of ones (the biases ride along in the projection GEMM)
    Xa = arena[nG + 3 * nS :].reshape(T, B, D + 1)
    np.copyto(Xa[:, :, :D], x.transpose(1, 0, 2), casting="unsafe")
    Xa[:, :, D] = 1
    W_in, W_rec = _scaled_weights(params, dtype)

    if h0 is None:
        Hs[s0] = 0
    else:
        np.copyto(Hs[s0], h0, casting="unsafe")
    if c0 is None:
        Cs[s0] = 0
    else:
        np.copyto(Cs[s0], c0, casting="unsafe")

    G2 = G.reshape(4, T * B, H)
    X2 = Xa.reshape(T * B, D + 1)
    rec = np.empty((4, B, H), dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    one, two, m_two = dtype.type(1), dtype.type(2), dtype.type(-2)

    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives the right limits 0 and -1
        for a, b in _chunks(T, B, _FWD_ROWS, reverse):
            np.matmul(X2[a * B : b * B], W_in, out=G2[:, a * B : b * B])
            for t in range(b - 1, a - 1, -1) if reverse else range(a, b):
                g = G[:, t]
                if skip:
                    skip = False
                else:
                    np.matmul(Hs[t + off_prev], W_rec, out=rec)
                    np.add(g, rec, out=g)
                np.exp(g, out=g)
                np.add(g, one, out=g)
                np.divide(one, g, out=g)  # sigmoid for i, f, o; sigmoid(2z) for g
                gg = g[2]
                np.multiply(gg, two, out=gg)
                np.subtract(gg, one, out=gg)  # tanh(z)
                c = Cs[t + off_out]
                c_prev = Cs[t + off_prev]
                np.multiply(g[1], c_prev, out=c)
                np.multiply(g[0], gg, out=tmp)
                np.add(c, tmp, out=c)
                if pad is not None:
                    np.copyto(c, c_prev, where=pad[t])
                tc = TC[t]
                np.multiply(c, m_two, out=tc)
                np.exp(tc, out=tc)
                np.add(tc, one, out=tc)
                np.divide(two, tc, out=tc)
                np.subtract(tc, one, out=tc)  # tanh(c)
                h = Hs[t + off_out]
                np.multiply(g[3], tc, out=h)
                if pad is not None:
                    np.copyto(h, Hs[t + off_prev], where=pad[t])

    last = (0 if reverse else T) if T else s0
    hT = Hs[last].copy()
    cT = Cs[last].copy()
    hs_tm = Hs[out] if m is None else Hs[out] * m
    hs = _readonly(hs_tm.transpose(1, 0, 2))
    cache = {
        "x_aug": Xa,
        "gates": G,
        "cells": Cs[out],
        "tanh_cells": TC,
        "h_states": Hs,
        "c_states": Cs,
        "hs": hs,
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
    }
    return (hs, (hT, cT)), cache


def backward(params, dhs, dstateT, cache):
    """BPTT. Returns ``dx (B, T, D), (dh0, dc0), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    Xa, G, TC = cache["x_aug"], cache["gates"], cache["tanh_cells"]
    Hs, Cs = cache["h_states"], cache["c_states"]
    T, B, _ = Xa.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT, dcT = _upstream(dhs, dstateT, B, T, H, dtype)
    out, prev, s0, _ = _slots(T, reverse)
    if dhs is not None and (m is not None or not dhs.flags.c_contiguous):
        dhs_tm = np.empty((T, B, H), dtype=dtype)
        if m is None:
            np.copyto(dhs_tm, dhs)
        else:
            np.multiply(dhs, m, out=dhs_tm)  # gradients at padded positions are ignored
        dhs = dhs_tm

    Hprev, Cprev = Hs[prev], Cs[prev]
    W4 = W_hh.reshape(4, H, H)
    Wi4 = W_ih.reshape(4, H, D)
    one = dtype.type(1)

    dh = np.zeros((B, H), dtype=dtype) if dhT is None else dhT.copy()
    dc = np.zeros((B, H), dtype=dtype) if dcT is None else dcT.copy()
    dh_alt = np.empty((B, H), dtype=dtype) if pad is not None else None
    rec = np.empty((4, B, H), dtype=dtype)

    gi = np.zeros((4, H, D + 1), dtype=dtype)  # input weights and (last column) biases
    gh = np.zeros((4, H, H), dtype=dtype)
    gi_part = np.empty_like(gi)
    gh_part = np.empty_like(gh)

    chunks = _chunks(T, B, _BWD_ROWS, not reverse)  # backward visits positions from the end
    K = max((b - a for a, b in chunks), default=0)
    nQ, nP, nX = 5 * K * B * H, 4 * K * B * D, T * B * D
    arena = np.empty(nQ + nP + nX, dtype=dtype)  # one allocation (see forward)
    # Scratch Q (5, K, B, H) for one chunk, gate-major so each slot is a GEMM operand.
    # Slots 0..3 first hold each gate's local derivative times its partner factor
    # (i'(z) g, f'(z) c_prev, g'(z) i, o'(z) tanh(c)) and become dL/dz for i, f, g, o;
    # slot 4 holds o (1 - tanh(c)^2), then dh times that (the path h -> c).
    Qbuf = arena[:nQ].reshape(5, K, B, H)
    dx_part = arena[nQ : nQ + nP].reshape(4, K * B, D)
    dx = arena[nQ + nP :].reshape(T, B, D)
    for a, b in chunks:
        k = b - a
        Q = Qbuf[:, :k]
        # --- local derivatives of steps a..b-1, vectorised ---
        Gc = G[:, a:b]  # (4, k, B, H)
        S = Q[:2]
        np.multiply(Gc[:2], Gc[:2], out=S)
        np.subtract(Gc[:2], S, out=S)  # s (1 - s) for i, f
        Qo, o = Q[3], Gc[3]
        np.multiply(o, o, out=Qo)
        np.subtract(o, Qo, out=Qo)  # o (1 - o)
        Qg, g = Q[2], Gc[2]
        np.multiply(g, g, out=Qg)
        np.subtract(one, Qg, out=Qg)  # 1 - g^2
        np.multiply(Q[0], g, out=Q[0])
        np.multiply(Q[1], Cprev[a:b], out=Q[1])
        np.multiply(Qg, Gc[0], out=Qg)
        np.multiply(Qo, TC[a:b], out=Qo)
        R = Q[4]
        np.multiply(TC[a:b], TC[a:b], out=R)
        np.subtract(one, R, out=R)
        np.multiply(R, o, out=R)  # o (1 - tanh(c)^2)
        if pad is None:
            F = Gc[1]
        else:
            np.multiply(Q, m[None, a:b], out=Q)
            F = np.where(pad[a:b], one, Gc[1])  # dc passes unchanged through padded steps
        # --- the sequential part ---
        for t in range(a, b) if reverse else range(b - 1, a - 1, -1):
            if dhs is not None:
                np.add(dh, dhs[t], out=dh)
            q = Q[:, t - a]
            np.multiply(q[3:], dh, out=q[3:])  # dL/dz_o and the h -> c term
            np.add(dc, q[4], out=dc)
            np.multiply(q[:3], dc, out=q[:3])  # dL/dz_i, dL/dz_f, dL/dz_g
            np.multiply(dc, F[t - a], out=dc)
            np.matmul(q[:4], W4, out=rec)
            if pad is None:
                np.add.reduce(rec, axis=0, out=dh)
            else:
                np.add.reduce(rec, axis=0, out=dh_alt)
                np.copyto(dh_alt, dh, where=pad[t])  # padded rows: dZ is 0, carry dh
                dh, dh_alt = dh_alt, dh
        # --- this chunk's share of the weight gradients and dx (GEMMs over k*B rows) ---
        dZ = Q[:4].reshape(4, k * B, H)
        dZT = dZ.transpose(0, 2, 1)
        np.matmul(dZT, Xa[a:b].reshape(k * B, D + 1), out=gi_part)
        np.add(gi, gi_part, out=gi)
        np.matmul(dZT, Hprev[a:b].reshape(k * B, H), out=gh_part)
        np.add(gh, gh_part, out=gh)
        dxp = dx_part[:, : k * B]
        np.matmul(dZ, Wi4, out=dxp)
        np.add.reduce(dxp, axis=0, out=dx[a:b].reshape(k * B, D))

    grads = {
        "weight_ih": np.ascontiguousarray(gi[:, :, :D]).reshape(H4, D),
        "weight_hh": gh.reshape(H4, H),
        "bias_ih": gi[:, :, D].reshape(H4),
    }
    grads["bias_hh"] = grads["bias_ih"].copy()
    return dx.transpose(1, 0, 2), (dh, dc), grads
