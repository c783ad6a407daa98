"""Attention maps: heatmaps of attention weights (matplotlib, Agg backend).

`attention_heatmap` draws one map: (Tq, Tk) weights (rows = queries, columns = keys), or a
single (T,) weight vector (attention pooling) as one row. `probe_attention_plot` draws the
attention-pooling weights (B, T) of the first few probe sequences, one row per sequence,
with padded steps in grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.report.plots import plt, save_figure

N_SEQUENCES = 6  # probe sequences drawn by probe_attention_plot
MAX_TICK_LABELS = 60  # more labels than this and the axis shows step numbers only


def attention_heatmap(weights, path, xlabels=None, ylabels=None, title: str | None = None, mask=None,
                      xlabel: str = "key position", ylabel: str = "query position") -> Path:
    """Draw weights (Tq, Tk) or (T,) to path (PNG); returns the path.

    xlabels / ylabels: tick labels (e.g. tokens) for the columns / rows (left out when there
    are more than MAX_TICK_LABELS). mask: optional bool array of weights' shape, False where a
    position is padding (drawn grey rather than as weight 0).
    """
    w = np.array(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
        if mask is not None:
            mask = np.asarray(mask)[None, :]
        ylabel = ""
    if w.ndim != 2:
        raise ValueError(f"attention weights must be (Tq, Tk) or (T,), got shape {np.shape(weights)}")
    if mask is not None:
        w[~np.asarray(mask, dtype=bool)] = np.nan
    tq, tk = w.shape
    fig, ax = plt.subplots(figsize=(min(14.0, 2.5 + 0.25 * tk), min(10.0, 1.4 + 0.3 * tq)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    vmax = float(np.nanmax(w)) if np.isfinite(w).any() else 1.0
    im = ax.imshow(w, aspect="auto", cmap=cmap, vmin=0.0, vmax=max(vmax, 1e-12), interpolation="nearest")
    for labels, n, set_ticks, set_labels, rot in ((xlabels, tk, ax.set_xticks, ax.set_xticklabels, 90),
                                                  (ylabels, tq, ax.set_yticks, ax.set_yticklabels, 0)):
        if labels is not None and len(labels) == n and n <= MAX_TICK_LABELS:
            set_ticks(range(n))
            set_labels([str(s) for s in labels], rotation=rot, fontsize=7)
    if tq == 1 and ylabels is None:
        ax.set_yticks([])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "Attention weights")
    fig.colorbar(im, ax=ax, fraction=0.03, label="weight")
    return save_figure(fig, Path(path))


def probe_attention_plot(weights, valid, path, n: int = N_SEQUENCES) -> Path:
    """Attention-pooling weights (B, T) of the first n probe sequences that have real steps,
    one row each, cut after the last real step; valid (B, T) bool marks the real steps."""
    w = np.asarray(weights)
    valid = np.asarray(valid, dtype=bool)
    rows = np.flatnonzero(valid.any(axis=1))[:n]
    if len(rows) == 0:
        rows = np.arange(min(n, len(w)))
    last = int(np.flatnonzero(valid[rows].any(axis=0)).max()) + 1 if valid[rows].any() else w.shape[1]
    return attention_heatmap(w[rows, :last], path, ylabels=[f"seq {int(b)}" for b in rows],
                             title="Attention pooling: weight of each step (probe sequences)",
                             mask=valid[rows, :last], xlabel="time step", ylabel="probe sequence")


def seq2seq_attention_plots(plots_dir, att: dict) -> list[Path]:
    """The encoder-decoder's test attention: the mean map over the test sequences of the most common
    source length (attention.png) and one example (attention_example.png); `att` as the seq2seq
    test report gives it."""
    plots_dir = Path(plots_dir)
    return [
        attention_heatmap(att["mean"], plots_dir / "attention.png", ylabels=att["mean_ylabels"],
                          title=f"Mean attention over {att['sequences']} test sequences of length {att['length']}",
                          xlabel="source position", ylabel="output step"),
        attention_heatmap(att["example"], plots_dir / "attention_example.png", xlabels=att["example_xlabels"],
                          ylabels=att["example_ylabels"], title=f"Attention of test sequence {att['example_index']}",
                          xlabel="source token", ylabel="decoded token"),
    ]
