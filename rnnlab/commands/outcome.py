"""What became of a job of `rnnlab train` or `rnnlab cv`: read from its run folder.

A job's outcome is its folder's `summary.json` (the run writes it, also when it fails on its input
or is interrupted), so the CLI reads it from the sweep folder whichever machine ran the job: an
in-process job, a joblib worker or a submitit job on a cluster node. A job that could not take its
folder (another run's, or one it cannot resume) has no summary of its own: it returns its refusal as
the job's value, which every Hydra launcher carries back (`Outcome.unrecorded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnlab.analysis.main_metric import main_metric

# Process exit code of one run by status; bad input is 2 whatever the status.
EXIT_CODES = {"completed": 0, "diverged": 1, "failed": 1, "interrupted": 130}


@dataclass
class Outcome:
    status: str
    bad_input: bool = False
    message: str | None = None
    # Not what the job's folder records: the job left it as it was (another run's folder, or one it could
    # not resume), so the job's return value is its outcome.
    unrecorded: bool = False
    # The run's main metric (rnnlab.analysis.main_metric): its name, and its value when the run was tested.
    metric: str | None = None
    value: float | None = None

    @property
    def exit_code(self) -> int:
        return 2 if self.bad_input else EXIT_CODES.get(self.status, 1)


def read(run_dir: str | Path) -> Outcome:
    """The outcome summary.json records; "missing" when the job left none (never started, or killed first)."""
    from rnnlab.record import summary as summary_file

    try:
        s = summary_file.read(run_dir)
    except FileNotFoundError:
        return Outcome("missing", message=f"no summary.json in {run_dir}: the job did not start, or was killed first")
    except (OSError, ValueError, TypeError) as exc:
        return Outcome("unreadable", message=f"{Path(run_dir) / 'summary.json'}: {exc}")
    metric, value = main_metric(s) or (None, None)
    return Outcome(s.status, bool(s.bad_input), s.message, metric=metric, value=value)
