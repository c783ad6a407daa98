"""The cell contract, checked for every registered cell (a new cell module is picked up here).

* finite differences in float64 (relative error < 1e-6) for every parameter, the input and every
  initial state, with masks and both directions, for the cell's forward/backward (the tuned kernel,
  or the per-step runner), for the step pair alone, and through the runner with recurrent dropout
  and zoneout;
* the tuned kernel equals the step-pair reference (outputs, states, activations, every gradient,
  the dL/dh_t trace), also over several BPTT chunks;
* float32 follows float64; outputs read-only, inputs and caches untouched, no state between calls;
* dh_trace is the total gradient of every state; activations are named, kinded and (B, T, H);
* padding never changes a real step; the declarations are consistent; a user's own cell plugs in.
"""

from __future__ import annotations

import copy
import itertools
import sys

import numpy as np
import pytest

from rnnlab.engine import cells
from rnnlab.engine.cells import _protocol, _sequence
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

B, T, D, H = 3, 5, 3, 4
# row 0 post-padded, row 1 pre-padded, row 2 with a hole
MASK = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 0, 1, 1]], dtype=np.float64)
TOL = 1e-6


def _variants():
    """(cell name, options): each cell with its defaults, and once more per other choice of each option."""
    out = []
    for name in cells.names():
        cell = cells.get(name)
        out.append((name, {}))
        for key, opt in cell.options.items():
            for choice in opt.choices or ():
                if choice != opt.default:
                    out.append((name, {key: choice}))
    return out


VARIANTS = _variants()
IDS = [n + "".join(f"-{k}={v}" for k, v in o.items()) for n, o in VARIANTS]
NAMES = list(cells.names())
TUNED = [n for n in NAMES if cells.get(n).tuned]


def _setup(name, options, seed, dtype=np.float64, b=B, t=T):
    cell = cells.get(name)
    opts = cell.resolve(options)
    rng = np.random.default_rng(seed)
    p = cell.init_params(rng, D, H, np.float64, **opts)
    # larger weights than the init, so that gates are far from 0.5 and every input matters
    p = {k: (1.7 * v + 0.2 * rng.standard_normal(v.shape)).astype(dtype) for k, v in p.items()}
    x = rng.standard_normal((b, t, D)).astype(dtype)
    s0 = tuple((0.6 * rng.standard_normal((b, H))).astype(dtype) for _ in range(cell.num_states))
    dhs = rng.standard_normal((b, t, H)).astype(dtype)
    dT = tuple(rng.standard_normal((b, H)).astype(dtype) for _ in range(cell.num_states))
    return cell, opts, p, x, s0, dhs, dT


def _snames(cell):
    return [f"state0_{k}" for k in range(cell.num_states)]


def _fd_check(cell, p, x, s0, loss_of, analytic, eps=1e-5):
    arrays = dict(p, x=x, **dict(zip(_snames(cell), s0, strict=True)))
    num = numeric_grads(loss_of, arrays, eps)
    errs = max_rel_error(analytic, num)
    assert max(errs.values()) < TOL, errs


def _weighted(hs, sT, dhs, dT):
    total = 0.0 if dhs is None else float(np.sum(hs * dhs))
    return total + sum(float(np.sum(s * d)) for s, d in zip(sT, dT, strict=True) if d is not None)


def _split(cell, a):
    return {k: a[k] for k in cell.param_names}, a["x"], tuple(a[s] for s in _snames(cell))


# ----------------------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_gradients_match_finite_differences(name, options, reverse, masked):
    cell, opts, p, x, s0, dhs, dT = _setup(name, options, seed=10 + 2 * reverse + masked)
    mask = MASK if masked else None

    def loss(a):
        prm, xx, ss = _split(cell, a)
        (hs, sT), _ = cell.forward(prm, xx, ss, mask, reverse, **opts)
        return _weighted(hs, sT, dhs, dT)

    _, cache = cell.forward(p, x, s0, mask, reverse, **opts)
    dx, ds0, grads = cell.backward(p, dhs, dT, cache)
    assert set(grads) == set(cell.param_names)
    _fd_check(cell, p, x, s0, loss, dict(grads, x=dx, **dict(zip(_snames(cell), ds0, strict=True))))


