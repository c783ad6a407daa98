"""Elman RNN (PyTorch's `torch.nn.RNN`, one layer, one direction) with hand-written BPTT.

x (B, T, D), hidden size H, one state (h,). Parameters (PyTorch's names, suffix ``_l0`` in
``torch.nn.RNN``): ``weight_ih`` (H, D), ``weight_hh`` (H, H), ``bias_ih`` (H,), ``bias_hh`` (H,).

    h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   f = tanh (default) or relu

Masks, directions, states and upstream gradients follow ``_sequence``'s conventions; the
protocol is ``_protocol``'s. The tuned kernel's extras:

* ``infer`` (evaluation) gives forward's hs and final states without a cache: it keeps one
  state and one chunk of inputs, and runs each step on that step's run of real rows when there
  is one (``_sequence.step_runs``); masked updates only for general masks.
* hs (B, T, H) is a read-only, non-contiguous view of time-major storage that aliases the
  cache (copy it before modifying); hT is a fresh (B, H) array.
* ``backward(params, dhs, dstateT, cache, dh_trace=None)``: dhs (B, T, H) or None (only the
  final state is used); dstateT ``(dhT,)`` with dhT an array or None. dh_trace: None, or a
  (T, B, H) array filled with the total dL/dh_t (from dhs and through the later steps), by
  input position; without it the loop pays one ``if`` per step.
* Cache: ``"hs"``, ``"states"`` (T+1, B, H) carried states in ``_sequence.slots`` layout,
  ``"x"`` (T, B, D), ``"mask"``, ``"pad"``, ``"reverse"``, ``"nonlinearity"``. Pre-activations are
  not kept (f is applied in place); for relu, dead units are h == 0.

Speed: time-major storage makes every step's slice contiguous. The input projection of all
steps (biases folded in) is one GEMM written straight into the state buffer; each step adds
h_{t-1} W_hh^T (one GEMM into a preallocated buffer) and applies f in place (tanh as
2 / (1 + exp(-2a)) - 1 on weights pre-scaled by -2: float32 np.tanh costs twice np.exp). BPTT
runs over chunks of steps that reuse the same small buffers: f' for the chunk in two calls,
three calls per step, then the chunk's weight gradients and dx rows as GEMMs over its
(steps x batch) rows. Each call takes its buffers from one allocation (``_sequence.carve``).
No mask costs nothing: the masked path only adds one ``copyto(where=)`` per step.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import lowering
from rnnlab.engine.cells import _sequence as seq
from rnnlab.engine.cells._protocol import Option, Recurrent

NAME = "rnn"
NUM_STATES = 1  # (h,)
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
OPTIONS = {"nonlinearity": Option("tanh", choices=("tanh", "relu"), doc="f in h_t = f(...)")}
RECURRENT = Recurrent("weight_hh", "matrix")
TORCH = "RNN"  # the torch.nn module with the same parameters (parity tests)
LABELS = {"h": "hidden state h"}


def sizes(params) -> tuple[int, int]:
    H, D = params["weight_ih"].shape
    return D, H


def init_params(rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32):
    """PyTorch init: every tensor uniform(-1/sqrt(H), 1/sqrt(H))."""
    return seq.uniform_init(rng, seq.pytorch_shapes(1, input_size, hidden_size), hidden_size, dtype)


# ----------------------------------------------------------------------------------------
# the step pair (readable reference)
# ----------------------------------------------------------------------------------------


def step_forward(params, x_t, state, rec_mask=None, *, nonlinearity="tanh"):
    """One step: ``(h,), cache`` from x_t (B, D) and state (h_prev,)."""
    (h_prev,) = state
    hr = h_prev if rec_mask is None else h_prev * rec_mask
    a = x_t @ params["weight_ih"].T + params["bias_ih"] + hr @ params["weight_hh"].T + params["bias_hh"]
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)
    return (h,), {"params": params, "x": x_t, "hr": hr, "h": h, "rec_mask": rec_mask, "nonlinearity": nonlinearity}


def step_backward(dstate, cache):
    """``dx_t, (dh_prev,), grads`` from dstate (dh,)."""
    (dh,) = dstate
    p, h = cache["params"], cache["h"]
    da = dh * (1.0 - h * h) if cache["nonlinearity"] == "tanh" else dh * (h > 0)
    dh_prev = da @ p["weight_hh"]
    if cache["rec_mask"] is not None:
        dh_prev = dh_prev * cache["rec_mask"]
    db = da.sum(axis=0)
    grads = {"weight_ih": da.T @ cache["x"], "weight_hh": da.T @ cache["hr"], "bias_ih": db, "bias_hh": db.copy()}
    return da @ p["weight_ih"], (dh_prev,), grads


def step_activations(cache):
    return {"h": (cache["nonlinearity"], cache["h"])}


def activations(cache):
    return {"h": (cache["nonlinearity"], cache["hs"])}


# ----------------------------------------------------------------------------------------
# the tuned sequence kernels
# ----------------------------------------------------------------------------------------


def _check_nonlinearity(nonlinearity: str) -> None:
    if nonlinearity not in OPTIONS["nonlinearity"].choices:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu' (got '{nonlinearity}')")


def _scaled_weights(params, tanh: bool, bias):
    """(W_ih.T, W_hh.T) as the kernels multiply them, and the folded bias b_ih + b_hh into `bias`: all
    scaled by -2 for tanh, so that tanh(a) = 2 / (1 + exp(-2a)) - 1 is exp and three cheap calls on the
    product as computed (float32 np.tanh costs twice np.exp); relu takes them as they are."""
    scale = params["weight_ih"].dtype.type(-2 if tanh else 1)
    np.add(params["bias_ih"], params["bias_hh"], out=bias)
    bias *= scale
    return params["weight_ih"].T * scale, params["weight_hh"].T * scale


def _activate(a, tanh: bool, one, two) -> None:
    """The nonlinearity in place on a pre-activation scaled as `_scaled_weights` scales it."""
    if tanh:
        np.exp(a, out=a)
        np.add(a, one, out=a)
        np.divide(two, a, out=a)
        np.subtract(a, one, out=a)
    else:
        np.maximum(a, 0, out=a)


def forward(params, x, state0=None, mask=None, reverse=False, *, nonlinearity="tanh"):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT,)), cache`` (see module docstring)."""
    _check_nonlinearity(nonlinearity)
    W_ih = params["weight_ih"]
    dtype = W_ih.dtype
    H, D = W_ih.shape
    xt, T, B, h0 = seq.time_major_inputs(x, D, state0, H)
    m, pad = seq.mask_time_major(mask, B, T, dtype)
    out, prev, h0_slot, sT = seq.slots(T, reverse)
    order = seq.steps(T, reverse)

    # the input is used as is when it is already time-major (e.g. the hs of a layer below)
    copy_x = not (xt.dtype == dtype and xt.flags.c_contiguous)
    shapes = [(T + 1, B, H), (B, H), (H,)]
    if m is not None:
        shapes.append((T, B, H))
    if copy_x:
        shapes.append((T, B, D))
    bufs = seq.carve(dtype, *shapes)
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
    W_ihT, W_hhT = _scaled_weights(params, tanh, bias)
    A = S[out]
    np.dot(X.reshape(T * B, D), W_ihT, out=A.reshape(T * B, H))
    A += bias
    one, two = dtype.type(1), dtype.type(2)
    off_prev, off_out = seq.step_offsets(reverse)  # step t reads S[t + off_prev], writes S[t + off_out]
    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives tanh -1, as it should
        for t in order:
            a = S[t + off_out]
            if skip:
                skip = False
            else:
                np.dot(S[t + off_prev], W_hhT, out=tmp)
                np.add(a, tmp, out=a)
            _activate(a, tanh, one, two)
            if pad is not None:
                np.copyto(a, S[t + off_prev], where=pad[t])

    hT = S[sT].copy()
    if m is None:
        hs_tm = S[out]
    else:
        hs_tm = np.multiply(S[out], m, out=hs_buf)
    hs = seq.readonly(hs_tm.transpose(1, 0, 2))
    cache = {
        "x": X,
        "states": S,
        "hs": hs,
        "mask": m,
        "pad": pad,
        "reverse": bool(reverse),
        "nonlinearity": nonlinearity,
    }
    return (hs, (hT,)), cache


