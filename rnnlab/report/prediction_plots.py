"""Plots of a forecasting run: the test predictions, their error by horizon, the forecast past the data.

* predictions.png (`predictions_figure`): horizon 1, the test targets over every origin (the last
  MAX_POINTS when there are more) with the model and each baseline; horizon > 1, one panel per
  chosen origin (up to MAX_ORIGINS, evenly spread, the first and the last included) with the
  origin's whole trajectory: truth (and the steps before the origin when known), model, baselines.
* error_by_horizon.png (`error_by_horizon_figure`): MAE per horizon step of the model and each
  baseline over all test origins (drawn for h > 1: at one step the report's metrics table has them).
* forecast.png (`forecast_figure`): the last stretch of history and the forecast on one axis.

The frame is predictions.csv: sample (origin, time order), horizon (1..h), date (ISO) or step
(older files have neither), target, prediction, and every other numeric column a baseline.
The *_figure functions return the unsaved figure, so tests read what was drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.report.plots import plt, save_figure

KEYS = ("sample", "horizon", "date", "step", "target", "prediction")
MAX_POINTS = 2000  # horizon 1: the last this many test origins
MAX_ORIGINS = 6  # horizon > 1: panels
HISTORY_POINTS = 250  # forecast.png: history shown before the forecast


# ------------------------------------------------------------------------------ the frame


def baseline_columns(pred) -> list[str]:
    """Every numeric column that is not a key, target or prediction: the baselines, by whatever name."""
    import pandas as pd

    return [c for c in pred.columns if c not in KEYS and pd.api.types.is_numeric_dtype(pred[c])]


def time_axis(pred):
    """(x of each row, "date" | "step"), or (None, None) for older files without either column."""
    import pandas as pd

    if "date" in pred:
        return pd.to_datetime(pred["date"]).to_numpy(), "date"
    if "step" in pred:
        return pred["step"].to_numpy(), "step"
    return None, None


def pick_origins(origins, n: int = MAX_ORIGINS) -> np.ndarray:
    """Up to n of the distinct origins, evenly spread, the first and the last included."""
    u = np.unique(origins)
    if len(u) <= n:
        return u
    return u[np.unique(np.round(np.linspace(0, len(u) - 1, n)).astype(int))]


def mae_by_horizon(pred):
    """MAE per horizon (index 1..h) of the model and each baseline (columns), over all test origins."""
    cols = ["prediction", *baseline_columns(pred)]
    err = pred[cols].sub(pred["target"], axis=0).abs()
    return err.groupby(pred["horizon"]).mean().rename(columns={"prediction": "model"})


def truth_series(pred, future=None):
    """Known true values by date/step: every test target, plus the data's history where it agrees."""
    import pandas as pd

    x, kind = time_axis(pred)
    if kind is None:
        return None
    truth = pd.Series(pred["target"].to_numpy(), index=x).groupby(level=0).first()
    hist = _history(future, kind)
    if hist is not None:
        common = truth.index.intersection(hist.index)
        # the history is used only where it provably lines up with the targets (same x, same values)
        if len(common) and np.allclose(hist.loc[common], truth.loc[common], rtol=1e-6, equal_nan=True):
            truth = truth.combine_first(hist)
    return truth


def _history(future, kind):
    import pandas as pd

    if future is None or future.get("history") is None:
        return None
    levels = np.asarray(future["history"], dtype=np.float64)
    if kind == "step":
        return pd.Series(levels, index=np.arange(len(levels)))
    dates = future.get("dates")
    if dates is None or len(dates) != len(levels):
        return None
    return pd.Series(levels, index=pd.to_datetime(dates).to_numpy()).groupby(level=0).first()


# ------------------------------------------------------------------------------ drawing helpers


def _style(k: int) -> dict:
    """0 = the model, k >= 1 = the k-th baseline: the same colour in every plot of the run."""
    if k == 0:
        return {"color": "C0", "lw": 1.5, "zorder": 2.5}  # over the baselines, under the target
    return {"color": f"C{k}", "lw": 0.9, "ls": "--", "alpha": 0.85, "ms": 4}


def draw_rows(ax, x, rows, baselines) -> None:
    """Target, model and each baseline over x; points marked when there are few (one would be invisible)."""
    mark = "." if len(x) <= 60 else None
    ax.plot(x, rows["target"].to_numpy(), color="black", lw=1.2, marker=mark, zorder=3, label="target")
    for k, col in enumerate(["prediction", *baselines]):
        ax.plot(x, rows[col].to_numpy(), marker=mark, label="model" if k == 0 else col, **_style(k))


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def finish_axis(ax, kind) -> None:
    if kind == "date":
        _date_axis(ax)
    ax.grid(alpha=0.3)


def _panels(n: int):
    cols = min(n, 3)
    rows = -(-n // cols)
    size = (8, 3.6) if n == 1 else (4.2 * cols, 2.9 * rows)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, list(axes.ravel()[:n])


def _figure_legend(fig, axes) -> None:
    """One legend for all panels (a label drawn in any panel, once)."""
    seen: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=min(len(seen), 7), frameon=False,
               bbox_to_anchor=(0.5, -0.06 if len(axes) > 3 else -0.1), fontsize=8)


# ------------------------------------------------------------------------------ predictions.png


