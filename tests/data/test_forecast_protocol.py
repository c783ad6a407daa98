"""Issue 15: the forecasting protocol (test/validation parts by size, date or file), the series' calendar
(frequency, season, dates of predictions.csv and forecast.csv), duplicate dates and infinite cells."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rnnlab.config.schema import CsvConf, SineConf
from rnnlab.data import registry, sine
from rnnlab.data import timeseries as ts
from rnnlab.data.base import DataError
from rnnlab.engine import model as M
from rnnlab.train.tasks import reports


def _csv(tmp_path, n=120, freq="MS", start="2000-01-01", name="series.csv", seed=0):
    dates = pd.date_range(start, periods=n, freq=freq)
    value = 100 + np.cumsum(np.random.default_rng(seed).standard_normal(n))
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d %H:%M:%S" if freq == "h" else "%Y-%m-%d"),
                          "Close": value})
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path, frame


SEASONAL = ["naive", "seasonal_naive"]  # not ETS: a second of fits a load (tests/data/test_baselines.py has it)


def _load(path, **kw):
    return registry.load(CsvConf(path=str(path), **{"n_in": 12, "n_out": 6, "baselines": SEASONAL, **kw}),
                         np.random.default_rng(0), np.float32)


# ----------------------------------------------------------------------------- the calendar


def test_monthly_series_has_monthly_dates_and_season(tmp_path):
    path, _ = _csv(tmp_path, freq="MS")
    d = _load(path)
    assert (d.meta["freq"], d.meta["freq_source"], d.meta["seasonal_period"]) == ("MS", "inferred", 12)
    assert set(d.baselines) == {"naive", "seasonal_naive"} and d.mase_scale is not None
    assert d.future["freq"] == "MS" and d.sample_unit == "windows"


def test_yearly_series_has_no_season(tmp_path):
    path, _ = _csv(tmp_path, n=80, freq="YS", start="1940-01-01")
    d = _load(path, n_in=5, n_out=2)
    assert (d.meta["freq"], d.meta["seasonal_period"]) == ("YS-JAN", 0)
    assert set(d.baselines) == {"naive"}


def test_business_days_with_holidays_keep_a_weekly_season(tmp_path):
    path, frame = _csv(tmp_path, n=300, freq="B")
    frame.drop(index=[20, 90, 150, 230]).to_csv(path, index=False)  # market holidays
    d = _load(path)
    assert (d.meta["freq"], d.meta["freq_source"], d.meta["seasonal_period"]) == ("B", "inferred", 5)


def test_hourly_series_has_a_daily_season(tmp_path):
    path, _ = _csv(tmp_path, n=200, freq="h")
    d = _load(path)
    assert (d.meta["freq"], d.meta["seasonal_period"]) == ("h", 24)
    assert d.meta["test_first_origin"] == "2000-01-08 01:00:00"  # full timestamps below a day


def test_freq_and_season_options(tmp_path):
    path, _ = _csv(tmp_path, freq="MS")
    d = _load(path, freq="QS", seasonal_period=3)
    assert (d.meta["freq"], d.meta["freq_source"], d.meta["seasonal_period"]) == ("QS-JAN", "data.freq", 3)
    assert set(_load(path, seasonal_period=0).baselines) == {"naive"}
    undated = _load(path, date_column=None, freq="MS")
    assert (undated.meta["freq"], undated.meta["seasonal_period"], undated.future["dates"]) == ("MS", 12, None)
    assert _load(path, date_column=None).meta["seasonal_period"] == 0


def _tiny_task(data):
    spec = M.ModelSpec(cell="gru", input_size=data.input_size, hidden_size=4, output_size=data.output_size)
    return SimpleNamespace(spec=spec, data=data), M.init_params(spec, np.random.default_rng(0), dtype=np.float32)


@pytest.mark.parametrize("freq, start, first, last", [("MS", "2000-01-01", "2010-01-01", "2011-12-01"),
                                                      ("YS", "1910-01-01", "2030-01-01", "2053-01-01")])
def test_forecast_csv_follows_the_series_calendar(tmp_path, freq, start, first, last):
    path, _ = _csv(tmp_path, n=120, freq=freq, start=start)  # ends 2009-12 (months) or 2029 (years)
    d = _load(path, n_in=10, n_out=24, test_size=24, val_size=24)
    task, params = _tiny_task(d)
    f = reports.forecast(task, params, None)
    assert list(f.columns) == ["horizon", "date", "forecast"]
    # was business days after the last date: two years of months within December and January
    assert f["date"].iloc[0] == first and f["date"].iloc[-1] == last and f["date"].is_unique


# ----------------------------------------------------------------------------- predictions.csv


def test_predictions_carry_the_target_dates(tmp_path):
    path, frame = _csv(tmp_path, freq="MS")
    d = _load(path, test_size=8, n_out=3)  # 6 origins
    y = d.targets_original("test")
    p = reports.predictions_frame(d, y, y + 1)
    assert list(p.columns) == ["sample", "horizon", "date", "target", "prediction", "naive", "seasonal_naive"]
    assert len(p) == 6 * 3
    last = p[p["sample"] == 5]
    assert last["date"].tolist() == frame["Date"].iloc[-3:].tolist() == ["2009-10-01", "2009-11-01", "2009-12-01"]
    # the file's values exactly, not a float32 round trip through the scaler (538.2 came back as 538.2000003)
    np.testing.assert_array_equal(last["target"], frame["Close"].iloc[-3:])
    by_date = dict(zip(frame["Date"], frame["Close"], strict=True))
    np.testing.assert_array_equal(p["target"], p["date"].map(by_date))  # every row's date is its target's


def test_sine_predictions_carry_the_target_steps():
    d = sine.load(SineConf(length=300, n_in=10, n_out=3, test_size=5, baselines=["naive"]), np.random.default_rng(0))
    y = d.targets_original("test")
    p = reports.predictions_frame(d, y, y)
    assert list(p.columns) == ["sample", "horizon", "step", "target", "prediction", "naive"]
    assert p["step"].tolist() == [295, 296, 297, 296, 297, 298, 297, 298, 299]
    series = sine.make_series(300, [25.0, 60.0, 110.0], [1.0, 0.5, 0.3], 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(p["target"], series[p["step"]])  # the series' values, exactly


# ----------------------------------------------------------------------------- the split protocol


@pytest.mark.parametrize("transform", ["none", "diff"])
def test_test_size_n_out_is_one_origin_on_the_last_rows(tmp_path, transform):
    path, frame = _csv(tmp_path)
    d = _load(path, test_size=6, transform=transform)
    assert len(d.test) == 1 and d.meta["test_origins"] == 1
    np.testing.assert_array_equal(d.targets_original("test")[0], frame["Close"].iloc[-6:])
    assert d.meta["test_first_origin"] == "2009-06-01" and d.meta["test_first_target"] == "2009-07-01"


def test_sizes_count_file_rows_and_give_size_minus_n_out_plus_one_origins(tmp_path):
    path, frame = _csv(tmp_path)
    d = _load(path, test_size=10, val_size=8, transform="log_returns")
    assert (len(d.test), len(d.val)) == (10 - 6 + 1, 8 - 6 + 1)
    assert (d.meta["test_origins"], d.meta["val_origins"]) == (5, 3)
    close = frame["Close"].to_numpy()
    np.testing.assert_allclose(d.targets_original("val")[-1], close[-16:-10], rtol=1e-6)  # right before test
    np.testing.assert_allclose(d.targets_original("test")[0], close[-10:-4], rtol=1e-6)
    # the training windows' targets all come before the validation part (rows -18 on)
    assert d.targets_original("train")[-1][-1] == pytest.approx(close[-19], rel=1e-6)


def test_test_start_and_val_start_are_first_target_dates(tmp_path):
    path, frame = _csv(tmp_path)
    d = _load(path, test_start="2008-07-01", val_start="2007-01-01")
    assert d.meta["test_first_target"] == "2008-07-01"
    assert len(d.test) == 18 - 6 + 1  # 2008-07 .. 2009-12
    assert len(d.val) == 18 - 6 + 1  # 2007-01 .. 2008-06
    y = d.targets_original("test")
    p = reports.predictions_frame(d, y, y)
    assert p["date"].iloc[0] == "2008-07-01" and p["date"].iloc[-1] == "2009-12-01"
    # a date between two rows: the part starts at the next row
    assert _load(path, test_start="2008-06-15").meta["test_first_target"] == "2008-07-01"


def test_test_path_is_the_test_part(tmp_path):
    path, frame = _csv(tmp_path, n=100)
    test_path, test = _csv(tmp_path, n=12, start="2008-05-01", name="future.csv", seed=1)
    d = _load(path, test_path=str(test_path), scale=False)
    assert len(d.test) == 12 - 6 + 1 and d.meta["test_first_target"] == "2008-05-01"
    np.testing.assert_allclose(d.targets_original("test")[0], test["Close"].iloc[:6], rtol=1e-6)
    # the first test window's input is the main file's last n_in rows
    np.testing.assert_allclose(d.test.x[0, :, 0], frame["Close"].iloc[-12:], rtol=1e-6)
    assert d.future["dates"].iloc[-1] == pd.Timestamp("2009-04-01")  # forecast past the test file


def test_recursive_training_windows_reach_the_validation_part(tmp_path):
    path, frame = _csv(tmp_path)
    direct, rec = _load(path, val_size=12, test_size=12), _load(path, val_size=12, test_size=12,
                                                                   strategy="recursive")
    # 120 rows, validation from row 96: direct windows need all 6 targets before it, recursive only the first
    assert len(direct.train) == 96 - 12 - 6 + 1
    assert len(rec.train) == 96 - 12 == len(direct.train) + 5
    assert rec.targets_original("train")[-1][0] == pytest.approx(frame["Close"].iloc[95], rel=1e-6)
    assert (len(rec.val), len(rec.test)) == (len(direct.val), len(direct.test))


# ----------------------------------------------------------------------------- bad data


def test_infinite_cells_name_their_rows(tmp_path):
    path, frame = _csv(tmp_path)
    bad = frame.astype({"Close": object})
    bad.loc[[3, 40], "Close"] = ["inf", "-inf"]
    bad.to_csv(path, index=False)
    with pytest.raises(DataError) as exc:
        _load(path)
    assert str(exc.value) == "series.csv: infinite values in rows 5, 42 (file line numbers)"


def test_duplicate_dates_are_refused_or_aggregated(tmp_path):
    path, frame = _csv(tmp_path)
    dup = pd.concat([frame.iloc[:50], frame.iloc[[49]].assign(Close=1.0), frame.iloc[50:]], ignore_index=True)
    dup.to_csv(path, index=False)
    with pytest.raises(DataError) as exc:
        _load(path)
    assert str(exc.value) == ("series.csv: duplicate dates 2004-02-01 (rows 51, 52) (set data.duplicates to mean, "
                              "last, first or sum to aggregate them)")
    first = frame["Close"].iloc[49]
    for policy, value in (("mean", (first + 1) / 2), ("last", 1.0), ("first", first), ("sum", first + 1)):
        table, dates = ts.read_table(path, "Date", ["Close"], "error", policy)
        assert len(table) == 120 and dates.is_unique
        assert table["Close"].iloc[49] == pytest.approx(value), policy


@pytest.mark.parametrize("kw, message", [
    ({"test_start": "2030-01-01"}, "data.test_start=2030-01-01 is after the last date (2009-12-01) of series.csv"),
    ({"test_start": "1999-01-01"}, "data.test_start=1999-01-01 is not after the first date (2000-01-01)"),
    ({"test_start": "2009-01-01", "val_start": "2009-06-01"},
     "data.val_start=2009-06-01 is not before the test part (data.test_start=2009-01-01) of series.csv"),
    ({"test_size": 130}, "data.test_size=130 leaves no rows to train on: series.csv has 120 rows"),
    ({"test_start": "2009-10-01"},
     "the test part has 3 rows (data.val_frac=0.15 (the default), data.test_start=2009-10-01), fewer than n_out=6"),
    ({"n_in": 100}, "series.csv is too short for n_in=100 + n_out=6 with data.val_frac=0.15 (the default), "
                    "data.test_frac=0.15 (the default): the train split has no windows"),
])
def test_unusable_parts_are_one_line(tmp_path, kw, message):
    path, _ = _csv(tmp_path)
    with pytest.raises(DataError) as exc:
        _load(path, **kw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_test_file_must_continue_the_series(tmp_path):
    path, _ = _csv(tmp_path, n=100)
    test_path, _ = _csv(tmp_path, n=12, start="2008-04-01", name="future.csv")
    with pytest.raises(DataError, match=r"^data.test_path future.csv must continue series.csv: its first date "
                                        r"2008-04-01 is not after series.csv's last date 2008-04-01$"):
        _load(path, test_path=str(test_path))


@pytest.mark.parametrize("kw, message", [
    ({"test_frac": 0.2, "test_size": 6}, "data.test_frac and data.test_size both state the test part"),
    ({"test_size": 6, "test_path": "x.csv"}, "data.test_size and data.test_path both state the test part"),
    ({"val_size": 6, "val_start": "2001-01-01"}, "data.val_size and data.val_start both state the val part"),
    ({"test_size": 5}, "data.test_size must be >= data.n_out=6, the targets of one window (got 5)"),
    ({"val_size": 2}, "data.val_size must be >= data.n_out=6"),
    ({"test_start": "someday"}, "data.test_start must be a date such as 2020-01-31 (got 'someday')"),
    ({"val_start": "2001-01-01", "date_column": None}, "data.val_start needs dates: set data.date_column"),
    ({"duplicates": "max"}, "data.duplicates must be one of error, mean, last, first, sum (got 'max')"),
    ({"duplicates": "mean", "date_column": None}, "data.duplicates aggregates rows of one date"),
    ({"freq": "fortnightly"}, "data.freq: 'fortnightly' is not a pandas frequency alias"),
    ({"seasonal_period": -1}, "data.seasonal_period must be >= 0 (got -1)"),
    ({"val_frac": 0.5, "test_frac": 0.45}, "data.val_frac + data.test_frac must leave at least 10 % for training"),
])
def test_bad_options_are_one_line(kw, message):
    with pytest.raises(ValueError) as exc:
        CsvConf(path="x.csv", **{"n_in": 12, "n_out": 6, **kw})
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_sine_sizes_and_conflicts():
    d = sine.load(SineConf(length=300, n_in=10, n_out=4, test_size=4, val_size=10), np.random.default_rng(0))
    assert (len(d.test), len(d.val), d.meta["test_origins"], d.meta["test_first_origin"]) == (1, 7, 1, 295)
    with pytest.raises(ValueError, match="data.val_frac and data.val_size both state the val part"):
        SineConf(val_frac=0.1, val_size=20)


# ----------------------------------------------------------------------------- a run


def test_monthly_run_dates_predictions_and_forecast(tmp_path):
    import json

    from rnnlab import api

    path, frame = _csv(tmp_path, n=150, freq="ME")
    run_dir = tmp_path / "run"
    args = ["data=csv", f"data.path={path}", "data.n_in=12", "data.n_out=12", "data.test_size=12",
            "data.val_size=24", "arch.hidden_size=4", "train.epochs=1", "train.progress=false", "train.plots=false",
            "monitor=none", "data.baselines=[naive,seasonal_naive]"]
    assert api.train(args, run_dir).status == "completed"
    p = pd.read_csv(run_dir / "predictions.csv")
    assert list(p.columns) == ["sample", "horizon", "date", "target", "prediction", "naive", "seasonal_naive"]
    assert p["date"].tolist() == frame["Date"].iloc[-12:].tolist()  # one origin: the last 12 months
    f = pd.read_csv(run_dir / "forecast.csv")
    assert f["date"].tolist()[:3] == ["2012-07-31", "2012-08-31", "2012-09-30"]
    meta = json.loads((run_dir / "checkpoint" / "model.json").read_text())["data"]
    assert {k: meta[k] for k in ("freq", "freq_source", "seasonal_period", "test_origins", "val_origins")} == {
        "freq": "ME", "freq_source": "inferred", "seasonal_period": 12, "test_origins": 1, "val_origins": 13}


def test_conflicting_parts_exit_2_with_one_line(tmp_path, capsys):
    from rnnlab.commands.train import run

    path, _ = _csv(tmp_path)
    code = run(["data=csv", f"data.path={path}", "data.test_frac=0.2", "data.test_start=2009-01-01",
                f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and not (tmp_path / "run").exists()
    assert "data.test_frac and data.test_start both state the test part: give only one" in err
