"""One trial: sample the space, compose and validate the config, train into a run folder, score it.

The trial's folder is a normal run folder (`.hydra/config.yaml` and `overrides.yaml` are
written here as Hydra would, so `rnnlab compare` reads it). After every epoch the
validation metric goes to the pruner (`trial.report`); when it says prune, the trainer's
epoch hook stops the run as `pruned` and the trial ends as PRUNED. A diverged run, a
config or data error, a NaN objective or a bug in one trial is recorded as FAIL with
its reason, and the search goes on (`TrialFailed` is in `optimize(catch=...)`). Ctrl-C or
SIGTERM in any phase of a trial records it as FAIL with `status=interrupted` and its reason,
enqueues its retry and stops the worker; a retry resumes its old trial's folder (`retry.py`).
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from rnnlab.data.base import DataError
from rnnlab.search import SearchError, retry
from rnnlab.search.metric import available_metrics, epoch_column, epoch_value, read_metric
from rnnlab.search.space import Param, format_value, suggest


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
        self.last_epoch = 0  # the latest epoch recorded (tells where an interrupt came)

    def __call__(self, epoch: int, row: dict[str, Any]) -> str | None:
        self.last_epoch = epoch
        if self.column is None:
            self.column = epoch_column(self.setup.metric, row.keys())
        value = epoch_value(row, self.column, self.setup.direction)
        if not math.isfinite(value):
            return None
        with warnings.catch_warnings():  # a resumed trial reports its last epoch again: the same value, ignored
            warnings.simplefilter("ignore", UserWarning)
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


class Interrupted(KeyboardInterrupt):
    """The run stopped as interrupted (its summary says so, with the reason)."""


def run_trial(trial, setup: TrialSetup, console) -> float:
    """The Optuna objective (bound to setup and console by the worker). Ctrl-C or SIGTERM anywhere in it
    (start-up, training, test, report), or one the worker held while Optuna started the trial, marks the
    trial interrupted with its reason and enqueues its retry (signals deferred again: a second Ctrl-C
    does not cut it), which resumes the run folder; Optuna then records the trial as FAIL and stops the
    worker."""
    from rnnlab.runtime import signals

    where = {"epoch": None}  # the latest recorded epoch, once training started
    try:
        with signals.undeferred():  # the worker defers signals around trials (study.work)
            return _run_trial(trial, setup, console, where)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            reason = str(exc)
        elif where["epoch"] is None:
            reason = "interrupted before training started"
        else:
            reason = f"interrupted after {where['epoch']} completed epochs, outside the epoch loop (test or report)"
        _interrupted(trial, reason, console)
        raise


def _interrupted(trial, reason: str, console) -> None:
    try:
        trial.set_user_attr("status", retry.INTERRUPTED)
        trial.set_user_attr("reason", reason)
        retry.requeue(trial.study, trial.number)
    except KeyboardInterrupt:  # a second Ctrl-C: the next search enqueues it (retry.requeue_orphans)
        return
    console.print(f"trial {trial.number}: [yellow]{escape(reason)}[/]; retried (from its last completed epoch) when "
                  "the search goes on", soft_wrap=True)


def _run_trial(trial, setup: TrialSetup, console, where: dict) -> float:
    from rnnlab.config.validate import ConfigError
    from rnnlab.search.compose import compose_trial, trial_overrides

    values = {key: suggest(trial, p) for key, p in setup.params.items()}
    overrides = trial_overrides(setup.base, values)
    retry_of = retry.retried_trial(trial)
    resume_dir = retry.resume_folder(trial, setup.output) if retry_of is not None else None
    own_dir = Path(setup.output) / f"trial_{trial.number:04d}"
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    try:
        composed, rc = compose_trial(overrides, setup.config_dir)
    except ConfigError as exc:
        trial.set_user_attr("run_dir", str(own_dir))
        raise _fail(trial, f"bad config: {exc}", console) from None
    trial.set_user_attr("epochs_planned", rc.train.epochs)
    hook = PruneHook(trial, setup, rc.train.epochs)
    where["epoch"] = 0
    t0 = time.perf_counter()
    attempt = _Attempt(trial, setup, composed.plain(), rc, overrides, hook, console, retry_of)
    try:  # a failing run records its failure in its summary.json itself
        summary = attempt.train(resume_dir) if resume_dir is not None else None
        if summary is None:  # a new trial, or an old folder that cannot be resumed with this config
            summary = attempt.train(own_dir, fresh=True)
    except (ConfigError, DataError) as exc:
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        raise _fail(trial, f"bad input: {exc}", console) from None
    except Exception as exc:  # a bug in one trial must not end the search; its reason is kept
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        raise _fail(trial, f"error: {exc!r}", console) from None
    finally:
        where["epoch"] = hook.last_epoch
    return _score(trial, setup, summary, values, time.perf_counter() - t0, console)


def _score(trial, setup: TrialSetup, summary, values: dict[str, Any], seconds: float, console) -> float:
    """The trial's value from its run's summary; the run's other endings as Optuna's (pruned, failed, interrupted)."""
    import optuna

    status, message = summary["status"], summary.get("message") or ""
    for key, value in (("seconds", seconds), ("status", status), ("epochs_run", summary.get("epochs_run", 0)),
                       ("seconds_per_epoch", summary.get("seconds_per_epoch")), ("message", message)):
        trial.set_user_attr(key, value)
    if status == "interrupted":
        raise Interrupted(message)
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
    resumed = summary.get("resumed_from_epochs") if summary.get("search", {}).get("retry_of") is not None else None
    console.print(f"trial {trial.number}: [green]complete[/] {setup.metric}={value:.6g} "
                  f"({summary.get('epochs_run')} epochs{f', resumed from epoch {resumed[-1]}' if resumed else ''}, "
                  f"{seconds:.1f} s)  {escape(_params_text(values))}", soft_wrap=True)
    return value


@dataclass
class _Attempt:
    """One trial's training run: in its own new folder, or resuming the folder of the trial it retries."""
    trial: Any
    setup: TrialSetup
    config: dict
    rc: Any
    overrides: list[str]
    hook: PruneHook
    console: Any
    retry_of: int | None = None

    def train(self, run_dir: Path, fresh: bool = False):
        """The run's summary; None when the old folder cannot be resumed with this config (left as it was)."""
        from rnnlab.config.composition import write_run_config
        from rnnlab.train.resume import ResumeError
        from rnnlab.train.run import train

        entry = {"output": str(self.setup.output), "trial": self.trial.number}
        if self.retry_of is not None:
            entry["retry_of"] = self.retry_of
        self.trial.set_user_attr("run_dir", str(run_dir))
        if fresh:
            write_run_config(run_dir, self.config, self.overrides)
        try:
            summary = train(self.rc, run_dir, console=self.console, epoch_hook=self.hook, resume=not fresh,
                            hooks=[lambda fit: {"search": entry}])
        except ResumeError as exc:
            if fresh:
                raise
            self.console.print(f"trial {self.trial.number}: [yellow]{escape(str(exc))}[/]; it starts over",
                               soft_wrap=True)
            return None
        if not fresh:  # the folder's config is its latest segment's (written once the run could take it)
            write_run_config(run_dir, self.config, self.overrides)
        return summary
