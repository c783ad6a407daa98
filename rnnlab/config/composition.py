"""The one config path: compose with Hydra's Compose API, validate, say what is wrong in one line.

Every way into a run comes through here: `rnnlab train`, `cv` and `augment-preview` before they
launch (`compose_and_validate`: each value of a sweep once; a plain single run `RunComposer` and
`validate_run`: composed once, as hydra.main would, and launched on that config), their Hydra jobs
(`validated`: the RunConfig checked before the launch, or one more validation of a config composed elsewhere),
`rnnlab search` (`Composer`: the space check, every trial, the best trial as an experiment) and
`rnnlab.api.compose` (`compose`). Hydra's and OmegaConf's errors (multi-line, about YAML files
and structured configs) become one line naming the key, with a suggestion when a key or an
option is misspelt: `unknown key 'train.epoch' (did you mean train.epochs?)`.

`setup()` registers the resolvers and the group schemas (config/schema.py) as Hydra structured
configs, `GROUP/_schema`: conf/arch/_base.yaml, conf/reg/_base.yaml, conf/monitor/default.yaml and conf/logger/*.yaml
extend them, so every option of those groups is a typed delta over one default.

Hydra and OmegaConf are imported inside the functions: `rnnlab --help` does not load them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rnnlab.config import schema
from rnnlab.config.groups import group_options
from rnnlab.config.validate import ConfigError, RunConfig, one_line, shorten, unknown_key, unknown_option
from rnnlab.runtime.folders import claim_new_dir
from rnnlab.runtime.io import write_text

CONFIG_MODULE = "rnnlab.conf"
# Groups whose options extend a dataclass schema of config/schema.py, registered as GROUP/_schema.
SCHEMAS = {"arch": "ArchConf", "reg": "RegConf", "monitor": "MonitorConf", "logger": "LoggerConf"}
# Free-form nodes: their keys come from the chosen cell, not from a schema, so an override may add one.
OPEN_NODES = ("arch.cell_options",)

_ready = False


def setup() -> None:
    """Resolvers and structured configs, once per process: before any composition, and before hydra.main."""
    global _ready
    if _ready:
        return
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("rnnlab_suffix"):
        OmegaConf.register_new_resolver("rnnlab_suffix", lambda name: f"_{name}" if name else "")
    if not OmegaConf.has_resolver("rnnlab_new_dir"):
        # conf/config.yaml's default run and sweep folders: claimed (created) when resolved, with -2, -3, ...
        # when the name is taken. Cached per config object, as Hydra's ${now:}, so one run resolves one folder.
        OmegaConf.register_new_resolver("rnnlab_new_dir", _new_dir, use_cache=True)
    if not OmegaConf.has_resolver("rnnlab_pick"):
        # a value by key, for sweeps that pair options: ${rnnlab_pick:${.cell},{rnn:254,gru:153,lstm:132}}
        OmegaConf.register_new_resolver("rnnlab_pick", _pick)
    store = ConfigStore.instance()
    for group, cls in SCHEMAS.items():
        store.store(group=group, name="_schema", node=getattr(schema, cls))
    _ready = True


_claiming = True


def _pick(key, table):
    if key not in table:
        raise ValueError(f"rnnlab_pick: {key!r} is not one of {', '.join(map(str, table))}")
    return table[key]


def _new_dir(path: str) -> str:
    return str(claim_new_dir(path)) if _claiming else path


@contextlib.contextmanager
def folders_unclaimed() -> Iterator[None]:
    """Resolve the default folders without creating them (--cfg all --resolve prints them, runs nothing)."""
    global _claiming
    _claiming = False
    try:
        yield
    finally:
        _claiming = True


def open_keys(overrides: Sequence[str]) -> list[str]:
    """Overrides with ``arch.cell_options.K=V`` written as ``++arch.cell_options.K=V``: Hydra refuses a
    key its config lacks unless told to add it, and a cell's options are not in the YAML. The cell then
    checks the key (one line naming its options when unknown)."""
    return [f"++{o}" if o.startswith(OPEN_NODES) else o for o in overrides]


# ----------------------------------------------------------------------------- Hydra's errors in one line


def explain(exc: Exception, overrides: Sequence[str] = ()) -> str:
    """One line for an error of Hydra's parser or composition (or of OmegaConf underneath)."""
    from hydra.errors import OverrideParseException

    if isinstance(exc, OverrideParseException):
        reasons = [ln for ln in exc.message.strip().splitlines()
                   if not ln.startswith(("Error parsing override", "See https://"))]
        return f"cannot parse override '{shorten(exc.override)}': {' '.join(reasons) or 'bad syntax'}"
    msg = str(exc)
    unreadable = _config_file_error(exc)
    if unreadable:
        return unreadable
    cause = _omegaconf_cause(exc)
    if cause is not None:
        return _explain_omegaconf(cause, msg)
    m = re.search(r"Could not (?:find|load) '([\w/]+)/(\w[\w.-]*)'", msg)
    if m:  # "In 'config': Could not find 'arch/foo'" -> unknown arch 'foo' (choose from: ...)
        group = m.group(1).rsplit("/", 1)[-1]
        try:
            choices = group_options(group)
        except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
            choices = ["?"]
        return unknown_option(group, m.group(2), choices)
    m = re.search(r"Could not override '([^']+)'", msg)
    if m:
        return f"unknown key '{m.group(1)}'" if "append to your config" in msg else " ".join(msg.split())
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    if isinstance(exc, TypeError | ValueError) and not isinstance(exc, ConfigError):
        return f"cannot compose overrides {shorten(list(overrides), 200)}: {first}"  # Hydra trips over e.g. arch=[1,2]
    return first


