"""The layer around the fit loop: the chance-level check, and train.restarts' attempts.

    fit, monitor, entries = attempts.fit_run(cfg, data, streams, recorder, callbacks_for, resume, console)

Every run's fit ends with `chance.check`: a best validation score no better than the baseline's becomes a
warning (console, summary.json `warnings`, the report). With train.restarts=N, an attempt that completes
at chance level is followed by another from new initial weights, up to N more: attempt k draws every
random stream (initialisation, shuffling, dropout, noise, mixup, the task's own such as augmentation) from
SeedSequence([seed, k]) (attempt 0 is the run's usual streams: [seed, 0] is the same sequence as seed),
with a fresh optimizer, schedule, model selection and early stopping. The data is loaded once. Each
attempt's epochs go to metrics.csv with an `attempt` column; summary.json lists every attempt
(`attempts`) and the kept one (`kept_attempt`: the best by the monitored validation score, the first
on a tie), whose files (checkpoint/, checkpoint_last/, plots, test) the run ends with.

Restarts are part of the resumable state: the `AttemptState` callback carries the attempt number, the
records of the others and whether the attempt had ended (an early stop) in checkpoint_last, so a run
stopped in attempt 2 resumes in attempt 2, with attempt 1's record and rows. The best attempt so far is
kept on disk as attempt_<k>/ until the run ends (`RunRecorder.keep_attempt`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from rnnlab.record import checkpoint, run_log
from rnnlab.runtime import signals
from rnnlab.train import chance, loop, tasks
from rnnlab.train.callbacks import Callback
from rnnlab.train.resume import attempt_rows, restore
from rnnlab.train.selection import score
from rnnlab.train.tasks.base import Streams

CHECK = ("val_metric", "val_score", "baseline", "baseline_score", "chance")  # summary.json's chance_check


class AttemptState(Callback):
    """train.restarts' state in the training checkpoint, and the `attempt` column of metrics.csv."""

    name = "restarts"

    def __init__(self, attempt: int = 0, others=()):
        self.attempt, self.others = attempt, [dict(r) for r in others]
        self.stopped: list | None = None  # [status, message] of an attempt that ended before its last epoch
        self.fit = None

    def on_fit_start(self, fit) -> None:
        self.fit = fit
        if self.stopped is not None and fit.status == "running":  # resumed after its end (an early stop)
            fit.stop(*self.stopped)

    def epoch_columns(self, fit, row) -> dict[str, Any]:
        return {"attempt": self.attempt}

    def state_dict(self) -> dict[str, Any]:
        ended = self.fit is not None and self.fit.status in ("completed", "pruned")
        return {"attempt": self.attempt, "others": self.others,
                "stopped": [self.fit.status, self.fit.message] if ended else None}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.attempt, self.others, self.stopped = int(d["attempt"]), list(d.get("others") or []), d.get("stopped")


def saved_state(run_dir) -> dict | None:
    """The restarts' state in run_dir's checkpoint_last (None: a run without restarts, or nothing to resume)."""
    try:
        info, _ = checkpoint.load_training_state(run_dir)
    except checkpoint.CheckpointError:
        return None
    return info.get("callbacks", {}).get(AttemptState.name)


def streams_for(seed: int, attempt: int, first: Streams) -> tuple[Streams, list[np.random.Generator]]:
    """The run's streams of an attempt, and more generators for the task's own streams (attempt 0: the run's)."""
    if attempt == 0:
        return first, []
    seqs = np.random.SeedSequence([seed, attempt]).spawn(len(Streams._fields) + 8)
    gens = [np.random.default_rng(s) for s in seqs]
    return Streams(*gens[: len(Streams._fields)]), gens[len(Streams._fields):]


def fit_run(cfg, data, streams: Streams, recorder, callbacks_for, resume: bool, console=None, announce=None):
    """Fit (with restarts when cfg.train.restarts > 0 or the resumed run had them); returns the kept attempt's
    fit and monitor, and the summary entries (`warnings`, `attempts`, `kept_attempt`).
    callbacks_for(task) -> (callbacks, monitor): an attempt's own callbacks. announce(): called once the first
    task adapter accepted the config and data (a refusal stays the only line)."""
    saved = saved_state(recorder.run_dir) if resume else None
    on = cfg.train.restarts > 0 or saved is not None
    attempt, others = (int(saved["attempt"]), list(saved.get("others") or [])) if saved else (0, [])
    while True:
        fit, monitor, verdict, record = _attempt(cfg, data, streams, recorder, callbacks_for, attempt, others, on,
                                                 resume, announce)
        resume, announce = False, None
        if not (on and _again(fit, verdict, others, cfg.train.restarts)):
            break
        others = _restart(cfg, recorder, fit, record, others, console)
        attempt = _next(others)
    if not on:
        return fit, monitor, _entries([record], None, cfg, console)
    if fit.status != "completed":  # interrupted (it resumes in this attempt), diverged, failed, pruned: as it is
        records = _sorted([*others, record])
        recorder.summary.update(attempts=records)
        return fit, monitor, {"attempts": records, **_entries([record], None, cfg, console)}
    return _settle(cfg, data, streams, recorder, callbacks_for, fit, monitor, record, others, console)


