"""Train configs for trials: Hydra's Compose API over conf/, the same path `rnnlab train` validates with.

A trial is `rnnlab train BASE_OVERRIDES SAMPLED_PARAMS` without Hydra's launcher: the
config is composed and validated here, and the trainer is called directly. Before any
trial runs, `check_space` composes every choice and both ends of every range once, so a
bad key, option or value is one line instead of a failed study.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnlab.config.validate import ConfigError
from rnnlab.search import SearchError
from rnnlab.search.space import Param, override

GROUPS = ("arch", "optim", "sched", "reg", "data", "monitor", "logger")
# Keys that change what a run shows, not what it learns: left out of the best experiment.
DISPLAY_KEYS = ("train.progress", "train.plots")


def override_key(text: str) -> str:
    return text.split("=", 1)[0].lstrip("+~")


def check_overrides(overrides: list[str]) -> None:
    """Plain KEY=VALUE overrides only: a sweep belongs in the space, Hydra's own keys have no effect here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from rnnlab.config.composition import explain_compose_error

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise SearchError(explain_compose_error(exc, overrides)) from None
    for o in parsed:
        key = o.get_key_element()
        if key.split("/")[0].split(".")[0] == "hydra":
            raise SearchError(f"{o.input_line}: Hydra's own settings have no effect in rnnlab search")
        if o.is_sweep_override():
            raise SearchError(f"{o.input_line}: a sweep in the overrides; search it with --param (e.g. "
                              f"--param {key}=choice:A,B), or run a grid with rnnlab train -m")


def trial_overrides(base: list[str], values: dict[str, Any]) -> list[str]:
    """Base overrides, minus those the space sets, then the sampled values (the space wins)."""
    return [o for o in base if override_key(o) not in values] + [override(k, v) for k, v in values.items()]


@contextlib.contextmanager
def _hydra(config_dir: str | None = None) -> Iterator[list[str]]:
    from hydra import initialize_config_module

    from rnnlab.config.composition import register_resolvers

    register_resolvers()
    extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir else []
    with initialize_config_module(config_module="rnnlab.conf", version_base="1.3"):
        yield extra


def _compose(overrides: list[str], extra: list[str]):
    """(full config with its hydra node, group choices); ConfigError with one line when it fails."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rnnlab.config.composition import explain_compose_error
    from rnnlab.config.validate import open_keys

    try:
        cfg = compose(config_name="config", overrides=open_keys(overrides) + extra, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(explain_compose_error(exc, overrides)) from None
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    return cfg, {g: choices.get(g) for g in GROUPS}


def plain(cfg) -> dict[str, Any]:
    """The composed config as a dict without Hydra's node (what .hydra/config.yaml holds)."""
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg, resolve=False)
    out.pop("hydra", None)
    return out


def compose_trial(overrides: list[str], config_dir: str | None = None):
    """(composed config, validated RunConfig) of one trial; ConfigError when it does not compose or validate."""
    from rnnlab.config.validate import validate

    with _hydra(config_dir) as extra:
        cfg, _ = _compose(overrides, extra)
    return cfg, validate(cfg)


def check_space(params: dict[str, Param], base: list[str], config_dir: str | None = None):
    """Compose and validate the base config with each probe value of each parameter (the others at
    their first value); returns the RunConfig with every parameter at its first value. SearchError
    names the override or parameter value at fault."""
    from rnnlab.config.validate import validate
    from rnnlab.search.space import probe_values

    first = {k: probe_values(p)[0] for k, p in params.items()}
    with _hydra(config_dir) as extra:
        try:
            base_cfg, _ = _compose(base, extra)
        except ConfigError as exc:
            raise SearchError(f"overrides: {exc}") from None
        rc = None
        for key, p in params.items():
            for value in probe_values(p):
                if rc is not None and value == first[key]:
                    continue  # composed already, as the first variant
                values = {**first, key: value}
                try:
                    rc_v = validate(_compose(trial_overrides(base, values), extra)[0])
                except ConfigError as exc:
                    # The overrides alone may be what is wrong (they may also lack a key the space sets).
                    if rc is None and _fails_alike(validate, base_cfg, str(exc)):
                        raise SearchError(f"overrides: {exc}") from None
                    named = override(key, value) if rc is not None else _culprit(validate, base, first, str(exc),
                                                                                 extra)
                    raise SearchError(f"search space {named}: {exc}") from None
                rc = rc or rc_v
    return rc


def _culprit(validate, base: list[str], first: dict[str, Any], message: str, extra: list[str]) -> str:
    """The one first value that alone gives the error, or all of them when none does."""
    for key, value in first.items():
        try:
            cfg = _compose(trial_overrides(base, {key: value}), extra)[0]
        except ConfigError as exc:
            if str(exc) == message:
                return override(key, value)
            continue
        if _fails_alike(validate, cfg, message):
            return override(key, value)
    return " ".join(override(k, v) for k, v in first.items())


def _fails_alike(validate, cfg, message: str) -> bool:
    try:
        validate(cfg)
    except ConfigError as exc:
        return str(exc) == message
    return False


# ----------------------------------------------------------------------------- the best trial as an experiment


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def experiment_delta(overrides: list[str], config_dir: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(full config, experiment body) of a trial. The body is a `# @package _global_` delta: an
    `override /GROUP: OPTION` for each group that differs from the root defaults, then every value
    that differs from those groups' files. Computed from the composed configs, not from the override
    text, so `experiment=...`, `+key=...` and group-then-value overrides all come out right."""
    with _hydra(config_dir) as extra:
        cfg, choices = _compose(overrides, extra)
        _, defaults = _compose([], extra)
        changed = {g: o for g, o in choices.items() if o is not None and o != defaults.get(g)}
        base_cfg, _ = _compose([f"{g}={o}" for g, o in changed.items()], extra)
    full = plain(cfg)
    new, old = flatten(full), flatten(plain(base_cfg))
    diff = {k: v for k, v in new.items() if (k not in old or old[k] != v) and k not in DISPLAY_KEYS}
    body: dict[str, Any] = {}
    if changed:
        body["defaults"] = [{f"override /{g}": o} for g, o in changed.items()]
    body.update(nest(diff))
    return full, body


def compose_experiment(config_dir: str, name: str = "best") -> dict[str, Any]:
    """The config `rnnlab train -cd CONFIG_DIR experiment=NAME` composes (to check the written file)."""
    with _hydra(config_dir) as extra:
        cfg, _ = _compose([f"experiment={name}"], extra)
    return plain(cfg)
