"""The calendar of a dated series: its frequency, the dates past its end, its season, its date labels.

`infer_freq` reads the frequency off the dates: pandas' `infer_freq` for a perfectly regular
series, else the calendar step that explains nearly all steps (business days with market
holidays, a monthly series with a missing month), else the median step. Frequencies are
pandas offset aliases (D, B, W-SUN, MS, ME, QS-JAN, YE-DEC, h, ...); the older spellings
(M, Q, A, Y, H, T, S) are accepted for whichever pandas is installed.

pandas is imported inside the functions: the config validates `data.freq` with `offset`.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

# A calendar step explains the series when it takes this share of its steps (the S&P 500
# has about 9 holidays in 252 trading days: 96 % of its steps are one business day).
SHARE = 0.9
# Old and new spellings of the same offsets (pandas 2.2 renamed M to ME, H to h, ...).
_RENAMED = {"M": "ME", "Q": "QE", "A": "YE", "Y": "YE", "BM": "BME", "BQ": "BQE", "BA": "BYE", "BY": "BYE",
            "AS": "YS", "BAS": "BYS", "H": "h", "BH": "bh", "T": "min", "S": "s", "L": "ms", "U": "us", "N": "ns"}
_OLD = {new: old for old, new in _RENAMED.items() if old not in ("A", "AS", "BA", "BAS")}
EXAMPLES = "D, B, W, MS, ME, QS, QE, YS, YE or h"


def offset(alias: str):
    """The pandas offset of a frequency alias, in either pandas spelling; ValueError (one line) if none."""
    from pandas.tseries.frequencies import to_offset

    text = str(alias).strip()
    m = re.fullmatch(r"(\d*)([A-Za-z]+)(-\w+)?", text)
    spellings = [text]
    if m:
        count, head, anchor = m.groups()
        spellings += [f"{count}{other}{anchor or ''}" for other in (_RENAMED.get(head), _OLD.get(head)) if other]
    for spelling in spellings:
        try:
            with warnings.catch_warnings():  # the deprecated spellings warn on pandas 2.2
                warnings.simplefilter("ignore")
                return to_offset(spelling)
        except ValueError:
            continue
    raise ValueError(f"'{alias}' is not a pandas frequency alias (e.g. {EXAMPLES})")


def infer_freq(dates) -> tuple[str | None, str | None]:
    """(alias, how) of sorted, distinct dates; how is "inferred" or "median step"; (None, None) for one date."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    idx = pd.DatetimeIndex(dates)
    if len(idx) < 2:
        return None, None
    if len(idx) >= 3:
        with warnings.catch_warnings():  # pandas 3 announces an offset instead of a string
            warnings.simplefilter("ignore")
            found = pd.infer_freq(idx)
        if found is not None:
            return getattr(found, "freqstr", found), "inferred"
    alias = _dominant_step(idx)
    if alias is not None:
        return alias, "inferred"
    step = pd.Series(idx).diff().median()
    if step % pd.Timedelta(days=1) == pd.Timedelta(0):
        return f"{step.days}D", "median step"
    return to_offset(step).freqstr, "median step"


def _candidates(first):
    """Calendar steps a series starting at `first` may follow, anchored on its first date."""
    import pandas as pd

    o, quarter = pd.offsets, (first.month - 1) % 3 + 1
    return [o.BDay(), o.Day(), o.Week(weekday=first.weekday()), o.MonthBegin(), o.MonthEnd(), o.BMonthEnd(),
            o.QuarterBegin(startingMonth=quarter), o.QuarterEnd(startingMonth=quarter),
            o.YearBegin(month=first.month), o.YearEnd(month=first.month), o.Hour()]


def _dominant_step(idx) -> str | None:
    """The calendar step that takes at least SHARE of the steps (the best one), else None."""
    best, best_share = None, SHARE
    for off in _candidates(idx[0]):
        with warnings.catch_warnings():  # some offsets are not vectorized and say so
            warnings.simplefilter("ignore")
            share = float(np.mean(idx[:-1] + off == idx[1:]))
        if share >= best_share and (best is None or share > best_share):
            best, best_share = off, share
    return None if best is None else best.freqstr


def future_dates(last, n: int, freq: str):
    """The n dates after `last` on the calendar of `freq` (a DatetimeIndex)."""
    import pandas as pd

    off = offset(freq)
    return pd.date_range(pd.Timestamp(last) + off, periods=n, freq=off)


def default_season(freq: str | None) -> int:
    """Season length of a frequency: 7 daily, 5 business-daily, 52 weekly, 24 semi-monthly, 12 monthly,
    4 quarterly, 24 hourly; 0 (none) for yearly and anything else."""
    import pandas as pd

    if not freq:
        return 0
    off, o = offset(freq), pd.offsets
    if off.n != 1:  # every other day has no weekly season of 7 steps
        return 0
    kinds = ((o.BusinessDay, 5), (o.Day, 7), (o.Week, 52), (o.Hour, 24),
             ((o.SemiMonthBegin, o.SemiMonthEnd), 24),  # two steps a month: a year is 24
             ((o.MonthBegin, o.MonthEnd, o.BusinessMonthBegin, o.BusinessMonthEnd), 12),
             ((o.QuarterBegin, o.QuarterEnd, o.BQuarterBegin, o.BQuarterEnd), 4))
    for kind, season in kinds:
        if isinstance(off, kind):
            return season
    return 0


def sub_daily(freq: str | None) -> bool:
    """True when the steps are shorter than a day (hours, minutes, ...)."""
    import pandas as pd

    if not freq:
        return False
    off = offset(freq)
    try:
        return pd.Timedelta(off) < pd.Timedelta(days=1)
    except (TypeError, ValueError):  # calendar offsets (months, business days) have no fixed length
        return False


def iso(dates, freq: str | None = None) -> list[str]:
    """ISO labels: YYYY-MM-DD for daily and coarser data, the full timestamp below a day (or when the times vary)."""
    import pandas as pd

    idx = pd.DatetimeIndex(dates)
    if sub_daily(freq) or not (idx == idx.normalize()).all():
        return list(idx.strftime("%Y-%m-%d %H:%M:%S"))
    return list(idx.strftime("%Y-%m-%d"))
