"""Recursive forecasting: one-step training targets, rolled n_out-step evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.train import run
from rnnlab.config.schema import CsvConf, SineConf
from rnnlab.data import registry
from rnnlab.data.base import DataError
from rnnlab.engine import model as M
from rnnlab.train.tasks.predict import rolled_forecast
from tests.conftest import TINY, read_summary

NO_ETS = ["naive", "seasonal_naive", "drift", "mean"]  # ETS (a second of fits a load) has its own tests


def _prices(tmp_path, n=300):
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    frame = pd.DataFrame({"Date": pd.bdate_range("2021-01-01", periods=n).strftime("%Y-%m-%d"),
                          "Close": close, "Volume": rng.uniform(1e6, 2e6, n)})
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return path


def test_sine_recursive_keeps_full_horizon_targets():
    direct = registry.load(SineConf(length=400, n_in=12, n_out=4), np.random.default_rng(0), np.float32)
    rec = registry.load(SineConf(length=400, n_in=12, n_out=4, strategy="recursive"), np.random.default_rng(0),
                        np.float32)
    assert rec.output_size == 1 and rec.recursive_horizon == 4
    for split in ("val", "test"):
        assert getattr(rec, split).y.shape == (len(getattr(direct, split)), 1)
        np.testing.assert_array_equal(getattr(rec, split).y[:, 0], getattr(direct, split).y[:, 0])
    # one-step training targets: the n_out - 1 windows before validation whose later targets it holds count too
    assert len(rec.train) == len(direct.train) + 3
    np.testing.assert_array_equal(rec.train.y[: len(direct.train), 0], direct.train.y[:, 0])
    for split in ("val", "test"):
        np.testing.assert_allclose(rec.targets_original(split), direct.targets_original(split))


def test_recursive_refuses_covariates(tmp_path):
    cfg = CsvConf(path=str(_prices(tmp_path)), n_in=10, n_out=3, covariates=["Volume"], strategy="recursive",
                  baselines=NO_ETS)
    with pytest.raises(DataError, match="strategy=recursive .* 2 input features") as exc:
        registry.load(cfg, np.random.default_rng(0), np.float32)
    assert "\n" not in str(exc.value)


def test_csv_recursive_maps_back_to_prices(tmp_path):
    cfg = CsvConf(path=str(_prices(tmp_path)), n_in=10, n_out=3, transform="log_returns", strategy="recursive",
                  baselines=NO_ETS)
    d = registry.load(cfg, np.random.default_rng(0), np.float32)
    direct = registry.load(CsvConf(path=cfg.path, n_in=10, n_out=3, transform="log_returns", baselines=NO_ETS),
                           np.random.default_rng(0), np.float32)
    np.testing.assert_allclose(d.targets_original("test"), direct.targets_original("test"))
    assert d.targets_original("test").shape == (len(d.test), 3)


def test_rolled_forecast_feeds_each_prediction_back():
    spec = M.ModelSpec(cell="gru", input_size=1, hidden_size=5, output_size=1)
    params = M.init_params(spec, np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((4, 7, 1))
    got = rolled_forecast(spec, params, x, horizon=3)
    window = x.copy()
    for h in range(3):
        y = M.predict(spec, params, window)[:, 0]
        np.testing.assert_allclose(got[:, h], y, rtol=1e-12)
        window = np.concatenate([window[:, 1:], y[:, None, None]], axis=1)
    np.testing.assert_array_equal(x, np.random.default_rng(1).standard_normal((4, 7, 1)))  # input untouched


def test_recursive_run_writes_every_horizon(tmp_path):
    run_dir = tmp_path / "run"
    assert api.train([*TINY, "data.n_out=4", "data.strategy=recursive"], run_dir).status == "completed"
    summary = read_summary(run_dir)
    assert summary["status"] == "completed"
    pred = pd.read_csv(run_dir / "predictions.csv")
    assert sorted(pred["horizon"].unique()) == [1, 2, 3, 4]
    assert pred["prediction"].notna().all()


def test_strategy_typo_is_one_line_exit_2(tmp_path, capsys):
    assert run([*TINY, "data.strategy=rolling", f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "data.strategy must be one of direct, recursive" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
