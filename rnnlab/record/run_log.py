"""train.log: the run's own log, in its run folder.

    log = RunLog.open(run_dir)     # the recorder, once it holds the folder (a refused run writes nothing)
    show(console, text, WARNING)   # a line for the console (when there is one) and for train.log alike
    log.close()                    # the recorder, when it lets the folder go

Its lines come through the logger `rnnlab.run` (`log`): the start and the config (the recorder's
`begin`), one line per epoch (the progress display: the numbers its bar shows), the run's warnings
(`show`), every status the summary records (the recorder's `write_summary`) and a failure's
traceback. Records of the other `rnnlab.*` loggers land here too (a report that could not be written,
the phases at DEBUG with `hydra.verbose`). `rnnlab.run` does not propagate: what the run shows on its
console it shows itself, so Hydra's console handler must not print it twice. Hydra's own job log file
is off (conf/config.yaml: hydra/job_logging=stdout), so this is the one writer of train.log; a resumed
run appends to it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

FILE = "train.log"
FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

log = logging.getLogger("rnnlab.run")
log.setLevel(logging.INFO)  # without Hydra's logging the root level (WARNING) would drop the epoch lines
log.propagate = False
log.addHandler(logging.NullHandler())  # no run log open: silent (not logging's stderr fallback)


class _FileHandler(logging.FileHandler):
    """The run's train.log: records of the run's own thread only (two runs in threads of one process
    keep their logs apart), and a disk that refuses a line loses that line quietly (the summary is the
    run's record of what went wrong; logging's own complaint would be a traceback on the console)."""

    def __init__(self, path: Path):
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        thread = threading.get_ident()
        self.addFilter(lambda record: record.thread == thread)

    def handleError(self, record) -> None:  # noqa: N802 - logging's name
        pass


class RunLog:
    LOGGERS = ("rnnlab.run", "rnnlab")

    def __init__(self, handler: _FileHandler):
        self.handler = handler
        self._status: tuple[Any, Any] = (None, None)

    @classmethod
    def open(cls, run_dir: str | Path) -> RunLog:
        handler = _FileHandler(Path(run_dir) / FILE)
        for name in cls.LOGGERS:
            logging.getLogger(name).addHandler(handler)
        return cls(handler)

    def close(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self.handler)
        self.handler.close()

    def status(self, summary) -> None:
        """The summary's status, once per change (the summary is written several times a run)."""
        key = (summary.status, summary.message)
        if summary.status != "running" and key != self._status:
            self._status = key
            log.log(STATUS_LEVELS.get(summary.status, logging.ERROR), status_line(summary))


STATUS_LEVELS = {"completed": logging.INFO, "interrupted": logging.WARNING, "pruned": logging.WARNING}


def show(console, text: str, level: int = logging.INFO, style: str | None = None) -> None:
    """One line of the run for its console (when it has one) and its train.log: the same words in both."""
    if console is not None:
        from rich.markup import escape

        console.print(f"[{style}]{escape(text)}[/]" if style else escape(text), soft_wrap=True, highlight=False)
    log.log(level, text)


def started(run_dir: Path, versions: dict[str, str], resumed: list[int], config: dict[str, Any],
            overrides=()) -> None:
    """The start line and the config, one line per section."""
    how = f"resumed after epoch {resumed[-1]}" if resumed else "started"
    where = ", ".join(f"{k} {v}" for k, v in versions.items())
    log.info(f"run {how} in {run_dir} ({where})")
    log.info(f"overrides: {' '.join(overrides) or '(none)'}")
    for section, values in config.items():
        if isinstance(values, dict):
            log.info(f"config {section}: " + " ".join(f"{k}={_value(v)}" for k, v in values.items()))
        else:
            log.info(f"config {section}={_value(values)}")


def status_line(summary) -> str:
    """'completed: best epoch 3 of 30, test mse 0.01 rmse 0.1 ..., 12.3 s' (or the status and its message)."""
    parts = [f"{summary.status}" + (f" ({summary.message})" if summary.message else "")]
    if summary.bad_input:
        parts.append("bad input")
    if summary.epochs_run:
        parts.append(f"best epoch {summary.best_epoch or '-'} of {summary.epochs_run}")
    if summary.test_metrics:
        parts.append("test " + " ".join(f"{k} {_value(v)}" for k, v in summary.test_metrics.items()
                                        if isinstance(v, int | float)))
    if summary.runtime_s is not None:
        parts.append(f"{summary.runtime_s:.3g} s")
    return "; ".join(parts)


def _value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
