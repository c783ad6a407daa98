"""Forecasting baselines: naive, seasonal naive, drift, mean and an automatic ETS model.

Every baseline is fitted on `history`, the series before the first origin of the split it
is scored on, and then forecasts from any origin o with its parameters fixed, using the
observations series[:o] (what the model's input window sees as well). So nothing after the
first test origin changes a parameter, and nothing after an origin changes its forecast.

Adding a baseline is one registered function: `BASELINES[name] = fit(history, season)`,
returning an object with `forecast(series, origins, horizon) -> (N, horizon)`, or None when
the baseline does not apply (seasonal naive without a season, ETS that could not be fitted);
a `label` attribute names the model it chose (ETS). `origins[i]` is the index in `series` of
window i's first target.

NumPy only; statsmodels (ETS) is imported inside the ETS fit.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Fitted(Protocol):
    def forecast(self, series: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray: ...


BASELINES: dict[str, Callable[[np.ndarray, int | None], Fitted | None]] = {}

# The split whose first origin ends the history a split's forecasts are fitted on: the test
# forecasts see nothing from the test period; train and val rows (val is where models are
# chosen, and cross-validation folds re-split train + val) nothing from the val period on.
FIT_BEFORE = {"train": "val", "val": "val", "test": "test"}


def baseline(name: str):
    def register(fit):
        BASELINES[name] = fit
        return fit
    return register


def _steps(horizon: int) -> np.ndarray:
    return np.arange(1, horizon + 1)


def _seasonal_back(origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(N, h) index of the value one or more whole seasons before each target, the latest observed."""
    h = _steps(horizon)
    return origins[:, None] - 1 + h - season * np.ceil(h / season).astype(int)


@dataclass(frozen=True)
class Naive:
    def forecast(self, series, origins, horizon):
        return np.repeat(series[origins - 1][:, None], horizon, axis=1)


@dataclass(frozen=True)
class SeasonalNaive:
    season: int

    def forecast(self, series, origins, horizon):
        # before a full season is observed, the first value stands in
        return series[np.maximum(_seasonal_back(origins, horizon, self.season), 0)]


@dataclass(frozen=True)
class Drift:
    slope: float  # Hyndman's drift: (last - first) / (n - 1) of the history

    def forecast(self, series, origins, horizon):
        return series[origins - 1][:, None] + self.slope * _steps(horizon)


@dataclass(frozen=True)
class Mean:
    value: float

    def forecast(self, series, origins, horizon):
        return np.full((len(origins), horizon), self.value)


@baseline("naive")
def fit_naive(history, season):
    return Naive()


@baseline("seasonal_naive")
def fit_seasonal_naive(history, season):
    return SeasonalNaive(int(season)) if season and season > 1 else None


@baseline("drift")
def fit_drift(history, season):
    return Drift(float((history[-1] - history[0]) / (len(history) - 1)) if len(history) > 1 else 0.0)


@baseline("mean")
def fit_mean(history, season):
    return Mean(float(np.mean(history)))


# ------------------------------------------------------------------------------------- ETS

# ETS is fitted on the last ETS_MAX_HISTORY points of the history: a fit's time grows with the
# length times the season (a season-24 fit on 8,000 points takes ~5 s, on 2,000 ~1 s; a
# non-seasonal fit on the whole S&P history ~0.03 s), and 2,000 points pin down a few smoothing
# parameters well. Seasonal models only up to ETS_MAX_SEASON (as R's forecast::ets): every
# season step is an initial state to estimate.
ETS_MAX_HISTORY = 2000
ETS_MAX_SEASON = 24


def ets_candidates(history: np.ndarray, season: int | None) -> list[dict]:
    """The models of the AICc search: trend none / additive / additive damped, times seasonality
    none, additive (a season > 1 with two full seasons of history) and multiplicative (with
    multiplicative error, the stable form) when the series is strictly positive."""
    seasonals = [None]
    if season and 1 < season <= ETS_MAX_SEASON and len(history) >= 2 * season:
        seasonals += ["add"] + (["mul"] if np.all(history > 0) else [])
    return [{"error": "mul" if s == "mul" else "add", "trend": trend, "damped_trend": damped, "seasonal": s,
             "seasonal_periods": season if s else None}
            for s in seasonals for trend, damped in ((None, False), ("add", False), ("add", True))]


