"""Attribution methods on hand-built and random models: exact gradients, completeness, zero on padding,
the adding problem's known answer, the sanity checks and the targets."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.config.validate import ConfigError
from rnnlab.data import adding
from rnnlab.engine import model as M
from rnnlab.explain import sanity
from rnnlab.explain.function import ModelFunction, parse_target
from rnnlab.explain.methods import METHODS, Options, integrated_gradients, parse_methods, quadrature

T = 12


def adding_solver(length: int = T):
    """A relu RNN that solves the adding problem exactly: h_t = relu(value + marker - 1) is the value at
    a marked step and 0 elsewhere (values are in [0, 1)); mean pooling times the length is their sum."""
    spec = M.ModelSpec(cell="rnn", nonlinearity="relu", input_size=2, hidden_size=1, output_size=1, pooling="mean")
    p = M.init_params(spec, np.random.default_rng(0), dtype=np.float64)
    p.update({"rnn.weight_ih_l0": np.array([[1.0, 1.0]]), "rnn.weight_hh_l0": np.array([[0.0]]),
              "rnn.bias_ih_l0": np.array([-1.0]), "rnn.bias_hh_l0": np.array([0.0]),
              "head.weight": np.array([[float(length)]]), "head.bias": np.array([0.0])})
    return spec, p


def _adding_batch(n=16, seed=3):
    split = adding.make(n, T, np.random.default_rng(seed), np.float64)
    return split.x, split.y


def _random_model(cell="gru", seed=0, **kw):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=5, output_size=2, **kw)
    return spec, M.init_params(spec, np.random.default_rng(seed), dtype=np.float64)


def test_the_hand_built_model_solves_the_adding_problem():
    spec, p = adding_solver()
    x, y = _adding_batch()
    np.testing.assert_allclose(M.forward(spec, p, x)[0], y, atol=1e-12)


def test_integrated_gradients_puts_the_adding_answer_on_the_marked_steps():
    spec, p = adding_solver()
    x, _ = _adding_batch()
    f = ModelFunction(spec, p)
    sel = parse_target("pred", "regression", False, 1).select(f.outputs(x, None), None)
    a = integrated_gradients(f, x, None, sel, np.zeros(x.shape), Options(steps=16))
    share = sanity.truth_share(np.abs(a.per_step()), x[:, :, 1] == 1)
    assert share.min() > 0.999  # the unmarked steps never open the relu on the path from 0
    # The bias is not on the path, so a marked step's relu opens part way (a kink): Gauss-Legendre's 16
    # points miss it by up to ~20 %; the midpoint rule's error shrinks as 1/steps.
    assert a.extras["completeness_gap_rel"].max() > 0.02
    fine = integrated_gradients(f, x, None, sel, np.zeros(x.shape), Options(steps=512, rule="midpoint"))
    assert fine.extras["completeness_gap_rel"].max() < 0.01
    for name in ("gxi", "occlusion"):  # exact here too (shap: its own test), the marked steps alone change F
        other = METHODS[name](f, x, None, sel, np.zeros(x.shape), Options())
        assert sanity.truth_share(np.abs(other.per_step()), x[:, :, 1] == 1).min() > 0.999, name


@pytest.mark.parametrize("rule, steps, limit", [("gauss-legendre", 16, 1e-6), ("midpoint", 64, 1e-2)])
def test_completeness_gap_of_a_random_gru(rule, steps, limit):
    spec, p = _random_model("gru", pooling="mean", bidirectional=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 7, 3)) * 2
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [0] * 2 + [1] * 5, [1] * 7], np.float64)
    f = ModelFunction(spec, p)
    sel = parse_target("class:1", "multiclass", False, 2).select(f.outputs(x, mask), mask)
    a = integrated_gradients(f, x, mask, sel, np.zeros(x.shape), Options(steps=steps, rule=rule))
    gap = a.extras["completeness_gap_rel"]
    assert gap.max() < limit and np.abs(a.extras["f_input"] - a.extras["f_baseline"]).min() > 1e-3


def test_gauss_legendre_beats_the_midpoint_rule_at_equal_steps():
    spec, p = _random_model("lstm", pooling="last")
    x = np.random.default_rng(2).standard_normal((6, 9, 3)) * 3
    f = ModelFunction(spec, p)
    sel = parse_target("class:0", "multiclass", False, 2).select(f.outputs(x, None), None)
    gaps = {rule: integrated_gradients(f, x, None, sel, np.zeros(x.shape), Options(steps=8, rule=rule))
            .extras["completeness_gap"].mean() for rule in ("gauss-legendre", "midpoint")}
    assert gaps["gauss-legendre"] < gaps["midpoint"] / 10, gaps


def test_quadrature_weights_and_points():
    for rule in ("gauss-legendre", "midpoint"):
        a, w = quadrature(5, rule)
        assert np.isclose(w.sum(), 1) and (a > 0).all() and (a < 1).all()
        assert np.isclose(w @ a**3, 0.25, atol=1e-2 if rule == "midpoint" else 1e-12)  # the integral of a^3
    with pytest.raises(ConfigError, match="--rule simpson: unknown"):
        quadrature(5, "simpson")


def test_saliency_is_the_finite_difference_gradient():
    spec, p = _random_model("lstm", pooling="attention")
    x = np.random.default_rng(4).standard_normal((2, 5, 3))
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float64)
    f = ModelFunction(spec, p)
    sel = parse_target("pred", "multiclass", False, 2).select(f.outputs(x, mask), mask)
    _, g = f.value_and_grad(x, mask, sel)
    eps, num = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        num[idx] = (f.value(up, mask, sel) - f.value(down, mask, sel))[idx[0]] / (2 * eps)
    assert np.abs(g - num).max() < 1e-7 * max(1.0, np.abs(num).max())
    assert np.all(g[1, 3:] == 0)  # padded steps pass no gradient


# shap's first call in a process JIT-compiles its numba kernels (~9 s, not cached on disk): its tests are slow
@pytest.mark.parametrize("name", [m if m != "shap" else pytest.param(m, marks=pytest.mark.slow) for m in METHODS])
def test_padded_steps_get_exactly_zero(name):
    spec, p = _random_model("gru", pooling="attention")
    x = np.random.default_rng(5).standard_normal((3, 6, 3))
    mask = np.array([[1] * 6, [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], np.float64)
    f = ModelFunction(spec, p)
    sel = parse_target("pred", "multiclass", False, 2).select(f.outputs(x, mask), mask)
    a = METHODS[name](f, x, mask, sel, np.zeros(x.shape), Options(steps=8, noise_samples=4))
    assert a.values.shape == (x.shape if name != "attention" else (3, 6, 1))  # attention: one weight a step
    assert np.all(a.values[mask == 0] == 0) and np.abs(a.values[mask == 1]).max() > 0


def test_text_models_are_attributed_at_their_embedding_vectors():
    spec = M.ModelSpec(cell="lstm", input_size=4, hidden_size=5, output_size=1, vocab_size=11, pooling="mean")
    p = M.init_params(spec, np.random.default_rng(6), dtype=np.float64)
    ids = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 10, 2, 1]])
    mask = (ids != 0).astype(np.float64)
    f = ModelFunction(spec, p)
    z = f.embed(ids)
    np.testing.assert_array_equal(z, p["embedding.weight"][ids])
    np.testing.assert_allclose(f.outputs(z, mask), M.forward(spec, p, ids, mask)[0], atol=1e-12)
    sel = parse_target("pred", "binary", False, 1).select(f.outputs(z, mask), mask)
    base = np.broadcast_to(f.pad_vector(), z.shape).astype(np.float64)
    a = integrated_gradients(f, z, mask, sel, base, Options(steps=32))
    assert a.extras["completeness_gap_rel"].max() < 1e-6
    assert a.per_step().shape == (2, 6) and np.all(a.per_step()[0, 4:] == 0)
    # pred on a binary model explains the predicted class: F is the logit signed towards it
    assert (a.extras["f_input"] >= 0).all() and np.all(sel.sign * f.outputs(z, mask)[:, 0] >= 0)


def test_targets():
    y = np.array([[0.5, 2.0, -1.0], [3.0, 0.0, 1.0]])
    sel = parse_target("pred", "multiclass", False, 3).select(y, None)
    assert sel.output.tolist() == [1, 0] and sel.value(y).tolist() == [2.0, 3.0]
    assert parse_target("class:2", "multiclass", False, 3).select(y, None).value(y).tolist() == [-1.0, 1.0]
    assert parse_target("step:3", "regression", False, 3).select(y, None).value(y).tolist() == [-1.0, 1.0]
    b = np.array([[0.7], [-0.2]])
    assert parse_target("class:0", "binary", False, 1).select(b, None).value(b).tolist() == [-0.7, 0.2]
    steps = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    last = parse_target("pred", "multiclass", True, 3).select(steps, mask)
    assert last.step.tolist() == [2, 3] and last.value(steps).tolist() == [steps[0, 2, 2], steps[1, 3, 2]]
    for text, kind, msg in (("class:3", "multiclass", "class 3 out of range 0..2"),
                            ("class:1", "regression", "a regression model has no classes"),
                            ("step:0", "regression", "step 0 out of range 1..3"),
                            ("predicted", "binary", "unknown (use pred, class:K or step:H)"),
                            ("class:x", "binary", "class needs a number")):
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            parse_target(text, kind, False, 3).select(y, None)
    with pytest.raises(ConfigError, match="unknown lime"):
        parse_methods("ig,lime")


def test_randomisation_and_deletion_on_the_adding_solver():
    """The trained (hand-built) model's attributions sit on the marked steps; a re-initialised one's do not,
    so their rank correlation is low, and deleting the top-attributed steps drops F at once."""
    spec, p = adding_solver()
    x, _ = _adding_batch(24)
    f = ModelFunction(spec, p)
    sel = parse_target("pred", "regression", False, 1).select(f.outputs(x, None), None)
    base = np.zeros(x.shape)
    a = integrated_gradients(f, x, None, sel, base, Options(steps=16))
    stages = sanity.randomised_params(spec, p, 3, seed=0)
    assert [name for name, _ in stages] == ["head", "rnn0"]  # the blocks with weights, from the head down
    rho = []
    for _, params in stages:
        other = integrated_gradients(ModelFunction(spec, params), x, None, sel, base, Options(steps=16))
        rho.append(np.nanmean(sanity.spearman_rows(np.abs(a.per_step()), np.abs(other.per_step()), None)))
    # a new head only rescales a one-output model's attributions (same ranks); a new recurrent layer moves them
    assert rho[0] == pytest.approx(1.0) and rho[-1] < 0.9, rho
    curve = sanity.deletion_curve(f, x, None, sel, base, a.per_step(), seed=0)
    assert curve["method"][0] == pytest.approx(1.0) and curve["method"][-1] == pytest.approx(0.0, abs=1e-12)
    assert curve["method"][2] == pytest.approx(0.0, abs=1e-12)  # 2 of 12 steps (the marked ones) removed
    assert curve["area_method"] < 0.15 < curve["area_random"]


def test_copy_task_truth_is_the_copied_symbol():
    meta = {"task": "copy", "copy_len": 3, "delay": 4}
    x = np.zeros((3, 10, 5))

    class Sel:
        step = np.array([7, 9, 2])  # answer steps 7 and 9 copy symbols 0 and 2; step 2 is no answer

    truth = sanity.truth_mask(meta, x, Sel, None)
    assert truth[0].nonzero()[0].tolist() == [0] and truth[1].nonzero()[0].tolist() == [2] and not truth[2].any()
    assert np.isnan(sanity.truth_share(np.ones((3, 10)), truth)[2])


@pytest.mark.slow  # shap's numba compile, see above
def test_shapley_values_of_step_groups_add_up_and_split_an_interaction_evenly():
    """The adding solver's F is a sum over the marked steps: Shapley values are those values exactly, in
    sum F(x) - F(baseline), and with fewer groups than steps each group carries the sum of its steps."""
    spec, p = adding_solver()
    x, y = _adding_batch(6)
    f = ModelFunction(spec, p)
    sel = parse_target("pred", "regression", False, 1).select(f.outputs(x, None), None)
    a = METHODS["shap"](f, x, None, sel, np.zeros(x.shape), Options())
    assert a.extras["completeness_gap_rel"].max() < 1e-9
    values = x[:, :, 0] * x[:, :, 1]  # each marked step's value
    np.testing.assert_allclose(a.per_step(), values, atol=1e-9)
    grouped = METHODS["shap"](f, x, None, sel, np.zeros(x.shape), Options(shap_groups=3))
    sums = grouped.per_step().reshape(6, 3, 4).sum(axis=2)  # 12 steps in 3 groups of 4
    np.testing.assert_allclose(sums, values.reshape(6, 3, 4).sum(axis=2), atol=1e-9)
    mask = np.ones(x.shape[:2])
    mask[:, 9:] = 0  # padded steps get exactly zero (the mask hides them from the model, too)
    padded = METHODS["shap"](f, x, mask, sel, np.zeros(x.shape), Options())
    assert np.all(padded.values[:, 9:] == 0) and padded.extras["completeness_gap_rel"].max() < 1e-9
