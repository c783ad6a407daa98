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
* hs (B, T, H) is a read-only, non-contiguous view of the internal (T, H, B) storage; it
  aliases the cache, so copy it before modifying. hT and cT are fresh (B, H) arrays.

``backward(params, dhs, dstateT, cache, dh_trace=None)`` -> ``dx, (dh0, dc0), grads``

* dhs: (B, T, H) or None (only the final state is used); dstateT: ``(dhT, dcT)``, each an
  array or None (or dstateT None). Gradients in dhs at padded positions are ignored.
* dx (B, T, D) (a transposed view of a time-major array), dh0 and dc0 (B, H), grads: a
  dict with the same keys as params. Inputs and upstream gradients are never modified,
  and the cache is not consumed (backward may run twice).
* dh_trace: None, or a (T, B, H) array that backward fills with the total gradient
  dL/dh_t of the hidden state after step t (from dhs and through the later steps, with
  c_t held fixed), indexed by input position t (also with reverse=True). At a padded step
  h_t is the carried state. It changes nothing else; without it the loop pays one ``if``
  per step.

Cache (a plain dict; nothing is kept between calls)
--------------------------------------------------
Indexed by *input* time position t (also when reverse=True):

* ``"gates"`` (T, 4H, B): gate activations (after sigmoid / tanh) of step t, rows
  [i | f | g | o] (H each), one column per sequence. ``gate_activations(cache)`` returns
  them as four (T, B, H) views keyed "i", "f", "g", "o".
* ``"cells"`` (T, B, H): the cell state c_t after step t; ``"tanh_cells"`` (T, B, H):
  tanh(c_t) (views of internal (T, H, B) arrays).
* ``"hs"``: the output view (B, T, H).
* ``"hx"`` (T+1, H+D+1, B): slot s holds [h_s; x_t; 1], the operand of the step t that
  reads state slot s; ``"h_states"`` (a view of its first H rows) and ``"c_states"``
  (T+1, H, B) are the carried states including the initial one, in rnn.py's slot layout
  (forward S[0] = s0, S[t+1] = s_t; reverse S[T] = s0, S[t] = s_t).
* ``"mask"`` (T, 1, B) or None, ``"pad"`` (its complement, bool), ``"reverse"``.

At padded steps the cached gates and tanh_cells are those of an update that was computed
and discarded (the carried cell state is in ``"cells"``).

Implementation notes (speed)
----------------------------
Internally the recurrence runs feature-major: states are (H, B), a step's gates (4H, B), so
every gate is one contiguous block and a step is one GEMM [W_hh | W_ih | b] @ [h; x_t; 1]
(4H output rows, which OpenBLAS splits well over threads; the input projection and both
biases ride along in it). The weight rows are pre-scaled by -1 (sigmoid gates) or -2 (g) so
that one exp over the (4H, B) block gives all four gates: sigmoid(z) = 1 / (1 + exp(-z)),
tanh(z) = 2 sigmoid(2z) - 1; tanh(c) uses the same identity. The backward pass prepares the
local derivatives of a chunk of steps vectorised, then runs four NumPy calls (five with
dhs) and one GEMM per step, and folds each chunk into the weight gradients and dx with
GEMMs over the chunk's k*B columns. Each call allocates its storage as one block, which
malloc reuses from call to call (several smaller blocks tend to be page-faulted in every
time).
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import rnn

NUM_STATES = 2  # (h, c)
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = ("i", "f", "g", "o")

# The backward pass works in chunks of about this many (step, sequence) columns: it prepares
# a chunk's local derivatives together and folds the chunk into the weight gradients with
# GEMMs of this width, so a chunk's working set stays in cache.
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
    return rnn.init_params(rng, input_size, hidden_size, dtype, gates=4)