def _config_file_error(exc: BaseException) -> str | None:
    """`config file PATH: what is wrong` when a YAML file of a config folder (-cd) cannot be read: a syntax
    error, or bytes that are not UTF-8 text (a binary file). Hydra names no file in either case; its file
    source's `load_config` frame holds the path."""
    import yaml

    if not isinstance(exc, yaml.YAMLError | UnicodeDecodeError):
        return None
    path, tb = "a config file", exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "load_config" and "full_path" in tb.tb_frame.f_locals:
            path = str(tb.tb_frame.f_locals["full_path"])
        tb = tb.tb_next
    if isinstance(exc, UnicodeDecodeError):
        return f"config file {path}: not a text file (byte 0x{exc.object[exc.start]:02x} is not UTF-8)"
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    what = ": ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    what = what or str(exc).strip().splitlines()[0]  # a ReaderError (a control character) has no problem
    return f"config file {path}: not valid YAML: {what}{where}"


def _omegaconf_cause(exc: BaseException):
    """The OmegaConf error (with the key it is about) that Hydra's exception wraps, if any."""
    from omegaconf.errors import OmegaConfBaseException

    seen = exc
    for _ in range(8):
        if isinstance(seen, OmegaConfBaseException) and getattr(seen, "full_key", None):
            return seen
        seen = seen.__cause__ or seen.__context__
        if seen is None:
            return None
    return None


def _explain_omegaconf(cause, msg: str) -> str:
    """Unknown keys (struct mode, structured configs) with a did-you-mean; type errors naming the key."""
    from omegaconf import DictConfig
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if not isinstance(cause, ConfigAttributeError | ConfigKeyError):
        return one_line(cause)
    key = str(cause.full_key)
    m = re.search(r"Could not override '([^']+)'", msg)
    wanted = m.group(1) if m else key
    rest = wanted[len(key):] if wanted.startswith(key) else ""  # trian.epochs fails at trian: rest .epochs
    parent = getattr(cause, "parent_node", None)
    known = [k for k in parent.keys() if k != "hydra"] if isinstance(parent, DictConfig) else []
    return unknown_key(key, known, rest)


# ----------------------------------------------------------------------------- composing


