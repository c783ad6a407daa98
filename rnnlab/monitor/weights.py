"""Weight statistics once per epoch: per-parameter summaries, the singular values and spectral
radius of the recurrent matrices, and weight histograms.

`WeightTracker.on_epoch_end` records, for every parameter, mean, std, min, max and L2 norm
(block "all"). The recurrent weights are those the cells declare (``cells.Recurrent``, listed by
``model.recurrent_weights``): for a stacked matrix also one row per gate block (LSTM i, f, g, o;
GRU r, z, n; H x H each) with the block's statistics, its singular values (largest and
smallest) and its spectral radius (max |eigenvalue|). The whole matrix ("all") gets its singular
values too; its spectral radius is an eigenvalue only when it is square (the vanilla RNN's H x H
matrix); for the stacked G*H x H matrices the column is empty and ``sv_max`` (an upper bound of
every block's spectral radius) stands for it. A diagonal recurrence (IndRNN's vector u) is the
matrix diag(u): its singular values are the sorted |u| and its spectral radius max |u|. Rows go
to ``weights.csv`` (long format, one row per epoch, parameter and block).

The value returned for metrics.csv, ``spectral_radius_l0``, and the per-layer values in the
summary are the spectral radius of the recurrence that carries the state: the whole square or
diagonal recurrence, or the block the cell names as its carrier (LSTM: the cell candidate g;
GRU: the candidate n, ``W_hn``, the one that acts on r * h).

Histograms use one fixed-width bin grid per parameter, laid out from the first epoch's range
(``HIST_BINS`` bins) and extended bin by bin when later weights leave it; when a grid grows
past ``MAX_BINS`` its bin width doubles (pairs of bins merge, exactly, for every epoch kept).
Only the counts are kept per epoch (a few hundred integers per parameter), never the weights.
The bottom layer's final ``weight_ih`` / ``weight_hh`` are the only arrays copied (for the
heatmaps). The pictures (``plots/weight_hist.png``, ``weight_hist.gif``, ``spectral.png``,
``weight_heatmaps.png``) are drawn by `rnnlab.report.monitor_plots`.

Cost per epoch for the default LSTM (H = 64): ~10 small SVD / eigenvalue problems (64 x 64
and one 256 x 64), a few ms; everything else is a handful of reductions per parameter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnlab.monitor import saved
from rnnlab.monitor.inspect import of
from rnnlab.report import monitor_plots as mp

COLUMNS = ("epoch", "param", "block", "mean", "std", "min", "max", "norm", "spectral_radius", "sv_max", "sv_min")
HIST_BINS = 40
MAX_BINS = 4 * HIST_BINS


def spectral_radius(m: np.ndarray) -> float:
    """max |eigenvalue| of a square matrix."""
    m = np.asarray(m)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"spectral radius needs a square matrix, got shape {m.shape}")
    if m.size == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(m))))


def singular_values(m: np.ndarray) -> np.ndarray:
    """Singular values, largest first."""
    return np.linalg.svd(np.asarray(m), compute_uv=False)


def _stats(v: np.ndarray) -> dict[str, float]:
    if v.size == 0:
        return dict.fromkeys(("mean", "std", "min", "max", "norm"), math.nan)
    flat = v.reshape(-1)
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "norm": float(np.linalg.norm(flat)),
    }


def _finite(v: np.ndarray) -> bool:
    return bool(np.isfinite(v).all())


class Histogram:
    """Counts of one parameter per epoch on a shared fixed-width grid.

    Bin k covers [origin + k * width, origin + (k + 1) * width); each epoch stores
    (first bin index, counts), so the counts always add up to the number of (finite) weights.
    """

    def __init__(self, bins: int = HIST_BINS, max_bins: int = MAX_BINS):
        self.bins = bins
        self.max_bins = max(max_bins, bins)
        self.origin: float | None = None
        self.width = 1.0
        self.epochs: list[int] = []
        self.starts: list[int] = []
        self.counts: list[np.ndarray] = []
        self._klo, self._khi = 0, -1  # bin index range over all epochs (empty while lo > hi)

    def add(self, epoch: int, values: np.ndarray) -> None:
        v = np.asarray(values).reshape(-1)
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN / inf left out
            v = v[np.isfinite(v)]
            lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        if v.size == 0:
            self.epochs.append(epoch)
            self.starts.append(0)
            self.counts.append(np.zeros(0, dtype=np.int64))
            return
        if self.origin is None:
            span = hi - lo
            self.origin = lo
            self.width = span / self.bins if span > 0 else 0.0
            if not self.width > 0 or not math.isfinite(self.width):
                self.width = max(abs(lo), 1.0) * 1e-3
        # widen first on the float range (no huge bin indices), then exactly on the indices
        while (max(hi, self._hi_value()) - min(lo, self._lo_value())) / self.width > self.max_bins:
            self._coarsen()
        k = np.floor((v - self.origin) * (1.0 / self.width)).astype(np.int64)
        kmin, kmax = int(k.min()), int(k.max())
        while max(kmax, self._khi) - min(kmin, self._klo) + 1 > self.max_bins:
            self._coarsen()
            k >>= 1  # floor division by 2, also for negative indices
            kmin, kmax = kmin >> 1, kmax >> 1
        counts = np.bincount(k - kmin, minlength=kmax - kmin + 1)
        self.epochs.append(epoch)
        self.starts.append(kmin)
        self.counts.append(counts)
        self._klo, self._khi = min(kmin, self._klo), max(kmax, self._khi)

    def _lo_value(self) -> float:
        return math.inf if self._klo > self._khi else self.origin + self._klo * self.width

    def _hi_value(self) -> float:
        return -math.inf if self._klo > self._khi else self.origin + (self._khi + 1) * self.width

    def _coarsen(self) -> None:
        """Double the bin width: bin k becomes k // 2 (exact for every stored epoch)."""
        self.width *= 2
        for j, (s, c) in enumerate(zip(self.starts, self.counts, strict=True)):
            if not len(c):
                continue
            k = (s + np.arange(len(c))) >> 1
            self.starts[j] = int(k[0])
            self.counts[j] = np.bincount(k - k[0], weights=c).astype(np.int64)
        if self._klo <= self._khi:
            self._klo, self._khi = self._klo >> 1, self._khi >> 1

    def state_dict(self, prefix: str) -> dict[str, Any]:
        return {prefix + "grid": saved.number(self.origin), prefix + "width": np.array(self.width),
                prefix + "epochs": np.asarray(self.epochs, dtype=np.int64),
                prefix + "starts": np.asarray(self.starts, dtype=np.int64),
                prefix + "range": np.array([self._klo, self._khi], dtype=np.int64),
                **saved.ragged(self.counts, prefix + "counts.", np.int64)}

    def load_state_dict(self, d: dict[str, Any], prefix: str) -> None:
        self.origin, self.width = saved.unnumber(d[prefix + "grid"]), float(d[prefix + "width"])
        self.epochs = np.asarray(d[prefix + "epochs"]).tolist()
        self.starts = np.asarray(d[prefix + "starts"]).tolist()
        self._klo, self._khi = np.asarray(d[prefix + "range"]).tolist()
        self.counts = saved.unragged(d, prefix + "counts.")

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(edges (n+1,), counts (epochs, n)) of all epochs on one aligned grid."""
        nonempty = [(s, c) for s, c in zip(self.starts, self.counts, strict=True) if len(c)]
        if not nonempty or self.origin is None:
            return np.array([0.0, 1.0]), np.zeros((len(self.counts), 1), dtype=np.int64)
        lo = min(s for s, _ in nonempty)
        hi = max(s + len(c) for s, c in nonempty)
        out = np.zeros((len(self.counts), hi - lo), dtype=np.int64)
        for j, (s, c) in enumerate(zip(self.starts, self.counts, strict=True)):
            out[j, s - lo : s - lo + len(c)] = c
        edges = self.origin + np.arange(lo, hi + 1) * self.width
        return edges, out


class WeightTracker:
    """Per-epoch weight statistics and histograms (see the module docstring)."""

    def __init__(self, cfg, model):
        self.cfg = cfg
        self.model = of(model)  # an inspector (or a sequence ModelSpec)
        # model parameter name -> (layer key, cells.Recurrent)
        self.recurrent = {name: (key, rec) for key, name, rec in self.model.recurrent_weights()}
        self.gates = next((rec.blocks for _, rec in self.recurrent.values()), ())
        self.bottom = next((key for key, _ in self.recurrent.values()), "l0")  # "l0", or seq2seq's "encoder"
        self.rows: list[dict[str, Any]] = []
        self.hists: dict[str, Histogram] = {}
        self.final: dict[str, np.ndarray] = {}  # bottom layer's weight_ih / weight_hh, last epoch
        self.radius: dict[str, float] = {}  # per layer key ("l0", "l0_reverse", ...), last epoch
        self.sv_max: dict[str, float] = {}

    # ------------------------------------------------------------------ per epoch

    def on_epoch_end(self, epoch: int, params: dict) -> dict[str, Any]:
        """Record epoch `epoch` (the trainer's 0-based index; rows use epoch + 1 like
        metrics.csv). Returns ``{"spectral_radius_l0": ...}`` when weights are tracked."""
        ep = int(epoch) + 1
        if self.cfg.histograms:
            for name, value in params.items():
                self.hists.setdefault(name, Histogram()).add(ep, value)
        if not self.cfg.weights:
            return {}
        for name, value in params.items():
            v = np.asarray(value)
            if name in self.recurrent:
                self._recurrent(ep, name, *self.recurrent[name], v)
            else:
                self.rows.append(self._row(ep, name, "all", _stats(v)))
        for name in self.model.heatmap_params:
            if name in params:
                self.final[name] = np.array(params[name], copy=True)
        return {f"spectral_radius_{self.bottom}": self.radius.get(self.bottom, math.nan)}

    @staticmethod
    def _row(ep, name, block, stats, sr=math.nan, svs=None) -> dict[str, Any]:
        has_sv = svs is not None and len(svs) > 0
        return {
            "epoch": ep, "param": name, "block": block, **stats, "spectral_radius": sr,
            "sv_max": float(svs[0]) if has_sv else math.nan,
            "sv_min": float(svs[-1]) if has_sv else math.nan,
        }

    def _recurrent(self, ep: int, name: str, layer: str, rec, W: np.ndarray) -> None:
        """Rows for a recurrent weight (whole, then one per gate block) and its layer's radius."""
        finite = _finite(W)
        if rec.kind == "diagonal":  # diag(u): singular values |u| sorted, spectral radius max |u|
            svs = np.sort(np.abs(W.reshape(-1)))[::-1] if finite else None
            radius = float(svs[0]) if svs is not None and len(svs) else math.nan
            self.rows.append(self._row(ep, name, "all", _stats(W), radius, svs))
            self.radius[layer] = radius
            self.sv_max[layer] = radius
            return
        H = W.shape[1]
        svs = singular_values(W) if finite else None
        sr_all = spectral_radius(W) if finite and W.shape[0] == H else math.nan
        self.rows.append(self._row(ep, name, "all", _stats(W), sr_all, svs))
        radius = sr_all
        for k, gate in enumerate(rec.blocks):
            block = W[k * H : (k + 1) * H]
            sr = spectral_radius(block) if finite else math.nan
            bsv = singular_values(block) if finite else None
            self.rows.append(self._row(ep, name, gate, _stats(block), sr, bsv))
            if gate == rec.carrier:
                radius = sr
        self.radius[layer] = radius
        self.sv_max[layer] = float(svs[0]) if svs is not None and len(svs) else math.nan

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        """What the tracker accumulated (records as arrays; see `monitor.saved`), for the training checkpoint."""
        hists = {k: v for i, h in enumerate(self.hists.values()) for k, v in h.state_dict(f"hist:{i}:").items()}
        return {**saved.columns(self.rows, COLUMNS, "rows."), "hists": list(self.hists), **hists,
                "final": list(self.final), **{f"final:{i}": v for i, v in enumerate(self.final.values())},
                **saved.floats(self.radius, "radius."), **saved.floats(self.sv_max, "sv_max.")}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.rows = [dict(zip(COLUMNS, r, strict=True)) for r in saved.records(d, COLUMNS, "rows.")]
        self.hists = {}
        for i, name in enumerate(d["hists"]):
            self.hists[name] = Histogram()
            self.hists[name].load_state_dict(d, f"hist:{i}:")
        self.final = {name: np.array(d[f"final:{i}"]) for i, name in enumerate(d["final"])}
        self.radius, self.sv_max = saved.unfloats(d, "radius."), saved.unfloats(d, "sv_max.")

    # ------------------------------------------------------------------ at the end

    def table(self):
        """The rows recorded so far as a DataFrame (the contents of weights.csv)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def finish(self, folder) -> dict[str, Any]:
        """Write weights.csv and the plots through `folder` (a `rnnlab.record.folder.RunFolder`: no
        figures with plots off); returns {"spectral_radius": {layer: value}, "sv_max": {...}, "files": [...]}."""
        if not self.rows and not self.hists:
            return {}
        written = []
        if self.rows:
            written.append(folder.table("weights.csv", self.table()))
        if self.hists:
            epochs = next(iter(self.hists.values())).epochs  # every parameter's histogram has every epoch

            def grids():
                return {name: h.grid() for name, h in self.hists.items()}

            written.append(folder.figure("weight_hist.png", lambda p: mp.weight_hist_plot(grids(), epochs, p)))
            if self.cfg.gif:
                written.append(folder.figure("weight_hist.gif", lambda p: mp.weight_hist_gif(grids(), epochs, p)))
        if self.rows and self.radius:
            written.append(folder.figure("spectral.png",
                                         lambda p: mp.spectral_plot(self.table(), list(self.recurrent), self.gates, p)))
        if self.rows and self.final:
            written.append(folder.figure("weight_heatmaps.png", lambda p: mp.weight_heatmaps_plot(
                self.final, self.model.hidden_size, self.gates, p)))
        out: dict[str, Any] = {}
        if self.cfg.weights:
            out["spectral_radius"] = dict(self.radius)
            out["sv_max"] = dict(self.sv_max)
        out["files"] = [folder.relative(p) for p in written if p is not None]
        return out
