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

Pictures in <run>/plots/, drawn by `rnnlab.report.monitor_plots`: ``states_heatmap.png`` (units x
time of the first probe sequence, bottom and top layer), ``states_pca.png`` (PCA of the top layer's
states: 2-D trajectories of a few sequences coloured by time, and a 3-D projection),
``states_kmeans.png`` (k-means with ``clusters`` clusters on the same states), ``gates.png`` (LSTM /
GRU: mean gate activations over time of the first sequence, for cells with gates). Numbers in
``states_summary.csv`` (layer, direction, quantity, value). The top layer's state vector of a
bidirectional model is both directions' states side by side (whatever the merge mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnlab.engine import cells
from rnnlab.monitor.inspect import of
from rnnlab.report import monitor_plots as mp

DEAD_SHARE = 0.99  # saturated at this share of the real steps (or more): a dead unit
SIGMOID, TANH, RELU, LINEAR = "sigmoid", "tanh", "relu", "linear"


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


def analyse_states(cfg, model, params, probe, folder, state=None) -> dict:
    """Forward the probe, write states_summary.csv and the state / gate plots through `folder` (a
    `rnnlab.record.folder.RunFolder`: no figures with plots off).

    model: the monitor's inspector (`rnnlab.monitor.inspect`) or a sequence ModelSpec.
    Returns {"saturation": {layer: {name: share}}, "dead_units": {layer: {name: count}},
    "pca_explained": [...], "files": [...]} (layer keys like "l0", "l0_reverse", "encoder").
    """
    import pandas as pd

    model = of(model)
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
    figures = []  # (name, draw), drawn after states_summary.csv is written
    if valid.any():  # the bottom and the top layer
        panels = [(_title(ls), ls.hs, ls.valid) for ls in layers if ls.layer in {0, model.num_layers - 1}]
        figures.append(("states_heatmap.png", lambda p: mp.states_heatmap_plot(panels, p)))
    rows.append(_row(top_key, top_dir, "real_states", len(X)))
    if len(X) >= 2 and np.isfinite(X).all():
        scores, ratio, _ = pca(X, 3)
        out["pca_explained"] = [float(r) for r in ratio[:3]]
        rows += [_row(top_key, top_dir, f"pca_explained_{j + 1}", float(r)) for j, r in enumerate(ratio[:3])]
        figures.append(("states_pca.png", lambda p: mp.states_pca_plot(scores, ratio, bb, tt, p)))
        _, labels, inertia = kmeans(X, cfg.clusters, seed=0)
        rows.append(_row(top_key, top_dir, "kmeans_clusters", int(labels.max()) + 1))
        rows.append(_row(top_key, top_dir, "kmeans_inertia", inertia))
        out["kmeans_inertia"] = inertia
        figures.append(("states_kmeans.png", lambda p: mp.states_kmeans_plot(scores, labels, bb, tt, valid, p)))
    cell = cells.get(model.cell)
    if cell.gates and valid.any():
        panels_g = [(_title(ls), {g: ls.acts[g][1] for g in cell.gates}, ls.valid) for ls in layers]
        figures.append(("gates.png", lambda p: mp.gates_plot(panels_g, cell.labels, p)))
    # attention pooling: the weights of the first probe sequences
    weights = shown.get("attention")
    if weights is not None:
        figures.append(("attention.png", lambda p: mp.probe_attention_plot(weights, probe_valid, p)))
    frame = pd.DataFrame(rows, columns=["layer", "direction", "quantity", "value"])
    written = [folder.table("states_summary.csv", frame)] + [folder.figure(name, draw) for name, draw in figures]
    out["files"] = [folder.relative(p) for p in written if p is not None]
    return out


def _row(layer, direction, quantity, value) -> dict[str, Any]:
    return {"layer": layer, "direction": direction, "quantity": quantity, "value": value}


def _label(ls: LayerStates):
    """The layer column of states_summary.csv: the layer index, or the part's name (seq2seq)."""
    return ls.name or ls.layer


def _title(ls: LayerStates) -> str:
    return ls.name.capitalize() if ls.name else f"Layer {ls.layer} ({ls.direction})"
