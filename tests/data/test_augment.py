"""Time-series augmentations (rnnlab/data/augment.py): shapes, masks, seeds, zero strength, statistics."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.data import augment as A

NAMES = list(A.AUGMENTATIONS)
ZERO = {
    "jitter": {"sigma": 0.0},
    "scaling": {"sigma": 0.0},
    "magnitude_warp": {"sigma": 0.0},
    "time_warp": {"sigma": 0.0},
    "window_slice": {"ratio": 1.0},
    "phase_shift": {"max_shift": 0},
}
STRONG = {"jitter": {"sigma": 0.5}, "scaling": {"sigma": 0.5}, "magnitude_warp": {"sigma": 0.5},
          "time_warp": {"sigma": 0.5}, "window_slice": {"ratio": 0.5}, "phase_shift": {"max_shift": 4},
          "mixup": {"alpha": 1.0}}


def batch(dtype=np.float32, b=6, t=24, d=3, seed=0):
    x = np.random.default_rng(seed).normal(size=(b, t, d)).astype(dtype)
    lens = np.array([t, t - 3, t // 2, 5, 2, 1])[:b]
    mask = (np.arange(t)[None, :] < lens[:, None]).astype(dtype)
    return x * mask[:, :, None], mask


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype_kept_and_input_untouched(name, dtype):
    x, _ = batch(dtype)
    before = x.copy()
    out, mask, _ = A.apply(x, None, [{"name": name, **STRONG[name]}], np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype and mask is None
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(x, before)
    assert not np.array_equal(out, x)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "mixup"])
def test_padded_steps_stay_zero_and_mask_unchanged(name):
    x, mask = batch()
    out, mask_out, _ = A.apply(x, mask, [{"name": name, **STRONG[name]}], np.random.default_rng(2))
    np.testing.assert_array_equal(mask_out, mask)
    assert np.all(out[mask == 0] == 0)
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("name", ["time_warp", "window_slice", "phase_shift", "magnitude_warp"])
def test_time_augmentations_see_only_real_steps(name):
    """A padded sequence is augmented like the same sequence without its padding (same draws)."""
    x, mask = batch(b=1, t=20)
    x[0, :] = np.arange(20)[:, None] + 1.0  # a ramp, no padding...
    padded = np.concatenate([x, np.zeros((1, 8, 3), np.float32)], axis=1)
    pmask = np.concatenate([np.ones((1, 20)), np.zeros((1, 8))], axis=1).astype(np.float32)
    spec = [{"name": name, **STRONG[name]}]
    plain, _, _ = A.apply(x, None, spec, np.random.default_rng(3))
    with_pad, _, _ = A.apply(padded, pmask, spec, np.random.default_rng(3))
    np.testing.assert_allclose(with_pad[:, :20], plain, rtol=1e-6)
    assert np.all(with_pad[:, 20:] == 0)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_with_a_seed(name):
    x, mask = batch()
    spec = [{"name": name, **STRONG[name], "p": 0.7}]
    a = A.apply(x, mask, spec, np.random.default_rng(5))
    b = A.apply(x, mask, spec, np.random.default_rng(5))
    c = A.apply(x, mask, spec, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("name", list(ZERO))
@pytest.mark.parametrize("masked", [False, True])
def test_identity_at_zero_strength(name, masked):
    x, mask = batch()
    out, _, _ = A.apply(x, mask if masked else None, [{"name": name, **ZERO[name]}], np.random.default_rng(7))
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("name", NAMES)
def test_probability_zero_is_identity(name):
    x, mask = batch()
    out, m, mix = A.apply(x, mask, [{"name": name, **STRONG[name], "p": 0}], np.random.default_rng(8))
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(m, mask)
    if mix is not None:
        np.testing.assert_array_equal(mix.perm, np.arange(len(x)))


def test_probability_touches_only_drawn_sequences():
    x = np.ones((400, 10, 1), np.float32)
    out, _, _ = A.apply(x, None, [{"name": "jitter", "sigma": 0.1, "p": 0.3}], np.random.default_rng(9))
    changed = np.any(out != x, axis=(1, 2))
    assert 0.2 < changed.mean() < 0.4


def test_jitter_statistics():
    x = np.zeros((200, 100, 2), np.float64)
    out = A.jitter(x, None, np.random.default_rng(10), sigma=0.3)
    noise = out - x
    assert abs(noise.mean()) < 0.01
    assert abs(noise.std() - 0.3) < 0.01


def test_scaling_is_one_factor_per_sequence_and_channel():
    x = np.ones((500, 30, 2))
    out = A.scaling(x, None, np.random.default_rng(11), sigma=0.2)
    np.testing.assert_allclose(out, out[:, :1, :] * np.ones((1, 30, 1)))
    assert abs(out[:, 0].mean() - 1) < 0.03 and abs(out[:, 0].std() - 0.2) < 0.02


def test_magnitude_warp_curve_is_smooth():
    x = np.ones((4, 200, 1))
    curve = A.magnitude_warp(x, None, np.random.default_rng(12), sigma=0.3, knots=4)[:, :, 0]
    assert np.abs(np.diff(curve, axis=1)).max() < 0.1  # no jumps between neighbouring steps
    assert np.abs(np.diff(curve, 2, axis=1)).max() < 0.01  # nor kinks


def test_spline_through_the_knots():
    xk = np.linspace(0, 9, 4)
    yk = np.array([[1.0, 2.0, 0.5, 1.5]])
    np.testing.assert_allclose(A.natural_cubic_spline(xk, yk, xk), yk)


def test_time_warp_path_monotone_with_fixed_end_points():
    path = A.time_warp_path(50, np.random.default_rng(13), sigma=0.8, knots=5, batch=64)
    assert path.shape == (64, 50)
    assert np.all(np.diff(path, axis=1) > 0)
    assert np.all(path[:, 0] == 0) and np.all(path[:, -1] == 49)
    assert not np.allclose(path, np.arange(50))


def test_time_warp_keeps_a_ramp_monotone_and_its_end_points():
    x = np.tile(np.linspace(-1, 1, 40)[None, :, None], (8, 1, 1)).astype(np.float32)
    out = A.time_warp(x, None, np.random.default_rng(14), sigma=0.5, knots=3)
    assert np.all(np.diff(out[:, :, 0], axis=1) >= 0)
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    np.testing.assert_array_equal(out[:, -1], x[:, -1])


def test_window_slice_reads_inside_one_window():
    x = np.tile(np.arange(20.0)[None, :, None], (30, 1, 1))
    out = A.window_slice(x, None, np.random.default_rng(15), ratio=0.5)[:, :, 0]
    span = out[:, -1] - out[:, 0]
    np.testing.assert_allclose(span, 9)  # ceil(0.5 * 20) = 10 steps, stretched to 20
    assert np.all(np.diff(out, axis=1) > 0)


@pytest.mark.parametrize("mode", ["edge", "zero", "circular"])
def test_phase_shift_modes(mode):
    x = np.tile(np.arange(1.0, 11.0)[None, :, None], (50, 1, 1))
    out = A.phase_shift(x, None, np.random.default_rng(16), max_shift=3, mode=mode)[:, :, 0]
    for row in out:
        if mode == "circular":
            assert sorted(row) == list(range(1, 11))
        else:
            real = row[row > 0]
            assert np.all(np.diff(real) >= 0)  # no jump back: no wrap-around
        if mode == "edge":
            assert np.all(row >= 1)
    shifts = {int(np.round(row[5] - 6)) for row in out}
    assert shifts <= set(range(-3, 4)) and len(shifts) > 3


def test_mixup_lam_and_targets_mixed_consistently():
    rng = np.random.default_rng(17)
    x = rng.normal(size=(16, 8, 2)).astype(np.float32)
    y = rng.normal(size=(16, 3)).astype(np.float32)
    for _ in range(20):
        out, _, mix = A.mixup(x, None, rng, alpha=0.4)
        assert 0 <= mix.lam <= 1
        assert sorted(mix.perm) == list(range(16))
        np.testing.assert_allclose(out, mix.lam * x + (1 - mix.lam) * x[mix.perm], rtol=1e-5, atol=1e-6)
        ym = mix.targets(y)
        assert ym.dtype == y.dtype
        np.testing.assert_allclose(ym, mix.lam * y + (1 - mix.lam) * y[mix.perm], rtol=1e-5, atol=1e-6)


def test_mixup_mask_is_the_union_and_unselected_rows_pair_with_themselves():
    x, mask = batch()
    sel = np.array([True, False, True, False, True, False])
    out, m, mix = A.mixup(x, mask, np.random.default_rng(18), alpha=1.0, selected=sel)
    np.testing.assert_array_equal(mix.perm[~sel], np.flatnonzero(~sel))
    np.testing.assert_array_equal(out[~sel], x[~sel])
    np.testing.assert_array_equal(m, np.maximum(mask, mask[mix.perm]))
    assert np.all(out[m == 0] == 0)


def test_apply_runs_specs_in_order_and_returns_the_mix():
    x, mask = batch()
    out, m, mix = A.apply(x, mask, ["jitter", {"name": "mixup", "alpha": 0.5}, "scaling"], np.random.default_rng(19))
    assert mix is not None and 0 <= mix.lam <= 1
    assert out.shape == x.shape and np.all(out[m == 0] == 0)


@pytest.mark.parametrize(
    "value, message",
    [
        (["nope"], "data.augment[0]: unknown augmentation 'nope'"),
        ([{"name": "jitter", "sigma": -0.1}], "data.augment[0] (jitter): sigma must be >= 0"),
        ([{"name": "time_warp", "knots": 0}], "knots must be an integer >= 1"),
        ([{"name": "time_warp", "knots": 2.5}], "knots must be an integer >= 1"),
        ([{"name": "window_slice", "ratio": 1.5}], "ratio must be in (0, 1]"),
        ([{"name": "phase_shift", "mode": "wrap"}], "mode must be one of edge, zero, circular"),
        ([{"name": "mixup", "alpha": 0}], "alpha must be > 0"),
        (["jitter", {"name": "scaling", "p": 2}], "data.augment[1] (scaling): p must be in [0, 1]"),
        ([{"name": "jitter", "sigma": "big"}], "sigma must be >= 0 (got 'big')"),
        ([{"name": "jitter", "sigmaa": 1}], "unknown parameter 'sigmaa'"),
        ([{"sigma": 1}], "must be an augmentation name or a mapping with a 'name'"),
        (["mixup", "mixup"], "mixup once"),
        ("jitter", "must be a list"),
    ],
)
def test_bad_specs_are_one_line(value, message):
    with pytest.raises(ValueError) as exc:
        A.normalize_specs(value)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_specs_get_their_defaults():
    specs = A.normalize_specs(["jitter", {"name": "time_warp", "knots": 3, "p": 0.5}])
    assert specs == [{"name": "jitter", "sigma": 0.03, "p": 1.0},
                     {"name": "time_warp", "sigma": 0.2, "knots": 3, "p": 0.5}]
    assert A.parse_names("jitter, phase_shift") == A.normalize_specs(["jitter", "phase_shift"])


def test_integer_inputs_are_refused():
    with pytest.raises(ValueError, match="float inputs"):
        A.apply(np.zeros((2, 5), np.int64), None, ["jitter"], np.random.default_rng(0))


def test_augmentation_stream_leaves_the_run_streams_alone():
    seed = 123
    four = [s.generate_state(4).tolist() for s in np.random.SeedSequence(seed).spawn(4)]
    six = [s.generate_state(4).tolist() for s in np.random.SeedSequence(seed).spawn(6)]
    assert six[:4] == four  # spawning more children keeps the first ones
    aug = np.random.SeedSequence(seed, spawn_key=(A.AUGMENT_STREAM,)).generate_state(4).tolist()
    assert aug == np.random.SeedSequence(seed).spawn(A.AUGMENT_STREAM + 1)[-1].generate_state(4).tolist()
    assert aug not in six
    assert A.stream(seed).random() == A.stream(seed).random() != A.stream(seed + 1).random()
