"""A run folder as something to write into by name: CSV tables and figures, each atomically.

The recorder (`rnnlab.train.recorder.RunRecorder`) is one; the monitors and the task adapters write
through this interface, never by path, so the run folder has one writer and `train.plots=false`
is decided in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rnnlab.runtime.io import write_csv


class RunFolder:
    def __init__(self, run_dir: str | Path, plots: bool = True):
        self.run_dir = Path(run_dir)
        self.plots = plots  # train.plots=false: figures are skipped, tables still written

    def table(self, name: str, frame) -> Path:
        """Write a pandas DataFrame as run_dir/name (CSV); returns the path."""

        return write_csv(self.run_dir / name, frame)

    def figure(self, name: str, draw: Callable[[Path], Path]) -> Path | None:
        """draw(path) writes run_dir/plots/name; nothing with plots off. Returns the path or None."""
        if not self.plots:
            return None
        return draw(self.run_dir / "plots" / name)

    def relative(self, path: str | Path) -> str:
        return str(Path(path).relative_to(self.run_dir))
