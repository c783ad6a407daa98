"""The per-step runner: any cell's step pair over a sequence, with masks, both directions, zoneout
and recurrent dropout. It is the reference the tuned kernels are tested against, the runner of
cells without tuned kernels, and the path taken whenever a recurrent regularizer is on.

Regularizers (the caller samples the masks, so the runner is deterministic given its inputs)
--------------------------------------------------------------------------------------------
* Recurrent (variational) dropout, Gal & Ghahramani 2016: ``rec_mask`` (B, H), a scaled keep mask
  (0 or 1/(1-p)), one per sequence and unit and the same at every step, handed to every
  ``step_forward``: the cell multiplies h_{t-1} by it where h_{t-1} enters its recurrent product
  (not the GRU's carry z * h_{t-1}, not the LSTM's cell state). At evaluation pass None.
* Zoneout, Krueger et al. 2017: ``zone_masks`` of 0/1 (T, B, H), indexed by input position,
  1 = the unit keeps its previous value. Every state s of the cell (h; h and c for the LSTM) is
  zoned on its own mask::

      s_t = d_t * s_{t-1} + (1 - d_t) * s_new

  with s_new the step's update (so the LSTM's h_new reads the un-zoned c_new, as in the paper).
  One array is used for every state; a tuple gives one per state (None entries: not zoned). At
  evaluation pass ``zoneout_eval=z`` (a rate, or a tuple per state) instead: the expectation
  s_t = z s_{t-1} + (1 - z) s_new. The output hs[:, t] is the zoned h_t.

Contract: the tuned kernels' (see ``_sequence``): ``forward(cell, params, x, state0, mask, reverse,
...)`` -> ``(hs, stateT), cache``; ``backward(cell, params, dhs, dstateT, cache, dh_trace=None)``
-> ``dx, dstate0, grads``. hs is read-only; inputs, masks and upstream gradients are never
modified; the cache holds every step's cache (``cache["steps"][t]``, by input position).
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine.cells import _sequence as seq


def _keep_factors(zone_masks, zoneout_eval, n: int, B: int, T: int, H: int, dtype) -> tuple:
    """Per state: None (not zoned), a (T, B, H) 0/1 array, or a scalar rate (evaluation)."""
    if zone_masks is not None:
        ms = tuple(zone_masks) if isinstance(zone_masks, (tuple, list)) else (zone_masks,) * n
        if len(ms) != n:
            raise ValueError(f"zone_masks must be a (T, B, H) array or a tuple of {n}")
        out = []
        for m in ms:
            if m is not None:
                m = np.asarray(m)
                if m.shape != (T, B, H):
                    raise ValueError(f"zone_masks must have shape ({T}, {B}, {H}), got {m.shape}")
                m = m.astype(dtype)
            out.append(m)
        return tuple(out)
    if zoneout_eval is None:
        return (None,) * n
    zs = tuple(zoneout_eval) if isinstance(zoneout_eval, (tuple, list)) else (zoneout_eval,) * n
    if len(zs) != n:
        raise ValueError(f"zoneout_eval must be a rate or a tuple of {n}")
    out = []
    for z in zs:
        z = float(z)
        if not 0.0 <= z <= 1.0:
            raise ValueError(f"zoneout rate must be in [0, 1] (got {z})")
        out.append(None if z == 0.0 else z)
    return tuple(out)


def _at(k, t):
    """Keep factor of step t: None, the scalar rate, or the mask slice (B, H)."""
    if k is None or np.isscalar(k):
        return k
    return k[t]


def forward(cell, params, x, state0=None, mask=None, reverse=False, *, rec_mask=None, zone_masks=None,
            zoneout_eval=None, **options):
    D, H = cell.sizes(params)
    dtype = params[cell.param_names[0]].dtype
    x = seq.batch_first(x, D).astype(dtype, copy=False)
    B, T, _ = x.shape
    n = cell.num_states
    s = [np.zeros((B, H), dtype=dtype) if s0 is None else s0.astype(dtype)  # copies: never aliased
         for s0 in seq.state_tuple(state0, n, B, H)]
    mask = seq.check_mask(mask, B, T)
    m = None if mask is None else (mask != 0).astype(dtype)[:, :, None]  # (B, T, 1)
    if rec_mask is not None:
        rec_mask = np.asarray(rec_mask)
        if rec_mask.shape != (B, H):
            raise ValueError(f"rec_mask must have shape ({B}, {H}), got {rec_mask.shape}")
        rec_mask = rec_mask.astype(dtype)
    keep = _keep_factors(zone_masks, zoneout_eval, n, B, T, H, dtype)

    hs = np.zeros((B, T, H), dtype=dtype)
    caches: list = [None] * T
    for t in seq.steps(T, reverse):
        new, caches[t] = cell.step_forward(params, x[:, t], tuple(s), rec_mask, **options)
        zoned = [nw if (kt := _at(k, t)) is None else kt * old + (1.0 - kt) * nw
                 for nw, old, k in zip(new, s, keep, strict=True)]
        if m is None:
            s = zoned
            hs[:, t] = zoned[0]
        else:
            mt = m[:, t]
            s = [np.where(mt > 0, z, old) for z, old in zip(zoned, s, strict=True)]
            hs[:, t] = zoned[0] * mt
    cache = {"stepwise": True, "steps": caches, "x": x, "mask": m, "keep": keep, "reverse": bool(reverse),
             "hs": seq.readonly(hs)}
    return (cache["hs"], tuple(a.copy() for a in s)), cache


def backward(cell, params, dhs, dstateT, cache, dh_trace=None):
    x, m, keep, reverse = cache["x"], cache["mask"], cache["keep"], cache["reverse"]
    D, H = cell.sizes(params)
    dtype = params[cell.param_names[0]].dtype
    B, T, _ = x.shape
    n = cell.num_states
    dhs, dT = seq.upstream(dhs, dstateT, n, B, T, H, dtype)
    if dhs is not None and m is not None:
        dhs = dhs * m  # padded outputs are constants (0): their gradient is ignored
    trace = seq.check_trace(dh_trace, T, B, H)
    ds = [np.zeros((B, H), dtype=dtype) if d is None else d.copy() for d in dT]
    grads = {k: np.zeros_like(params[k]) for k in cell.param_names}
    dx = np.zeros((B, T, D), dtype=dtype)
    for t in reversed(seq.steps(T, reverse)):
        if dhs is not None:
            ds[0] = ds[0] + dhs[:, t]
        if trace is not None:
            trace[t] = ds[0]  # total dL/dh_t
        mt = None if m is None else m[:, t]
        d_out = ds if mt is None else [d * mt for d in ds]  # the step's update counts at real steps only
        d_new = [d if (kt := _at(k, t)) is None else (1.0 - kt) * d for d, k in zip(d_out, keep, strict=True)]
        dx[:, t], d_prev, g = cell.step_backward(tuple(d_new), cache["steps"][t])
        for k, v in g.items():
            grads[k] += v
        d_prev = [dp if (kt := _at(k, t)) is None else dp + kt * d
                  for dp, d, k in zip(d_prev, d_out, keep, strict=True)]
        if mt is None:
            ds = d_prev
        else:  # padded: the state was carried, so its gradient passes through unchanged
            ds = [dp + d * (1.0 - mt) for dp, d in zip(d_prev, ds, strict=True)]
    return dx, tuple(ds), grads


def activations(cell, cache) -> dict[str, tuple[str, np.ndarray]]:
    """Every step's ``step_activations`` stacked to (B, T, H), keyed and kinded like the step's."""
    per_step = [cell.step_activations(c) for c in cache["steps"]]
    return {name: (kind, np.stack([a[name][1] for a in per_step], axis=1)) for name, (kind, _) in per_step[0].items()}
