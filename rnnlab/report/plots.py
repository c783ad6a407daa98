"""Matplotlib plots of a run: loss curves, test predictions, learning rate.

Imported only where plots are drawn (matplotlib costs about half a second to import).
Each figure is written atomically into <run>/plots/.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Hydra's logging config shows INFO from every logger; matplotlib's font cache notes are noise.
logging.getLogger("matplotlib").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rnnlab.runtime.io import atomic_write  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"), mode="wb")
    plt.close(fig)
    return path


def loss_plot(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["train_loss"] for r in rows], marker=".", label="train")
    ax.plot(epochs, [r["val_loss"] for r in rows], marker=".", label="validation")
    if rows:
        best = min(rows, key=lambda r: r["val_loss"])
        ax.axvline(best["epoch"], color="grey", ls=":", label=f"best epoch {best['epoch']}")
    if rows and min(min(r["train_loss"], r["val_loss"]) for r in rows) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def lr_plot(lr_trace: list[float], steps_per_epoch: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    steps = np.arange(len(lr_trace))
    ax.plot(steps / steps_per_epoch, lr_trace)
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning-rate schedule (as applied)")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def predictions_plot(pred, path: Path, max_points: int = 400) -> Path:
    """Targets and predictions of the test split at horizon 1, in time order."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    p = pred[pred["horizon"] == 1].head(max_points)
    ax.plot(p["sample"], p["target"], lw=1.2, label="target")
    ax.plot(p["sample"], p["prediction"], lw=1.2, label="model")
    for col in p.columns:
        if col.startswith("naive"):
            ax.plot(p["sample"], p[col], lw=0.8, ls="--", alpha=0.7, label=col)
    ax.set(xlabel="test sample (time order)", ylabel="value", title="Test predictions (horizon 1)")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def forecast_plot(forecast, future: dict, path: Path, history_points: int = 250) -> Path:
    """The last stretch of history and the forecast past the end of the data."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    hist = np.asarray(future["history"])[-history_points:]
    dates = future.get("dates")
    if dates is not None and "date" in forecast:
        import pandas as pd

        ax.plot(dates.iloc[-len(hist):], hist, lw=1.2, label="history")
        ax.plot(pd.to_datetime(forecast["date"]), forecast["forecast"], lw=1.6, label="forecast")
        fig.autofmt_xdate()
    else:
        n = len(hist)
        ax.plot(np.arange(n), hist, lw=1.2, label="history")
        ax.plot(np.arange(n, n + len(forecast)), forecast["forecast"], lw=1.6, label="forecast")
    ax.set(title=f"Forecast of the next {len(forecast)} steps", ylabel="value")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def confusion_plot(cm: np.ndarray, classes, path: Path) -> Path:
    """Counts with row-normalised shading (rows: true class)."""
    n = len(cm)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * max(n, 3), 1.0 + 0.6 * max(n, 3)))
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), classes, rotation=45 if n > 4 else 0)
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (test)")
    return save_figure(fig, path)


def curve_plot(x, y, area: float, kind: str, path: Path) -> Path:
    """ROC (fpr, tpr) or precision-recall (recall, precision) curve of the test split."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    if kind == "roc":
        ax.plot(x, y, lw=1.5, label=f"model (AUC {area:.3f})")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="chance")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test)")
    else:
        ax.plot(x, y, lw=1.5, label=f"model (AP {area:.3f})")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (test)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right" if kind == "roc" else "lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def save_run_plots(run_dir: Path, rows, lr_trace, steps_per_epoch, predictions=None, future=None, forecast=None,
                   curves=None, attention=None) -> list[Path]:
    """Every plot of a run from its rows and the test report's tables (whichever the task has)."""
    out = Path(run_dir) / "plots"
    made = []
    if rows:
        made.append(loss_plot(rows, out / "loss.png"))
    if lr_trace:
        made.append(lr_plot(lr_trace, steps_per_epoch, out / "lr.png"))
    if predictions is not None and len(predictions):
        made.append(predictions_plot(predictions, out / "predictions.png"))
    if future is not None and forecast is not None:
        made.append(forecast_plot(forecast, future, out / "forecast.png"))
    curves = curves or {}
    if "confusion" in curves:
        made.append(confusion_plot(*curves["confusion"], out / "confusion.png"))
    for kind in ("roc", "pr"):
        if kind in curves:
            made.append(curve_plot(*curves[kind], kind, out / f"{kind}.png"))
    if attention is not None:  # seq2seq's test attention
        from rnnlab.report.attention_plots import seq2seq_attention_plots

        made += seq2seq_attention_plots(out, attention)
    return made