@pytest.mark.parametrize("case", ["no_state0", "no_dhs", "no_dstateT", "h_only"])
@pytest.mark.parametrize("name", NAMES)
def test_gradients_with_missing_upstream_or_initial_state(name, case):
    """state0=None (zeros), dhs=None (only the final state used), dstateT=None, or only dh_T."""
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=3)
    zero = tuple(np.zeros_like(s) for s in s0)
    if case == "no_dhs":
        dhs = None
    if case == "no_dstateT":
        dT = (None,) * cell.num_states
    if case == "h_only":
        dT = (dT[0],) + (None,) * (cell.num_states - 1)

    def loss(a):
        prm, xx, ss = _split(cell, a)
        (hs, sT), _ = cell.forward(prm, xx, ss, MASK, True, **opts)
        return _weighted(hs, sT, dhs, dT)

    start = None if case == "no_state0" else s0
    _, cache = cell.forward(p, x, start, MASK, True, **opts)
    dx, ds0, grads = cell.backward(p, dhs, None if case == "no_dstateT" else dT, cache)
    # the implicit zero state's gradient is checked against an explicit one (a smaller step: at h = 0
    # LayerNorm's 1/sqrt(eps) gain makes the centred difference's truncation error ~1e-5 at 1e-5)
    _fd_check(cell, p, x, zero if start is None else s0, loss,
              dict(grads, x=dx, **dict(zip(_snames(cell), ds0, strict=True))), eps=1e-6 if start is None else 1e-5)


REGS = {
    "recurrent_dropout": lambda rng, n: {"rec_mask": (rng.random((B, H)) >= 0.4) / 0.6},
    "zoneout": lambda rng, n: {"zone_masks": tuple((rng.random((T, B, H)) < 0.35).astype(float) for _ in range(n))},
    "both": lambda rng, n: {**REGS["recurrent_dropout"](rng, n), **REGS["zoneout"](rng, n)},
    "zoneout_eval": lambda rng, n: {"zoneout_eval": 0.3},
}


@pytest.mark.parametrize("reg", list(REGS))
@pytest.mark.parametrize("name", NAMES)
def test_regularized_runner_gradients(name, reg):
    """Recurrent dropout and zoneout work for every cell (the per-step runner), masked and reversed."""
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=20)
    kw = REGS[reg](np.random.default_rng(7), cell.num_states)

    def loss(a):
        prm, xx, ss = _split(cell, a)
        (hs, sT), _ = cell.stepwise_forward(prm, xx, ss, MASK, True, **opts, **kw)
        return _weighted(hs, sT, dhs, dT)

    _, cache = cell.stepwise_forward(p, x, s0, MASK, True, **opts, **kw)
    dx, ds0, grads = cell.stepwise_backward(p, dhs, dT, cache)
    _fd_check(cell, p, x, s0, loss, dict(grads, x=dx, **dict(zip(_snames(cell), ds0, strict=True))))


@pytest.mark.parametrize("rec", [False, True], ids=["plain", "rec_mask"])
@pytest.mark.parametrize("name, options", VARIANTS, ids=IDS)
def test_step_pair_gradients(name, options, rec):
    cell, opts, p, x, s0, _, dT = _setup(name, options, seed=30 + rec)
    x_t = x[:, 0].copy()
    rec_mask = (np.random.default_rng(1).random((B, H)) >= 0.3) / 0.7 if rec else None

    def loss(a):
        prm, xx, ss = _split(cell, a)
        new, _ = cell.step_forward(prm, xx, ss, rec_mask, **opts)
        return _weighted(None, new, None, dT)

    new, cache = cell.step_forward(p, x_t, s0, rec_mask, **opts)
    assert len(new) == cell.num_states and all(s.shape == (B, H) for s in new)
    dx, ds, grads = cell.step_backward(dT, cache)
    _fd_check(cell, p, x_t, s0, loss, dict(grads, x=dx, **dict(zip(_snames(cell), ds, strict=True))))


