"""The calendar of a dated series (rnnlab/data/calendar.py): frequency, future dates, season, labels."""

from __future__ import annotations

import pandas as pd
import pytest

from rnnlab.data import calendar as cal


@pytest.mark.parametrize("alias, freq, season, future", [
    ("MS", "MS", 12, ["2024-05-01", "2024-06-01", "2024-07-01"]),
    ("ME", "ME", 12, ["2024-05-31", "2024-06-30", "2024-07-31"]),
    ("YS", "YS-JAN", 0, ["2061-01-01", "2062-01-01", "2063-01-01"]),
    ("QS", "QS-JAN", 4, ["2031-01-01", "2031-04-01", "2031-07-01"]),
    ("D", "D", 7, ["2021-02-10", "2021-02-11", "2021-02-12"]),
    ("W-SUN", "W-SUN", 52, ["2021-10-10", "2021-10-17", "2021-10-24"]),
])
def test_regular_series(alias, freq, season, future):
    dates = pd.date_range("2021-01-01", periods=40, freq=cal.offset(alias))
    assert cal.infer_freq(dates) == (freq, "inferred")
    assert cal.default_season(freq) == season
    assert cal.iso(cal.future_dates(dates[-1], 3, freq), freq) == future


def test_business_days_with_holidays_are_business_daily():
    # pandas' infer_freq gives up on gaps; the S&P 500 has about 9 holidays a year
    dates = pd.bdate_range("2020-01-01", periods=300).delete([10, 50, 120, 200])
    assert pd.infer_freq(dates) is None
    assert cal.infer_freq(dates) == ("B", "inferred")
    assert cal.default_season("B") == 5
    friday = pd.Timestamp("2021-01-08")
    assert cal.iso(cal.future_dates(friday, 2, "B"), "B") == ["2021-01-11", "2021-01-12"]


def test_monthly_series_with_a_missing_month_stays_monthly():
    dates = pd.date_range("2000-01-01", periods=60, freq="MS").delete([17])
    assert cal.infer_freq(dates) == ("MS", "inferred")


def test_hourly_series_has_a_daily_season_and_timestamps():
    dates = pd.date_range("2021-03-01", periods=50, freq="h")
    freq, _ = cal.infer_freq(dates)
    assert freq == "h" and cal.default_season(freq) == 24
    assert cal.iso(cal.future_dates(dates[-1], 2, freq), freq) == ["2021-03-03 02:00:00", "2021-03-03 03:00:00"]


def test_irregular_series_uses_the_median_step():
    dates = pd.to_datetime(["2020-01-01", "2020-01-03", "2020-01-05", "2020-01-08", "2020-01-10", "2020-01-13"])
    assert cal.infer_freq(dates) == ("2D", "median step")
    assert cal.default_season("2D") == 0
    assert cal.iso(cal.future_dates(dates[-1], 2, "2D"), "2D") == ["2020-01-15", "2020-01-17"]


@pytest.mark.parametrize("alias, canonical", [("M", "ME"), ("H", "h"), ("A", "YE-DEC"), ("Q", "QE-DEC"),
                                              ("ME", "ME"), ("MS", "MS"), ("B", "B"), ("15min", "15min")])
def test_aliases_in_either_pandas_spelling(alias, canonical):
    assert cal.offset(alias).freqstr == canonical


def test_unknown_alias_is_one_line():
    with pytest.raises(ValueError, match=r"^'fortnight' is not a pandas frequency alias \(e.g. D, B, W, MS") as exc:
        cal.offset("fortnight")
    assert "\n" not in str(exc.value)


def test_semi_monthly_has_24_steps_a_year():
    """Twice a month is 24 steps a year (it was given the monthly 12, a half-year lag)."""
    assert cal.default_season("SMS") == cal.default_season("SME") == 24
    assert cal.default_season("MS") == 12
