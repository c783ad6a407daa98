"""Is a CSV long (one time step per row) or wide (one sequence per row)? `format: auto` asks here.

Reading a long file as wide trains on single rows and puts rows of one sequence into train,
validation and test (leakage), so a file that looks long is read as long or refused, never
read as wide. The rules, in order (the label column and data.feature_columns never count):

1. data.id_column and data.time_column both set: long.
2. The id: data.id_column if set; else the columns named like an id (last word id, series,
   seq, sequence, sample, case, subject, patient, participant, trial, session, recording,
   instance, track, entity: `id`, `ID`, `sample_id`, `SampleID`). A column repeats when it
   has at least two values and most rows share their value with another row. If no named
   column repeats (none, or only row ids), a column whose values come in runs may be the id
   (each value on one block of consecutive rows, most rows in blocks of 2+, and more values
   than the label has: a copy of the label is not an id).
3. No id repeats: wide (named ids that do not repeat are row ids, not time steps). More than
   one: refused, naming data.id_column. Headerless columns holding 0..R-1 or 1..R (the index
   pandas writes) are row numbers: never an id, a step or a feature.
4. The time: data.time_column if set; else the one column named like a time (t, time, step,
   timestep, timestamp, date, datetime, index, tick, frame, timepoint, or a name without
   digits starting or ending with time, timestamp, date, datetime, step, timestep). None:
   refused, naming data.time_column and data.format. Several: those holding numbers or
   dates distinct within each id; if they order the rows alike, the first; else refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError
from rnnlab.data.seqformats.common import listing
from rnnlab.data.seqformats.csvparse import columns_of, need_column, time_values

ID_WORDS = frozenset({"id", "ids", "uid", "series", "seq", "sequence", "sample", "case", "subject", "patient",
                      "participant", "trial", "session", "recording", "instance", "track", "entity"})
TIME_NAMES = frozenset({"t", "time", "step", "timestep", "timestamp", "date", "datetime", "index", "tick",
                        "frame", "timepoint", "timeindex"})
TIME_WORDS = frozenset({"time", "timestamp", "date", "datetime", "step", "timestep"})
_NO_TIME_HINT = "t, time, step, timestamp, date, ..."


@dataclass(frozen=True)
class Layout:
    format: str  # "long" or "wide"
    id_column: str | None  # long: the sequence id; wide: None
    time_column: str | None  # long: the step order; wide: None
    reason: str  # why, in words, for meta and the console
    skip: tuple[str, ...] = ()  # row ids and row numbers: neither time steps nor features


def _words(name: str) -> list[str]:
    """'sampleID' -> ['sample', 'id'], 'time_s' -> ['time', 's']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def id_named(name: str) -> bool:
    words = _words(name)
    if not words:
        return False
    last = words[-1]
    return last in ID_WORDS or (last.endswith("id") and last[:-2] in ID_WORDS)


def time_named(name: str) -> bool:
    words = _words(name)
    if not words or any(ch.isdigit() for ch in name):  # t0, step_3: a wide file's step columns
        return False
    return "".join(words) in TIME_NAMES or words[0] in TIME_WORDS or words[-1] in TIME_WORDS


def row_numbers(frame) -> tuple[str, ...]:
    """Columns without a header holding 0..R-1 or 1..R: the index pandas writes with to_csv (a row
    number as a time step or feature would tell the model where the row sits in the file)."""
    rows = np.arange(len(frame))

    def numbers_rows(col) -> bool:
        v = col.to_numpy()
        return v.dtype.kind in "iuf" and (np.array_equal(v, rows) or np.array_equal(v, rows + 1))
    return tuple(c for c in frame.columns if c.startswith("Unnamed: ") and numbers_rows(frame[c]))


def _codes(col) -> tuple[np.ndarray, int]:
    """(value codes of the non-empty cells, number of distinct values)."""
    import pandas as pd

    codes, uniques = pd.factorize(col.dropna().to_numpy(), sort=False)
    return codes, len(uniques)


def _run_lengths(codes: np.ndarray) -> np.ndarray:
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
    return np.diff(np.concatenate([starts, [len(codes)]]))


def repeats(col) -> bool:
    """At least two values, and most rows share their value with another row."""
    codes, n = _codes(col)
    return n >= 2 and float(np.mean(np.bincount(codes)[codes] > 1)) > 0.5


def _in_runs(col, n_labels: int) -> bool:
    v = col.to_numpy()
    if len(v) < 2 or np.count_nonzero(v[1:] != v[:-1]) > len(v) / 2:  # cheap first: a step column changes often
        return False
    codes, n = _codes(col)
    return n > max(n_labels, 1) and len(_run_lengths(codes)) == n and repeats(col)


def _id_story(col, name: str) -> str:
    codes, n = _codes(col)
    runs = _run_lengths(codes)
    if len(runs) != n:
        return f"column '{name}' repeats ({n} values on {len(codes)} rows)"
    lo, hi = int(runs.min()), int(runs.max())
    return f"column '{name}' repeats in runs of {lo if lo == hi else f'{lo}-{hi}'} rows"


def _repeating_ids(frame, path: Path, cfg, others: list[str]) -> tuple[list[str], tuple[str, ...], str]:
    """(id columns that repeat, id columns that do not (a wide file's row ids), how they were found)."""
    if cfg.id_column:
        need_column(frame, path, cfg.id_column, "data.id_column", "id")
        col = cfg.id_column
        return ([col], (), "data.id_column") if repeats(frame[col]) else ([], (col,), "data.id_column")
    named = [c for c in others if id_named(c)]
    repeating = [c for c in named if repeats(frame[c])]
    unique = tuple(c for c in named if c not in repeating)
    if repeating:
        return repeating, unique, "name"
    # no id by name (or only row ids): a column in runs may still be one (a long file's 'name' or 'seq_nr')
    n_labels = frame[cfg.label_column].nunique() if cfg.label_column in frame.columns else 0
    runs = [c for c in others if c not in unique and not time_named(c) and _in_runs(frame[c], n_labels)]
    return runs, unique, "content"


