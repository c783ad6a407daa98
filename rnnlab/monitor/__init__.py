"""See inside the network while it trains: gradients, weights, hidden states and gates.

`RunMonitor` is what the trainer talks to; the analyses live in one module each:

* `gradients`: per-parameter gradient statistics every N steps (`gradients.csv`),
  vanishing/exploding warnings, and the per-timestep norms ||dL/dh_t|| of a fixed
  probe batch once per epoch (`time_gradients.csv`).
* `weights`: per-parameter statistics and the singular values / spectral radius of
  the recurrent matrices once per epoch (`weights.csv`), histograms.
* `states`: hidden states and gate activations of the probe batch at the end of the
  run: heatmaps, PCA trajectories, k-means clusters, saturation and dead units.

Hooks (all cheap unless their analysis is due):

    mon = RunMonitor(cfg.monitor, task.inspector(), recorder, console)  # recorder: the run folder's writer
    mon.on_step(step, epoch, params, grads, grad_norm)   # after backward, before the update
    extra = mon.on_epoch_end(epoch, params)              # dict merged into the metrics row
    entries = mon.finish(params, rows)                   # dict merged into summary.json
    mon.state_dict() / mon.load_state_dict(d)            # the accumulators, for exact resume

Nothing is kept on the model; the monitor holds only its own records. It writes its tables and
figures through the run folder (`rnnlab.record.folder.RunFolder`, which the run recorder is), never by
path. The figures are drawn by `rnnlab.report.monitor_plots`, whose plotting library is imported
only when the folder draws a figure: not at all with plots off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.monitor.gradients import GradientTracker
from rnnlab.monitor.states import analyse_states
from rnnlab.monitor.weights import WeightTracker
from rnnlab.record.folder import RunFolder


class RunMonitor:
    def __init__(self, cfg, model, folder: RunFolder | str | Path, console=None):
        """model: what the monitor reads of the model (`rnnlab.monitor.inspect`: the task's inspector);
        folder: where its files go (the run recorder; a plain path is a folder with plots on)."""
        self.cfg = cfg
        self.model = model
        self.folder = folder if isinstance(folder, RunFolder) else RunFolder(folder, plots=True)
        self.console = console
        self.enabled = cfg.enabled
        self.probe = model.probe(cfg.probe_size) if self.enabled else None
        self.grad = None
        self.weights = None
        if self.enabled:
            self.grad = GradientTracker(cfg, console)
            self.weights = WeightTracker(cfg, model)

    def on_step(self, step: int, epoch: int, params: dict, grads: dict, grad_norm: float) -> None:
        if self.grad is not None:
            self.grad.on_step(step, epoch, params, grads, grad_norm)

    def on_epoch_end(self, epoch: int, params: dict, state: dict | None = None) -> dict[str, Any]:
        """Per-epoch analyses; returns extra columns for metrics.csv. state: the model's BatchNorm running stats."""
        extra: dict[str, Any] = {}
        if not self.enabled:
            return extra
        if self.cfg.time_gradients and self.probe is not None:
            extra.update(self.grad.time_gradients(epoch, self.model, params, self.probe, state=state))
        if self.cfg.weights or self.cfg.histograms:
            extra.update(self.weights.on_epoch_end(epoch, params))
        return extra

    def state_dict(self) -> dict[str, Any]:
        """The trackers' accumulators (flat: JSON values and arrays), so a resumed run ends with the files
        and summary entries of the uninterrupted one. The states analysis needs nothing: it runs at the end."""
        parts = {"grad/": self.grad, "weights/": self.weights}
        return {p + k: v for p, t in parts.items() if t is not None for k, v in t.state_dict().items()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for p, t in {"grad/": self.grad, "weights/": self.weights}.items():
            if t is not None and any(k.startswith(p) for k in d):
                t.load_state_dict({k[len(p):]: v for k, v in d.items() if k.startswith(p)})

    def finish(self, params: dict, rows: list[dict], state: dict | None = None) -> dict[str, Any]:
        """Write the monitor's files and plots (through the folder); returns the summary.json entries."""
        if not self.enabled:
            return {"monitor": {"enabled": False}}
        out: dict[str, Any] = {"enabled": True}
        files: list[str] = []
        parts = [self.grad.finish(self.folder), self.weights.finish(self.folder)]
        if self.cfg.states and self.probe is not None:
            parts.append(analyse_states(self.cfg, self.model, params, self.probe, self.folder, state=state))
        for part in parts:
            files += part.pop("files", [])
            out.update(part)
        out["files"] = files
        return {"monitor": _jsonable(out)}


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
