"""Run a Hydra app from a Typer command: validate overrides in-process, then hand over argv.

Hydra's parser wants flags before one block of overrides, so the arguments are split
and reordered. Before launching, every override (each value of a sweep) is composed and
validated by the one config path (`rnnlab.config.composition.compose_and_validate`), so a
typo fails in a second with one line instead of inside every job; the jobs then take the
validated config. Each job's outcome is read back from its own folder (commands/outcome.py), so
jobs on other machines are reported too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from rnnlab.config.composition import compose_and_validate, open_keys, setup
from rnnlab.config.validate import ConfigError

__all__ = ["compose_and_validate", "launch", "setup", "split_args"]

# Hydra flags that take a value, and those that don't.
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--experimental-rerun"}
BARE_FLAGS = {"--multirun", "-m", "--resolve", "--hydra-help", "--run", "-r", "--info", "-i"}
INFO_FLAGS = {"--cfg", "-c", "--info", "-i", "--hydra-help"}
# Hydra runs in exactly one of these modes; two of them on one command line is an error.
MODE_FLAGS = {"--multirun": "multirun", "-m": "multirun", "--run": "run", "-r": "run", "--cfg": "cfg", "-c": "cfg",
              "--info": "info", "-i": "info", "--hydra-help": "hydra-help"}


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(hydra flags, overrides) from a mixed argument list."""
    flags, overrides = [], []
    it = iter(range(len(args)))
    for i in it:
        a = args[i]
        if a in VALUE_FLAGS:
            if i + 1 >= len(args):
                raise ConfigError(f"option {a} needs a value")
            flags += [a, args[i + 1]]
            next(it)
        elif a.startswith("--") and "=" in a and a.split("=", 1)[0] in VALUE_FLAGS:
            flags.append(a)
        elif a in BARE_FLAGS:
            flags.append(a)
        elif a.startswith("-"):
            raise ConfigError(f"unknown option '{a}' (Hydra flags: {', '.join(sorted(BARE_FLAGS | VALUE_FLAGS))})")
        else:
            overrides.append(a)
    overrides = open_keys(overrides)
    modes = [f for f in flags if f in MODE_FLAGS or f.split("=", 1)[0] in MODE_FLAGS]
    if len({MODE_FLAGS[f.split("=", 1)[0]] for f in modes}) > 1:
        named = " and ".join(dict.fromkeys(modes))
        raise ConfigError(f"options {named} cannot be combined (use one of: -m, -r, --cfg, --info, --hydra-help)")
    return flags, overrides


def _flag_value(flags: list[str], names: tuple[str, ...]) -> str | None:
    for i, f in enumerate(flags):
        if f in names and i + 1 < len(flags):
            return flags[i + 1]
        for n in names:
            if f.startswith(n + "="):
                return f.split("=", 1)[1]
    return None


def launch(hydra_main: Callable[[], None], prog: str, flags: list[str], overrides: list[str]) -> None:
    """Call a @hydra.main function with argv set to flags + overrides (restored afterwards)."""
    old = sys.argv
    sys.argv = [prog, *flags, *overrides]
    try:
        hydra_main()
    finally:
        sys.argv = old
