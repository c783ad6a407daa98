"""`metrics.csv`: one row per epoch, appended with one write and a flush.

A run killed mid-write can leave a torn last line; `read` drops it (a line without its
newline or with the wrong number of fields), so every reader sees whole epochs only.
A row with columns the header lacks (never within one run today) rewrites the file
atomically with the wider header.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rnnlab.runtime.io import storage_errors, write_text

FILE = "metrics.csv"


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""  # as pandas writes a missing value
    if hasattr(v, "item"):
        v = v.item()
    return repr(v) if isinstance(v, float) else str(v)


def _line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_cell(v) for v in values])
    return buf.getvalue()


class MetricsLog:
    """Appends rows (dicts) to run_dir/metrics.csv; `columns` is the header written so far."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / FILE
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def start(self, rows: list[dict[str, Any]] | None = None) -> None:
        """Begin the log: no file until the first epoch's row (an older run's file in the same folder
        is removed), or the given rows (those a resumed run keeps)."""
        self.rows = list(rows or [])
        self.columns = []
        for r in self.rows:
            self.columns += [c for c in r if c not in self.columns]
        if self.rows:
            self._rewrite()
        else:
            self.path.unlink(missing_ok=True)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        new = [c for c in row if c not in self.columns]
        if new or not self.path.exists():
            self.columns += new
            self._rewrite()
            return
        with storage_errors(self.path), open(self.path, "a") as fh:  # one write and a flush; a torn line
            fh.write(_line([row.get(c) for c in self.columns]))  # is dropped by the readers
            fh.flush()

    def _rewrite(self) -> None:

        text = (_line(self.columns) if self.columns else "") + "".join(
            _line([r.get(c) for c in self.columns]) for r in self.rows)
        write_text(self.path, text)


def whole_lines(text: str) -> list[str]:
    """The lines of a metrics.csv text without a torn last line (no newline, or the wrong field count)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    if len(lines) > 1:
        width = len(next(csv.reader([lines[0]])))
        if len(next(csv.reader([lines[-1]]))) != width:
            lines = lines[:-1]
    return lines


def read(run_dir: str | Path):
    """metrics.csv as a pandas DataFrame, without a torn last line (an empty frame when there are no rows)."""
    import pandas as pd

    p = Path(run_dir)
    p = p if p.suffix == ".csv" else p / FILE
    lines = whole_lines(p.read_text(encoding="utf-8", errors="replace"))
    if not lines:
        return pd.DataFrame()
    return pd.read_csv(io.StringIO("".join(lines)))


def read_rows(run_dir: str | Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of metrics.csv as strings, without a torn last line."""
    p = Path(run_dir)
    p = p if p.suffix == ".csv" else p / FILE
    rows = list(csv.reader(whole_lines(p.read_text(encoding="utf-8", errors="replace"))))
    return (rows[0], rows[1:]) if rows else ([], [])
