"""Live Rich progress bar for training: epoch, loss, val loss, learning rate, ETA.

Switched off when disabled or when the console is not a terminal (CI logs, joblib
workers), so it costs nothing there; updates are a few attribute writes per batch.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainingProgress:
    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.val = float("nan")
        self.progress = None
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4g}  val {task.fields[val]:.4g}  lr {task.fields[lr]:.3g}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task(
                "train", total=epochs * steps_per_epoch, epoch=1, epochs=epochs,
                loss=float("nan"), val=float("nan"), lr=float("nan"),
            )

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def batch(self, epoch: int, loss: float, lr: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, epoch=epoch + 1, loss=loss, lr=lr)

    def epoch_end(self, epoch: int, train_loss: float, val_loss: float, lr: float) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=(epoch + 1) * self.steps, loss=train_loss, val=val_loss, lr=lr
            )
