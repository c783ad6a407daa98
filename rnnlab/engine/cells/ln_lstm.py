"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", sec. 3.1).

x (B, T, D), hidden size H, two states (h, c); gate order **i, f, g, o** along the 4H rows, as
in lstm.py / torch.nn.LSTM. Parameters (no PyTorch counterpart):

* ``weight_ih`` (4H, D), ``weight_hh`` (4H, H), ``bias`` (4H,)
* ``ln_ih_gamma``, ``ln_ih_beta`` (4H,): LayerNorm of W_ih x_t
* ``ln_hh_gamma``, ``ln_hh_beta`` (4H,): LayerNorm of W_hh h_{t-1}
* ``ln_c_gamma``, ``ln_c_beta`` (H,): LayerNorm of c_t (before tanh)

::

    z   = LN_ih(W_ih x_t) + LN_hh(W_hh h_{t-1}) + bias
    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](z)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN_c(c_t))

The carried cell state c_t is not normalised (only its read-out is). Option ``per_gate``:
LN_ih and LN_hh take their statistics over each H-wide gate block separately (True, the
default, as TensorFlow's LayerNormBasicLSTMCell) or over the whole 4H vector (False, the paper's
equations); the gains and biases are per unit (4H) either way. eps = 1e-5. Initialisation:
weights and ``bias`` U(-1/sqrt(H), 1/sqrt(H)) like torch.nn.LSTM, gains 1, LN biases 0.

Only the step pair is written here: the per-step runner (``_stepwise``) runs it over
sequences (the recurrence is sequential anyway, and the three LayerNorms per step dominate).
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import lowering
from rnnlab.engine.cells import _sequence as seq
from rnnlab.engine.cells._protocol import Option, Recurrent
from rnnlab.engine.norm import ln_backward, ln_forward

NAME = "ln_lstm"
NUM_STATES = 2  # (h, c)
PARAM_NAMES = (
    "weight_ih", "weight_hh", "bias",
    "ln_ih_gamma", "ln_ih_beta", "ln_hh_gamma", "ln_hh_beta", "ln_c_gamma", "ln_c_beta",
)
GATES = ("i", "f", "g", "o")
OPTIONS = {"per_gate": Option(True, choices=(True, False), doc="LayerNorm statistics per gate block")}
RECURRENT = Recurrent("weight_hh", "matrix", GATES, carrier="g")
LABELS = {"i": "input gate i", "f": "forget gate f", "g": "cell candidate g", "o": "output gate o",
          "c": "cell state c", "tanh_c": "tanh(LN(cell state))"}
EPS = 1e-5


def sizes(params) -> tuple[int, int]:
    H4, D = params["weight_ih"].shape
    return D, H4 // 4


def init_params(rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32):
    """Weights and bias U(-1/sqrt(H), 1/sqrt(H)) (torch.nn.LSTM); LN gains 1, LN biases 0."""
    if input_size < 1 or hidden_size < 1:
        raise ValueError(f"ln_lstm sizes must be >= 1 (got D={input_size}, H={hidden_size})")
    H4 = 4 * hidden_size
    p = seq.uniform_init(rng, {"weight_ih": (H4, input_size), "weight_hh": (H4, hidden_size), "bias": (H4,)},
                         hidden_size, dtype)
    ones, zeros = np.ones(H4, dtype=dtype), np.zeros(H4, dtype=dtype)
    p.update(ln_ih_gamma=ones, ln_ih_beta=zeros, ln_hh_gamma=ones.copy(), ln_hh_beta=zeros.copy(),
             ln_c_gamma=np.ones(hidden_size, dtype=dtype), ln_c_beta=np.zeros(hidden_size, dtype=dtype))
    return p


def _groups(a, per_gate: bool):
    """(..., 4H) -> (..., 4, H) view when normalising per gate block, else a (..., 1, 4H) view."""
    return a.reshape(a.shape[:-1] + ((4, -1) if per_gate else (1, -1)))


def _ln_gates(a, gamma, beta, per_gate):
    y, c = ln_forward(_groups(a, per_gate), _groups(gamma, per_gate), _groups(beta, per_gate), EPS)
    return y.reshape(a.shape), c


