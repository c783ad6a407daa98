"""Digit sequences to reverse (data=reverse_digits): a text file with one sequence per line (blank lines
skipped), or a list of strings from Python. A sequence is digits separated by spaces or not ("3 1 4 1 5"
or "31415"; with data.n_digits > 10, numbers separated by spaces), encoded as the data set encodes its
sources (`seq2seq_tasks.encode_digits`: digit d -> token 3 + d, post-padded to data.max_len)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data import seq2seq_tasks as S
from rnnlab.data.base import DataError
from rnnlab.data.inputs import Inputs

EXAMPLE = "e.g. '3 1 4' or '314'"


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    import pandas as pd

    del cfg
    n_digits, max_len, min_len = meta["n_digits"], meta["max_len"], meta.get("min_len", 1)
    names, lines = _lines(source)
    seqs, bad = [], []
    for name, line in zip(names, lines, strict=True):
        got = _digits(name, line, n_digits, max_len)
        (bad if isinstance(got, str) else seqs).append(got)
    if bad:
        raise DataError(bad[0] + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    lengths = np.array([len(s) for s in seqs])
    padded = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    src, real = S.encode_digits(padded, lengths, max_len)
    rows = pd.DataFrame({"input": [S.digits_text(row[m]) for row, m in zip(src, real, strict=True)]})
    short = int((lengths < min_len).sum())
    notes = [f"{short} of {len(seqs)} sequences are shorter than the {min_len} digits the run was trained on "
             "(data.min_len)"] if short else []
    return Inputs(src, real.astype(dtype), rows, notes=notes)


def _lines(source) -> tuple[list[str], list[str]]:
    """(names, lines): a file's non-blank lines by line number, or a list's items by position."""
    if not isinstance(source, Path):
        if isinstance(source, np.ndarray) or not all(isinstance(s, str) for s in source):
            raise DataError(f"give the digit sequences as strings ({EXAMPLE}), one per sequence")
        if not len(source):
            raise DataError("no digit sequences given")
        return [f"item {i + 1}" for i in range(len(source))], list(source)
    if source.is_dir():
        raise DataError(f"{source} is a folder: give a text file with one digit sequence per line ({EXAMPLE})")
    raw = source.read_bytes()
    if b"\0" in raw[:4096]:
        raise DataError(f"{source.name} is not a text file (give one digit sequence per line, {EXAMPLE})")
    numbered = [(i + 1, line) for i, line in enumerate(raw.decode("utf-8", errors="replace").splitlines())
                if line.strip()]
    if not numbered:
        raise DataError(f"{source.name} has no digit sequences (one per line, {EXAMPLE})")
    return [f"line {i}" for i, _ in numbered], [line for _, line in numbered]


def _digits(name: str, line: str, n_digits: int, max_len: int) -> list[int] | str:
    """The line's digit values, or what is wrong with it (one line naming it)."""
    words = line.split() if n_digits > 10 else [c for c in line if not c.isspace()]
    if not words:
        return f"{name} has no digits ({EXAMPLE})"
    for w in words:
        if not (w.isascii() and w.isdigit()):
            return f"{name}: {w!r} is not a digit ({EXAMPLE})"
        if int(w) >= n_digits:
            return f"{name}: {int(w)} is not one of the run's digits 0-{n_digits - 1} (data.n_digits={n_digits})"
    if len(words) > max_len:
        return f"{name} has {len(words)} digits, but the model reads at most {max_len} (data.max_len)"
    return [int(w) for w in words]
