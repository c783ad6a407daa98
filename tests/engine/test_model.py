"""The composed model: block walk, finite differences (sparse for the combinatorial specs; the cells
and layers have full checks in their own tests), padding, pooling, regularizers, state, BatchNorm."""

from dataclasses import replace as dataclasses_replace

import numpy as np
import pytest

from rnnlab.engine import blocks, cells
from rnnlab.engine import model as M
from rnnlab.engine.gradcheck import numeric_grad, sparse_rel_errors

TOL = 1e-6
CELLS = cells.names()


def _mask(B, T):
    m = np.ones((B, T))
    m[0, -2:] = 0  # post-padded
    m[1, :2] = 0  # pre-padded
    return m


def _sparse_check(spec, x, mask, w, params, state=None, initial_states=None, skip=(), seed=0):
    """Sparse finite differences of sum(y * w) for every parameter and the input (float inputs);
    returns the forward cache."""
    def run(a):
        return M.forward(spec, params | a, a.get("x", x), mask, train=True, rng=np.random.default_rng(3),
                         state=state, initial_states=initial_states)

    y, cache = run(params)
    grads, dx = M.backward(spec, params, w, cache)
    assert set(grads) <= set(params)
    arrays = {k: v for k, v in params.items() if k in grads and k not in skip}
    analytic = {k: grads[k] for k in arrays}
    if np.issubdtype(np.asarray(x).dtype, np.floating):
        arrays["x"], analytic["x"] = x, dx
    errs = sparse_rel_errors(lambda a: float(np.sum(run(a)[0] * w)), arrays, analytic, k=3, seed=seed)
    assert max(errs.values()) < TOL, errs
    return cache


def _ln_slow(cases: list) -> list:
    """The ln_lstm cases (seconds each: its norms' many parameters) in the slow suite; the cell's own
    gradients are checked in the fast suite by tests/engine/test_cells_contract.py."""
    def one(case):
        cell = case[0] if isinstance(case, tuple) else case
        return pytest.param(*(case if isinstance(case, tuple) else (case,)),
                            marks=[pytest.mark.slow] if cell == "ln_lstm" else [])
    return [one(c) for c in cases]


def _recurrent_caches(spec, cache):
    """(block, cache) of every recurrent layer, bottom first."""
    return [(b, c) for b, c in zip(M.blocks_of(spec), cache["blocks"], strict=True) if isinstance(b, blocks.Recurrent)]


@pytest.mark.parametrize("cell, mode",
                         _ln_slow([(c, "concat") for c in CELLS] + [("gru", m) for m in ("sum", "mean", "mul")]))
def test_bidirectional_layers_with_initial_states(cell, mode):
    """Per-layer initial states in, final states out, their gradients back (dstates), every merge mode."""
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=2, bidirectional=True, merge_mode=mode,
                       num_layers=2, pooling="mean")
    rng = np.random.default_rng(1)
    params = M.init_params(spec, rng, dtype=np.float64)
    n = cells.get(cell).num_states
    B, T = 3, 5
    init = {f"rnn{k}": tuple(tuple(rng.standard_normal((B, 4)) for _ in range(n)) for _ in range(2))
            for k in range(2)}
    x = rng.standard_normal((B, T, 3))
    mask = _mask(B, T)
    w = rng.standard_normal((B, 2))
    cache = _sparse_check(spec, x, mask, w, params, initial_states=init)
    finals = cache["final_states"]
    assert set(finals) == {"rnn0", "rnn1"} and all(len(f) == 2 and len(f[0]) == n for f in finals.values())
    # a model run from zero states equals one given explicit zeros; other states change the output
    zeros = {k: tuple(tuple(np.zeros_like(s) for s in d) for d in v) for k, v in init.items()}
    y0, _ = M.forward(spec, params, x, mask)
    np.testing.assert_array_equal(M.forward(spec, params, x, mask, initial_states=zeros)[0], y0)
    y_init, cache = M.forward(spec, params, x, mask, initial_states=init)
    assert not np.allclose(y_init, y0)
    # the initial states' gradients, against finite differences of every entry
    d = {}
    M.backward(spec, params, w, cache, dstates=d)

    def loss_of(flat):
        st = {k: tuple(tuple(flat[f"{k}.{j}.{i}"] for i in range(n)) for j in range(2)) for k in init}
        return float(np.sum(M.forward(spec, params, x, mask, initial_states=st)[0] * w))

    arrays = {f"{k}.{j}.{i}": init[k][j][i] for k in init for j in range(2) for i in range(n)}
    analytic = {f"{k}.{j}.{i}": d[k][j][i] for k in init for j in range(2) for i in range(n)}
    errs = sparse_rel_errors(loss_of, arrays, analytic, k=3)
    assert max(errs.values()) < TOL, errs