def predictions_figure(pred, future=None, max_points: int = MAX_POINTS, max_origins: int = MAX_ORIGINS):
    """Horizon 1: every test origin (the last max_points); longer horizons: max_origins trajectories."""
    pred = pred.sort_values(["sample", "horizon"], kind="stable")
    if int(pred["horizon"].max()) == 1:
        return _horizon_one(pred, max_points)
    return _trajectories(pred, future, max_origins)


def _horizon_one(pred, max_points: int):
    shown = pred.tail(max_points)
    x, kind = time_axis(shown)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    draw_rows(ax, shown["sample"].to_numpy() if x is None else x, shown, baseline_columns(pred))
    n, m = len(shown), len(pred)
    count = f"last {n:,} of {m:,} test origins" if n < m else f"{m:,} test origin{'s' if m > 1 else ''}"
    ax.set(xlabel=kind or "test origin (time order)", ylabel="value", title=f"Test predictions at horizon 1 ({count})")
    finish_axis(ax, kind)
    ax.legend(loc="best", fontsize=8)
    return fig


def _trajectories(pred, future, max_origins: int):
    origins = pick_origins(pred["sample"].to_numpy(), max_origins)
    truth, baselines = truth_series(pred, future), baseline_columns(pred)
    fig, axes = _panels(len(origins))
    for ax, origin in zip(axes, origins, strict=True):
        _draw_origin(ax, pred[pred["sample"] == origin], truth, baselines)
        ax.set_title(f"origin {origin}", fontsize=9)
    h, m = int(pred["horizon"].max()), pred["sample"].nunique()
    fig.suptitle(f"Test predictions over {h} steps: {len(origins):,} of {m:,} test origins shown")
    fig.tight_layout()
    _figure_legend(fig, axes)
    return fig


def _draw_origin(ax, rows, truth, baselines) -> None:
    """One origin's trajectory; the truth before it (up to h steps) and the origin marked when known."""
    x, kind = time_axis(rows)
    if x is None:
        x = rows["horizon"].to_numpy()
    before = truth[truth.index < x[0]].tail(len(rows)) if truth is not None else None
    if before is not None and len(before):
        ax.plot(before.index, before.to_numpy(), color="grey", lw=1.0, label="before the origin")
        ax.plot(before.index[-1:], before.to_numpy()[-1:], "o", color="black", ms=4, label="origin")
    draw_rows(ax, x, rows, baselines)
    ax.set_xlabel(kind or "steps after the origin", fontsize=8)
    ax.tick_params(labelsize=8)
    finish_axis(ax, kind)


def predictions_plot(pred, path: Path, future=None) -> Path:
    return save_figure(predictions_figure(pred, future), path)


# ------------------------------------------------------------------------------ error_by_horizon.png


def error_by_horizon_figure(pred):
    """MAE per horizon step of the model and each baseline (a line each)."""
    from matplotlib.ticker import MaxNLocator

    table = mae_by_horizon(pred)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, name in enumerate(table.columns):
        ax.plot(table.index.to_numpy(), table[name].to_numpy(), marker=".", label=name, **_style(k))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="horizon (steps ahead)", ylabel="mean absolute error",
           title=f"Error by horizon ({pred['sample'].nunique():,} test origins)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def error_by_horizon_plot(pred, path: Path) -> Path:
    return save_figure(error_by_horizon_figure(pred), path)


# ------------------------------------------------------------------------------ forecast.png


def forecast_x(forecast, future: dict, n_hist: int):
    """(history x, forecast x, "date" | None): the given dates when history and forecast both have them
    (or the forecast's are implied by future["freq"]), else steps counted from the end of the data."""
    import pandas as pd

    dates, h = future.get("dates"), len(forecast)
    if dates is not None and len(dates) >= n_hist:
        hx = pd.to_datetime(pd.Series(dates).iloc[len(dates) - n_hist:]).to_numpy()
        if "date" in forecast:
            return hx, pd.to_datetime(forecast["date"]).to_numpy(), "date"
        if future.get("freq"):
            from rnnlab.data.calendar import future_dates

            return hx, future_dates(hx[-1], h, future["freq"]).to_numpy(), "date"
    return np.arange(1 - n_hist, 1), forecast["horizon"].to_numpy(), None


def forecast_figure(forecast, future: dict, history_points: int = HISTORY_POINTS):
    """The last stretch of history and the forecast past the end of the data, on one axis."""
    hist = np.asarray(future["history"], dtype=np.float64)[-history_points:]
    hx, fx, kind = forecast_x(forecast, future, len(hist))
    y = forecast["forecast"].to_numpy()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(hx, hist, color="black", lw=1.2, label="history")
    ax.plot([hx[-1], fx[0]], [hist[-1], y[0]], color="C0", lw=0.8, ls=":")  # joins the forecast to the data
    ax.plot(fx, y, color="C0", lw=1.6, marker="." if len(y) <= 60 else None, label="forecast")
    ax.set(title=f"Forecast of the next {len(y)} steps", ylabel="value",
           xlabel="date" if kind else "steps after the end of the data")
    finish_axis(ax, kind)
    ax.legend()
    return fig


def forecast_plot(forecast, future: dict, path: Path) -> Path:
    return save_figure(forecast_figure(forecast, future), path)
