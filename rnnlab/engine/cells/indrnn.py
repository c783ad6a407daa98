"""IndRNN: the independently recurrent network (Li, Li, Cook, Zhu & Gao 2018, "Independently Recurrent
Neural Network (IndRNN): Building A Longer and Deeper RNN").

x (B, T, D), hidden size H, one state (h,). Each unit has ONE recurrent weight, its own: the recurrence
is elementwise, u a vector, not a matrix. Parameters: ``weight_ih`` (H, D), ``weight_hh`` (H,) (the
vector u), ``bias`` (H,).

    h_t = f(W_ih x_t + u * h_{t-1} + b),   f = relu (default) or tanh

Why it lasts: dL/dh_t reaches step t - k through unit j multiplied by u_j^k f'(...)^k only (no mixing
of units through a matrix), so bounding |u_j| bounds the growth or decay of every unit's gradient over
k steps: with relu and u_j in [0, 1], a unit either keeps its memory (u_j = 1 passes it unchanged) or
forgets at its own rate. Li et al. keep |u| <= 2^(1/T) (a gradient grows at most 2x over a sequence
of T steps) and, for long memory in the last layer, |u| >= (1/2)^(1/T). Here the two bounds are the
options ``recurrent_max`` (default 1) and ``recurrent_min`` (default 0): the initial u is uniform in
[recurrent_min, recurrent_max], and ``after_step`` projects |u| back into that range after every
optimizer step (the sign of u is kept). Input weights and the bias start U(-1/sqrt(H), 1/sqrt(H)) as in
torch.nn.RNN. Deep IndRNNs stack layers (arch.num_layers): the units of a layer then mix through the
next layer's input weights.

Masks, directions, states and upstream gradients follow ``_sequence``'s conventions; the protocol is
``_protocol``'s. Cache of the tuned kernel: ``"states"`` (T+1, B, H) carried states in
``_sequence.slots`` layout, ``"x"`` (T, B, D), ``"hs"``, ``"mask"``, ``"pad"``, ``"reverse"``,
``"nonlinearity"``. Speed: the input projection of all steps is one GEMM written into the state
buffer; a step is then three elementwise calls; BPTT is four per step, and the weight gradients are
GEMMs over all (step, sequence) rows at the end.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import lowering
from rnnlab.engine.cells import _sequence as seq
from rnnlab.engine.cells._protocol import Option, Recurrent

NAME = "indrnn"
NUM_STATES = 1  # (h,)
PARAM_NAMES = ("weight_ih", "weight_hh", "bias")
OPTIONS = {
    "nonlinearity": Option("relu", choices=("relu", "tanh"), doc="f in h_t = f(...)"),
    "recurrent_max": Option(1.0, low=0.0, doc="upper bound of |u| (Li et al.: 2 ** (1 / T))"),
    "recurrent_min": Option(0.0, low=0.0, doc="lower bound of |u| (long memory: 0.5 ** (1 / T))"),
}
RECURRENT = Recurrent("weight_hh", "diagonal")
LABELS = {"h": "hidden state h"}


def check_options(options) -> None:
    if options["recurrent_min"] > options["recurrent_max"]:
        raise ValueError(f"recurrent_min ({options['recurrent_min']}) must not exceed "
                         f"recurrent_max ({options['recurrent_max']})")


def sizes(params) -> tuple[int, int]:
    H, D = params["weight_ih"].shape
    return D, H


def init_params(rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32, *,
                recurrent_max: float = 1.0, recurrent_min: float = 0.0):
    """weight_ih and bias U(-1/sqrt(H), 1/sqrt(H)); u uniform in [recurrent_min, recurrent_max]."""
    p = seq.uniform_init(rng, {"weight_ih": (hidden_size, input_size)}, hidden_size, dtype)
    p["weight_hh"] = rng.uniform(recurrent_min, recurrent_max, size=hidden_size).astype(dtype)
    p["bias"] = seq.uniform_init(rng, {"bias": (hidden_size,)}, hidden_size, dtype)["bias"]
    return p


def after_step(params, *, recurrent_max: float = 1.0, recurrent_min: float = 0.0) -> None:
    """|u| back into [recurrent_min, recurrent_max], in place, keeping each weight's sign."""
    u = params["weight_hh"]
    sign = np.where(u < 0, -1.0, 1.0).astype(u.dtype)
    np.multiply(sign, np.clip(np.abs(u), recurrent_min, recurrent_max), out=u)


