"""`rnnlab export RUN_DIR --format onnx,torch,numpy,json,serve [--quantize int8] [-o DIR]`: a trained run's
selected weights in other formats, in one folder with its manifest (model.json).

Bad input (not a run, a corrupt checkpoint, an unknown format, a block a format cannot express, an
output folder that is not an export) gives one line `Error: ...` on stderr and exit code 2, and
leaves nothing behind (the formats write into a temporary folder renamed into place at the end).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.config.validate import ConfigError
from rnnlab.record.checkpoint import CheckpointError

QUANTIZE = ("int8",)


def run(run_dir: str, format_spec: str, output: str | None, quantize: str | None = None,
        checkpoint: str = "checkpoint", console=None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.export import bundle, formats
    from rnnlab.export.base import ExportOptions
    from rnnlab.predict.run import load_run

    try:
        names = formats.parse(format_spec)
        if quantize is not None and quantize not in QUANTIZE:
            raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZE)} (got '{quantize}')")
        if quantize is not None and "onnx" not in names:
            raise ConfigError("--quantize int8 quantizes the ONNX graph: add onnx to --format")
        trained = load_run(run_dir, checkpoint)
        out = Path(output) if output else Path(run_dir) / "export"
        done = bundle.export(trained, names, out, ExportOptions(quantize=quantize))
    except (ConfigError, CheckpointError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"Error: cannot write {output or Path(run_dir) / 'export'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    _show(done, console)
    return 0


def _show(done, console) -> None:
    from rnnlab.report.console import make_console

    console = console or make_console()
    for note in done.notes:
        console.print(note)
    console.print(f"exported to {done.folder}: {', '.join(done.files)}")