def detect(frame, path: Path, cfg) -> Layout:
    """The layout of a CSV (the rules in the module docstring); a one-line DataError where they cannot tell."""
    if cfg.id_column and cfg.time_column:
        need_column(frame, path, cfg.id_column, "data.id_column", "id")
        need_column(frame, path, cfg.time_column, "data.time_column", "time")
        return Layout("long", cfg.id_column, cfg.time_column,
                      f"data.id_column={cfg.id_column} and data.time_column={cfg.time_column} are set",
                      row_numbers(frame))
    numbers = row_numbers(frame)
    others = [c for c in frame.columns
              if c != cfg.label_column and c not in (cfg.feature_columns or []) and c not in numbers]
    repeating, unique, source = _repeating_ids(frame, path, cfg, others)
    if len(repeating) > 1:
        raise DataError(
            f"{path.name}: columns {', '.join(repr(c) for c in repeating)} all repeat like a sequence id; set "
            "data.id_column (and data.time_column) to read it as long, or data.format=wide if each row is "
            "one sequence"
        )
    if not repeating:
        if cfg.time_column:
            raise DataError(
                f"{path.name}: data.time_column={cfg.time_column} is set but no column repeats like a sequence "
                f"id; set data.id_column (columns: {columns_of(frame)})"
            )
        where = ("data.id_column " if source == "data.id_column" else "column ") + ", ".join(map(repr, unique))
        reason = (f"{where} has a different value on (almost) every row: one sequence per row" if unique
                  else "no column repeats like a sequence id: one sequence per row")
        return Layout("wide", None, None, reason + _numbered(numbers), unique + numbers)
    id_col = repeating[0]
    story = _id_story(frame[id_col], id_col)
    time_col, time_story = _time_column(frame, path, cfg, id_col, f"looks long ({story})", others)
    return Layout("long", id_col, time_col, f"{story}; {time_story}{_numbered(numbers)}", unique + numbers)


def _numbered(numbers: tuple[str, ...]) -> str:
    return f"; {', '.join(map(repr, numbers))} numbers the rows (skipped)" if numbers else ""


def long_columns(frame, path: Path, cfg) -> Layout:
    """data.format=long: the id and time columns, set or found by name and content as `auto` finds them
    (here an id need not repeat: sequences of one step are allowed)."""
    numbers = row_numbers(frame)
    others = [c for c in frame.columns
              if c != cfg.label_column and c not in (cfg.feature_columns or []) and c not in numbers]
    repeating, unique, _ = _repeating_ids(frame, path, cfg, others)
    pool = repeating or list(unique)
    if len(pool) != 1:
        found = (f"columns {', '.join(map(repr, pool))} all look like a sequence id" if pool
                 else "no column looks like a sequence id (named like id, sample_id, series, ... or in runs)")
        raise DataError(
            f"{path.name} is read as long (data.format=long) but {found}; set data.id_column "
            f"(columns: {columns_of(frame)})"
        )
    time_col, time_story = _time_column(frame, path, cfg, pool[0], "is read as long (data.format=long)", others)
    return Layout("long", pool[0], time_col, f"data.format=long; id column '{pool[0]}', {time_story}",
                  tuple(c for c in unique if c != pool[0]) + numbers)


def _time_column(frame, path: Path, cfg, id_col: str, looks: str, others: list[str]) -> tuple[str, str]:
    """(time column, why) of a long file; `looks` says why the file is long, for the refusals."""
    if cfg.time_column:
        need_column(frame, path, cfg.time_column, "data.time_column", "time")
        return cfg.time_column, f"data.time_column={cfg.time_column}"
    named = [c for c in others if c != id_col and time_named(c)]
    if not named:
        raise DataError(
            f"{path.name} {looks} but has no column named like a time ({_NO_TIME_HINT}); set "
            f"data.time_column, or data.format=wide if each row is one sequence (columns: {columns_of(frame)})"
        )
    if len(named) == 1:  # the long reader checks its values (text, repeated times) with rows named
        return named[0], f"'{named[0]}' is time-like"
    orders = {c: _order_within_ids(frame, id_col, c) for c in named}
    usable = [c for c in named if orders[c] is not None]
    if usable and all(np.array_equal(orders[c], orders[usable[0]]) for c in usable[1:]):
        verb = "gives" if len(usable) == 2 else "give"
        alike = f" ({listing(repr(c) for c in usable[1:])} {verb} the same order)" if len(usable) > 1 else ""
        return usable[0], f"'{usable[0]}' is time-like{alike}"
    raise DataError(
        f"{path.name} {looks} but its time column is ambiguous: "
        f"{listing(repr(c) for c in (usable if len(usable) > 1 else named))}; set data.time_column"
    )


def _order_within_ids(frame, id_col: str, time_col: str) -> np.ndarray | None:
    """The row order by (id, time), or None if the column is not numbers or dates distinct within each id."""
    import pandas as pd

    values, bad = time_values(frame[time_col])
    ids = pd.factorize(frame[id_col].to_numpy(), sort=False)[0]
    if bad.any() or np.isnan(values).any():
        return None
    order = np.lexsort((values, ids))
    same = (ids[order][1:] == ids[order][:-1]) & (values[order][1:] == values[order][:-1])
    return None if same.any() else order
