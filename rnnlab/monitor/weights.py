"""Weight statistics (placeholder interface; being implemented)."""

from __future__ import annotations


class WeightTracker:
    def __init__(self, cfg, spec):
        self.cfg = cfg

    def on_epoch_end(self, epoch, params) -> dict:
        return {}

    def finish(self, run_dir) -> dict:
        return {}
