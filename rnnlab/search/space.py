"""The search space: parameters from a `conf/search/*.yaml` file and `--param KEY=SPEC`, checked in full.

A parameter is a config key (`optim.lr`, `arch.hidden_size`) or a config group (`arch`)
with one of three kinds:

* ``float`` low..high, optionally ``log`` scale or a ``step``;
* ``int`` low..high (both included), optionally ``log`` scale or a ``step``;
* ``choice`` among listed values (group options, numbers, strings, booleans).

On the command line: ``float:1e-4:1e-1:log``, ``float:0:0.5:0.1`` (step 0.1),
``int:16:128:16`` (step 16), ``int:1:256:log``, ``choice:rnn,lstm,gru``. In a file:
``{type: float, low: 1e-4, high: 1e-1, log: true}``, ``{type: choice, values: [rnn, gru]}``.
Every problem is one line naming the parameter (`SearchError`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from rnnlab.search import SearchError

TYPES = ("float", "int", "choice")
FIELDS = ("type", "low", "high", "step", "log", "values")
FILE_KEYS = ("objective", "params", "overrides")
KEY_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
# A Hydra override value that needs no quotes.
PLAIN_RE = re.compile(r"^[\w.+\-/]+$")


@dataclass(frozen=True)
class Param:
    key: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    values: tuple = ()

    def describe(self) -> str:
        if self.type == "choice":
            return "choice " + ", ".join(format_value(v) for v in self.values)
        extra = " log" if self.log else (f" step {format_value(self.step)}" if self.step is not None else "")
        return f"{self.type} {format_value(self.low)}..{format_value(self.high)}{extra}"


@dataclass
class SpaceFile:
    path: Path
    params: dict[str, Param] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    metric: str | None = None
    direction: str | None = None


# ----------------------------------------------------------------------------- parsing


def _number(key: str, name: str, value: Any, integer: bool) -> float | int:
    # YAML 1.1 reads 1e-4 (no dot) as a string, so numbers may arrive as text.
    if isinstance(value, bool) or value is None:
        raise SearchError(f"{key}: {name} must be a number (got {value!r})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SearchError(f"{key}: {name} must be a number (got {value!r})") from None
    if not math.isfinite(number):
        raise SearchError(f"{key}: {name} must be finite (got {value!r})")
    if integer:
        if number != int(number):
            raise SearchError(f"{key}: {name} of an int range must be a whole number (got {value!r})")
        return int(number)
    return number


def _scalar(text: str) -> Any:
    """A choice value typed like YAML (1 -> int, 0.5 -> float, true -> bool, null -> None, else str)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", value):
        return float(value)  # YAML 1.1 keeps 1e-3 (no dot) a string
    return value if value is None or isinstance(value, int | float | bool | str) else text


