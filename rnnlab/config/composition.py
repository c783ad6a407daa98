"""Composition helpers shared by every path that composes a config with Hydra (the CLI's
validation, rnnlab.api, rnnlab search): Hydra's errors as our one-line messages, and the
resolvers the root config uses."""

from __future__ import annotations

import re

from rnnlab.config.groups import group_options


def explain_compose_error(exc: Exception, override_list: list[str]) -> str:
    msg = str(exc)
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    if "Could not find '" in msg or "Could not load '" in msg:
        # "In 'config': Could not find 'arch/foo'" -> unknown arch 'foo' (choose from: ...)
        m = re.search(r"Could not (?:find|load) '([\w/]+)/(\w[\w.-]*)'", msg)
        if m:
            group, option = m.group(1), m.group(2)
            group = group.rsplit("/", 1)[-1]
            try:
                choices = ", ".join(group_options(group))
            except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
                choices = "?"
            return f"unknown {group} '{option}' (choose from: {choices})"
    if "Could not override" in msg:
        m = re.search(r"Could not override '([^']+)'", msg)
        if m and ("append to your config" in msg or "not in struct" in msg):
            return f"unknown key '{m.group(1)}'"
        return " ".join(msg.split())
    if "mismatched input" in msg or "no viable alternative" in msg or "extraneous input" in msg:
        return f"cannot parse overrides {override_list}: {first}"
    return first


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("rnnlab_suffix"):
        OmegaConf.register_new_resolver("rnnlab_suffix", lambda name: f"_{name}" if name else "")


def write_run_config(run_dir, config: dict, overrides) -> None:
    """What Hydra writes into a run's .hydra/ folder: the config and the overrides it came from (for
    runs trained without hydra.main: rnnlab.api, search trials)."""
    from pathlib import Path

    import yaml
    from omegaconf import OmegaConf

    from rnnlab.runtime.io import write_text

    hydra_dir = Path(run_dir) / ".hydra"
    write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(config))
    write_text(hydra_dir / "overrides.yaml", yaml.safe_dump(list(overrides), default_flow_style=False))