def _ln_gates_backward(dy, gamma, ln_cache, per_gate):
    dx, dg, db = ln_backward(_groups(dy, per_gate), _groups(gamma, per_gate), ln_cache)
    return dx.reshape(dy.shape), dg.reshape(gamma.shape), db.reshape(gamma.shape)


def step_forward(params, x_t, state, rec_mask=None, *, per_gate: bool = True):
    """One step: ``(h, c), cache`` from x_t (B, D) and state (h_prev, c_prev)."""
    h_prev, c_prev = state
    hr = h_prev if rec_mask is None else h_prev * rec_mask
    p = params
    zx, lnx = _ln_gates(x_t @ p["weight_ih"].T, p["ln_ih_gamma"], p["ln_ih_beta"], per_gate)
    zh, lnh = _ln_gates(hr @ p["weight_hh"].T, p["ln_hh_gamma"], p["ln_hh_beta"], per_gate)
    zi, zf, zg, zo = seq.gate_blocks(zx + zh + p["bias"], 4)
    i, f, g, o = seq.sigmoid(zi), seq.sigmoid(zf), np.tanh(zg), seq.sigmoid(zo)
    c = f * c_prev + i * g
    cn, lnc = ln_forward(c, p["ln_c_gamma"], p["ln_c_beta"], EPS)
    tc = np.tanh(cn)
    cache = {"params": p, "x": x_t, "hr": hr, "c_prev": c_prev, "i": i, "f": f, "g": g, "o": o, "c": c, "tc": tc,
             "lnx": lnx, "lnh": lnh, "lnc": lnc, "rec_mask": rec_mask, "per_gate": per_gate}
    return (o * tc, c), cache


