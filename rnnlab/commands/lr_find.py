"""`rnnlab lr-find [OVERRIDES...]`: the learning-rate range test (Smith 2017) of one config.

Composes the config as `rnnlab train` does (same overrides, same one-line errors: `rnnlab.api.compose`),
then trains it with `rnnlab.train.lr_find.LRFinder`, which sweeps the learning rate exponentially from
--start to --end over --steps optimizer steps (as many epochs as that takes) and stops early when the
smoothed loss exceeds 4x its minimum. The run folder (default outputs/lr_find/<timestamp>[_<name>], or
-o DIR) is a normal one (summary.json with an `lr_find` entry, metrics.csv of the completed epochs,
.hydra/), plus lr_find.csv (step, lr, loss, smoothed_loss) and plots/lr_find.png. Prints the suggested
rate and the override to paste. Exit codes: 0 a suggestion, 1 none (too few steps ran) or the run
failed, 2 bad input, 130 interrupted.

Unless the overrides say otherwise, the range test runs with `monitor=none train.plots=false
train.progress=false` (the weights are not the point, so the monitor and the run's plots would be
noise); early stopping is always off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.train.callbacks import Callback
from rnnlab.train.lr_find import LRFindError

# Overrides the range test starts from; an override of the same key on the command line wins.
DEFAULTS = ("monitor=none", "train.plots=false", "train.progress=false")
EXIT_CODES = {"completed": 0, "interrupted": 130}


class LRFindResult(NamedTuple):
    run_dir: Path
    summary: Any  # rnnlab.record.summary.Summary
    finder: Any  # rnnlab.train.lr_find.LRFinder

    @property
    def suggestion(self) -> float | None:
        return self.finder.suggestion


def run(args: list[str], start: float = 1e-7, end: float = 10.0, steps: int = 100, output: str | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    try:
        res = lr_find(args, start=start, end=end, steps=steps, output=output, status=True)
    except (ConfigError, DataError, LRFindError) as exc:  # bad input (and --start/--end/--steps): one line
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"Error: cannot write {exc.filename or output}: {exc.strerror or exc.__class__.__name__}",
              file=sys.stderr)
        return 2
    f, status = res.finder, res.summary.status
    print(f"lr-find: {len(f.lrs)} steps, lr {f.start:g} -> {f.lrs[-1] if f.lrs else f.start:.3g} ({f.stopped})")
    if status != "completed":
        print(f"run {status}: {res.summary.message}", file=sys.stderr)
    print(f"run folder: {res.run_dir} (lr_find.csv, plots/lr_find.png, summary.json)")
    if f.suggestion is None:
        print("no suggestion: too few steps ran for the smoothed loss to have a slope (try more --steps)",
              file=sys.stderr)
        return EXIT_CODES.get(status, 1) or 1
    from rnnlab.train.lr_find import format_lr

    lr = format_lr(f.suggestion)
    print(f"suggested lr: {lr} (steepest descent of the smoothed loss)")
    kept = [a for a in args if a.split("=", 1)[0].lstrip("+~") != "optim.lr"]  # the sweep ignored it
    print(f"train with it: rnnlab train {shlex.join([*kept, f'optim.lr={lr}'])}")
    print(f"optim.lr={lr}")
    return EXIT_CODES.get(status, 1)


def lr_find(args: list[str], start: float = 1e-7, end: float = 10.0, steps: int = 100,
            output: str | Path | None = None, status: bool = False) -> LRFindResult:
    """Run the range test in-process; bad input raises ValueError (ConfigError, DataError) with one line.
    status: a transient status line (step, lr, smoothed loss) while it runs, on a terminal only."""
    from rnnlab import api
    from rnnlab.config.validate import ConfigError
    from rnnlab.record.folder import RunFolder
    from rnnlab.train.lr_find import LRFinder

    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ConfigError(f"lr-find takes KEY=VALUE overrides only, not {' '.join(flags)} "
                          "(options: --start, --end, --steps, -o)")
    finder = LRFinder(start, end, steps)  # checks the range first: no composing for a bad --steps
    rc = api.compose(with_defaults(args))
    # Enough epochs for the sweep (each has at least one step); the finder stops it. No early stopping.
    rc.train = dataclasses.replace(rc.train, epochs=max(rc.train.epochs, steps), early_stopping_patience=None)
    run_dir = Path(output) if output is not None else default_dir(rc.name)
    shown = [StatusLine(finder)] if status else []
    summary = api.train(rc, run_dir, callbacks=[finder, *shown], hooks=[finder.summary_entry])
    write_outputs(RunFolder(run_dir, plots=True), finder)
    return LRFindResult(run_dir, summary, finder)


class StatusLine(Callback):
    """`lr-find: step 37/100  lr 2.1e-04  smoothed loss 0.98` on stderr while the sweep runs; transient
    (gone when it ends, so an error stays one line) and only on a terminal."""

    def __init__(self, finder, console=None):
        from rnnlab.report.console import make_console

        self.finder, self.console = finder, console or make_console()
        self.status = None

    def session(self, fit):
        if not self.console.is_terminal:
            return contextlib.nullcontext()
        self.status = self.console.status(f"lr-find: lr {self.finder.start:g} -> {self.finder.end:g} ...")
        return self.status

    def on_step_end(self, fit, info) -> None:
        f = self.finder
        if self.status is not None and f.lrs:
            self.status.update(f"lr-find: step {len(f.lrs)}/{f.steps}  lr {f.lrs[-1]:.3g}  "
                               f"smoothed loss {f.smoothed[-1]:.4g}")


def with_defaults(args: list[str]) -> list[str]:
    """DEFAULTS for the keys (and groups) the overrides leave alone, then the overrides."""
    keys = {a.split("=", 1)[0].lstrip("+~") for a in args}
    return [*(d for d in DEFAULTS if d.split("=", 1)[0] not in keys), *args]


def default_dir(name: str | None) -> Path:
    """A new folder outputs/lr_find/<timestamp>[_<name>] (-2, -3, ... when that name is taken)."""
    from rnnlab.runtime.folders import claim_new_dir

    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return claim_new_dir(Path("outputs") / "lr_find" / (stamp + (f"_{name}" if name else "")))


def write_outputs(folder, finder) -> None:
    import pandas as pd

    from rnnlab.report.lr_find_plot import lr_find_plot

    folder.table("lr_find.csv", pd.DataFrame(finder.rows(), columns=["step", "lr", "loss", "smoothed_loss"]))
    folder.figure("lr_find.png", lambda path: lr_find_plot(finder.lrs, finder.losses, finder.smoothed,
                                                           finder.suggestion, path, finder.stopped))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
