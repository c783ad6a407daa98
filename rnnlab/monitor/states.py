"""Hidden states and gate activations of the probe batch, at the end of a run.

One forward pass (evaluation mode) of the fixed probe batch; from its cache, for every layer
and direction, the hidden states (B, T, H) and the cell's activations:

each cell names its own (``activations`` of its module; LSTM: gates i, f, o, candidate g and
tanh(c) "tanh_c"; GRU: r, z, n; vanilla RNN and IndRNN: the state h itself), with its kind
(sigmoid, tanh or relu) for the saturation bounds.

Only real steps count: padded steps (mask 0) are left out of every statistic and picture.

Saturation (per layer, direction and activation): the fraction of real (sequence, step, unit)
entries within ``saturation_margin`` of a bound: sigmoid <= m or >= 1 - m, |tanh| >= 1 - m.
Dead units: tanh / sigmoid units saturated at >= 99 % of the real steps (``DEAD_SHARE``); relu
units never active (> 0) on the probe.

Pictures in <run>/plots/: ``states_heatmap.png`` (units x time of the first probe sequence,
bottom and top layer), ``states_pca.png`` (PCA of the top layer's states: 2-D trajectories of
a few sequences coloured by time, and a 3-D projection), ``states_kmeans.png`` (k-means with
``clusters`` clusters on the same states), ``gates.png`` (LSTM / GRU: mean gate activations
over time of the first sequence, for cells with gates). Numbers in ``states_summary.csv`` (layer, direction,
quantity, value). The top layer's state vector of a bidirectional model is both directions'
states side by side (whatever the merge mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEAD_SHARE = 0.99  # saturated at this share of the real steps (or more): a dead unit
SIGMOID, TANH, RELU, LINEAR = "sigmoid", "tanh", "relu", "linear"
N_TRAJECTORIES = 4  # probe sequences drawn in the PCA picture


@dataclass
class LayerStates:
    layer: int
    direction: str  # "forward" | "reverse"
    hs: np.ndarray  # (B, T, H)
    acts: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # name -> (kind, (B, T, H))
    valid: np.ndarray | None = None  # (B, T) real steps of this layer (None: the probe's)
    name: str | None = None  # the layer's key when the model names it ("encoder", "decoder")

    @property
    def key(self) -> str:
        return self.name or f"l{self.layer}" + ("_reverse" if self.direction == "reverse" else "")


# --------------------------------------------------------------------------------------
# what the model's recurrent blocks show
# --------------------------------------------------------------------------------------


def layer_states(shown: dict) -> list[LayerStates]:
    """Hidden states and the cell's named activations of every layer and direction, from what the
    model's recurrent blocks show (``model.shows``), whichever runner produced them."""
    return [LayerStates(v["layer"], v["direction"], v["hs"], dict(v["activations"]), v.get("valid"), v.get("key"))
            for v in shown.get("states", [])]


def saturation(acts: dict[str, tuple[str, np.ndarray]], valid: np.ndarray, margin: float):
    """({name: saturated share of real entries}, {name: dead units}) over the real steps.

    relu activations have no saturation entry; their dead units are those never > 0. Linear ones
    (unbounded, e.g. the LSTM's cell state) have neither.
    """
    sat: dict[str, float] = {}
    dead: dict[str, int] = {}
    for name, (kind, a) in acts.items():
        x = np.asarray(a)[valid]  # (N, H) real entries
        if x.shape[0] == 0 or kind == LINEAR:
            continue
        if kind == RELU:
            dead[name] = int(np.count_nonzero(~(x > 0).any(axis=0)))
            continue
        if kind == SIGMOID:
            s = (x <= margin) | (x >= 1 - margin)
        else:
            s = np.abs(x) >= 1 - margin
        sat[name] = float(s.mean())
        dead[name] = int(np.count_nonzero(s.mean(axis=0) >= DEAD_SHARE))
    return sat, dead


# --------------------------------------------------------------------------------------
# PCA and k-means (NumPy only)
# --------------------------------------------------------------------------------------


def pca(X: np.ndarray, k: int = 3):
    """(scores (N, k), explained variance ratio of every component, components (k, F)).

    Principal axes from the SVD of the centred data's F x F scatter matrix Xc^T Xc (its
    singular values are those of Xc squared; F is small, N = all real probe steps may be
    large). k is capped at F; the ratios sum to 1 (all zeros when the data have no variance).
    """
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    u, var, _ = np.linalg.svd(Xc.T @ Xc, hermitian=True)
    var = np.maximum(var, 0.0)
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    k = min(k, u.shape[1])
    comps = u[:, :k].T
    return Xc @ comps.T, ratio, comps


