"""New inputs for a trained model (`rnnlab predict --input`), read and preprocessed as the run's training data
were: one reader module per kind of data behind `read`, with the run's data config and the preprocessing
state its checkpoint saved (``model.json`` "data": scalers, transform, vocabulary, padding, ...).

A reader is ``read(source, cfg, meta, dtype) -> Inputs``; `source` is a path (a file, or a folder of
texts), or what the reader takes from Python (a DataFrame series, a list of texts, arrays). Data sets
without a file format of their own (the synthetic tasks) take arrays: an ``.npz`` with ``x`` (and
``mask``) or ``(x, mask)`` from Python, as the engine takes them; so does every reader given an ``.npz``,
unless its module says ``READS_NPZ = True`` (it reads the file itself).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.data.base import DataError

# data.name -> the module whose `read` takes new inputs for it (absent: arrays)
READERS = {
    "csv": "rnnlab.data.inputs.series",
    "sine": "rnnlab.data.inputs.series",
    "imdb": "rnnlab.data.inputs.texts",
    "seqfile": "rnnlab.data.inputs.sequences",
    "reverse_digits": "rnnlab.data.inputs.digits",
    "sine2cosine": "rnnlab.data.inputs.sources",
}
ARRAYS = "rnnlab.data.inputs.arrays"


@dataclass
class Inputs:
    """Model inputs and how to read the model's outputs back.

    x (N, T, D) float or token ids (N, T); mask (N, T) of 0/1 or None; rows: one row per sample saying
    what it is (a DataFrame: the file, line or sequence id, the text's first words, the forecast origin)
    or None; to_original: scaled regression outputs (N, n_out) -> original units (the scaler and
    transform undone), None for classification; dates: the dates the outputs forecast (forecasts of a
    dated series); notes: lines worth telling the user (e.g. the share of unknown words).
    """

    x: np.ndarray
    mask: np.ndarray | None = None
    rows: Any = None
    to_original: Callable[[np.ndarray], np.ndarray] | None = None
    dates: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x)


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    """New inputs for a model trained on data config `cfg` whose checkpoint saved preprocessing `meta`."""
    if isinstance(source, (str, Path)):
        source = Path(source)
        if not source.exists():
            raise DataError(f"input not found: {source}")
    module = importlib.import_module(READERS.get(cfg.name, ARRAYS))
    if isinstance(source, Path) and source.suffix.lower() == ".npz" and not getattr(module, "READS_NPZ", False):
        module = importlib.import_module(ARRAYS)  # the model's inputs as arrays, unless the reader reads .npz
    return module.read(source, cfg, meta, dtype)