SPECS = [
    dict(cell="lstm", pooling="last"),
    dict(cell="gru", pooling="mean"),
    dict(cell="rnn", pooling="max"),
    dict(cell="rnn", pooling="last", nonlinearity="relu"),
    dict(cell="lstm", pooling="last", bidirectional=True, num_layers=2),
    dict(cell="gru", pooling="max", bidirectional=True, merge_mode="sum"),
    dict(cell="lstm", pooling="mean", bidirectional=True, merge_mode="mul", num_layers=2),
    dict(cell="gru", pooling="last", num_layers=3, dropout=0.3, input_dropout=0.2, output_dropout=0.25),
    dict(cell="lstm", pooling="attention", bidirectional=True),
    dict(cell="gru", pooling="attention", num_layers=2, dropout=0.3, output_dropout=0.25),
    dict(cell="rnn", pooling="attention", bidirectional=True, merge_mode="sum"),
    dict(cell="lstm", pooling="last", conv_channels=4, conv_kernel=3),
    dict(cell="gru", pooling="mean", bidirectional=True, conv_channels=2, conv_kernel=2, conv_dilation=2),
    dict(cell="lstm", pooling="mean", num_layers=2, layer_norm=True),
    dict(cell="gru", pooling="last", bidirectional=True, num_layers=2, layer_norm=True),
    dict(cell="ln_lstm", pooling="last"),
    dict(cell="ln_lstm", pooling="attention", bidirectional=True, layer_norm=True, conv_channels=3),
    # recurrent regularizers (the per-step runner): masks drawn from the fixed rng, the same in every call
    dict(cell="lstm", pooling="last", recurrent_dropout=0.3, zoneout=0.2),
    dict(cell="gru", pooling="mean", bidirectional=True, num_layers=2, recurrent_dropout=0.3),
    dict(cell="rnn", pooling="last", zoneout=0.3),
    dict(cell="lstm", pooling="attention", bidirectional=True, num_layers=2, dropout=0.2, zoneout=0.25),
    dict(cell="rnn", pooling="max", nonlinearity="relu", bidirectional=True, recurrent_dropout=0.2, zoneout=0.2),
    dict(cell="gru", pooling="last", zoneout=0.3, recurrent_dropout=0.25, layer_norm=True, num_layers=2),
    dict(cell="ln_lstm", pooling="mean", bidirectional=True, zoneout=0.2, recurrent_dropout=0.2),
]


@pytest.mark.parametrize("kw", SPECS, ids=lambda kw: "-".join(f"{v}" for v in kw.values()))
@pytest.mark.parametrize("masked", [False, True])
def test_model_gradients(kw, masked):
    spec = M.ModelSpec(input_size=3, hidden_size=4, output_size=2, **kw)
    rng = np.random.default_rng(7)
    # weights larger than the init: gates away from 0.5 and no vanishingly small gradients (a product of two
    # small states with merge_mode "mul") whose finite differences would be round-off
    params = {k: 2.0 * v for k, v in M.init_params(spec, rng, dtype=np.float64).items()}
    B, T = 3, 5
    # a fresh generator with a fixed seed draws the same dropout masks every call
    _sparse_check(spec, rng.standard_normal((B, T, 3)), _mask(B, T) if masked else None,
                  rng.standard_normal((B, 2)), params)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("extras", [{}, {"conv_channels": 3, "conv_kernel": 3, "layer_norm": True}],
                         ids=["plain", "conv-ln"])
def test_padding_never_changes_a_prediction(cell, pooling, extras):
    """A post-padded sequence predicts exactly what its unpadded prefix predicts."""
    spec = M.ModelSpec(cell=cell, input_size=2, hidden_size=4, output_size=1, bidirectional=True,
                       pooling=pooling, num_layers=2, **extras)
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((1, 6, 2))
    padded = np.concatenate([x, rng.standard_normal((1, 3, 2))], axis=1)
    mask = np.array([[1] * 6 + [0] * 3])
    y_ref, _ = M.forward(spec, params, x)
    y_pad, _ = M.forward(spec, params, padded, mask)
    np.testing.assert_allclose(y_pad, y_ref, rtol=1e-12, atol=1e-12)


def test_param_names_follow_pytorch():
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=1, num_layers=2,
                       bidirectional=True)
    p = M.init_params(spec, np.random.default_rng(0))
    assert p["rnn.weight_ih_l0"].shape == (16, 3)
    assert p["rnn.weight_ih_l1_reverse"].shape == (16, 8)
    assert p["rnn.weight_hh_l1"].shape == (16, 4)
    assert p["head.weight"].shape == (1, 8)
    assert all(v.dtype == np.float32 for v in p.values())
    assert M.n_params(p) == 2 * (16 * 3 + 16 * 4 + 32) + 2 * (16 * 8 + 16 * 4 + 32) + 9


