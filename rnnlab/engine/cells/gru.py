"""GRU (PyTorch's `torch.nn.GRU`, one layer, one direction) with hand-written BPTT.

x (B, T, D), hidden size H, one state (h,). Parameters (PyTorch's names, suffix ``_l0`` in
``torch.nn.GRU``), gates stacked in the order **r, z, n**: ``weight_ih`` (3H, D), ``weight_hh``
(3H, H), ``bias_ih`` (3H,), ``bias_hh`` (3H,).

    r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))      # b_hn inside the reset product
    h' = (1 - z) * n + z * h

Masks, directions, states and upstream gradients follow ``_sequence``'s conventions; the
protocol is ``_protocol``'s. Padded inputs must be finite (they are multiplied by zero, not
skipped). The tuned kernel's extras:

* ``infer`` (evaluation) gives forward's hs and final states without a cache: it keeps one
  state and one chunk of inputs, and runs each step on that step's run of real rows when there
  is one (``_sequence.step_runs``); masked updates only for general masks.
* hs (B, T, H) is a read-only, non-contiguous view that aliases the cache; hT is fresh.
  dh_trace, if given, is filled with the total dL/dh_t by input position.
* Cache: ``"r"``, ``"z"``, ``"n"`` read-only (B, T, H) views of the activations; ``"hs"``;
  ``"states"`` (T+1, B, H) in ``_sequence.slots`` layout. Internals, feature-major: ``"gates"``
  (T, 4H, B) rows [r | z | -2 ghn | n] with ghn = W_hn h_{t-1} + b_hn (scaled: see below),
  ``"hx"`` (T+1, H+1, B) the states with a row of ones, ``"x"`` (D+1, T, B) the input with a
  row of ones, ``"mask"`` (T, 1, B), ``"pad"``, ``"reverse"``.

Speed: the recurrence runs feature-major, as in lstm.py: a state is (H, B) and a step's product
is W_hh (3H, H+1) @ [h; 1] (b_hn rides on the ones row), the operand layout in which OpenBLAS
with two threads runs these skinny GEMMs 1.4-1.9x faster than (B, H) @ (H, 3H). The r and z rows
are negated and the n rows scaled by -2 once per call, so that sigmoid(a) = 1 / (1 + exp(-a))
and tanh(a) = 2 / (1 + exp(-2a)) - 1 are exp and three cheap calls on the products as computed.
The forward pass projects a chunk's inputs with one GEMM over its (steps x batch) columns
(biases ride on the ones row of x); BPTT computes a chunk's gate-derivative factors with a few
vectorised calls, runs the recurrence (seven calls per step), then folds the chunk into the
weight gradients and dx with GEMMs. Each call takes its buffers from one allocation.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import lowering
from rnnlab.engine.cells import _sequence as seq
from rnnlab.engine.cells._protocol import Recurrent

NAME = "gru"
NUM_STATES = 1  # (h,)
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = ("r", "z", "n")
RECURRENT = Recurrent("weight_hh", "matrix", GATES, carrier="n")
TORCH = "GRU"  # the torch.nn module with the same parameters (parity tests)
LABELS = {"r": "reset gate r", "z": "update gate z", "n": "candidate n"}


def sizes(params) -> tuple[int, int]:
    return params["weight_ih"].shape[1], params["weight_hh"].shape[1]


def init_params(rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32):
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H)); rows stacked r, z, n."""
    return seq.uniform_init(rng, seq.pytorch_shapes(3, input_size, hidden_size), hidden_size, dtype)


# ----------------------------------------------------------------------------------------
# the step pair (readable reference)
# ----------------------------------------------------------------------------------------