def step_backward(dstate, cache):
    """``dx_t, (dh_prev, dc_prev), grads`` from dstate (dh, dc)."""
    dh, dc = dstate
    p, per_gate = cache["params"], cache["per_gate"]
    i, f, g, o, tc = cache["i"], cache["f"], cache["g"], cache["o"], cache["tc"]
    dcn, dgc, dbc = ln_backward(dh * o * (1.0 - tc * tc), p["ln_c_gamma"], cache["lnc"])
    dc = dc + dcn
    dz = np.concatenate([dc * g * i * (1.0 - i), dc * cache["c_prev"] * f * (1.0 - f),
                         dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=1)
    dah, dgh, dbh = _ln_gates_backward(dz, p["ln_hh_gamma"], cache["lnh"], per_gate)
    dax, dgx, dbx = _ln_gates_backward(dz, p["ln_ih_gamma"], cache["lnx"], per_gate)
    dh_prev = dah @ p["weight_hh"]
    if cache["rec_mask"] is not None:
        dh_prev = dh_prev * cache["rec_mask"]
    grads = {
        "weight_ih": dax.T @ cache["x"], "weight_hh": dah.T @ cache["hr"], "bias": dz.sum(axis=0),
        "ln_ih_gamma": dgx, "ln_ih_beta": dbx, "ln_hh_gamma": dgh, "ln_hh_beta": dbh,
        "ln_c_gamma": dgc, "ln_c_beta": dbc,
    }
    return dax @ p["weight_ih"], (dh_prev, dc * f), grads


def step_activations(cache):
    acts = {k: ("tanh" if k == "g" else "sigmoid", cache[k]) for k in GATES}
    acts["c"] = ("linear", cache["c"])
    acts["tanh_c"] = ("tanh", cache["tc"])
    return acts


# ----------------------------------------------------------------------------------------
# graph lowering (ONNX export; rnnlab.engine.lowering): no ONNX op, so the export runs this step in a Scan
# ----------------------------------------------------------------------------------------


def _lower_ln_gates(g, a, gamma, beta, per_gate: bool, width: int):
    """LN_ih / LN_hh of a (B, 4H) product: LayerNormalization over each gate block (or the whole 4H),
    then the per-unit (4H) gain and bias."""
    groups = 4 if per_gate else 1
    n = width // groups
    grouped = g.op("Reshape", [a, g.const(np.array([0, groups, n], dtype=np.int64))])
    xhat = g.op("LayerNormalization", [grouped, g.const(np.ones(n)), g.const(np.zeros(n))], axis=-1, epsilon=EPS)
    flat = g.op("Reshape", [xhat, g.const(np.array([0, width], dtype=np.int64))])
    return g.op("Add", [g.op("Mul", [flat, g.param(gamma)]), g.param(beta)])


def lower_step(g, keys, x_t, state, *, per_gate: bool = True):
    h, c = state
    width = g.value(keys["bias"]).shape[0]
    zx = _lower_ln_gates(g, g.op("MatMul", [x_t, lowering.transposed(g, keys["weight_ih"])]),
                         keys["ln_ih_gamma"], keys["ln_ih_beta"], per_gate, width)
    zh = _lower_ln_gates(g, g.op("MatMul", [h, lowering.transposed(g, keys["weight_hh"])]),
                         keys["ln_hh_gamma"], keys["ln_hh_beta"], per_gate, width)
    z = g.op("Add", [g.op("Add", [zx, zh]), g.param(keys["bias"])])
    zi, zf, zg, zo = g.op("Split", [z], outputs=4, axis=1)
    i, f, gg, o = g.op("Sigmoid", [zi]), g.op("Sigmoid", [zf]), g.op("Tanh", [zg]), g.op("Sigmoid", [zo])
    c_new = g.op("Add", [g.op("Mul", [f, c]), g.op("Mul", [i, gg])])
    cn = g.op("LayerNormalization", [c_new, g.param(keys["ln_c_gamma"]), g.param(keys["ln_c_beta"])],
              axis=-1, epsilon=EPS)
    return g.op("Mul", [o, g.op("Tanh", [cn])]), c_new
# the cell in generated files outside rnnlab (rnnlab export; contract in _protocol)
# ----------------------------------------------------------------------------------------

STANDALONE = {
    "numpy": '''
def cell_step(p, x, state, per_gate=True, **_):
    """Layer-normalised LSTM step (LN of W_ih x, of W_hh h per gate block or over 4H, and of c before
    tanh; eps 1e-5): (h, c) from x (B, D) and (h_prev, c_prev)."""
    h, c = state

    def gates_norm(a, gamma, beta):
        groups = (4, -1) if per_gate else (1, -1)
        y = layer_norm(a.reshape(a.shape[:-1] + groups), gamma.reshape(groups), beta.reshape(groups), 1e-5)
        return y.reshape(a.shape)

    z = (gates_norm(x @ p["weight_ih"].T, p["ln_ih_gamma"], p["ln_ih_beta"])
         + gates_norm(h @ p["weight_hh"].T, p["ln_hh_gamma"], p["ln_hh_beta"]) + p["bias"])
    H = h.shape[1]
    i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 3 * H:])
    c = f * c + i * np.tanh(z[:, 2 * H:3 * H])
    return o * np.tanh(layer_norm(c, p["ln_c_gamma"], p["ln_c_beta"], 1e-5)), c
''',
    "torch": '''
CELL_NATIVE = False  # no torch.nn module: the layer runs cell_step over the steps


def cell_module(input_size, hidden_size, bidirectional, **_):
    G, H = 4 * hidden_size, hidden_size
    shapes = {"weight_ih": (G, input_size), "weight_hh": (G, H), "bias": (G,), "ln_ih_gamma": (G,),
              "ln_ih_beta": (G,), "ln_hh_gamma": (G,), "ln_hh_beta": (G,), "ln_c_gamma": (H,), "ln_c_beta": (H,)}
    return ParamLayer(shapes, bidirectional)


def cell_step(p, x, state, per_gate=True, **_):
    """Layer-normalised LSTM step (LN of W_ih x, of W_hh h per gate block or over 4H, and of c before
    tanh; eps 1e-5): (h, c) from x (B, D) and (h_prev, c_prev)."""
    h, c = state

    def gates_norm(a, gamma, beta):
        groups = (4, -1) if per_gate else (1, -1)
        y = layer_norm(a.unflatten(-1, groups), gamma.reshape(groups), beta.reshape(groups), 1e-5)
        return y.flatten(-2)

    z = (gates_norm(F.linear(x, p["weight_ih"]), p["ln_ih_gamma"], p["ln_ih_beta"])
         + gates_norm(F.linear(h, p["weight_hh"]), p["ln_hh_gamma"], p["ln_hh_beta"]) + p["bias"])
    i, f, g, o = z.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(layer_norm(c, p["ln_c_gamma"], p["ln_c_beta"], 1e-5)), c
''',
}
