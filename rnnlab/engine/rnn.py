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
``"hs"`` the output view (B, T, H), ``"states"`` (T+1, B, H) time-major carried states in
input-time order (see ``_slots``), ``"x"`` the time-major input (T, B, D), plus ``"mask"``,
``"pad"``, ``"reverse"``, ``"nonlinearity"``, ``"h0_zero"``. Saturation is measured on
``"hs"``: for tanh, |h| close to 1; for relu, dead units are h == 0 (pre-activations are
not kept: the loop applies f in place).

Implementation notes (speed)
----------------------------
Time-major storage makes every step's slice contiguous. The input projection of all steps
(biases folded in) is one GEMM written straight into the state buffer; each step adds
h_{t-1} W_hh^T (one GEMM into a preallocated buffer) and applies f in place (tanh as
2 / (1 + exp(-2a)) - 1 on weights pre-scaled by -2: float32 np.tanh costs twice np.exp). BPTT runs over
chunks of steps that reuse the same small buffers: f' for the chunk in two calls, three
calls per step, then the chunk's weight gradients and dx rows as GEMMs over its
(steps x batch) rows. Fresh memory is expensive (first-touch page faults), so each call
takes its buffers from one allocation (``_carve``) and backward allocates nothing big.
No mask costs nothing: the masked path only adds one ``copyto(where=)`` per step.
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