def step_forward(params, x_t, state, rec_mask=None):
    """One step: ``(h,), cache`` from x_t (B, D) and state (h_prev,)."""
    (h_prev,) = state
    hr = h_prev if rec_mask is None else h_prev * rec_mask
    gi = x_t @ params["weight_ih"].T + params["bias_ih"]
    gh = hr @ params["weight_hh"].T + params["bias_hh"]
    H = h_prev.shape[1]
    r = seq.sigmoid(gi[:, :H] + gh[:, :H])
    z = seq.sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    ghn = gh[:, 2 * H :]
    n = np.tanh(gi[:, 2 * H :] + r * ghn)
    h = (1.0 - z) * n + z * h_prev
    cache = {"params": params, "x": x_t, "h_prev": h_prev, "hr": hr, "r": r, "z": z, "n": n, "ghn": ghn,
             "rec_mask": rec_mask}
    return (h,), cache


def step_backward(dstate, cache):
    """``dx_t, (dh_prev,), grads`` from dstate (dh,)."""
    (dh,) = dstate
    p = cache["params"]
    r, z, n = cache["r"], cache["z"], cache["n"]
    dn = dh * (1.0 - z) * (1.0 - n * n)  # dL/d(pre-activation of n)
    dz = dh * (cache["h_prev"] - n) * z * (1.0 - z)
    dr = dn * cache["ghn"] * r * (1.0 - r)
    dgi = np.concatenate([dr, dz, dn], axis=1)  # input side, rows r, z, n
    dgh = np.concatenate([dr, dz, dn * r], axis=1)  # hidden side: b_hn and W_hn sit inside r * (...)
    dh_prev = dgh @ p["weight_hh"]
    if cache["rec_mask"] is not None:
        dh_prev = dh_prev * cache["rec_mask"]
    grads = {"weight_ih": dgi.T @ cache["x"], "weight_hh": dgh.T @ cache["hr"], "bias_ih": dgi.sum(axis=0),
             "bias_hh": dgh.sum(axis=0)}
    return dgi @ p["weight_ih"], (dh_prev + dh * z,), grads


def step_activations(cache):
    return {"r": ("sigmoid", cache["r"]), "z": ("sigmoid", cache["z"]), "n": ("tanh", cache["n"])}


def activations(cache):
    return {"r": ("sigmoid", cache["r"]), "z": ("sigmoid", cache["z"]), "n": ("tanh", cache["n"])}


# ----------------------------------------------------------------------------------------
# the tuned sequence kernels
# ----------------------------------------------------------------------------------------


def _scaled_weights(params, WihS, WhhS) -> None:
    """Fill WihS (3H, D+1) and WhhS (3H, H+1), the weights as the kernels multiply them.

    r, z rows scaled by -1 and n rows by -2 (one exp then gives the sigmoids and
    tanh(a) = 2 / (1 + exp(-2a)) - 1); the input weights carry the folded biases as a last
    column [b_ir + b_hr, b_iz + b_hz, b_in], the recurrent ones [0, 0, b_hn] (b_hn stays
    inside r * (...))."""
    W_ih, W_hh, b_ih, b_hh = params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"]
    H3, D = W_ih.shape
    H = H3 // 3
    H2 = 2 * H
    scale = np.full((H3, 1), -1, dtype=W_ih.dtype)
    scale[H2:] = -2
    np.multiply(W_ih, scale, out=WihS[:, :D])
    np.copyto(WihS[:, D], b_ih)
    WihS[:H2, D] += b_hh[:H2]
    WihS[:, D] *= scale[:, 0]
    np.multiply(W_hh, scale, out=WhhS[:, :H])
    WhhS[:H2, H] = 0
    np.multiply(b_hh[H2:], scale[H2:, 0], out=WhhS[H2:, H])


def _gates(g, xp, h, tmp, one, two) -> None:
    """One step's gates in place, shared by `forward` and `infer`: g (4H, n) holds the scaled recurrent
    products in its first 3H rows (see `_scaled_weights`), xp (3H, n) the input projections. Afterwards
    g = [r, z, W_hn h + b_hn, n] and tmp = z * (h - n), so the new state is tmp + n (each kernel writes it
    where it keeps it)."""
    H = h.shape[0]
    H2, H3 = 2 * H, 3 * H
    rz, r, z, gn, n = g[:H2], g[:H], g[H:H2], g[H2:H3], g[H3:]
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
    np.subtract(h, n, out=tmp)  # h' = n + z * (h - n)
    np.multiply(tmp, z, out=tmp)


