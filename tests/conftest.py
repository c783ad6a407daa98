"""Shared fixtures: a tiny, fast training config written into tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# A model and data set small enough that a run takes a fraction of a second: no plots and no monitor
# unless a test is about them (then it adds TINY_VIEWS or the single key back).
TINY = [
    "data.length=400",
    "data.n_in=12",
    "arch.hidden_size=8",
    "train.epochs=3",
    "train.batch_size=32",
    "train.progress=false",
    "train.plots=false",
    "monitor=none",
    # ETS costs a process ~1.5 s of statsmodels imports: only where a test is about it
    "data.baselines=[naive,drift,mean]",
]
TINY_VIEWS = ["train.plots=true", "monitor=default"]


def run_cli(args: list[str], cwd: Path, timeout: float = 120, env: dict | None = None):
    """Run `rnnlab ...` in a subprocess (the real entry point), return CompletedProcess."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rnnlab", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def absl_off_pytest_streams() -> None:
    """After importing keras or tensorflow: absl's logging handler holds the sys.stderr of the moment it was
    imported (a pytest capture) and closes that stream when logging shuts its handlers down, which a later
    in-process Hydra run does (dictConfig); pytest's capture then fails with "I/O operation on closed file"
    and the session dies. Pointing it at the real stderr, which it never closes, keeps the captures whole."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


@pytest.fixture
def tiny_overrides(tmp_path) -> list[str]:
    return [*TINY, f"hydra.run.dir={tmp_path / 'run'}"]
