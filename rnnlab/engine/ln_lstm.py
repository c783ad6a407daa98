"""Layer-normalised LSTM layer (Ba, Kiros & Hinton 2016, "Layer Normalization", sec. 3.1).

Shapes and names
----------------
x (B, T, D) batch-first, hidden size H, two states h (B, H) and c (B, H); gate order
**i, f, g, o** along the 4H rows, as in lstm.py / torch.nn.LSTM. Parameters:

* ``weight_ih`` (4H, D), ``weight_hh`` (4H, H), ``bias`` (4H,)
* ``ln_ih_gamma``, ``ln_ih_beta`` (4H,): LayerNorm of W_ih x_t
* ``ln_hh_gamma``, ``ln_hh_beta`` (4H,): LayerNorm of W_hh h_{t-1}
* ``ln_c_gamma``, ``ln_c_beta`` (H,): LayerNorm of c_t (before tanh)

::

    z   = LN_ih(W_ih x_t) + LN_hh(W_hh h_{t-1}) + bias
    [i, f, g, o] = [sigmoid, sigmoid, tanh, sigmoid](z)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN_c(c_t))

The carried cell state c_t is not normalised (only its read-out is). LN_ih and LN_hh take
their statistics over each H-wide gate block separately (``per_gate=True``, the default,
as in TensorFlow's LayerNormBasicLSTMCell) or over the whole 4H vector
(``per_gate=False``, the paper's equations); the gains and biases are per unit (4H) either
way. eps = 1e-5. Initialisation: weights and ``bias`` U(-1/sqrt(H), 1/sqrt(H)) like
torch.nn.LSTM, gains 1, LN biases 0.

Contract (the one of lstm.py)
-----------------------------
``forward(params, x, state0=None, mask=None, reverse=False, *, per_gate=True)``
-> ``(hs, (hT, cT)), cache``; ``backward(params, dhs, dstateT, cache, dh_trace=None)``
-> ``dx, (dh0, dc0), grads`` (grads keyed like params). state0: None or (h0, c0) (entries
may be None = zeros); mask (B, T) 0/1: at a padded step the state is carried unchanged
and hs[:, t] = 0, so padding never changes outputs at real steps; reverse=True runs
t = T-1 ... 0 with hs aligned to input positions. dhs may be None, dstateT None or a
pair with None entries; gradients in dhs at padded positions are ignored and dx is 0
there. dh_trace: None or a (T, B, H) array filled with the total dL/dh_t (as in lstm.py).
Inputs and upstream gradients are never modified.

Implementation: a clear per-step loop (the recurrence is sequential anyway); W_ih x and
its LayerNorm are computed for all steps at once, and so are their backward passes.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.norm import _ln_backward, _ln_forward

NUM_STATES = 2  # (h, c)
PARAM_NAMES = (
    "weight_ih", "weight_hh", "bias",
    "ln_ih_gamma", "ln_ih_beta", "ln_hh_gamma", "ln_hh_beta", "ln_c_gamma", "ln_c_beta",
)
GATES = ("i", "f", "g", "o")
EPS = 1e-5


def init_params(
    rng: np.random.Generator, input_size: int, hidden_size: int, dtype=np.float32
) -> dict[str, np.ndarray]:
    """Weights and bias U(-1/sqrt(H), 1/sqrt(H)) (torch.nn.LSTM); LN gains 1, LN biases 0."""
    if input_size < 1 or hidden_size < 1:
        raise ValueError(f"ln_lstm sizes must be >= 1 (got D={input_size}, H={hidden_size})")
    k = 1.0 / np.sqrt(hidden_size)
    H4 = 4 * hidden_size
    p = {
        "weight_ih": rng.uniform(-k, k, size=(H4, input_size)),
        "weight_hh": rng.uniform(-k, k, size=(H4, hidden_size)),
        "bias": rng.uniform(-k, k, size=(H4,)),
        "ln_ih_gamma": np.ones(H4), "ln_ih_beta": np.zeros(H4),
        "ln_hh_gamma": np.ones(H4), "ln_hh_beta": np.zeros(H4),
        "ln_c_gamma": np.ones(hidden_size), "ln_c_beta": np.zeros(hidden_size),
    }
    return {name: v.astype(dtype) for name, v in p.items()}


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def _groups(a, per_gate: bool):
    """(..., 4H) -> (..., 4, H) view when normalising per gate block, else a (..., 1, 4H) view."""
    return a.reshape(a.shape[:-1] + ((4, -1) if per_gate else (1, -1)))


def _ln_gates_forward(a, gamma, beta, per_gate):
    y, c = _ln_forward(_groups(a, per_gate), _groups(gamma, per_gate), _groups(beta, per_gate), EPS)
    return y.reshape(a.shape), c


def _ln_gates_backward(dy, gamma, ln_cache, per_gate):
    g = _groups(gamma, per_gate)
    dx, dg, db = _ln_backward(_groups(dy, per_gate), g, ln_cache)
    return dx.reshape(dy.shape), dg.reshape(gamma.shape), db.reshape(gamma.shape)


def _state(s, name, B, H, dtype):
    if s is None:
        return np.zeros((B, H), dtype=dtype)
    s = np.asarray(s)
    if s.shape != (B, H):
        raise ValueError(f"{name} must have shape ({B}, {H}), got {s.shape}")
    return s.astype(dtype)  # a copy: the caller's array is never aliased


def _pair(pair, what, names):
    if pair is None:
        return None, None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{what} must be None or a tuple ({names[0]}, {names[1]})")
    return pair[0], pair[1]


def forward(params, x, state0=None, mask=None, reverse=False, *, per_gate: bool = True):
    """Run the layer over x (B, T, D). Returns ``(hs, (hT, cT)), cache``."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    B, T, _ = x.shape
    x = x.astype(dtype, copy=False)
    h0, c0 = _pair(state0, "state0", ("h0", "c0"))
    h = _state(h0, "h0", B, H, dtype)
    c = _state(c0, "c0", B, H, dtype)
    if mask is None:
        m = None
    else:
        mask = np.asarray(mask)
        if mask.shape != (B, T):
            raise ValueError(f"mask must have shape ({B}, {T}), got {mask.shape}")
        m = (mask != 0).astype(dtype)[:, :, None]  # (B, T, 1)

    # input projection and its LayerNorm for all steps at once
    ax = x @ W_ih.T  # (B, T, 4H)
    zx, lnx_cache = _ln_gates_forward(ax, params["ln_ih_gamma"], params["ln_ih_beta"], per_gate)

    h_prev = np.empty((T, B, H), dtype=dtype)  # state read by step t (input-time index)
    c_prev = np.empty((T, B, H), dtype=dtype)
    gates = np.empty((T, B, H4), dtype=dtype)  # activations [i | f | g | o]
    tcn = np.empty((T, B, H), dtype=dtype)  # tanh(LN_c(c_t))
    lnh_caches: list = [None] * T
    lnc_caches: list = [None] * T
    hs = np.zeros((B, T, H), dtype=dtype)

    for t in range(T - 1, -1, -1) if reverse else range(T):
        h_prev[t], c_prev[t] = h, c
        zh, lnh_caches[t] = _ln_gates_forward(
            h @ W_hh.T, params["ln_hh_gamma"], params["ln_hh_beta"], per_gate
        )
        z = zx[:, t] + zh + params["bias"]
        gt = gates[t]
        gt[:, : 2 * H] = _sigmoid(z[:, : 2 * H])
        gt[:, 2 * H : 3 * H] = np.tanh(z[:, 2 * H : 3 * H])
        gt[:, 3 * H :] = _sigmoid(z[:, 3 * H :])
        i, f, g, o = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
        c_new = f * c + i * g
        cn, lnc_caches[t] = _ln_forward(c_new, params["ln_c_gamma"], params["ln_c_beta"], EPS)
        tcn[t] = np.tanh(cn)
        h_new = o * tcn[t]
        if m is None:
            h, c = h_new, c_new
            hs[:, t] = h_new
        else:
            mt = m[:, t]
            h = np.where(mt > 0, h_new, h)
            c = np.where(mt > 0, c_new, c)
            hs[:, t] = h_new * mt

    cache = {
        "x": x, "zx_ln": lnx_cache, "h_prev": h_prev, "c_prev": c_prev, "gates": gates,
        "tanh_cn": tcn, "lnh": lnh_caches, "lnc": lnc_caches, "mask": m,
        "reverse": bool(reverse), "per_gate": bool(per_gate), "hs": hs,
    }
    return (hs, (h.copy(), c.copy())), cache


