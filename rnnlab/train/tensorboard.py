"""TensorBoard event files of a run (`logger=tensorboard`), written with tensorboardX.

    <run_dir>/tensorboard/events.out.tfevents.*     tensorboard --logdir outputs/train

What goes in (tags; the x axis is the epoch for `epoch/*` and weights/gradients, the optimizer step for `step/*`):
- `epoch/<column>` for every numeric column of the epoch's metrics.csv row (train_loss, val_loss, lr,
  grad_norm, seconds, samples_per_s, val_accuracy, l2_loss, the monitor's columns, ...), at step = epoch (1-based);
- `step/loss`, `step/lr`, `step/grad_norm` every `logger.every_n_steps` optimizer steps (0 = never), at the
  0-based step (the batch's loss before the update, the lr of that update, the gradient norm after clipping);
- `weights/<param>` and `gradients/<param>` histograms every `logger.histogram_every_n_epochs` epochs
  (0 = never): the weights at the end of the epoch and the raw gradients (before penalties, noise and
  clipping) of its last step;
- `config` (text): the run's config as YAML, once.

tensorboardX is imported only when the event file opens (it imports PyTorch when that is installed).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.train.callbacks import Callback

FOLDER = "tensorboard"


class TensorBoardLogger(Callback):
    def __init__(self, log_dir: str | Path, every_n_steps: int = 10, histogram_every_n_epochs: int = 1,
                 config_text: str | None = None):
        self.log_dir = Path(log_dir)
        self.every_n_steps, self.histogram_every = int(every_n_steps), int(histogram_every_n_epochs)
        self.config_text = config_text
        self.writer = None
        self._grads: dict[str, np.ndarray] | None = None  # the raw gradients of the epoch's last step

    @classmethod
    def from_config(cls, cfg, run_dir: str | Path) -> TensorBoardLogger:
        import yaml

        text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        return cls(Path(run_dir) / FOLDER, cfg.logger.every_n_steps, cfg.logger.histogram_every_n_epochs, text)

    @contextmanager
    def session(self, fit):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:  # a dependency, but a trimmed environment may lack it
            raise RuntimeError("logger=tensorboard needs tensorboardX (pip install tensorboardX)") from None

        self.writer = SummaryWriter(logdir=str(self.log_dir), flush_secs=10)
        try:
            if self.config_text:
                self.writer.add_text("config", "```yaml\n" + self.config_text + "```", 0)
            yield self
        finally:
            self.writer.close()  # flushes: the events of a stopped or failed run are kept too

    def on_step(self, fit, info) -> None:
        if self._histogram_epoch(info.epoch + 1) and self._last_step_of_epoch(fit, info):
            self._grads = {k: np.array(v, copy=True) for k, v in info.raw_grads.items()}

    def on_step_end(self, fit, info) -> None:
        if self.every_n_steps and info.step % self.every_n_steps == 0:
            for tag, v in (("step/loss", info.loss), ("step/lr", info.lr), ("step/grad_norm", info.grad_norm)):
                self.writer.add_scalar(tag, float(v), info.step)

    def on_epoch_end(self, fit, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        for col, v in row.items():
            if col != "epoch" and _is_number(v):
                self.writer.add_scalar(f"epoch/{col}", float(v), epoch)
        if self._histogram_epoch(epoch):
            for name, w in fit.params.items():
                _histogram(self.writer, f"weights/{name}", w, epoch)
            for name, g in (self._grads or {}).items():
                _histogram(self.writer, f"gradients/{name}", g, epoch)
            self._grads = None
        self.writer.flush()

    def _histogram_epoch(self, epoch: int) -> bool:
        return bool(self.histogram_every) and epoch % self.histogram_every == 0

    @staticmethod
    def _last_step_of_epoch(fit, info) -> bool:
        return (info.step + 1) % fit.task.steps_per_epoch == 0  # every epoch runs steps_per_epoch steps


def _is_number(v) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)


def _histogram(writer, tag: str, values, step: int) -> None:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]  # numpy's histogram refuses NaN/inf
    if v.size:
        writer.add_histogram(tag, v, step)