def test_eval_mode_is_deterministic_and_ignores_dropout():
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=4, output_size=1, num_layers=2,
                       dropout=0.5, input_dropout=0.5, output_dropout=0.5)
    params = M.init_params(spec, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 7, 2)).astype(np.float32)
    a, _ = M.forward(spec, params, x, train=False, rng=np.random.default_rng(1))
    b, _ = M.forward(spec, params, x, train=False, rng=np.random.default_rng(2))
    c, _ = M.forward(spec, params, x, train=True, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.dtype == np.float32


@pytest.mark.parametrize("trainable", [True, False])
def test_embedding_front_gradients_and_padding(trainable):
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=3, output_size=2, vocab_size=7, padding_idx=0,
                       embed_trainable=trainable, bidirectional=True, pooling="mean")
    rng = np.random.default_rng(5)
    params = M.init_params(spec, rng, dtype=np.float64)
    assert params["embedding.weight"].shape == (7, 3)
    np.testing.assert_array_equal(params["embedding.weight"][0], 0)
    ids = np.array([[1, 2, 3, 4, 0, 0], [5, 6, 1, 2, 3, 4], [2, 2, 2, 0, 0, 0]])
    mask = (ids != 0).astype(np.float64)
    w = rng.standard_normal((3, 2))

    y, cache = M.forward(spec, params, ids, mask)
    grads, _ = M.backward(spec, params, w, cache)
    assert set(grads) == {k for k in params if trainable or k != "embedding.weight"}
    _sparse_check(spec, ids, mask, w, params)
    if trainable:
        np.testing.assert_array_equal(grads["embedding.weight"][0], 0)  # the padding row learns nothing
    # padding never changes a prediction: the first row without its padding
    y_short, _ = M.forward(spec, params, ids[:1, :4])
    np.testing.assert_allclose(y[:1], y_short, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- pooling "attention"


@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
def test_attention_pooling_with_embedding_gradients_and_weights(bidir):
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=3, output_size=2, vocab_size=7,
                       bidirectional=bidir, pooling="attention", output_dropout=0.2)
    rng = np.random.default_rng(6)
    params = M.init_params(spec, rng, dtype=np.float64)
    F = spec.feature_size
    assert params["attn.weight"].shape == (F, F)
    assert params["attn.bias"].shape == params["attn.v"].shape == (F,)
    ids = np.array([[1, 2, 3, 4, 0, 0], [0, 0, 5, 6, 1, 2], [2, 2, 2, 2, 2, 2]])
    mask = (ids != 0).astype(np.float64)
    w = rng.standard_normal((3, 2))

    cache = _sparse_check(spec, ids, mask, w, params)
    grads, dx = M.backward(spec, params, w, cache)
    assert set(grads) == set(params)
    a = M.shows(spec, cache)["attention"]
    assert a.shape == (3, 6)
    np.testing.assert_array_equal(a[mask == 0], 0)
    np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(dx[mask == 0], 0)
    plain = M.ModelSpec(cell="gru", input_size=2, hidden_size=2, output_size=1)
    assert "attention" not in M.shows(plain, M.forward(plain, M.init_params(plain, rng), np.zeros((1, 3, 2)))[1])


def test_attention_pooling_spec_and_config():
    assert "attention" in M.POOLINGS
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=4, output_size=1, bidirectional=True,
                       pooling="attention")
    p = M.init_params(spec, np.random.default_rng(0))
    assert M.n_params(p) == M.n_params(M.init_params(dataclasses_replace(spec, pooling="mean"),
                                                     np.random.default_rng(0))) + 8 * 8 + 8 + 8
    assert all(v.dtype == np.float32 for v in p.values())
    x = np.random.default_rng(1).standard_normal((3, 5, 2)).astype(np.float32)
    y = M.predict(spec, p, x, mask=np.ones((3, 5)))
    assert y.shape == (3, 1) and y.dtype == np.float32


# ---------------------------------------------------------------- pooling "none" (per-step outputs)


def _check_per_step_gradients(spec, masked, B=3, T=5, seed=7):
    rng = np.random.default_rng(seed)
    params = {k: 2.0 * v for k, v in M.init_params(spec, rng, dtype=np.float64).items()}
    x = rng.standard_normal((B, T, spec.input_size))
    w = rng.standard_normal((B, T, spec.output_size))  # every step's output matters
    cache = _sparse_check(spec, x, _mask(B, T) if masked else None, w, params)
    assert M.backward(spec, params, w, cache)[0].keys() == params.keys()


# every cell once in the richest setting, and every setting with one cell (the cells' own checks are full)
PER_STEP = [(c, True, 2, True) for c in CELLS] + [
    ("lstm", b, n, m) for b in (False, True) for n in (1, 2) for m in (False, True) if (b, n, m) != (True, 2, True)]


@pytest.mark.parametrize("cell, bidir, num_layers, masked", _ln_slow(PER_STEP))
def test_per_step_gradients(cell, bidir, num_layers, masked):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=2, num_layers=num_layers,
                       bidirectional=bidir, pooling="none")
    _check_per_step_gradients(spec, masked)


@pytest.mark.parametrize("kw", [
    dict(cell="lstm", bidirectional=True, merge_mode="sum", num_layers=2, dropout=0.3,
         input_dropout=0.2, output_dropout=0.4),
    dict(cell="gru", bidirectional=True, merge_mode="mul", output_dropout=0.5),
    dict(cell="rnn", nonlinearity="relu", output_dropout=0.3),
], ids=["lstm-bi-sum-dropouts", "gru-bi-mul-outdrop", "rnn-relu-outdrop"])
def test_per_step_gradients_with_dropout_and_merge_modes(kw):
    spec = M.ModelSpec(input_size=3, hidden_size=4, output_size=2, pooling="none", **kw)
    _check_per_step_gradients(spec, masked=True)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
