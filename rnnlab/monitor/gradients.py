"""Gradient statistics (placeholder interface; being implemented)."""

from __future__ import annotations


class GradientTracker:
    def __init__(self, cfg, console=None):
        self.cfg = cfg

    def on_step(self, step, epoch, params, grads, grad_norm) -> None:
        return None

    def time_gradients(self, epoch, spec, params, probe, loss_fn, loss_targets, kind) -> dict:
        return {}

    def finish(self, run_dir) -> dict:
        return {}
