"""predictions.png, error_by_horizon.png and forecast.png of a forecasting run, read from the drawn figures."""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest

from rnnlab.report import prediction_plots as pp
from rnnlab.report.plots import plt, save_run_plots

BASELINES = ["naive", "seasonal_naive", "drift", "mean", "ets"]


def frame(n_origins: int, h: int, dates: pd.DatetimeIndex | None = None, step: bool = False, seed: int = 0):
    """predictions.csv of n_origins consecutive windows over a random walk, every baseline column filled."""
    rng = np.random.default_rng(seed)
    series = 100 + np.cumsum(rng.standard_normal(n_origins + h + 40))
    sample, horizon = np.repeat(np.arange(n_origins), h), np.tile(np.arange(1, h + 1), n_origins)
    pos = 40 + sample + horizon - 1  # the target's position in the series
    f = pd.DataFrame({"sample": sample, "horizon": horizon})
    if dates is not None:
        f["date"] = dates[pos].strftime("%Y-%m-%d")
    elif step:
        f["step"] = pos
    f["target"] = series[pos]
    f["prediction"] = series[pos] + rng.normal(0, 1, len(f))
    for k, name in enumerate(BASELINES):
        f[name] = series[pos] + rng.normal(0, 1 + k, len(f))
    return f, series


def lines(ax) -> dict:
    return {ln.get_label(): ln for ln in ax.get_lines()}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_one_origin_of_24_monthly_steps_draws_the_whole_trajectory():
    months = pd.date_range("2015-01-01", periods=100, freq="MS")
    pred, series = frame(1, 24, dates=months)
    fig = pp.predictions_figure(pred, {"history": series, "dates": pd.Series(months[: len(series)])})
    assert len(fig.axes) == 1
    drawn = lines(fig.axes[0])
    model = drawn["model"]
    assert len(model.get_xdata()) == 24
    np.testing.assert_allclose(model.get_ydata(), pred["prediction"])
    assert list(model.get_xdata()) == list(pd.to_datetime(pred["date"]).to_numpy())
    # the 24 months before the origin come from the history, which lines up with the targets
    before = drawn["before the origin"]
    np.testing.assert_allclose(before.get_ydata(), series[16:40])
    assert drawn["origin"].get_ydata()[0] == series[39]
    assert "1 of 1 test origins shown" in fig._suptitle.get_text()


def test_thousand_origins_show_six_spread_trajectories_with_every_baseline():
    pred, _ = frame(1000, 30, step=True)
    fig = pp.predictions_figure(pred)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 6
    assert [ax.get_title() for ax in panels] == [f"origin {s}" for s in (0, 200, 400, 599, 799, 999)]
    assert all(len(lines(ax)["model"].get_xdata()) == 30 for ax in panels)
    assert "6 of 1,000 test origins shown" in fig._suptitle.get_text()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"target", "model", *BASELINES} <= set(legend)
    # the steps before a later origin are the earlier origins' targets
    np.testing.assert_array_equal(lines(panels[1])["before the origin"].get_xdata(), np.arange(40 + 170, 40 + 200))


def test_history_is_context_only_where_it_lines_up_with_the_targets():
    pred, series = frame(1, 24, step=True)
    drawn = lines(pp.predictions_figure(pred, {"history": series, "dates": None}).axes[0])
    np.testing.assert_array_equal(drawn["before the origin"].get_xdata(), np.arange(16, 40))
    shifted = lines(pp.predictions_figure(pred, {"history": series[1:], "dates": None}).axes[0])
    assert "before the origin" not in shifted and len(shifted["model"].get_xdata()) == 24


