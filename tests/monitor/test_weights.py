"""Weight statistics, spectral radius and histograms (rnnlab.monitor.weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlab.config.schema import MonitorConf
from rnnlab.engine import model as M
from rnnlab.monitor.weights import COLUMNS, MAX_BINS, Histogram, WeightTracker, singular_values, spectral_radius
from rnnlab.record.folder import RunFolder


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _scaled_rotations(H: int, scale: float, dtype=np.float32) -> np.ndarray:
    """Block-diagonal H x H matrix of 2 x 2 rotations times scale: every |eigenvalue| = scale."""
    W = np.zeros((H, H))
    for j in range(0, H, 2):
        W[j : j + 2, j : j + 2] = scale * _rotation(0.3 + j)
    return W.astype(dtype)


def _spec(cell, layers=1, bidirectional=False, H=6, D=3, **kw):
    return M.ModelSpec(cell=cell, input_size=D, hidden_size=H, output_size=2, num_layers=layers,
                       bidirectional=bidirectional, **kw)


def test_spectral_radius_and_singular_values_of_a_scaled_rotation():
    R = 0.5 * _rotation(0.7)
    assert spectral_radius(R) == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(singular_values(R), [0.5, 0.5], atol=1e-12)
    # complex eigenvalues of a non-normal matrix: radius, not the largest singular value
    A = np.array([[0.0, 4.0], [-0.25, 0.0]])  # eigenvalues +-i, singular values 4 and 1/4
    assert spectral_radius(A) == pytest.approx(1.0)
    assert singular_values(A)[0] == pytest.approx(4.0)
    with pytest.raises(ValueError):
        spectral_radius(np.ones((4, 2)))


@pytest.mark.parametrize(
    ("cell", "blocks", "candidate"),
    [("lstm", ["all", "i", "f", "g", "o"], 2), ("gru", ["all", "r", "z", "n"], 2), ("rnn", ["all"], None)],
)
def test_weights_rows_per_epoch(cell, blocks, candidate):
    spec = _spec(cell, layers=2, bidirectional=True)
    params = M.init_params(spec, np.random.default_rng(0))
    H = spec.hidden_size
    # a known recurrence: the candidate block (whole matrix for rnn) is a rotation scaled by 0.5
    W = params["rnn.weight_hh_l0"]
    k = 0 if candidate is None else candidate
    W[k * H : (k + 1) * H] = _scaled_rotations(H, 0.5)
    tracker = WeightTracker(MonitorConf(), spec)
    for epoch in range(3):
        extra = tracker.on_epoch_end(epoch, params)
        assert extra["spectral_radius_l0"] == pytest.approx(0.5, abs=1e-5)
    df = tracker.table()  # weights.csv (the file itself: tests/monitor/test_states.py, every file ...)
    assert list(df.columns) == list(COLUMNS)
    assert sorted(df["epoch"].unique()) == [1, 2, 3]
    n_hh = spec.num_layers * spec.directions
    per_epoch = len(params) + n_hh * (len(blocks) - 1)
    assert (df.groupby("epoch").size() == per_epoch).all()
    hh = df[df["param"] == "rnn.weight_hh_l1_reverse"]
    assert hh.groupby("epoch")["block"].apply(list).tolist() == [blocks] * 3
    # every row of a recurrent block matches a direct computation
    W1 = params["rnn.weight_hh_l1_reverse"]
    for j, block in enumerate(blocks[1:] if len(blocks) > 1 else []):
        row = hh[(hh["epoch"] == 3) & (hh["block"] == block)].iloc[0]
        Wb = W1[j * H : (j + 1) * H]
        assert row["spectral_radius"] == pytest.approx(spectral_radius(Wb), rel=1e-5)
        assert row["sv_max"] == pytest.approx(singular_values(Wb)[0], rel=1e-5)
        assert row["sv_min"] == pytest.approx(singular_values(Wb)[-1], rel=1e-4, abs=1e-6)
        assert row["norm"] == pytest.approx(np.linalg.norm(Wb), rel=1e-5)
        assert row["std"] == pytest.approx(Wb.std(), rel=1e-4)
    whole = hh[(hh["epoch"] == 3) & (hh["block"] == "all")].iloc[0]
    assert whole["sv_max"] == pytest.approx(singular_values(W1)[0], rel=1e-5)
    if cell == "rnn":  # square: a true spectral radius
        assert whole["spectral_radius"] == pytest.approx(spectral_radius(W1), rel=1e-5)
    else:  # G*H x H: no eigenvalues, only singular values
        assert math.isnan(whole["spectral_radius"])
    other = df[df["param"] == "head.weight"]
    assert (other["block"] == "all").all() and other["spectral_radius"].isna().all()
    assert other.iloc[-1]["max"] == pytest.approx(params["head.weight"].max())


def test_histogram_counts_conserve_the_weights_while_the_range_grows():
    rng = np.random.default_rng(0)
    h = Histogram(bins=10, max_bins=40)
    values = []
    for epoch in range(8):  # the spread triples each epoch: the grid extends, then coarsens
        v = (rng.standard_normal(500) * 3.0**epoch + epoch).astype(np.float32)
        values.append(v)
        h.add(epoch + 1, v)
        assert sum(int(c.sum()) for c in h.counts[-1:]) == v.size
    edges, counts = h.grid()
    assert counts.shape == (8, len(edges) - 1) and counts.shape[1] <= 40
    np.testing.assert_array_equal(counts.sum(axis=1), 500)
    assert np.allclose(np.diff(edges), h.width)
    for v, c in zip(values, counts, strict=True):  # same as np.histogram on the final grid
        assert np.abs(np.histogram(v, edges)[0] - c).sum() <= 2  # (values on a bin edge may differ)
    # a constant parameter and non-finite values do not break it
    c = Histogram()
    c.add(1, np.zeros(7))
    c.add(2, np.array([0.0, np.nan, np.inf, 1.0]))
    _, counts = c.grid()
    np.testing.assert_array_equal(counts.sum(axis=1), [7, 2])


def test_tracker_histograms_count_every_weight(tmp_path):
    spec = _spec("gru", vocab_size=20, D=4)
    params = M.init_params(spec, np.random.default_rng(1))
    tracker = WeightTracker(MonitorConf(weights=False), spec)
    for epoch in range(4):
        assert tracker.on_epoch_end(epoch, params) == {}  # histograms only: no metrics column
        for v in params.values():
            v *= np.float32(2.0)  # widens the range every epoch
    for name, v in params.items():
        _, counts = tracker.hists[name].grid()
        assert counts.shape[0] == 4 and counts.shape[1] <= MAX_BINS
        np.testing.assert_array_equal(counts.sum(axis=1), v.size)
    out = tracker.finish(RunFolder(tmp_path))
    assert out["files"] == ["plots/weight_hist.png"]
    assert not (tmp_path / "weights.csv").exists()


@pytest.mark.slow  # an animation scenario over a whole run
def test_gif_has_one_frame_per_epoch(tmp_path):
    from PIL import Image

    spec = _spec("lstm", H=4, D=2)
    params = M.init_params(spec, np.random.default_rng(2))
    tracker = WeightTracker(MonitorConf(gif=True), spec)
    for epoch in range(3):
        tracker.on_epoch_end(epoch, params)
        for v in params.values():
            v += np.float32(0.05)
    out = tracker.finish(RunFolder(tmp_path))
    gif = tmp_path / "plots" / "weight_hist.gif"
    assert "plots/weight_hist.gif" in out["files"]
    with Image.open(gif) as im:
        assert im.format == "GIF"
        assert im.n_frames == 3
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]  # no temp files left


def test_nothing_tracked_nothing_written(tmp_path):
    spec = _spec("rnn")
    params = M.init_params(spec, np.random.default_rng(0))
    tracker = WeightTracker(MonitorConf(weights=False, histograms=False), spec)
    assert tracker.finish(RunFolder(tmp_path)) == {}
    assert list(tmp_path.iterdir()) == []
    # diverged weights: recorded as NaN, no exception
    params["rnn.weight_hh_l0"][0, 0] = np.nan
    tracker = WeightTracker(MonitorConf(histograms=False), spec)
    assert math.isnan(tracker.on_epoch_end(0, params)["spectral_radius_l0"])