def _derivative(h, nonlinearity):
    """f'(a) from h = f(a): relu 0/1 (h >= 0, so sign), tanh 1 - h^2."""
    return np.sign(h) if nonlinearity == "relu" else 1.0 - h * h


# ----------------------------------------------------------------------------------------
# the step pair (readable reference)
# ----------------------------------------------------------------------------------------


def step_forward(params, x_t, state, rec_mask=None, *, nonlinearity="relu"):
    """One step: ``(h,), cache`` from x_t (B, D) and state (h_prev,)."""
    (h_prev,) = state
    hr = h_prev if rec_mask is None else h_prev * rec_mask
    a = x_t @ params["weight_ih"].T + params["weight_hh"] * hr + params["bias"]
    h = np.maximum(a, 0.0) if nonlinearity == "relu" else np.tanh(a)
    return (h,), {"params": params, "x": x_t, "hr": hr, "h": h, "rec_mask": rec_mask, "nonlinearity": nonlinearity}


def step_backward(dstate, cache):
    """``dx_t, (dh_prev,), grads`` from dstate (dh,)."""
    (dh,) = dstate
    p = cache["params"]
    da = dh * _derivative(cache["h"], cache["nonlinearity"])
    dh_prev = da * p["weight_hh"]
    if cache["rec_mask"] is not None:
        dh_prev = dh_prev * cache["rec_mask"]
    grads = {"weight_ih": da.T @ cache["x"], "weight_hh": (da * cache["hr"]).sum(axis=0), "bias": da.sum(axis=0)}
    return da @ p["weight_ih"], (dh_prev,), grads


def step_activations(cache):
    return {"h": (cache["nonlinearity"], cache["h"])}


def activations(cache):
    return {"h": (cache["nonlinearity"], cache["hs"])}


# ----------------------------------------------------------------------------------------
# the tuned sequence kernels
# ----------------------------------------------------------------------------------------


