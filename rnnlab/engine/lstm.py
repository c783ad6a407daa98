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

# elements of the backward work buffer prepared per chunk (about 512 KiB in float32)
_CHUNK_ELEMS = 1 << 17


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
    T, B, H4 = G.shape
    G4 = G.reshape(T, B, 4, H4 // 4)
    return {name: G4[:, :, k] for k, name in enumerate(GATES)}


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
    for name, s in zip(("h0", "c0"), state0):
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
    for name, d in zip(("dhT", "dcT"), dstateT):
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


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT, cT)), cache`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    X = _time_major_input(x, D, dtype)
    T, B, _ = X.shape
    h0, c0 = _state_pair(state0, B, H)
    if h0 is not None and not h0.any():
        h0 = None  # a zero h0 lets the first step skip its recurrent GEMM
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, s0, order = _slots(T, reverse)
    off_prev = 1 if reverse else 0
    off_out = 0 if reverse else 1

    # pre-scaled weights: z' = -z for the sigmoid gates, -2z for g (see module notes)
    scale = np.full(H4, -1.0, dtype=dtype)
    scale[2 * H : 3 * H] = -2.0
    W_ih_s = W_ih * scale[:, None]
    W_hhT_s = (W_hh * scale[:, None]).T
    b_s = (params["bias_ih"] + params["bias_hh"]) * scale

    Hs = np.empty((T + 1, B, H), dtype=dtype)
    Cs = np.empty((T + 1, B, H), dtype=dtype)
    if h0 is None:
        Hs[s0] = 0
    else:
        np.copyto(Hs[s0], h0, casting="unsafe")
    if c0 is None:
        Cs[s0] = 0
    else:
        np.copyto(Cs[s0], c0, casting="unsafe")

    # all steps' input projections in one GEMM; the loop turns them into gates in place
    G = np.empty((T, B, H4), dtype=dtype)
    np.dot(X.reshape(T * B, D), W_ih_s.T, out=G.reshape(T * B, H4))
    G += b_s
    G4 = G.reshape(T, B, 4, H)
    TC = np.empty((T, B, H), dtype=dtype)
    tmp = np.empty((B, H4), dtype=dtype)
    tmpH = np.empty((B, H), dtype=dtype)

    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives the right limits 0 and -1
        for t in order:
            g = G[t]
            if skip:
                skip = False
            else:
                np.dot(Hs[t + off_prev], W_hhT_s, out=tmp)
                np.add(g, tmp, out=g)
            np.exp(g, out=g)
            np.add(g, 1.0, out=g)
            np.reciprocal(g, out=g)  # sigmoid for i, f, o; sigmoid(2z) for g
            gg = G4[t, :, 2]
            np.multiply(gg, 2.0, out=gg)
            np.subtract(gg, 1.0, out=gg)  # tanh(z)
            c = Cs[t + off_out]
            c_prev = Cs[t + off_prev]
            np.multiply(G4[t, :, 1], c_prev, out=c)
            np.multiply(G4[t, :, 0], gg, out=tmpH)
            np.add(c, tmpH, out=c)
            if pad is not None:
                np.copyto(c, c_prev, where=pad[t])
            tc = TC[t]
            np.multiply(c, -2.0, out=tc)
            np.exp(tc, out=tc)
            np.add(tc, 1.0, out=tc)
            np.divide(2.0, tc, out=tc)
            np.subtract(tc, 1.0, out=tc)  # tanh(c)
            h = Hs[t + off_out]
            np.multiply(G4[t, :, 3], tc, out=h)
            if pad is not None:
                np.copyto(h, Hs[t + off_prev], where=pad[t])

    last = order[-1] + off_out if T else s0
    hT = Hs[last].copy()
    cT = Cs[last].copy()
    hs_tm = Hs[out] if m is None else Hs[out] * m
    hs = _readonly(hs_tm.transpose(1, 0, 2))
    cache = {
        "x": X,
        "gates": G,
        "cells": Cs[out],
        "tanh_cells": TC,
        "h_states": Hs,
        "c_states": Cs,
        "hs": hs,
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
        "h0_zero": h0 is None,
    }
    return (hs, (hT, cT)), cache


def backward(params, dhs, dstateT, cache):
    """BPTT. Returns ``dx (B, T, D), (dh0, dc0), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    X, G, TC = cache["x"], cache["gates"], cache["tanh_cells"]
    Hs, Cs = cache["h_states"], cache["c_states"]
    T, B, _ = X.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT, dcT = _upstream(dhs, dstateT, B, T, H, dtype)
    out, prev, s0, order = _slots(T, reverse)
    if m is not None and dhs is not None:
        dhs = dhs * m  # gradients at padded positions are ignored (fresh array)

    G4 = G.reshape(T, B, 4, H)
    Cprev = Cs[prev]
    # Work buffer, per step t: slot 0 = o (1 - tanh(c)^2), later dh * that; slots 1..4 =
    # local derivative of each gate times its partner factor, later dL/dz in order i, f, g, o.
    W5 = np.empty((T, B, 5, H), dtype=dtype)
    dZ = W5.reshape(T, B, 5 * H)[:, :, H:]  # (T, B, 4H) view: gradient of the pre-activations

    dh = np.zeros((B, H), dtype=dtype) if dhT is None else dhT.copy()
    dc = np.zeros((B, H), dtype=dtype) if dcT is None else dcT.copy()
    dh_alt = np.empty((B, H), dtype=dtype) if pad is not None else None

    K = max(1, min(T, _CHUNK_ELEMS // max(1, B * 5 * H)))
    starts = list(range(0, T, K))
    if not reverse:
        starts.reverse()  # backward visits the input positions from the end
    for a in starts:
        b = min(a + K, T)
        # --- local derivatives of steps a..b-1, vectorised ---
        Gc = G4[a:b]
        S4 = W5[a:b, :, 1:5]
        np.multiply(Gc, Gc, out=S4)
        np.subtract(Gc, S4, out=S4)  # s (1 - s); the g slot becomes 1 - g^2 below
        Sg = S4[:, :, 2]
        np.subtract(Sg, Gc[:, :, 2], out=Sg)
        np.add(Sg, 1.0, out=Sg)
        np.multiply(S4[:, :, 0], Gc[:, :, 2], out=S4[:, :, 0])  # di/dz * g
        np.multiply(S4[:, :, 1], Cprev[a:b], out=S4[:, :, 1])  # df/dz * c_prev
        np.multiply(S4[:, :, 2], Gc[:, :, 0], out=S4[:, :, 2])  # dg/dz * i
        np.multiply(S4[:, :, 3], TC[a:b], out=S4[:, :, 3])  # do/dz * tanh(c)
        R = W5[a:b, :, 0]
        np.multiply(TC[a:b], TC[a:b], out=R)
        np.subtract(1.0, R, out=R)
        np.multiply(R, Gc[:, :, 3], out=R)  # o (1 - tanh(c)^2)
        if pad is None:
            F = Gc[:, :, 1]
        else:
            W5[a:b] *= m[a:b, :, :, None]
            F = np.where(pad[a:b], dtype.type(1), Gc[:, :, 1])  # carry dc at padded steps
        # --- the sequential part ---
        steps = range(b - 1, a - 1, -1) if not reverse else range(a, b)
        for t in steps:
            if dhs is not None:
                np.add(dh, dhs[t], out=dh)
            w = W5[t]
            np.multiply(w[:, 0::4], dh[:, None, :], out=w[:, 0::4])
            np.add(dc, w[:, 0], out=dc)
            np.multiply(w[:, 1:4], dc[:, None, :], out=w[:, 1:4])
            np.multiply(dc, F[t - a], out=dc)
            if pad is None:
                np.dot(dZ[t], W_hh, out=dh)
            else:
                np.dot(dZ[t], W_hh, out=dh_alt)
                np.copyto(dh_alt, dh, where=pad[t])  # padded rows: dZ is 0, carry dh
                dh, dh_alt = dh_alt, dh
    dh0, dc0 = dh, dc

    TB = T * B
    dZ2 = dZ.reshape(TB, H4)
    grads = {}
    grads["weight_ih"] = np.dot(dZ2.T, X.reshape(TB, D))
    if cache["h0_zero"] and T > 1:
        # the first processed step sees h0 = 0: leave it out of the GEMM
        dZr = dZ[:-1] if reverse else dZ[1:]
        grads["weight_hh"] = np.dot(dZr.reshape(-1, H4).T, Hs[1:T].reshape(-1, H))
    else:
        grads["weight_hh"] = np.dot(dZ2.T, Hs[prev].reshape(TB, H))
    db = dZ2.sum(axis=0)
    grads["bias_ih"] = db
    grads["bias_hh"] = db.copy()
    dX = np.dot(dZ2, W_ih).reshape(T, B, D)
    return dX.transpose(1, 0, 2), (dh0, dc0), grads