def parse(overrides: Sequence[str]) -> list:
    """Hydra's parsed overrides; ConfigError with one line on a syntax error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(explain(exc, overrides)) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (sys.get_int_max_str_digits)
        bad = next((o for o in overrides if _unparsable(o)), None)
        raise ConfigError(f"cannot parse override '{shorten(bad or overrides)}': {str(exc).split(';')[0]}") from None
    for o in parsed:
        if not o.key_or_group:
            raise ConfigError(f"override '{shorten(o.input_line)}' has no key (write KEY=VALUE, e.g. train.epochs=5)")
    return parsed


def _unparsable(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        OverridesParser.create().parse_overrides([override])
    except Exception:  # noqa: BLE001 - only which override it was is wanted here
        return True
    return False


class Composed:
    """One composed config: `cfg` (with Hydra's node), the group `choices`, `plain()` and `validate()`."""

    def __init__(self, cfg):
        self.cfg = cfg

    @property
    def choices(self) -> dict[str, str | None]:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(self.cfg.hydra.runtime.choices)

    def plain(self) -> dict[str, Any]:
        """The config without Hydra's node, unresolved (what a run's .hydra/config.yaml holds)."""
        return plain(self.cfg)

    def validate(self) -> RunConfig:
        from rnnlab.config.validate import validate

        return validate(self.cfg)


class Composer:
    """Hydra's Compose API over rnnlab.conf, plus CONFIG_DIR as with `-cd`: a session that composes
    any number of configs (`with Composer(dir) as c: c.compose(overrides)`)."""

    def __init__(self, config_dir: str | Path | None = None):
        if config_dir is not None:
            check_config_dir(config_dir)
        self.extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir else []
        self._session = None

    def __enter__(self) -> Composer:
        from hydra import initialize_config_module

        setup()
        self._session = initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")
        self._session.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._session.__exit__(*exc_info)

    def compose(self, overrides: Sequence[str]) -> Composed:
        """The config of `rnnlab train OVERRIDES` (one value per key); ConfigError with one line."""
        import yaml
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        overrides = list(overrides)
        try:
            cfg = self._compose(open_keys(overrides))
        except (HydraException, OmegaConfBaseException, TypeError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(explain(exc, overrides)) from None
        return Composed(cfg)

    def _compose(self, overrides: list[str]):
        from hydra import compose

        return compose(config_name="config", overrides=overrides + self.extra, return_hydra_config=True)


class RunComposer(Composer):
    """The config `hydra.main(config_path="pkg://rnnlab.conf")` composes for one run of the task `job`
    (the task function's module name, e.g. `train`): the same search path (a -cd folder where Hydra adds
    it, not as a hydra.searchpath override), job name and shell-style parsing, so the run can be launched
    on this very config (commands/hydra_bridge.py) instead of Hydra composing it twice more. `app`, Hydra's
    app object with its config loader, outlives the session: the launch registers it again."""

    def __init__(self, job: str, config_dir: str | Path | None = None):
        super().__init__(config_dir)
        self.extra = []
        self.job, self.config_dir, self.app = job, config_dir, None

    def __enter__(self) -> RunComposer:
        import os

        from hydra import version
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import create_config_search_path
        from hydra.core.config_search_path import SearchPathQuery

        setup()
        version.setbase("1.3")
        path = create_config_search_path(f"pkg://{CONFIG_MODULE}")
        if self.config_dir is not None:  # as hydra.main adds -cd: after rnnlab.conf, before the schemas
            where = f"file://{os.path.abspath(self.config_dir)}"
            path.prepend("command-line", where, anchor=SearchPathQuery(provider="schema"))
        self.app = Hydra.create_main_hydra2(task_name=self.job, config_search_path=path)
        return self

    def __exit__(self, *exc_info) -> None:
        from hydra.core.global_hydra import GlobalHydra

        GlobalHydra.instance().clear()

    def _compose(self, overrides: list[str]):
        from hydra.types import RunMode

        return self.app.compose_config(config_name="config", overrides=overrides, run_mode=RunMode.RUN)


def check_config_dir(config_dir: str | Path) -> None:
    """A -cd folder must exist: Hydra would warn in two lines and go on without it."""
    path = Path(config_dir)
    if not path.is_dir():
        raise ConfigError(f"config folder {path}: {'is a file' if path.exists() else 'not found'}")


def plain(cfg) -> dict[str, Any]:
    """A composed config as a dict without Hydra's node, unresolved."""
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg, resolve=False)
    out.pop("hydra", None)
    return out


def compose(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> RunConfig:
    """The validated config of ``rnnlab train OVERRIDES`` (``-cd CONFIG_DIR``): one config, so a sweep
    (``a=1,2``) is refused."""
    overrides = [str(o) for o in overrides]
    for o in parse(overrides):
        if o.is_sweep_override():
            raise ConfigError(f"{o.input_line} is a sweep: compose builds one config (sweep with rnnlab train -m)")
    with Composer(config_dir) as c:
        return c.compose(overrides).validate()


# ----------------------------------------------------------------------------- before a launch, and in its jobs

# Hydra's keys composed before a launch: the run and sweep folders (on_first reads them).
FOLDER_OVERRIDES = ("hydra.run.dir=", "hydra.sweep.dir=")

# Configs validated before a launch in this process, by content: a job of the launch that gets the same
# config takes its RunConfig instead of validating again. A few at most are kept (one per sweep value).
_validated: dict[str, RunConfig] = {}
_KEEP = 64


def _key(cfg) -> str:
    return json.dumps(plain(cfg), sort_keys=True, default=str)


def compose_and_validate(overrides: Sequence[str], config_dir: str | Path | None = None,
                         on_first: Callable[[Composed], None] | None = None) -> RunConfig:
    """Before a launch: compose and validate each value of every sweep once (the others at their first
    value, not the product; Hydra's own keys left to Hydra); returns the first RunConfig. The jobs of
    the launch that run in this process find their config validated (`validated`). on_first(composed):
    called with the first variant composed once all are valid (e.g. to resolve its run folder: of Hydra's
    overrides only FOLDER_OVERRIDES are in it)."""
    ours = [o for o in overrides if not is_hydra_key(o) or o.startswith(FOLDER_OVERRIDES)]
    first = None
    with Composer(config_dir) as c:
        for variant in _variants(ours):
            composed = c.compose(variant)
            rc = composed.validate()
            _remember(composed.cfg, rc)
            first = first or (rc, composed)
    if on_first is not None:  # after every variant passed: bad input creates no folder
        on_first(first[1])
    return first[0]


def is_hydra_key(override: str) -> bool:
    """Whether an override sets Hydra's own config (hydra.run.dir=..., hydra/launcher=...)."""
    return override.lstrip("+~").startswith("hydra")


def validate_run(composed: Composed, on_first: Callable[[Composed], None] | None = None) -> RunConfig:
    """compose_and_validate's second half for a config composed with RunComposer (one run, Hydra's keys
    in it): validated and remembered for the job, then on_first(composed)."""
    rc = composed.validate()
    _remember(composed.cfg, rc)
    if on_first is not None:
        on_first(composed)
    return rc


def validated(cfg) -> RunConfig:
    """The RunConfig of a Hydra job's config: the one validated before the launch when this process
    composed the same config, else validated now (which builds no optimizer)."""
    from rnnlab.config.validate import validate

    rc = _validated.get(_key(cfg))
    return copy.deepcopy(rc) if rc is not None else validate(cfg)


def _remember(cfg, rc: RunConfig) -> None:
    while len(_validated) >= _KEEP:
        _validated.pop(next(iter(_validated)))
    _validated[_key(cfg)] = copy.deepcopy(rc)


def _variants(overrides: list[str]) -> Iterator[list[str]]:
    """Each sweep value once, the other sweeps at their first value (not the full product)."""
    base, sweeps = [], []
    for o in parse(overrides):
        key = o.get_key_element()
        if o.is_sweep_override():
            values = list(o.sweep_string_iterator())
            sweeps.append((key, values))
            base.append(f"{key}={values[0]}")
        else:
            base.append(o.input_line)
    yield base
    for key, values in sweeps:
        idx = base.index(f"{key}={values[0]}")
        for v in values[1:]:
            variant = list(base)
            variant[idx] = f"{key}={v}"
            yield variant


# ----------------------------------------------------------------------------- a run's .hydra/ folder


def write_run_config(run_dir, config, overrides, hydra=None) -> None:
    """What Hydra writes into a run's .hydra/ folder: the config, the overrides it came from and (for a
    Hydra job) Hydra's own config. The run writes them once it holds the folder's lock, so a second run
    refused there cannot overwrite them (conf/config.yaml turns Hydra's own copy off)."""
    import yaml
    from omegaconf import OmegaConf

    hydra_dir = Path(run_dir) / ".hydra"
    try:  # resolved: readers of the run (predict, generate, compare) need none of the resolvers it was composed with
        text = OmegaConf.to_yaml(config, resolve=True)
    except Exception:  # an interpolation only Hydra's job context resolves: kept as written
        text = OmegaConf.to_yaml(config)
    write_text(hydra_dir / "config.yaml", text)
    if hydra is not None:
        write_text(hydra_dir / "hydra.yaml", OmegaConf.to_yaml({"hydra": hydra}))
    write_text(hydra_dir / "overrides.yaml", yaml.safe_dump(list(overrides), default_flow_style=False))