def test_per_step_padding_never_changes_real_outputs(cell, bidir):
    """Post- and pre-padding with garbage inputs: real steps predict what the unpadded
    sequence predicts, padded steps output exactly 0."""
    spec = M.ModelSpec(cell=cell, input_size=2, hidden_size=4, output_size=3, bidirectional=bidir,
                       pooling="none", num_layers=2)
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((1, 6, 2))
    y_ref, _ = M.forward(spec, params, x)
    junk = 100 * rng.standard_normal((1, 3, 2))
    post = np.concatenate([x, junk], axis=1)
    pre = np.concatenate([junk, x], axis=1)
    both = np.concatenate([post, pre], axis=0)
    mask = np.array([[1] * 6 + [0] * 3, [0] * 3 + [1] * 6])
    y, _ = M.forward(spec, params, both, mask)
    assert y.shape == (2, 9, 3)
    np.testing.assert_allclose(y[0, :6], y_ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y[1, 3:], y_ref[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(y[0, 6:], 0)
    np.testing.assert_array_equal(y[1, :3], 0)


@pytest.mark.parametrize("bidir", [False, True], ids=["uni", "bi"])
def test_per_step_padded_positions_pass_no_gradient(bidir):
    """dy at padded steps is discarded: every gradient (head bias included) and dx ignore it,
    and dx at padded steps is 0."""
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=2, bidirectional=bidir,
                       pooling="none", num_layers=2, output_dropout=0.3)
    rng = np.random.default_rng(2)
    params = M.init_params(spec, rng, dtype=np.float64)
    B, T = 3, 6
    x = rng.standard_normal((B, T, 3))
    mask = _mask(B, T)
    y, cache = M.forward(spec, params, x, mask, train=True, rng=np.random.default_rng(1))
    dy = rng.standard_normal(y.shape)
    dy_junk = np.where(mask[:, :, None] > 0, dy, 1e3 * rng.standard_normal(y.shape))
    g1, dx1 = M.backward(spec, params, dy, cache)
    g2, dx2 = M.backward(spec, params, dy_junk, cache)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(dx1[mask == 0], 0)


def test_per_step_cross_entropy_gradients_with_embedding():
    """The intended use: token ids in, one class per step out, masked cross entropy."""
    from rnnlab.engine.losses import softmax_cross_entropy

    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=3, output_size=4, vocab_size=6,
                       bidirectional=True, pooling="none")
    rng = np.random.default_rng(4)
    params = M.init_params(spec, rng, dtype=np.float64)
    ids = np.array([[1, 2, 3, 4, 0], [5, 1, 2, 0, 0], [3, 3, 3, 3, 3]])
    mask = (ids != 0).astype(np.float64)
    labels = rng.integers(0, 4, size=ids.shape)

    def loss(a):
        y, _ = M.forward(spec, a, ids, mask)
        return softmax_cross_entropy(y, labels, mask)[0]

    y, cache = M.forward(spec, params, ids, mask)
    _, dy = softmax_cross_entropy(y, labels, mask)
    grads, _ = M.backward(spec, params, dy, cache)
    errs = sparse_rel_errors(loss, params, grads, k=8)
    assert max(errs.values()) < TOL, errs


def test_per_step_predict_and_spec_validation():
    spec = M.ModelSpec(cell="rnn", input_size=2, hidden_size=3, output_size=2, pooling="none")
    params = M.init_params(spec, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((5, 4, 2)).astype(np.float32)
    y = M.predict(spec, params, x, batch_size=2)
    assert y.shape == (5, 4, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y, M.forward(spec, params, x)[0], rtol=1e-6)
    assert M.predict(spec, params, x[:0]).shape == (0, 4, 2)
    assert M.ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="pooling"):
        M.ModelSpec(cell="rnn", input_size=2, hidden_size=3, output_size=2, pooling="sum")


# ---------------------------------------------------------------- recurrent dropout and zoneout


@pytest.mark.parametrize("cell", _ln_slow(CELLS))
@pytest.mark.parametrize("bidir", [True], ids=["bi"])  # one direction: the contract suite's runner checks
def test_recurrent_regularizers_per_step_gradients(cell, bidir):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=2, bidirectional=bidir,
                       pooling="none", num_layers=2, recurrent_dropout=0.3, zoneout=0.2)
    _check_per_step_gradients(spec, masked=True)


