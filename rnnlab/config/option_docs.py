"""The keys of a config option with their defaults and the comments above them in its YAML file, which
are the keys' one documentation: `rnnlab train data=csv --help` lists them.

    doc = read_option("data", "sp500")     # csv's keys (its defaults list) with sp500's values
    chosen_options(["experiment=sp500_30day", "arch=gru"])   # {"data": "sp500", "arch": "gru", "optim": "adam"}

An option file opens with a comment about the option; a key's comment is the comment block right above
it (a key without one shows none). `defaults:` is followed as Hydra does: the listed options of the
same group first (`_schema`, a structured config, has no file), then the file itself (`_self_`, last
when not listed). Reads the files with PyYAML only: `rnnlab train --help` does not start Hydra.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any

from rnnlab.config.groups import group_options, unknown_option

# The groups whose chosen option `rnnlab train --help` details, in this order.
DETAILED = ("data", "arch", "optim")
_KEY = re.compile(r"([A-Za-z_]\w*):(.*)")
_SKIPPED = {"defaults", "name"}  # the defaults list, and the option's own name (picked with GROUP=NAME)


class UnknownOption(ValueError):
    """GROUP=NAME names no file of conf/GROUP/: the message is one line."""


@dataclass(frozen=True)
class Key:
    name: str
    value: str  # the default, as YAML writes it
    comment: str  # the comment block right above the key, on one line ("" when none)


@dataclass
class OptionDoc:
    group: str
    option: str
    about: str  # the file's opening comment
    keys: dict[str, Key]


def read_option(group: str, option: str) -> OptionDoc:
    """The keys of conf/GROUP/OPTION.yaml, following its defaults list; UnknownOption for a missing file."""
    if option not in group_options(group):
        raise UnknownOption(unknown_option(group, option, group_options(group)))
    return _read(group, option)


def _read(group: str, option: str) -> OptionDoc:
    import yaml

    text = (files("rnnlab.conf") / group / f"{option}.yaml").read_text(encoding="utf-8")
    about, own = _parse(text)
    data = yaml.safe_load(text) or {}
    own = {k: key if key.value else replace(key, value=flow(data.get(k))) for k, key in own.items()}
    defaults = [d for d in data.get("defaults") or [] if isinstance(d, str)]
    keys: dict[str, Key] = {}
    for entry in defaults if "_self_" in defaults else [*defaults, "_self_"]:
        if entry == "_self_":
            _merge(keys, own)
        elif (files("rnnlab.conf") / group / f"{entry}.yaml").is_file():
            _merge(keys, _read(group, entry).keys)
    return OptionDoc(group, option, about, keys)


def _parse(text: str) -> tuple[str, dict[str, Key]]:
    """(the opening comment, the top-level keys with their raw values and comments)."""
    lines = text.splitlines()
    about = []
    while lines and lines[0].startswith("#"):
        line = lines.pop(0)
        if not line.startswith("# @package"):
            about.append(line[1:].strip())
    keys, comment = {}, []
    for line in lines:
        if line.startswith("#"):
            comment.append(line[1:].strip())
            continue
        m = _KEY.fullmatch(line.rstrip())
        if m and m.group(1) not in _SKIPPED:
            keys[m.group(1)] = Key(m.group(1), m.group(2).strip(), " ".join(comment))
        comment = []
    return " ".join(about), keys


def _merge(keys: dict[str, Key], later: dict[str, Key]) -> None:
    """A later file's value wins; its comment too, when it has one."""
    for name, key in later.items():
        earlier = keys.get(name)
        keys[name] = key if key.comment or earlier is None else replace(key, comment=earlier.comment)


def flow(value: Any) -> str:
    """A value as YAML writes it on one line (null, true, [1, 2], {a: 1})."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


# ----------------------------------------------------------------------------- what a command line picks


def chosen_options(args: list[str]) -> dict[str, str]:
    """The option of each DETAILED group that `rnnlab train ARGS` composes: GROUP=NAME on the command line,
    else the one an `experiment=NAME` picks, else conf/config.yaml's default. UnknownOption for a name
    no file has (an experiment's included)."""
    import yaml

    given = {k: _first(v) for k, v in (a.lstrip("+").split("=", 1) for a in args
                                         if "=" in a and not a.startswith(("-", "~")))}
    root = yaml.safe_load((files("rnnlab.conf") / "config.yaml").read_text(encoding="utf-8"))
    chosen = {g: str(v) for d in root["defaults"] if isinstance(d, dict) for g, v in d.items() if g in DETAILED}
    extra_dir = bool({"-cd", "--config-dir"} & {a.split("=", 1)[0] for a in args})
    if given.get("experiment") and not (extra_dir and given["experiment"] not in group_options("experiment")):
        chosen.update(experiment_options(given["experiment"]))  # (one in a -cd folder: not read here)
    for group in DETAILED:
        if given.get(group):
            chosen[group] = given[group]
        if chosen[group] not in group_options(group):
            raise UnknownOption(unknown_option(group, chosen[group], group_options(group)))
    return chosen


def _first(value: str) -> str:
    """A sweep's first value (`arch=rnn,gru -m --help` details rnn); "" for one Hydra would compute."""
    return "" if any(c in value for c in "()[]{}$") else value.split(",")[0].strip()


def experiment_options(name: str) -> dict[str, str]:
    """The options an experiment file picks (`override /data: sp500`)."""
    import yaml

    if name not in group_options("experiment"):
        raise UnknownOption(unknown_option("experiment", name, group_options("experiment")))
    data = yaml.safe_load((files("rnnlab.conf") / "experiment" / f"{name}.yaml").read_text(encoding="utf-8"))
    picked = {}
    for entry in data.get("defaults") or []:
        for key, value in (entry.items() if isinstance(entry, dict) else ()):
            group = key.removeprefix("override").strip().lstrip("/")
            if group in DETAILED:
                picked[group] = str(value)
    return picked
