"""Exact resume: put a fresh `loop.Fit` back where checkpoint_last/ left it.

A resumed run rebuilds everything from the config and the seed (data, model, optimizer, schedule,
callbacks), then overwrites the state that moved: the weights and the model's state, the
optimizer's moments and step, the epoch and step, the loss history and lr trace, model selection
(with checkpoint/'s best weights), the step hygiene's noise counter, every random stream (the
run's six, and the task's own such as data.augment's), the callbacks' state (early stopping, the
monitor's records) and the metrics rows up to the checkpoint's epoch (a torn line, or rows of
epochs past it, are dropped). A mid-epoch checkpoint (train.checkpoint_every_steps) also brings
the position in the epoch: its batch order, the batches taken and the partial sums of its row.
The schedule needs nothing: it is a function of the step, the epoch and the history.
Continuing then draws exactly the numbers the uninterrupted run drew. With train.restarts the
checkpoint is one attempt's (`attempts`): its rows are that attempt's, and its best weights come from
its snapshot when checkpoint/ already holds another attempt's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnnlab.config.validate import ConfigError
from rnnlab.record import checkpoint, metrics_log
from rnnlab.train.position import EpochPosition
from rnnlab.train.recorder import RunFolderError, attempt_folder, restore_stream


class ResumeError(RunFolderError, ConfigError):
    """A run that cannot be resumed with this config; one line, and the run's folder is left as it is."""


def restore(fit, run_dir: str | Path, callbacks=(), attempt: int | None = None) -> None:
    """Load run_dir's training state into fit (in place); ResumeError (one line) when it cannot.
    attempt: train.restarts' attempt the checkpoint belongs to (None: a run without restarts)."""
    run_dir = Path(run_dir)
    try:
        info, arrays = checkpoint.load_training_state(run_dir)
        last = checkpoint.load(run_dir / "checkpoint_last")
        best = _best(run_dir, info, last, attempt)
    except checkpoint.CheckpointError as exc:
        raise ResumeError(f"cannot resume {run_dir}: {exc}") from None
    if last.spec != fit.task.spec:
        raise ResumeError(f"cannot resume {run_dir}: its checkpoint is a different model than this config builds "
                          "(resume with the run's own architecture)")
    dtype = np.dtype(fit.cfg.train.dtype)
    for k, v in fit.params.items():
        v[...] = last.params[k].astype(dtype, copy=False)
    fit.state = {k: v.astype(dtype) for k, v in last.state.items()} or fit.state
    try:
        fit.optimizer.load_state_dict({k[len(checkpoint.OPTIM_PREFIX):]: v.astype(dtype) if v.ndim else v
                                       for k, v in arrays.items() if k.startswith(checkpoint.OPTIM_PREFIX)})
    except ValueError as exc:  # another optimizer than the run's
        raise ResumeError(f"cannot resume {run_dir} with optim={fit.optimizer.name}: {exc}") from None
    fit.epoch, fit.step = int(info["epoch"]), int(info["step"])
    fit.history = [math.nan if v is None else float(v) for v in info["history"]]
    fit.lr_trace = [float(v) for v in arrays["lr_trace"]]
    fit.selection.load_state_dict(info["selection"], {k: v.astype(dtype) for k, v in best.params.items()},
                                  {k: v.astype(dtype) for k, v in best.state.items()} or None)
    fit.hygiene.load_state_dict(info.get("hygiene", {}))
    streams = {**fit.task.streams._asdict(), **fit.task.extra_streams()}
    for name, state in info["streams"].items():
        if name in streams:
            streams[name].bit_generator.state = restore_stream(state).bit_generator.state
    saved = info.get("callbacks", {})
    for cb in callbacks:
        if cb.name and cb.name in saved:
            cb.load_state_dict(checkpoint.join_arrays(saved[cb.name], arrays, checkpoint.callback_prefix(cb.name)))
    fit.task.load_state_dict({k[len(checkpoint.TASK_PREFIX):]: v for k, v in arrays.items()
                              if k.startswith(checkpoint.TASK_PREFIX)})
    if "position" in info:  # a mid-epoch checkpoint: the epoch goes on from its next batch
        fit.position = EpochPosition.from_state(checkpoint.join_arrays(info["position"], arrays,
                                                                       checkpoint.POSITION_PREFIX))
    fit.rows = _rows(run_dir, fit.epoch, attempt)


def _best(run_dir: Path, info: dict, last, attempt: int | None):
    """The best weights: checkpoint/'s, or an attempt's that has not trained yet its initial ones (checkpoint_last's),
    or its snapshot's when a kill left checkpoint/ holding another attempt's (train.restarts)."""
    if int(info["epoch"]) == 0 and int(info["step"]) == 0:
        return last
    best = checkpoint.load(run_dir / "checkpoint")
    if attempt is not None and best.info.get("attempt", attempt) != attempt:
        return checkpoint.load(attempt_folder(run_dir, attempt) / "checkpoint")
    return best


def _rows(run_dir: Path, epochs: int, attempt: int | None = None) -> list[dict]:
    """metrics.csv's rows of the first `epochs` epochs (of the attempt), as the loop made them (numbers, NaN for
    empty)."""
    if epochs == 0:  # resumed inside the first epoch: no row yet
        return []
    frame = _frame(run_dir)
    if frame is not None and attempt is not None and "attempt" in frame:
        frame = frame[frame["attempt"] == attempt]
    if frame is None or len(frame) < epochs:
        raise ResumeError(f"cannot resume {run_dir}: metrics.csv has {0 if frame is None else len(frame)} "
                          f"complete rows, the checkpoint is at epoch {epochs}")
    return _records(frame[frame["epoch"] <= epochs])


def attempt_rows(run_dir: str | Path, attempts) -> list[dict]:
    """metrics.csv's rows of these (finished) attempts, in the file's order (train.restarts)."""
    frame = _frame(Path(run_dir))
    if frame is None or "attempt" not in frame:
        return []
    return _records(frame[frame["attempt"].isin(list(attempts))])


def _frame(run_dir: Path):
    try:
        return metrics_log.read(run_dir)
    except FileNotFoundError:
        return None


def _records(frame) -> list[dict]:
    rows = frame.to_dict("records")  # each column keeps its type (epoch an int)
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()} for row in rows]