def make_param(key: str, spec: Any) -> Param:
    """A checked Param from a file entry {type, low, high, step, log, values}."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise SearchError(f"parameter '{key}': not a config key (write e.g. optim.lr or arch)")
    if not isinstance(spec, dict):
        raise SearchError(f"{key}: give a mapping such as {{type: float, low: 0.001, high: 0.1}} (got {spec!r})")
    unknown = sorted(set(spec) - set(FIELDS))
    if unknown:
        raise SearchError(f"{key}: unknown field '{unknown[0]}' (fields: {', '.join(FIELDS)})")
    kind = spec.get("type")
    if kind not in TYPES:
        raise SearchError(f"{key}: unknown type '{kind}' (use float, int or choice)")
    if kind == "choice":
        return _choice(key, spec)
    return _range(key, kind, spec)


def _choice(key: str, spec: dict) -> Param:
    extra = sorted(set(spec) & {"low", "high", "step", "log"})
    if extra:
        raise SearchError(f"{key}: a choice takes values, not {extra[0]}")
    values = spec.get("values")
    if not isinstance(values, list | tuple):
        raise SearchError(f"{key}: choice needs a list of values (got {values!r})")
    if not values:
        raise SearchError(f"{key}: choice needs at least one value")
    for v in values:
        if not (v is None or isinstance(v, str | int | float | bool)):
            raise SearchError(f"{key}: choice values must be numbers, strings or booleans (got {v!r})")
    if len(set(map(repr, values))) != len(values):
        raise SearchError(f"{key}: choice lists a value twice ({', '.join(map(format_value, values))})")
    return Param(key, "choice", values=tuple(values))


def _range(key: str, kind: str, spec: dict) -> Param:
    if "values" in spec:
        raise SearchError(f"{key}: a {kind} range takes low and high, not values (use type: choice)")
    if "low" not in spec or "high" not in spec:
        raise SearchError(f"{key}: a {kind} range needs low and high")
    integer = kind == "int"
    low = _number(key, "low", spec["low"], integer)
    high = _number(key, "high", spec["high"], integer)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SearchError(f"{key}: log must be true or false (got {log!r})")
    step = spec.get("step")
    if step is not None:
        step = _number(key, "step", step, integer)
        if step <= 0:
            raise SearchError(f"{key}: step must be > 0 (got {format_value(step)})")
    if low >= high:
        raise SearchError(f"{key}: low must be below high (got low={format_value(low)}, high={format_value(high)})")
    if log and low <= 0:
        raise SearchError(f"{key}: log scale needs low > 0 (got low={format_value(low)})")
    if log and step is not None:
        raise SearchError(f"{key}: use either log or step, not both")
    if step is not None:
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
            raise SearchError(f"{key}: high - low ({format_value(high - low)}) must be a multiple of step "
                              f"({format_value(step)})")
    return Param(key, kind, low=low, high=high, step=step, log=log)


def parse_cli(text: str) -> Param:
    """A Param from `KEY=float:LOW:HIGH[:log|:STEP]`, `KEY=int:LOW:HIGH[:log|:STEP]` or `KEY=choice:A,B,...`."""
    if "=" not in text:
        raise SearchError(f"--param {text}: write KEY=SPEC, e.g. optim.lr=float:1e-4:1e-1:log or arch=choice:rnn,gru")
    key, spec = (s.strip() for s in text.split("=", 1))
    kind, _, rest = spec.partition(":")
    if kind == "choice":
        values = [_scalar(v.strip()) for v in rest.split(",")] if rest.strip() else []
        return make_param(key, {"type": "choice", "values": values})
    if kind not in TYPES:
        raise SearchError(f"--param {text}: unknown type '{kind}' (use float:LOW:HIGH[:log|:STEP], "
                          "int:LOW:HIGH[:log|:STEP] or choice:A,B,...)")
    parts = rest.split(":") if rest else []
    if len(parts) not in (2, 3):
        raise SearchError(f"--param {text}: write {kind}:LOW:HIGH, {kind}:LOW:HIGH:log or {kind}:LOW:HIGH:STEP")
    entry: dict[str, Any] = {"type": kind, "low": parts[0], "high": parts[1]}
    if len(parts) == 3:
        if parts[2] == "log":
            entry["log"] = True
        else:
            entry["step"] = parts[2]
    return make_param(key, entry)


def find_space_file(name: str) -> Path:
    """A path, or a name in conf/search/ (with or without .yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    folder = files("rnnlab.conf") / "search"
    stem = name[:-5] if name.endswith(".yaml") else name
    candidate = folder / f"{stem}.yaml"
    if "/" not in name and candidate.is_file():
        return Path(str(candidate))
    shipped = ", ".join(space_names()) or "none"
    raise SearchError(f"search space '{name}' not found (a YAML file, or one of conf/search: {shipped})")


def space_names() -> list[str]:
    folder = files("rnnlab.conf") / "search"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_space_file(name: str) -> SpaceFile:
    import yaml

    path = find_space_file(name)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SearchError(f"{path}: not valid YAML ({first})") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SearchError(f"{path}: expected a mapping with objective, params and overrides")
    unknown = sorted(set(doc) - set(FILE_KEYS))
    if unknown:
        raise SearchError(f"{path}: unknown key '{unknown[0]}' (keys: {', '.join(FILE_KEYS)})")
    out = SpaceFile(path=path)
    objective = doc.get("objective") or {}
    if not isinstance(objective, dict) or set(objective) - {"metric", "direction"}:
        raise SearchError(f"{path}: objective takes metric and direction, e.g. {{metric: val_loss, "
                          "direction: minimize}")
    out.metric, out.direction = objective.get("metric"), objective.get("direction")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise SearchError(f"{path}: params must map config keys to ranges")
    out.params = {str(k): make_param(str(k), v) for k, v in params.items()}
    overrides = doc.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise SearchError(f"{path}: overrides must be a list of KEY=VALUE strings")
    out.overrides = list(overrides)
    return out


# ----------------------------------------------------------------------------- using a space


def format_value(value: Any) -> str:
    """A value as a Hydra override writes it (true, null, 0.001, 'a b')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if PLAIN_RE.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def override(key: str, value: Any) -> str:
    return f"{key}={format_value(value)}"


def grid_values(p: Param) -> list[Any]:
    """Every value of a parameter for --sampler grid; float ranges need a step."""
    if p.type == "choice":
        return list(p.values)
    if p.type == "int":
        return list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
    if p.step is None:
        raise SearchError(f"{p.key}: --sampler grid needs a step for a float range (write float:LOW:HIGH:STEP "
                          "or use choice)")
    n = round((p.high - p.low) / p.step)
    return [round(p.low + i * p.step, 12) for i in range(n + 1)]


def probe_values(p: Param) -> list[Any]:
    """The values composed before any trial runs: every choice, and both ends of a range."""
    return list(p.values) if p.type == "choice" else [p.low, p.high]


def distribution(p: Param):
    import optuna.distributions as D

    if p.type == "choice":
        return D.CategoricalDistribution(list(p.values))
    if p.type == "int":
        return D.IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
    return D.FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)


def suggest(trial, p: Param) -> Any:
    """Ask the trial for a value of the parameter (its name in the study is the config key)."""
    if p.type == "choice":
        return trial.suggest_categorical(p.key, list(p.values))
    if p.type == "int":
        return trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.key, float(p.low), float(p.high), step=p.step, log=p.log)
