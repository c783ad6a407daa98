"""CSV forecasting data: windows, splits, transforms round-trip, baselines, and one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab.config.schema import CsvConf
from rnnlab.data import timeseries as ts
from rnnlab.data.base import DataError


def _csv(tmp_path, n=300, **cols):
    dates = pd.bdate_range("2020-01-01", periods=n)
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close, "Volume": rng.uniform(1e6, 2e6, n)})
    for k, v in cols.items():
        frame[k] = v
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _load(path, **kw):
    # ETS (a second of fits a load) has its tests in test_baselines.py
    cfg = CsvConf(path=str(path), **{"n_in": 10, "n_out": 3, "baselines": ["naive", "seasonal_naive"], **kw})
    return ts.load(cfg, np.random.default_rng(0))


@pytest.mark.parametrize("transform", ["none", "log", "diff", "returns", "log_returns"])
def test_targets_map_back_to_the_original_levels(tmp_path, transform):
    path, frame = _csv(tmp_path)
    d = _load(path, transform=transform, covariates=["Volume"], covariate_transform="log")
    close = frame["Close"].to_numpy()
    start = 0 if transform in ("none", "log") else 1
    for split in ("train", "val", "test"):
        got = d.targets_original(split)
        assert got.shape == (len(getattr(d, split)), 3)
        # every row of targets is a run of 3 consecutive closes
        pos = np.array([np.argmin(np.abs(close - v)) for v in got[:, 0]])
        np.testing.assert_allclose(got, np.stack([close[pos], close[pos + 1], close[pos + 2]], axis=1), rtol=1e-5)
    test = d.targets_original("test")
    np.testing.assert_allclose(test[-1], close[-3:], rtol=1e-5)
    assert d.input_size == 2 and d.train.x.shape[1:] == (10, 2)
    assert d.meta["covariates"] == ["Volume"] and len(d.meta["scalers"]) == 2
    # train + val + test windows never share a target step; splits are in time order
    n = len(close) - start
    assert len(d.train) + len(d.val) + len(d.test) <= n - 10 - 3 + 1
    assert d.train.x.dtype == np.float32


def test_scaler_is_fitted_on_train_only(tmp_path):
    path, frame = _csv(tmp_path)
    close = frame["Close"].to_numpy()
    d = _load(path)
    t_val = int(round(len(close) * 0.7))
    assert d.scaler.mean == pytest.approx(close[:t_val].mean())
    assert d.scaler.std == pytest.approx(close[:t_val].std())


def test_naive_baselines(tmp_path):
    path, frame = _csv(tmp_path)
    d = _load(path, seasonal_period=2)
    close = frame["Close"].to_numpy()
    naive = d.baselines["naive"]["test"]
    last_row = naive[-1]
    np.testing.assert_allclose(last_row, np.repeat(close[-4], 3))
    seasonal = d.baselines["seasonal_naive"]["test"][-1]
    # forecasting steps t+1, t+2, t+3 from t = -4: values at t-1, t, t+1-2 = t-1
    np.testing.assert_allclose(seasonal, [close[-5], close[-4], close[-5]])


def test_future_window_is_the_last_n_in_rows(tmp_path):
    path, frame = _csv(tmp_path)
    d = _load(path, transform="diff")
    assert d.future["x"].shape == (1, 10, 1)
    y = d.to_original(np.zeros((1, 3)), "future")
    # zero scaled output = the train mean difference, added to the last close
    assert y[0, 0] == pytest.approx(frame["Close"].iloc[-1] + d.scaler.mean)


@pytest.mark.parametrize(
    "setup, kw, message",
    [
        (lambda p: p.unlink(), {}, "data file not found"),
        (lambda p: p.write_text(""), {}, "data file is empty"),
        (lambda p: p.write_text("Date,Close\n"), {}, "has a header but no rows"),
        (None, {"target": "Price"}, "has no column 'Price' (columns: Date, Close, Volume)"),
        (None, {"n_in": 250}, "too short for n_in=250 + n_out=3"),
    ],
)
def test_bad_files_give_one_line(tmp_path, setup, kw, message):
    path, _ = _csv(tmp_path)
    if setup:
        setup(path)
    with pytest.raises(DataError) as exc:
        _load(path, **kw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_non_numeric_and_missing_values(tmp_path):
    path, frame = _csv(tmp_path)
    bad = frame.astype({"Close": object})
    bad.loc[4, "Close"] = "n/a?"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"non-numeric values in rows 6"):
        _load(path)
    holes = frame.copy()
    holes.loc[[7, 8], "Close"] = np.nan
    holes.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing values in rows 9, 10 \(set data.nan_policy"):
        _load(path)
    for policy in ("drop", "ffill", "interpolate"):
        d = _load(path, nan_policy=policy)
        assert np.isfinite(d.train.x).all()
    dropped, filled = _load(path, nan_policy="drop"), _load(path, nan_policy="ffill")
    total = [len(d.train) + len(d.val) + len(d.test) for d in (dropped, filled)]
    assert total[0] < total[1]


def test_log_transform_rejects_non_positive(tmp_path):
    path, frame = _csv(tmp_path)
    frame.loc[3, "Close"] = -1.0
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="needs positive values"):
        _load(path, transform="log_returns")
