"""Per-step rnn / lstm / gru cells with two recurrent regularizers: recurrent dropout and zoneout.

The cells compute exactly what rnn.py, lstm.py and gru.py compute (same parameter names,
PyTorch gate orders: lstm i, f, g, o; gru r, z, n with b_hn inside the reset product), one
step at a time, written for clarity rather than speed. Use them only when a regularizer is
on; with no masks and no evaluation-time zoneout they give the fast cells' outputs and
gradients (to round-off).

Regularizers (the caller samples the masks, so the module is deterministic given its inputs)
--------------------------------------------------------------------------------------------
* Recurrent (variational) dropout, Gal & Ghahramani 2016: ``rec_mask`` (B, H), a scaled keep
  mask (0 or 1/(1-p), e.g. ``dropout.sample_mask(rng, (B, H), p)``), one per sequence and
  unit and the same at every step. It multiplies h_{t-1} where h_{t-1} enters the recurrent
  product W_hh h_{t-1} (for the GRU, all three gate products; the GRU's carry term z * h_{t-1}
  and the LSTM's cell state are not dropped). At evaluation pass None (no dropout).
* Zoneout, Krueger et al. 2017: ``zone_masks`` of 0/1, indexed by input position t (also
  with reverse=True), 1 = keep the previous value of that unit::

      h_t = d_t * h_{t-1} + (1 - d_t) * h_new
      c_t = d^c_t * c_{t-1} + (1 - d^c_t) * c_new          (LSTM)

  with h_new, c_new the plain cell's update; the LSTM's h_new = o * tanh(c_new) reads the
  un-zoned c_new, as in the paper. rnn / gru: a (T, B, H) array; lstm: a pair ``(d_h, d_c)``
  of (T, B, H) arrays (a single array is used for both). At evaluation pass
  ``zoneout_eval=z`` (lstm: z or a pair (z_h, z_c)) instead: the expectation,
  h_t = z * h_{t-1} + (1 - z) * h_new. The output hs[:, t] is the zoned state h_t.

Contract (the one of rnn.py / lstm.py / gru.py)
-----------------------------------------------
``get(name)`` returns a cell object (``RNN``, ``LSTM``, ``GRU``) with ``NUM_STATES``,
``PARAM_NAMES``, ``init_params`` and

``forward(params, x, state0=None, mask=None, reverse=False, *, nonlinearity="tanh",
rec_mask=None, zone_masks=None, zoneout_eval=None)`` -> ``(hs, stateT), cache``;
``backward(params, dhs, dstateT, cache, dh_trace=None)`` -> ``dx, dstate0, grads``.

x (B, T, D), state0 None or a tuple of (B, H) arrays (entries may be None = zeros); mask
(B, T) 0/1: at a padded step the state is carried unchanged (no update, no zoneout) and
hs[:, t] = 0; reverse=True runs t = T-1 ... 0 with hs aligned to input positions. dhs may
be None, dstateT None or a tuple with None entries; gradients in dhs at padded positions
are ignored and dx is 0 there. dh_trace: None or a (T, B, H) array filled with the total
dL/dh_t (h_t the state after step t). ``nonlinearity`` is the rnn cell's only (tanh or
relu). Inputs, masks and upstream gradients are never modified; grads are keyed like params.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.rnn import NONLINEARITIES

PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _state(s, name, B, H, dtype):
    if s is None:
        return np.zeros((B, H), dtype=dtype)
    s = np.asarray(s)
    if s.shape != (B, H):
        raise ValueError(f"{name} must have shape ({B}, {H}), got {s.shape}")
    return s.astype(dtype)  # a copy: the caller's array is never aliased


def _tuple(s, n: int, what: str):
    if s is None:
        return (None,) * n
    if not isinstance(s, (tuple, list)) or len(s) != n:
        raise ValueError(f"{what} must be None or a tuple of {n} array(s)")
    return tuple(s)


def _keep(cell, zone_masks, zoneout_eval, B, T, H, dtype):
    """The zoneout keep factors (k_h, k_c), each None (no zoneout), a (T, B, H) array or a scalar."""
    n = 2 if cell == "lstm" else 1
    if zone_masks is not None:
        ms = zone_masks if isinstance(zone_masks, (tuple, list)) else (zone_masks,) * n
        if len(ms) != n:
            raise ValueError(f"zone_masks for {cell} must be a (T, B, H) array" + (" or a pair" if n == 2 else ""))
        out = []
        for m in ms:
            if m is None:
                out.append(None)
                continue
            m = np.asarray(m)
            if m.shape != (T, B, H):
                raise ValueError(f"zone_masks must have shape ({T}, {B}, {H}), got {m.shape}")
            out.append(m.astype(dtype))
        return tuple(out) + (None,) * (2 - n)
    if zoneout_eval is None:
        return None, None
    zs = zoneout_eval if isinstance(zoneout_eval, (tuple, list)) else (zoneout_eval,) * n
    if len(zs) != n:
        raise ValueError(f"zoneout_eval for {cell} must be a rate" + (" or a pair" if n == 2 else ""))
    out = []
    for z in zs:
        z = float(z)
        if not 0.0 <= z <= 1.0:
            raise ValueError(f"zoneout rate must be in [0, 1] (got {z})")
        out.append(None if z == 0.0 else z)
    return tuple(out) + (None,) * (2 - n)


def _at(k, t):
    """Keep factor of step t: None, the scalar rate, or the mask slice (B, H)."""
    if k is None or np.isscalar(k):
        return k
    return k[t]


def _forward(cell, params, x, state0, mask, reverse, nonlinearity, rec_mask, zone_masks, zoneout_eval):
    if cell == "rnn" and nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {', '.join(NONLINEARITIES)} (got '{nonlinearity}')")
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    b_hh = params["bias_hh"]
    dtype = W_ih.dtype
    GH, D = W_ih.shape
    H = GH // GATES[cell]
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    B, T, _ = x.shape
    x = x.astype(dtype, copy=False)
    n_states = 2 if cell == "lstm" else 1
    s0 = _tuple(state0, n_states, "state0")
    h = _state(s0[0], "h0", B, H, dtype)
    c = _state(s0[1], "c0", B, H, dtype) if cell == "lstm" else None
    if mask is None:
        m = None
    else:
        mask = np.asarray(mask)
        if mask.shape != (B, T):
            raise ValueError(f"mask must have shape ({B}, {T}), got {mask.shape}")
        m = (mask != 0).astype(dtype)[:, :, None]  # (B, T, 1)
    if rec_mask is not None:
        rec_mask = np.asarray(rec_mask)
        if rec_mask.shape != (B, H):
            raise ValueError(f"rec_mask must have shape ({B}, {H}), got {rec_mask.shape}")
        rec_mask = rec_mask.astype(dtype)
    kh, kc = _keep(cell, zone_masks, zoneout_eval, B, T, H, dtype)

    xp = x @ W_ih.T + params["bias_ih"]  # (B, T, GH): input projection of every step
    h_prev = np.empty((T, B, H), dtype=dtype)  # state read by step t (input-time index)
    c_prev = np.empty((T, B, H), dtype=dtype) if cell == "lstm" else None
    acts = np.empty((T, B, GH), dtype=dtype)  # rnn: h_new; lstm: [i|f|g|o]; gru: [r|z|n]
    ghn = np.empty((T, B, H), dtype=dtype) if cell == "gru" else None  # W_hn h + b_hn
    tanh_c = np.empty((T, B, H), dtype=dtype) if cell == "lstm" else None
    hs = np.zeros((B, T, H), dtype=dtype)

    for t in range(T - 1, -1, -1) if reverse else range(T):
        h_prev[t] = h
        hr = h if rec_mask is None else h * rec_mask
        gh = hr @ W_hh.T + b_hh
        a = acts[t]
        if cell == "rnn":
            pre = xp[:, t] + gh
            a[:] = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0.0)
            h_new = a
        elif cell == "lstm":
            c_prev[t] = c
            z = xp[:, t] + gh
            a[:, : 2 * H] = _sigmoid(z[:, : 2 * H])
            a[:, 2 * H : 3 * H] = np.tanh(z[:, 2 * H : 3 * H])
            a[:, 3 * H :] = _sigmoid(z[:, 3 * H :])
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            c_new = f * c + i * g
            tanh_c[t] = np.tanh(c_new)
            h_new = o * tanh_c[t]
        else:
            gi = xp[:, t]
            a[:, : 2 * H] = _sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])
            ghn[t] = gh[:, 2 * H :]
            a[:, 2 * H :] = np.tanh(gi[:, 2 * H :] + a[:, :H] * ghn[t])
            zg, n = a[:, H : 2 * H], a[:, 2 * H :]
            h_new = (1.0 - zg) * n + zg * h
        k = _at(kh, t)
        h_z = h_new if k is None else k * h + (1.0 - k) * h_new
        if cell == "lstm":
            k = _at(kc, t)
            c_z = c_new if k is None else k * c + (1.0 - k) * c_new
        if m is None:
            h = h_z
            if cell == "lstm":
                c = c_z
            hs[:, t] = h_z
        else:
            mt = m[:, t]
            h = np.where(mt > 0, h_z, h)
            if cell == "lstm":
                c = np.where(mt > 0, c_z, c)
            hs[:, t] = h_z * mt

    cache = {
        "cell": cell, "x": x, "h_prev": h_prev, "c_prev": c_prev, "acts": acts, "ghn": ghn,
        "tanh_c": tanh_c, "mask": m, "reverse": bool(reverse), "nonlinearity": nonlinearity,
        "rec_mask": rec_mask, "keep": (kh, kc), "hs": hs,
    }
    stateT = (h.copy(), c.copy()) if cell == "lstm" else (h.copy(),)
    return (hs, stateT), cache


def _backward(cell, params, dhs, dstateT, cache, dh_trace):
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    dtype = W_ih.dtype
    GH, D = W_ih.shape
    H = GH // GATES[cell]
    x, acts, h_prev, m = cache["x"], cache["acts"], cache["h_prev"], cache["mask"]
    rec_mask, (kh, kc), reverse = cache["rec_mask"], cache["keep"], cache["reverse"]
    B, T, _ = x.shape
    if dhs is not None:
        dhs = np.asarray(dhs)
        if dhs.shape != (B, T, H):
            raise ValueError(f"dhs must have shape ({B}, {T}, {H}), got {dhs.shape}")
        if m is not None:
            dhs = dhs * m  # padded outputs are constants (0): their gradient is ignored
    if dh_trace is not None and (not isinstance(dh_trace, np.ndarray) or dh_trace.shape != (T, B, H)):
        raise ValueError(f"dh_trace must be a ({T}, {B}, {H}) array")
    n_states = 2 if cell == "lstm" else 1
    ds = _tuple(dstateT, n_states, "dstateT")
    dh = _state(ds[0], "dhT", B, H, dtype)
    dc = _state(ds[1], "dcT", B, H, dtype) if cell == "lstm" else None

    dA = np.zeros((B, T, GH), dtype=dtype)  # dL/d(W_ih x_t + b_ih) per step (0 at padded steps)
    dW_hh = np.zeros_like(W_hh)
    db_hh = np.zeros(GH, dtype=dtype)

    for t in range(T) if reverse else range(T - 1, -1, -1):
        if dhs is not None:
            dh = dh + dhs[:, t]
        if dh_trace is not None:
            dh_trace[t] = dh
        if m is None:
            dh_s = dh
            dc_s = dc
        else:
            mt = m[:, t]
            dh_s = dh * mt  # the step's update only matters at real steps
            dc_s = None if dc is None else dc * mt
        k = _at(kh, t)
        dh_new, dh_keep = (dh_s, None) if k is None else ((1.0 - k) * dh_s, k * dh_s)
        a = acts[t]
        hp = h_prev[t]
        hr = hp if rec_mask is None else hp * rec_mask
        da = dA[:, t]
        dh_direct = dh_keep  # gradient reaching h_{t-1} other than through W_hh
        if cell == "rnn":
            if cache["nonlinearity"] == "tanh":
                da[:] = dh_new * (1.0 - a * a)
            else:
                da[:] = dh_new * (a > 0)
            dgh = da
        elif cell == "lstm":
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            tc = cache["tanh_c"][t]
            kk = _at(kc, t)
            dc_new, dc_keep = (dc_s, None) if kk is None else ((1.0 - kk) * dc_s, kk * dc_s)
            dcn = dc_new + dh_new * o * (1.0 - tc * tc)
            da[:, :H] = dcn * g * i * (1.0 - i)
            da[:, H : 2 * H] = dcn * cache["c_prev"][t] * f * (1.0 - f)
            da[:, 2 * H : 3 * H] = dcn * i * (1.0 - g * g)
            da[:, 3 * H :] = dh_new * tc * o * (1.0 - o)
            dgh = da
            dc_prev = dcn * f
            if dc_keep is not None:
                dc_prev = dc_prev + dc_keep
        else:
            r, zg, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
            dn_pre = dh_new * (1.0 - zg) * (1.0 - n * n)
            da[:, 2 * H :] = dn_pre
            da[:, H : 2 * H] = dh_new * (hp - n) * zg * (1.0 - zg)
            da[:, :H] = dn_pre * cache["ghn"][t] * r * (1.0 - r)
            dgh = da.copy()
            dgh[:, 2 * H :] = dn_pre * r
            carry = dh_new * zg
            dh_direct = carry if dh_direct is None else dh_direct + carry
        dW_hh += dgh.T @ hr
        db_hh += dgh.sum(axis=0)
        dh_prev = dgh @ W_hh
        if rec_mask is not None:
            dh_prev = dh_prev * rec_mask
        if dh_direct is not None:
            dh_prev = dh_prev + dh_direct
        if m is None:
            dh = dh_prev
            if cell == "lstm":
                dc = dc_prev
        else:  # padded: the state was carried, so its gradient passes through unchanged
            keep = 1.0 - mt
            dh = dh_prev + dh * keep
            if cell == "lstm":
                dc = dc_prev + dc * keep

    dA2 = dA.reshape(B * T, GH)
    grads = {
        "weight_ih": dA2.T @ x.reshape(B * T, D),
        "weight_hh": dW_hh,
        "bias_ih": dA2.sum(axis=0),
        "bias_hh": db_hh,
    }
    dx = dA @ W_ih
    dstate0 = (dh, dc) if cell == "lstm" else (dh,)
    return dx, dstate0, grads


class RegCell:
    """One of the three cells with the recurrent-layer contract (usable by bidirectional.py)."""

    PARAM_NAMES = PARAM_NAMES

    def __init__(self, name: str):
        if name not in GATES:
            raise ValueError(f"regcells support rnn, lstm, gru (got '{name}')")
        self.name = name
        self.NUM_STATES = 2 if name == "lstm" else 1

    def __repr__(self) -> str:
        return f"regcells.{self.name.upper()}"

    def init_params(self, rng, input_size: int, hidden_size: int, dtype=np.float32):
        """PyTorch init: every tensor U(-1/sqrt(H), 1/sqrt(H)) (as the fast cells)."""
        from rnnlab.engine import rnn

        return rnn.init_params(rng, input_size, hidden_size, dtype=dtype, gates=GATES[self.name])

    def forward(self, params, x, state0=None, mask=None, reverse=False, *, nonlinearity="tanh",
                rec_mask=None, zone_masks=None, zoneout_eval=None):
        """``(hs, stateT), cache`` (see the module docstring)."""
        return _forward(self.name, params, x, state0, mask, reverse, nonlinearity, rec_mask, zone_masks,
                        zoneout_eval)

    def backward(self, params, dhs, dstateT, cache, dh_trace=None):
        """``dx, dstate0, grads`` (see the module docstring)."""
        if cache["cell"] != self.name:
            raise ValueError(f"cache of a {cache['cell']} cell passed to {self!r}")
        return _backward(self.name, params, dhs, dstateT, cache, dh_trace)


RNN = RegCell("rnn")
LSTM = RegCell("lstm")
GRU = RegCell("gru")
_CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def get(name: str) -> RegCell:
    """The regularizable cell for 'rnn', 'lstm' or 'gru'."""
    if name not in _CELLS:
        raise ValueError(f"recurrent dropout and zoneout support rnn, lstm, gru (got '{name}')")
    return _CELLS[name]