@pytest.mark.parametrize("cell, masked", [(c, True) for c in CELLS] + [("lstm", False)])
def test_zoneout_eval_mode_gradients(cell, masked):
    """Evaluation mode (zoneout's expectation) is differentiable too, and deterministic."""
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=2, bidirectional=True,
                       zoneout=0.3, recurrent_dropout=0.4)
    rng = np.random.default_rng(8)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((3, 5, 3))
    mask = _mask(3, 5) if masked else None
    w = rng.standard_normal((3, 2))
    y, cache = M.forward(spec, params, x, mask, train=False, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(y, M.forward(spec, params, x, mask, train=False, rng=np.random.default_rng(2))[0])
    grads, dx = M.backward(spec, params, w, cache)

    def loss(a):
        return float(np.sum(M.forward(spec, a, a["x"], mask)[0] * w))

    errs = sparse_rel_errors(loss, dict(params, x=x), dict(grads, x=dx), k=3)
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_regularizers_at_evaluation(cell):
    """Recurrent dropout changes nothing at evaluation (= the plain model, fast cells); zoneout
    evaluates its expectation, which differs from the plain model, and training samples masks."""
    base = M.ModelSpec(cell=cell, input_size=2, hidden_size=4, output_size=1, num_layers=2, bidirectional=True)
    rd = dataclasses_replace(base, recurrent_dropout=0.5)
    zo = dataclasses_replace(base, zoneout=0.3)
    assert not base.recurrent_regularized and rd.recurrent_regularized and zo.recurrent_regularized
    params = M.init_params(base, np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((3, 6, 2))
    mask = _mask(3, 6)
    y0, _ = M.forward(base, params, x, mask)
    y_rd, _ = M.forward(rd, params, x, mask, train=False, rng=np.random.default_rng(3))
    np.testing.assert_allclose(y_rd, y0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(M.predict(rd, params, x, mask), y0, rtol=1e-12, atol=1e-12)
    y_zo, _ = M.forward(zo, params, x, mask)
    assert not np.allclose(y_zo, y0)
    # training: masks sampled from rng, per layer and direction (rec: (B, H); zoneout: (T, B, H))
    y_a, cache = M.forward(rd, params, x, mask, train=True, rng=np.random.default_rng(3))
    y_b, _ = M.forward(rd, params, x, mask, train=True, rng=np.random.default_rng(4))
    assert not np.allclose(y_a, y_b) and not np.allclose(y_a, y0)
    _, top = _recurrent_caches(rd, cache)[1]
    masks = [c["steps"][0]["rec_mask"] for c in top["dirs"]]  # the same mask at every step of a direction
    for c, rm in zip(top["dirs"], masks, strict=True):
        assert rm.shape == (3, 4) and set(np.unique(rm)) <= {0.0, 2.0}
        assert all(s["rec_mask"] is rm for s in c["steps"])
    assert not np.array_equal(*masks)
    _, zc = M.forward(zo, params, x, mask, train=True, rng=np.random.default_rng(5))
    keep = _recurrent_caches(zo, zc)[0][1]["dirs"][0]["keep"]
    assert len(keep) == cells.get(cell).num_states  # one zoneout mask per state of the cell
    for k in keep:
        assert k.shape == (6, 3, 4) and set(np.unique(k)) <= {0.0, 1.0}
    # train mode without an rng: no masks (as the other dropouts), i.e. evaluation behaviour
    np.testing.assert_allclose(M.forward(rd, params, x, mask, train=True)[0], y0, rtol=1e-12, atol=1e-12)


def test_recurrent_regularizer_spec_validation():
    kw = dict(input_size=2, hidden_size=3, output_size=1)
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        M.ModelSpec(cell="lstm", recurrent_dropout=1.0, **kw)
    with pytest.raises(ValueError, match="zoneout must be in"):
        M.ModelSpec(cell="lstm", zoneout=-0.1, **kw)
    with pytest.raises(ValueError, match=r"cell must be one of .* or a module path \(got 'peephole'\)"):
        M.ModelSpec(cell="peephole", **kw)
    assert M.ModelSpec(cell="ln_lstm", zoneout=0.1, **kw).recurrent_regularized  # every cell has the runner
    spec = M.ModelSpec(cell="gru", zoneout=0.1, recurrent_dropout=0.2, **kw)
    assert M.ModelSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k not in ("zoneout", "recurrent_dropout")}
    assert not M.ModelSpec.from_dict(old).recurrent_regularized  # older checkpoints still load


# ---------------------------------------------------------------- multi-head self-attention block


def _check_model_gradients(spec, masked, B=3, T=5, seed=7):
    rng = np.random.default_rng(seed)
    params = M.init_params(spec, rng, dtype=np.float64)
    for k in params:  # zero-initialised biases: make them matter in the check
        if k.startswith("mhsa.b_"):
            params[k] = 0.1 * rng.standard_normal(params[k].shape)
    x = rng.standard_normal((B, T, spec.input_size))
    mask = _mask(B, T) if masked else None
    w = rng.standard_normal((B, T, spec.output_size) if spec.per_step else (B, spec.output_size))

    def loss(a):
        return float(np.sum(M.forward(spec, params | a, x, mask, train=True, rng=np.random.default_rng(3))[0] * w))

    y, cache = M.forward(spec, params, x, mask, train=True, rng=np.random.default_rng(3))
    grads, dx = M.backward(spec, params, w, cache)
    assert set(grads) == set(params)
    # softmax is shift-invariant per query, so the key bias has a gradient of exactly 0: check it absolutely
    np.testing.assert_allclose(grads["mhsa.b_k"], 0, atol=1e-9)
    np.testing.assert_allclose(numeric_grad(lambda: loss({}), params["mhsa.b_k"]), 0, atol=1e-8)
    _sparse_check(spec, x, mask, w, params, skip=("mhsa.b_k",))
    return cache, mask


SA_POOLINGS = ("mean", "max", "attention", "none")
# Pairwise cover of (heads, causal, bidir, masked) with every pooling: each pooling takes a row and its
# complement, and over the 8 rows every two binary options meet in all four combinations. The fast suite
# runs these 8; the slow suite runs the other 56 of the full product.
SA_PAIRWISE = {(p, *bits) for p, row in zip(SA_POOLINGS, ("0000", "0011", "0101", "0110"), strict=True)
               for bits in ((tuple(c == "1" for c in row)), tuple(c == "0" for c in row))}


def _sa_params():
    for pooling in SA_POOLINGS:
        for heads in (1, 2):
            for causal in (False, True):
                for bidir in (False, True):
                    for masked in (False, True):
                        fast = (pooling, heads == 2, causal, bidir, masked) in SA_PAIRWISE
                        marks = [] if fast else [pytest.mark.slow]
                        yield pytest.param(pooling, heads, causal, bidir, masked, marks=marks,
                                           id=f"{pooling}-{heads}-{'causal' if causal else 'full'}-"
                                              f"{'bi' if bidir else 'uni'}-{'masked' if masked else 'unmasked'}")


@pytest.mark.parametrize("pooling, heads, causal, bidir, masked", list(_sa_params()))
def test_self_attention_gradients(pooling, heads, causal, bidir, masked):
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2, bidirectional=bidir,
                       pooling=pooling, self_attention_heads=heads, self_attention_causal=causal)
    cache, mask = _check_model_gradients(spec, masked)
    a = M.shows(spec, cache)["self_attention"]
    assert a.shape == (3, heads, 5, 5)
    sums = a.sum(axis=-1)  # (B, heads, T): 1 where a real key is visible, 0 where none is (causal, pre-padded)
    real = np.broadcast_to((np.ones((3, 5)) if mask is None else mask)[:, None, :] > 0, sums.shape)
    np.testing.assert_allclose(sums[real], 1, rtol=1e-12)
    assert np.all((np.abs(sums - 1) < 1e-12) | (sums == 0))
    if masked:
        np.testing.assert_array_equal(np.broadcast_to(mask[:, None, None, :] == 0, a.shape) * a, 0)
    if causal:
        np.testing.assert_array_equal(np.triu(a, k=1), 0)


@pytest.mark.parametrize("kw", [
    dict(cell="lstm", num_layers=2, dropout=0.3, input_dropout=0.2, output_dropout=0.25, pooling="attention"),
    dict(cell="lstm", bidirectional=True, merge_mode="sum", layer_norm=True, conv_channels=3, pooling="mean"),
    dict(cell="rnn", bidirectional=True, recurrent_dropout=0.3, zoneout=0.2, pooling="none"),
], ids=["lstm-2layers-dropouts", "lstm-bi-sum-ln-conv", "rnn-bi-regcells-none"])
def test_self_attention_gradients_with_other_extras(kw):
    spec = M.ModelSpec(input_size=3, hidden_size=4, output_size=2, self_attention_heads=2,
                       self_attention_causal=True, **kw)
    _check_model_gradients(spec, masked=True)


@pytest.mark.parametrize("pooling", ["mean", "max", "attention", "none"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_self_attention_padding_never_changes_a_prediction(pooling, causal, cell):
    spec = M.ModelSpec(cell=cell, input_size=2, hidden_size=4, output_size=1, bidirectional=True, num_layers=2,
                       pooling=pooling, self_attention_heads=2, self_attention_causal=causal)
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((1, 6, 2))
    junk = 100 * rng.standard_normal((1, 3, 2))
    padded = np.concatenate([x, junk], axis=1)
    mask = np.array([[1] * 6 + [0] * 3])
    y_ref, _ = M.forward(spec, params, x)
    y_pad, cache = M.forward(spec, params, padded, mask)
    if spec.per_step:
        np.testing.assert_allclose(y_pad[:, :6], y_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(y_pad[:, 6:], 0)
    else:
        np.testing.assert_allclose(y_pad, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(M.shows(spec, cache)["self_attention"][..., 6:], 0)


def test_self_attention_params_spec_and_predict():
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=4, output_size=1, bidirectional=True,
                       pooling="mean", self_attention_heads=2)
    p = M.init_params(spec, np.random.default_rng(0))
    base = M.init_params(dataclasses_replace(spec, self_attention_heads=0), np.random.default_rng(0))
    assert set(p) - set(base) == {f"mhsa.{k}" for k in ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o")}
    assert p["mhsa.W_q"].shape == (8, 8) and p["mhsa.b_o"].shape == (8,)
    assert M.n_params(p) == M.n_params(base) + 4 * (8 * 8 + 8)
    assert all(v.dtype == np.float32 for v in p.values())
    x = np.random.default_rng(1).standard_normal((3, 5, 2)).astype(np.float32)
    y = M.predict(spec, p, x, mask=np.ones((3, 5)))
    assert y.shape == (3, 1) and y.dtype == np.float32
    assert M.ModelSpec.from_dict(spec.to_dict()) == spec
    plain = dataclasses_replace(spec, self_attention_heads=0)
    assert "self_attention" not in M.shows(plain, M.forward(plain, base, x)[1])
    old = {k: v for k, v in plain.to_dict().items() if not k.startswith("self_attention")}
    assert M.ModelSpec.from_dict(old) == plain  # older checkpoints still load


def test_self_attention_spec_validation():
    kw = dict(cell="lstm", input_size=2, hidden_size=6, output_size=1)
    with pytest.raises(ValueError, match="pooling last") as exc:
        M.ModelSpec(pooling="last", self_attention_heads=2, **kw)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"self_attention_heads \(4\) must divide the feature size 6") as exc:
        M.ModelSpec(pooling="mean", self_attention_heads=4, **kw)
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="self_attention_heads must be >= 0"):
        M.ModelSpec(pooling="mean", self_attention_heads=-1, **kw)
    assert M.ModelSpec(pooling="mean", self_attention_heads=4, bidirectional=True, **kw).feature_size == 12


@pytest.mark.parametrize("overrides, message", [
    (["arch.self_attention_heads=2"], "arch.self_attention_heads needs arch.pooling mean, max, attention or none"),
    (["arch.pooling=mean", "arch.hidden_size=6", "arch.self_attention_heads=4"],
     "arch.self_attention_heads (4) must divide"),
    (["arch.pooling=mean", "arch.self_attention_heads=-1"], "arch.self_attention_heads must be >= 0 (got -1)"),
])
def test_self_attention_config_errors_are_one_line(overrides, message):
    from rnnlab.commands.hydra_bridge import compose_and_validate
    from rnnlab.config.validate import ConfigError

    with pytest.raises(ConfigError) as exc:
        compose_and_validate(overrides)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_self_attention_config_reaches_the_spec():
    from rnnlab.commands.hydra_bridge import compose_and_validate
    from rnnlab.train.tasks.sequence import build_spec

    rc = compose_and_validate(["arch=bigru", "arch.pooling=max", "arch.self_attention_heads=4",
                               "arch.self_attention_causal=true"])
    assert rc.arch.self_attention_heads == 4 and rc.arch.self_attention_causal is True

    class _Data:
        embedding = None
        input_size = 3
        output_size = 2

    spec = build_spec(rc, _Data())
    assert spec.self_attention_heads == 4 and spec.self_attention_causal and spec.pooling == "max"
    plain = build_spec(compose_and_validate([]), _Data())
    assert plain.self_attention_heads == 0 and not plain.self_attention_causal


# ---------------------------------------------------------------- BatchNorm between layers (running statistics)

BN_SPECS = [
    dict(cell="lstm", pooling="mean"),
    dict(cell="gru", pooling="last", bidirectional=True, num_layers=2),
    dict(cell="rnn", pooling="max", bidirectional=True, merge_mode="sum", num_layers=2),
    dict(cell="lstm", pooling="attention", num_layers=2, dropout=0.3),
    dict(cell="gru", pooling="mean", bidirectional=True),
    dict(cell="lstm", pooling="last"),
]


def _bn_state(spec, rng):
    """Running statistics away from their initial values, so that using them shows."""
    state = M.init_state(spec, np.float64)
    for k in state:
        state[k] = rng.uniform(0.5, 1.5, state[k].shape) if k.endswith("running_var") else rng.standard_normal(
            state[k].shape)
    return state


@pytest.mark.parametrize("kw", BN_SPECS, ids=lambda kw: "-".join(f"{v}" for v in kw.values()))
@pytest.mark.parametrize("masked", [False, True])
def test_batch_norm_model_gradients_in_train_mode(kw, masked):
    spec = M.ModelSpec(input_size=3, hidden_size=3, output_size=2, batch_norm=True, **kw)
    rng = np.random.default_rng(7)
    params = M.init_params(spec, rng, dtype=np.float64)
    for k in params:  # gamma/beta away from 1/0 so that their gradients are checked in general position
        if k.startswith("bn"):
            params[k] = params[k] + 0.3 * rng.standard_normal(params[k].shape)
    state = _bn_state(spec, rng)
    B, T = 3, 5
    x = rng.standard_normal((B, T, 3))
    mask = _mask(B, T) if masked else None
    w = rng.standard_normal((B, 2))

    cache = _sparse_check(spec, x, mask, w, params, state=state)
    grads, _ = M.backward(spec, params, w, cache)
    assert set(grads) == set(params)  # the running statistics are no parameters
    assert {f"bn{i}.gamma" for i in range(spec.num_layers)} <= set(grads)


def test_batch_norm_spec_state_and_errors():
    with pytest.raises(ValueError, match="mutually exclusive"):
        M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1, batch_norm=True, layer_norm=True)
    plain = M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1, num_layers=2)
    assert M.init_state(plain) == {}
    assert M.forward(plain, M.init_params(plain, np.random.default_rng(0)), np.zeros((1, 3, 2)))[1]["new_state"] == {}
    spec = dataclasses_replace(plain, batch_norm=True, bidirectional=True)
    params = M.init_params(spec, np.random.default_rng(0))
    assert params["bn1.gamma"].shape == params["bn1.beta"].shape == (6,)
    assert not any("running" in k for k in params)
    state = M.init_state(spec)
    assert set(state) == {"bn0.running_mean", "bn0.running_var", "bn1.running_mean", "bn1.running_var"}
    assert state["bn0.running_mean"].dtype == np.float32 and state["bn1.running_var"].shape == (6,)
    np.testing.assert_array_equal(state["bn0.running_var"], 1.0)
    x = np.random.default_rng(1).standard_normal((2, 4, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="needs state"):
        M.forward(spec, params, x)
    with pytest.raises(ValueError, match="needs state"):
        M.predict(spec, params, x)
    y, cache = M.forward(spec, params, x, state=state)  # eval: the state comes back unchanged
    for k in state:
        np.testing.assert_array_equal(cache["new_state"][k], state[k])
    np.testing.assert_allclose(M.predict(spec, params, x, batch_size=1, state=state), y, rtol=1e-6)
    _, cache = M.forward(spec, params, x, train=True)  # train mode without state starts from init_state
    assert set(cache["new_state"]) == set(state)


@pytest.mark.parametrize("pooling", ["last", "mean", "none"])
def test_batch_norm_eval_uses_the_running_statistics(pooling):
    """Eval mode normalises with the state: a prediction does not depend on the rest of the batch."""
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=4, output_size=2, num_layers=2, pooling=pooling,
                       batch_norm=True)
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, dtype=np.float64)
    state = _bn_state(spec, rng)
    x = rng.standard_normal((4, 6, 2))
    alone, _ = M.forward(spec, params, x[:1], state=state)
    batch, _ = M.forward(spec, params, x, state=state)
    np.testing.assert_allclose(batch[:1], alone, rtol=1e-12, atol=1e-12)
    other = np.concatenate([x[:1], 5.0 + 3.0 * rng.standard_normal((3, 6, 2))])
    np.testing.assert_allclose(M.forward(spec, params, other, state=state)[0][:1], alone, rtol=1e-12, atol=1e-12)
    # the state is what is used: other running statistics, another prediction; train mode differs too
    shifted = {k: v + 0.5 for k, v in state.items()}
    assert not np.allclose(M.forward(spec, params, x[:1], state=shifted)[0], alone)
    assert not np.allclose(M.forward(spec, params, x, train=True, state=state)[0], batch)


