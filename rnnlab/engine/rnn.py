"""Elman RNN layer (PyTorch's `torch.nn.RNN`, one layer, one direction) with hand-written BPTT.

Shapes and names
----------------
x (B, T, D) batch-first, hidden size H, one state: h (B, H).
Parameters use PyTorch's names (suffix `_l0` in `torch.nn.RNN`):
``weight_ih`` (H, D), ``weight_hh`` (H, H), ``bias_ih`` (H,), ``bias_hh`` (H,).

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   f = tanh (default) or relu

Contract shared by the recurrent modules (rnn, gru, lstm)
---------------------------------------------------------
``forward(params, x, state0=None, mask=None, reverse=False, *, nonlinearity="tanh")``
    -> ``(hs, (hT,)), cache``

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
``"hs"`` the output view (B, T, H), ``"states"`` (T+1, B, H) time-major carried states in
processing-independent time order (see ``_slots``), ``"x"`` the time-major input (T, B, D),
plus ``"mask"``, ``"reverse"``, ``"nonlinearity"``, ``"h0_zero"``. Saturation: for tanh,
|h| close to 1 in ``"hs"``; for relu, dead units are h == 0.
"""

from __future__ import annotations

import numpy as np

NUM_STATES = 1  # (h,)
NONLINEARITIES = ("tanh", "relu")
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def init_params(
    rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32, *, gates: int = 1
) -> dict[str, np.ndarray]:
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H)). ``gates`` is G (rows G*H)."""
    k = 1.0 / np.sqrt(hidden_size)
    G = gates * hidden_size
    shapes = {
        "weight_ih": (G, input_size),
        "weight_hh": (G, hidden_size),
        "bias_ih": (G,),
        "bias_hh": (G,),
    }
    return {name: rng.uniform(-k, k, size=shape).astype(dtype) for name, shape in shapes.items()}


# ----------------------------------------------------------------------------------------
# helpers shared with gru.py (time-major layout, state, mask)
# ----------------------------------------------------------------------------------------


def _time_major_input(x, D: int, dtype) -> np.ndarray:
    """Contiguous (T, B, D) copy of x (B, T, D) in dtype (or x's own buffer if it already is)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    xt = x.transpose(1, 0, 2)
    if xt.dtype == dtype and xt.flags.c_contiguous:
        return xt  # e.g. the hs view of a previous layer: no copy needed
    X = np.empty(xt.shape, dtype=dtype)
    np.copyto(X, xt, casting="unsafe")
    return X


def _initial_state(state0, B: int, H: int, dtype):
    """(h0 array or None when the initial state is zero)."""
    if state0 is None:
        return None
    if not isinstance(state0, (tuple, list)) or len(state0) != 1:
        raise ValueError("state0 must be None or a 1-tuple (h0,)")
    h0 = state0[0]
    if h0 is None:
        return None
    h0 = np.asarray(h0)
    if h0.shape != (B, H):
        raise ValueError(f"h0 must have shape ({B}, {H}), got {h0.shape}")
    if not h0.any():
        return None
    return h0


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
    """Time-major state buffer S (T+1, B, H): index slices for outputs, previous states, h0.

    Forward: S[0] = h0, S[t+1] = h_t.  Reverse: S[T] = h0, S[t] = h_t.  Either way the
    outputs S[out] and the states feeding each step S[prev] are contiguous (T, B, H) blocks
    in input-time order.
    """
    if reverse:
        return slice(0, T), slice(1, T + 1), T, range(T - 1, -1, -1)
    return slice(1, T + 1), slice(0, T), 0, range(T)


def _upstream(dhs, dstateT, B: int, T: int, H: int, dtype):
    """(dhs as a (T, B, H) view or None, dhT array or None), validated and cast."""
    if dhs is not None:
        dhs = np.asarray(dhs)
        if dhs.shape != (B, T, H):
            raise ValueError(f"dhs must have shape ({B}, {T}, {H}), got {dhs.shape}")
        dhs = dhs.astype(dtype, copy=False).transpose(1, 0, 2)
    if dstateT is None:
        dhT = None
    else:
        if not isinstance(dstateT, (tuple, list)) or len(dstateT) != 1:
            raise ValueError("dstateT must be a 1-tuple (dhT,)")
        dhT = dstateT[0]
        if dhT is not None:
            dhT = np.asarray(dhT)
            if dhT.shape != (B, H):
                raise ValueError(f"dhT must have shape ({B}, {H}), got {dhT.shape}")
            dhT = dhT.astype(dtype, copy=False)
    return dhs, dhT


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ----------------------------------------------------------------------------------------
# forward / backward
# ----------------------------------------------------------------------------------------


def forward(params, x, state0=None, mask=None, reverse=False, *, nonlinearity="tanh"):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT,)), cache`` (see module docstring)."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu' (got '{nonlinearity}')")
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H, D = W_ih.shape
    X = _time_major_input(x, D, dtype)
    T, B, _ = X.shape
    h0 = _initial_state(state0, B, H, dtype)
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, h0_slot, order = _slots(T, reverse)

    S = np.empty((T + 1, B, H), dtype=dtype)
    if h0 is None:
        S[h0_slot] = 0
    else:
        np.copyto(S[h0_slot], h0, casting="unsafe")
    # input projection of all steps at once, biases folded in, written straight into the
    # output slots; the loop adds the recurrent term and applies f in place.
    A = S[out]
    np.dot(X.reshape(T * B, D), W_ih.T, out=A.reshape(T * B, H))
    A += params["bias_ih"] + params["bias_hh"]
    W_hhT = W_hh.T
    f = np.tanh if nonlinearity == "tanh" else None
    tmp = np.empty((B, H), dtype=dtype)
    off_prev = 1 if reverse else 0  # step t reads S[t + off_prev], writes S[t + off_out]
    off_out = 0 if reverse else 1
    skip = h0 is None
    for t in order:
        a = S[t + off_out]
        if skip:
            skip = False
        else:
            np.dot(S[t + off_prev], W_hhT, out=tmp)
            np.add(a, tmp, out=a)
        if f is not None:
            f(a, out=a)
        else:
            np.maximum(a, 0, out=a)
        if pad is not None:
            np.copyto(a, S[t + off_prev], where=pad[t])

    hT = S[order[-1] + off_out].copy() if T else S[h0_slot].copy()
    if m is None:
        hs_tm = S[out]
    else:
        hs_tm = S[out] * m
    hs = _readonly(hs_tm.transpose(1, 0, 2))
    cache = {
        "x": X,
        "states": S,
        "hs": hs,
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
        "nonlinearity": nonlinearity,
        "h0_zero": h0 is None,
    }
    return (hs, (hT,)), cache


