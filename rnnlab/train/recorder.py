"""The run recorder: the only writer of a run folder.

    recorder = RunRecorder(run_dir, plots=True, hooks=[fn])   # fn(fit) -> summary entries (cv, search)
    recorder.begin(fit)                   # summary.json "running", metrics.csv header, checkpoint/ (epoch 0)
    recorder.epoch_end(fit, row, improved) # one metrics.csv line; checkpoint/ when improved
    recorder.epoch_saved(fit)             # checkpoint_last/ with the training state
    recorder.step_saved(fit)              # checkpoint_last/ inside an epoch, when step_due(fit) (every N steps)
    recorder.stopped(fit)                 # a stopped run's status at once (the test phase can take a while)
    recorder.attempt_started(fit)         # train.restarts: checkpoint_last at epoch 0 of a new attempt
    recorder.keep_attempt(k) / settle_attempt(kept, current, others)   # the best attempt's snapshot, then the kept one
    recorder.table("predictions.csv", frame)
    recorder.finish(fit, entries, tables) # summary.json, then plots and report.html
    recorder.write_stub(status, message)  # a run that never started (bad input, a skipped fold)

Every file is written atomically (metrics.csv: one appended line per epoch, flushed); train.log is open
from `claim` to `release` (rnnlab.record.run_log: the start, the config, every status the summary records). The
checkpoint layout is `rnnlab.record.checkpoint`'s; checkpoint_last/ carries the training state
(optimizer moments, random streams, selection and callback state, epoch and step) for resume.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.engine.model import n_params
from rnnlab.record import checkpoint, run_log
from rnnlab.record import summary as summary_file
from rnnlab.record.folder import RunFolder
from rnnlab.record.metrics_log import MetricsLog
from rnnlab.record.summary import Summary
from rnnlab.report import notes
from rnnlab.report.html import write_report
from rnnlab.runtime import signals
from rnnlab.runtime.folders import describe
from rnnlab.runtime.io import StorageError, atomic_write, storage_errors, strict_json, write_text

log = logging.getLogger(__name__)


class RunFolderError(ValueError):
    """The run folder cannot be taken (in use, or holding another run); nothing in it is touched."""


class RunRecorder(RunFolder):
    def __init__(self, run_dir: str | Path, plots: bool = True, hooks=()):
        super().__init__(run_dir, plots)
        self.hooks = list(hooks)
        self.summary = Summary(run_dir=str(self.run_dir))
        self.metrics = MetricsLog(self.run_dir)
        self.callbacks: list = []  # whose state goes into the training checkpoint
        self.attempt: int | None = None  # train.restarts: the attempt being trained (in the checkpoints' meta)
        self.other_rows: list[dict[str, Any]] = []  # train.restarts: the other attempts' metrics.csv rows
        self._phase = "start-up"
        self._log: run_log.RunLog | None = None  # train.log, open while the run holds the folder

    @property
    def phase(self) -> str:
        """Where the run is: start-up | training | test | monitor | plots | report | done (the run moves it
        on; a signal's `interrupted_in`). Logged at DEBUG (`hydra.verbose=rnnlab.train.recorder`)."""
        return self._phase

    @phase.setter
    def phase(self, phase: str) -> None:
        log.debug("phase %s", phase)
        self._phase = phase

    # ------------------------------------------------------------------ the folder
    def claim(self, resume: bool = False) -> None:
        """Take the folder for this run: an exclusive lock held until `release` (fcntl.flock, which the
        kernel drops when the process dies, so a killed run never leaves it locked), and a folder that
        already holds a run is refused unless resuming it. RunFolderError (one line) when refused."""
        import fcntl

        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.run_dir / ".lock", "a+")  # noqa: SIM115 - held for the run's life
        except OSError as exc:  # a file in the way, a read-only or full disk: before anything is trained
            raise RunFolderError(f"run folder {describe(exc, self.run_dir)}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RunFolderError(f"run folder {self.run_dir} is in use by another run; choose another folder") \
                from None
        if not resume and checkpoint.has_training_state(self.run_dir):  # a run trained here (a stub is no run)
            self.release()
            raise RunFolderError(f"run folder {self.run_dir} already holds a run: continue it with "
                                 f"rnnlab train --resume {self.run_dir}, or choose another folder")
        self._sweep_leftovers()
        self._log = run_log.RunLog.open(self.run_dir)

    def _sweep_leftovers(self) -> None:
        """Temporary files a killed process (SIGKILL, a lost machine) left mid-write: ours to remove now
        that the folder is locked (a signal's own exit removes them itself)."""
        for tmp in [*self.run_dir.rglob(".*.tmp"), *self.run_dir.glob(".checkpoint_last.link.*")]:
            tmp.unlink(missing_ok=True)

    def started_here(self) -> bool:
        """Whether a run began in this folder (its summary.json, or Hydra's record of the job)."""
        return (self.run_dir / summary_file.FILE).is_file() or (self.run_dir / ".hydra" / "config.yaml").is_file()

    def release(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()  # closing drops the flock
            self._lock = None

    # ------------------------------------------------------------------ the one summary.json writer
    def write_summary(self) -> Path:
        self.summary.run_dir = str(self.run_dir)
        with signals.deferred():  # a signal now waits for the file: the summary on disk is this one, whole
            path = write_text(self.run_dir / summary_file.FILE, self.summary.to_json())
        self._log_status()
        return path

    def _log_status(self) -> None:
        if self._log is not None:
            self._log.status(self.summary)

    def storage_failed(self, exc: StorageError) -> StorageError:
        """The disk refused a file: the summary says so with every result computed so far (when the disk
        still takes the summary), and the error carries that summary for the caller to show."""
        self.summary.update(status="failed", message=f"{exc} (after {len(self.metrics.rows)} completed "
                                                     "epochs; the files written before are whole)")
        try:
            self.write_summary()
        except StorageError:
            self._log_status()  # the summary on disk stays the last one written, whole; the log may still take it
        exc.summary = self.summary
        return exc

    def interrupted(self) -> Summary:
        """A signal no phase caught (during start-up, or a late one): the summary says where the run stopped."""
        if self.phase == "start-up":
            return self.write_stub("interrupted", "interrupted during start-up: nothing was trained",
                                   interrupted_in="start-up")
        if self.summary.status != "interrupted":  # else where the first signal stopped it stays the answer
            self.summary.update(status="interrupted", message=f"interrupted during the {self.phase} phase",
                                interrupted_in=self.phase)
        self.write_summary()
        return self.summary

    def last_words(self) -> None:
        """Before a fast exit (a second signal within a second): the summary says where the run stopped."""
        if self.phase == "done":
            return
        at_once = f"stopped at once by a second signal during the {self.phase} phase"
        if self.summary.status == "interrupted":  # where the first signal stopped it stays the answer
            self.summary.update(message=f"{self.summary.message}; {at_once}")
        else:
            self.summary.update(status="interrupted", interrupted_in=self.phase, message=at_once)
        write_text(self.run_dir / summary_file.FILE, self.summary.to_json())
        self._log_status()

    def write_stub(self, status: str, message: str, bad_input: bool = False, **entries) -> Summary:
        """The summary of a run that did not get far (or failed on its input); what is known is kept."""
        self.summary.update(status=status, message=message, bad_input=bad_input, **entries)
        self._hooks(None)
        self.write_summary()
        return self.summary

    # ------------------------------------------------------------------ during the loop
    def begin(self, fit) -> None:
        """A new run: summary.json "running", no metrics yet, checkpoint/ with the initial weights. A resumed
        one (fit.epoch > 0): its metrics rows kept, its best checkpoint kept, the epoch it resumed from listed."""
        resumed = self._resumed_from(fit)
        self.summary.update(status="running", seed=fit.cfg.seed, n_params=n_params(fit.params),
                            versions=versions(), pid=os.getpid(), blas_threads=blas_threads(),
                            monitored_metric=fit.cfg.train.monitor, **fit.task.summary_entries(),
                            **({"resumed_from_epochs": resumed} if resumed else {}))
        self._hooks(fit)
        run_log.started(self.run_dir, self.summary.versions, resumed, fit.cfg.to_dict(), self._overrides(fit))
        run_log.show(None, notes.data_line(self.summary))  # the console had it when the task accepted the data
        rows = [*self.other_rows, *fit.rows]
        if self.attempt is not None:  # train.restarts: attempts in order (the kept one resumes after later ones)
            rows.sort(key=lambda r: r.get("attempt", 0))
        self.metrics.start(rows)
        if not resumed:
            self._checkpoint("checkpoint", fit, fit.params, fit.state, {"epoch": 0})
        self.write_summary()

    def _overrides(self, fit) -> list[str]:
        """What the run's config was composed from: its .hydra/overrides.yaml (a Hydra job's), else the config's."""
        import yaml

        try:
            return [str(o) for o in yaml.safe_load((self.run_dir / ".hydra" / "overrides.yaml").read_text()) or []]
        except (OSError, yaml.YAMLError, TypeError):
            return list(getattr(fit.cfg, "overrides", ()))

    def _resumed_from(self, fit) -> list[int]:
        """The epochs this run was resumed from so far (this segment's last), [] for a new run."""
        if fit.step == 0:  # a mid-epoch checkpoint of epoch 1 resumes at epoch 0, step > 0
            return []
        try:
            earlier = summary_file.read(self.run_dir).get("resumed_from_epochs", [])
        except (OSError, ValueError, TypeError):
            earlier = []
        return [*earlier, fit.epoch]

    def epoch_end(self, fit, row: dict[str, Any], improved: bool) -> None:
        """The epoch's metrics.csv line, and checkpoint/ when it is the new best."""
        self.metrics.append(row)
        if improved:
            extra = {k: row[k] for k in ("val_loss", "val_accuracy") if k in row}
            self._checkpoint("checkpoint", fit, fit.params, fit.state, {"epoch": row["epoch"], **extra})

    def epoch_saved(self, fit) -> None:
        """checkpoint_last: the epoch's weights and the training state, after every hook of the epoch ran.
        An epoch that was the best links checkpoint/'s weights instead of writing them twice."""
        same = self.run_dir / "checkpoint" if fit.selection.epoch == fit.epoch else None
        self._save_last(fit, f".checkpoint_last.{fit.epoch}", {"epoch": fit.epoch}, same_as=same)

    def step_due(self, fit) -> bool:
        """True when train.checkpoint_every_steps asks for a mid-epoch checkpoint_last after this step
        (not after an epoch's last batch: the epoch's own checkpoint follows)."""
        every = fit.cfg.train.checkpoint_every_steps
        return bool(every) and fit.step % every == 0 and not fit.position.done

    def step_saved(self, fit) -> None:
        """checkpoint_last inside an epoch: the weights after `fit.step` steps and the training state with the
        position in the epoch (its batch order, the batches taken, the partial sums of its row)."""
        self._save_last(fit, f".checkpoint_last.{fit.epoch}.{fit.step}",
                        {"epoch": fit.epoch, "step": fit.step, "batch": fit.position.taken})

    def _save_last(self, fit, name: str, meta: dict, same_as=None) -> None:
        """Its files must agree (weights and training state of one moment) even when the process is killed
        while writing them, so they go into a folder of their own (.checkpoint_last.<epoch>[.<step>]) and the
        symlink checkpoint_last is switched to it in one atomic rename; then the previous one goes."""
        self._checkpoint(name, fit, fit.params, fit.state, meta, training=training_state(fit, self.callbacks),
                         same_as=same_as)
        self._switch_last(name)

    def _switch_last(self, name: str) -> None:
        """Point checkpoint_last at the complete folder `name` (one atomic rename), then remove the others."""
        link = self.run_dir / "checkpoint_last"
        if link.is_dir() and not link.is_symlink():  # a folder of an older rnnlab: replaced once
            shutil.rmtree(link)
        tmp = self.run_dir / f".checkpoint_last.link.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        with signals.temp_file(str(tmp)), storage_errors(link):
            os.symlink(name, tmp)
            os.replace(tmp, link)
        for old in self.run_dir.glob(".checkpoint_last.*"):  # the previous one, and any a kill left behind
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def stopped(self, fit) -> None:
        """A stopped run's status at once: a second signal during the test must not leave "running"."""
        self.summary.update(epochs_run=len(fit.rows))
        if fit.status != "completed":
            self.summary.update(status=fit.status, message=fit.message,
                                **({"interrupted_in": "training"} if fit.status == "interrupted" else {}))
            self.write_summary()

    def _checkpoint(self, name: str, fit, params, state, meta: dict, training=None, same_as=None) -> None:
        attempt = {} if self.attempt is None else {"attempt": self.attempt}
        checkpoint.save(self.run_dir / name, fit.task.spec, params, {**fit.task.checkpoint_meta(), **attempt, **meta},
                        state, training=training, same_as=same_as)

    # ------------------------------------------------------------------ train.restarts
    # A new attempt first gets its own checkpoint_last (epoch 0, the records of the attempts before it), then
    # checkpoint/ its initial weights (`begin`); the best attempt so far lives in attempt_<k>/ (its checkpoint/
    # and checkpoint_last/, copied whole) until the run ends, when the kept attempt's files become the run's.
    # Each step leaves a folder that resumes into the same decisions (a resumed run redoes the step).
    def attempt_started(self, fit) -> None:
        """checkpoint_last of a new attempt before it trains: a resume goes on in this attempt, not the last."""
        self._save_last(fit, f".checkpoint_last.{fit.epoch}", {"epoch": fit.epoch})

    def keep_attempt(self, attempt: int) -> None:
        """Snapshot checkpoint/ and checkpoint_last/ (the attempt just ended, the best so far) as attempt_<k>/."""
        dest, part = attempt_folder(self.run_dir, attempt), self.run_dir / f".attempt_{attempt}.partial"
        with storage_errors(dest):
            shutil.rmtree(part, ignore_errors=True)
            for name in ("checkpoint", "checkpoint_last"):
                shutil.copytree(self.run_dir / name, part / name)  # the link's folder, its files as copies
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(part, dest)

    def drop_snapshots(self, keep: int | None = None) -> None:
        """Remove the attempt_<k>/ snapshots (but `keep`'s), and any a kill left half-copied."""
        for old in [*self.run_dir.glob("attempt_*"), *self.run_dir.glob(".attempt_*.partial")]:
            if old.is_dir() and old != (None if keep is None else attempt_folder(self.run_dir, keep)):
                shutil.rmtree(old, ignore_errors=True)

    def settle_attempt(self, kept: int, current: int, others: list[dict]) -> None:
        """The kept attempt's files become the run's: when it is not the attempt trained last, checkpoint_last
        is its end (its training state listing the `others`) and checkpoint/ its best epoch. Then the snapshots go."""
        snap = attempt_folder(self.run_dir, kept)
        if kept != current:
            name = f".checkpoint_last.kept{kept}"
            with storage_errors(self.run_dir / name):
                shutil.rmtree(self.run_dir / name, ignore_errors=True)
                shutil.copytree(snap / "checkpoint_last", self.run_dir / name)
                info, _ = checkpoint.load_training_state(self.run_dir / name)
                info["callbacks"]["restarts"]["others"] = others
                write_text(self.run_dir / name / "training_state.json", strict_json(info))
            self._switch_last(name)
        best = self.run_dir / "checkpoint"
        if json.loads((best / "model.json").read_text()).get("attempt", kept) != kept:  # written last: it names them
            for f in ("model.npz", "model.json"):
                data = (snap / "checkpoint" / f).read_bytes()
                atomic_write(best / f, lambda fh, data=data: fh.write(data), mode="wb")
        self.drop_snapshots()

    def _hooks(self, fit) -> None:
        """Entries the caller attaches (cv's fold, a search trial); fit is None for a run that never started."""
        for hook in self.hooks:
            self.summary.update(hook(fit) or {})

    # ------------------------------------------------------------------ after the loop
    def finish(self, fit, entries: dict[str, Any], report) -> Summary:
        """The test report's files, summary.json, then the plots and report.html."""
        for name, frame in report.files.items():
            self.table(name, frame)
        self.summary.update(entries)
        self._hooks(fit)
        self.summary.status, self.summary.message = fit.status, fit.message
        self.write_summary()
        if self.plots:
            try:
                with signals.unmasked():
                    self.phase = "plots"
                    from rnnlab.report import plots

                    plots.save_run_plots(self.run_dir, fit.rows, fit.lr_trace, fit.task.steps_per_epoch,
                                         **report.tables)
                    self.phase = "report"
                    self._report()
            except KeyboardInterrupt:  # the files so far are whole; the summary says what is missing
                self._interrupted_after(fit)
        self.phase = "done"
        return self.summary

    def _interrupted_after(self, fit) -> None:
        phase = self.phase
        done = "" if fit.status == "completed" else f" ({fit.message})"
        self.summary.update(status="interrupted", interrupted_in=phase,
                            message=f"interrupted while writing the {phase}{done}; the trained model and "
                                    "every result above are kept")
        self.write_summary()
        if phase == "plots":  # a short partial report of what is there
            self.phase = "report"
            self._report()

    def _report(self) -> None:
        try:  # report.html last; a failure here never loses the run
            with signals.unmasked():
                write_report(self.run_dir)
        except (StorageError, KeyboardInterrupt):  # the disk, or a signal, not the report: the run says so
            raise
        except Exception as exc:
            log.warning("report.html not written: %r", exc)


def attempt_folder(run_dir: Path, attempt: int) -> Path:
    """Where train.restarts keeps the best attempt so far (its checkpoint/ and checkpoint_last/)."""
    return Path(run_dir) / f"attempt_{attempt}"


def training_state(fit, callbacks=()) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(JSON part, arrays) of what a resumed run needs beyond the weights."""
    rngs = {**fit.task.streams._asdict(), **fit.task.extra_streams()}
    streams = {name: _stream_state(rng) for name, rng in rngs.items()}
    info = {"epoch": fit.epoch, "step": fit.step, "optimizer": fit.optimizer.name, "history": list(fit.history),
            "selection": fit.selection.state_dict(), "hygiene": fit.hygiene.state_dict(), "streams": streams,
            "callbacks": {}}
    arrays = {checkpoint.OPTIM_PREFIX + k: v for k, v in fit.optimizer.state_dict().items()}
    arrays["lr_trace"] = np.asarray(fit.lr_trace, dtype=np.float64)
    for cb in callbacks:  # a callback's arrays (the monitor's records) go to the npz, the rest to JSON
        if cb.name:
            prefix = checkpoint.callback_prefix(cb.name)
            info["callbacks"][cb.name], more = checkpoint.split_arrays(cb.state_dict(), prefix)
            arrays.update(more)
    arrays.update({checkpoint.TASK_PREFIX + k: v for k, v in fit.task.state_dict().items()})
    if fit.position is not None:  # a mid-epoch checkpoint (train.checkpoint_every_steps)
        info["position"], more = checkpoint.split_arrays(fit.position.state_dict(), checkpoint.POSITION_PREFIX)
        arrays.update(more)
    return info, arrays


def _stream_state(rng: np.random.Generator) -> dict[str, Any]:
    """A Generator's bit-generator state with its 128-bit integers as strings (JSON readers keep them exact)."""
    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return str(v) if isinstance(v, int) and abs(v) >= 2 ** 53 else v

    return conv(rng.bit_generator.state)


def restore_stream(state: dict[str, Any]) -> np.random.Generator:
    """The generator a saved stream state (`training_state.json`'s "streams") describes."""
    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return int(v) if isinstance(v, str) and v.lstrip("-").isdigit() else v

    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = conv(state)
    return rng


def blas_threads() -> str:
    """Threads the BLAS library will use, as a string ("1", "2"; "?" when unknown)."""
    from threadpoolctl import threadpool_info

    counts = sorted({str(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"})
    return ",".join(counts) or "?"


def versions() -> dict[str, str]:

    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("rnnlab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "0"
    return {"rnnlab": ours, "numpy": np.__version__,
            "python": platform.python_version()}


def record_failure(run_dir: str | Path, message: str, bad_input: bool = False, status: str = "failed",
                   hooks=(), config_files=None, **entries) -> Summary:
    """Mark a run folder as failed (or `status`) after an error outside the run. The summary this
    process's run already wrote there is kept (the run records its own failures first); anything
    else in the folder (an older run's summary) is replaced by a fresh stub. A folder another run
    holds is left alone (the stub is only returned). config_files(run_dir): written when the folder
    has none, so `--resume` knows the run's config."""
    recorder = RunRecorder(run_dir, plots=False, hooks=hooks)
    try:
        recorder.claim(resume=True)
    except RunFolderError:  # in use by another run, or not writable: nothing here is ours to change
        recorder.summary.update(status=status, message=message, bad_input=bad_input, **entries)
        return recorder.summary
    try:
        return _record_failure(recorder, message, bad_input, status, config_files, entries)
    finally:
        recorder.release()


def _record_failure(recorder: RunRecorder, message, bad_input, status, config_files, entries) -> Summary:
    run_dir = recorder.run_dir
    try:
        earlier = summary_file.read(run_dir)
    except (OSError, ValueError, TypeError):
        earlier = None
    if earlier is not None and earlier.pid == os.getpid() and Path(earlier.run_dir) == Path(run_dir):
        if (earlier.status, earlier.message) == (status, message):
            return earlier  # already recorded by the run itself
        recorder.summary = earlier
    if config_files is not None and not (run_dir / ".hydra" / "overrides.yaml").is_file():
        config_files(run_dir)
    return recorder.write_stub(status, message, bad_input, **entries)


