"""Live Rich progress bar for training: epoch, loss, val loss (+ val accuracy), lr, samples/s, ETA.

Each epoch's numbers also go to the run's train.log as one line (`epoch_line`, rnnlab.record.run_log),
bar or no bar: the log holds what the bar showed at every epoch's end.

Switched off when disabled or when the console is not a terminal (CI logs, joblib
workers), so it costs nothing there; updates are a few attribute writes per batch.
Samples/s comes from Rich's own step-speed estimate (steps/s x samples per step), so
measuring it adds nothing per batch; until that estimate exists it shows the last
epoch's throughput as passed to `epoch_end`.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from rnnlab.record.run_log import log
from rnnlab.report.console import make_console


class SamplesPerSecondColumn(ProgressColumn):
    """Training throughput in samples per second."""

    def __init__(self, samples_per_step: float | None = None):
        super().__init__()
        self.samples_per_step = samples_per_step

    def render(self, task) -> Text:
        rate = None
        speed = task.speed
        if speed is not None and self.samples_per_step:
            rate = speed * self.samples_per_step
        elif task.fields.get("sps") is not None:
            rate = task.fields["sps"]
        if rate is None or not math.isfinite(rate):
            return Text("- samples/s", style="progress.data.speed")
        return Text(f"{rate:,.0f} samples/s", style="progress.data.speed")


class ValMetricColumn(ProgressColumn):
    """The validation loss, and the validation accuracy when the trainer passes one."""

    def render(self, task) -> Text:
        val = task.fields["val"]
        text = f"val {val:.4g}" if math.isfinite(val) else "val -"
        acc = task.fields.get("acc")
        if acc is not None:
            text += f"  acc {acc:.3f}"
        return Text(text)


class SignalsColumn(ProgressColumn):
    """Peak memory and the convergence signals of the epochs so far (plateau, oscillation)."""

    def render(self, task) -> Text:
        return Text(task.fields.get("signals") or "", style="yellow")


class TrainingProgress:
    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool = True, console: Console | None = None,
                 samples_per_step: float | None = None):
        self.console = console or make_console()
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
                TextColumn("loss {task.fields[loss]:.4g}"),
                ValMetricColumn(),
                TextColumn("lr {task.fields[lr]:.3g}"),
                SamplesPerSecondColumn(samples_per_step),
                TimeRemainingColumn(),
                SignalsColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task(
                "train", total=epochs * steps_per_epoch, epoch=1, epochs=epochs,
                loss=float("nan"), val=float("nan"), lr=float("nan"), acc=None, sps=None, signals="",
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

    def epoch_end(self, epoch: int, train_loss: float, val_loss: float, lr: float,
                  val_accuracy: float | None = None, samples_per_s: float | None = None,
                  rows: list[dict] | None = None) -> None:
        signals = live_signals(rows or [])
        log.info(epoch_line(epoch + 1, self.epochs, train_loss, val_loss, lr, val_accuracy, samples_per_s, signals))
        if self.progress is not None:
            self.progress.update(
                self.task, completed=(epoch + 1) * self.steps, loss=train_loss, val=val_loss, lr=lr,
                acc=val_accuracy, sps=samples_per_s, signals=signals,
            )


def epoch_line(epoch: int, epochs: int, train_loss: float, val_loss: float, lr: float,
               val_accuracy: float | None = None, samples_per_s: float | None = None, signals: str = "") -> str:
    """'epoch 3/30  loss 0.1234  val 0.2345  acc 0.912  lr 0.001  12,345 samples/s  mem 250 MB': the bar's
    fields at an epoch's end, as one line of train.log."""
    parts = [f"epoch {epoch}/{epochs}", f"loss {train_loss:.4g}",
             f"val {val_loss:.4g}" + (f"  acc {val_accuracy:.3f}" if val_accuracy is not None else ""), f"lr {lr:.3g}"]
    if samples_per_s is not None and math.isfinite(samples_per_s):
        parts.append(f"{samples_per_s:,.0f} samples/s")
    return "  ".join([*parts, *([signals] if signals else [])])


def live_signals(rows: list[dict]) -> str:
    """'mem 250 MB', plus 'plateau' / 'oscillating' when the validation loss says so."""
    from rnnlab.analysis.dashboard import is_oscillating, is_plateau, peak_memory_mb

    val = [r["val_loss"] for r in rows]
    parts = []
    mem = peak_memory_mb()
    if mem is not None:
        parts.append(f"mem {mem:,.0f} MB")
    if is_plateau(val):
        parts.append("plateau")
    if is_oscillating(val):
        parts.append("oscillating")
    return "  ".join(parts)