@dataclass(frozen=True)
class ETS:
    spec: tuple  # ETSModel keyword arguments, as sorted (key, value) pairs
    names: tuple[str, ...]  # statsmodels' parameter names: smoothing, damping, initial states
    params: tuple[float, ...]
    start: int  # the index in the series where the fit's data began (its initial states precede it)
    aicc: float

    @property
    def label(self) -> str:
        """Hyndman's short name of the chosen model, e.g. ETS(A,Ad,N)."""
        s = dict(self.spec)
        trend = {None: "N", "add": "A"}[s["trend"]] + ("d" if s["damped_trend"] else "")
        return f"ETS({s['error'][0].upper()},{trend},{(s['seasonal'] or 'N')[0].upper()})"

    def forecast(self, series, origins, horizon):
        """Point forecasts from each origin with the states filtered through series[:origin].

        The filter starts where the fit's data did, from the fitted initial states, so the forecast
        from the end of the fit's data equals statsmodels' own. Origins before that start (train rows
        of a series longer than ETS_MAX_HISTORY) get no forecast (NaN): the initial states belong to
        the start, and filtering from the series' first value with them would be out of season and
        level. Cross-validation refits the baselines before each fold's validation rows, so the rows
        that are scored always lie after the start.
        """
        origins = np.asarray(origins)
        out = np.full((len(origins), horizon), np.nan)
        rows = origins >= self.start
        if rows.any():
            out[rows] = self._forecast_from(series, origins[rows], horizon, self.start)
        return out

    def _forecast_from(self, series, origins, horizon, a):
        spec, named = dict(self.spec), dict(zip(self.names, self.params, strict=True))
        data = series[a:]
        if "mul" in (spec["error"], spec["seasonal"]) and np.any(data <= 0):
            # statsmodels filters a multiplicative model through positive values only: no forecast (NaN)
            # from an origin after the first value <= 0
            data = data[: np.argmax(data <= 0)]
        states = self._filter(data, spec)
        # row k of these: the states after observing series[a + k - 1]; row 0 the initial states
        level = np.r_[named["initial_level"], states[:, 0]]
        out = np.full((len(origins), horizon), np.nan)
        ok = origins - a < len(level)
        origins, j, h = origins[ok], origins[ok] - a, _steps(horizon)
        f = np.repeat(level[j][:, None], horizon, axis=1)
        if spec["trend"]:
            trend = np.r_[named["initial_trend"], states[:, 1]]
            steps = np.cumsum(named["damping_trend"] ** h) if spec["damped_trend"] else h
            f = f + trend[j][:, None] * steps
        if spec["seasonal"]:
            m = spec["seasonal_periods"]
            # the initial seasonal states in time order (s[a-m] .. s[a-1]); statsmodels lists them newest first
            first = [named[f"initial_seasonal.{i}"] for i in range(m)][::-1]
            seasonal = np.r_[first, states[:, -1]]
            s = seasonal[_seasonal_back(origins, horizon, m) - a + m]
            f = f + s if spec["seasonal"] == "add" else f * s
        out[ok] = f
        return out

    def _filter(self, data: np.ndarray, spec: dict) -> np.ndarray:
        """The states after each value of `data`, with the fitted parameters: no refit. It runs to the end
        of the data (a seasonal ETSModel refuses less than two seasons), but the states after series[o-1]
        depend on series[:o] only, and those are all a forecast from o reads. No rows when it cannot run."""
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        try:
            with np.errstate(all="ignore"):
                _, states = ETSModel(data, **spec).smooth(np.asarray(self.params), return_raw=True)
        except ValueError:  # too short for the model (the filter from the series' start, cut by a value <= 0)
            return np.empty((0, 3))
        return np.asarray(states)


# The searches of this process by what they saw: the folds of `rnnlab cv` and the trials of `rnnlab
# search` load the same series again and again, and a search takes a second or two.
_ETS_SEARCHES: OrderedDict[tuple, ETS | None] = OrderedDict()
ETS_SEARCHES_KEPT = 16


@baseline("ets")
def fit_ets(history, season):
    """The ETS model with the lowest AICc among `ets_candidates` (fitted by statsmodels, L-BFGS)."""
    start = max(0, len(history) - ETS_MAX_HISTORY)
    y = np.ascontiguousarray(history[start:], dtype=np.float64)
    candidates = ets_candidates(y, season)
    key = (start, hashlib.blake2b(y.tobytes(), digest_size=16).hexdigest(), repr(candidates))
    if key not in _ETS_SEARCHES:
        _ETS_SEARCHES[key] = _search_ets(y, candidates, start)
        while len(_ETS_SEARCHES) > ETS_SEARCHES_KEPT:
            _ETS_SEARCHES.popitem(last=False)
    return _ETS_SEARCHES[key]