def forward(params, x, state0=None, mask=None, reverse=False):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT,)), cache`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    H2, H3 = 2 * H, 3 * H
    xt, T, B, h0 = seq.time_major_inputs(x, D, state0, H)
    m, pad = seq.mask_feature_major(mask, B, T, dtype)
    out, prev, s0, sT = seq.slots(T, reverse)
    K = seq.chunk_steps(T, B, H)
    shapes = [(T, 4 * H, B), (T + 1, H + 1, B), (D + 1, T, B), (H3 * K * B,), (H3, D + 1), (H3, H + 1), (H, B)]
    if m is not None:
        shapes.append((T, H, B))
    bufs = seq.carve(dtype, *shapes)
    G, HX, Xa, xp_flat, WihS, WhhS, tmp = bufs[:7]
    hs_buf = bufs[7] if m is not None else None

    np.copyto(Xa[:D], xt.transpose(2, 0, 1), casting="unsafe")
    Xa[D] = 1
    _scaled_weights(params, WihS, WhhS)

    HX[:, H] = 1
    if h0 is None:
        HX[s0, :H] = 0
    else:
        np.copyto(HX[s0, :H], h0.T, casting="unsafe")
    off_prev, off_out = seq.step_offsets(reverse)  # step t reads HX[t + off_prev], writes HX[t + off_out]
    one, two = dtype.type(1), dtype.type(2)
    skip = h0 is None  # first step from a zero state: the recurrent product is its bias column
    with np.errstate(over="ignore"):  # exp(-a) = inf gives sigmoid 0, as it should
        for t0, t1, steps in seq.bptt_chunks(T, K, not reverse):  # chunks in processing order
            kk = t1 - t0
            xpc = xp_flat[: H3 * kk * B].reshape(H3, kk, B)
            np.dot(WihS, Xa[:, t0:t1].reshape(D + 1, kk * B), out=xpc.reshape(H3, kk * B))
            for t in steps:
                xp = xpc[:, t - t0]
                g = G[t]
                hp = HX[t + off_prev]
                ho = HX[t + off_out, :H]
                if skip:
                    skip = False
                    np.copyto(g[:H3], WhhS[:, H:])
                else:
                    np.dot(WhhS, hp, out=g[:H3])
                _gates(g, xp, hp[:H], tmp, one, two)
                np.add(tmp, g[H3:], out=ho)
                if pad is not None:
                    np.copyto(ho, hp[:H], where=pad[t])

    Hs = HX[:, :H]
    hT = Hs[sT].T.copy()
    hs_fm = Hs[out] if m is None else np.multiply(Hs[out], m, out=hs_buf)  # (T, H, B)
    hs = seq.readonly(hs_fm.transpose(2, 0, 1))
    cache = {
        "x": Xa,
        "hx": HX,
        "states": seq.readonly(Hs.transpose(0, 2, 1)),
        "hs": hs,
        "gates": G,
        "r": seq.readonly(G[:, :H].transpose(2, 0, 1)),
        "z": seq.readonly(G[:, H:H2].transpose(2, 0, 1)),
        "n": seq.readonly(G[:, H3:].transpose(2, 0, 1)),
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
    }
    return (hs, (hT,)), cache


def infer(params, x, state0=None, mask=None, reverse=False, out=None):
    """`forward` without a cache: ``(hs, (hT,))``, the same numbers, for evaluation.

    Keeps one state (H+1, B), updated in place, and one chunk of input projections; hs goes
    into `out` ((B, T, H), any strides; fastest as a view of feature-major (T, ., B) memory,
    as ``blocks.Recurrent`` passes) or a fresh feature-major array. When each step's real rows
    are one run (``_sequence.step_runs``: no mask, or length-sorted rows) a step works on that
    run's columns only; a general mask falls back to masked updates, as in `forward`."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H = W_hh.shape[1]
    D = W_ih.shape[1]
    H3, H4 = 3 * H, 4 * H
    xt, T, B, h0 = seq.time_major_inputs(x, D, state0, H)
    Y = seq.out_view(out, B, T, H, dtype, feature_major=True)
    m, keep, lo, hi = seq.row_ranges(mask, B, T, dtype, feature_major=True)
    K = seq.chunk_steps(T, B, H)
    Xc, xp_flat, WihS, WhhS, hx, g_flat, tmp_flat = seq.carve(
        dtype, (D + 1, K * B), (H3 * K * B,), (H3, D + 1), (H3, H + 1), (H + 1, B), (H4 * B,), (H * B,))
    _scaled_weights(params, WihS, WhhS)
    Xc[D] = 1
    hx[H] = 1
    if h0 is None:
        hx[:H] = 0
    else:
        np.copyto(hx[:H], h0.T, casting="unsafe")
    one, two = dtype.type(1), dtype.type(2)
    skip = h0 is None  # first step from a zero state: the recurrent product is its bias column
    with np.errstate(over="ignore"):  # exp(-a) = inf gives sigmoid 0, as it should
        for t0, t1, steps in seq.bptt_chunks(T, K, not reverse):  # chunks in processing order
            kk = t1 - t0
            nn = kk * B
            np.copyto(Xc[:D, :nn].reshape(D, kk, B), xt[t0:t1].transpose(2, 0, 1), casting="unsafe")
            xpc = xp_flat[: H3 * nn].reshape(H3, kk, B)
            np.dot(WihS, Xc[:, :nn], out=xpc.reshape(H3, nn))
            for t in steps:
                a, b = lo[t], hi[t]
                y = Y[t]
                if a >= b:  # no real row at this step
                    y[...] = 0
                    continue
                nb = b - a
                g = g_flat[: H4 * nb].reshape(H4, nb)
                tmp = tmp_flat[: H * nb].reshape(H, nb)
                hp = hx[:, a:b]
                xp = xpc[:, t - t0, a:b]
                if skip:
                    skip = False
                    np.copyto(g[:H3], WhhS[:, H:])
                else:
                    np.dot(WhhS, hp, out=g[:H3])
                _gates(g, xp, hp[:H], tmp, one, two)
                n = g[H3:]
                if keep is None:  # h' = tmp + n, in place of h
                    np.add(tmp, n, out=hp[:H])
                    np.copyto(y[:, a:b], hp[:H])
                    y[:, :a] = 0
                    y[:, b:] = 0
                else:  # padded rows keep their state and output 0
                    np.add(tmp, n, out=hp[:H], where=keep[t])
                    np.multiply(hp[:H], m[t], out=y)
    hs = Y.transpose(2, 0, 1) if out is None else out
    return hs, (hx[:H].T.copy(),)


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
    dhs, (dhT,) = seq.upstream(dhs, dstateT, 1, B, T, H, dtype, time_major=True)  # dhs (T, B, H)
    trace = seq.check_trace(dh_trace, T, B, H)
    off_prev, _ = seq.step_offsets(reverse)
    one = dtype.type(1)

    # With g = dL/dh_t (total) and c = dL/dh_{t-1} (the carry to the earlier step):
    #   da_z = g * z(1-z)(h_prev - n)        da_n = g * (1-z)(1-n^2)
    #   dghn = da_n * r                      da_r = da_n * r(1-r) ghn
    #   c    = g * z + [W_hn; W_hr; W_hz]^T [dghn; da_r; da_z]
    # Per chunk: Fr = r(1-r) ghn, F2 = [z(1-z)(h-n), (1-z)(1-n^2)], and DG (4H, k, B) rows
    # [dghn | da_r | da_z | da_n]: rows 0:3H are the hidden side (W_hh rows n, r, z), rows
    # H:4H the input side in PyTorch's r, z, n order.
    K = seq.chunk_steps(T, B, H)
    shapes = [(K, H, B), (K, 2, H, B), (K, H, B), (H4 * K * B,), (H, H3), (H, B), (H, B), (H, B)]
    shapes += [(H3, D + 1), (H3, H), (H,), (H3, D + 1), (H3, H), (H,), (H * K * B,), (K * B,)]
    if m is not None:
        shapes.append((K, H, B))
    if dhs is not None:
        shapes.append((K, H, B))
    bufs = seq.carve(dtype, *shapes)
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

    for t0, t1, steps in seq.bptt_chunks(T, K, reverse):
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


# ----------------------------------------------------------------------------------------
# graph lowering (ONNX export; rnnlab.engine.lowering)
# ----------------------------------------------------------------------------------------

ONNX_GATE_ORDER = (1, 0, 2)  # ours (PyTorch's) r, z, n -> ONNX GRU's z, r, h


def lower_step(g, keys, x_t, state):
    (h,) = state
    ir, iz, i_n = g.op("Split", [lowering.affine(g, x_t, keys["weight_ih"], keys["bias_ih"])], outputs=3, axis=1)
    hr, hz, hn = g.op("Split", [lowering.affine(g, h, keys["weight_hh"], keys["bias_hh"])], outputs=3, axis=1)
    r = g.op("Sigmoid", [g.op("Add", [ir, hr])])
    z = g.op("Sigmoid", [g.op("Add", [iz, hz])])
    n = g.op("Tanh", [g.op("Add", [i_n, g.op("Mul", [r, hn])])])
    keep_new = g.op("Sub", [g.const(np.array(1.0)), z])
    return (g.op("Add", [g.op("Mul", [keep_new, n]), g.op("Mul", [z, h])]),)


def lower_sequence(g, keys, x):
    """linear_before_reset=1 is our GRU (b_hn inside the reset product); the default 0 is the other variant."""
    W, R, B = lowering.pytorch_weights(g, keys, ONNX_GATE_ORDER)
    return lowering.fused_sequence(g, "GRU", W, R, B, x, NUM_STATES, linear_before_reset=1)
# the cell in generated files outside rnnlab (rnnlab export; contract in _protocol)
# ----------------------------------------------------------------------------------------

STANDALONE = {
    "numpy": '''
def cell_step(p, x, state, **_):
    """GRU step (gates r, z, n; b_hn inside the reset product): (h,) from x (B, D) and (h_prev,)."""
    (h,) = state
    gi = x @ p["weight_ih"].T + p["bias_ih"]
    gh = h @ p["weight_hh"].T + p["bias_hh"]
    H = h.shape[1]
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return ((1.0 - z) * n + z * h,)
''',
    "torch": '''
CELL_NATIVE = True


def cell_module(input_size, hidden_size, bidirectional, **_):
    return nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=bidirectional)


def cell_step(p, x, state, **_):
    """GRU step, as torch.nn.GRU: (h,) from x (B, D) and (h_prev,)."""
    (h,) = state
    ir, iz, i_n = F.linear(x, p["weight_ih"], p["bias_ih"]).chunk(3, -1)
    hr, hz, hn = F.linear(h, p["weight_hh"], p["bias_hh"]).chunk(3, -1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(i_n + r * hn)
    return ((1.0 - z) * n + z * h,)
''',
    "keras": '''
def cell_layer(hidden_size, go_backwards, dtype, **_):
    return keras.layers.GRU(hidden_size, reset_after=True, return_sequences=True, return_state=True,
                            go_backwards=go_backwards, dtype=dtype)


def cell_weights(p, **_):
    """torch.nn.GRU's layout (gates r, z, n) as Keras' with reset_after (gates z, r, h; biases (2, 3H))."""
    def zrn(a):
        r, z, n = np.split(a, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    return [zrn(p["weight_ih"]).T, zrn(p["weight_hh"]).T, np.stack([zrn(p["bias_ih"]), zrn(p["bias_hh"])])]
''',
}
