"""Gradient monitoring: the model's dL/dh_t traces, GradientTracker, and its files in a run (the cells'
dh_trace itself is checked in tests/engine/test_cells_contract.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rnnlab.commands.train import run
from rnnlab.engine import model as M
from rnnlab.monitor.gradients import GRAD_COLUMNS, GradientTracker, _first_over_last
from rnnlab.record.folder import RunFolder
from tests.conftest import TINY, TINY_VIEWS, read_summary

TOL = 1e-6


def _mask(B, T):
    m = np.ones((B, T))
    m[0, -2:] = 0  # post-padded
    m[1, :2] = 0  # pre-padded
    m[2, 3] = 0  # a hole
    return m


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(1e-12, np.max(np.abs(b))))


def test_bidirectional_and_model_traces():
    rng = np.random.default_rng(3)
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=2, num_layers=2,
                       bidirectional=True, pooling="mean")
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((3, 6, 3))
    mask = _mask(3, 6)
    y, cache = M.forward(spec, params, x, mask)
    dy = rng.standard_normal(y.shape)
    g0, dx0 = M.backward(spec, params, dy, cache)
    trace = {}
    g1, dx1 = M.backward(spec, params, dy, cache, trace=trace)
    assert list(trace) == ["layer0", "layer0_reverse", "layer1", "layer1_reverse"]
    assert all(v.shape == (6, 3, 4) and np.isfinite(v).all() for v in trace.values())
    assert np.array_equal(dx0, dx1) and all(np.array_equal(g0[k], g1[k]) for k in g0)

    # the top layer with pooling "last": its last step's total gradient is the head's
    spec1 = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2)
    p1 = M.init_params(spec1, rng, dtype=np.float64)
    y, cache = M.forward(spec1, p1, x)
    dy = rng.standard_normal(y.shape)
    trace = {}
    M.backward(spec1, p1, dy, cache, trace=trace)
    assert list(trace) == ["layer0"]
    assert _rel(trace["layer0"][-1], dy @ p1["head.weight"]) < 1e-12


def test_first_over_last_uses_each_sequences_real_steps():
    norms = np.array([[1.0, 9.0], [2.0, 4.0], [4.0, 9.0]])  # (T, B)
    real = np.array([[True, False], [True, True], [True, False]])
    assert _first_over_last(norms, real) == pytest.approx((1 + 4) / 2 / ((4 + 4) / 2))


# -------------------------------------------------------------------- the tracker alone


class _Console:
    def __init__(self):
        self.lines = []

    def print(self, msg, **_):
        self.lines.append(str(msg))


def _cfg(**kw):
    base = dict(every_n_steps=2, vanish_below=1e-5, explode_above=1000.0, time_gradients=True)
    return SimpleNamespace(**{**base, **kw})


def test_tracker_counts_events_and_warns_once_per_epoch_and_kind():
    con = _Console()
    tr = GradientTracker(_cfg(), con)
    params = {"w": np.ones((2, 2), np.float32)}
    grads = {"w": np.full((2, 2), 3.0, np.float32)}
    for step, (epoch, gn) in enumerate([(0, 5e3), (0, 6e3), (0, 1e-7), (0, 1.0), (1, 2e3), (1, 1e-9),
                                        (1, 1e-8), (2, float("nan"))]):
        tr.on_step(step, epoch, params, grads, gn)
    assert tr.counts == {"exploding": 4, "vanishing": 3}
    assert len(con.lines) == 5  # exploding in epochs 1, 2, 3, vanishing in epochs 1, 2
    assert "exploding gradients: global norm 5e+03 > 1000 at step 0 (epoch 1)" in con.lines[0]
    assert "vanishing" in con.lines[1] and "epoch 1" in con.lines[1]
    assert "not finite" in con.lines[-1]
    GradientTracker(_cfg(), None).on_step(0, 0, params, grads, 1e9)  # no console: counted, silent


def test_tracker_rows_match_numpy_and_plots_survive_edge_cases(tmp_path):
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": np.zeros(5, np.float32)}
    g_a = rng.standard_normal((3, 8)).astype(np.float32)[:, ::2]  # non-contiguous
    grads = {"a": g_a, "b": rng.standard_normal(5).astype(np.float32)}
    tr = GradientTracker(_cfg(every_n_steps=1), None)
    # no rows, no curves: the plots still draw
    out = tr.finish(RunFolder(tmp_path / "empty"))
    assert out["gradient_warnings"] == {"vanishing": 0, "exploding": 0}
    for f in out["files"]:
        assert (tmp_path / "empty" / f).exists()
    assert len(pd.read_csv(tmp_path / "empty" / "gradients.csv")) == 0

    tr.on_step(0, 0, params, grads, 1.5)
    rows = pd.DataFrame(list(tr.rows), columns=list(GRAD_COLUMNS)).set_index("param")
    a = rows.loc["a"]
    assert a.grad_norm == pytest.approx(np.linalg.norm(g_a), rel=1e-6)
    assert a.weight_norm == pytest.approx(np.linalg.norm(params["a"]), rel=1e-6)
    assert a.ratio == pytest.approx(a.grad_norm / a.weight_norm)
    assert a.grad_mean == pytest.approx(g_a.mean(), abs=1e-6)
    assert a.grad_std == pytest.approx(g_a.std(), rel=1e-5)
    # |mean| >> std: no cancellation to zero
    tr.on_step(1, 0, params, {"a": np.float32(1000) + g_a * np.float32(1e-3), "b": grads["b"]}, 1.0)
    a2 = pd.DataFrame(tr.rows[-3:], columns=list(GRAD_COLUMNS)).set_index("param").loc["a"]
    assert a2.grad_std == pytest.approx(1e-3 * g_a.std(), rel=1e-2)
    assert np.isinf(rows.loc["b"].ratio)  # zero weights
    assert rows.loc["global"].grad_norm == 1.5
    # the histogram sample is a copy
    grads["b"][:] = 0
    assert tr.last_grads["b"].any()
    # one row and one epoch curve
    tr.curves.append((1, "layer0", np.array([1e-3, np.nan, 0.0, 1.0])))
    out = tr.finish(RunFolder(tmp_path / "one"))
    assert set(out["files"]) == {"gradients.csv", "time_gradients.csv", "plots/gradient_flow.png",
                                 "plots/grad_norms.png", "plots/grad_hist.png"}
    assert all((tmp_path / "one" / f).stat().st_size > 0 for f in out["files"])


def test_tracker_without_step_statistics_still_checks_every_step(tmp_path):
    con = _Console()
    tr = GradientTracker(_cfg(every_n_steps=0, time_gradients=False, vanish_below=1.0, explode_above=2.0), con)
    for step in range(6):
        tr.on_step(step, step // 3, {"w": np.ones(2)}, {"w": np.ones(2)}, 0.5)
    assert tr.rows == [] and tr.last_grads is None
    assert tr.counts["vanishing"] == 6 and len(con.lines) == 2
    out = tr.finish(RunFolder(tmp_path))
    assert out["files"] == [] and not any(tmp_path.iterdir())


def test_tracker_without_plots_writes_the_csv_files_only(tmp_path):
    tr = GradientTracker(_cfg(every_n_steps=1), None)
    tr.on_step(0, 0, {"w": np.ones(3)}, {"w": np.arange(3.0)}, 1.0)
    tr.curves.append((1, "layer0", np.array([0.1, 1.0])))
    out = tr.finish(RunFolder(tmp_path, plots=False))
    assert out["files"] == ["gradients.csv", "time_gradients.csv"]
    assert not (tmp_path / "plots").exists()


# -------------------------------------------------------------------- through `rnnlab train` (in-process)


# the other analyses (weights, states) have their own tests; off here to keep these fast
ONLY_GRADIENTS = ["monitor.weights=false", "monitor.histograms=false", "monitor.states=false"]


def _train(tmp_path, capsys, monkeypatch, *extra, name="run"):
    """A tiny run with plots and the monitor (TINY_VIEWS), then `extra`; returns (run folder, console text)."""
    monkeypatch.setenv("COLUMNS", "200")  # Rich wraps the console at this width
    d = tmp_path / name
    code = run([*TINY, *TINY_VIEWS, "train.epochs=2", f"hydra.run.dir={d}", *ONLY_GRADIENTS, *extra])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    return d, out + err


@pytest.mark.slow  # suite time: the scenario is in the slow suite
def test_cli_run_writes_gradient_files_and_warns_once_per_epoch(tmp_path, capsys, monkeypatch):
    # thresholds that make every step "explode"
    d, text = _train(tmp_path, capsys, monkeypatch, "monitor.every_n_steps=1", "arch=bilstm", "arch.num_layers=2",
                    "monitor.explode_above=1e-9", "monitor.vanish_below=1e-12")
    g = pd.read_csv(d / "gradients.csv")
    assert list(g.columns) == list(GRAD_COLUMNS)
    steps = g.step.nunique()
    params = {k for k in g.param if k != "global"}
    assert "rnn.weight_hh_l1_reverse" in params and "head.weight" in params and len(params) == 18
    assert len(g) == steps * (len(params) + 1) and set(g.epoch) == {1, 2}
    assert (g.grad_norm > 0).all() and np.isfinite(g.ratio).all()
    assert (g[g.param == "head.bias"].grad_std == 0).all()  # one entry (output_size 1)
    assert (g[g.param != "head.bias"].grad_std > 0).all()

    tg = pd.read_csv(d / "time_gradients.csv")
    assert list(tg.columns) == ["epoch", "layer", "t", "norm"]
    assert set(tg.layer) == {"layer0", "layer0_reverse", "layer1", "layer1_reverse"}
    assert len(tg) == 2 * 4 * 12  # epochs x layers x steps (data.n_in=12)
    assert (tg.norm > 0).all()

    metrics = pd.read_csv(d / "metrics.csv")
    assert (metrics.grad_t_first_over_last > 0).all()
    for name in ("gradient_flow", "grad_norms", "grad_hist"):
        assert (d / "plots" / f"{name}.png").stat().st_size > 0
    mon = read_summary(d)["monitor"]
    assert mon["grad_t_first_over_last"] == pytest.approx(metrics.grad_t_first_over_last.iloc[-1])
    assert {"gradients.csv", "time_gradients.csv", "plots/grad_hist.png"} <= set(mon["files"])

    # every step exploded, but the console says so once per epoch
    assert mon["gradient_warnings"] == {"vanishing": 0, "exploding": steps}
    assert text.count("exploding gradients") == 2, text[-3000:]


@pytest.mark.slow  # a whole run with plots to show one absence; test_states covers monitor=none fast
def test_monitor_none_writes_no_gradient_files(tmp_path, capsys, monkeypatch):
    d, _ = _train(tmp_path, capsys, monkeypatch, "monitor=none")
    assert not (d / "gradients.csv").exists() and not (d / "time_gradients.csv").exists()
    assert (d / "plots").is_dir()  # the run's own plots, none of the monitor's
    assert not {"gradient_flow.png", "grad_norms.png", "grad_hist.png"} & {p.name for p in (d / "plots").iterdir()}
    assert "grad_t_first_over_last" not in pd.read_csv(d / "metrics.csv").columns
    assert json.loads((d / "summary.json").read_text())["monitor"] == {"enabled": False}
