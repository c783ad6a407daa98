"""The task adapter interface of the fit loop (`rnnlab.train.loop.fit`).

An adapter supplies batches, the loss and its gradients (the data-parallel step plugs in
here), validation metrics, the test report and what the checkpoint needs. It holds no epoch
loop and never calls the optimizer, the schedule, model selection or the recorder: the loop
owns those, and the recorder writes the files a test report hands back. Shapes and names
follow the engine: `params` is the model's name -> array dict, `state` its non-parameter
state (BatchNorm statistics; {} when none).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

import numpy as np


class Streams(NamedTuple):
    """The run's random streams, children of SeedSequence(seed) in this order (every run so far
    drew them so; a new stream goes at the end so switching it on changes no other draw)."""

    data: np.random.Generator
    init: np.random.Generator
    shuffle: np.random.Generator
    dropout: np.random.Generator  # dropout masks; seq2seq: the scheduled-sampling draws
    noise: np.random.Generator  # gradient noise
    mixup: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(cls._fields))))


class StepOut(NamedTuple):
    loss: float  # the batch's mean data loss (what train_loss averages)
    grads: dict[str, np.ndarray]
    state: dict  # the model's state after the step (BatchNorm running statistics)
    n: int  # samples in the batch


class TestReport(NamedTuple):
    entries: dict[str, Any]  # merged into the summary
    tables: dict[str, Any]  # what the plots draw: predictions, future, forecast, curves, attention
    files: dict[str, Any]  # CSV tables for the run folder, by file name (predictions.csv, ...)


class TaskAdapter(Protocol):
    model_kind: str  # "sequence" | "seq2seq" (the checkpoint's kind)
    spec: Any
    steps_per_epoch: int

    def init_model(self, dtype) -> tuple[dict[str, np.ndarray], dict]: ...
    def session(self) -> AbstractContextManager: ...  # e.g. the data-parallel workers
    def summary_entries(self) -> dict[str, Any]: ...  # task, loss, n_train, ...
    def checkpoint_meta(self) -> dict[str, Any]: ...
    def epoch_batches(self, epoch: int) -> list: ...
    def begin_epoch(self, epoch: int) -> dict[str, Any]: ...  # columns of the epoch's row
    def train_step(self, params, state, batch) -> StepOut: ...
    def after_step(self, params) -> None: ...  # the cells' projections
    def validate(self, params, state) -> dict[str, float]: ...  # val_loss and friends
    def test_report(self, params, state) -> TestReport: ...
    def inspector(self): ...  # what the monitor reads (rnnlab.monitor.inspect), or None
    def extra_streams(self) -> dict[str, np.random.Generator]: ...  # the task's own random streams (resume)
    def state_dict(self) -> dict[str, np.ndarray]: ...  # the task's own training state (stateful: the carry)
    def load_state_dict(self, d: dict[str, np.ndarray]) -> None: ...


def limited_steps(n: int, batch_size: int, limit: int | None) -> int:
    steps = max(1, -(-n // batch_size))
    return steps if limit is None else min(steps, limit)
