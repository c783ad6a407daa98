"""A harness for fault injection: run `rnnlab train` as a real process, signal it at a chosen or random
moment, resume it with `--resume`, and compare it with its uninterrupted twin.

    import signal
    import numpy as np
    from tests.train import faults

    args = [*faults.SMALL, "reg=dropout", "train.checkpoint_every_steps=5"]
    assert faults.train(args, tmp_path / "whole").returncode == 0            # the uninterrupted twin
    hit = faults.interrupt(args, tmp_path / "run", signal.SIGKILL,          # signalled at a random moment
                           rng=np.random.default_rng(0), after_rows=(1, 3), delay=(0.0, 0.3))
    faults.interrupt([], tmp_path / "run", signal.SIGINT, resume=True)      # the resumed run, at its first save
    assert faults.resume(tmp_path / "run").returncode == 0                  # rnnlab train --resume RUN_DIR
    faults.assert_same_run(tmp_path / "whole", tmp_path / "run")             # metrics, weights, test, monitor
    faults.assert_whole(tmp_path / "run")                                    # no .tmp, one checkpoint_last

`interrupt` waits until the run has saved something to resume (a checkpoint_last of its own) and, with
`after_rows`, until metrics.csv has k complete rows (k drawn from the range with `rng`), then sleeps a delay drawn
from `delay` and sends the signal; it returns a `Hit` (the exit code, the rows and checkpoint seen
when the signal went, the moment in seconds since the start). Everything random is drawn from the
given generator, so a failing case replays with its seed. `train`, `resume` and `interrupt` run
`python -m rnnlab train` in `cwd` (default: the run folder's parent) with COLUMNS=200; `start` is the
bare process (e.g. a twin running beside the interrupted run), `rows` and `last_checkpoint` what a run
folder shows so far (to time a signal for a phase of your own).
"""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# A forecasting run of a few seconds: 44 steps an epoch of ~2 ms each (the kill lands mid-epoch more
# often than not), no plots, no progress bar.
SMALL = ["data.length=2000", "data.n_in=12", "arch.hidden_size=16", "train.epochs=6", "train.batch_size=32",
         "train.progress=false", "train.plots=false", "monitor=none"]
# A seq2seq run of a few seconds (reverse digits; scheduled sampling draws from the dropout stream).
SEQ2SEQ = ["data=reverse_digits", "data.n_train=256", "data.n_val=32", "data.n_test=32", "arch=gru",
           "arch.hidden_size=8", "arch.attention=luong", "train.epochs=4", "train.batch_size=16",
           "train.teacher_forcing_end=0.3", "train.progress=false", "train.plots=false", "monitor=none"]
TIMING = ["seconds", "samples_per_s", "monitor_seconds"]  # metrics.csv columns that measure time
MONITOR_FILES = ("gradients.csv", "time_gradients.csv", "weights.csv", "states_summary.csv")
# summary.json entries that must not depend on where the run was interrupted (timings, pids and the
# resume history do)
SAME_ENTRIES = ("status", "epochs_run", "best_epoch", "best_val_loss", "final_train_loss", "final_val_loss",
                "test_weights", "test_weights_epoch", "test_loss", "val_metrics", "test_metrics", "baselines",
                "monitor", "attempts", "kept_attempt", "warnings", "chance_check")


@dataclass
class Hit:
    code: int  # the process's exit code (negative: killed by that signal)
    rows: int  # complete metrics.csv rows when the signal was sent
    checkpoint: str  # where checkpoint_last pointed then (.checkpoint_last.<epoch>[.<step>])
    seconds: float  # since the process started
    stdout: str
    stderr: str