@pytest.mark.parametrize("masked", [False, True])
def test_batch_norm_running_statistics_follow_the_formula(masked):
    """new = (1 - momentum) old + momentum batch (masked mean, unbiased var over the real steps), as PyTorch."""
    from rnnlab.engine import norm

    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=1, pooling="mean", batch_norm=True)
    rng = np.random.default_rng(2)
    params = M.init_params(spec, rng, dtype=np.float64)
    state = _bn_state(spec, rng)
    before = {k: v.copy() for k, v in state.items()}
    B, T = 3, 5
    x = rng.standard_normal((B, T, 3))
    mask = _mask(B, T) if masked else None
    _, cache = M.forward(spec, params, x, mask, train=True, state=state)
    for k in state:  # the input dict is left alone
        np.testing.assert_array_equal(state[k], before[k])
    lstm = cells.get("lstm")
    (h, _), _ = lstm.forward({k: params[f"rnn.{k}_l0"] for k in lstm.param_names}, x, None, mask)
    real = h[np.ones((B, T), bool) if mask is None else mask > 0]  # (n, H) the real steps only
    assert len(real) == (15 if mask is None else 11)
    mom = norm.DEFAULT_MOMENTUM
    new = cache["new_state"]
    np.testing.assert_allclose(new["bn0.running_mean"], (1 - mom) * before["bn0.running_mean"] + mom * real.mean(0),
                               rtol=1e-12)
    np.testing.assert_allclose(new["bn0.running_var"],
                               (1 - mom) * before["bn0.running_var"] + mom * real.var(0, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_batch_norm_padding_never_changes_an_eval_prediction(cell, pooling):
    spec = M.ModelSpec(cell=cell, input_size=2, hidden_size=4, output_size=1, bidirectional=True,
                       pooling=pooling, num_layers=2, batch_norm=True)
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, dtype=np.float64)
    state = _bn_state(spec, rng)
    x = rng.standard_normal((1, 6, 2))
    padded = np.concatenate([x, rng.standard_normal((1, 3, 2))], axis=1)
    mask = np.array([[1] * 6 + [0] * 3])
    y_ref, _ = M.forward(spec, params, x, state=state)
    y_pad, _ = M.forward(spec, params, padded, mask, state=state)
    np.testing.assert_allclose(y_pad, y_ref, rtol=1e-12, atol=1e-12)
