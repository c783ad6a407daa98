"""LSTM (PyTorch's `torch.nn.LSTM`, one layer, one direction) with hand-written BPTT.

x (B, T, D), hidden size H, two states (h, c). Parameters (PyTorch's names, suffix ``_l0`` in
``torch.nn.LSTM``), gate order **i, f, g, o** (input, forget, cell candidate, output) along the
4H rows: ``weight_ih`` (4H, D), ``weight_hh`` (4H, H), ``bias_ih`` (4H,), ``bias_hh`` (4H,).

    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Masks, directions, states and upstream gradients follow ``_sequence``'s conventions; the
protocol is ``_protocol``'s. The tuned kernel's extras:

* ``infer`` (evaluation) gives forward's hs and final states without a cache: it keeps one
  state and one chunk of inputs, and runs each step on that step's run of real rows when there
  is one (``_sequence.step_runs``); masked updates only for general masks.
* hs (B, T, H) is a read-only, non-contiguous view of the internal (T, H, B) storage that
  aliases the cache; hT and cT are fresh arrays. dstateT is ``(dhT, dcT)`` (entries may be
  None); dh_trace, if given, is filled with the total dL/dh_t with c_t held fixed. The cache is
  not consumed (backward may run twice).
* Cache, by input position t: ``"gates"`` (T, 4H, B) activations, rows [i | f | g | o];
  ``"cells"`` (T, B, H) c_t; ``"tanh_cells"`` (T, B, H) tanh(c_t); ``"hs"``; ``"hx"``
  (T+1, H+D+1, B), slot s holding [h_s; x_t; 1], the operand of the step that reads state slot
  s; ``"h_states"`` (its first H rows) and ``"c_states"`` (T+1, H, B) in ``_sequence.slots``
  layout; ``"mask"`` (T, 1, B), ``"pad"``, ``"reverse"``. At padded steps the cached gates are
  those of an update that was computed and discarded.

Speed: the recurrence runs feature-major: states are (H, B), a step's gates (4H, B), so every
gate is one contiguous block and a step is one GEMM [W_hh | W_ih | b] @ [h; x_t; 1] (4H output
rows, which OpenBLAS splits well over threads; the input projection and both biases ride along).
The weight rows are pre-scaled by -1 (sigmoid gates) or -2 (g) so that one exp over the (4H, B)
block gives all four gates: sigmoid(z) = 1 / (1 + exp(-z)), tanh(z) = 2 sigmoid(2z) - 1; tanh(c)
uses the same identity. BPTT prepares a chunk of steps' local derivatives vectorised, then runs
four NumPy calls (five with dhs) and one GEMM per step, and folds each chunk into the weight
gradients and dx with GEMMs over the chunk's k*B columns. Each call allocates its storage as one
block, which malloc reuses from call to call.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import lowering
from rnnlab.engine.cells import _sequence as seq
from rnnlab.engine.cells._protocol import Recurrent

NAME = "lstm"
NUM_STATES = 2  # (h, c)
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = ("i", "f", "g", "o")
RECURRENT = Recurrent("weight_hh", "matrix", GATES, carrier="g")
TORCH = "LSTM"  # the torch.nn module with the same parameters (parity tests)
LABELS = {"i": "input gate i", "f": "forget gate f", "g": "cell candidate g", "o": "output gate o",
          "c": "cell state c", "tanh_c": "tanh(cell state)"}


def sizes(params) -> tuple[int, int]:
    H4, D = params["weight_ih"].shape
    return D, H4 // 4


def init_params(rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32):
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H)); rows in gate order i, f, g, o
    (the forget-gate bias is not special-cased)."""
    return seq.uniform_init(rng, seq.pytorch_shapes(4, input_size, hidden_size), hidden_size, dtype)


# ----------------------------------------------------------------------------------------
# the step pair (readable reference)
# ----------------------------------------------------------------------------------------