def gate_activations(cache) -> dict[str, np.ndarray]:
    """The cached gate activations as four (T, B, H) views keyed "i", "f", "g", "o"."""
    G = cache["gates"]
    H = G.shape[2] // 4
    return {name: G[:, :, k * H : (k + 1) * H] for k, name in enumerate(GATES)}


def backward(params, dhs, dstateT, cache, dh_trace=None):
    """BPTT. Returns ``dx (B, T, D), (dh0, dc0), grads`` (see module docstring)."""
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    H4, D = W_ih.shape
    H = H4 // 4
    x, gates, tcn = cache["x"], cache["gates"], cache["tanh_cn"]
    h_prev, c_prev, m = cache["h_prev"], cache["c_prev"], cache["mask"]
    per_gate, reverse = cache["per_gate"], cache["reverse"]
    B, T, _ = x.shape
    if dhs is not None:
        dhs = np.asarray(dhs)
        if dhs.shape != (B, T, H):
            raise ValueError(f"dhs must have shape ({B}, {T}, {H}), got {dhs.shape}")
        if m is not None:
            dhs = dhs * m  # padded outputs are constants (0): their gradient is ignored
    if dh_trace is not None and (not isinstance(dh_trace, np.ndarray) or dh_trace.shape != (T, B, H)):
        raise ValueError(f"dh_trace must be a ({T}, {B}, {H}) array")
    dhT, dcT = _pair(dstateT, "dstateT", ("dhT", "dcT"))
    dh = _state(dhT, "dhT", B, H, dtype)
    dc = _state(dcT, "dcT", B, H, dtype)

    dZ = np.zeros((B, T, H4), dtype=dtype)  # dL/dz per step (0 at padded steps)
    dW_hh = np.zeros_like(W_hh)
    g_hh_gamma = np.zeros(H4, dtype=dtype)
    g_hh_beta = np.zeros(H4, dtype=dtype)
    g_c_gamma = np.zeros(H, dtype=dtype)
    g_c_beta = np.zeros(H, dtype=dtype)

    for t in range(T) if reverse else range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[:, t]
        if dh_trace is not None:
            dh_trace[t] = dh
        if m is None:
            dh_s, dc_s = dh, dc
        else:
            mt = m[:, t]
            dh_s, dc_s = dh * mt, dc * mt  # the step's update only matters at real steps
        gt = gates[t]
        i, f, g, o = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
        tc = tcn[t]
        do = dh_s * tc
        dcn = dh_s * o * (1.0 - tc * tc)
        dcn_in, dgc, dbc = _ln_backward(dcn, params["ln_c_gamma"], cache["lnc"][t])
        g_c_gamma += dgc
        g_c_beta += dbc
        dcnew = dc_s + dcn_in
        dz = dZ[:, t]
        dz[:, :H] = dcnew * g * i * (1.0 - i)
        dz[:, H : 2 * H] = dcnew * c_prev[t] * f * (1.0 - f)
        dz[:, 2 * H : 3 * H] = dcnew * i * (1.0 - g * g)
        dz[:, 3 * H :] = do * o * (1.0 - o)
        dah, dgh, dbh = _ln_gates_backward(dz, params["ln_hh_gamma"], cache["lnh"][t], per_gate)
        g_hh_gamma += dgh
        g_hh_beta += dbh
        dW_hh += dah.T @ h_prev[t]
        dh_new = dah @ W_hh
        dc_new = dcnew * f
        if m is None:
            dh, dc = dh_new, dc_new
        else:  # padded: the state was carried, so its gradient passes through unchanged
            keep = 1.0 - mt
            dh = dh_new + dh * keep
            dc = dc_new + dc * keep

    dax, dgx, dbx = _ln_gates_backward(dZ, params["ln_ih_gamma"], cache["zx_ln"], per_gate)
    dax2 = dax.reshape(B * T, H4)
    grads = {
        "weight_ih": dax2.T @ x.reshape(B * T, D),
        "weight_hh": dW_hh,
        "bias": dZ.reshape(B * T, H4).sum(axis=0),
        "ln_ih_gamma": dgx,
        "ln_ih_beta": dbx,
        "ln_hh_gamma": g_hh_gamma,
        "ln_hh_beta": g_hh_beta,
        "ln_c_gamma": g_c_gamma,
        "ln_c_beta": g_c_beta,
    }
    dx = dax @ W_ih
    return dx, (dh, dc), grads
