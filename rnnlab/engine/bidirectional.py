"""Bidirectional wrapper: one cell runs forward in time, a second one backward, outputs merged.

Shapes: x (B, T, D); each direction gives hs (B, T, H); the merged output is
(B, T, 2H) for merge_mode "concat" and (B, T, H) for "sum", "mean", "mul" (as Keras'
`Bidirectional(merge_mode=...)`). Both directions see the same mask; the reverse
direction's outputs stay aligned with input positions, and its final state is the
state after reading position 0 (PyTorch's h_n[1]).

`cell` is a module with the recurrent-layer contract (rnn, lstm or gru; or a regcells cell):
`cell.forward(params, x, state0, mask, reverse)` and
`cell.backward(params, dhs, dstateT, cache, dh_trace=None)`.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

MERGE_MODES = ("concat", "sum", "mean", "mul")


def merge(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    """Merge two (..., H) arrays from the two directions."""
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mean":
        return 0.5 * (a + b)
    if mode == "mul":
        return a * b
    raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)} (got '{mode}')")


def merge_backward(dy: np.ndarray, a: np.ndarray, b: np.ndarray, mode: str):
    """Gradients of merge(a, b, mode) with respect to a and b, given dy."""
    if mode == "concat":
        h = a.shape[-1]
        return dy[..., :h], dy[..., h:]
    if mode == "sum":
        return dy, dy
    if mode == "mean":
        half = 0.5 * dy
        return half, half
    if mode == "mul":
        return dy * b, dy * a
    raise ValueError(f"merge_mode must be one of {', '.join(MERGE_MODES)} (got '{mode}')")


def forward(
    cell: ModuleType,
    params_f: dict,
    params_b: dict,
    x: np.ndarray,
    state0=(None, None),
    mask: np.ndarray | None = None,
    merge_mode: str = "concat",
    *,
    dir_opts: tuple[dict, dict] | None = None,
    **opts,
):
    """Returns (y, (stateT_f, stateT_b)), cache. `opts` go to both directions' cell (e.g.
    nonlinearity); dir_opts, if given, a pair of dicts of per-direction options (forward,
    reverse) added to them (e.g. regcells' dropout and zoneout masks, one set per direction)."""
    of, ob = ({}, {}) if dir_opts is None else dir_opts
    (hf, sf), cf = cell.forward(params_f, x, state0[0], mask, reverse=False, **opts, **of)
    (hb, sb), cb = cell.forward(params_b, x, state0[1], mask, reverse=True, **opts, **ob)
    y = merge(hf, hb, merge_mode)
    cache = {"f": cf, "b": cb, "hf": hf, "hb": hb, "merge_mode": merge_mode}
    return (y, (sf, sb)), cache


def backward(cell: ModuleType, params_f: dict, params_b: dict, dy, dstateT, cache, dh_trace=None):
    """dy: (B, T, F) or None; dstateT: (dstate_f, dstate_b), each a cell-state tuple or None.
    dh_trace: None or (trace_f, trace_b), each None or a (T, B, H) array the direction's
    backward fills with its total dL/dh_t (see the cells' dh_trace).

    Returns dx, (dstate0_f, dstate0_b), grads_f, grads_b.
    """
    if dy is None:
        dhf = dhb = None
    else:
        dhf, dhb = merge_backward(dy, cache["hf"], cache["hb"], cache["merge_mode"])
    n = cell.NUM_STATES
    dsf = dstateT[0] if dstateT[0] is not None else (None,) * n
    dsb = dstateT[1] if dstateT[1] is not None else (None,) * n
    tf, tb = (None, None) if dh_trace is None else dh_trace
    dxf, ds0f, gf = cell.backward(params_f, dhf, dsf, cache["f"], dh_trace=tf)
    dxb, ds0b, gb = cell.backward(params_b, dhb, dsb, cache["b"], dh_trace=tb)
    return dxf + dxb, (ds0f, ds0b), gf, gb