def step_forward(params, x_t, state, rec_mask=None):
    """One step: ``(h, c), cache`` from x_t (B, D) and state (h_prev, c_prev)."""
    h_prev, c_prev = state
    hr = h_prev if rec_mask is None else h_prev * rec_mask
    z = x_t @ params["weight_ih"].T + params["bias_ih"] + hr @ params["weight_hh"].T + params["bias_hh"]
    zi, zf, zg, zo = seq.gate_blocks(z, 4)
    i, f, g, o = seq.sigmoid(zi), seq.sigmoid(zf), np.tanh(zg), seq.sigmoid(zo)
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    cache = {"params": params, "x": x_t, "hr": hr, "c_prev": c_prev, "i": i, "f": f, "g": g, "o": o, "c": c,
             "tc": tc, "rec_mask": rec_mask}
    return (h, c), cache


def step_backward(dstate, cache):
    """``dx_t, (dh_prev, dc_prev), grads`` from dstate (dh, dc)."""
    dh, dc = dstate
    p = cache["params"]
    i, f, g, o, tc = cache["i"], cache["f"], cache["g"], cache["o"], cache["tc"]
    dc = dc + dh * o * (1.0 - tc * tc)
    dz = np.concatenate([dc * g * i * (1.0 - i), dc * cache["c_prev"] * f * (1.0 - f),
                         dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=1)
    dh_prev = dz @ p["weight_hh"]
    if cache["rec_mask"] is not None:
        dh_prev = dh_prev * cache["rec_mask"]
    db = dz.sum(axis=0)
    grads = {"weight_ih": dz.T @ cache["x"], "weight_hh": dz.T @ cache["hr"], "bias_ih": db, "bias_hh": db.copy()}
    return dz @ p["weight_ih"], (dh_prev, dc * f), grads


def step_activations(cache):
    acts = {k: ("tanh" if k == "g" else "sigmoid", cache[k]) for k in GATES}
    acts["c"] = ("linear", cache["c"])
    acts["tanh_c"] = ("tanh", cache["tc"])
    return acts


def activations(cache):
    G = cache["gates"]
    T, H4, B = G.shape
    G4 = G.reshape(T, 4, H4 // 4, B)
    acts = {k: ("tanh" if k == "g" else "sigmoid", G4[:, j].transpose(2, 0, 1)) for j, k in enumerate(GATES)}
    acts["c"] = ("linear", cache["cells"].transpose(1, 0, 2))
    acts["tanh_c"] = ("tanh", cache["tanh_cells"].transpose(1, 0, 2))
    return acts


# ----------------------------------------------------------------------------------------
# the tuned sequence kernels
# ----------------------------------------------------------------------------------------


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


def _gates_and_cell(g, c_prev, c, tmp, one, two) -> None:
    """One step's gates and new cell in place, shared by `forward` and `infer`: g (4H, n) holds the
    pre-activations (g's rows pre-scaled by 2, see `_stacked_weights`) and becomes [i, f, g, o];
    c = f * c_prev + i * g (tmp is scratch)."""
    H = c.shape[0]
    np.exp(g, out=g)
    np.add(g, one, out=g)
    np.divide(one, g, out=g)  # sigmoid for i, f, o; sigmoid(2z) for g
    gg = g[2 * H : 3 * H]
    np.multiply(gg, two, out=gg)
    np.subtract(gg, one, out=gg)  # tanh(z)
    np.multiply(g[H : 2 * H], c_prev, out=c)
    np.multiply(g[:H], gg, out=tmp)
    np.add(c, tmp, out=c)


def _tanh(c, out, one, two, m_two) -> None:
    """out = tanh(c) as 2 / (1 + exp(-2c)) - 1 (exp(+large) = inf gives the right limit -1)."""
    np.multiply(c, m_two, out=out)
    np.exp(out, out=out)
    np.add(out, one, out=out)
    np.divide(two, out, out=out)
    np.subtract(out, one, out=out)


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT, cT)), cache`` (see module docstring)."""
    W_ih = params["weight_ih"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    E = H + D + 1  # rows of a step's GEMM operand [h_prev; x_t; 1]
    x = seq.batch_first(x, D)
    B, T, _ = x.shape
    h0, c0 = seq.state_tuple(state0, 2, B, H)
    h0 = seq.nonzero_or_none(h0)  # a zero h0 lets the first step skip the recurrent part of its GEMM
    m, pad = seq.mask_feature_major(mask, B, T, dtype)
    out, prev, s0, sT = seq.slots(T, reverse)
    off_prev, off_out = seq.step_offsets(reverse)

    # One allocation for everything the cache keeps: one large block is reused by malloc
    # from call to call, several smaller ones tend to be page-faulted in every time.
    nG, nX, nS = T * H4 * B, (T + 1) * E * B, (T + 1) * H * B
    arena = np.empty(nG + nX + 2 * nS, dtype=dtype)
    G = arena[:nG].reshape(T, H4, B)  # pre-activations, then gates, in place
    # HX (T+1, E, B): slot s holds [h_s; x_t; 1] where h_s is the state in slot s (slot
    # layout of seq.slots) and x_t the input of the step that reads that state.
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
    o_ = slice(3 * H, H4)

    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives the right limits 0 and -1
        for t in seq.steps(T, reverse):
            g = G[t]
            op = HX[t + off_prev]
            if skip:
                np.dot(W_x, op[H:], out=g)
                skip = False
            else:
                np.dot(W, op, out=g)
            c = Cs[t + off_out]
            c_prev = Cs[t + off_prev]
            _gates_and_cell(g, c_prev, c, tmp, one, two)
            if pad is not None:
                np.copyto(c, c_prev, where=pad[t])
            tc = TC[t]
            _tanh(c, tc, one, two, m_two)
            h = Hs[t + off_out]
            np.multiply(g[o_], tc, out=h)
            if pad is not None:
                np.copyto(h, op[:H], where=pad[t])

    hT = Hs[sT].T.copy()
    cT = Cs[sT].T.copy()
    hs_fm = Hs[out] if m is None else Hs[out] * m  # (T, H, B)
    hs = seq.readonly(hs_fm.transpose(2, 0, 1))
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


def infer(params, x, state0=None, mask=None, reverse=False, out=None):
    """`forward` without a cache: ``(hs, (hT, cT))``, the same numbers, for evaluation.

    Keeps one operand [h; x_t; 1] (E, B) and one cell state (H, B), updated in place, and one
    chunk of inputs, feature-major; hs goes into `out` ((B, T, H), any strides; fastest as a view
    of feature-major (T, ., B) memory) or a fresh feature-major array. When each step's real rows
    are one run (``_sequence.step_runs``) a step works on that run's columns only; a general mask
    falls back to masked updates, as in `forward`."""
    W_ih = params["weight_ih"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    E = H + D + 1
    xt = seq.time_major_view(x, D)
    T, B, _ = xt.shape
    h0, c0 = seq.state_tuple(state0, 2, B, H)
    h0 = seq.nonzero_or_none(h0)
    Y = seq.out_view(out, B, T, H, dtype, feature_major=True)
    m, keep, lo, hi = seq.row_ranges(mask, B, T, dtype, feature_major=True)
    K = seq.chunk_steps(T, B, H)
    Xc, op, C, g_flat, c_flat, tc_flat, tmp_flat = seq.carve(
        dtype, (K, D, B), (E, B), (H, B), (H4 * B,), (H * B,), (H * B,), (H * B,))
    W = _stacked_weights(params, dtype)
    W_x = W[:, H:]
    op[H + D] = 1
    if h0 is None:
        op[:H] = 0
    else:
        np.copyto(op[:H], h0.T, casting="unsafe")
    if c0 is None:
        C[...] = 0
    else:
        np.copyto(C, c0.T, casting="unsafe")
    one, two, m_two = dtype.type(1), dtype.type(2), dtype.type(-2)
    o_ = slice(3 * H, H4)
    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives the right limits 0 and -1
        for t0, t1, steps in seq.bptt_chunks(T, K, not reverse):
            kk = t1 - t0
            np.copyto(Xc[:kk], xt[t0:t1].transpose(0, 2, 1), casting="unsafe")
            for t in steps:
                a, b = lo[t], hi[t]
                y = Y[t]
                if a >= b:  # no real row at this step
                    y[...] = 0
                    continue
                nb = b - a
                g = g_flat[: H4 * nb].reshape(H4, nb)
                c = c_flat[: H * nb].reshape(H, nb)
                tc = tc_flat[: H * nb].reshape(H, nb)
                tmp = tmp_flat[: H * nb].reshape(H, nb)
                o = op[:, a:b]
                np.copyto(o[H : H + D], Xc[t - t0, :, a:b])
                if skip:
                    np.dot(W_x, o[H:], out=g)
                    skip = False
                else:
                    np.dot(W, o, out=g)
                c_prev = C[:, a:b]
                _gates_and_cell(g, c_prev, c, tmp, one, two)
                _tanh(c, tc, one, two, m_two)
                np.multiply(g[o_], tc, out=tc)  # h
                if keep is None:
                    np.copyto(c_prev, c)
                    np.copyto(o[:H], tc)
                    np.copyto(y[:, a:b], tc)
                    y[:, :a] = 0
                    y[:, b:] = 0
                else:  # padded rows keep their states and output 0
                    np.copyto(c_prev, c, where=keep[t])
                    np.copyto(o[:H], tc, where=keep[t])
                    np.multiply(o[:H], m[t], out=y)
    hs = Y.transpose(2, 0, 1) if out is None else out
    return hs, (op[:H].T.copy(), C.T.copy())


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
    dhs, (dhT, dcT) = seq.upstream(dhs, dstateT, 2, B, T, H, dtype)
    trace = seq.check_trace(dh_trace, T, B, H)
    out, prev, s0, sT = seq.slots(T, reverse)
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

    # BPTT prepares a chunk's local derivatives together and folds the chunk into the weight
    # gradients with GEMMs over its k*B columns, so a chunk's working set stays in cache
    chunks = seq.column_chunks(T, B, not reverse)  # backward visits positions from the end
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


# ----------------------------------------------------------------------------------------
# graph lowering (ONNX export; rnnlab.engine.lowering)
# ----------------------------------------------------------------------------------------

ONNX_GATE_ORDER = (0, 3, 1, 2)  # ours (PyTorch's) i, f, g, o -> ONNX LSTM's i, o, f, c


def lower_step(g, keys, x_t, state):
    h, c = state
    z = g.op("Add", [lowering.affine(g, x_t, keys["weight_ih"], keys["bias_ih"]),
                     lowering.affine(g, h, keys["weight_hh"], keys["bias_hh"])])
    zi, zf, zg, zo = g.op("Split", [z], outputs=4, axis=1)
    i, f, gg, o = g.op("Sigmoid", [zi]), g.op("Sigmoid", [zf]), g.op("Tanh", [zg]), g.op("Sigmoid", [zo])
    c_new = g.op("Add", [g.op("Mul", [f, c]), g.op("Mul", [i, gg])])
    return g.op("Mul", [o, g.op("Tanh", [c_new])]), c_new


def lower_sequence(g, keys, x):
    W, R, B = lowering.pytorch_weights(g, keys, ONNX_GATE_ORDER)
    return lowering.fused_sequence(g, "LSTM", W, R, B, x, NUM_STATES)
# the cell in generated files outside rnnlab (rnnlab export; contract in _protocol)
# ----------------------------------------------------------------------------------------

STANDALONE = {
    "numpy": '''
def cell_step(p, x, state, **_):
    """LSTM step (gates i, f, g, o): (h, c) from x (B, D) and (h_prev, c_prev)."""
    h, c = state
    z = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    H = h.shape[1]
    i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 3 * H:])
    c = f * c + i * np.tanh(z[:, 2 * H:3 * H])
    return o * np.tanh(c), c
''',
    "torch": '''
CELL_NATIVE = True


def cell_module(input_size, hidden_size, bidirectional, **_):
    return nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)


def cell_step(p, x, state, **_):
    """LSTM step (gates i, f, g, o), as torch.nn.LSTM: (h, c) from x (B, D) and (h_prev, c_prev)."""
    h, c = state
    i, f, g, o = (F.linear(x, p["weight_ih"], p["bias_ih"]) + F.linear(h, p["weight_hh"], p["bias_hh"])).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
''',
    "keras": '''
def cell_layer(hidden_size, go_backwards, dtype, **_):
    return keras.layers.LSTM(hidden_size, return_sequences=True, return_state=True, go_backwards=go_backwards,
                             dtype=dtype)


def cell_weights(p, **_):
    """torch.nn.LSTM's layout as Keras': kernels (in, 4H) with gates i, f, c, o (= i, f, g, o), one bias."""
    return [p["weight_ih"].T, p["weight_hh"].T, p["bias_ih"] + p["bias_hh"]]
''',
}