def test_horizon_one_draws_every_origin_up_to_the_last_2000():
    pred, _ = frame(2513, 1, dates=pd.bdate_range("2010-01-04", periods=2600))
    ax = pp.predictions_figure(pred).axes[0]
    assert ax.get_title() == "Test predictions at horizon 1 (last 2,000 of 2,513 test origins)"
    drawn = lines(ax)
    np.testing.assert_allclose(drawn["target"].get_ydata(), pred["target"].iloc[-2000:])
    assert {"target", "model", *BASELINES} <= {t.get_text() for t in ax.get_legend().get_texts()}
    small, _ = frame(30, 1)  # no date/step: the origins' order
    ax = pp.predictions_figure(small).axes[0]
    assert ax.get_title() == "Test predictions at horizon 1 (30 test origins)"
    assert list(lines(ax)["model"].get_xdata()) == list(range(30))
    one, _ = frame(1, 1)  # a single point is still visible
    ax = pp.predictions_figure(one).axes[0]
    assert ax.get_title() == "Test predictions at horizon 1 (1 test origin)"
    assert lines(ax)["model"].get_marker() == "."


def test_error_by_horizon_is_the_mae_per_step():
    pred, _ = frame(50, 7)
    ax = pp.error_by_horizon_figure(pred).axes[0]
    drawn = lines(ax)
    assert set(drawn) == {"model", *BASELINES}
    for col, label in [("prediction", "model"), *((b, b) for b in BASELINES)]:
        by_hand = [np.mean(np.abs(g[col] - g["target"])) for _, g in pred.groupby("horizon")]
        np.testing.assert_allclose(drawn[label].get_ydata(), by_hand)
        assert list(drawn[label].get_xdata()) == list(range(1, 8))
    assert ax.get_title() == "Error by horizon (50 test origins)"


def test_monthly_forecast_uses_the_given_dates():
    months = pd.date_range("2010-01-01", periods=120, freq="MS")
    future = {"history": np.arange(120.0), "dates": pd.Series(months), "freq": "MS"}
    ahead = pd.date_range("2020-01-01", periods=24, freq="MS")
    fc = pd.DataFrame({"horizon": np.arange(1, 25), "date": ahead.strftime("%Y-%m-%d"), "forecast": np.ones(24)})
    ax = pp.forecast_figure(fc, future).axes[0]
    drawn = lines(ax)
    assert list(drawn["forecast"].get_xdata()) == list(ahead.to_numpy())
    assert list(drawn["history"].get_xdata()) == list(months.to_numpy())
    lo, hi = (mdates.num2date(v) for v in ax.get_xlim())
    assert (hi.year - lo.year) * 12 + hi.month - lo.month > 120 + 23  # history and forecast on one axis
    # no date column: the dates follow from the data's frequency
    implied = lines(pp.forecast_figure(fc.drop(columns="date"), future).axes[0])["forecast"]
    assert list(implied.get_xdata()) == list(ahead.to_numpy())
    # no dates at all: steps from the end of the data
    plain = lines(pp.forecast_figure(fc.drop(columns="date"), {"history": np.arange(120.0)}).axes[0])
    assert list(plain["forecast"].get_xdata()) == list(range(1, 25))
    assert list(plain["history"].get_xdata()) == list(range(-119, 1))


@pytest.mark.slow  # an old file layout drawn again; the current layout stays fast
def test_run_plots_of_an_older_predictions_file(tmp_path):
    """Today's predictions.csv (naive_last, seasonal_naive_5, no date/step) still draws both plots."""
    pred, _ = frame(3, 3)
    pred = pred.drop(columns=BASELINES[2:]).rename(columns={"naive": "naive_last",
                                                            "seasonal_naive": "seasonal_naive_5"})
    made = save_run_plots(tmp_path, [], [], 1, predictions=pred)
    assert [p.name for p in made] == ["predictions.png", "error_by_horizon.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in made)
    fig = pp.predictions_figure(pred)
    assert {"naive_last", "seasonal_naive_5"} <= {t.get_text() for t in fig.legends[0].get_texts()}
    assert lines(fig.axes[0])["model"].get_xdata().tolist() == [1, 2, 3]
    one, _ = frame(5, 1)  # one step: the report's metrics table already compares the MAEs
    assert [p.name for p in save_run_plots(tmp_path / "h1", [], [], 1, predictions=one)] == ["predictions.png"]
