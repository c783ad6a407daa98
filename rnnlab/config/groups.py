"""The config groups and their options, read from the YAML files in conf/ (imports nothing heavy:
`rnnlab --help` lists them)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from importlib.resources import files

# The groups a user picks options of, in the order help lists them.
GROUPS = ("arch", "optim", "sched", "reg", "data", "monitor", "logger", "experiment", "debug")


def group_options(group: str) -> list[str]:
    """The option names of a config group (the YAML files in conf/<group>/; a name starting with
    "_" is a shared base the options build on, not an option)."""
    folder = files("rnnlab.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml") and not p.name.startswith("_"))


def unknown_option(what: str, option: str, choices: Iterable[str]) -> str:
    """`unknown arch 'lstn' (choose from: ...; did you mean lstm?)`."""
    choices = list(choices)
    close = difflib.get_close_matches(option, choices, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown {what} '{option}' (choose from: {', '.join(choices)}{hint})"
