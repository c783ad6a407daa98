"""Interrupted and lost trials are retried with the same parameters, and resume their run folder.

Two ways a trial stops without a result, one way back:

* **interrupted** (Ctrl-C, SIGTERM): the worker marks the trial FAIL with ``status=interrupted``
  and its reason, and enqueues the retry at once (`requeue`), so the next `rnnlab search` on the
  study, here or on another machine, picks it up first;
* **lost** (SIGKILL, out of memory, a machine gone): the trial stays RUNNING until its heartbeat is
  older than the grace period; then the next worker that asks for a trial fails it and Optuna's
  `RetryHeartbeatStaleTrialCallback` (the storage's ``heartbeat_stale_trial_callback``) enqueues it.

Both enqueue through the same callback, so a retry is a WAITING trial with the old trial's
parameters and Optuna's own record of what it retries (``retried_trial_number``,
``retry_history``). The retry then continues the old trial's run folder from its
``checkpoint_last/`` (exact resume: the finished trial equals an uninterrupted one); a folder with
no completed epoch, or one this machine cannot see, is started over in the retry's own folder.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

INTERRUPTED = "interrupted"
# Kept on a retry: what the old trial ran and where. Its outcome (status, reason, seconds) is not.
KEPT_ATTRS = ("overrides", "run_dir", "epochs_planned")
MAX_LOST_RETRIES = 3  # a trial that kills its worker every time (out of memory) must not loop forever


def _callback_class():
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback


def make_callback(max_retry: int | None = MAX_LOST_RETRIES):
    """Optuna's retry callback, enqueueing only what the retry needs of the old trial's user attributes."""
    base = _callback_class()

    class Retry(base):
        def __call__(self, study, trial) -> None:
            trial = copy.deepcopy(trial)  # Optuna appends to its retry_history: never to a cached record's
            trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in KEPT_ATTRS}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-feature warnings of Optuna
                super().__call__(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental
        # The intermediate values come along: the pruner sees the epochs trained before the stop.
        return Retry(max_retry=max_retry, inherit_intermediate_values=True)


def history(trial) -> list[int]:
    """The trials this one retries, oldest first ([] for a trial that is no retry). A FrozenTrial, or a running
    Trial (whose system attributes Optuna no longer shows: read from the study)."""
    if not hasattr(trial, "system_attrs"):
        trial = frozen(trial)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental
        return list(_callback_class().retry_history(trial))


def frozen(trial):
    """The study's record (FrozenTrial) of a trial."""
    return next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)


def retried_trial(trial) -> int | None:
    """The trial this one directly retries (the last of its retry history), or None."""
    h = history(trial)
    return h[-1] if h else None


def requeue(study, number: int) -> None:
    """Enqueue a retry of the interrupted trial `number` (no limit: every stop was the user's)."""
    record = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    make_callback(max_retry=None)(study, record)


def requeue_orphans(study) -> list[int]:
    """Enqueue a retry of every interrupted trial that has none (stopped before it could enqueue one, or by
    an older rnnlab); returns their numbers."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in history(t)}
    orphans = [t.number for t in trials if t.state.name == "FAIL" and t.user_attrs.get("status") == INTERRUPTED
               and t.number not in retried]
    for number in orphans:
        requeue(study, number)
    return orphans


def resume_folder(trial, output: str | Path) -> Path | None:
    """The run folder a retry continues: the old trial's folder (in the user attributes it inherited), looked up
    in this worker's study folder (other machines see it there only on a shared file system), when it holds a
    completed epoch."""
    old = trial.user_attrs.get("run_dir")
    if not old:
        return None
    folder = Path(output) / Path(old).name
    return folder if (folder / "checkpoint_last").is_dir() else None


def retried_by(trials) -> dict[int, int]:
    """{trial number: the number of the trial that retried it}."""
    return {h[-1]: t.number for t in trials if (h := history(t))}
