"""Sequence-file readers (data=seqfile), one module per format behind one interface.

A reader is `read(path, cfg, reason) -> Read` (common.py): the sequences with their labels,
which of them miss values, the format and why it was chosen. READERS maps data.format to
its reader; `format: auto` picks one by the file's extension (SUFFIXES), and for a CSV
layout.py decides between long and wide from the columns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rnnlab.data.base import DataError
from rnnlab.data.seqformats import csvfiles, npzfile, tsfile
from rnnlab.data.seqformats.common import Read, check_file
from rnnlab.data.seqformats.csvparse import CSV_SUFFIXES, is_csv

READERS: dict[str, Callable[[Path, object, str], Read]] = {
    "wide": lambda path, cfg, reason: csvfiles.read(path, cfg, "wide", reason),
    "long": lambda path, cfg, reason: csvfiles.read(path, cfg, "long", reason),
    "npz": npzfile.read,
    "ts": tsfile.read,
}
FORMATS = ("auto", *READERS)
SUFFIXES = {".npz": "npz", ".ts": "ts"}


def _by_suffix(path: Path) -> tuple[str, str]:
    """(format, why) for format auto: npz, ts, or 'csv' (long or wide, decided from the columns)."""
    name = path.name.lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt, f"the {suffix} extension"
    if is_csv(path):
        return "csv", ""
    raise DataError(
        f"cannot tell the format of {path.name} from its extension (use {', '.join(CSV_SUFFIXES[:2])}, "
        f"{', '.join(SUFFIXES)}, or set data.format to {', '.join(READERS)})"
    )


def _npz_options(cfg, path: Path, fmt: str) -> None:
    """data.x_key, y_key and layout are for NPZ files: set for another format, they would be ignored."""
    given = [f"data.{k}={getattr(cfg, k)}" for k in ("x_key", "y_key") if getattr(cfg, k)]
    given += [f"data.layout={cfg.layout}"] if cfg.layout else []
    if given and fmt != "npz":
        raise DataError(f"{', '.join(given)} applies to NPZ files, but {path.name} is read as "
                        f"{'CSV' if fmt == 'csv' else fmt}")


def read(path: Path, cfg) -> Read:
    """The file as data.format says (auto: by its extension and, for a CSV, its columns)."""
    check_file(path)
    fmt, reason = (cfg.format, f"data.format={cfg.format}") if cfg.format != "auto" else _by_suffix(path)
    _npz_options(cfg, path, fmt)
    if fmt == "csv":
        return csvfiles.read(path, cfg, "auto", "")
    return READERS[fmt](path, cfg, reason)
