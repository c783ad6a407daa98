"""`rnnlab report RUN_DIR`: write the run folder's self-contained report.html.

Bad input (a missing folder, a folder that is not a run folder, an output that cannot
be written) gives one line `Error: ...` on stderr and exit code 2, never a traceback.
Files of the run that cannot be read become warning lines in the page (and on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.report.html import ReportError, write_report


def run(run_dir: str | Path, output: str | Path | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""

    try:
        path, warnings = write_report(run_dir, output)
    except ReportError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        target = output if output is not None else Path(run_dir) / "report.html"
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(target) else ""
        print(f"Error: cannot write {target}: {exc.strerror or exc.__class__.__name__}{where}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"Warning: {w}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1]))
