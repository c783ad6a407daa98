"""Check a composed config against the schemas; turn every problem into one line.

`validate(cfg)` returns a `RunConfig` of typed pieces that the trainer uses, or
raises `ConfigError` whose message names the key, e.g.
`optim.lr: Value 'abc' could not be converted to Float`,
`arch.hidden_size must be >= 1 (got 0)` or
`unknown key 'train.epoch' (did you mean train.epochs?)`.
Compose configs through `rnnlab.config.composition`, which calls this once per config.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from rnnlab.config.groups import group_options, unknown_option
from rnnlab.config.schema import (
    DATA_SCHEMAS,
    ArchConf,
    CvConf,
    LoggerConf,
    MonitorConf,
    RegConf,
    TrainConf,
    check_optim,
)
from rnnlab.engine.schedules import make_schedule

TOP_KEYS = {"seed", "name", "train", "arch", "optim", "sched", "reg", "data", "monitor", "cv", "logger", "hydra"}


class ConfigError(ValueError):
    """A bad config value; the message is one line meant for the user."""


@dataclass
class RunConfig:
    seed: int
    name: str | None
    arch: ArchConf
    reg: RegConf
    train: TrainConf
    data: Any  # one of the DATA_SCHEMAS dataclasses
    optim: dict[str, Any]
    sched: dict[str, Any]
    monitor: MonitorConf = dataclasses.field(default_factory=MonitorConf)
    cv: CvConf = dataclasses.field(default_factory=CvConf)
    logger: LoggerConf = dataclasses.field(default_factory=LoggerConf)
    overrides: tuple[str, ...] = ()  # what it was composed from (rnnlab.api.compose), not part of the config

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "name": self.name,
            "arch": dataclasses.asdict(self.arch),
            "reg": dataclasses.asdict(self.reg),
            "train": dataclasses.asdict(self.train),
            "data": dataclasses.asdict(self.data),
            "optim": self.optim,
            "sched": self.sched,
            "monitor": dataclasses.asdict(self.monitor),
            "cv": dataclasses.asdict(self.cv),
            "logger": dataclasses.asdict(self.logger),
        }


def did_you_mean(word: str, known: Iterable[str], before: str = "", after: str = "") -> str:
    """" (did you mean BEFORE+MATCH+AFTER?)" for the closest known word, or "" when none is close."""
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1)
    return f" (did you mean {before}{close[0]}{after}?)" if close else ""


def unknown_key(key: str, known: Iterable[str], rest: str = "") -> str:
    """`unknown key 'a.b.c'` with a suggestion for the dotted key's last part among `known` (its
    siblings); `rest` is what follows in an override that went deeper (trian.epochs: rest .epochs)."""
    parent, _, name = key.rpartition(".")
    before = f"{parent}." if parent else ""
    return f"unknown key '{key}{rest}'" + did_you_mean(name, known, before, rest)


# A name becomes part of a folder name (outputs/train/<timestamp>_<name>, outputs/search/<study>): one path
# component of these characters, short enough for the file-name limit (255 bytes) with the timestamp added.
NAME_RE = re.compile(r"^[\w.-]+$")
NAME_MAX_BYTES = 200


def check_folder_name(value: str, what: str) -> None:
    """ConfigError (one line) unless `value` can name a folder: no path separators, not '.' or '..'
    (which would write outside the outputs folder or nest folders), at most NAME_MAX_BYTES bytes."""
    if not NAME_RE.match(value) or not value.strip("."):
        raise ConfigError(f"{what} '{shorten(value)}': use letters, digits, '.', '-' and '_' (it names a folder)")
    if len(value.encode()) > NAME_MAX_BYTES:
        raise ConfigError(f"{what} is {len(value.encode())} bytes long: at most {NAME_MAX_BYTES} (it names a folder, "
                          "and file names are limited to 255 bytes)")


def shorten(text: str, width: int = 60) -> str:
    """`text`, or its start and its length when longer than `width` (a 100,000-digit value stays one line)."""
    text = str(text)
    return text if len(text) <= width else f"{text[:width - 20]}... ({len(text)} characters)"


def one_line(exc: Exception, prefix: str = "") -> str:
    """An OmegaConf error as one line naming its key: `optim.lr: Value 'abc' could not be converted to Float`."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    key = getattr(exc, "full_key", None)
    # OmegaConf phrases type errors as "Value 'abc' of type 'str' could not be ..."
    msg = msg.replace(" of type 'str'", "")
    if msg.endswith("is not Optional"):  # null for a typed field of a structured config, as when merged into one
        types = {f.name: f.type for f in _dataclass_fields(getattr(exc, "object_type", None))}
        typ = types.get(getattr(exc, "key", None))
        msg = f"Incompatible value 'None' for field of type '{typ}'" if isinstance(typ, str) else msg
    if key:
        return f"{prefix}.{key}: {msg}" if prefix else f"{key}: {msg}"
    return f"{prefix}: {msg}" if prefix else msg


