"""Hidden-state and gate analysis (rnnlab.monitor.states) and the monitor's files end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from rnnlab.config.schema import MonitorConf
from rnnlab.data.base import Split, TaskData
from rnnlab.engine import cells
from rnnlab.engine import model as M
from rnnlab.monitor import RunMonitor
from rnnlab.monitor.inspect import SequenceInspector
from rnnlab.monitor.probe import Probe
from rnnlab.monitor.states import analyse_states, kmeans, pca, saturation
from rnnlab.monitor.weights import COLUMNS
from rnnlab.record.folder import RunFolder

CONF = Path(__file__).resolve().parents[2] / "conf" / "monitor"

STATE_FILES = ["states_summary.csv", "plots/states_heatmap.png", "plots/states_pca.png", "plots/states_kmeans.png"]
WEIGHT_FILES = ["weights.csv", "plots/weight_hist.png", "plots/weight_hist.gif", "plots/spectral.png",
                "plots/weight_heatmaps.png"]


def _monitor_conf(name: str) -> MonitorConf:
    """conf/monitor/<name>.yaml over the defaults (what Hydra composes)."""
    cfg = OmegaConf.load(CONF / "default.yaml")
    if name != "default":
        cfg = OmegaConf.merge(cfg, OmegaConf.load(CONF / f"{name}.yaml"))
    d = OmegaConf.to_container(cfg)
    d.pop("defaults", None)
    return MonitorConf(**d)


def test_kmeans_recovers_well_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
    truth = rng.integers(0, 4, size=400)
    X = centres[truth] + 0.3 * rng.standard_normal((400, 3))
    C, labels, inertia = kmeans(X, 4, seed=1)
    # one predicted label per true cluster, all different
    mapping = {t: set(labels[truth == t]) for t in range(4)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len({next(iter(v)) for v in mapping.values()}) == 4
    assert inertia == pytest.approx(((X - C[labels]) ** 2).sum())
    assert inertia < 400 * 3 * 0.3**2 * 1.5
    # deterministic, and k is capped at the number of points
    np.testing.assert_array_equal(kmeans(X, 4, seed=1)[1], labels)
    assert kmeans(X[:3], 5)[0].shape == (3, 3)


def test_pca_explained_variance():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((300, 2)) * [3.0, 1.0]
    X = Z @ rng.standard_normal((2, 6)) + 5.0  # rank 2 plus an offset
    scores, ratio, comps = pca(X, 3)
    Xc = X - X.mean(axis=0)
    s = np.linalg.svd(Xc, compute_uv=False)
    assert ratio.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(ratio, s**2 / (s**2).sum(), atol=1e-10)
    assert ratio[2:].sum() < 1e-10
    assert scores.shape == (300, 3) and comps.shape == (3, 6)
    # the variance of each score is its share of the total variance
    np.testing.assert_allclose(scores.var(axis=0) / Xc.var(axis=0).sum(), ratio[:3], atol=1e-10)
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-10)
    assert pca(np.ones((5, 3)), 3)[1].sum() == 0  # no variance: zeros, no warning


def _lstm_cache(value: float, B=2, T=5, H=3):
    """The parts of the LSTM kernel's cache its activations read."""
    return {"gates": np.full((T, 4 * H, B), value), "cells": np.full((T, B, H), 50.0 * value),
            "tanh_cells": np.full((T, B, H), value)}


def cell_activations(name, cache):
    return cells.get(name).activations(cache)