def infer(params, x, state0=None, mask=None, reverse=False, out=None, *, nonlinearity="tanh"):
    """`forward` without a cache: ``(hs, (hT,))``, the same numbers, for evaluation.

    Keeps one state (B, H), updated in place, and one chunk of input projections, time-major;
    hs goes into `out` ((B, T, H), any strides) or a fresh time-major array. When each step's
    real rows are one run (``_sequence.step_runs``) a step works on that run only; a general
    mask falls back to masked updates, as in `forward`."""
    _check_nonlinearity(nonlinearity)
    W_ih = params["weight_ih"]
    dtype = W_ih.dtype
    H, D = W_ih.shape
    xt, T, B, h0 = seq.time_major_inputs(x, D, state0, H)
    Y = seq.out_view(out, B, T, H, dtype, feature_major=False)
    m, keep, lo, hi = seq.row_ranges(mask, B, T, dtype, feature_major=False)
    K = seq.chunk_steps(T, B, H)
    Xc, P, h, tmp_flat, bias = seq.carve(dtype, (K, B, D), (K, B, H), (B, H), (B * H,), (H,))
    if h0 is None:
        h[...] = 0
    else:
        np.copyto(h, h0, casting="unsafe")
    tanh = nonlinearity == "tanh"
    W_ihT, W_hhT = _scaled_weights(params, tanh, bias)
    one, two = dtype.type(1), dtype.type(2)
    skip = h0 is None
    with np.errstate(over="ignore"):  # exp(+large) = inf gives tanh -1, as it should
        for t0, t1, steps in seq.bptt_chunks(T, K, not reverse):
            kk = t1 - t0
            np.copyto(Xc[:kk], xt[t0:t1], casting="unsafe")
            Pc = P[:kk]
            np.dot(Xc[:kk].reshape(kk * B, D), W_ihT, out=Pc.reshape(kk * B, H))
            Pc += bias
            for t in steps:
                lo_t, hi_t = lo[t], hi[t]
                y = Y[t]
                if lo_t >= hi_t:  # no real row at this step
                    y[...] = 0
                    continue
                a = Pc[t - t0, lo_t:hi_t]
                if skip:
                    skip = False
                else:
                    tmp = tmp_flat[: (hi_t - lo_t) * H].reshape(hi_t - lo_t, H)
                    np.dot(h[lo_t:hi_t], W_hhT, out=tmp)
                    np.add(a, tmp, out=a)
                _activate(a, tanh, one, two)
                if keep is None:
                    np.copyto(h[lo_t:hi_t], a)
                    np.copyto(y[lo_t:hi_t], a)
                    y[:lo_t] = 0
                    y[hi_t:] = 0
                else:  # padded rows keep their state and output 0
                    np.copyto(h, a, where=keep[t])
                    np.multiply(h, m[t], out=y)
    hs = Y.transpose(1, 0, 2) if out is None else out
    return hs, (h.copy(),)


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H, D = W_ih.shape
    X, S = cache["x"], cache["states"]
    T, B, _ = X.shape
    m, pad, reverse = cache["mask"], cache["pad"], cache["reverse"]
    dhs, (dhT,) = seq.upstream(dhs, dstateT, 1, B, T, H, dtype, time_major=True)  # dhs (T, B, H)
    trace = seq.check_trace(dh_trace, T, B, H)
    off_prev, off_out = seq.step_offsets(reverse)
    tanh = cache["nonlinearity"] == "tanh"

    K = seq.chunk_steps(T, B, H)
    shapes = [(K, B, H), (K, B, H), (B, H), (B, H), (K * B,), (H, D), (H, H), (H,)]
    if dhs is not None:
        shapes.append((K, B, H))
    bufs = seq.carve(dtype, *shapes)
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
    for t0, t1, steps in seq.bptt_chunks(T, K, reverse):
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