def forward(params, x, state0=None, mask=None, reverse=False, *, nonlinearity="relu"):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT,)), cache``."""
    if nonlinearity not in OPTIONS["nonlinearity"].choices:
        raise ValueError(f"nonlinearity must be 'relu' or 'tanh' (got '{nonlinearity}')")
    W, u = params["weight_ih"], params["weight_hh"]
    dtype = W.dtype
    H, D = W.shape
    X = np.ascontiguousarray(seq.time_major_view(x, D), dtype=dtype)  # (T, B, D)
    T, B, _ = X.shape
    h0 = seq.state_tuple(state0, 1, B, H)[0]
    m, pad = seq.mask_time_major(mask, B, T, dtype)
    out, prev, s0, sT = seq.slots(T, reverse)
    off_prev, off_out = seq.step_offsets(reverse)
    S = np.empty((T + 1, B, H), dtype=dtype)
    S[s0] = 0 if h0 is None else h0
    np.dot(X.reshape(T * B, D), W.T, out=S[out].reshape(T * B, H))  # every step's input projection
    S[out] += params["bias"]
    relu = nonlinearity == "relu"
    tmp = np.empty((B, H), dtype=dtype)
    for t in seq.steps(T, reverse):
        a = S[t + off_out]
        np.multiply(S[t + off_prev], u, out=tmp)
        a += tmp
        if relu:
            np.maximum(a, 0, out=a)
        else:
            np.tanh(a, out=a)
        if pad is not None:
            np.copyto(a, S[t + off_prev], where=pad[t])
    hs = seq.readonly((S[out] if m is None else S[out] * m).transpose(1, 0, 2))
    cache = {"states": S, "x": X, "hs": hs, "mask": m, "pad": pad, "reverse": bool(reverse),
             "nonlinearity": nonlinearity}
    return (hs, (S[sT].copy(),)), cache


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0,), grads``."""
    W, u = params["weight_ih"], params["weight_hh"]
    dtype = W.dtype
    H, D = W.shape
    X, S, m, pad, reverse = cache["x"], cache["states"], cache["mask"], cache["pad"], cache["reverse"]
    T, B, _ = X.shape
    dhs, (dhT,) = seq.upstream(dhs, dstateT, 1, B, T, H, dtype)
    trace = seq.check_trace(dh_trace, T, B, H)
    out, prev, _, _ = seq.slots(T, reverse)
    Df = _derivative(S[out], cache["nonlinearity"])  # f'(a_t), zero at padded steps
    if m is not None:
        Df *= m
    direct = None if dhs is None else dhs.transpose(1, 0, 2)  # (T, B, H) view
    dA = np.empty((T, B, H), dtype=dtype)
    c = np.zeros((B, H), dtype=dtype) if dhT is None else dhT.copy()  # dL/dh_t through the later steps
    for t in reversed(seq.steps(T, reverse)):
        g = c if direct is None else c + (direct[t] if m is None else direct[t] * m[t])
        if trace is not None:
            np.copyto(trace[t], g, casting="same_kind")  # total dL/dh_t
        np.multiply(g, Df[t], out=dA[t])
        carry = dA[t] * u
        if pad is not None:
            np.add(carry, g, out=carry, where=pad[t])  # a padded step carried h: its gradient passes on
        c = carry
    rows = dA.reshape(T * B, H)
    grads = {"weight_ih": rows.T @ X.reshape(T * B, D), "weight_hh": np.einsum("tbh,tbh->h", dA, S[prev]),
             "bias": rows.sum(axis=0)}
    return (rows @ W).reshape(T, B, D).transpose(1, 0, 2), (c,), grads


# ----------------------------------------------------------------------------------------
# graph lowering (ONNX export; rnnlab.engine.lowering): no ONNX op, so the export runs this step in a Scan
# ----------------------------------------------------------------------------------------


def lower_step(g, keys, x_t, state, *, nonlinearity="relu"):
    (h,) = state
    a = g.op("Add", [lowering.affine(g, x_t, keys["weight_ih"], keys["bias"]),
                     g.op("Mul", [g.param(keys["weight_hh"]), h])])
    return (g.op("Relu" if nonlinearity == "relu" else "Tanh", [a]),)
# the cell in generated files outside rnnlab (rnnlab export; contract in _protocol)
# ----------------------------------------------------------------------------------------

STANDALONE = {
    "numpy": '''
def cell_step(p, x, state, nonlinearity="relu", **_):
    """IndRNN step (one recurrent weight per unit): (h,) from x (B, D) and (h_prev,)."""
    a = x @ p["weight_ih"].T + p["weight_hh"] * state[0] + p["bias"]
    return (np.maximum(a, 0.0) if nonlinearity == "relu" else np.tanh(a),)
''',
    "torch": '''
CELL_NATIVE = False  # no torch.nn module: the layer runs cell_step over the steps


def cell_module(input_size, hidden_size, bidirectional, **_):
    shapes = {"weight_ih": (hidden_size, input_size), "weight_hh": (hidden_size,), "bias": (hidden_size,)}
    return ParamLayer(shapes, bidirectional)


def cell_step(p, x, state, nonlinearity="relu", **_):
    """IndRNN step (one recurrent weight per unit): (h,) from x (B, D) and (h_prev,)."""
    a = F.linear(x, p["weight_ih"]) + p["weight_hh"] * state[0] + p["bias"]
    return (torch.relu(a) if nonlinearity == "relu" else torch.tanh(a),)
''',
}
