"""Matplotlib plots of a run: loss curves, learning rate, classification curves (the forecasting
plots are in rnnlab.report.prediction_plots).

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
                   curves=None, attention=None, saturation=None) -> list[Path]:
    """Every plot of a run from its rows and the test report's tables (whichever the task has)."""
    out = Path(run_dir) / "plots"
    made = []
    if rows:
        made.append(loss_plot(rows, out / "loss.png"))
    if lr_trace:
        made.append(lr_plot(lr_trace, steps_per_epoch, out / "lr.png"))
    from rnnlab.report import prediction_plots as pp  # here: it imports this module

    if predictions is not None and len(predictions):
        made.append(pp.predictions_plot(predictions, out / "predictions.png", future))
        if predictions["horizon"].max() > 1:  # at one step the report's metrics table has each MAE
            made.append(pp.error_by_horizon_plot(predictions, out / "error_by_horizon.png"))
    if future is not None and forecast is not None:
        made.append(pp.forecast_plot(forecast, future, out / "forecast.png"))
    curves = curves or {}
    if "confusion" in curves:
        made.append(confusion_plot(*curves["confusion"], out / "confusion.png"))
    for kind in ("roc", "pr"):
        if kind in curves:
            made.append(curve_plot(*curves[kind], kind, out / f"{kind}.png"))
    if saturation:  # a language model's gates (rnnlab.train.tasks.cells)
        from rnnlab.report.text_cells_plots import saturation_plot

        made.append(saturation_plot(saturation, out / "gate_saturation.png"))
    if attention is not None:  # seq2seq's test attention
        from rnnlab.report.attention_plots import seq2seq_attention_plots

        made += seq2seq_attention_plots(out, attention)
    return made
