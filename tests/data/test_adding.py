"""The adding problem: exactly two markers, one per half, and the target is their sum."""

import numpy as np

from rnnlab.config.schema import AddingConf
from rnnlab.data import adding


def test_markers_and_targets():
    s = adding.make(500, 40, np.random.default_rng(0))
    assert s.x.shape == (500, 40, 2) and s.y.shape == (500, 1) and s.x.dtype == np.float32
    markers = s.x[:, :, 1]
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    np.testing.assert_array_equal(markers[:, :20].sum(axis=1), 1)
    np.testing.assert_allclose(s.y[:, 0], (s.x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)


def test_mean_baseline_scores_one_sixth():
    d = adding.load(AddingConf(length=30, n_train=10, n_val=20000, n_test=10), np.random.default_rng(1))
    mse = float(np.mean((d.baselines["predict_mean"]["val"] - d.val.y) ** 2))
    assert abs(mse - 1 / 6) < 0.005
