"""The config groups and their options, read from the YAML files in conf/ (imports nothing heavy:
`rnnlab --help` lists them)."""

from __future__ import annotations

from importlib.resources import files

# The groups a user picks options of, in the order help lists them.
GROUPS = ("arch", "optim", "sched", "reg", "data", "monitor", "logger", "experiment", "debug")


def group_options(group: str) -> list[str]:
    """The option names of a config group (the YAML files in conf/<group>/; a name starting with
    "_" is a shared base the options build on, not an option)."""
    folder = files("rnnlab.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml") and not p.name.startswith("_"))
