"""A trained run, loaded for use: its config, summary, metrics and selected weights, and the data
pipeline it was trained with (`rnnlab.api.load_run`, `rnnlab predict`).

    run = load_run("outputs/train/2026-12-06_12-00-00")
    run.config.arch.cell, run.summary.test_metrics, run.metrics.tail()
    y = run.forward(x, mask)            # the model's outputs on arrays (the scaled units it was trained in)
    frame = run.predictions("test")     # predictions.csv of the split, computed again from the checkpoint

The config is the run's own (`.hydra/config.yaml`, validated as at training time), so the data are
loaded exactly as the run loaded them: the same file, split, seed and preprocessing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.config.validate import ConfigError, RunConfig
from rnnlab.record import checkpoint
from rnnlab.record import summary as summary_file
from rnnlab.record.summary import Summary

CONFIG = Path(".hydra") / "config.yaml"
# model kind (`checkpoint.kind_of`) -> the module whose predict(run, source, backend) applies it to new inputs
PREDICTORS = {"sequence": "rnnlab.predict.sequence", "seq2seq": "rnnlab.predict.seq2seq"}


class NotARunError(ConfigError):
    """A folder that is not a trained run; the message is one line meant for the user."""


@dataclass
class TrainedRun:
    path: Path
    config: RunConfig
    summary: Summary | None
    spec: Any  # ModelSpec or Seq2SeqSpec
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)  # the checkpoint's model.json (epoch, data, task, ...)
    graphs: dict[str, Path] = field(default_factory=dict)  # an export's ONNX files by name (rnnlab.predict.exported)

    @property
    def metrics(self):
        """metrics.csv as a DataFrame (one row per epoch; an `attempt` column with train.restarts)."""
        import pandas as pd

        return pd.read_csv(self.path / "metrics.csv")

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The model's outputs on x (N, T, D) or token ids (N, T), in evaluation mode (no dropout, BatchNorm's
        running statistics): regression in the scaled units it was trained in, classification as logits."""
        from rnnlab.engine import model as M

        return M.predict(self.spec, self.params, np.asarray(x), mask, state=self.state)

    def data(self, streams=None):
        """The run's data (`TaskData`: splits, scaler, vocabulary), loaded as the run loaded them (same file,
        seed and preprocessing)."""
        from rnnlab.data import registry
        from rnnlab.train.tasks.base import Streams

        cfg = self.config
        streams = streams or Streams.from_seed(cfg.seed)
        return registry.load(self._data_config(), streams.data, np.dtype(cfg.train.dtype), cv=cfg.cv, seed=cfg.seed)

    def task(self):
        """The run's task adapter over its data (`data`)."""
        from rnnlab.train import tasks
        from rnnlab.train.tasks.base import Streams

        streams = Streams.from_seed(self.config.seed)
        return tasks.for_data(self.config, self.data(streams), streams)

    def _data_config(self):
        """The run's data config with the files it read as it resolved them (absolute paths, in model.json), so
        a run trained on data.path=sales.csv loads again from any working directory."""
        import dataclasses

        meta, cfg = self.info.get("data", {}), self.config.data
        found = {k: meta[k] for k in ("path", "test_path")
                 if hasattr(cfg, k) and isinstance(meta.get(k), str) and Path(meta[k]).exists()}
        return dataclasses.replace(cfg, **found) if found else cfg

    def predictions(self, split: str = "test"):
        """The split's predictions.csv (a DataFrame), computed again from the selected weights."""
        if split != "test":
            raise ConfigError(f"predictions of split '{split}': only the test split is reported (use test)")
        report = self.task().test_report(self.params, self.state)
        frame = report.files.get("predictions.csv")
        if frame is None:
            raise ConfigError(f"run {self.path} writes no predictions.csv for its task")
        return frame


    @property
    def kind(self) -> str:
        """"regression", "binary" or "multiclass" (seq2seq runs: "seq2seq_<kind>")."""
        return str(self.info.get("task", "regression"))

    @property
    def classes(self) -> list[str] | None:
        found = self.info.get("classes") or (self.summary.get("classes") if self.summary is not None else None)
        return list(found) if found else None

    @property
    def threshold(self) -> float:
        """The binary decision threshold the run chose on validation (0.5 before it was tested)."""
        found = self.summary.get("threshold") if self.summary is not None else None
        return 0.5 if found is None else float(found)

    def predict(self, source, backend: str | None = None):
        """Predictions on new inputs, read with the run's preprocessing (`rnnlab.data.inputs`): a file or
        folder path, a DataFrame series, a list of texts or digit sequences, or arrays x / (x, mask). A
        DataFrame (`rnnlab.predict.frames`): forecasts in the series' units with dates, classes with
        probabilities, a seq2seq run's decoded sequences. backend="onnx" runs the model's ONNX graphs in
        onnxruntime instead of the engine (the default for an export holding them)."""
        backend = backend or ("onnx" if self.graphs else "engine")
        return importlib.import_module(PREDICTORS[checkpoint.kind_of(self.spec)]).predict(self, source, backend)


def load_run(path: str | Path, which: str = "checkpoint") -> TrainedRun:
    """The trained run in `path` with its selected weights (which="checkpoint_last": the last epoch's)."""
    from omegaconf import OmegaConf

    from rnnlab.config.validate import validate

    path = Path(path)
    if not (path / CONFIG).is_file():
        what = "not found" if not path.exists() else f"not a run folder (no {CONFIG})"
        raise NotARunError(f"{path}: {what}")
    config = validate(OmegaConf.load(path / CONFIG))
    try:
        summary = summary_file.read(path)
    except (OSError, ValueError):
        summary = None  # stopped before it wrote one: the weights still load
    loaded = checkpoint.load(path / which)
    state = loaded.info.pop("state", {})
    return TrainedRun(path, config, summary, loaded.spec, loaded.params, state, loaded.info)


def load_any(path: str | Path, which: str = "checkpoint") -> TrainedRun:
    """A run folder (`load_run`) or an exported folder (`rnnlab export`'s, read back by its model.json)."""
    path = Path(path)
    if (path / CONFIG).is_file() or not (path / "model.json").is_file():
        return load_run(path, which)
    from rnnlab.predict.exported import load_export

    return load_export(path)
