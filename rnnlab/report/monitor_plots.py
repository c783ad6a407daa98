"""The run monitor's figures (`rnnlab.monitor` computes the numbers, these functions draw them).

Plain functions of numbers and arrays and a path, each writing one PNG (or the histogram GIF)
atomically and returning the path; the monitor hands them to its run folder as
``folder.figure(name, lambda p: monitor_plots.xxx(..., p))``. Matplotlib is imported inside the
functions: importing this module is cheap, and a run with ``train.plots=false`` never loads it.

* gradients: ``gradient_flow_plot``, ``grad_norms_plot``, ``grad_hist_plot``
* weights: ``weight_hist_plot``, ``weight_hist_gif``, ``spectral_plot``, ``weight_heatmaps_plot``
* states: ``states_heatmap_plot``, ``states_pca_plot``, ``states_kmeans_plot``, ``gates_plot``,
  ``probe_attention_plot``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.runtime.io import atomic_write

MAX_FRAMES = 60  # GIF frames (epochs evenly spaced beyond that)
GIF_FPS = 4
GIF_DPI = 72
N_TRAJECTORIES = 4  # probe sequences drawn in the PCA picture


def space_subplots(fig, hspace: float = 0.6, wspace: float = 0.3, suptitle: bool = False) -> None:
    """Fixed spacing between subplots (cheaper than tight_layout, which costs a full draw;
    save_figure crops the outer margins anyway)."""
    h = fig.get_figheight()
    fig.subplots_adjust(top=1 - (0.75 if suptitle else 0.35) / h, bottom=0.55 / h, hspace=hspace, wspace=wspace)


def _log10(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)


def _empty(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _short(name: str) -> str:
    return name.removeprefix("rnn.")


# ---------------------------------------------------------------------- gradients


def gradient_flow_plot(curves: list[tuple[int, str, np.ndarray]], path: Path) -> Path:
    """curves: (epoch, layer, ||dL/dh_t|| per step), bottom layer first. Left: heatmap (epoch x t)
    of log10 ||dL/dh_t|| of the bottom layer; right: the last epoch's curves of every layer and direction."""
    from matplotlib.ticker import MaxNLocator

    from rnnlab.report.plots import plt, save_figure

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"wspace": 0.35})
    first = curves[0][1] if curves else None  # the bottom layer ("layer0"; seq2seq: "encoder")
    bottom = [(ep, c) for ep, layer, c in curves if layer == first]
    if bottom:
        epochs = [ep for ep, _ in bottom]
        T = max(len(c) for _, c in bottom)
        grid = np.full((len(bottom), T), np.nan)
        for i, (_, c) in enumerate(bottom):
            grid[i, : len(c)] = _log10(c)
        im = ax0.imshow(grid, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                        extent=(-0.5, T - 0.5, epochs[0] - 0.5, epochs[-1] + 0.5))
        fig.colorbar(im, ax=ax0, label="log10 ||dL/dh_t||")
        ax0.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax0.set(xlabel="t", ylabel="epoch", title=f"Gradient flow, bottom layer ({first})")
    else:
        _empty(ax0)
        ax0.set_title("Gradient flow, bottom layer")
    if curves:
        last = max(ep for ep, _, _ in curves)
        plotted = False
        for ep, layer, c in curves:
            if ep == last and np.any(np.asarray(c) > 0):
                ax1.plot(np.arange(len(c)), np.where(np.asarray(c) > 0, c, np.nan), label=layer)
                plotted = True
        if plotted:
            ax1.set_yscale("log")
            ax1.legend(fontsize="small")
        ax1.grid(alpha=0.3)
        ax1.set(xlabel="t", ylabel="||dL/dh_t||", title=f"Epoch {last}, every layer")
    else:
        _empty(ax1)
    return save_figure(fig, path)


def grad_norms_plot(rows: list[tuple], path: Path) -> Path:
    """Per-parameter gradient norm over the recorded steps (log scale); rows as in gradients.csv
    (step, epoch, param, grad_norm, ...)."""
    from rnnlab.report.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(9, 4.5))
    series: dict[str, tuple[list, list]] = {}
    for step, _, name, g_norm, *_ in rows:
        s = series.setdefault(name, ([], []))
        s[0].append(step)
        s[1].append(g_norm)
    positive = False
    for name, (steps, norms) in series.items():
        v = np.asarray(norms, dtype=np.float64)
        positive |= bool(np.any(v > 0))
        kw = {"color": "black", "lw": 2} if name == "global" else {"lw": 1}
        ax.plot(steps, np.where(v > 0, v, np.nan), marker="." if len(steps) == 1 else None, label=name, **kw)
    if not series:
        _empty(ax)
    else:
        if positive:
            ax.set_yscale("log")
        ax.legend(fontsize="x-small", ncol=2 if len(series) > 16 else 1, loc="upper left", bbox_to_anchor=(1.01, 1))
        ax.grid(alpha=0.3)
    ax.set(xlabel="step", ylabel="gradient norm (pre-clip)", title="Gradient norm per parameter")
    return save_figure(fig, path)


