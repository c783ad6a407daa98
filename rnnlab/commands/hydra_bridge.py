"""Run a Hydra app from a Typer command: validate overrides in-process, then hand over argv.

Hydra's parser wants flags before one block of overrides, so the arguments are split
and reordered. Before launching, every override (each value of a sweep) is composed and
validated by the one config path (`rnnlab.config.composition.compose_and_validate`), so a
typo fails in a second with one line instead of inside every job; the jobs then take the
validated config. Each job's outcome is read back from its own folder (commands/outcome.py), so
jobs on other machines are reported too.

A plain single run (no sweep, no mode flag) composes its config once: `prepare` composes it as
hydra.main would (`RunComposer`: Hydra's keys included), validates it, and `OneRun.launch` runs the
job on that config as Hydra's `run` does (logging, callbacks, `run_job` in hydra.run.dir). Through
hydra.main the same run composed it twice more (Hydra's mode detection, then its run), 0.2-0.6 s
each. Multiruns, --cfg/--info and anything unusual go through hydra.main as before.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rnnlab.config import composition as C
from rnnlab.config.composition import compose_and_validate, open_keys, parse, setup
from rnnlab.config.validate import ConfigError

__all__ = ["compose_and_validate", "launch", "prepare", "setup", "split_args"]

# Hydra flags that take a value, and those that don't.
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--experimental-rerun"}
BARE_FLAGS = {"--multirun", "-m", "--resolve", "--hydra-help", "--run", "-r", "--info", "-i"}
INFO_FLAGS = {"--cfg", "-c", "--info", "-i", "--hydra-help"}
# Hydra runs in exactly one of these modes; two of them on one command line is an error.
MODE_FLAGS = {"--multirun": "multirun", "-m": "multirun", "--run": "run", "-r": "run", "--cfg": "cfg", "-c": "cfg",
              "--info": "info", "-i": "info", "--hydra-help": "hydra-help"}
# The flags of a plain single run, which `prepare` composes once (any other goes through hydra.main).
ONE_RUN_FLAGS = {"--run", "-r", "--config-dir", "-cd"}


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
    with _argv([prog, *flags, *overrides]):
        hydra_main()


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    old = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = old


# ----------------------------------------------------------------------------- a single run, composed once


def prepare(task_function, flags: list[str], overrides: list[str],
            on_first: Callable[[C.Composed], None] | None = None) -> OneRun | None:
    """Before a launch: compose and validate (ConfigError: one line). A plain single run gives the OneRun to
    launch on its config; anything else None, after `compose_and_validate` (the launch goes through hydra.main)."""
    config_dir = _flag_value(flags, ("--config-dir", "-cd"))
    one = _compose_one_run(task_function, flags, overrides, config_dir)
    if one is None:
        compose_and_validate(overrides, config_dir, on_first=on_first)
        return None
    app, composed = one
    C.validate_run(composed, on_first)
    return OneRun(app, composed.cfg, task_function, overrides)


def _compose_one_run(task_function, flags: list[str], overrides: list[str], config_dir):
    """(Hydra's app, the composed config) of a plain single run in RUN mode, else None."""
    from hydra._internal.utils import detect_calling_file_or_module_from_task_function, detect_task_name
    from hydra.types import RunMode

    if not _one_run(flags, overrides):
        return None
    job = detect_task_name(*detect_calling_file_or_module_from_task_function(task_function))  # as hydra.main names it
    try:
        with C.RunComposer(job, config_dir) as c:
            composed = c.compose(overrides)
    except ConfigError:
        if not any(map(C.is_hydra_key, overrides)):
            raise
        return None  # maybe Hydra's keys: composed without them, ours fail in one line, else Hydra's launch says why
    return (c.app, composed) if composed.cfg.hydra.mode in (None, RunMode.RUN) else None  # MULTIRUN: Hydra's


def _one_run(flags: list[str], overrides: list[str]) -> bool:
    """No flag but -r and -cd (a -cd value that looks like a flag counts as one), and no sweep."""
    if {f.split("=", 1)[0] for f in flags if f.startswith("-")} - ONE_RUN_FLAGS:
        return False
    try:
        return not any(o.is_sweep_override() for o in parse(overrides))
    except ConfigError:  # a syntax error: the usual path reports it as before (Hydra's keys in Hydra's words)
        return False


class OneRun:
    """One run launched as hydra.main's run launches it (Hydra.run: its logging, callbacks, `run_job` in
    hydra.run.dir with the job's HydraConfig and chdir setting, errors and tracebacks by run_and_report,
    GlobalHydra cleared at the end), on the config `prepare` composed and validated."""

    def __init__(self, app, cfg, task_function, overrides: list[str]):
        self.app, self.cfg, self.task_function, self.overrides = app, cfg, task_function, overrides

    def launch(self, prog: str, flags: list[str], extra: list[str]) -> None:
        """extra: Hydra's keys settled after composing (the run folder): set as if they had been composed."""
        from hydra._internal.utils import run_and_report
        from hydra.core.global_hydra import GlobalHydra

        mode = ["hydra.mode=RUN"] if self.cfg.hydra.mode is None else []  # as hydra.main, when the config has none
        argv = [*self.overrides, *extra, *mode]
        with _argv([prog, *flags, *self.overrides, *extra]):
            _set_hydra_keys(self.cfg, [*extra, *mode])
            GlobalHydra.instance().initialize(self.app)
            try:
                run_and_report(lambda: self._run(argv))
            finally:
                GlobalHydra.instance().clear()

    def _run(self, overrides: list[str]):
        """Hydra.run after its composition."""
        from hydra._internal.callbacks import Callbacks
        from hydra.core.utils import run_job
        from hydra.types import HydraContext

        _configure_logging(self.app, self.cfg, overrides)
        callbacks = Callbacks(self.cfg)
        callbacks.on_run_start(config=self.cfg, config_name="config")
        ret = run_job(hydra_context=HydraContext(config_loader=self.app.config_loader, callbacks=callbacks),
                      task_function=self.task_function, config=self.cfg, job_dir_key="hydra.run.dir",
                      job_subdir_key=None)
        callbacks.on_run_end(config=self.cfg, config_name="config", job_return=ret)
        _ = ret.return_value  # the job's exception, raised again for run_and_report (as Hydra.run does)
        return ret


def _set_hydra_keys(cfg, overrides: list[str]) -> None:
    """Overrides of Hydra's keys applied to a composed config as Hydra's loader applies them, and listed in
    hydra.overrides.hydra (the job's .hydra/hydra.yaml) as if they had been composed."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl._apply_overrides_to_config(parse(overrides), cfg)
    cfg.hydra.overrides.hydra.extend(overrides)


def _configure_logging(app, cfg, overrides: list[str]) -> None:
    """What Hydra's composition does for a run after composing: Hydra's logging, its debug listing (hydra.verbose)."""
    import logging

    import hydra._internal.hydra as hydra_app
    from hydra.core.utils import configure_log
    from hydra.types import RunMode

    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    hydra_app.log = logging.getLogger(hydra_app.__name__)
    app._print_debug_info("config", overrides, RunMode.RUN)