@pytest.mark.parametrize("how", ["masks", "eval"])
@pytest.mark.parametrize("name", NAMES)
def test_zoneout_one_keeps_the_initial_state(name, how):
    cell, opts, p, x, s0, _, _ = _setup(name, {}, seed=21)
    kw = {"zone_masks": np.ones((T, B, H))} if how == "masks" else {"zoneout_eval": 1.0}
    (hs, sT), _ = cell.stepwise_forward(p, x, s0, MASK, **opts, **kw)
    for a, b in zip(sT, s0, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(hs, np.where(MASK[:, :, None] > 0, s0[0][:, None, :], 0.0))


@pytest.mark.parametrize("name", NAMES)
def test_zoneout_masks_select_per_unit_step_and_state(name):
    """Each state is zoned on its own mask: a unit zoned out at step t keeps its previous value,
    the others take the plain step's update (from the previous zoned state)."""
    cell, opts, p, x, s0, _, _ = _setup(name, {}, seed=22)
    rng = np.random.default_rng(3)
    zm = tuple((rng.random((T, B, H)) < 0.5).astype(float) for _ in range(cell.num_states))
    (hs, sT), _ = cell.stepwise_forward(p, x, s0, None, **opts, zone_masks=zm)
    state = s0
    for t in range(T):
        new, _ = cell.step_forward(p, x[:, t], state, None, **opts)
        state = tuple(np.where(z[t] > 0, old, nw) for z, old, nw in zip(zm, state, new, strict=True))
        np.testing.assert_allclose(hs[:, t], state[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(sT, state, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_recurrent_dropout_mask_is_the_same_at_every_step(name):
    """A unit dropped for a sequence never enters that sequence's recurrent product, at any step:
    changing the recurrent weights that read it changes nothing there, and changes the others."""
    cell, opts, p, x, s0, _, _ = _setup(name, {}, seed=23)
    rm = np.full((B, H), 2.0)
    rm[0, 1] = 0.0
    (hs, _), _ = cell.stepwise_forward(p, x, s0, None, rec_mask=rm, **opts)
    q = {k: v.copy() for k, v in p.items()}
    W = q[cell.recurrent.param]
    bump = np.random.default_rng(4).standard_normal(W.shape[:1])  # not constant: LayerNorm would cancel it
    if cell.recurrent.kind == "diagonal":
        W[1] += 0.5
    else:
        W[:, 1] += 0.5 * bump
    (hs2, _), _ = cell.stepwise_forward(q, x, s0, None, rec_mask=rm, **opts)
    np.testing.assert_allclose(hs2[0], hs[0], rtol=1e-12, atol=1e-12)
    assert not np.allclose(hs2[1], hs[1]) and not np.allclose(hs2[2], hs[2])


def test_runner_argument_errors():
    cell, opts, p, x, _, _, _ = _setup("gru", {}, seed=24)
    with pytest.raises(ValueError, match="x must have shape"):
        cell.stepwise_forward(p, np.zeros((B, T, D + 1)))
    with pytest.raises(ValueError, match="rec_mask must have shape"):
        cell.stepwise_forward(p, x, rec_mask=np.ones((B, H + 1)))
    with pytest.raises(ValueError, match="zone_masks must have shape"):
        cell.stepwise_forward(p, x, zone_masks=np.ones((T, B, H + 1)))
    with pytest.raises(ValueError, match=r"zoneout rate must be in \[0, 1\]"):
        cell.stepwise_forward(p, x, zoneout_eval=1.5)
    with pytest.raises(ValueError, match="state0 must be None or a tuple"):
        cell.forward(p, x, (np.zeros((B, H)),) * 2)
    with pytest.raises(ValueError, match="mask must have shape"):
        cell.forward(p, x, None, np.ones((B, T + 1)))


# ----------------------------------------------------------------------------------------
# the tuned kernel against the step-pair reference
# ----------------------------------------------------------------------------------------


def _tuned_vs_reference(cell, opts, p, x, s0, mask, reverse, dhs, dT):
    (hs, sT), ca = cell.forward(p, x, s0, mask, reverse, **opts)
    (hs_r, sT_r), cr = cell.stepwise_forward(p, x, s0, mask, reverse, **opts)
    tb, tr = (np.empty((x.shape[1], x.shape[0], H)) for _ in range(2))
    dx, ds0, g = cell.backward(p, dhs, dT, ca, dh_trace=tb)
    dx_r, ds0_r, g_r = cell.stepwise_backward(p, dhs, dT, cr, dh_trace=tr)
    close = dict(rtol=0, atol=1e-11)
    np.testing.assert_allclose(hs, hs_r, **close)
    for a, b in [*zip(sT, sT_r, strict=True), (dx, dx_r), *zip(ds0, ds0_r, strict=True), (tb, tr)]:
        np.testing.assert_allclose(a, b, **close)
    for k in g:
        np.testing.assert_allclose(g[k], g_r[k], err_msg=k, **close)
    acts, acts_r = cell.activations(ca), cell.activations(cr)
    assert acts.keys() == acts_r.keys()
    real = np.ones(x.shape[:2], bool) if mask is None else mask != 0
    for k in acts:
        assert acts[k][0] == acts_r[k][0]
        np.testing.assert_allclose(np.asarray(acts[k][1])[real], acts_r[k][1][real], err_msg=k, **close)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name, options", [v for v in VARIANTS if v[0] in TUNED],
                         ids=[i for i, v in zip(IDS, VARIANTS, strict=True) if v[0] in TUNED])
def test_tuned_kernel_equals_the_step_pair_reference(name, options, reverse, masked):
    cell, opts, p, x, s0, dhs, dT = _setup(name, options, seed=40)
    _tuned_vs_reference(cell, opts, p, x, s0, MASK if masked else None, reverse, dhs, dT)
    # a zero initial state takes the kernels' skip-the-first-product path
    zero = tuple(np.zeros_like(s) for s in s0)
    _tuned_vs_reference(cell, opts, p, x, zero, MASK if masked else None, reverse, None, dT)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name", TUNED)
def test_tuned_kernel_over_several_bptt_chunks(name, reverse, monkeypatch):
    """Chunks of 2 steps (T=7: 2, 2, 2, 1) give the same results as one chunk."""
    monkeypatch.setattr(_sequence, "CHUNK_ELEMS", 2 * B * H)
    monkeypatch.setattr(_sequence, "CHUNK_COLUMNS", 2 * B)
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=41, t=7)
    mask = np.ones((B, 7))
    mask[0, 5:] = 0
    mask[1, :3] = 0
    _tuned_vs_reference(cell, opts, p, x, s0, mask, reverse, dhs, dT)


# ----------------------------------------------------------------------------------------
# dtypes, immutability, traces, activations, padding
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["forward", "stepwise"])
@pytest.mark.parametrize("name", NAMES)
def test_float32_follows_float64(name, runner):
    outs = []
    for dtype in (np.float64, np.float32):
        cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=50, dtype=dtype)
        fwd, bwd = (cell.forward, cell.backward) if runner == "forward" else (cell.stepwise_forward,
                                                                                cell.stepwise_backward)
        (hs, sT), c = fwd(p, x.astype(np.float64), s0, MASK, True, **opts)  # x is cast to the params' dtype
        dx, ds0, g = bwd(p, dhs, dT, c)
        outs.append({"hs": hs, "dx": dx, **{f"s{k}": v for k, v in enumerate(sT + ds0)}, **g})
    for k, v in outs[1].items():
        assert v.dtype == np.float32, k
        np.testing.assert_allclose(v, outs[0][k], rtol=2e-4, atol=5e-5, err_msg=k)