def _attempt(cfg, data, streams, recorder, callbacks_for, attempt: int, others: list, on: bool, resume: bool,
             announce=None):
    """Train one attempt (a resumed one from its checkpoint); (fit, monitor, verdict, record)."""
    fit, cbs, monitor = _start(cfg, data, streams, attempt, others, recorder, callbacks_for, on)
    if resume:
        restore(fit, recorder.run_dir, cbs, attempt=attempt if on else None)
    elif attempt > 0:
        with signals.deferred():  # before checkpoint/ takes this attempt's initial weights
            recorder.attempt_started(fit)
            recorder.drop_snapshots(keep=_best(others, cfg.train.monitor)["attempt"])
    if announce is not None:  # after the checks of the task and of a resume: a refusal stays the only line
        announce()
    recorder.phase = "training"
    loop.run(fit, recorder, cbs)
    if on and fit.status == "completed" and signals.received() is not None:  # one as the attempt's fit closed
        fit.stop("interrupted", f"interrupted after {len(fit.rows)} completed epochs of attempt {attempt}")
    verdict = chance.check(fit.task, fit)
    return fit, monitor, verdict, _record(fit, attempt, cfg.seed, verdict)


def _restart(cfg, recorder, fit, record: dict, others: list, console) -> list:
    """An attempt ended at chance level: snapshot it when it is the best so far; the records with it."""
    monitor = cfg.train.monitor
    if not others or _rank(record, monitor) < _rank(_best(others, monitor), monitor):
        with signals.deferred():
            recorder.keep_attempt(record["attempt"])
    others = [*others, record]
    recorder.other_rows = [*recorder.other_rows, *fit.rows]
    recorder.summary.update(attempts=_sorted(others))
    _say(console, f"attempt {record['attempt']} ended at chance level ({record['finding']}); retraining from new "
                  f"initial weights (attempt {_next(others)}, at most {cfg.train.restarts})")
    return others


def _start(cfg, data, streams, attempt, others, recorder, callbacks_for, on):
    """A new attempt's task, fit and callbacks (its own streams; with restarts the AttemptState)."""
    run_streams, extra = streams_for(cfg.seed, attempt, streams)
    task = tasks.for_data(cfg, data, run_streams)
    for rng, fresh in zip(task.extra_streams().values(), extra, strict=False):  # the task's own (augmentation)
        rng.bit_generator.state = fresh.bit_generator.state
    fit = loop.Fit.start(task, cfg)
    cbs, monitor = callbacks_for(task)
    if on:
        cbs = [AttemptState(attempt, others), *cbs]
        recorder.attempt = attempt
        if not recorder.other_rows and others:  # resumed: the finished attempts' rows, as metrics.csv has them
            recorder.other_rows = attempt_rows(recorder.run_dir, [r["attempt"] for r in others])
    recorder.callbacks = cbs
    return fit, cbs, monitor


def _settle(cfg, data, streams, recorder, callbacks_for, fit, monitor, record, others, console):
    """The kept attempt (the best by validation) becomes the run: its files, and its fit for the test."""
    records = _sorted([*others, record])
    kept = _best(records, cfg.train.monitor)
    rest = [r for r in records if r["attempt"] != kept["attempt"]]
    with signals.deferred():
        recorder.settle_attempt(kept["attempt"], record["attempt"], rest)
    if kept["attempt"] != record["attempt"]:  # an earlier attempt: its fit back from its files
        fit, cbs, monitor = _start(cfg, data, streams, kept["attempt"], rest, recorder, callbacks_for, True)
        restore(fit, recorder.run_dir, cbs, attempt=kept["attempt"])
        fit.stop(kept["status"], kept.get("message"))
    recorder.summary.update(attempts=records, kept_attempt=kept["attempt"])
    return fit, monitor, _entries(records, kept, cfg, console)


def _entries(records: list[dict], kept: dict | None, cfg, console) -> dict[str, Any]:
    """summary.json's `warnings` (said on the console too) and, with restarts, `attempts` and `kept_attempt`."""
    final = kept or records[-1]
    warnings = []
    if final.get("chance") and final["status"] == "completed":  # other ends say so in their status
        tried = (f" (kept attempt {final['attempt']} of {len(records)}, train.restarts={cfg.train.restarts})"
                 if len(records) > 1 else "" if cfg.train.restarts else
                 "; train.restarts=N retrains from new initial weights when this happens")
        warnings.append(chance.warning(final["finding"]) + tried)
    for w in warnings:
        _say(console, f"warning: {w}")
    out: dict[str, Any] = {"warnings": warnings, "chance_check": {k: final[k] for k in CHECK if k in final} or None}
    if kept is not None:
        out.update(attempts=records, kept_attempt=kept["attempt"])
    return out


def _record(fit, attempt: int, seed: int, verdict) -> dict[str, Any]:
    """One attempt in summary.json's `attempts` (JSON values)."""
    best, rows = fit.selection.epoch, fit.rows
    row = rows[best - 1] if 0 < best <= len(rows) else {}
    monitor = fit.cfg.train.monitor
    rec = {"attempt": attempt, "seed_stream": [seed, attempt], "status": fit.status, "message": fit.message,
           "epochs_run": len(rows), "best_epoch": best, "best_val_loss": row.get("val_loss"),
           "monitored": monitor, "monitored_value": row.get(monitor)}
    if verdict is not None:
        rec.update(verdict.entry())
    return rec


def _rank(record: dict, monitor: str) -> float:
    """Lower is better (model selection's score); an attempt without a best epoch ranks last."""
    value = record.get("monitored_value")
    return np.inf if value is None else score(monitor, {monitor: value})


def _best(records: list[dict], monitor: str) -> dict:
    return min(_sorted(records), key=lambda r: _rank(r, monitor))  # min keeps the first of equals


def _sorted(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: r["attempt"])


def _next(others: list[dict]) -> int:
    return max(r["attempt"] for r in others) + 1


def _again(fit, verdict, others: list[dict], restarts: int) -> bool:
    """Restart: the attempt completed at chance level and attempts are left."""
    return fit.status == "completed" and verdict is not None and verdict.chance and len(others) < restarts


def _say(console, text: str) -> None:
    run_log.show(console, text, logging.WARNING, "yellow")