def _time_major_view(x, D: int) -> np.ndarray:
    """x (B, T, D) validated, as a (T, B, D) view (no copy)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    if x.shape[1] == 0:
        raise ValueError("x must have at least one time step")
    return x.transpose(1, 0, 2)


def _carve(dtype, *shapes) -> list[np.ndarray]:
    """Views of ONE fresh buffer, one per shape, each 64-byte aligned.

    A single allocation per call lets malloc hand back the pages of the previous call:
    many separate big arrays tend to be unmapped and mapped again, and first-touch page
    faults on fresh (huge-page advised) memory can cost more than the arithmetic.
    """
    itemsize = np.dtype(dtype).itemsize
    align = max(1, 64 // itemsize)
    sizes = [int(np.prod(shape)) for shape in shapes]
    offsets, total = [], 0
    for n in sizes:
        offsets.append(total)
        total += -(-n // align) * align
    buf = np.empty(total + align, dtype=dtype)
    shift = (-(buf.ctypes.data // itemsize)) % align
    return [
        buf[shift + o : shift + o + n].reshape(shape)
        for o, n, shape in zip(offsets, sizes, shapes, strict=True)
    ]


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


CHUNK_ELEMS = 1 << 17  # backward works on chunks of about this many (step, batch, unit) entries


def _chunk_steps(T: int, B: int, H: int) -> int:
    """Steps per backward chunk: big enough for efficient GEMMs, small enough to stay in cache."""
    return max(1, min(T, CHUNK_ELEMS // (B * H)))


def _bptt_chunks(T: int, K: int, reverse: bool):
    """(t0, t1, steps) blocks of at most K steps, in the order BPTT visits them."""
    if reverse:  # forward pass went T-1 ... 0, so BPTT goes 0 ... T-1
        return [(t0, min(T, t0 + K), range(t0, min(T, t0 + K))) for t0 in range(0, T, K)]
    return [(max(0, t1 - K), t1, range(t1 - 1, max(0, t1 - K) - 1, -1)) for t1 in range(T, 0, -K)]


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
    xt = _time_major_view(x, D)
    T, B, _ = xt.shape
    h0 = _initial_state(state0, B, H, dtype)
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, h0_slot, order = _slots(T, reverse)

    # the input is used as is when it is already time-major (e.g. the hs of a layer below)
    copy_x = not (xt.dtype == dtype and xt.flags.c_contiguous)
    shapes = [(T + 1, B, H), (B, H), (H,)]
    if m is not None:
        shapes.append((T, B, H))
    if copy_x:
        shapes.append((T, B, D))
    bufs = _carve(dtype, *shapes)
    S, tmp, bias = bufs[:3]
    hs_buf = bufs[3] if m is not None else None
    if copy_x:
        X = bufs[-1]
        np.copyto(X, xt, casting="unsafe")
    else:
        X = xt
    if h0 is None:
        S[h0_slot] = 0
    else:
        np.copyto(S[h0_slot], h0, casting="unsafe")
    # input projection of all steps at once, biases folded in, written straight into the
    # output slots; the loop adds the recurrent term and applies f in place. For tanh the
    # weights are scaled by -2 so that tanh(a) = 2 / (1 + exp(-2a)) - 1 is exp and three
    # cheap calls on the product as computed (float32 np.tanh costs twice np.exp).
    tanh = nonlinearity == "tanh"
    scale = dtype.type(-2 if tanh else 1)
    A = S[out]
    np.dot(X.reshape(T * B, D), W_ih.T * scale, out=A.reshape(T * B, H))
    np.add(params["bias_ih"], params["bias_hh"], out=bias)
    bias *= scale
    A += bias
    W_hhT = W_hh.T * scale
    one, two = dtype.type(1), dtype.type(2)
    off_prev = 1 if reverse else 0  # step t reads S[t + off_prev], writes S[t + off_out]
    off_out = 0 if reverse else 1
    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives tanh -1, as it should
        for t in order:
            a = S[t + off_out]
            if skip:
                skip = False
            else:
                np.dot(S[t + off_prev], W_hhT, out=tmp)
                np.add(a, tmp, out=a)
            if tanh:
                np.exp(a, out=a)
                np.add(a, one, out=a)
                np.divide(two, a, out=a)
                np.subtract(a, one, out=a)
            else:
                np.maximum(a, 0, out=a)
            if pad is not None:
                np.copyto(a, S[t + off_prev], where=pad[t])

    hT = S[order[-1] + off_out].copy()
    if m is None:
        hs_tm = S[out]
    else:
        hs_tm = np.multiply(S[out], m, out=hs_buf)
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


def _check_trace(dh_trace, T: int, B: int, H: int):
    """dh_trace validated: None or a writable (T, B, H) array."""
    if dh_trace is None:
        return None
    if not isinstance(dh_trace, np.ndarray) or dh_trace.shape != (T, B, H):
        shape = getattr(dh_trace, "shape", type(dh_trace).__name__)
        raise ValueError(f"dh_trace must be a ({T}, {B}, {H}) array, got {shape}")
    return dh_trace


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H, D = W_ih.shape
    X, S = cache["x"], cache["states"]
    T, B, _ = X.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT = _upstream(dhs, dstateT, B, T, H, dtype)
    trace = _check_trace(dh_trace, T, B, H)
    off_prev = 1 if reverse else 0
    off_out = 0 if reverse else 1
    tanh = cache["nonlinearity"] == "tanh"

    K = _chunk_steps(T, B, H)
    shapes = [(K, B, H), (K, B, H), (B, H), (B, H), (K * B,), (H, D), (H, H), (H,)]
    if dhs is not None:
        shapes.append((K, B, H))
    bufs = _carve(dtype, *shapes)
    Dv, dA, c, g, ones = bufs[:5]  # Dv: f'(a_t) of a chunk, zero at padded steps
    tmp = bufs[5:8]
    P = bufs[8] if dhs is not None else None
    if dhT is None:
        c[...] = 0
    else:
        np.copyto(c, dhT)
    ones[...] = 1
    acc = [np.zeros((H, D), dtype=dtype), np.zeros((H, H), dtype=dtype), np.zeros(H, dtype=dtype)]
    dX = np.empty((T, B, D), dtype=dtype)

    # dA_t = (c_t + dhs_t) * f'(a_t), with the carry c_t = dL/dh_t from the later steps:
    # c_{t-1} = dA_t W_hh, plus c_t itself where step t is padded.
    for t0, t1, steps in _bptt_chunks(T, K, reverse):
        kk = t1 - t0
        nn = kk * B
        Hout = S[t0 + off_out : t1 + off_out]
        dv = Dv[:kk]
        if tanh:
            np.multiply(Hout, Hout, out=dv)
            np.subtract(1, dv, out=dv)
        else:
            np.sign(Hout, out=dv)  # relu outputs are >= 0: sign is the 0/1 derivative
        if m is not None:
            dv *= m[t0:t1]  # also drops the gradients sent to padded positions
        if P is not None:
            np.multiply(dv, dhs[t0:t1], out=P[:kk])
        for t in steps:
            k = t - t0
            if trace is not None:
                np.copyto(trace[t], c, casting="same_kind")  # dL/dh_t through the later steps
            a = dA[k]
            np.multiply(c, dv[k], out=a)
            if P is not None:
                a += P[k]
            np.dot(a, W_hh, out=g)
            if pad is not None:
                np.add(g, c, out=g, where=pad[t])
            c, g = g, c
        dAc = dA[:kk].reshape(nn, H)
        np.dot(dAc.T, X[t0:t1].reshape(nn, D), out=tmp[0])
        np.dot(dAc.T, S[t0 + off_prev : t1 + off_prev].reshape(nn, H), out=tmp[1])
        np.dot(ones[:nn], dAc, out=tmp[2])
        for a_, t_ in zip(acc, tmp, strict=True):
            a_ += t_
        np.dot(dAc, W_ih, out=dX[t0:t1].reshape(nn, D))

    if trace is not None and dhs is not None:  # plus the direct part (none at padded steps)
        np.add(trace, dhs if m is None else dhs * m, out=trace, casting="same_kind")
    grads = {"weight_ih": acc[0], "weight_hh": acc[1], "bias_ih": acc[2], "bias_hh": acc[2].copy()}
    return dX.transpose(1, 0, 2), (c.copy(),), grads
