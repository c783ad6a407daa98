"""A trained run loaded for use (rnnlab.api.load_run): config, summary, metrics and weights read back, and the
test predictions computed again from the checkpoint equal the run's predictions.csv."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.config.validate import ConfigError
from tests.conftest import TINY


def _numeric(frame):
    return frame[[c for c in frame.columns if c != "date"]].to_numpy(dtype=np.float64)


def test_a_forecasting_run_predicts_its_own_predictions_csv_again(tmp_path):
    run_dir = tmp_path / "run"
    summary = api.train([*TINY, "data.n_out=3"], run_dir)
    run = api.load_run(run_dir)
    assert run.summary.status == summary.status == "completed" and run.config.data.n_out == 3
    assert len(run.metrics) == summary.epochs_run
    again, saved = run.predictions("test"), pd.read_csv(run_dir / "predictions.csv")
    assert list(again.columns) == list(saved.columns)
    np.testing.assert_allclose(_numeric(again), _numeric(saved), rtol=1e-6, atol=1e-9)
    # forward on arrays: the engine's evaluation-mode outputs of the test windows
    task = run.task()
    y = run.forward(task.data.test.x, task.data.test.mask)
    assert y.shape == (len(task.data.test), 3)
    np.testing.assert_allclose(task.data.to_original(y, "test"), again["prediction"].to_numpy().reshape(-1, 3),
                               rtol=1e-6)


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        api.load_run(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        api.load_run(tmp_path / "nowhere")


def test_a_classifier_predicts_its_own_predictions_csv_again(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    labels = np.arange(n) % 3
    steps = rng.standard_normal((n, 8)) + labels[:, None]
    frame = pd.DataFrame(steps, columns=[f"s{k}" for k in range(8)])
    frame["label"] = [f"c{k}" for k in labels]
    frame.to_csv(tmp_path / "seqs.csv", index=False)
    run_dir = tmp_path / "run"
    api.train(["data=seqfile", f"data.path={tmp_path / 'seqs.csv'}", "arch.hidden_size=8", "train.epochs=2",
               "train.progress=false", "train.plots=false", "monitor=none"], run_dir)
    run = api.load_run(run_dir)
    again, saved = run.predictions("test"), pd.read_csv(run_dir / "predictions.csv")
    assert list(again.columns) == list(saved.columns) and run.config.data.name == "seqfile"
    np.testing.assert_allclose(again.to_numpy(dtype=np.float64), saved.to_numpy(dtype=np.float64), rtol=1e-6,
                               atol=1e-9)


def test_a_run_trained_on_a_relative_path_loads_its_data_from_any_folder(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    dates = pd.date_range("2010-01-01", periods=80, freq="D")
    pd.DataFrame({"day": dates.strftime("%Y-%m-%d"), "y": np.sin(np.arange(80) / 4)}).to_csv(work / "s.csv",
                                                                                              index=False)
    monkeypatch.chdir(work)
    api.train(["data=csv", "data.path=s.csv", "data.date_column=day", "data.target=y", "data.covariates=[]",
               "data.n_in=8", "data.n_out=2", "data.baselines=[naive]", "arch.hidden_size=4", "train.epochs=1",
               "train.progress=false", "train.plots=false", "monitor=none"], work / "run")
    monkeypatch.chdir(elsewhere)  # data.path=s.csv does not exist here; the run recorded where it read it
    again = api.load_run(work / "run").predictions("test")
    saved = pd.read_csv(work / "run" / "predictions.csv")
    np.testing.assert_allclose(again["prediction"], saved["prediction"], rtol=1e-6)
