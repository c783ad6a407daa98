"""Gradient statistics: per-parameter norms every N steps, vanishing/exploding warnings,
and the per-timestep gradient norms ||dL/dh_t|| of the probe batch once per epoch.

Files (written by `finish`):

* ``gradients.csv`` (long format, one row per recorded step and parameter, plus a
  ``global`` row over all parameters): step, epoch, param, grad_norm, weight_norm,
  ratio (grad_norm / weight_norm), grad_mean, grad_std. Gradients are the raw ones
  (before L2, clipping and the optimizer); the global row's grad_norm is the trainer's
  pre-clip global norm.
* ``time_gradients.csv``: epoch, layer, t, norm: for every recurrent layer and direction
  ("layer0", "layer0_reverse", ...) the mean over the probe sequences of the L2 norm over
  hidden units of the total dL/dh_t (the quantity BPTT carries; padded steps excluded).
* ``plots/gradient_flow.png``, ``plots/grad_norms.png``, ``plots/grad_hist.png`` (unless
  train.plots=false; drawn by `rnnlab.report.monitor_plots`).

Epochs are counted from 1 as in metrics.csv; steps from 0 as the trainer counts them.

The metrics.csv column ``grad_t_first_over_last`` is the bottom layer's (forward
direction) ||dL/dh_t|| at each probe sequence's first real step over that at its last
real step (means over the sequences): orders of magnitude below 1 is the vanishing signal.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from rnnlab.monitor import saved
from rnnlab.record.run_log import show
from rnnlab.report import monitor_plots as mp

GRAD_COLUMNS = ("step", "epoch", "param", "grad_norm", "weight_norm", "ratio", "grad_mean", "grad_std")
TIME_COLUMNS = ("epoch", "layer", "t", "norm")
HIST_SAMPLE = 1 << 16  # at most this many entries per parameter are kept for grad_hist.png
_LETTERS = "abcdefghijklmnop"


def _sumsq(a: np.ndarray) -> float:
    """Sum of squares without a copy (vdot flattens non-contiguous arrays by copying)."""
    if a.flags.c_contiguous:
        return float(np.vdot(a, a))
    s = _LETTERS[: a.ndim]
    return float(np.einsum(f"{s},{s}->", a, a))


def _sample(g: np.ndarray) -> np.ndarray:
    """A small copy of a gradient for the histograms (a strided subsample of big ones)."""
    flat = g.reshape(-1)  # a view for contiguous arrays (all but small ones in practice)
    if flat.size <= HIST_SAMPLE:
        return np.array(flat, dtype=np.float64)
    return flat[:: -(-flat.size // HIST_SAMPLE)].astype(np.float64)


class GradientTracker:
    def __init__(self, cfg, console=None):
        self.cfg = cfg
        self.console = console
        self.every = int(cfg.every_n_steps or 0)
        self.vanish_below = float(cfg.vanish_below)
        self.explode_above = float(cfg.explode_above)
        self.counts = {"vanishing": 0, "exploding": 0}
        self._warned = {"vanishing": -1, "exploding": -1}  # last epoch warned about
        self.rows: list[tuple] = []
        self.last_grads: dict[str, np.ndarray] | None = None
        self.last_grads_step: int | None = None
        self.curves: list[tuple[int, str, np.ndarray]] = []  # (epoch, layer, (T,) norms)
        self.ratio: float | None = None
        self._columns = saved.Columns(GRAD_COLUMNS, "rows.")  # the records as arrays, for the checkpoint

    # ------------------------------------------------------------------ every step

    def on_step(self, step, epoch, params, grads, grad_norm) -> None:
        gn = float(grad_norm)
        if not gn >= self.vanish_below or gn > self.explode_above:  # NaN counts as exploding
            self._event("vanishing" if gn < self.vanish_below else "exploding", step, epoch, gn)
        if self.every and step % self.every == 0:
            self._record(step, epoch, params, grads, gn)

    def _event(self, kind: str, step: int, epoch: int, gn: float) -> None:
        self.counts[kind] += 1
        if self._warned[kind] == epoch:
            return
        self._warned[kind] = epoch
        if kind == "exploding":
            rel = f"> {self.explode_above:g}" if math.isfinite(gn) else "is not finite"
        else:
            rel = f"< {self.vanish_below:g}"
        show(self.console, f"warning: {kind} gradients: global norm {gn:.3g} {rel} at step {step} (epoch {epoch + 1})",
             logging.WARNING, style="yellow")

    def _record(self, step, epoch, params, grads, gn) -> None:
        ep = epoch + 1
        w_sq_total = g_sum_total = g_sq_total = 0.0
        n_total = 0
        sample = {}
        for name, g in grads.items():
            w = params.get(name)
            g_sq = _sumsq(g)
            g_sum = float(g.sum(dtype=np.float64))
            n = g.size
            w_sq = _sumsq(w) if w is not None else math.nan
            g_norm, w_norm = math.sqrt(g_sq), math.sqrt(w_sq)
            mean = g_sum / n if n else math.nan
            var = _variance(g, g_sq, mean)
            self.rows.append((step, ep, name, g_norm, w_norm, _ratio(g_norm, w_norm), mean, math.sqrt(var)))
            w_sq_total += w_sq
            g_sum_total += g_sum
            g_sq_total += g_sq
            n_total += n
            sample[name] = _sample(g)
        if n_total:
            mean = g_sum_total / n_total
            std = math.sqrt(max(g_sq_total / n_total - mean * mean, 0.0))
            w_norm = math.sqrt(w_sq_total)
            self.rows.append((step, ep, "global", gn, w_norm, _ratio(gn, w_norm), mean, std))
        self.last_grads, self.last_grads_step = sample, step

    # ------------------------------------------------------------------ every epoch

    def time_gradients(self, epoch, inspector, params, probe, state=None) -> dict:
        """||dL/dh_t|| per layer and direction on the probe batch; returns the metrics column."""
        first = None
        for layer, tr, real in inspector.time_traces(params, state, probe):
            norms = np.sqrt(np.einsum("tbh,tbh->tb", tr, tr, dtype=np.float64))  # (T, B)
            with np.errstate(invalid="ignore", divide="ignore"):
                curve = np.where(real, norms, 0.0).sum(axis=1) / real.sum(axis=1)  # NaN where no real step
            self.curves.append((epoch + 1, layer, curve))
            if first is None:
                first = (norms, real)
        self.ratio = _first_over_last(*first)
        return {"grad_t_first_over_last": self.ratio}

    # ------------------------------------------------------------------ end of run

    def finish(self, folder) -> dict:
        """Write the CSV files and the plots through `folder` (a `rnnlab.record.folder.RunFolder`:
        no figures with plots off); returns the summary entries."""
        import pandas as pd

        written = []
        if self.every:
            written.append(folder.table("gradients.csv", pd.DataFrame(self.rows, columns=list(GRAD_COLUMNS))))
        if self.cfg.time_gradients:
            written.append(folder.table("time_gradients.csv", self.time_frame()))
            written.append(folder.figure("gradient_flow.png", lambda p: mp.gradient_flow_plot(self.curves, p)))
        if self.every:
            written.append(folder.figure("grad_norms.png", lambda p: mp.grad_norms_plot(self.rows, p)))
            written.append(folder.figure("grad_hist.png",
                                         lambda p: mp.grad_hist_plot(self.last_grads, self.last_grads_step, p)))
        return {
            "gradient_warnings": dict(self.counts),
            "grad_t_first_over_last": self.ratio,
            "files": [folder.relative(p) for p in written if p is not None],
        }

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict:
        """What the tracker accumulated (records as arrays; see `monitor.saved`), for the training checkpoint."""
        grads = self.last_grads or {}
        return {"counts": dict(self.counts), "warned": dict(self._warned), "ratio": saved.number(self.ratio),
                **self._columns(self.rows),
                "last_grads_step": self.last_grads_step, "last_grads": None if self.last_grads is None else list(grads),
                **{f"last_grads:{i}": g for i, g in enumerate(grads.values())},
                "curves.epoch": np.asarray([c[0] for c in self.curves], dtype=np.int64),
                "curves.layer": [c[1] for c in self.curves], **saved.ragged([c[2] for c in self.curves], "curves.",
                                                                            np.float64)}

    def load_state_dict(self, d: dict) -> None:
        self.counts, self._warned = dict(d["counts"]), dict(d["warned"])
        self.ratio = saved.unnumber(d["ratio"])
        self.rows = saved.records(d, GRAD_COLUMNS, "rows.")
        names = d["last_grads"]
        self.last_grads = None if names is None else {n: np.asarray(d[f"last_grads:{i}"]) for i, n in enumerate(names)}
        self.last_grads_step = d["last_grads_step"]
        self.curves = list(zip(np.asarray(d["curves.epoch"]).tolist(), d["curves.layer"],
                               saved.unragged(d, "curves."), strict=True))

    def time_frame(self):
        import pandas as pd

        parts = [
            pd.DataFrame({"epoch": ep, "layer": layer, "t": np.arange(len(curve)), "norm": curve})
            for ep, layer, curve in self.curves
        ]
        if not parts:
            return pd.DataFrame(columns=list(TIME_COLUMNS))
        return pd.concat(parts, ignore_index=True)[list(TIME_COLUMNS)]


def _variance(g: np.ndarray, g_sq: float, mean: float) -> float:
    """E[g^2] - mean^2 from the sums already taken; recomputed exactly (a temporary) only
    when that cancels badly (|mean| >> std, e.g. a single-entry bias)."""
    n = g.size
    if n <= 1:
        return 0.0 if n else math.nan
    var = g_sq / n - mean * mean
    if var > 1e-3 * (g_sq / n):
        return var
    return float(np.var(g, dtype=np.float64))


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return math.inf if a > 0 else math.nan


def _first_over_last(norms: np.ndarray, real: np.ndarray) -> float:
    """Mean ||dL/dh|| at each sequence's first real step over the mean at its last real step."""
    has = real.any(axis=0)
    if not has.any():
        return math.nan
    cols = np.flatnonzero(has)
    first = real[:, cols].argmax(axis=0)
    last = real.shape[0] - 1 - real[::-1, cols].argmax(axis=0)
    num = float(norms[first, cols].mean())
    den = float(norms[last, cols].mean())
    return _ratio(num, den)
