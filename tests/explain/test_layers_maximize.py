"""Layer integrated gradients, activation maximisation and the global view on hand-built and random
models: completeness, where the attribution lies, exact gradients of a unit, and permutation importance."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.config.validate import ConfigError
from rnnlab.data.base import Split
from rnnlab.engine import model as M
from rnnlab.engine.blocks import Flow
from rnnlab.explain import maximize as mx
from rnnlab.explain.function import ModelFunction, parse_target
from rnnlab.explain.layers import layer_attributions
from rnnlab.explain.methods import Options
from rnnlab.explain.overview import permutation_importance, top_tokens


def _model(cell="gru", seed=0, **kw):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=1, **kw)
    return spec, M.init_params(spec, np.random.default_rng(seed), dtype=np.float64)


def _inputs(B=4, T=7, seed=1):
    z = np.random.default_rng(seed).standard_normal((B, T, 3))
    mask = np.ones((B, T))
    mask[1, 5:] = 0  # post-padded
    mask[2, :3] = 0  # pre-padded
    return z, mask


@pytest.mark.parametrize("cell, kw", [
    ("lstm", {"num_layers": 2}),
    ("gru", {"bidirectional": True, "merge_mode": "sum"}),
    ("rnn", {"bidirectional": True, "num_layers": 2, "pooling": "mean"}),
    ("lstm", {"bidirectional": True, "pooling": "attention", "layer_norm": True}),
    ("gru", {"num_layers": 2, "pooling": "mean", "self_attention_heads": 2}),
    ("indrnn", {"num_layers": 2, "pooling": "max"}),  # relu and max: kinks on the path, see the tolerance
])
def test_layer_attributions_add_up_and_leave_padding_at_zero(cell, kw):
    spec, p = _model(cell, **kw)
    f = ModelFunction(spec, p)
    z, mask = _inputs()
    sel = parse_target("pred", "regression", False, 1).select(f.outputs(z, mask), mask)
    smooth = cell != "indrnn"  # Gauss-Legendre is exact to rounding on smooth paths; kinks need many points
    opt = Options(steps=32) if smooth else Options(steps=2000, rule="midpoint")
    layers = layer_attributions(f, z, mask, sel, np.zeros(z.shape), opt)
    assert list(layers) == [f"rnn{i}" for i in range(spec.num_layers)]
    for a in layers.values():
        assert a.extras["completeness_gap_rel"].max() < (1e-6 if smooth else 5e-3)
        np.testing.assert_allclose(a.per_step().sum(axis=1), a.extras["f_input"] - a.extras["f_baseline"],
                                   rtol=1e-6 if smooth else 5e-3, atol=1e-12)
        assert np.all(a.per_step()[mask == 0] == 0.0)


def test_a_last_pooled_top_layer_puts_everything_on_its_final_steps():
    spec, p = _model("gru", bidirectional=True, num_layers=2)
    f = ModelFunction(spec, p)
    z, mask = _inputs()
    sel = parse_target("pred", "regression", False, 1).select(f.outputs(z, mask), mask)
    layers = layer_attributions(f, z, mask, sel, np.zeros(z.shape), Options(steps=16))
    top, bottom = layers["rnn1"].per_step(), layers["rnn0"].per_step()
    first, last = np.array([0, 0, 3, 0]), np.array([6, 4, 6, 6])  # the reverse and forward final states
    keep = np.zeros(top.shape, bool)
    keep[np.arange(4), first] = keep[np.arange(4), last] = True
    assert np.all(top[~keep] == 0.0) and np.abs(top[keep]).sum() > 0
    assert np.count_nonzero(bottom[mask != 0]) > keep.sum()  # the layer below feeds every step above


def test_the_model_split_in_parts_is_the_whole_model():
    spec, p = _model("lstm", bidirectional=True, num_layers=2, pooling="attention")
    z, mask = _inputs()
    y, cache = M.forward(spec, p, z, mask)
    k = M.block_index(spec, "rnn1")
    mid, c1 = M.forward_part(spec, p, Flow(z), slice(0, k + 1), mask)
    out, c2 = M.forward_part(spec, p, mid, slice(k + 1, None), mask)
    np.testing.assert_array_equal(out.h, y)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    grads, dz = M.backward(spec, p, dy, cache)
    g2, dmid = M.backward_part(spec, p, Flow(dy), c2)
    g1, dz1 = M.backward_part(spec, p, dmid, c1)
    np.testing.assert_allclose(dz1.h, dz, rtol=1e-12, atol=1e-14)
    assert set(g1) | set(g2) == set(grads)
    with pytest.raises(KeyError, match="no block 'rnn5'"):
        M.block_index(spec, "rnn5")


@pytest.mark.parametrize("goal, task", [("unit:1:3", "regression"), ("unit:0:6", "regression"),
                                        ("class:0", "binary"), ("output:1", "regression")])
def test_the_maximised_quantity_s_gradient_is_exact(goal, task):
    spec, p = _model("lstm", bidirectional=True, num_layers=2)
    f = ModelFunction(spec, p)
    g = mx.parse_goal(goal, spec, task)
    z = np.random.default_rng(4).standard_normal((2, 5, 3))
    a, grad = mx.activation_and_grad(f, z, g)
    num, eps = np.zeros_like(z), 1e-6
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += eps
        down[idx] -= eps
        num[idx] = (mx.activation_and_grad(f, up, g)[0] - mx.activation_and_grad(f, down, g)[0])[idx[0]] / (2 * eps)
    assert np.abs(num - grad).max() / np.abs(num).max() < 1e-6


def test_gradient_ascent_drives_a_unit_past_what_the_data_reach():
    spec, p = _model("gru")
    f = ModelFunction(spec, p)
    g = mx.parse_goal("unit:0:2", spec, "regression")
    train = np.random.default_rng(5).standard_normal((64, 8, 3))
    found = mx.maximize(f, g, 8, np.ones(3), seed=0, iterations=150)
    ref = mx.reference(f, g, train, None)
    assert found["trace"][-1]["activation"] > max(found["trace"][0]["activation"], ref["max"])
    assert found["activations"][found["best"]] <= 1.0  # a GRU state stays in (-1, 1)
    again = mx.maximize(f, g, 8, np.ones(3), seed=0, iterations=150)
    np.testing.assert_array_equal(again["inputs"], found["inputs"])  # the seed fixes the result


@pytest.mark.parametrize("goal, message", [
    ("unit:2:0", "--maximize unit:2:0: layer 2 out of range 0..0"),
    ("unit:0:9", "--maximize unit:0:9: unit 9 out of range 0..3"),
    ("class:1", "--maximize class:1: a regression model has outputs (output:K)"),
    ("output:2", "--maximize output:2: output 2 out of range 1..1"),
    ("neuron:3", "--maximize neuron:3: use unit:L:K, class:K or output:K"),
])
def test_bad_goals_are_one_line(goal, message):
    spec, _ = _model("gru")
    with pytest.raises(ConfigError) as err:
        mx.parse_goal(goal, spec, "regression")
    assert str(err.value) == message


def test_nearest_tokens_read_embeddings_back_as_words():
    table = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.2]])
    z = np.array([[2.0, 0.1], [0.1, 3.0], [-0.5, 0.0]])
    assert mx.nearest_tokens(z, table, ["<pad>", "good", "bad", "dull"], {0}) == ["good", "bad", "dull"]


def _last_step_reader():
    """A relu RNN without recurrence that reads feature 0 only: the output is 2 relu(x_T,0 + 1) - 1, so only
    feature 0 at lag 1 matters."""
    spec = M.ModelSpec(cell="rnn", nonlinearity="relu", input_size=2, hidden_size=1, output_size=1)
    p = M.init_params(spec, np.random.default_rng(0), dtype=np.float64)
    p.update({"rnn.weight_ih_l0": np.array([[1.0, 0.0]]), "rnn.weight_hh_l0": np.array([[0.0]]),
              "rnn.bias_ih_l0": np.array([1.0]), "rnn.bias_hh_l0": np.array([0.0]),
              "head.weight": np.array([[2.0]]), "head.bias": np.array([-1.0])})
    return ModelFunction(spec, p)


def test_permutation_importance_finds_the_one_input_that_matters():
    f = _last_step_reader()
    x = np.random.default_rng(6).uniform(0, 1, (200, 5, 2))
    split = Split(x, 2 * (x[:, -1, 0] + 1) - 1, None)
    perm = permutation_importance(f, split, "regression", seed=0)
    assert perm["score"] == pytest.approx(0.0, abs=1e-20)  # the model is exact
    assert perm["features"][0]["mean"] > 0.5 and perm["features"][1] == {"mean": 0.0, "std": 0.0}
    assert perm["lags"][0]["mean"] > 0.5 and all(lag["mean"] == 0.0 for lag in perm["lags"][1:])


def test_top_tokens_rank_by_mean_attribution_over_enough_occurrences():
    x = np.array([[1, 2, 3, 0], [1, 2, 4, 0], [1, 3, 3, 0], [4, 4, 1, 2]])
    mask = np.array([[1, 1, 1, 0]] * 3 + [[1, 1, 1, 1]])
    attr = np.where(x == 1, 1.0, np.where(x == 2, -2.0, np.where(x == 3, 0.5, 9.0)))
    top = top_tokens(x, mask, attr, ["<pad>", "good", "bad", "fine", "rare"], min_count=3)
    assert [r["token"] for r in top["positive"]] == ["rare", "good", "fine", "bad"]
    assert top["negative"][0] == {"token": "bad", "count": 3, "mean": -2.0}
    assert "<pad>" not in [r["token"] for r in top["positive"]]  # padded steps are not counted
