"""The one way rnnlab makes a Rich console (tables, progress, one-line errors).

On a terminal Rich uses the terminal's width. Piped into a file or a CI log it would use 80
columns, cutting the run folders and overrides of every table short ('…'); there the width is
`COLUMNS` when set (Rich reads it), else `WIDTH`. Tables never grow to it: a narrow table stays
narrow.
"""

from __future__ import annotations

import os

from rich.console import Console

WIDTH = 160


def make_console(stderr: bool = True, **kwargs) -> Console:
    """A Rich console on stderr (stdout with stderr=False; `file=` for a test's buffer)."""
    console = Console(stderr=stderr, **kwargs)
    if not console.is_terminal and "width" not in kwargs and not os.environ.get("COLUMNS", "").strip().isdigit():
        console.width = WIDTH
    return console
