"""Weight penalties: values against the formulas, gradients against finite differences, biases untouched."""

import numpy as np
import pytest

from rnnlab.engine import penalties as P
from rnnlab.engine.gradcheck import numeric_grad, rel_error

RNG = np.random.default_rng(0)


def _params(dtype=np.float64):
    return {
        "rnn.weight_ih_l0": RNG.standard_normal((8, 3)).astype(dtype),
        "rnn.weight_hh_l0": RNG.standard_normal((8, 2)).astype(dtype),
        "rnn.bias_ih_l0": RNG.standard_normal(8).astype(dtype),
        "head.weight": RNG.standard_normal((1, 2)).astype(dtype),
        "head.bias": RNG.standard_normal(1).astype(dtype),
    }


WEIGHTS = ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight")


def test_l1_and_l2_values_match_the_formulas():
    p = _params()
    v1, g1 = P.l1_penalty(p, 0.3)
    v2, g2 = P.l2_penalty(p, 0.2)
    assert v1 == pytest.approx(0.3 * sum(np.abs(p[k]).sum() for k in WEIGHTS), rel=1e-12)
    assert v2 == pytest.approx(0.5 * 0.2 * sum((p[k] ** 2).sum() for k in WEIGHTS), rel=1e-12)
    assert set(g1) == set(g2) == set(WEIGHTS)  # biases are not penalized
    for k in WEIGHTS:
        np.testing.assert_allclose(g1[k], 0.3 * np.sign(p[k]))
        np.testing.assert_allclose(g2[k], 0.2 * p[k])


@pytest.mark.parametrize("l1,l2", [(0.1, 0.0), (0.0, 0.05), (0.1, 0.05)])
def test_gradients_against_finite_differences(l1, l2):
    p = _params()
    values, grads = P.penalties(p, l1=l1, l2=l2)
    assert set(values) == {c for c, coef in (("l1_loss", l1), ("l2_loss", l2)) if coef > 0}
    for k in WEIGHTS:  # entries away from 0, where |w| is differentiable
        num = numeric_grad(lambda: sum(P.penalties(p, l1=l1, l2=l2)[0].values()), p[k])
        assert rel_error(grads[k], num) < 1e-7


def test_elastic_net_is_the_sum_of_both_terms():
    p = _params()
    values, grads = P.penalties(p, l1=0.1, l2=0.05)
    assert values["l1_loss"] == pytest.approx(P.l1_penalty(p, 0.1)[0])
    assert values["l2_loss"] == pytest.approx(P.l2_penalty(p, 0.05)[0])
    for k in WEIGHTS:
        np.testing.assert_allclose(grads[k], 0.1 * np.sign(p[k]) + 0.05 * p[k])


def test_l1_subgradient_is_zero_at_zero_and_dtype_kept():
    p = {"w.weight": np.array([[-2.0, 0.0, 3.0]], np.float32)}
    value, grads = P.l1_penalty(p, 0.5)
    assert value == pytest.approx(2.5)
    np.testing.assert_array_equal(grads["w.weight"], [[-0.5, 0.0, 0.5]])
    assert grads["w.weight"].dtype == np.float32
    assert P.l2_penalty(p, 0.5)[1]["w.weight"].dtype == np.float32


def test_no_penalty_and_add_grads():
    p = _params()
    assert P.penalties(p) == ({}, {})
    g = {k: np.ones_like(v) for k, v in p.items()}
    out = P.add_grads(g, {"head.weight": np.full((1, 2), 2.0)})
    np.testing.assert_array_equal(out["head.weight"], 3.0)
    assert out["head.bias"] is g["head.bias"]