def _typed(schema: type, node: Any, prefix: str):
    """Merge `node` into the structured schema (types, unknown keys), then build it (ranges)."""
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{prefix} must be a mapping of keys (got {node!r})")
    extra = [k for k in node.keys() if k not in _fields(schema)]  # added by +KEY=VALUE, even to a typed node
    if extra:
        raise ConfigError(unknown_key(f"{prefix}.{extra[0]}", _fields(schema)))
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", "?")
        raise ConfigError(unknown_key(f"{prefix}.{key}", _fields(schema))) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(one_line(exc, prefix)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _fields(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def _dataclass_fields(cls: Any) -> tuple:
    return dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()


def _python_type(value: Any) -> Any:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, list | ListConfig):
        inner = {_python_type(v) for v in value}
        if inner <= {int, float} and inner:
            return list[float] if float in inner else list[int]
        return list[Any]
    return Any  # None (an optional value) or a nested mapping


@functools.cache
def _defaults_by_name(group: str) -> dict[str, dict[str, Any]]:
    """`name` value -> that file's values, for the YAML files of a group.

    Several files may share a name (warmup_cosine.yaml is `name: warmup`): the first
    file in sorted order whose name matches gives the keys and types.
    """
    out: dict[str, dict[str, Any]] = {}
    for option in group_options(group):
        text = (files("rnnlab.conf") / group / f"{option}.yaml").read_text()
        values = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
        out.setdefault(values.get("name", option), values)
    return out


@functools.cache
def _schema(group: str, name: str) -> type:
    """A dataclass whose fields and types come from the YAML values of option `name`."""
    fields = []
    for key, value in _defaults_by_name(group)[name].items():
        typ = _python_type(value)
        if isinstance(value, list | dict):
            fields.append((key, typ, dataclasses.field(default_factory=lambda v=value: v)))
        else:
            fields.append((key, typ, dataclasses.field(default=value)))
    return dataclasses.make_dataclass(f"{group.title()}{name.title()}Conf", fields)


def _group_dict(cfg: DictConfig, group: str) -> dict[str, Any]:
    node = cfg.get(group)
    known = _defaults_by_name(group)
    if not isinstance(node, DictConfig) or "name" not in node:
        raise ConfigError(f"{group}: missing 'name' (choose from: {', '.join(group_options(group))})")
    if node.name not in known:
        raise ConfigError(unknown_option(f"{group}.name", node.name, sorted(known)))
    return dataclasses.asdict(_typed(_schema(group, node.name), node, group))


def validate(cfg: DictConfig) -> RunConfig:
    """Type- and range-check a composed config (Hydra's own `hydra` node is ignored). Builds no
    optimizer: its ranges come from the schema (`check_optim`); a schedule is built once to check
    its bounds against the run's lr and epochs."""

    unknown = sorted(set(cfg.keys()) - TOP_KEYS)
    if unknown:
        raise ConfigError(unknown_key(unknown[0], sorted(TOP_KEYS - {"hydra"})))
    seed = cfg.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer (got {seed!r})")
    name = cfg.get("name")
    if name is not None and not isinstance(name, str | int):
        raise ConfigError(f"name must be a string (got {shorten(repr(name))})")
    if name is not None:
        check_folder_name(str(name), "name")

    arch = _typed(ArchConf, cfg.get("arch"), "arch")
    reg = _typed(RegConf, cfg.get("reg"), "reg")
    train = _typed(TrainConf, cfg.get("train"), "train")
    data_name = cfg.data.get("name") if isinstance(cfg.get("data"), DictConfig) else None
    if data_name not in DATA_SCHEMAS:
        raise ConfigError(unknown_option("data", str(data_name), DATA_SCHEMAS))
    data = _typed(DATA_SCHEMAS[data_name], cfg.data, "data")
    monitor = _typed(MonitorConf, cfg.monitor, "monitor") if cfg.get("monitor") is not None else MonitorConf()
    cv = _typed(CvConf, cfg.cv, "cv") if cfg.get("cv") is not None else CvConf()

    optim = _group_dict(cfg, "optim")
    sched = _group_dict(cfg, "sched")
    for check in (lambda: check_optim(optim),
                  lambda: make_schedule(sched, base_lr=optim["lr"], epochs=train.epochs, steps_per_epoch=1)):
        try:
            check()
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None
    return RunConfig(
        seed=seed,
        name=None if name is None else str(name),
        arch=arch,
        reg=reg,
        train=train,
        data=data,
        optim=optim,
        sched=sched,
        monitor=monitor,
        cv=cv,
        logger=_typed(LoggerConf, cfg.logger, "logger") if cfg.get("logger") is not None else LoggerConf(),
    )