def kmeans(X: np.ndarray, k: int, seed: int = 0, iters: int = 100):
    """(centres (k, F), labels (N,), inertia) by Lloyd's algorithm from a k-means++ start."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    sq = np.einsum("ij,ij->i", X, X)

    def dist2(C):
        return np.maximum(sq[:, None] - 2 * X @ C.T + np.einsum("ij,ij->i", C, C)[None, :], 0.0)

    C = np.empty((k, X.shape[1]))
    C[0] = X[rng.integers(n)]
    d = dist2(C[:1])[:, 0]
    for j in range(1, k):  # k-means++: next centre with probability ~ squared distance
        total = d.sum()
        i = rng.choice(n, p=d / total) if total > 0 else rng.integers(n)
        C[j] = X[i]
        d = np.minimum(d, dist2(C[j : j + 1])[:, 0])
    labels = np.full(n, -1)
    for _ in range(iters):
        D = dist2(C)
        new = D.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                C[j] = X[members].mean(axis=0)
            else:  # an empty cluster takes the point farthest from its centre
                far = int(D[np.arange(n), labels].argmax())
                C[j] = X[far]
    D = dist2(C)
    labels = D.argmin(axis=1)
    inertia = float(D[np.arange(n), labels].sum())
    return C, labels, inertia


# --------------------------------------------------------------------------------------
# the analysis
# --------------------------------------------------------------------------------------


def analyse_states(cfg, model, params, probe, run_dir, plots: bool = True, state=None) -> dict:
    """Forward the probe, write states_summary.csv and the state / gate plots.

    model: the monitor's inspector (`rnnlab.monitor.inspect`) or a sequence ModelSpec.
    Returns {"saturation": {layer: {name: share}}, "dead_units": {layer: {name: count}},
    "pca_explained": [...], "files": [...]} (layer keys like "l0", "l0_reverse", "encoder").
    """
    import pandas as pd

    from rnnlab.monitor.inspect import of
    from rnnlab.runtime.io import write_csv

    model = of(model)
    run_dir = Path(run_dir)
    shown, probe_valid = model.shown(params, state, probe)
    layers = layer_states(shown)
    for ls in layers:
        ls.valid = probe_valid if ls.valid is None else ls.valid

    rows: list[dict[str, Any]] = []
    sat_all: dict[str, dict[str, float]] = {}
    dead_all: dict[str, dict[str, int]] = {}
    for ls in layers:
        sat, dead = saturation(ls.acts, ls.valid, cfg.saturation_margin)
        sat_all[ls.key], dead_all[ls.key] = sat, dead
        real = np.asarray(ls.hs)[ls.valid]
        rows.append(_row(_label(ls), ls.direction, "units", ls.hs.shape[2]))
        if len(real):
            rows.append(_row(_label(ls), ls.direction, "mean_abs_state", float(np.abs(real).mean())))
        rows += [_row(_label(ls), ls.direction, f"saturation_{k}", v) for k, v in sat.items()]
        rows += [_row(_label(ls), ls.direction, f"dead_{k}", v) for k, v in dead.items()]

    top = [ls for ls in layers if ls.layer == model.num_layers - 1]
    top_dir = "both" if len(top) > 1 else "forward"
    top_key = _label(top[0])
    valid = top[0].valid
    X = np.concatenate([np.asarray(ls.hs)[valid] for ls in top], axis=1)  # (N, F) real states
    bb, tt = np.nonzero(valid)  # sequence and step of each row of X
    out: dict[str, Any] = {"saturation": sat_all, "dead_units": dead_all}
    files: list[Path] = []
    plots_dir = run_dir / "plots"
    if valid.any() and plots:
        files.append(_heatmap_plot(model.num_layers, layers, plots_dir / "states_heatmap.png"))
    rows.append(_row(top_key, top_dir, "real_states", len(X)))
    if len(X) >= 2 and np.isfinite(X).all():
        scores, ratio, _ = pca(X, 3)
        out["pca_explained"] = [float(r) for r in ratio[:3]]
        rows += [_row(top_key, top_dir, f"pca_explained_{j + 1}", float(r)) for j, r in enumerate(ratio[:3])]
        if plots:
            files.append(_pca_plot(scores, ratio, bb, tt, plots_dir / "states_pca.png"))
        _, labels, inertia = kmeans(X, cfg.clusters, seed=0)
        rows.append(_row(top_key, top_dir, "kmeans_clusters", int(labels.max()) + 1))
        rows.append(_row(top_key, top_dir, "kmeans_inertia", inertia))
        out["kmeans_inertia"] = inertia
        if plots:
            files.append(_kmeans_plot(scores, labels, bb, tt, valid, plots_dir / "states_kmeans.png"))
    gates = _gate_names(model.cell)
    if gates and valid.any() and plots:
        files.append(_gates_plot(model.cell, gates, layers, plots_dir / "gates.png"))
    frame = pd.DataFrame(rows, columns=["layer", "direction", "quantity", "value"])
    files.insert(0, write_csv(run_dir / "states_summary.csv", frame))
    out["files"] = [str(p.relative_to(run_dir)) for p in files]
    # ---- attention pooling: the weights of the first probe sequences (plots/attention.png) ----
    weights = shown.get("attention")
    if plots and weights is not None:
        from rnnlab.report.attention_plots import probe_attention_plot

        path = probe_attention_plot(weights, probe_valid, plots_dir / "attention.png")
        out["files"].append(str(path.relative_to(run_dir)))
    return out


def _row(layer, direction, quantity, value) -> dict[str, Any]:
    return {"layer": layer, "direction": direction, "quantity": quantity, "value": value}


def _first(valid: np.ndarray) -> tuple[int, slice]:
    """The first probe sequence with real steps, and its steps from the first to the last real one."""
    rows = np.flatnonzero(valid.any(axis=1))
    b = int(rows[0]) if len(rows) else 0
    idx = np.flatnonzero(valid[b])
    return b, (slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0))


def _heatmap_plot(num_layers: int, layers, path: Path) -> Path:
    from rnnlab.monitor.weights import space_subplots
    from rnnlab.report.plots import plt, save_figure

    shown = sorted({0, num_layers - 1})
    panels = [ls for ls in layers if ls.layer in shown]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, ls in zip(axes[:, 0], panels, strict=True):
        valid = ls.valid
        b, sp = _first(valid)
        img = np.array(ls.hs[b, sp], dtype=np.float64).T  # (H, steps)
        img[:, ~valid[b, sp]] = np.nan
        vmax = float(np.nanmax(np.abs(img))) if np.isfinite(img).any() else 1.0
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="lightgrey")
        im = ax.imshow(img, aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest",
                       extent=(sp.start - 0.5, sp.stop - 0.5, img.shape[0] - 0.5, -0.5))
        ax.set(xlabel="time step", ylabel="hidden unit", title=f"{_title(ls)}: probe sequence {b}")
        fig.colorbar(im, ax=ax, fraction=0.03)
    space_subplots(fig, hspace=0.6)
    return save_figure(fig, path)


def _pca_plot(scores, ratio, bb, tt, path: Path) -> Path:
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


def _kmeans_plot(scores, labels, bb, tt, valid, path: Path) -> Path:
    from rnnlab.monitor.weights import space_subplots
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


def _label(ls: LayerStates):
    """The layer column of states_summary.csv: the layer index, or the part's name (seq2seq)."""
    return ls.name or ls.layer


def _title(ls: LayerStates) -> str:
    return ls.name.capitalize() if ls.name else f"Layer {ls.layer} ({ls.direction})"


def _gate_names(cell: str) -> tuple[str, ...]:
    from rnnlab.engine import cells

    return cells.get(cell).gates


def _gates_plot(cell: str, names, layers, path: Path) -> Path:
    from rnnlab.engine import cells
    from rnnlab.monitor.weights import space_subplots
    from rnnlab.report.plots import plt, save_figure

    labels = cells.get(cell).labels
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 2.6 * len(layers)), squeeze=False)
    for ax, ls in zip(axes[:, 0], layers, strict=True):
        b, sp = _first(ls.valid)
        steps = np.arange(sp.start, sp.stop)
        for name in names:
            m = np.asarray(ls.acts[name][1][b, sp], dtype=np.float64).mean(axis=1)
            m[~ls.valid[b, sp]] = np.nan
            ax.plot(steps, m, label=labels.get(name, name))
        ax.set(ylabel="mean over units", title=f"{_title(ls)}: probe sequence {b}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xlabel("time step")
    space_subplots(fig, hspace=0.45)
    return save_figure(fig, path)