def _search_ets(y: np.ndarray, candidates: list[dict], start: int) -> ETS | None:
    from statsmodels.tools.eval_measures import aicc
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from threadpoolctl import threadpool_limits

    best = None
    # One BLAS thread: L-BFGS's tiny vector operations gain nothing from more, and with another process
    # on a core each waits for a descheduled thread (a 9-candidate search on 100 points: 4 s, not 0.5 s).
    with threadpool_limits(1, user_api="blas"):
        for spec in candidates:
            # A candidate that cannot be fitted (too short, a flat series) is skipped; convergence warnings
            # are the optimizer's business, not the user's.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                try:
                    model = ETSModel(y, **spec)
                    params = model.fit(disp=False, return_params=True)
                    score = aicc(model.loglike(params), len(y), model.k_params + 1)
                except (ValueError, ArithmeticError, np.linalg.LinAlgError):
                    continue
            if np.all(np.isfinite(params)) and np.isfinite(score) and (best is None or score < best.aicc):
                best = ETS(tuple(sorted(spec.items())), tuple(model.param_names), tuple(map(float, params)), start,
                           float(score))
    return best


# ------------------------------------------------------------------------------------- use


def fit(names: list[str], history: np.ndarray, season: int | None) -> dict[str, Fitted]:
    """The named baselines fitted on the history; those that do not apply are left out."""
    fitted = {name: BASELINES[name](history, season) for name in names}
    return {name: f for name, f in fitted.items() if f is not None}


def wanted(cfg) -> list[str]:
    """The baselines a loader fits: data.baselines, none for data.strategy=stream (its one-step report has its
    own, and the per-window forecasts would be dropped: ETS alone takes seconds on a long series)."""
    return [] if getattr(cfg, "strategy", "direct") == "stream" else list(cfg.baselines)


def split_forecasts(series: np.ndarray, origins: dict[str, np.ndarray], horizon: int, season: int | None,
                    names: list[str] | None = None) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """({name: {split: (N, horizon)}}, {name: label}) for the splits in `origins`.

    Each split's forecasts come from the parameters fitted before the first origin of
    FIT_BEFORE[split], so the test forecasts see no test data. The labels name the model a
    baseline chose for the test forecasts (ETS: e.g. ETS(A,Ad,N)).
    """
    series = np.asarray(series, dtype=np.float64)
    names = list(BASELINES) if names is None else names
    fits: dict[int, dict[str, Fitted]] = {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for split, o in origins.items():
        cut = int(np.min(origins[FIT_BEFORE[split]]))
        if cut not in fits:
            fits[cut] = fit(names, series[:cut], season)
        for name, f in fits[cut].items():
            out.setdefault(name, {})[split] = f.forecast(series, np.asarray(o), horizon)
    # a baseline fitted for one cut but not the other (ETS on a short val history) has holes: drop it
    out = {name: parts for name, parts in out.items() if parts.keys() == origins.keys()}
    test_fits = fits[int(np.min(origins[FIT_BEFORE["test"]]))] if "test" in origins else {}
    labels = {name: f.label for name, f in test_fits.items() if name in out and hasattr(f, "label")}
    return out, labels


def refit_dev(baselines: dict[str, dict[str, np.ndarray]], series: np.ndarray, dev_origins: np.ndarray,
              n_train: int, val_rows: np.ndarray, horizon: int, season: int | None,
              names: list[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """A cross-validation fold's baselines: the train and val forecasts of the development rows (the
    loader's train rows, then its val rows: `dev_origins`) with the parameters fitted on the series
    before the first origin of the fold's validation rows, so no fold validates baselines fitted on its
    own validation period; the test forecasts are kept. A baseline that cannot be fitted there is left out."""
    series = np.asarray(series, dtype=np.float64)
    fitted = fit(list(baselines) if names is None else [n for n in names if n in baselines],
                 series[: int(np.min(dev_origins[val_rows]))], season)
    out = {}
    for name, f in fitted.items():
        dev = f.forecast(series, dev_origins, horizon)
        out[name] = {**baselines[name], "train": dev[:n_train], "val": dev[n_train:]}
    return out


def mase_scale(history: np.ndarray, season: int | None) -> float | None:
    """In-sample MAE of the seasonal naive forecast (lag = season, or 1 without one) over the history:
    the denominator of MASE (Hyndman & Koehler 2006). None when the history is not longer than the lag."""
    lag = int(season) if season and season > 1 else 1
    history = np.asarray(history, dtype=np.float64)
    if len(history) <= lag:
        return None
    return float(np.mean(np.abs(history[lag:] - history[:-lag])))
