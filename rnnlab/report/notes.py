"""Short lines about a run for the console, the Rich summary table and report.html (standard library only).

    data_line(summary)      # "data: 2,100 training, 450 validation, 450 test windows (450 forecast origins)"
    attempts_line(summary)  # "attempts: 3, kept 1 (train.restarts)" or None
    summary.get("warnings") # the run's warnings themselves (train/chance.py words them)
"""

from __future__ import annotations

from typing import Any


def data_line(summary: Any) -> str | None:
    """The split sizes in the data's unit (sequences, windows), the forecast origins of a windowed test split
    and the file layout the loader read; None before the data was loaded."""
    counts = [summary.get(k) for k in ("n_train", "n_val", "n_test")]
    if any(c is None for c in counts):
        return None
    unit = summary.get("sample_unit") or "sequences"
    line = f"data: {counts[0]:,} training, {counts[1]:,} validation, {counts[2]:,} test {unit}"
    origins = summary.get("n_test_origins")
    if origins is not None:
        line += f" ({origins:,} forecast origin{'' if origins == 1 else 's'})"
    if summary.get("data_format"):
        reason = summary.get("data_format_reason")
        line += f"; format {summary.get('data_format')}" + (f" ({reason})" if reason else "")
    return line


def attempts_line(summary: Any) -> str | None:
    """How many attempts train.restarts made and which one the run kept; None without restarts."""
    attempts = summary.get("attempts") or []
    if len(attempts) < 2:
        return None
    at_chance = sum(bool(a.get("chance")) for a in attempts if isinstance(a, dict))
    return (f"attempts: {len(attempts)} ({at_chance} at chance level), kept attempt {summary.get('kept_attempt')} "
            "(train.restarts)")
