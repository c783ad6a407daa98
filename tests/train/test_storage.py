"""A full or read-only disk: the run stops with one line naming the path and the cause, the files
written before stay whole, the summary keeps every result computed (when the disk still takes it),
and the CLI prints those results before the line. The disks are real: small tmpfs mounts (root only;
elsewhere the test says why it cannot run)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from rnnlab import api
from rnnlab.record.summary import read as read_summary
from rnnlab.runtime.io import StorageError
from tests.conftest import TINY

RUN = [*TINY, "train.epochs=2", "train.limit_batches=2", "train.plots=true"]


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of `size` mounted at a fresh folder (unmounted afterwards)."""
    mounts = []

    def mount(size: str, options: str = "") -> object:
        where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        where.mkdir()
        opts = f"size={size}" + (f",{options}" if options else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'not root'}): "
                        "the full-disk checks need one")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_while_drawing_plots_keeps_the_test_metrics(small_disk):
    disk = small_disk("150k")  # room for the checkpoints, metrics and summary, not for every plot
    with pytest.raises(StorageError) as exc:
        api.train(RUN, disk / "run")
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"cannot write {disk / 'run'}") and "No space left on device" in line
    assert exc.value.summary.test_metrics  # carried to the caller, who prints them
    s = read_summary(disk / "run")
    assert s.status == "failed" and "No space left on device" in s.message and s.test_metrics
    assert s.epochs_run == 2 and (disk / "run" / "checkpoint" / "model.npz").is_file()
    assert not [p for p in (disk / "run").rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_full_disk_in_the_cli_prints_the_results_then_one_line(small_disk, tmp_path, capsys, monkeypatch):
    from rnnlab.commands.train import run

    monkeypatch.setenv("COLUMNS", "200")
    disk = small_disk("150k")
    assert run([*RUN, f"hydra.run.dir={disk / 'run'}"]) == 1
    err = capsys.readouterr().err
    assert "Run summary: failed" in err and "model" in err and "test" in err  # the metrics table
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in err


def test_a_read_only_run_folder_is_one_line_before_anything_runs(small_disk):
    from rnnlab.train.recorder import RunFolderError

    disk = small_disk("1m", "ro")
    with pytest.raises(RunFolderError, match=r"run folder .*run: Read-only file system$"):
        api.train(RUN, disk / "run")
