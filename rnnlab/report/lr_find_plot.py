"""plots/lr_find.png of `rnnlab lr-find`: the loss against the learning rate (log x), the suggestion marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.report.plots import plt, save_figure


def lr_find_plot(lrs, losses, smoothed, suggestion: float | None, path: Path, stopped: str | None = None) -> Path:
    lrs, losses, smoothed = (np.asarray(a, dtype=np.float64) for a in (lrs, losses, smoothed))
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(lrs, losses, color="C0", alpha=0.3, lw=1, label="loss (per step)")
    ax.plot(lrs, smoothed, color="C0", lw=1.8, label="smoothed loss")
    ok = np.isfinite(smoothed)
    if ok.any():
        # The last steps blow up by design; keep the y range on the part worth reading.
        low = min(np.nanmin(np.where(np.isfinite(losses), losses, np.nan)), smoothed[ok].min())
        high = smoothed[ok].max()
        pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
        ax.set_ylim(low - pad, high + pad)
    if suggestion is not None:
        i = int(np.argmin(np.abs(np.log(lrs) - np.log(suggestion))))
        ax.axvline(suggestion, color="C3", ls="--", lw=1)
        ax.plot([suggestion], [smoothed[i]], "o", color="C3", label=f"suggested lr {suggestion:.2g}")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss", title="Learning-rate range test")
    if stopped:  # a caption under the axes, clear of the curves and the legend
        fig.text(0.5, -0.01, f"stopped: {stopped}", ha="center", va="top", fontsize=7, color="grey", wrap=True)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
