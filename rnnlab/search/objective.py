"""One trial: sample the space, compose and validate the config, train into a run folder, score it.

The trial's folder is a normal run folder (`.hydra/config.yaml` and `overrides.yaml` are
written here as Hydra would, so `rnnlab compare` reads it). After every epoch the
validation metric goes to the pruner (`trial.report`); when it says prune, the trainer's
epoch hook stops the run as `pruned` and the trial ends as PRUNED. A diverged run, a
config or data error, a NaN objective or a bug in one trial is recorded as FAIL with
its reason, and the search goes on (`TrialFailed` is in `optimize(catch=...)`).
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from rnnlab.search import SearchError
from rnnlab.search.space import Param, format_value


class TrialFailed(Exception):
    """A trial that did not produce a value; its reason is in the trial's user attributes."""


@dataclass
class TrialSetup:
    """What every worker needs to run trials (plain data: it is pickled into worker processes)."""
    params: dict[str, Param]
    base: list[str]
    metric: str
    direction: str
    output: str
    config_dir: str | None = None


class PruneHook:
    """The trainer's epoch hook: report the epoch's validation value, stop the run when the pruner says so."""

    def __init__(self, trial, setup: TrialSetup, epochs: int):
        self.trial, self.setup, self.epochs = trial, setup, epochs
        self.column: str | None = None

    def __call__(self, epoch: int, row: dict[str, Any]) -> str | None:
        from rnnlab.search.metric import epoch_column, epoch_value

        if self.column is None:
            self.column = epoch_column(self.setup.metric, row.keys())
        value = epoch_value(row, self.column, self.setup.direction)
        if not math.isfinite(value):
            return None
        self.trial.report(value, epoch)
        # Pruning after the last epoch saves nothing: that trial simply completes.
        if epoch < self.epochs and self.trial.should_prune():
            return f"pruned after epoch {epoch} of {self.epochs} ({self.column} {float(row[self.column]):.4g})"
        return None


def _fail(trial, reason: str, console) -> TrialFailed:
    trial.set_user_attr("reason", reason)
    console.print(f"trial {trial.number}: [red]failed[/] {escape(reason)}", soft_wrap=True)
    return TrialFailed(reason)


def _params_text(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={format_value(round(v, 6) if isinstance(v, float) else v)}" for k, v in values.items())


def run_trial(trial, setup: TrialSetup, console) -> float:
    """The Optuna objective (bound to setup and console by the worker)."""
    import optuna

    from rnnlab.config.validate import ConfigError
    from rnnlab.data.base import DataError
    from rnnlab.search.compose import compose_trial, trial_overrides
    from rnnlab.search.metric import available_metrics, read_metric
    from rnnlab.search.space import suggest

    values = {key: suggest(trial, p) for key, p in setup.params.items()}
    overrides = trial_overrides(setup.base, values)
    run_dir = Path(setup.output) / f"trial_{trial.number:04d}"
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("host", socket.gethostname())
    try:
        composed, rc = compose_trial(overrides, setup.config_dir)
    except ConfigError as exc:
        raise _fail(trial, f"bad config: {exc}", console) from None
    trial.set_user_attr("epochs_planned", rc.train.epochs)
    from rnnlab.config.composition import write_run_config

    write_run_config(run_dir, composed.plain(), overrides)

    from rnnlab.train.run import train

    t0 = time.perf_counter()
    try:  # a failing run records its failure in its summary.json itself
        summary = train(rc, run_dir, console=console, epoch_hook=PruneHook(trial, setup, rc.train.epochs),
                        hooks=[lambda fit: {"search": {"output": str(setup.output), "trial": trial.number}}])
    except (ConfigError, DataError) as exc:
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        raise _fail(trial, f"bad input: {exc}", console) from None
    except Exception as exc:  # a bug in one trial must not end the search; its reason is kept
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        raise _fail(trial, f"error: {exc!r}", console) from None
    seconds = time.perf_counter() - t0
    status, message = summary["status"], summary.get("message") or ""
    for key, value in (("seconds", seconds), ("status", status), ("epochs_run", summary.get("epochs_run", 0)),
                       ("seconds_per_epoch", summary.get("seconds_per_epoch")), ("message", message)):
        trial.set_user_attr(key, value)
    if status == "interrupted":
        trial.set_user_attr("reason", message)
        raise KeyboardInterrupt(message)
    if status == "pruned":
        console.print(f"trial {trial.number}: [yellow]{escape(message)}[/]  {escape(_params_text(values))}",
                      soft_wrap=True)
        raise optuna.TrialPruned(message)
    if status != "completed":
        raise _fail(trial, f"{status}: {message}", console)
    value = read_metric(summary, setup.metric)
    if value is None:  # the same in every trial: stop the search rather than fail each one
        trial.set_user_attr("reason", f"no {setup.metric} in summary.json")
        raise SearchError(f"summary.json of trial {trial.number} has no metric '{setup.metric}' "
                          f"(it has: {', '.join(available_metrics(summary))})")
    if not math.isfinite(value):
        raise _fail(trial, f"{setup.metric} is {value}", console)
    console.print(f"trial {trial.number}: [green]complete[/] {setup.metric}={value:.6g} "
                  f"({summary.get('epochs_run')} epochs, {seconds:.1f} s)  {escape(_params_text(values))}",
                  soft_wrap=True)
    return value
