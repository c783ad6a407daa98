"""What every data set hands the trainer: splits of (x, y, mask) plus how to undo scaling.

Shapes: x (N, T, D) float (or token ids (N, T) int when the task has an embedding),
mask (N, T) of 0/1 or None when every sequence is full length. Targets by kind:

* "regression": y (N, n_out) float; output_size n_out; default loss mse.
* "binary": y (N,) int 0/1; output_size 1 (a logit); default loss bce.
* "multiclass": y (N,) int in [0, C); output_size C (logits); default loss cross_entropy.
  Per-step targets (y (N, T) int, with Split.target_mask saying which steps count) use
  the model's pooling "none".

Classification tasks name their classes (index = label id) in TaskData.classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


class DataError(ValueError):
    """Bad or unusable data; the message is one line meant for the user."""


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None = None
    # One row per sample for reports (e.g. the file name and text of a review), or None.
    info: Any = None
    # Per-step targets only: (N, T) of 0/1 marking the positions the loss counts, or None
    # when every position of y counts.
    target_mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class StandardScaler:
    """Standardization fitted on the train split only (so no test information leaks)."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        std = float(np.std(values))
        return cls(mean=float(np.mean(values)), std=std if std > 0 else 1.0)

    def transform(self, a: np.ndarray) -> np.ndarray:
        return (a - self.mean) / self.std

    def inverse(self, a: np.ndarray) -> np.ndarray:
        return a * self.std + self.mean

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class Refit:
    """A loader's preprocessing fitted again on other training rows: cross-validation refits it per fold.

    `fit(rows, val_rows)`, given indices into the development set (train + val, in that order) of
    the rows a fold trains and validates on, returns the same data set (every split's rows unchanged)
    with the preprocessing fitted on the training rows only and applied to all three splits (inputs,
    targets, the inverse, the forecast input, the meta data); forecasting loaders also refit their
    baselines' parameters on the series before the fold's first validation origin. `what` names it
    for the fold's record ("scaler", "vocabulary", "scaler and baselines").
    """

    what: str
    fit: Callable[[np.ndarray, np.ndarray], TaskData]


@dataclass
class TaskData:
    kind: str  # "regression", "binary" or "multiclass"
    train: Split
    val: Split
    test: Split
    input_size: int
    output_size: int
    default_loss: str
    scaler: StandardScaler = field(default_factory=StandardScaler)
    # Baseline forecasts in original units: name -> {"val": (N, n_out), "test": (N, n_out)}
    baselines: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # Preprocessing state saved in checkpoint/model.json
    meta: dict[str, Any] = field(default_factory=dict)
    # Model outputs (scaled) of a split -> original units; the default undoes the scaler.
    inverse: Callable[[np.ndarray, str], np.ndarray] | None = None
    # Optional forecast past the end of the data: {"x": (1, n_in, D), "dates", "history", "freq"};
    # to_original(y, "future") maps its output to original units.
    future: dict[str, Any] | None = None
    classes: list[str] | None = None
    # Token-id inputs: {"vocab_size", "dim", "weights" (V, dim) or None, "trainable", "padding_idx"}.
    embedding: dict[str, Any] | None = None
    # Recursive forecasting: the model learns one step and is rolled this many steps at
    # evaluation; horizon_targets holds the (N, horizon) targets of val and test.
    recursive_horizon: int | None = None
    horizon_targets: dict[str, np.ndarray] = field(default_factory=dict)
    # What one sample is, for the counts on the console and in the report: "sequences", or
    # "windows" for forecasting (where each test window is one forecast origin).
    sample_unit: str = "sequences"
    # Forecasting: the in-sample MAE of the (seasonal) naive forecast on the data before the
    # first test origin, the denominator of MASE; None where MASE does not apply.
    mase_scale: float | None = None
    # Forecasting: each split's targets (N, horizon) in original units as read from the series, so the
    # report compares predictions with the file's values rather than with a float32 round trip of them.
    original_targets: dict[str, np.ndarray] = field(default_factory=dict)
    # How to refit the preprocessing on other training rows (rnnlab/data/folds.py), or None when the
    # loader fits nothing on its train split. Holds the unprocessed data; registry.load drops it.
    refit: Refit | None = None
    # Each split's rows are consecutive pieces of one stream (row i + 1 goes on where row i ends; data=textlm,
    # data=echo): train.stateful can carry the recurrent state from one piece to the next.
    contiguous: bool = False

    def refitted(self, **fields: Any) -> TaskData:
        """A copy with `fields` replaced; "meta" and "future" are merged into the existing dicts (what a
        refit changes, the rest kept)."""
        for key in ("meta", "future"):
            if key in fields and getattr(self, key) is not None:
                fields[key] = {**getattr(self, key), **fields[key]}
        return replace(self, **fields)

    def to_original(self, y: np.ndarray, split: str) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return self.inverse(y, split) if self.inverse is not None else self.scaler.inverse(y)

    def targets_original(self, split: str) -> np.ndarray:
        if split in self.original_targets:
            return self.original_targets[split]
        return self.to_original(self.horizon_targets.get(split, getattr(self, split).y), split)
