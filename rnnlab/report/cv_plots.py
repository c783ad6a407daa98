"""Plots of a cross-validation (`rnnlab cv`): the folds over the samples, and the folds side by side.

* `folds_plot`: one row per fold over the development set (train + val, in order) and the
  test split after it: train, gap, validation, unused (before a sliding window) and test.
  For the time-series strategies this is the timeline; for k-fold a membership strip.
* `loss_grid`: every fold's train and validation loss (metrics.csv) in a grid of subplots.
* `predictions_grid`: every fold's test predictions (predictions.csv, regression): horizon 1 over the test
  origins, longer horizons the last origin's whole trajectory.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
logging.getLogger("matplotlib").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rnnlab.report.plots import save_figure  # noqa: E402

# Categories of a sample in one fold, and their colours.
UNUSED, TRAIN, GAP, VAL, TEST = range(5)
COLOURS = ("#f2f2f2", "#4c72b0", "#b0b0b0", "#dd8452", "#c44e52")
NAMES = ("unused", "train", "gap", "validation", "test")


def fold_matrix(folds, n_dev: int, n_test: int) -> np.ndarray:
    """(k, n_dev + n_test) categories: what each sample is in each fold."""
    m = np.full((len(folds), n_dev + n_test), UNUSED, dtype=np.int8)
    for row, f in zip(m, folds, strict=True):
        row[f.train] = TRAIN
        row[f.val] = VAL
        if f.gap and len(f.val):
            row[max(0, f.val[0] - f.gap):f.val[0]] = GAP
        row[n_dev:] = TEST
    return m


def folds_plot(folds, n_dev: int, n_test: int, strategy: str, path: Path) -> Path:
    m = fold_matrix(folds, n_dev, n_test)
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.4 * len(folds)))
    ax.imshow(m, aspect="auto", interpolation="nearest", cmap=ListedColormap(COLOURS), vmin=0, vmax=len(COLOURS) - 1)
    ax.set_yticks(range(len(folds)), [f"fold {f.index}" for f in folds])
    series = strategy in ("expanding", "sliding")
    ax.set_xlabel("sample (window) in time order" if series else "sample (development set, then test)")
    ax.set_title(f"Cross-validation folds ({strategy}, k={len(folds)}): train + val re-split, test untouched")
    shown = sorted(set(np.unique(m).tolist()))
    ax.legend(handles=[Patch(color=COLOURS[c], label=NAMES[c]) for c in shown], loc="upper center",
              bbox_to_anchor=(0.5, -0.35 if len(folds) < 4 else -0.2), ncol=len(shown), frameon=False)
    return save_figure(fig, path)


def _grid(n: int, width: float = 3.6, height: float = 2.8):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def _title(fold: dict) -> str:
    status = fold.get("status", "?")
    return f"fold {fold['fold']}" + ("" if status == "completed" else f" ({status})")


def loss_grid(folds: list[dict], path: Path) -> Path | None:
    """folds: dicts with fold, status, run_dir. Shares the y axis so the folds compare at a glance."""
    from rnnlab.record import metrics_log

    frames = []
    for f in folds:
        p = Path(f["run_dir"]) / "metrics.csv" if f.get("run_dir") else None
        frames.append(metrics_log.read(p) if p is not None and p.is_file() and p.stat().st_size else None)
    if all(fr is None for fr in frames):
        return None
    fig, axes = _grid(len(folds))
    losses = np.concatenate([fr[["train_loss", "val_loss"]].to_numpy(dtype=float).ravel()
                             for fr in frames if fr is not None and len(fr)] or [np.ones(1)])
    losses = losses[np.isfinite(losses)]
    # log scale only where it helps: positive losses spanning more than a factor 10
    log = len(losses) > 0 and losses.min() > 0 and losses.max() > 10 * losses.min()
    for ax, f, fr in zip(axes, folds, frames, strict=True):
        if fr is not None and len(fr):
            ax.plot(fr["epoch"], fr["train_loss"], marker=".", label="train")
            ax.plot(fr["epoch"], fr["val_loss"], marker=".", label="validation")
            if log:
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no metrics", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=_title(f), xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    axes[0].legend()
    _share_y([ax for ax, fr in zip(axes, frames, strict=True) if fr is not None and len(fr)])
    fig.suptitle("Loss per fold")
    fig.tight_layout()
    return save_figure(fig, path)


def _share_y(axes) -> None:
    if not axes:
        return
    lo = min(ax.get_ylim()[0] for ax in axes)
    hi = max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:
        ax.set_ylim(lo, hi)


def predictions_grid(folds: list[dict], path: Path) -> Path | None:
    fig = predictions_grid_figure(folds)
    return None if fig is None else save_figure(fig, path)


def predictions_grid_figure(folds: list[dict]):
    """Each fold's test predictions (regression predictions.csv only), the same test origins in every fold:
    horizon 1, every origin (the last MAX_POINTS); longer horizons, the last origin's whole trajectory."""
    from rnnlab.report import prediction_plots as pp

    frames = [_predictions(f) for f in folds]
    if all(fr is None for fr in frames):
        return None
    fig, axes = _grid(len(folds), width=4.2)
    what = ""
    for ax, f, fr in zip(axes, folds, frames, strict=True):
        if fr is None:
            ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes)
        else:
            rows, what = _shown(fr, pp.MAX_POINTS)
            x, kind = pp.time_axis(rows)
            if x is None:
                x = (rows["sample"] if rows["horizon"].max() == 1 else rows["horizon"]).to_numpy()
            pp.draw_rows(ax, x, rows, [])
            pp.finish_axis(ax, kind)
        ax.set_title(_title(f), fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Test predictions per fold ({what}; the same test origins in every fold)")
    fig.tight_layout()
    return fig


def _predictions(fold: dict):
    import pandas as pd

    p = Path(fold["run_dir"]) / "predictions.csv" if fold.get("run_dir") else None
    fr = pd.read_csv(p) if p is not None and p.is_file() and p.stat().st_size else None
    if fr is None or not {"sample", "horizon", "target", "prediction"} <= set(fr.columns):
        return None
    return fr.sort_values(["sample", "horizon"], kind="stable")


def _shown(fr, max_points: int):
    """(the rows drawn, what they are): horizon 1, the last max_points origins; else the last origin's h steps."""
    m = fr["sample"].nunique()
    h = int(fr["horizon"].max())
    if h == 1:
        rows = fr.tail(max_points)
        return rows, (f"horizon 1, last {len(rows):,} of {m:,} test origins" if len(rows) < m
                      else f"horizon 1, {m:,} test origin{'s' if m > 1 else ''}")
    last = fr["sample"].max()
    which = "the one test origin" if m == 1 else f"the last of {m:,} test origins"
    return fr[fr["sample"] == last], f"{which} over its {h} steps"
