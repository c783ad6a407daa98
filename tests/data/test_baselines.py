"""Forecasting baselines (rnnlab/data/baselines.py): each against its formula, ETS against statsmodels,
no look-ahead (a spike after an origin changes no forecast from it), and the loaders' wiring."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from rnnlab.config.schema import CsvConf
from rnnlab.data import baselines as B
from rnnlab.data import timeseries as ts

ALL = ["naive", "seasonal_naive", "drift", "mean", "ets"]


def _series(n=120, season=4, seed=0, level=20.0):
    """A positive trending seasonal series (so every ETS candidate applies)."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return level + 0.1 * t + 3 * np.sin(2 * np.pi * t / season) + rng.normal(0, 0.5, n)


@pytest.fixture
def one_ets_model(monkeypatch):
    """The AICc search narrowed to one seasonal model (A,A,A): tests of the wiring need no search (fast)."""
    spec = {"error": "add", "trend": "add", "damped_trend": False, "seasonal": "add"}
    monkeypatch.setattr(B, "ets_candidates", lambda history, season: [{**spec, "seasonal_periods": season}])


def _splits(n, cut_val, cut_test, horizon):
    """Origins of consecutive windows: train from 5 up to cut_val - horizon, val up to cut_test - horizon."""
    return {"train": np.arange(5, cut_val - horizon + 1), "val": np.arange(cut_val, cut_test - horizon + 1),
            "test": np.arange(cut_test, n - horizon + 1)}


def test_naive_seasonal_naive_drift_and_mean_follow_their_formulas():
    y = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 7.0, 3.0, 9.0, 6.0, 10.0])
    history, origins = y[:6], np.array([6, 8])
    f = B.fit(ALL[:4], history, season=3)
    np.testing.assert_array_equal(f["naive"].forecast(y, origins, 4), [[7, 7, 7, 7], [9, 9, 9, 9]])
    # from origin 6 (last seen y[5]): steps 1..4 take y[3], y[4], y[5], y[3] (one or two seasons back);
    # from origin 8: y[5], y[6], y[7], y[5]
    np.testing.assert_array_equal(f["seasonal_naive"].forecast(y, origins, 4), [[8, 5, 7, 8], [7, 3, 9, 7]])
    # drift: the slope of the history only, (7 - 1) / 5, added to the latest value
    assert f["drift"].slope == pytest.approx(1.2)
    np.testing.assert_allclose(f["drift"].forecast(y, origins, 2), [[8.2, 9.4], [10.2, 11.4]])
    np.testing.assert_allclose(f["mean"].forecast(y, origins, 2), np.full((2, 2), 27 / 6))


def test_seasonal_naive_needs_a_season_and_a_short_history_drifts_nowhere():
    assert set(B.fit(["naive", "seasonal_naive"], np.arange(5.0), season=None)) == {"naive"}
    assert set(B.fit(["naive", "seasonal_naive"], np.arange(5.0), season=1)) == {"naive"}
    assert B.fit(["drift"], np.array([3.0]), None)["drift"].slope == 0.0


def _statsmodels_fit(y, spec):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):  # as fit_ets: fast on a busy machine
        warnings.simplefilter("ignore")
        return ETSModel(y, **spec).fit(disp=False)


def test_ets_picks_the_lowest_aicc_and_forecasts_as_statsmodels_at_the_first_origin():
    y = np.cumsum(np.random.default_rng(4).normal(0.3, 1.0, 100))  # a trend, no season: 3 candidates
    history = y[:80]
    ets = B.fit_ets(history, None)
    fits = [_statsmodels_fit(history, spec) for spec in B.ets_candidates(history, None)]
    assert [(f.trend, f.damped_trend) for f in fits] == [(None, False), ("add", False), ("add", True)]
    best = min(fits, key=lambda r: r.aicc)
    assert ets.aicc == pytest.approx(best.aicc, rel=1e-9)
    chosen = dict(ets.spec)
    assert (chosen["trend"], chosen["damped_trend"]) == (best.trend, best.damped_trend)
    np.testing.assert_allclose(ets.forecast(y, np.array([80]), 8)[0], best.forecast(8), rtol=1e-9)


def test_ets_candidates():
    y = _series()
    assert len(B.ets_candidates(y, 4)) == 9  # trend N/A/Ad x season N/A/M (a positive series)
    assert B.ets_candidates(y[:7], 4) == B.ets_candidates(y[:7], None)  # < 2 seasons: no seasonal model
    assert len(B.ets_candidates(y - 30, 4)) == 6  # not positive: no multiplicative season
    assert len(B.ets_candidates(np.arange(1.0, 200.0), 52)) == 3  # season > 24: not seasonal
    mul = [c for c in B.ets_candidates(y, 4) if c["seasonal"] == "mul"]
    assert {c["error"] for c in mul} == {"mul"}


