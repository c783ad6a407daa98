"""Texts to classify (data=imdb): a folder of .txt files (one text each), a text file with one text per
line, or a list of strings from Python; tokenised and encoded with the run's vocabulary, maxlen,
truncation and padding (words the vocabulary lacks become <oov>, as at training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data import text
from rnnlab.data.base import DataError
from rnnlab.data.inputs import Inputs

PREVIEW_WORDS = 12


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    import pandas as pd

    names, docs = _texts(source)
    tokens = [text.tokenize(d, meta["lowercase"], meta["punctuation"]) for d in docs]
    empty = [n for n, t in zip(names, tokens, strict=True) if not t]
    if empty:
        shown = ", ".join(map(str, empty[:5])) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise DataError(f"no words in {shown}: every text needs at least one word")
    ids, mask = text.encode(tokens, meta["vocab"], meta["maxlen"], meta["truncating"], meta["padding"])
    real = mask > 0
    oov = float(np.mean(ids[real] == text.OOV_ID))
    rows = pd.DataFrame({"input": names, "tokens": [len(t) for t in tokens],
                         "text": [" ".join(t[:PREVIEW_WORDS]) for t in tokens]})
    notes = [f"{len(docs)} texts, {oov:.1%} of their kept tokens not in the vocabulary (read as <oov>)"]
    return Inputs(ids.astype(np.int64), mask.astype(dtype), rows, notes=notes)


def _texts(source) -> tuple[list, list[str]]:
    """(names, texts): a folder's .txt files by name, a file's non-blank lines by line number, or a list."""
    if isinstance(source, str):
        source = [source]
    if not isinstance(source, Path):
        docs = [str(d) for d in source]
        if not docs:
            raise DataError("no texts given")
        return list(range(len(docs))), docs
    if source.is_dir():
        files = sorted(source.glob("*.txt"))
        if not files:
            raise DataError(f"{source}: no .txt files (give a folder of .txt files or a file with one text per line)")
        return [f.name for f in files], [f.read_text(encoding="utf-8", errors="replace") for f in files]
    raw = source.read_bytes()
    if b"\0" in raw[:4096]:
        raise DataError(f"{source.name} is not a text file (give one text per line, or a folder of .txt files)")
    lines = raw.decode("utf-8", errors="replace").splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise DataError(f"{source.name} has no text (one text per line)")
    return [f"line {i}" for i, _ in numbered], [line for _, line in numbered]
