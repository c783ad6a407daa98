"""Train configs for trials, through the one config path (rnnlab.config.composition), as `rnnlab train`.

A trial is `rnnlab train BASE_OVERRIDES SAMPLED_PARAMS` without Hydra's launcher: the
config is composed and validated by `Composer`, and the trainer is called directly. Before any
trial runs, `check_space` composes every choice and both ends of every range once, so a
bad key, option or value is one line instead of a failed study.
"""

from __future__ import annotations

from typing import Any

from rnnlab.config.composition import Composed, Composer
from rnnlab.config.validate import ConfigError, RunConfig
from rnnlab.search import SearchError
from rnnlab.search.space import Param, override, probe_values

GROUPS = ("arch", "optim", "sched", "reg", "data", "monitor", "logger")
# Keys that change what a run shows, not what it learns: left out of the best experiment.
DISPLAY_KEYS = ("train.progress", "train.plots")


def override_key(text: str) -> str:
    return text.split("=", 1)[0].lstrip("+~")


def check_overrides(overrides: list[str]) -> None:
    """Plain KEY=VALUE overrides only: a sweep belongs in the space, Hydra's own keys have no effect here."""
    from rnnlab.config.composition import parse

    try:
        parsed = parse(overrides)
    except ConfigError as exc:
        raise SearchError(str(exc)) from None
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


def compose_trial(overrides: list[str], config_dir: str | None = None) -> tuple[Composed, RunConfig]:
    """(composed config, validated RunConfig) of one trial; ConfigError when it does not compose or validate."""
    with Composer(config_dir) as c:
        composed = c.compose(overrides)
    return composed, composed.validate()


def check_space(params: dict[str, Param], base: list[str], config_dir: str | None = None) -> RunConfig:
    """Compose and validate the base config with each probe value of each parameter (the others at
    their first value), and each override the space replaces in place of its parameter; returns the
    RunConfig with every parameter at its first value. SearchError names the override or parameter
    value at fault."""

    first = {k: probe_values(p)[0] for k, p in params.items()}
    with Composer(config_dir) as c:
        try:
            base_cfg = c.compose(base)
        except ConfigError as exc:
            raise SearchError(f"overrides: {exc}") from None
        rc = None
        for key, p in params.items():
            for value in probe_values(p):
                if rc is not None and value == first[key]:
                    continue  # composed already, as the first variant
                values = {**first, key: value}
                try:
                    rc_v = c.compose(trial_overrides(base, values)).validate()
                except ConfigError as exc:
                    # The overrides alone may be what is wrong (they may also lack a key the space sets).
                    if rc is None and _fails_alike(base_cfg, str(exc)):
                        raise SearchError(f"overrides: {exc}") from None
                    named = override(key, value) if rc is not None else _culprit(c, base, first, str(exc))
                    raise SearchError(f"search space {named}: {exc}") from None
                rc = rc or rc_v
        for o in replaced(base, params):  # dropped from every trial, but a bad value is still bad input
            others = {k: v for k, v in first.items() if k != override_key(o)}
            try:
                c.compose(trial_overrides(base, others)).validate()
            except ConfigError as exc:
                raise SearchError(f"overrides: {exc}") from None
    return rc


def replaced(overrides: list[str], params: dict[str, Param]) -> list[str]:
    """The overrides of keys the space sets: every trial has the sampled value instead."""
    return [o for o in overrides if override_key(o) in params]


def _culprit(c: Composer, base: list[str], first: dict[str, Any], message: str) -> str:
    """The one first value that alone gives the error, or all of them when none does."""
    for key, value in first.items():
        try:
            composed = c.compose(trial_overrides(base, {key: value}))
        except ConfigError as exc:
            if str(exc) == message:
                return override(key, value)
            continue
        if _fails_alike(composed, message):
            return override(key, value)
    return " ".join(override(k, v) for k, v in first.items())


def _fails_alike(composed: Composed, message: str) -> bool:
    try:
        composed.validate()
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
    with Composer(config_dir) as c:
        composed = c.compose(overrides)
        choices = {g: composed.choices.get(g) for g in GROUPS}
        defaults = c.compose([]).choices
        changed = {g: o for g, o in choices.items() if o is not None and o != defaults.get(g)}
        base = c.compose([f"{g}={o}" for g, o in changed.items()])
    full = composed.plain()
    new, old = flatten(full), flatten(base.plain())
    diff = {k: v for k, v in new.items() if (k not in old or old[k] != v) and k not in DISPLAY_KEYS}
    body: dict[str, Any] = {}
    if changed:
        body["defaults"] = [{f"override /{g}": o} for g, o in changed.items()]
    body.update(nest(diff))
    return full, body


def compose_experiment(config_dir: str, name: str = "best") -> dict[str, Any]:
    """The config `rnnlab train -cd CONFIG_DIR experiment=NAME` composes (to check the written file)."""
    with Composer(config_dir) as c:
        return c.compose([f"experiment={name}"]).plain()