def gate_activations(cache) -> dict[str, np.ndarray]:
    """The cached gate activations as four (T, B, H) views keyed "i", "f", "g", "o"."""
    G = cache["gates"]
    T, H4, B = G.shape
    G4 = G.reshape(T, 4, H4 // 4, B)
    return {name: G4[:, k].transpose(0, 2, 1) for k, name in enumerate(GATES)}


# ----------------------------------------------------------------------------------------
# helpers (validation, states, mask)
# ----------------------------------------------------------------------------------------


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
    """Returns (m (T, 1, B) in dtype, pad (T, 1, B) bool), or (None, None)."""
    if mask is None:
        return None, None
    mask = np.asarray(mask)
    if mask.shape != (B, T):
        raise ValueError(f"mask must have shape ({B}, {T}), got {mask.shape}")
    pad = (mask.T == 0)[:, None, :]
    m = np.logical_not(pad).astype(dtype)
    return m, pad


def _slots(T: int, reverse: bool):
    """Slot layout of a (T+1, ...) state buffer S (same as rnn.py).

    Forward: S[0] = s0, S[t+1] = s_t.  Reverse: S[T] = s0, S[t] = s_t.  Returns
    (out slice, prev slice, initial slot, final slot); S[out] and S[prev] are (T, ...)
    blocks in input-time order.
    """
    if reverse:
        return slice(0, T), slice(1, T + 1), T, 0
    return slice(1, T + 1), slice(0, T), 0, T


def _upstream(dhs, dstateT, B: int, T: int, H: int, dtype):
    """(dhs or None, dhT or None, dcT or None), validated and cast."""
    if dhs is not None:
        dhs = np.asarray(dhs)
        if dhs.shape != (B, T, H):
            raise ValueError(f"dhs must have shape ({B}, {T}, {H}), got {dhs.shape}")
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


def _stacked_weights(params, dtype):
    """W (4H, H+D+1) = [W_hh | W_ih | b_ih + b_hh], rows pre-scaled by -1 (sigmoid gates) or
    -2 (g), so that W @ [h; x; 1] is the scaled pre-activation of all four gates."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    H4, D = W_ih.shape
    H = H4 // 4
    scale = np.full((H4, 1), -1.0, dtype=dtype)
    scale[2 * H : 3 * H] = -2.0
    W = np.empty((H4, H + D + 1), dtype=dtype)
    np.multiply(W_hh, scale, out=W[:, :H])
    np.multiply(W_ih, scale, out=W[:, H : H + D])
    np.multiply(params["bias_ih"] + params["bias_hh"], scale[:, 0], out=W[:, H + D])
    return W


# ----------------------------------------------------------------------------------------
# forward / backward
# ----------------------------------------------------------------------------------------


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT, cT)), cache`` (see module docstring)."""
    W_ih = params["weight_ih"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    E = H + D + 1  # rows of a step's GEMM operand [h_prev; x_t; 1]
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    B, T, _ = x.shape
    h0, c0 = _state_pair(state0, B, H)
    if h0 is not None and not h0.any():
        h0 = None  # a zero h0 lets the first step skip the recurrent part of its GEMM
    m, pad = _prepare_mask(mask, B, T, dtype)
    out, prev, s0, sT = _slots(T, reverse)
    off_prev = 1 if reverse else 0
    off_out = 0 if reverse else 1

    # One allocation for everything the cache keeps: one large block is reused by malloc
    # from call to call, several smaller ones tend to be page-faulted in every time.
    nG, nX, nS = T * H4 * B, (T + 1) * E * B, (T + 1) * H * B
    arena = np.empty(nG + nX + 2 * nS, dtype=dtype)
    G = arena[:nG].reshape(T, H4, B)  # pre-activations, then gates, in place
    # HX (T+1, E, B): slot s holds [h_s; x_t; 1] where h_s is the state in slot s (slot
    # layout of _slots) and x_t the input of the step that reads that state.
    HX = arena[nG : nG + nX].reshape(T + 1, E, B)
    Cs = arena[nG + nX : nG + nX + nS].reshape(T + 1, H, B)
    TC = arena[nG + nX + nS :].reshape(T + 1, H, B)[:T]

    Hs = HX[:, :H]  # (T+1, H, B) view: the carried hidden states
    np.copyto(HX[prev, H : H + D], x.transpose(1, 2, 0), casting="unsafe")
    HX[sT, H : H + D] = 0
    HX[:, H + D] = 1
    if h0 is None:
        Hs[s0] = 0
    else:
        np.copyto(Hs[s0], h0.T, casting="unsafe")
    if c0 is None:
        Cs[s0] = 0
    else:
        np.copyto(Cs[s0], c0.T, casting="unsafe")
    W = _stacked_weights(params, dtype)
    W_x = W[:, H:]

    tmp = np.empty((H, B), dtype=dtype)
    one, two, m_two = dtype.type(1), dtype.type(2), dtype.type(-2)
    i_, f_, g_, o_ = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, H4)

    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives the right limits 0 and -1
        for t in range(T - 1, -1, -1) if reverse else range(T):
            g = G[t]
            op = HX[t + off_prev]
            if skip:
                np.dot(W_x, op[H:], out=g)
                skip = False
            else:
                np.dot(W, op, out=g)
            np.exp(g, out=g)
            np.add(g, one, out=g)
            np.divide(one, g, out=g)  # sigmoid for i, f, o; sigmoid(2z) for g
            gg = g[g_]
            np.multiply(gg, two, out=gg)
            np.subtract(gg, one, out=gg)  # tanh(z)
            c = Cs[t + off_out]
            c_prev = Cs[t + off_prev]
            np.multiply(g[f_], c_prev, out=c)
            np.multiply(g[i_], gg, out=tmp)
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
            np.multiply(g[o_], tc, out=h)
            if pad is not None:
                np.copyto(h, op[:H], where=pad[t])

    hT = Hs[sT].T.copy()
    cT = Cs[sT].T.copy()
    hs_fm = Hs[out] if m is None else Hs[out] * m  # (T, H, B)
    hs = _readonly(hs_fm.transpose(2, 0, 1))
    cache = {
        "gates": G,
        "cells": Cs[out].transpose(0, 2, 1),
        "tanh_cells": TC.transpose(0, 2, 1),
        "hx": HX,
        "h_states": Hs,
        "c_states": Cs,
        "hs": hs,
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
    }
    return (hs, (hT, cT)), cache


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0, dc0), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    E = H + D + 1
    G, HX, Cs = cache["gates"], cache["hx"], cache["c_states"]
    TC = cache["tanh_cells"].transpose(0, 2, 1)  # (T, H, B)
    T, _, B = G.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, dhT, dcT = _upstream(dhs, dstateT, B, T, H, dtype)
    trace = rnn._check_trace(dh_trace, T, B, H)
    out, prev, s0, sT = _slots(T, reverse)
    if dhs is not None:  # feature-major copy (T, H, B), zero at padded positions
        dhs_fm = np.empty((T, H, B), dtype=dtype)
        if m is None:
            np.copyto(dhs_fm, dhs.transpose(1, 2, 0), casting="unsafe")
        else:
            np.multiply(dhs.transpose(1, 2, 0), m, out=dhs_fm, casting="unsafe")
        dhs = dhs_fm

    HXprev, Cprev = HX[prev], Cs[prev]
    W_hhT = W_hh.T
    one = dtype.type(1)
    dh = np.zeros((H, B), dtype=dtype) if dhT is None else dhT.T.copy()
    dc = np.zeros((H, B), dtype=dtype) if dcT is None else dcT.T.copy()
    dh_alt = np.empty((H, B), dtype=dtype) if pad is not None else None
    gW = np.zeros((H4, E), dtype=dtype)  # [dW_hh | dW_ih | db]
    gW_part = np.empty_like(gW)

    chunks = _chunks(T, B, _BWD_ROWS, not reverse)  # backward visits positions from the end
    K = max((b - a for a, b in chunks), default=0)
    nQ, nZ, nH, nX = 5 * K * H * B, 4 * H * K * B, E * K * B, T * B * D
    arena = np.empty(nQ + nZ + nH + nX, dtype=dtype)  # one block (see forward)
    # Q (K, 5, H, B), per step of the chunk: first the local derivative of each gate times
    # its partner factor (i'(z) g, f'(z) c_prev, g'(z) i, o'(z) tanh(c)) and
    # o (1 - tanh(c)^2); the step then turns them into dL/dz for i, f, g, o and dh times
    # the last (the h -> c term). Q[j, :4] as (4H, B) is the step's GEMM operand.
    Qbuf = arena[:nQ].reshape(K, 5, H, B)
    # the chunk's dL/dz and GEMM inputs [h_prev; x; 1] rearranged as (4H, kB), (E, kB)
    Zt_buf = arena[nQ : nQ + nZ].reshape(H4, K, B)
    HXc_buf = arena[nQ + nZ : nQ + nZ + nH].reshape(E, K, B)
    dx = arena[nQ + nZ + nH :].reshape(T, B, D)

    for a, b in chunks:
        k = b - a
        Q = Qbuf[:k]
        Q4 = Q.reshape(k, 5 * H, B)[:, :H4]  # (k, 4H, B)
        # --- local derivatives of steps a..b-1, vectorised ---
        Gc = G[a:b].reshape(k, 4, H, B)
        np.multiply(Gc[:, :2], Gc[:, :2], out=Q[:, :2])
        np.subtract(Gc[:, :2], Q[:, :2], out=Q[:, :2])  # s (1 - s) for i, f
        Qg, Qo, R = Q[:, 2], Q[:, 3], Q[:, 4]
        gi_, gf_, gg_, go_ = Gc[:, 0], Gc[:, 1], Gc[:, 2], Gc[:, 3]
        np.multiply(go_, go_, out=Qo)
        np.subtract(go_, Qo, out=Qo)  # o (1 - o)
        np.multiply(gg_, gg_, out=Qg)
        np.subtract(one, Qg, out=Qg)  # 1 - g^2
        np.multiply(Q[:, 0], gg_, out=Q[:, 0])
        np.multiply(Q[:, 1], Cprev[a:b], out=Q[:, 1])
        np.multiply(Qg, gi_, out=Qg)
        np.multiply(Qo, TC[a:b], out=Qo)
        np.multiply(TC[a:b], TC[a:b], out=R)
        np.subtract(one, R, out=R)
        np.multiply(R, go_, out=R)  # o (1 - tanh(c)^2)
        if pad is None:
            F = gf_
        else:
            np.multiply(Q, m[a:b, None], out=Q)
            F = np.where(pad[a:b], one, gf_)  # dc passes unchanged through padded steps
        # --- the sequential part ---
        for t in range(a, b) if reverse else range(b - 1, a - 1, -1):
            j = t - a
            if dhs is not None:
                np.add(dh, dhs[t], out=dh)
            if trace is not None:
                np.copyto(trace[t], dh.T, casting="same_kind")  # total dL/dh_t
            q = Q[j]
            np.multiply(q[3:], dh, out=q[3:])  # dL/dz_o and the h -> c term
            np.add(dc, q[4], out=dc)
            np.multiply(q[:3], dc, out=q[:3])  # dL/dz_i, dL/dz_f, dL/dz_g
            np.multiply(dc, F[j], out=dc)
            if pad is None:
                np.dot(W_hhT, Q4[j], out=dh)
            else:
                np.dot(W_hhT, Q4[j], out=dh_alt)
                np.copyto(dh_alt, dh, where=pad[t])  # padded columns: dZ is 0, carry dh
                dh, dh_alt = dh_alt, dh
        # --- the chunk's share of the weight gradients and dx (GEMMs over k*B columns) ---
        Zt = Zt_buf[:, :k]
        np.copyto(Zt, Q4.transpose(1, 0, 2))
        dZ = Zt.reshape(H4, k * B)
        HXc = HXc_buf[:, :k]
        np.copyto(HXc, HXprev[a:b].transpose(1, 0, 2))
        np.dot(dZ, HXc.reshape(E, k * B).T, out=gW_part)
        np.add(gW, gW_part, out=gW)
        np.dot(dZ.T, W_ih, out=dx[a:b].reshape(k * B, D))

    grads = {
        "weight_ih": np.ascontiguousarray(gW[:, H : H + D]),
        "weight_hh": np.ascontiguousarray(gW[:, :H]),
        "bias_ih": gW[:, H + D].copy(),
        "bias_hh": gW[:, H + D].copy(),
    }
    return dx.transpose(1, 0, 2), (dh.T.copy(), dc.T.copy()), grads