def backward(params, dhs, dstateT, cache):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H, D = W_ih.shape
    X, S = cache["x"], cache["states"]
    T, B, _ = X.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT = _upstream(dhs, dstateT, B, T, H, dtype)
    out, prev, h0_slot, order = _slots(T, reverse)

    # local derivative f'(a_t) for every step (zero at padded steps)
    Hout = S[out]
    if cache["nonlinearity"] == "tanh":
        Dv = np.multiply(Hout, Hout)
        np.subtract(1, Dv, out=Dv)
    else:
        Dv = (Hout > 0).astype(dtype)
    if m is not None:
        Dv *= m
        if dhs is not None:
            dhs = dhs * m  # gradients at padded positions are ignored

    dA = np.empty((T, B, H), dtype=dtype)
    g = np.empty((B, H), dtype=dtype)
    g_prev = np.empty((B, H), dtype=dtype) if m is not None else None
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
            if g_prev is not None:
                g, g_prev = g_prev, g
            np.dot(dA[tn], W_hh, out=g)
            if g_prev is not None:
                np.add(g, g_prev, out=g, where=pad[tn])
            if dhs is not None:
                g += dhs[t]
        np.multiply(g, Dv[t], out=dA[t])

    # dh0
    if T:
        tn = border[-1]
        dh0 = np.dot(dA[tn], W_hh)
        if pad is not None:
            np.add(dh0, g, out=dh0, where=pad[tn])
    else:
        dh0 = np.zeros((B, H), dtype) if dhT is None else dhT.copy()

    TB = T * B
    dA2 = dA.reshape(TB, H)
    grads = {}
    grads["weight_ih"] = np.dot(dA2.T, X.reshape(TB, D))
    if cache["h0_zero"]:
        # the first processed step sees h0 = 0: leave it out of the GEMM
        dAr = dA[:-1] if reverse else dA[1:]
        grads["weight_hh"] = np.dot(dAr.reshape(-1, H).T, S[1:T].reshape(-1, H))
    else:
        grads["weight_hh"] = np.dot(dA2.T, S[prev].reshape(TB, H))
    db = dA2.sum(axis=0)
    grads["bias_ih"] = db
    grads["bias_hh"] = db.copy()
    dX = np.dot(dA2, W_ih).reshape(T, B, D)
    return dX.transpose(1, 0, 2), (dh0,), grads
