"""Annealed gradient noise: the variance schedule, the sample variance, eta = 0, seeding."""

import numpy as np
import pytest

from rnnlab.engine.grad_noise import GradientNoise, noise_variance


def test_variance_schedule_step_by_step():
    gn = GradientNoise(0.3, 0.55, np.random.default_rng(0))
    grads = {"w": np.zeros(3)}
    for t in range(6):
        assert gn.variance() == pytest.approx(0.3 / (1 + t) ** 0.55, rel=1e-15)
        assert noise_variance(t, 0.3) == pytest.approx(0.3 / (1 + t) ** 0.55, rel=1e-15)
        gn(grads)
    assert gn.step == 6
    assert noise_variance(9, 1.0, 1.0) == pytest.approx(0.1)


@pytest.mark.parametrize("step", [0, 99])
def test_sample_variance_matches_sigma_squared(step):
    gn = GradientNoise(0.5, 0.55, np.random.default_rng(1))
    gn.step = step
    expected = 0.5 / (1 + step) ** 0.55
    g = {"w": np.full((400, 500), 2.0)}
    out = gn(g)["w"] - 2.0
    assert abs(out.mean()) < 0.01
    assert out.var() == pytest.approx(expected, rel=0.02)
    np.testing.assert_array_equal(g["w"], 2.0)  # the input is not modified


def test_zero_eta_changes_nothing():
    rng = np.random.default_rng(0)
    gn = GradientNoise(0.0, 0.55, rng)
    g = {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(2, np.float32)}
    out = gn(g)
    assert not gn.enabled
    assert out["w"] is g["w"] and out["b"] is g["b"]
    # no random numbers were drawn
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state


def test_same_seed_same_noise_and_dtype_kept():
    g = {"w": np.zeros((3, 4), np.float32), "b": np.zeros(4, np.float32)}
    a = GradientNoise(0.1, rng=np.random.default_rng(7))(g)
    b = GradientNoise(0.1, rng=np.random.default_rng(7))(g)
    c = GradientNoise(0.1, rng=np.random.default_rng(8))(g)
    for k in g:
        assert a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["w"], c["w"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="grad_noise_eta"):
        GradientNoise(-1.0)
    with pytest.raises(ValueError, match="grad_noise_gamma"):
        GradientNoise(0.1, -0.5)