def _arrays(obj):
    """Every ndarray reachable in a cache (dicts, lists, tuples), in a stable order."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        return [a for k in sorted(obj, key=str) for a in _arrays(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _arrays(v)]
    return []


@pytest.mark.parametrize("runner", ["forward", "stepwise"])
@pytest.mark.parametrize("name", NAMES)
def test_outputs_read_only_inputs_and_cache_untouched(name, runner):
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=60)
    fwd, bwd = (cell.forward, cell.backward) if runner == "forward" else (cell.stepwise_forward,
                                                                            cell.stepwise_backward)
    inputs = [*p.values(), x, *s0, dhs, *dT, MASK]
    before = copy.deepcopy(inputs)
    (hs, sT), cache = fwd(p, x, s0, MASK, False, **opts)
    assert not hs.flags.writeable
    with pytest.raises(ValueError):
        hs[0, 0, 0] = 1.0
    snapshot = [a.copy() for a in _arrays(cache)]
    first = bwd(p, dhs, dT, cache)
    second = bwd(p, dhs, dT, cache)  # the cache is not consumed
    for a, b in zip(snapshot, _arrays(cache), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_arrays(first), _arrays(second), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before, inputs, strict=True):
        np.testing.assert_array_equal(a, b)
    # no state kept between calls: another call in between changes nothing
    _, other = fwd(p, x[:, ::-1] * 0.5, None, None, True, **opts)
    bwd(p, dhs, None, other)
    third = bwd(p, dhs, dT, cache)
    for a, b in zip(_arrays(first), _arrays(third), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("with_dhs", [True, False], ids=["dhs", "final_only"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name", NAMES)
def test_dh_trace_is_the_total_gradient_of_every_state(name, reverse, with_dhs):
    """trace[t] = dL/dh_t of the state after step t: its own output's gradient plus what reaches it
    through the later steps, which is dh0 of the layer run on from that state over the rest."""
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=70, t=6)
    mask = np.ones((B, 6))
    mask[0, -2:] = 0
    mask[1, :2] = 0
    mask[2, 3] = 0
    dhs = dhs if with_dhs else None
    _, cache = cell.forward(p, x, s0, mask, reverse, **opts)
    plain = cell.backward(p, dhs, dT, cache)
    trace = np.full((6, B, H), np.nan)
    traced = cell.backward(p, dhs, dT, cache, dh_trace=trace)
    for a, b in zip(_arrays(plain), _arrays(traced), strict=True):
        np.testing.assert_array_equal(a, b)  # the trace changes nothing else
    direct = np.zeros((B, 6, H)) if dhs is None else dhs * mask[:, :, None]
    for t in range(6):
        done = slice(t, 6) if reverse else slice(0, t + 1)  # the steps read up to and including t
        rest = slice(0, t) if reverse else slice(t + 1, 6)
        (_, state_t), _ = cell.forward(p, x[:, done], s0, mask[:, done], reverse, **opts)
        if rest.stop > rest.start:
            _, c2 = cell.forward(p, x[:, rest], state_t, mask[:, rest], reverse, **opts)
            through = cell.backward(p, None if dhs is None else dhs[:, rest], dT, c2)[1][0]
        else:
            through = dT[0]
        np.testing.assert_allclose(trace[t], through + direct[:, t], rtol=1e-10, atol=1e-12, err_msg=f"t={t}")


@pytest.mark.parametrize("name", NAMES)
def test_dh_trace_against_finite_differences(name):
    """Independent of any backward code: perturb h_t (other states held) and run the rest from there."""
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=71)
    _, cache = cell.forward(p, x, s0, None, False, **opts)
    trace = np.zeros((T, B, H))
    cell.backward(p, dhs, dT, cache, dh_trace=trace)
    t = 1
    (_, state_t), _ = cell.forward(p, x[:, : t + 1], s0, None, False, **opts)

    def loss(a):  # L as a function of h_t (outputs before t fixed)
        (hs2, sT2), _ = cell.forward(p, x[:, t + 1 :], (a["h"],) + state_t[1:], None, False, **opts)
        return float(np.sum(a["h"] * dhs[:, t])) + _weighted(hs2, sT2, dhs[:, t + 1 :], dT)

    errs = max_rel_error({"h": trace[t]}, numeric_grads(loss, {"h": state_t[0].copy()}))
    assert errs["h"] < TOL, errs


@pytest.mark.parametrize("runner", ["forward", "stepwise"])
@pytest.mark.parametrize("name", NAMES)
def test_activations_are_named_kinded_and_shaped(name, runner):
    cell, opts, p, x, s0, _, _ = _setup(name, {}, seed=80)
    fwd = cell.forward if runner == "forward" else cell.stepwise_forward
    _, cache = fwd(p, x, s0, MASK, False, **opts)
    acts = cell.activations(cache)
    assert acts and set(cell.gates) <= set(acts)
    for k, (kind, a) in acts.items():
        assert kind in _protocol.KINDS, (k, kind)
        assert np.shape(a) == (B, T, H), k
        a = np.asarray(a)[MASK != 0]
        if kind == "sigmoid":
            assert a.min() >= 0 and a.max() <= 1, k
        elif kind == "tanh":
            assert np.abs(a).max() <= 1, k
        elif kind == "relu":
            assert a.min() >= 0, k


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name", NAMES)
def test_padding_carries_the_state_and_outputs_zero(name, reverse):
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=90)
    (hs, sT), cache = cell.forward(p, x, s0, MASK, reverse, **opts)
    assert np.all(hs[MASK == 0] == 0)
    # a post-padded row ends in the state of its real prefix, run alone
    (hs0, sT0), _ = cell.forward(p, x[0:1, :3], tuple(s[0:1] for s in s0), None, reverse, **opts)
    for a, b in zip(sT, sT0, strict=True):
        np.testing.assert_allclose(a[0], b[0], atol=1e-12)
    np.testing.assert_allclose(hs[0, :3], hs0[0], atol=1e-12)
    # a fully padded row keeps its initial state
    m = MASK.copy()
    m[2] = 0
    (hs2, sT2), _ = cell.forward(p, x, s0, m, reverse, **opts)
    for a, b in zip(sT2, s0, strict=True):
        np.testing.assert_allclose(a[2], b[2], atol=0)
    # gradients sent to padded outputs are ignored
    g1 = cell.backward(p, dhs, dT, cache)
    g2 = cell.backward(p, dhs * MASK[:, :, None], dT, cache)
    for a, b in zip(_arrays(g1), _arrays(g2), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_garbage_at_padded_steps_changes_nothing_and_each_row_equals_its_real_steps(name):
    cell, opts, p, x, s0, _, _ = _setup(name, {}, seed=91)
    m = MASK.copy()
    m[2, 2] = 1  # rows: post-padded, pre-padded, full
    (hs, sT), _ = cell.forward(p, x, s0, m, **opts)
    x2 = x.copy()
    x2[m == 0] = 100.0
    (hs2, sT2), _ = cell.forward(p, x2, s0, m, **opts)
    np.testing.assert_array_equal(hs2, hs)
    for a, b in zip(sT, sT2, strict=True):
        np.testing.assert_array_equal(a, b)
    for b in range(B):
        real = np.flatnonzero(m[b])
        (hs_b, sT_b), _ = cell.forward(p, x[b : b + 1, real], tuple(s[b : b + 1] for s in s0), **opts)
        np.testing.assert_allclose(hs[b, real], hs_b[0], rtol=1e-12, atol=1e-12)
        for a, c in zip(sT, sT_b, strict=True):
            np.testing.assert_allclose(a[b], c[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_reverse_is_forward_on_the_flipped_input(name):
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=92)
    (hs_r, sT_r), c_r = cell.forward(p, x, s0, None, True, **opts)
    (hs_f, sT_f), c_f = cell.forward(p, x[:, ::-1], s0, None, False, **opts)
    np.testing.assert_allclose(hs_r, hs_f[:, ::-1], rtol=1e-12, atol=1e-12)
    dx_r, ds_r, g_r = cell.backward(p, dhs, dT, c_r)
    dx_f, ds_f, g_f = cell.backward(p, dhs[:, ::-1], dT, c_f)
    np.testing.assert_allclose(dx_r, dx_f[:, ::-1], rtol=1e-10, atol=1e-12)
    for a, b in [*zip(sT_r, sT_f, strict=True), *zip(ds_r, ds_f, strict=True)]:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for k in g_r:
        np.testing.assert_allclose(g_r[k], g_f[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_extreme_preactivations_saturate_cleanly(name, dtype):
    """exp overflow inside sigmoid / tanh must give their limits: no NaN, no warning (RuntimeWarnings
    from rnnlab are errors in this suite), bounded activations."""
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=93, dtype=dtype)
    x = (x * 1e4).astype(dtype)
    (hs, sT), cache = cell.forward(p, x, s0, MASK, **opts)
    dx, ds0, g = cell.backward(p, dhs, dT, cache)
    for a in (hs, dx, *sT, *ds0, *g.values()):
        assert np.isfinite(a).all()
    for k, (kind, a) in cell.activations(cache).items():
        if kind in ("sigmoid", "tanh"):
            assert np.abs(np.asarray(a)).max() <= 1, k


# ----------------------------------------------------------------------------------------
# declarations, init, registry
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_declarations_are_consistent(name):
    cell = cells.get(name)
    assert cell.name == name and cell.module.__name__ == f"rnnlab.engine.cells.{name}"
    assert len(cell.state_names) == cell.num_states >= 1
    assert len(set(cell.param_names)) == len(cell.param_names)
    rec = cell.recurrent
    assert rec is not None and rec.param in cell.param_names and rec.kind in ("matrix", "diagonal")
    assert rec.carrier is None or rec.carrier in rec.blocks
    assert set(rec.blocks) <= set(cell.gates) or not rec.blocks
    for k, opt in cell.options.items():
        assert opt.check(k, opt.default) == opt.default
    p = cell.init_params(np.random.default_rng(0), D, H, np.float32, **cell.resolve())
    assert list(p) == list(cell.param_names)
    assert all(v.dtype == np.float32 for v in p.values())
    assert cell.sizes(p) == (D, H)
    q = cell.init_params(np.random.default_rng(0), D, H, np.float32, **cell.resolve())
    assert all(np.array_equal(p[k], q[k]) for k in p)  # the generator fixes the init
    W = p[rec.param]
    assert W.shape == ((H,) if rec.kind == "diagonal" else (max(1, len(rec.blocks)) * H, H))
    if hasattr(cell.module, "TORCH"):  # torch's init: every tensor U(-1/sqrt(H), 1/sqrt(H))
        assert all(np.abs(v).max() <= 1 / np.sqrt(H) for v in p.values())


def test_unknown_cells_and_options_are_one_line_errors():
    with pytest.raises(ValueError, match=r"unknown cell 'nope' \(choose from: .*lstm"):
        cells.get("nope")
    with pytest.raises(ValueError, match=r"unknown cell 'no_such_package.cell' \(choose from: .*module path"):
        cells.get("no_such_package.cell")
    with pytest.raises(ValueError, match="cell module 'os' lacks NAME"):
        cells.get("os")
    with pytest.raises(ValueError, match="cell lstm has no option 'nonlinearity'"):
        cells.get("lstm").resolve({"nonlinearity": "relu"})
    with pytest.raises(ValueError, match=r"nonlinearity must be one of tanh, relu \(got 'sigmoid'\)"):
        cells.get("rnn").resolve({"nonlinearity": "sigmoid"})
    with pytest.raises(ValueError, match="'broken' lacks NAME, NUM_STATES"):
        cells.register_cell(type(sys)("broken"))


USER_CELL = '''
"""A minimal user cell: h_t = tanh(W x_t + U (m * h_{t-1}) + b) written as a step pair only."""
import numpy as np

NAME = "user_rnn"
NUM_STATES = 1
PARAM_NAMES = ("W", "U", "b")


def sizes(params):
    return params["W"].shape[1], params["W"].shape[0]


def init_params(rng, input_size, hidden_size, dtype=np.float32):
    k = 1 / np.sqrt(hidden_size)
    shapes = {"W": (hidden_size, input_size), "U": (hidden_size, hidden_size), "b": (hidden_size,)}
    return {n: rng.uniform(-k, k, s).astype(dtype) for n, s in shapes.items()}


def step_forward(params, x_t, state, rec_mask=None):
    hr = state[0] if rec_mask is None else state[0] * rec_mask
    h = np.tanh(x_t @ params["W"].T + hr @ params["U"].T + params["b"])
    return (h,), {"p": params, "x": x_t, "hr": hr, "h": h, "m": rec_mask}


def step_backward(dstate, cache):
    da = dstate[0] * (1 - cache["h"] ** 2)
    dh = da @ cache["p"]["U"]
    dh = dh if cache["m"] is None else dh * cache["m"]
    g = {"W": da.T @ cache["x"], "U": da.T @ cache["hr"], "b": da.sum(0)}
    return da @ cache["p"]["W"], (dh,), g


def step_activations(cache):
    return {"h": ("tanh", cache["h"])}
'''


def test_a_user_cell_from_a_module_path_trains_in_a_model(tmp_path, monkeypatch):
    """A module with only the step pair plugs in by its import path (keras.layers.RNN(cell) style):
    sequences, both directions, masks and zoneout come from the runner; gradients are exact."""
    from rnnlab.engine import model as M

    (tmp_path / "my_cells.py").write_text(USER_CELL)
    monkeypatch.syspath_prepend(str(tmp_path))
    cell = cells.get("my_cells")
    assert cell.name == "user_rnn" and not cell.tuned and "my_cells" in cells.names()
    spec = M.ModelSpec(cell="my_cells", input_size=D, hidden_size=H, output_size=2, bidirectional=True,
                       pooling="mean", zoneout=0.2)
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, np.float64)
    assert "rnn.U_l0_reverse" in params
    x = rng.standard_normal((B, T, D))
    w = rng.standard_normal((B, 2))

    def loss(a):
        y, _ = M.forward(spec, a, x, MASK, train=True, rng=np.random.default_rng(1))
        return float(np.sum(y * w))

    _, cache = M.forward(spec, params, x, MASK, train=True, rng=np.random.default_rng(1))
    grads, _ = M.backward(spec, params, w, cache)
    errs = max_rel_error(grads, numeric_grads(loss, params))
    assert max(errs.values()) < TOL, errs


@pytest.mark.slow  # importing torch alone takes several seconds on a small machine
@pytest.mark.parametrize("name", [n for n in NAMES if hasattr(cells.get(n).module, "TORCH")])
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    cell, opts, p, x, s0, dhs, dT = _setup(name, {}, seed=100)
    for nl, reverse in itertools.product(("tanh", "relu") if "nonlinearity" in opts else (None,), (False, True)):
        kw = {} if nl is None else {"nonlinearity": nl}
        mod = getattr(torch.nn, cell.module.TORCH)(D, H, batch_first=True, **kw).double()
        with torch.no_grad():
            for k, v in p.items():
                getattr(mod, f"{k}_l0").copy_(torch.from_numpy(v))
        flip = (lambda a: a[:, ::-1].copy()) if reverse else (lambda a: a)  # torch's reverse = flipped input
        xt = torch.tensor(flip(x), requires_grad=True)
        st = [torch.tensor(s[None], requires_grad=True) for s in s0]
        hs_t, fin = mod(xt, st[0] if len(st) == 1 else tuple(st))
        fin = (fin,) if len(st) == 1 else fin
        loss = (hs_t * torch.from_numpy(flip(dhs))).sum() + sum((f[0] * torch.from_numpy(d)).sum()
                                                                 for f, d in zip(fin, dT, strict=True))
        loss.backward()
        (hs, sT), cache = cell.forward(p, x, s0, None, reverse, **dict(opts, **kw))
        dx, ds0, g = cell.backward(p, dhs, dT, cache)
        np.testing.assert_allclose(hs, flip(hs_t.detach().numpy()), atol=1e-12)
        np.testing.assert_allclose(dx, flip(xt.grad.numpy()), atol=1e-10)
        for a, t in zip(ds0, st, strict=True):
            np.testing.assert_allclose(a, t.grad[0].numpy(), atol=1e-10)
        for k, v in g.items():
            np.testing.assert_allclose(v, getattr(mod, f"{k}_l0").grad.numpy(), atol=1e-10)