def test_saturation_of_a_constructed_lstm_cache():
    valid = np.ones((2, 5), dtype=bool)
    acts = cell_activations("lstm", _lstm_cache(0.999))
    assert set(acts) == {"i", "f", "g", "o", "c", "tanh_c"} and acts["c"][0] == "linear"
    bounded = {k for k in acts if k != "c"}  # the cell state is unbounded: no saturation, no dead units
    sat, dead = saturation(acts, valid, 0.05)
    assert sat == dict.fromkeys(bounded, 1.0)
    assert dead == dict.fromkeys(bounded, 3)  # every unit saturated at every step
    sat, dead = saturation(cell_activations("lstm", _lstm_cache(0.5)), valid, 0.05)
    assert sat == dict.fromkeys(bounded, 0.0) and dead == dict.fromkeys(bounded, 0)
    # sigmoid near 0 saturates, tanh near 0 does not
    sat, _ = saturation(cell_activations("lstm", _lstm_cache(0.01)), valid, 0.05)
    assert sat["i"] == 1.0 and sat["g"] == 0.0 and sat["tanh_c"] == 0.0
    # gate blocks land on the right names: only the forget gate saturated
    cache = _lstm_cache(0.5)
    cache["gates"][:, 3:6] = 0.99
    sat, _ = saturation(cell_activations("lstm", cache), valid, 0.05)
    assert sat == {"i": 0.0, "f": 1.0, "g": 0.0, "o": 0.0, "tanh_c": 0.0}


def test_masked_steps_are_excluded():
    B, T, H = 3, 4, 2
    r = np.full((B, T, H), 0.5)
    n = np.full((B, T, H), 0.0)
    valid = np.ones((B, T), dtype=bool)
    valid[0, :2] = False  # pre-padded
    valid[2, 3] = False  # post-padded
    r[~valid] = 0.999  # padded steps saturated: must not count
    n[~valid] = 0.999
    r[1, 0, 0] = 0.001  # one real saturated entry out of 9 real steps * 2 units
    cache = {"r": r, "z": np.full((B, T, H), 0.5), "n": n}
    sat, dead = saturation(cell_activations("gru", cache), valid, 0.05)
    assert sat == {"r": pytest.approx(1 / 18), "z": 0.0, "n": 0.0}
    assert dead == {"r": 0, "z": 0, "n": 0}
    # a unit saturated at all real steps (but not at the padded ones) is dead
    r[valid, 1] = 0.001
    r[~valid, 1] = 0.5
    assert saturation(cell_activations("gru", cache), valid, 0.05)[1]["r"] == 1


def test_relu_dead_unit_is_detected(tmp_path):
    spec = M.ModelSpec(cell="rnn", input_size=3, hidden_size=4, output_size=1, nonlinearity="relu")
    params = M.init_params(spec, np.random.default_rng(0))
    params["rnn.weight_hh_l0"][:] = 0
    params["rnn.weight_ih_l0"] *= 0.1
    params["rnn.bias_ih_l0"][:] = 1.0  # every unit active ...
    params["rnn.bias_hh_l0"][:] = 0.0
    params["rnn.weight_ih_l0"][2] = 0.0
    params["rnn.bias_ih_l0"][2] = -1.0  # ... but unit 2: pre-activation -1 at every step
    x = np.random.default_rng(1).standard_normal((5, 7, 3))
    out = analyse_states(MonitorConf(), spec, params, Probe(x, np.zeros(5), None, None), RunFolder(tmp_path))
    assert out["dead_units"] == {"l0": {"h": 1}}
    assert out["saturation"] == {"l0": {}}  # relu has no upper bound
    assert not (tmp_path / "plots" / "gates.png").exists()  # vanilla RNN: no gates
    for name in STATE_FILES:
        assert name in out["files"] and (tmp_path / name).stat().st_size > 0
    summary = pd.read_csv(tmp_path / "states_summary.csv")
    assert list(summary.columns) == ["layer", "direction", "quantity", "value"]
    assert summary.set_index("quantity").loc["dead_h", "value"] == 1


def _task_data(x, mask, kind="regression"):
    n = len(x)
    split = Split(x=x, y=np.zeros((n, 1), dtype=np.float32), mask=mask)
    return TaskData(kind=kind, train=split, val=split, test=split, input_size=1, output_size=1, default_loss="mse")


