"""The saved experiments in conf/experiment/: each composes (fast), and each runs through the CLI (slow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.config.validate import group_options
from tests.conftest import read_summary, run_cli

EXPERIMENTS = group_options("experiment")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    rc = compose_and_validate([f"experiment={experiment}"])
    assert rc.name == experiment  # run folders are labelled with the experiment


def _fake_prices(path, n=400):
    """A small S&P-like CSV (Date, Close, Volume) so the slow test needs no real data."""
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2015-01-02", periods=n)
    close = 2000 * np.exp(np.cumsum(0.0003 + 0.01 * rng.standard_normal(n)))
    volume = np.exp(21 + 0.2 * rng.standard_normal(n)).round()
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close, "Volume": volume}).to_csv(path, index=False)


@pytest.mark.slow
def test_sine_gru_cosine_runs(tmp_path):
    d = tmp_path / "run"
    res = run_cli(["train", "experiment=sine_gru_cosine", "data.length=400", "data.n_in=12", "arch.hidden_size=8",
                   "train.epochs=3", "train.progress=false", "train.plots=false", f"hydra.run.dir={d}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    s = read_summary(d)
    assert s["status"] == "completed" and s["epochs_run"] == 3
    cfg = yaml.safe_load((d / ".hydra/config.yaml").read_text())
    assert cfg["arch"]["cell"] == "gru" and cfg["name"] == "sine_gru_cosine"


@pytest.mark.slow
def test_sp500_30day_runs(tmp_path):
    _fake_prices(tmp_path / "prices.csv")
    d = tmp_path / "run"
    res = run_cli(["train", "experiment=sp500_30day", f"data.path={tmp_path / 'prices.csv'}", "arch.hidden_size=8",
                   "train.epochs=2", "train.progress=false", "train.plots=false", f"hydra.run.dir={d}"],
                  cwd=tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    s = read_summary(d)
    assert s["status"] == "completed"
    assert set(s["baselines"]) == {"naive", "seasonal_naive", "drift", "mean", "ets"}
    assert len(s["forecast"]) == 30
    p = pd.read_csv(d / "predictions.csv")
    assert sorted(p["horizon"].unique()) == list(range(1, 31))
    assert len(p) == 30 * s["n_test"]
    cfg = yaml.safe_load((d / ".hydra/config.yaml").read_text())
    assert cfg["data"]["covariates"] == ["Volume"] and cfg["data"]["n_out"] == 30
    info = json.loads((d / "checkpoint/model.json").read_text())
    assert info["spec"]["input_size"] == 2  # log returns of the close + of the volume


@pytest.mark.slow
def test_adding_rnn_vs_lstm_multirun_runs_both(tmp_path):
    tiny = ["data.n_train=256", "data.n_val=64", "data.n_test=64", "arch.hidden_size=8", "train.epochs=1",
            "train.progress=false", "train.plots=false"]
    res = run_cli(["train", "-m", "experiment=adding_rnn_vs_lstm", *tiny], cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    sweeps = list((tmp_path / "outputs" / "train" / "multirun").glob("*_adding_rnn_vs_lstm"))
    assert len(sweeps) == 1, sweeps
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    cells = [json.loads((p / "checkpoint/model.json").read_text())["spec"]["cell"] for p in jobs]
    assert cells == ["rnn", "lstm"]
    for p in jobs:
        s = read_summary(p)
        assert s["status"] == "completed" and "predict_mean" in s["baselines"]
        assert yaml.safe_load((p / ".hydra/config.yaml").read_text())["data"]["length"] == 100


@pytest.mark.slow
def test_adding_rnn_vs_lstm_single_run_is_the_lstm(tmp_path):
    d = tmp_path / "run"
    res = run_cli(["train", "experiment=adding_rnn_vs_lstm", "data.n_train=128", "data.n_val=32", "data.n_test=32",
                   "arch.hidden_size=8", "train.epochs=1", "train.progress=false", "train.plots=false",
                   f"hydra.run.dir={d}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert read_summary(d)["status"] == "completed"
    assert json.loads((d / "checkpoint/model.json").read_text())["spec"]["cell"] == "lstm"


def test_the_cell_comparison_gives_every_cell_the_same_parameter_budget(tmp_path):
    """experiment=char_rnn_cells picks a hidden size per cell (rnnlab_pick): parameter counts within 1 %, and a
    run's saved config holds the resolved size (readers of the run need no resolver)."""
    from rnnlab import api
    from rnnlab.config.composition import write_run_config
    from rnnlab.engine import model as M

    counts = {}
    for cell in ("rnn", "gru", "lstm"):
        rc = compose_and_validate(["experiment=char_rnn_cells", f"arch={cell}"])
        spec = M.ModelSpec(cell=cell, input_size=rc.data.embed_dim, hidden_size=rc.arch.hidden_size, output_size=121,
                           vocab_size=121, pooling="none")  # the default text's 121 characters
        counts[cell] = M.n_params(M.init_params(spec, np.random.default_rng(0)))
    assert max(counts.values()) / min(counts.values()) < 1.01, counts
    from omegaconf import OmegaConf

    api.compose([])  # the resolvers are registered
    cfg = OmegaConf.create({"arch": {"cell": "gru", "hidden_size": "${rnnlab_pick:${.cell},{rnn:261,gru:154}}"}})
    write_run_config(tmp_path, cfg, [])
    assert yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())["arch"]["hidden_size"] == 154
