"""`rnnlab predict RUN_DIR --input FILE | --split test`: a trained run (or an exported folder) applied to new
inputs, read as its training data were; predictions written as CSV (atomically) and previewed.

Bad input (not a run, a corrupt checkpoint, a file the run cannot read, a series too short, ...) gives one
line `Error: ...` on stderr and exit code 2, and writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.record.checkpoint import CheckpointError

PREVIEW_ROWS = 24


def run(target: str, input_path: str | None, split: str | None, output: str | None, backend: str | None = None,
        checkpoint: str = "checkpoint", console=None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.runtime.io import storage_errors, write_csv

    try:
        frame, out = _predict(target, input_path, split, output, backend, checkpoint)
        with storage_errors(out):
            write_csv(out, frame)
    except (ConfigError, DataError, CheckpointError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"Error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    _show(frame, out, console)
    return 0


def _predict(target, input_path, split, output, backend, checkpoint):
    from rnnlab.predict.run import load_any

    if (input_path is None) == (split is None):
        raise ConfigError("give one of --input FILE (new data) or --split test (the run's own test split)")
    run = load_any(target, checkpoint)
    if split is not None:
        if backend not in (None, "engine"):
            raise ConfigError("--split reproduces the run's predictions.csv on the engine; use --input with --backend")
        frame, name = run.predictions(split), split
    else:
        frame, name = run.predict(Path(input_path), backend=backend), Path(input_path).stem
    out = Path(output) if output else Path(f"predictions_{name}.csv")
    return frame, out


def _show(frame, out: Path, console) -> None:
    from rich.table import Table

    from rnnlab.report.console import make_console

    console = console or make_console()
    table = Table(title=f"{len(frame)} predictions -> {out}" if len(frame) > PREVIEW_ROWS else f"predictions -> {out}")
    shown = frame.head(PREVIEW_ROWS)
    for col in shown.columns:
        table.add_column(str(col), overflow="ellipsis", max_width=40)
    for row in shown.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)
    for note in frame.attrs.get("notes", []):
        console.print(note)


def _cell(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