def start(args: list[str], run_dir: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """`rnnlab train ARGS [hydra.run.dir=RUN_DIR]` as a process (stdout and stderr piped)."""
    full = [*args, f"hydra.run.dir={run_dir}"] if run_dir is not None else list(args)
    cwd = cwd or (Path(run_dir).parent if run_dir is not None else Path.cwd())
    return subprocess.Popen([sys.executable, "-m", "rnnlab", "train", *full], cwd=cwd,
                            env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def train(args: list[str], run_dir: Path, cwd: Path | None = None, timeout: float = 300):
    """Run `rnnlab train` to its end; returns a CompletedProcess (returncode, stdout, stderr)."""
    proc = start(args, run_dir, cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def resume(run_dir: Path, *extra: str, cwd: Path | None = None, timeout: float = 300):
    """`rnnlab train --resume RUN_DIR [EXTRA...]` to its end; returns a CompletedProcess."""
    proc = start(["--resume", str(run_dir), *extra], cwd=cwd or Path(run_dir).parent)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows(run_dir: Path) -> int:
    """Complete rows of metrics.csv (a torn last line does not count)."""
    from rnnlab.record.metrics_log import read_rows

    try:
        return len(read_rows(run_dir)[1])
    except FileNotFoundError:
        return 0


def last_checkpoint(run_dir: Path) -> str:
    """The folder checkpoint_last points to ("" when there is none)."""
    link = Path(run_dir) / "checkpoint_last"
    return os.readlink(link) if link.is_symlink() else ""


def interrupt(args: list[str], run_dir: Path, sig: int, rng: np.random.Generator | None = None,
              after_rows: tuple[int, int] | int | None = None, delay: tuple[float, float] | float = 0.0,
              resume: bool = False, cwd: Path | None = None, timeout: float = 120) -> Hit:
    """Start a run (with resume: `--resume RUN_DIR ARGS`), wait until it has saved a checkpoint_last of its own
    (and, with after_rows, until metrics.csv has k complete rows: k an int, or drawn from the inclusive range
    (lo, hi)), sleep `delay` seconds (or a draw from the range), send `sig` and wait for the process to end.
    A run that ends before the signal is due returns its own exit code."""
    rng = rng or np.random.default_rng(0)
    k = after_rows if after_rows is None or isinstance(after_rows, int) else int(rng.integers(after_rows[0],
                                                                                             after_rows[1] + 1))
    pause = delay if isinstance(delay, int | float) else float(rng.uniform(*delay))
    before = last_checkpoint(run_dir) if resume else ""
    t0 = time.monotonic()
    proc = start(["--resume", str(run_dir), *args], cwd=cwd or Path(run_dir).parent) if resume else \
        start(args, run_dir, cwd)
    while proc.poll() is None and time.monotonic() < t0 + timeout and not (
            last_checkpoint(run_dir) not in ("", before) and (k is None or rows(run_dir) >= k)):
        time.sleep(0.005)
    if proc.poll() is None:
        time.sleep(pause)
    seen_rows, seen_checkpoint, moment = rows(run_dir), last_checkpoint(run_dir), time.monotonic() - t0
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return Hit(proc.returncode, seen_rows, seen_checkpoint, moment, out, err)


def _weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def assert_same_run(a: Path, b: Path, monitor: bool = True) -> None:
    """b ended as its twin a: the same metrics.csv apart from the timing columns, bitwise the same weights in
    checkpoint/ and checkpoint_last/, the same summary entries (test metrics, best epoch, the monitor's) and,
    with monitor, the same monitor files byte for byte."""
    a, b = Path(a), Path(b)
    ma, mb = (pd.read_csv(d / "metrics.csv").drop(columns=TIMING, errors="ignore") for d in (a, b))
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    for name in ("checkpoint", "checkpoint_last"):
        wa, wb = _weights(a / name / "model.npz"), _weights(b / name / "model.npz")
        assert wa.keys() == wb.keys(), name
        for k in wa:
            assert wa[k].dtype == wb[k].dtype, f"{name}/{k}"
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{name}/{k}")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in SAME_ENTRIES:
        assert sa.get(key) == sb.get(key), f"summary.json {key}: {sa.get(key)!r} != {sb.get(key)!r}"
    if monitor:
        for f in MONITOR_FILES:
            assert (a / f).exists() == (b / f).exists(), f
            if (a / f).exists():
                assert filecmp.cmp(a / f, b / f, shallow=False), f"{f} differs"


def assert_whole(run_dir: Path, status: str = "completed") -> None:
    """A finished run folder: the status, no temporary files, one checkpoint_last folder (the link's)."""
    run_dir = Path(run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == status
    assert not list(run_dir.glob("**/*.tmp")), list(run_dir.glob("**/*.tmp"))
    kept = sorted(p.name for p in run_dir.glob(".checkpoint_last.*"))
    assert kept == [last_checkpoint(run_dir)], kept


SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
