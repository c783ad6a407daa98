"""Figures of `rnnlab explain` (matplotlib, Agg backend): a series' attribution as a time x feature heatmap
under its input and forecast, the recurrent layers' attribution per step, and an activation-maximising
input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.report.plots import plt, save_figure


def series_heatmap(x: np.ndarray, attr: np.ndarray, names: list[str], method: str, title: str, path: Path,
                   forecast: np.ndarray | None = None) -> Path:
    """x and attr (T, D): each feature's input over time (standardised, the forecast after it in red), and
    below the attribution per step and feature on a diverging scale (red: towards the target)."""
    T, D = x.shape
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 2.2 + 0.35 * D + 2.2), sharex=True,
                                      gridspec_kw={"height_ratios": [2.2, 0.6 + 0.35 * D]})
    for d in range(D):
        top.plot(np.arange(T), x[:, d], lw=1, label=names[d])
    if forecast is not None and len(forecast):
        top.plot(np.arange(T, T + len(forecast)), forecast, color="tab:red", lw=1.5, label="forecast")
    top.set(ylabel="input (model units)", title=title)
    top.legend(fontsize=7, ncol=min(D + 1, 4), loc="upper left")
    top.grid(alpha=0.3)
    scale = float(np.abs(attr).max()) or 1.0
    im = bottom.imshow(attr.T, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest",
                       extent=(-0.5, T - 0.5, D - 0.5, -0.5))
    bottom.set_yticks(range(D), names, fontsize=7)
    bottom.set(xlabel="time step", title=f"{method} attribution")
    fig.colorbar(im, ax=[top, bottom], shrink=0.5, pad=0.01)
    if forecast is not None and len(forecast):
        bottom.set_xlim(-0.5, T + len(forecast) - 0.5)
    return save_figure(fig, path)


def layers_plot(by_layer: dict[str, np.ndarray], path: Path) -> Path:
    """Per recurrent layer (rows), the mean |attribution| of its hidden states per step (columns)."""
    names = list(by_layer)
    grid = np.array([by_layer[n] for n in names])
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.45 * len(names)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="time step", title="Layer integrated gradients: mean |attribution| of the hidden states")
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01)
    return save_figure(fig, path)


def maximize_plot(z: np.ndarray, names: list[str], trace: list[dict], goal: str, path: Path,
                  tokens: list[str] | None = None) -> Path:
    """The optimised input (T, D) as a heatmap (text: the nearest tokens along the axis) beside the
    activation's rise over the iterations."""
    T, D = z.shape
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [3, 1]})
    if D <= 8 and tokens is None:
        for d in range(D):
            left.plot(np.arange(T), z[:, d], lw=1, label=names[d])
        left.legend(fontsize=7)
        left.grid(alpha=0.3)
    else:
        scale = float(np.abs(z).max()) or 1.0
        left.imshow(z.T, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        left.set_ylabel("embedding dimension" if tokens is not None else "feature")
    if tokens is not None and T <= 60:
        left.set_xticks(range(T), tokens, rotation=90, fontsize=7)
    left.set(xlabel="time step", title=f"input maximising {goal}")
    right.plot([t["iteration"] for t in trace], [t["activation"] for t in trace])
    right.set(xlabel="iteration", ylabel="activation", title="ascent")
    right.grid(alpha=0.3)
    return save_figure(fig, path)
