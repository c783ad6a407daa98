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
heatmaps).

Cost per epoch for the default LSTM (H = 64): ~10 small SVD / eigenvalue problems (64 x 64
and one 256 x 64), a few ms; everything else is a handful of reductions per parameter.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("epoch", "param", "block", "mean", "std", "min", "max", "norm", "spectral_radius", "sv_max", "sv_min")
HIST_BINS = 40
MAX_BINS = 4 * HIST_BINS
MAX_FRAMES = 60  # GIF frames (epochs evenly spaced beyond that)
GIF_FPS = 4
GIF_DPI = 72

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


def space_subplots(fig, hspace: float = 0.6, wspace: float = 0.3, suptitle: bool = False) -> None:
    """Fixed spacing between subplots (cheaper than tight_layout, which costs a full draw;
    save_figure crops the outer margins anyway)."""
    h = fig.get_figheight()
    fig.subplots_adjust(top=1 - (0.75 if suptitle else 0.35) / h, bottom=0.55 / h, hspace=hspace, wspace=wspace)


def _short(name: str) -> str:
    return name.removeprefix("rnn.")


class WeightTracker:
    """Per-epoch weight statistics and histograms (see the module docstring)."""

    def __init__(self, cfg, model):
        from rnnlab.monitor.inspect import of

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

    # ------------------------------------------------------------------ at the end

    def table(self):
        """The rows recorded so far as a DataFrame (the contents of weights.csv)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def finish(self, run_dir, plots: bool = True) -> dict[str, Any]:
        """Write weights.csv and (with plots) the plots; returns {"spectral_radius": {layer: value}, "files": [...]}."""
        run_dir = Path(run_dir)
        files: list[Path] = []
        if not self.rows and not self.hists:
            return {}
        if self.rows:
            from rnnlab.runtime.io import write_csv

            files.append(write_csv(run_dir / "weights.csv", self.table()))
        plots_dir = run_dir / "plots"
        if self.hists and plots:
            files.append(self._hist_plot(plots_dir / "weight_hist.png"))
            if self.cfg.gif:
                files.append(self._hist_gif(plots_dir / "weight_hist.gif"))
        if self.rows and plots:
            if self.radius:
                files.append(self._spectral_plot(plots_dir / "spectral.png"))
            if self.final:
                files.append(self._heatmaps(plots_dir / "weight_heatmaps.png"))
        out: dict[str, Any] = {}
        if self.cfg.weights:
            out["spectral_radius"] = dict(self.radius)
            out["sv_max"] = dict(self.sv_max)
        out["files"] = [_rel(p, run_dir) for p in files]
        return out

    def _hist_grid(self, n: int):
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

    def _hist_plot(self, path: Path) -> Path:
        from rnnlab.report.plots import save_figure

        names = list(self.hists)
        fig, axes = self._hist_grid(len(names))
        for ax, name in zip(axes, names, strict=True):
            h = self.hists[name]
            edges, counts = h.grid()
            c = counts[-1]
            nz = np.flatnonzero(c)
            if len(nz):  # the last epoch's own range
                c, edges = c[nz[0] : nz[-1] + 1], edges[nz[0] : nz[-1] + 2]
            ax.stairs(c, edges, fill=True, alpha=0.8)
            ax.set_title(_short(name), fontsize=9)
            ax.tick_params(labelsize=7)
        ep = self.hists[names[0]].epochs[-1] if names else 0
        fig.suptitle(f"Weight histograms (epoch {ep})")
        space_subplots(fig, suptitle=True)
        return save_figure(fig, path)

    def _hist_gif(self, path: Path) -> Path:
        """One frame per epoch (at most MAX_FRAMES, evenly spaced, the last epoch always in),
        written to a temporary name and renamed into place.

        The axes, ticks and labels are drawn once; each frame restores that background and
        draws only the histograms and the title (blitting), then Pillow writes the GIF (what
        matplotlib's PillowWriter does, but it redraws the whole figure for every frame,
        ~20x slower)."""
        from PIL import Image

        from rnnlab.report.plots import plt
        from rnnlab.runtime.io import FILE_MODE

        names = list(self.hists)
        grids = [self.hists[n].grid() for n in names]
        epochs = self.hists[names[0]].epochs
        frames = np.unique(np.linspace(0, len(epochs) - 1, min(len(epochs), MAX_FRAMES)).round().astype(int))
        fig, axes = self._hist_grid(len(names))
        fig.set_dpi(GIF_DPI)
        artists = []
        for ax, name, (edges, counts) in zip(axes, names, grids, strict=True):
            artists.append(ax.stairs(counts[0], edges, fill=True, alpha=0.8, visible=False))
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, max(1, int(counts.max())) * 1.05)
            ax.set_title(_short(name), fontsize=9)
            ax.tick_params(labelsize=7)
        title = fig.suptitle(f"Weight histograms, epoch {epochs[-1]}")
        space_subplots(fig, suptitle=True)
        title.set_visible(False)
        canvas = fig.canvas
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".gif")
        os.close(fd)
        try:
            canvas.draw()
            background = canvas.copy_from_bbox(fig.bbox)
            images = []
            for j in frames:
                canvas.restore_region(background)
                for ax, art, (edges, counts) in zip(axes, artists, grids, strict=True):
                    art.set_data(counts[j], edges)
                    art.set_visible(True)
                    ax.draw_artist(art)
                title.set_text(f"Weight histograms, epoch {epochs[j]}")
                title.set_visible(True)
                fig.draw_artist(title)
                rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
                images.append(Image.fromarray(rgb).quantize(colors=255, method=Image.Quantize.FASTOCTREE))
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=int(1000 / GIF_FPS), loop=0)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def _spectral_plot(self, path: Path) -> Path:
        from matplotlib.ticker import MaxNLocator

        from rnnlab.report.plots import plt, save_figure

        df = self.table()
        df = df[df["param"].isin(list(self.recurrent))]
        mats = list(dict.fromkeys(df["param"]))
        colours = {b: f"C{j}" for j, b in enumerate(("all", *self.gates))}
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

    def _heatmaps(self, path: Path) -> Path:
        from matplotlib.ticker import MaxNLocator

        from rnnlab.report.plots import plt, save_figure

        names = list(self.final)
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 5.5), squeeze=False)
        H = self.model.hidden_size
        for ax, name in zip(axes[0], names, strict=True):
            W = self.final[name]
            W = W.reshape(-1, 1) if W.ndim == 1 else W  # a diagonal recurrence: one column
            vmax = float(np.max(np.abs(W))) if W.size and _finite(W) else 1.0
            im = ax.imshow(W, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            if self.gates and W.shape[0] == len(self.gates) * H:
                for k in range(1, len(self.gates)):
                    ax.axhline(k * H - 0.5, color="black", lw=0.8)
                ax.set_yticks([k * H + (H - 1) / 2 for k in range(len(self.gates))], list(self.gates))
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


def _rel(p: Path, run_dir: Path) -> str:
    try:
        return str(Path(p).relative_to(run_dir))
    except ValueError:
        return str(p)