@pytest.mark.parametrize("spec", [
    {"error": "add", "trend": "add", "damped_trend": True, "seasonal": "add", "seasonal_periods": 4},
    {"error": "mul", "trend": "add", "damped_trend": False, "seasonal": "mul", "seasonal_periods": 4},
    {"error": "add", "trend": None, "damped_trend": False, "seasonal": None, "seasonal_periods": None},
], ids=["A,Ad,A", "M,A,M", "A,N,N"])
def test_ets_later_origins_filter_the_new_values_with_the_parameters_fixed(spec):
    """From origin o the forecast is statsmodels' own of the fitted model smoothed over series[:o] (no refit);
    the fit may start late (a long history), and origins before its start get no forecast: its initial states
    belong to the start (filtering from the series' first value with them was out of season)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = _series(n=150)
    res = _statsmodels_fit(y[30:90], spec)
    ets = B.ETS(tuple(sorted(spec.items())), tuple(res.model.param_names), tuple(res.params), 30, res.aicc)
    origins = np.array([90, 91, 120, 140, 30, 31, 12, 29])
    got = ets.forecast(y, origins, 6)
    for o, row in zip(origins, got, strict=True):
        if o < 30:
            assert np.isnan(row).all(), f"origin {o}"
            continue
        smoothed = ETSModel(y[30:max(o, 42)], **spec).smooth(np.asarray(res.params))
        want = smoothed.predict(start=o - 30, end=o - 30 + 5, dynamic=True) if o - 30 < 12 else smoothed.forecast(6)
        np.testing.assert_allclose(row, want, rtol=1e-9, err_msg=f"origin {o}")
    np.testing.assert_allclose(got[0], res.forecast(6), rtol=1e-9)


def test_an_ets_search_is_done_once_per_history(monkeypatch):
    """The folds of rnnlab cv and the trials of rnnlab search load the same series: one search each."""
    calls = []
    search = B._search_ets
    monkeypatch.setattr(B, "_search_ets", lambda *a: calls.append(1) or search(*a))
    y = _series(n=60) + 0.001 * np.random.default_rng().random()  # a history no earlier test saw
    first = B.fit_ets(y, None)
    assert B.fit_ets(y.copy(), None) is first and len(calls) == 1
    assert B.fit_ets(y[:-1], None) is not first and len(calls) == 2


def test_a_multiplicative_ets_has_no_forecast_past_a_value_at_or_below_zero():
    """statsmodels filters a multiplicative model through positive values only: NaN from there, not an error."""
    spec = {"error": "mul", "trend": None, "damped_trend": False, "seasonal": "mul", "seasonal_periods": 4}
    names = ("smoothing_level", "smoothing_seasonal", "initial_level", *(f"initial_seasonal.{i}" for i in range(4)))
    ets = B.ETS(tuple(sorted(spec.items())), names, (0.5, 0.1, 1.5, 1.0, 1.0, 1.0, 1.0), 0, 0.0)
    y = np.r_[np.abs(np.sin(np.arange(40))) + 1, -1.0, 2.0, 2.0]
    got = ets.forecast(y, np.array([40, 41, 43]), 2)
    assert np.isfinite(got[0]).all() and np.isnan(got[1:]).all()


def test_ets_skips_what_it_cannot_fit():
    assert B.fit_ets(np.array([1.0, 2.0]), None) is None  # AICc undefined on two points
    assert B.fit(["naive", "ets"], np.array([1.0, 2.0]), None).keys() == {"naive"}


@pytest.mark.parametrize("n_test_origins", [1, 12])
def test_a_spike_after_the_split_changes_no_baseline_forecast(n_test_origins, one_ets_model):
    """The issue's test: values after an origin (a spike appended past the data, or inside the test period)
    change no forecast from it, and the parameters come from the history alone."""
    y = _series(n=120)
    horizon, cut_val, cut_test = 3, 70, 95
    origins = _splits(len(y), cut_val, cut_test, horizon)
    origins["test"] = origins["test"][:n_test_origins]
    before, labels = B.split_forecasts(y, origins, horizon, 4, ALL)
    assert set(before) == set(ALL) and labels == {"ets": "ETS(A,A,A)"}

    appended = np.r_[y, 1e4]  # past every origin and every target
    after, _ = B.split_forecasts(appended, origins, horizon, 4, ALL)
    for name in ALL:
        for split in origins:
            np.testing.assert_array_equal(after[name][split], before[name][split], err_msg=f"{name} {split}")

    spike_at = cut_test + n_test_origins // 2  # inside the test period: origins up to it never see it
    spiked = y.copy()
    spiked[spike_at:] += 1e4
    after, _ = B.split_forecasts(spiked, origins, horizon, 4, ALL)
    unseen = origins["test"] <= spike_at
    for name in ALL:
        np.testing.assert_array_equal(after[name]["test"][unseen], before[name]["test"][unseen], err_msg=name)
        for split in ("train", "val"):
            np.testing.assert_array_equal(after[name][split], before[name][split], err_msg=f"{name} {split}")
    if n_test_origins > 1:  # the check can fail: a later origin does see the spike
        assert not np.array_equal(after["naive"]["test"], before["naive"]["test"])


def test_val_and_train_rows_are_fitted_before_the_first_val_origin():
    y = _series(n=120)
    origins = _splits(len(y), 70, 95, 3)
    got, _ = B.split_forecasts(y, origins, 3, 4, ["mean", "drift"])
    np.testing.assert_allclose(got["mean"]["val"], np.full_like(got["mean"]["val"], y[:70].mean()))
    np.testing.assert_allclose(got["mean"]["train"][0], np.full(3, y[:70].mean()))
    np.testing.assert_allclose(got["mean"]["test"], np.full_like(got["mean"]["test"], y[:95].mean()))
    slope = (y[94] - y[0]) / 94
    np.testing.assert_allclose(got["drift"]["test"][-1], y[116] + slope * np.arange(1, 4))


def test_mase_scale_is_the_in_sample_seasonal_naive_mae():
    assert B.mase_scale(np.array([1.0, 3.0, 2.0, 5.0]), None) == pytest.approx(2.0)  # |2|, |-1|, |3|
    assert B.mase_scale(np.array([1.0, 3.0, 2.0, 5.0]), 2) == pytest.approx(1.5)  # |2-1|, |5-3|
    assert B.mase_scale(np.array([1.0, 3.0]), 2) is None


def _prices(tmp_path, close, name="p.csv"):
    dates = pd.bdate_range("2021-01-04", periods=len(close)).strftime("%Y-%m-%d")
    path = tmp_path / name
    pd.DataFrame({"Date": dates, "Close": close}).to_csv(path, index=False)
    return path


def test_the_csv_loader_fits_before_the_test_period(tmp_path, one_ets_model):
    """End to end through timeseries.load: the last value spiked (after every origin) or a spike a few
    steps into the test period changes no test forecast from an origin before it, nor any val/train one."""
    close = _series(n=200, season=5, seed=3)
    spiked_end, spiked_mid = close.copy(), close.copy()
    spiked_end[-1] *= 50
    d = ts.load(CsvConf(path=str(_prices(tmp_path, close)), n_in=10, n_out=3), None)
    e = ts.load(CsvConf(path=str(_prices(tmp_path, spiked_end, "e.csv")), n_in=10, n_out=3), None)
    assert set(d.baselines) == set(ALL) and d.meta["baseline_models"] == {"ets": "ETS(A,A,A)"}
    for name in ALL:
        for split in ("train", "val", "test"):
            np.testing.assert_array_equal(e.baselines[name][split], d.baselines[name][split], err_msg=name)
    # test origins: consecutive, the last one n - n_out
    origins = len(close) - 3 - np.arange(len(d.test))[::-1]
    spike_at = int(origins[0]) + 4
    spiked_mid[spike_at] *= 50
    m = ts.load(CsvConf(path=str(_prices(tmp_path, spiked_mid, "m.csv")), n_in=10, n_out=3), None)
    unseen = origins <= spike_at
    for name in ALL:
        np.testing.assert_array_equal(m.baselines[name]["test"][unseen], d.baselines[name]["test"][unseen])
        np.testing.assert_array_equal(m.baselines[name]["val"], d.baselines[name]["val"])
    assert not np.array_equal(m.baselines["naive"]["test"], d.baselines["naive"]["test"])
    # MASE's scale: the seasonal naive (lag 5) MAE before the first test origin
    assert d.mase_scale == pytest.approx(np.mean(np.abs(close[5:origins[0]] - close[: origins[0] - 5])))


def test_data_baselines_chooses_and_the_config_refuses_unknown_names():
    assert CsvConf(path="x.csv").baselines == ALL
    assert CsvConf(path="x.csv", baselines=["drift", "naive", "drift"]).baselines == ["drift", "naive"]
    with pytest.raises(ValueError, match=r"^data.baselines must be one of naive, seasonal_naive, drift, mean, "
                                         r"ets \(got 'arima'\)$"):
        CsvConf(path="x.csv", baselines=["naive", "arima"])


def test_config_and_loaders_do_not_import_statsmodels():
    """ETS imports statsmodels inside its fit: `rnnlab --help` and the loaders stay light."""
    code = "import rnnlab.cli, rnnlab.config.schema, rnnlab.data.sine, rnnlab.data.timeseries"
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "rnnlab.data.baselines" in res.stderr and "statsmodels" not in res.stderr