@pytest.mark.slow  # suite time: the scenario is in the slow suite
def test_every_file_after_a_tiny_run(tmp_path):
    """Token ids with padding, a stacked bidirectional LSTM with per-step outputs."""
    rng = np.random.default_rng(0)
    P, T = 6, 9
    x = rng.integers(1, 30, size=(P, T))
    mask = np.ones((P, T), dtype=np.int64)
    mask[0, :3] = 0  # pre-padded
    mask[1, -2:] = 0  # post-padded
    x[mask == 0] = 0
    spec = M.ModelSpec(cell="lstm", input_size=5, hidden_size=6, output_size=1, num_layers=2, bidirectional=True,
                       pooling="none", vocab_size=30)
    params = M.init_params(spec, rng)
    cfg = MonitorConf(every_n_steps=0, time_gradients=False, gif=False, clusters=3)  # the GIF: test_weights
    mon = RunMonitor(cfg, SequenceInspector(spec, _task_data(x, mask)), tmp_path)
    rows = []
    for epoch in range(2):
        extra = mon.on_epoch_end(epoch, params)
        assert np.isfinite(extra["spectral_radius_l0"])
        rows.append({"epoch": epoch + 1, **extra})
        for v in params.values():
            v += np.float32(0.01)
    summary = mon.finish(params, rows)["monitor"]
    weights = pd.read_csv(tmp_path / "weights.csv")
    assert list(weights.columns) == list(COLUMNS)
    # per epoch: one row per parameter, plus the 4 gate blocks of each of the 4 recurrent matrices
    assert weights.groupby("epoch").size().to_dict() == {1: len(params) + 16, 2: len(params) + 16}
    for name in [*(f for f in WEIGHT_FILES if not f.endswith(".gif")), *STATE_FILES, "plots/gates.png"]:
        assert (tmp_path / name).stat().st_size > 0, name
    json.dumps(summary)  # JSON-ready for summary.json
    assert set(summary["spectral_radius"]) == {"l0", "l0_reverse", "l1", "l1_reverse"}
    assert set(summary["saturation"]) == {"l0", "l0_reverse", "l1", "l1_reverse"}
    assert set(summary["saturation"]["l1_reverse"]) == {"i", "f", "g", "o", "tanh_c"}
    states = pd.read_csv(tmp_path / "states_summary.csv").set_index("quantity")
    assert states.loc["real_states", "value"] == mask.sum()  # padded steps left out
    assert states.loc["kmeans_clusters", "value"] == 3
    assert states.loc["real_states", "direction"] == "both" and states.loc["real_states", "layer"] == 1


@pytest.mark.slow  # a plot (1.8 s); the saturation analysis is checked fast on an LSTM cache above
def test_gru_gates_plot(tmp_path):
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=5, output_size=1, pooling="mean")
    params = M.init_params(spec, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 6, 2)).astype(np.float32)
    out = analyse_states(MonitorConf(), spec, params, Probe(x, np.zeros(4), None, None), RunFolder(tmp_path))
    assert set(out["saturation"]["l0"]) == {"r", "z", "n"}
    assert "plots/gates.png" in out["files"] and (tmp_path / "plots" / "gates.png").exists()
    assert sum(out["pca_explained"]) <= 1.0 + 1e-9


def test_monitor_none_writes_nothing(tmp_path):
    cfg = _monitor_conf("none")
    assert not cfg.enabled
    spec = M.ModelSpec(cell="lstm", input_size=1, hidden_size=4, output_size=1)
    params = M.init_params(spec, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 5, 1)).astype(np.float32)
    mon = RunMonitor(cfg, SequenceInspector(spec, _task_data(x, None)), tmp_path)
    assert mon.on_epoch_end(0, params) == {}
    assert mon.finish(params, []) == {"monitor": {"enabled": False}}
    assert list(tmp_path.iterdir()) == []
    full = _monitor_conf("full")
    assert full.gif and full.histograms and full.weights and full.states