def grad_hist_plot(grads: dict[str, np.ndarray] | None, step: int | None, path: Path) -> Path:
    """Histograms of the last recorded raw gradients, one panel per parameter."""
    from matplotlib.ticker import MaxNLocator

    from rnnlab.report.plots import plt, save_figure

    names = list(grads or {})
    ncols = min(4, max(1, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    height = 2.4 * nrows + 0.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, height), squeeze=False)
    fig.subplots_adjust(hspace=0.65, wspace=0.2, top=1 - 0.6 / height)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    if not names:
        axes[0, 0].axis("on")
        _empty(axes[0, 0])
    for ax, name in zip(axes.ravel(), names, strict=False):
        g = grads[name]
        g = g[np.isfinite(g)]
        if g.size:  # one stairs artist per panel (ax.hist's 50 patches each are slow to draw)
            counts, edges = np.histogram(g, bins=50)
            ax.stairs(counts, edges, fill=True, color="tab:blue")
        else:
            _empty(ax, "not finite")
        ax.set_title(name, fontsize="small")
        # few ticks, no count axis: tick layout dominates the drawing time of many panels
        ax.set_yticks([])
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.tick_params(labelsize="x-small")
    fig.suptitle("Raw gradients" + (f" at step {step}" if step is not None else ""), y=1 - 0.2 / height)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- weights


def _hist_grid(n: int):
    from matplotlib.ticker import MaxNLocator

    from rnnlab.report.plots import plt

    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax in flat[:n]:
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    return fig, flat[:n]


def weight_hist_plot(grids: dict[str, tuple[np.ndarray, np.ndarray]], epochs: list[int], path: Path) -> Path:
    """The last epoch's weight histogram of every parameter. grids: {param: (edges (n+1,), counts
    (epochs, n))}, one aligned bin grid per parameter (`monitor.weights.Histogram.grid`); epochs: the
    epoch of each row of counts."""
    from rnnlab.report.plots import save_figure

    names = list(grids)
    fig, axes = _hist_grid(len(names))
    for ax, name in zip(axes, names, strict=True):
        edges, counts = grids[name]
        c = counts[-1]
        nz = np.flatnonzero(c)
        if len(nz):  # the last epoch's own range
            c, edges = c[nz[0] : nz[-1] + 1], edges[nz[0] : nz[-1] + 2]
        ax.stairs(c, edges, fill=True, alpha=0.8)
        ax.set_title(_short(name), fontsize=9)
        ax.tick_params(labelsize=7)
    ep = epochs[-1] if names else 0
    fig.suptitle(f"Weight histograms (epoch {ep})")
    space_subplots(fig, suptitle=True)
    return save_figure(fig, path)


def weight_hist_gif(grids: dict[str, tuple[np.ndarray, np.ndarray]], epochs: list[int], path: Path) -> Path:
    """One frame per epoch (at most MAX_FRAMES, evenly spaced, the last epoch always in),
    written to a temporary name and renamed into place; grids and epochs as for weight_hist_plot.

    The axes, ticks and labels are drawn once; each frame restores that background and
    draws only the histograms and the title (blitting), then Pillow writes the GIF (what
    matplotlib's PillowWriter does, but it redraws the whole figure for every frame,
    ~20x slower)."""
    from PIL import Image

    from rnnlab.report.plots import plt

    names = list(grids)
    frames = np.unique(np.linspace(0, len(epochs) - 1, min(len(epochs), MAX_FRAMES)).round().astype(int))
    fig, axes = _hist_grid(len(names))
    fig.set_dpi(GIF_DPI)
    artists = []
    for ax, name in zip(axes, names, strict=True):
        edges, counts = grids[name]
        artists.append(ax.stairs(counts[0], edges, fill=True, alpha=0.8, visible=False))
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, max(1, int(counts.max())) * 1.05)
        ax.set_title(_short(name), fontsize=9)
        ax.tick_params(labelsize=7)
    title = fig.suptitle(f"Weight histograms, epoch {epochs[-1]}")
    space_subplots(fig, suptitle=True)
    title.set_visible(False)
    canvas = fig.canvas
    try:
        canvas.draw()
        background = canvas.copy_from_bbox(fig.bbox)
        images = []
        for j in frames:
            canvas.restore_region(background)
            for ax, art, name in zip(axes, artists, names, strict=True):
                edges, counts = grids[name]
                art.set_data(counts[j], edges)
                art.set_visible(True)
                ax.draw_artist(art)
            title.set_text(f"Weight histograms, epoch {epochs[j]}")
            title.set_visible(True)
            fig.draw_artist(title)
            rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
            images.append(Image.fromarray(rgb).quantize(colors=255, method=Image.Quantize.FASTOCTREE))
    finally:
        plt.close(fig)
    return atomic_write(path, lambda fh: images[0].save(fh, format="GIF", save_all=True, append_images=images[1:],
                                                        duration=int(1000 / GIF_FPS), loop=0), mode="wb")


