"""UCR/UEA `.ts` files, the time series classification archive's own format (as sktime reads it).

Header lines start with a tag (case-insensitive), comments with # or %; after @data, one case per
line: its dimensions separated by ':', the values of a dimension by ',', `?` a missing value,
the class label last. Cases may differ in length (the dimensions of one case may not).

    @problemName GunPoint
    @timeStamps false
    @univariate true
    @classLabel true 1 2
    @data
    -0.64,-0.64,-0.65:1

Tags read: @problemName, @timeStamps (true is refused: (time, value) tuples are not read),
@missing, @univariate, @dimension(s), @equalLength, @seriesLength, @classLabel (true with the
class names; false, and @targetLabel (regression), are refused), @data; others are ignored.
Labels keep their case (sktime lowercases them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError
from rnnlab.data.seqformats.common import Read, Seqs, listing, missing_flags

COMMENTS = ("#", "%")  # the archive's files use both (sktime skips any line before @data that is not a tag)


@dataclass
class _Header:
    classes: list[str] | None = None
    dimensions: int | None = None
    univariate: bool | None = None
    equal_length: bool | None = None
    series_length: int | None = None
    flags: dict[str, bool] = field(default_factory=dict)


def _text(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read {path} as a .ts file: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                        f"at offset {exc.start})") from None


def _bool(path: Path, no: int, tag: str, words: list[str]) -> bool:
    if not words or words[0].lower() not in ("true", "false"):
        raise DataError(f"{path.name} line {no}: {tag} must be followed by true or false")
    return words[0].lower() == "true"


def _int(path: Path, no: int, tag: str, words: list[str]) -> int:
    if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
        raise DataError(f"{path.name} line {no}: {tag} must be followed by a whole number >= 1")
    return int(words[0])


def _header(path: Path, lines: list[str]) -> tuple[_Header, int]:
    """(the header, index of the first line after @data)."""
    h = _Header()
    for i, raw in enumerate(lines):
        line, no = raw.strip(), i + 1
        if not line or line.startswith(COMMENTS):
            continue
        if not line.startswith("@"):
            raise DataError(f"{path.name} line {no}: data before the @data line (a .ts file starts with @tags)")
        tag, *words = line.split()
        key = tag.lower()
        if key == "@data":
            if words:
                raise DataError(f"{path.name} line {no}: @data takes no value")
            if h.classes is None:
                raise DataError(f"{path.name}: no @classLabel line before @data; seqfile needs class labels "
                                "(@classLabel true followed by the class names)")
            return h, i + 1
        if key == "@timestamps" and _bool(path, no, tag, words):
            raise DataError(f"{path.name}: @timeStamps true ((time, value) tuples) is not supported; save the "
                            "values without time stamps")
        if key == "@targetlabel" and _bool(path, no, tag, words):
            raise DataError(f"{path.name}: @targetLabel true is a regression target; seqfile is classification "
                            "(@classLabel true with class names)")
        if key == "@classlabel":
            if not _bool(path, no, tag, words):
                raise DataError(f"{path.name}: @classLabel false: the file has no class labels, which seqfile needs")
            if len(words) < 2:
                raise DataError(f"{path.name} line {no}: @classLabel true must list the class names")
            h.classes = words[1:]
        elif key in ("@dimension", "@dimensions"):
            h.dimensions = _int(path, no, tag, words)
        elif key == "@serieslength":
            h.series_length = _int(path, no, tag, words)
        elif key == "@univariate":
            h.univariate = _bool(path, no, tag, words)
        elif key == "@equallength":
            h.equal_length = _bool(path, no, tag, words)
        elif key in ("@missing", "@timestamps", "@targetlabel"):
            h.flags[key] = _bool(path, no, tag, words)
    raise DataError(f"{path.name}: no @data line (a .ts file lists its @tags, then @data and one case per line)")


def _values(path: Path, no: int, dim: int, text: str) -> np.ndarray:
    text = text.strip()
    if not text:
        return np.zeros(0)
    tokens = [tok.strip() for tok in text.split(",")]
    try:
        v = np.array(["nan" if tok == "?" else tok for tok in tokens], dtype=np.float64)
    except ValueError:
        bad = next(tok for tok in tokens if tok != "?" and not _is_number(tok))
        raise DataError(f"{path.name} line {no}: {bad!r} in dimension {dim + 1} is not a number "
                        "(values are separated by ',', dimensions by ':', '?' is a missing value)") from None
    if np.isinf(v).any():
        raise DataError(f"{path.name} line {no}: dimension {dim + 1} holds an infinite value")
    return v


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _case(path: Path, no: int, line: str, h: _Header) -> tuple[np.ndarray, str]:
    """((T, D) values, label) of one data line."""
    *dims, label = line.split(":")
    label = label.strip()
    if not dims:
        raise DataError(f"{path.name} line {no}: no ':' before the class label (dimensions are separated by ':', "
                        "the label comes last)")
    if not label:
        raise DataError(f"{path.name} line {no}: no class label after the last ':'")
    if h.dimensions is not None and len(dims) != h.dimensions:
        raise DataError(f"{path.name} line {no}: {len(dims)} dimensions, but @dimensions says {h.dimensions}")
    if h.univariate and len(dims) != 1:
        raise DataError(f"{path.name} line {no}: {len(dims)} dimensions in a file marked @univariate true")
    if label not in h.classes:
        raise DataError(f"{path.name} line {no}: class label {label!r} is not among those @classLabel lists "
                        f"({listing(h.classes)})")
    series = [_values(path, no, d, text) for d, text in enumerate(dims)]
    lengths = sorted({len(s) for s in series})
    if len(lengths) > 1:
        raise DataError(f"{path.name} line {no}: its dimensions have different lengths ({listing(lengths)}); "
                        "seqfile needs one length per sequence")
    if h.equal_length and h.series_length is not None and lengths[0] != h.series_length:
        raise DataError(f"{path.name} line {no}: {lengths[0]} values, but @seriesLength says {h.series_length}")
    return np.stack(series, axis=1), label


def read(path: Path, cfg, reason: str) -> Read:
    lines = _text(path)
    h, start = _header(path, lines)
    cases, labels, line_nos = [], [], []
    n_dims = None
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line or line.startswith(COMMENTS):
            continue
        values, label = _case(path, i + 1, line, h)
        if n_dims is not None and values.shape[1] != n_dims:
            raise DataError(f"{path.name} line {i + 1}: {values.shape[1]} dimensions, but the first case has {n_dims}")
        n_dims = values.shape[1]
        cases.append(values)
        labels.append(label)
        line_nos.append(i + 1)
    if not cases:
        raise DataError(f"{path.name}: no cases after @data")
    lengths = np.array([len(c) for c in cases], dtype=np.int64)
    x = np.full((len(cases), max(int(lengths.max()), 1), n_dims), np.nan)
    for k, c in enumerate(cases):
        x[k, :len(c)] = c
    names = np.array(labels, dtype=object)
    where = np.array(line_nos)
    seqs = Seqs(x, lengths, names, [f"dim_{d}" for d in range(n_dims)],
                lambda idx: f"cases on lines {listing(where[np.asarray(idx)])}")
    incomplete, unfillable = missing_flags(x, lengths, names)
    return Read(seqs, incomplete, unfillable, "ts", reason, "the class labels")