# ----------------------------------------------------------------------------------------
# graph lowering (ONNX export; rnnlab.engine.lowering)
# ----------------------------------------------------------------------------------------

ONNX_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}  # onnxruntime refuses lower-case names


def lower_step(g, keys, x_t, state, *, nonlinearity="tanh"):
    (h,) = state
    a = g.op("Add", [lowering.affine(g, x_t, keys["weight_ih"], keys["bias_ih"]),
                     lowering.affine(g, h, keys["weight_hh"], keys["bias_hh"])])
    return (g.op(ONNX_ACTIVATIONS[nonlinearity], [a]),)


def lower_sequence(g, keys, x, *, nonlinearity="tanh"):
    """ONNX RNN: no gates, so no permutation; one activation per direction."""
    W, R, B = lowering.pytorch_weights(g, keys)
    return lowering.fused_sequence(g, "RNN", W, R, B, x, NUM_STATES,
                                   activations=[ONNX_ACTIVATIONS[nonlinearity]] * len(keys))
# the cell in generated files outside rnnlab (rnnlab export; contract in _protocol)
# ----------------------------------------------------------------------------------------

STANDALONE = {
    "numpy": '''
def cell_step(p, x, state, nonlinearity="tanh", **_):
    """Elman RNN step: (h,) from x (B, D) and (h_prev,)."""
    a = x @ p["weight_ih"].T + p["bias_ih"] + state[0] @ p["weight_hh"].T + p["bias_hh"]
    return (np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0),)
''',
    "torch": '''
CELL_NATIVE = True


def cell_module(input_size, hidden_size, bidirectional, nonlinearity="tanh", **_):
    return nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True,
                  bidirectional=bidirectional)


def cell_step(p, x, state, nonlinearity="tanh", **_):
    """Elman RNN step, as torch.nn.RNN: (h,) from x (B, D) and (h_prev,)."""
    a = F.linear(x, p["weight_ih"], p["bias_ih"]) + F.linear(state[0], p["weight_hh"], p["bias_hh"])
    return (torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a),)
''',
    "keras": '''
def cell_layer(hidden_size, go_backwards, dtype, nonlinearity="tanh", **_):
    return keras.layers.SimpleRNN(hidden_size, activation=nonlinearity, return_sequences=True, return_state=True,
                                  go_backwards=go_backwards, dtype=dtype)


def cell_weights(p, **_):
    """torch.nn.RNN's layout as Keras': kernels (in, H), one bias."""
    return [p["weight_ih"].T, p["weight_hh"].T, p["bias_ih"] + p["bias_hh"]]
''',
}