def spectral_plot(table, recurrent: list[str], gates: tuple[str, ...], path: Path) -> Path:
    """Spectral radius and largest singular value over the epochs, whole matrix and gate blocks, of
    every recurrent weight. table: the rows of weights.csv (a DataFrame); recurrent: the recurrent
    weights' parameter names; gates: the cell's gate blocks (colours)."""
    from matplotlib.ticker import MaxNLocator

    from rnnlab.report.plots import plt, save_figure

    df = table[table["param"].isin(list(recurrent))]
    mats = list(dict.fromkeys(df["param"]))
    colours = {b: f"C{j}" for j, b in enumerate(("all", *gates))}
    fig, axes = plt.subplots(len(mats), 2, figsize=(10, 2.8 * len(mats)), squeeze=False)
    for (ax_r, ax_s), name in zip(axes, mats, strict=True):
        d = df[df["param"] == name]
        for block, g in d.groupby("block", sort=False):
            label, colour = ("whole" if block == "all" else block), colours.get(block)
            if g["spectral_radius"].notna().any():
                ax_r.plot(g["epoch"], g["spectral_radius"], marker=".", color=colour, label=label)
            ax_s.plot(g["epoch"], g["sv_max"], marker=".", color=colour, ls="--" if block == "all" else "-",
                      label=label)
        for ax, what in ((ax_r, "spectral radius"), (ax_s, "largest singular value")):
            ax.axhline(1.0, color="grey", lw=0.8, ls=":")
            ax.set(xlabel="epoch", ylabel=what, title=f"{_short(name)}: {what}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    space_subplots(fig, hspace=0.55, wspace=0.25)
    return save_figure(fig, path)


def weight_heatmaps_plot(final: dict[str, np.ndarray], hidden_size: int, gates: tuple[str, ...], path: Path) -> Path:
    """The bottom layer's final weights, one heatmap per parameter; rows grouped by gate block
    (hidden_size rows each) when a matrix stacks the gates."""
    from matplotlib.ticker import MaxNLocator

    from rnnlab.report.plots import plt, save_figure

    names = list(final)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 5.5), squeeze=False)
    H = hidden_size
    for ax, name in zip(axes[0], names, strict=True):
        W = final[name]
        W = W.reshape(-1, 1) if W.ndim == 1 else W  # a diagonal recurrence: one column
        vmax = float(np.max(np.abs(W))) if W.size and np.isfinite(W).all() else 1.0
        im = ax.imshow(W, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        if gates and W.shape[0] == len(gates) * H:
            for k in range(1, len(gates)):
                ax.axhline(k * H - 0.5, color="black", lw=0.8)
            ax.set_yticks([k * H + (H - 1) / 2 for k in range(len(gates))], list(gates))
            ax.set_ylabel("gate (rows: H units each)")
        else:
            ax.set_ylabel("unit")
        ax.set_xlabel("input" if "weight_ih" in name else "hidden unit (from)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_short(name), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle("Final weights of the bottom layer")
    space_subplots(fig, wspace=0.5, suptitle=True)
    return save_figure(fig, path)


# ---------------------------------------------------------------------- hidden states


def _first(valid: np.ndarray) -> tuple[int, slice]:
    """The first probe sequence with real steps, and its steps from the first to the last real one."""
    rows = np.flatnonzero(valid.any(axis=1))
    b = int(rows[0]) if len(rows) else 0
    idx = np.flatnonzero(valid[b])
    return b, (slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0))


def states_heatmap_plot(panels: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Units x time of the first probe sequence with real steps, one panel per (title, hidden states
    (B, T, H), real steps (B, T)); padded steps grey."""
    from rnnlab.report.plots import plt, save_figure

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (title, hs, valid) in zip(axes[:, 0], panels, strict=True):
        b, sp = _first(valid)
        img = np.array(hs[b, sp], dtype=np.float64).T  # (H, steps)
        img[:, ~valid[b, sp]] = np.nan
        vmax = float(np.nanmax(np.abs(img))) if np.isfinite(img).any() else 1.0
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
        im = ax.imshow(img, aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest",
                       extent=(sp.start - 0.5, sp.stop - 0.5, img.shape[0] - 0.5, -0.5))
        ax.set(xlabel="time step", ylabel="hidden unit", title=f"{title}: probe sequence {b}")
        fig.colorbar(im, ax=ax, fraction=0.03)
    space_subplots(fig, hspace=0.6)
    return save_figure(fig, path)


def states_pca_plot(scores, ratio, bb, tt, path: Path) -> Path:
    """PCA of the top layer's states: scores (N, <=3), explained ratios, and each row's probe sequence
    bb and step tt; 2-D trajectories of a few sequences coloured by time, and a 3-D projection."""
    import mpl_toolkits.mplot3d  # noqa: F401  (registers the 3-D projection)

    from rnnlab.report.plots import plt, save_figure

    S = np.zeros((len(scores), 3))
    S[:, : scores.shape[1]] = scores
    fig = plt.figure(figsize=(11, 4.6))
    ax2 = fig.add_subplot(1, 2, 1)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    ax2.scatter(S[:, 0], S[:, 1], s=3, color="lightgrey", label="all probe states")
    tmax = max(1, int(tt.max()))
    sc = None
    for b in np.unique(bb)[:N_TRAJECTORIES]:
        sel = bb == b
        ax2.plot(S[sel, 0], S[sel, 1], lw=0.6, color="grey", alpha=0.7)
        sc = ax2.scatter(S[sel, 0], S[sel, 1], c=tt[sel], cmap="viridis", vmin=0, vmax=tmax, s=10)
        ax3.plot(S[sel, 0], S[sel, 1], S[sel, 2], lw=0.6, color="grey", alpha=0.7)
        ax3.scatter(S[sel, 0], S[sel, 1], S[sel, 2], c=tt[sel], cmap="viridis", vmin=0, vmax=tmax, s=8)
    r = list(ratio[:3]) + [0.0] * (3 - min(3, len(ratio)))
    ax2.set(xlabel=f"PC1 ({r[0]:.0%})", ylabel=f"PC2 ({r[1]:.0%})",
            title=f"Top-layer states: trajectories of {min(N_TRAJECTORIES, len(np.unique(bb)))} sequences")
    ax2.grid(alpha=0.3)
    if sc is not None:
        fig.colorbar(sc, ax=ax2, label="time step")
    ax3.set(xlabel="PC1", ylabel="PC2", zlabel=f"PC3 ({r[2]:.0%})", title="3-D projection")
    return save_figure(fig, path)


def states_kmeans_plot(scores, labels, bb, tt, valid, path: Path) -> Path:
    """k-means clusters of the top layer's states on the first two principal components, and the
    cluster of each (probe sequence, step); valid (B, T): the probe's real steps."""
    from rnnlab.report.plots import plt, save_figure

    k = int(labels.max()) + 1
    cmap = plt.get_cmap("tab10" if k <= 10 else "tab20", k)
    fig, (ax, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    y = scores[:, 1] if scores.shape[1] > 1 else np.zeros(len(scores))
    ax.scatter(scores[:, 0], y, c=labels, cmap=cmap, vmin=-0.5, vmax=k - 0.5, s=5)
    ax.set(xlabel="PC1", ylabel="PC2", title=f"k-means, {k} clusters (top-layer states)")
    ax.grid(alpha=0.3)
    strip = np.full(valid.shape, np.nan)
    strip[bb, tt] = labels
    cm = cmap.with_extremes(bad="white")
    im = ax_t.imshow(strip, aspect="auto", cmap=cm, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
    ax_t.set(xlabel="time step", ylabel="probe sequence", title="Cluster of each state over time")
    fig.colorbar(im, ax=ax_t, ticks=range(k), label="cluster")
    space_subplots(fig, wspace=0.25)
    return save_figure(fig, path)


def gates_plot(panels: list[tuple[str, dict[str, np.ndarray], np.ndarray]], labels: dict[str, str],
               path: Path) -> Path:
    """Mean gate activations over the units, along the first probe sequence with real steps; one panel
    per (title, {gate: activations (B, T, H)}, real steps (B, T)); labels: the legend's gate names."""
    from rnnlab.report.plots import plt, save_figure

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (title, gates, valid) in zip(axes[:, 0], panels, strict=True):
        b, sp = _first(valid)
        steps = np.arange(sp.start, sp.stop)
        for name, a in gates.items():
            m = np.asarray(a[b, sp], dtype=np.float64).mean(axis=1)
            m[~valid[b, sp]] = np.nan
            ax.plot(steps, m, label=labels.get(name, name))
        ax.set(ylabel="mean over units", title=f"{title}: probe sequence {b}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("time step")
    space_subplots(fig, hspace=0.45)
    return save_figure(fig, path)


def probe_attention_plot(weights, valid, path: Path) -> Path:
    """Attention-pooling weights (B, T) of the first probe sequences (`report.attention_plots`)."""
    from rnnlab.report.attention_plots import probe_attention_plot as draw

    return draw(weights, valid, path)
