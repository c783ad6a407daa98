"""rnnlab in Python: compose a config exactly as the command line does, train it, read the summary.

    from rnnlab import api

    rc = api.compose(["arch=gru", "train.epochs=5"])    # Hydra's composition, our validation
    rc.train.batch_size = 32                             # adjust in Python if you like
    summary = api.train(rc, "outputs/my_gru")            # the same run folder `rnnlab train` writes
    print(summary.status, summary.test_metrics["rmse"])

    api.train(["debug=tiny", "arch=indrnn"], "outputs/smoke")   # overrides straight in

`compose` refuses a sweep (``a=1,2``): one call, one config; sweeps are `rnnlab train -m`. Bad
input raises `ConfigError` or `DataError` (ValueErrors whose message is the CLI's one line).
`rnnlab train` runs every job through `train` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rnnlab.config.validate import ConfigError, RunConfig
from rnnlab.record.summary import Summary

__all__ = ["ConfigError", "RunConfig", "Summary", "compose", "load_run", "train"]


def compose(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> RunConfig:
    """The validated config of ``rnnlab train OVERRIDES`` (``-cd CONFIG_DIR`` adds a config folder)."""
    from rnnlab.config import composition

    overrides = [str(o) for o in overrides]
    rc = composition.compose(overrides, config_dir)
    rc.overrides = tuple(overrides)
    return rc


def train(config: RunConfig | Sequence[str], run_dir: str | Path, *, console=None, epoch_hook=None,
          callbacks=(), hooks=(), write_config: bool = True, resume: bool = False, config_files=None) -> Summary:
    """Train one model into `run_dir` (created if needed) and return its summary.

    config: a `RunConfig` (from `compose`) or a list of overrides. The folder gets what a
    ``rnnlab train`` run folder holds, `.hydra/config.yaml` and `overrides.yaml` included
    (write_config=False: none; config_files(run_dir): the caller's, as `rnnlab train`'s jobs write Hydra's).
    They are written once the run holds the folder (its lock), never into another run's folder.
    epoch_hook(epoch, row) may stop the run (status "pruned") by returning a message. callbacks:
    `rnnlab.train.callbacks.Callback`s (epoch and step hooks); hooks: fn(fit) -> summary entries.
    resume=True continues the run already in `run_dir` from its last completed epoch, exactly as if it
    had never stopped (same config and seed; more epochs are fine).
    """
    from rnnlab.train.run import train as fit

    rc = config if isinstance(config, RunConfig) else compose(config)
    if write_config and config_files is None:  # the validated config, as adjusted in Python, and its overrides
        from rnnlab.config.composition import write_run_config

        def config_files(folder):
            write_run_config(folder, rc.to_dict(), rc.overrides)

    return fit(rc, Path(run_dir), console=console, epoch_hook=epoch_hook, callbacks=callbacks, hooks=hooks,
               resume=resume, config_files=config_files)


def load_run(path: str | Path, which: str = "checkpoint"):
    """A trained run folder (or a folder `rnnlab export` wrote) for use (`rnnlab.predict.run.TrainedRun`):
    its config, summary, metrics frame, selected weights (which="checkpoint_last": the last epoch's),
    `predict(source)` on raw inputs (a CSV series, texts, a sequence file, arrays; backend="onnx" runs the
    ONNX graph), `forward(x, mask)` on arrays and `predictions("test")`, the split's predictions.csv again."""
    from rnnlab.predict.run import load_any

    return load_any(path, which)
