"""One training run: `train(cfg, run_dir) -> Summary`. Kept apart from the CLI and Hydra.

Load the data (its counts on the console) -> pick the task adapter -> fit (`loop`, inside `attempts`: the
chance-level check and train.restarts) with the run's callbacks (monitor,
progress, pruning, early stopping, cfg.logger's loggers, and the caller's) -> test the selected
weights (the adapter's report) -> the monitor's end analysis -> the recorder writes summary.json,
plots and report.html. Bad input (ConfigError, DataError) and unexpected errors are recorded in
summary.json as "failed" before they propagate, so a run folder never says "running" falsely.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.markup import escape

from rnnlab.analysis.dashboard import dashboard, peak_memory_mb
from rnnlab.config.validate import ConfigError, RunConfig
from rnnlab.data import registry
from rnnlab.data.base import DataError
from rnnlab.monitor import RunMonitor
from rnnlab.record import checkpoint, run_log
from rnnlab.record.summary import Summary
from rnnlab.report import notes
from rnnlab.runtime import signals
from rnnlab.runtime.io import StorageError
from rnnlab.runtime.memory import keep_freed_memory
from rnnlab.train import attempts, loop
from rnnlab.train import callbacks as C
from rnnlab.train.recorder import RunFolderError, RunRecorder
from rnnlab.train.tasks.base import Streams, TestReport
from rnnlab.train.tensorboard import TensorBoardLogger


def train(cfg: RunConfig, run_dir: str | Path, console=None, epoch_hook=None, callbacks=(), hooks=(),
          resume: bool = False, config_files=None) -> Summary:
    """Train one model into run_dir; returns the summary (also in run_dir/summary.json).

    epoch_hook(epoch, row): called after each recorded epoch (1-based); a returned message stops
    the run as "pruned" (rnnlab search's pruner). callbacks: more `callbacks.Callback`s. hooks:
    fn(fit) -> summary entries, attached when the run starts and when it ends (cv's fold, a search trial).
    resume: continue the run in run_dir from its checkpoint_last/ (`resume.restore`), exactly.
    config_files(run_dir): writes the run's config files, once the folder is this run's.
    """
    recorder = RunRecorder(run_dir, plots=cfg.train.plots, hooks=hooks)
    recorder.claim(resume)  # refused: nothing in the folder is touched
    if resume and recorder.started_here() and not checkpoint.has_training_state(recorder.run_dir):
        resume = False  # stopped before its first epoch ended: starting over is resuming it
    try:
        with signals.handling(), signals.last_words(recorder.last_words), signals.unmasked():
            with signals.deferred():  # a run folder has its config files before a signal can stop the run
                if config_files is not None:
                    config_files(recorder.run_dir)
            return _threads_limited(cfg, recorder, console, epoch_hook, list(callbacks), resume)
    except RunFolderError:  # another run's folder, or one that cannot be resumed: left as it is
        raise
    except StorageError as exc:  # a full or read-only disk: one line, and the results so far
        raise recorder.storage_failed(exc) from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the loop began, or one the phases after it passed on
        return recorder.interrupted()
    except (ConfigError, DataError) as exc:
        recorder.write_stub("failed", str(exc), bad_input=True)
        raise
    except Exception as exc:  # a bug: recorded, then the caller shows the traceback
        run_log.log.error("the run failed with this traceback:", exc_info=True)
        recorder.write_stub("failed", repr(exc))
        raise
    finally:
        recorder.release()


def _threads_limited(cfg: RunConfig, recorder: RunRecorder, console, epoch_hook, extra: list, resume: bool) -> Summary:
    if cfg.train.blas_threads is None:
        return _train(cfg, recorder, console, epoch_hook, extra, resume)
    from threadpoolctl import threadpool_limits

    # Small per-step GEMMs gain little from a second BLAS thread and lose a lot when
    # another process holds a core (every GEMM then waits for the descheduled thread).
    with threadpool_limits(cfg.train.blas_threads, user_api="blas"):
        return _train(cfg, recorder, console, epoch_hook, extra, resume)


def _train(cfg: RunConfig, recorder: RunRecorder, console, epoch_hook, extra: list, resume: bool) -> Summary:
    t_start = time.perf_counter()
    keep_freed_memory()
    streams = Streams.from_seed(cfg.seed)
    data = registry.load(cfg.data, streams.data, np.dtype(cfg.train.dtype), cv=cfg.cv, seed=cfg.seed)
    recorder.summary.update(data_entries(data))

    def callbacks_for(task) -> tuple[list[C.Callback], RunMonitor]:  # an attempt's own (train.restarts)
        monitor = RunMonitor(cfg.monitor, task.inspector(), recorder, console)
        t = cfg.train
        return [C.Monitor(monitor), C.Progress(cfg, task.steps_per_epoch, len(data.train), console),
                *([C.Pruning(epoch_hook)] if epoch_hook else []),
                C.EarlyStopping(t.monitor, t.early_stopping_patience, t.early_stopping_min_delta),
                *loggers(cfg, recorder.run_dir), *extra], monitor

    def announce() -> None:  # the split sizes, once the task accepted them (train.log has them after its start line)
        if console is not None:
            console.print(escape(notes.data_line(recorder.summary)), soft_wrap=True, highlight=False)

    fit, monitor, entries = attempts.fit_run(cfg, data, streams, recorder, callbacks_for, resume, console, announce)
    return _after_fit(fit, monitor, recorder, t_start, entries)


def data_entries(data) -> dict:
    """summary.json's counts of the data (in its unit: sequences, or windows with their forecast origins) and
    the file layout its loader chose (meta format and format_reason), known before any epoch."""
    unit, meta = getattr(data, "sample_unit", "sequences"), getattr(data, "meta", None) or {}
    return {"n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test), "sample_unit": unit,
            "n_test_origins": len(data.test) if unit == "windows" else None,
            "data_format": meta.get("format"), "data_format_reason": meta.get("format_reason")}


def _after_fit(fit: loop.Fit, monitor: RunMonitor, recorder: RunRecorder, t_start: float, more: dict) -> Summary:
    """Test the selected weights and the monitor's end analysis, then the recorder's summary, plots and
    report. A signal stops the phase it arrives in: the run becomes `interrupted`, with what was computed
    so far, the trained model kept and `interrupted_in` naming the phase ("test": no test metrics).
    more: the fit's own entries (warnings, train.restarts' attempts)."""
    params, state, entries = _tested_weights(fit, recorder)
    entries.update(more)
    report = TestReport({}, {}, {})
    try:
        with signals.unmasked():
            recorder.phase = "test"
            report = fit.task.test_report(params, state)
            entries.update(report.entries)
            recorder.phase = "monitor"
            entries.update(monitor.finish(params, fit.rows, state))
    except KeyboardInterrupt:
        done = f"after {len(fit.rows)} completed epochs" if fit.status == "completed" else f"({fit.message})"
        fit.stop("interrupted", f"interrupted during the {recorder.phase} phase {done}; the trained model is kept")
        entries["interrupted_in"] = recorder.phase
    entries.update(_timing(fit, t_start, fit.cfg.train.monitor))
    return recorder.finish(fit, entries, report)


# logger=NAME (conf/logger/) -> the callbacks that write its files into the run folder.
LOGGERS = {"none": (), "tensorboard": (TensorBoardLogger.from_config,)}


def loggers(cfg: RunConfig, run_dir: Path) -> list[C.Callback]:
    """The logging callbacks cfg.logger asks for (logger=none: none)."""
    return [make(cfg, run_dir) for make in LOGGERS[cfg.logger.name]]


def _tested_weights(fit: loop.Fit, recorder: RunRecorder):
    """The weights the test report uses: the best (checkpointed) ones, or with
    train.restore_best_weights=false the last completed epoch's (never those of a diverged run)."""
    rows, best = fit.rows, fit.selection
    use_last = best.tests_last(fit.cfg.train.restore_best_weights, fit.status, len(rows))
    params, state, last_epoch = fit.params, fit.state, len(rows)
    if use_last and fit.mid_epoch:  # stopped inside an epoch: the last completed epoch's weights, from disk
        try:
            loaded = checkpoint.load(recorder.run_dir / "checkpoint_last")
            params, state, last_epoch = loaded.params, loaded.state or fit.state, int(loaded.info["epoch"])
            use_last = "batch" not in loaded.info  # a mid-epoch checkpoint holds no epoch's weights: the best
        except checkpoint.CheckpointError:  # stopped before it was written: the best weights
            use_last = False
    if not use_last:
        params, state = best.params, best.state
    entries = {
        "test_weights": "last" if use_last else "best",
        "test_weights_epoch": last_epoch if use_last else best.epoch,
        "epochs_run": len(rows),
        "best_epoch": best.epoch,
        "best_val_loss": rows[best.epoch - 1]["val_loss"] if 0 < best.epoch <= len(rows) else None,
        "final_train_loss": rows[-1]["train_loss"] if rows else None,
        "final_val_loss": rows[-1]["val_loss"] if rows else None,
    }
    return params, state, entries


def _timing(fit: loop.Fit, t_start: float, monitor: str) -> dict:
    out = {"runtime_s": time.perf_counter() - t_start,
           "dashboard": dashboard(fit.rows, monitor=monitor, peak_memory_mb=peak_memory_mb())}
    if fit.rows:
        out["seconds_per_epoch"] = float(np.mean([r["seconds"] for r in fit.rows]))
    return out
