"""`rnnlab train train.workers=N`: the data-parallel step through the real trainer and CLI (the engine's own
tests are in tests/engine/test_parallel.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.train import run
from tests.conftest import TINY, read_summary

FAST = [*TINY, "train.epochs=2"]
TIMING = ["seconds", "samples_per_s", "monitor_seconds"]


def _metrics(d) -> pd.DataFrame:
    return pd.read_csv(d / "metrics.csv").drop(columns=TIMING, errors="ignore")


def test_two_workers_follow_the_one_process_run_in_float64(tmp_path):
    """No dropout: the same steps up to rounding, so the same losses epoch by epoch."""
    common = [*FAST, "train.dtype=float64", "train.epochs=3"]
    assert api.train([*common, "train.workers=1"], tmp_path / "one").status == "completed"
    assert api.train([*common, "train.workers=2"], tmp_path / "two").status == "completed"
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    for col in ("train_loss", "val_loss", "grad_norm"):
        np.testing.assert_allclose(two[col], one[col], rtol=1e-9, err_msg=col)
    s1, s2 = read_summary(tmp_path / "one"), read_summary(tmp_path / "two")
    assert (s1["workers"], s2["workers"]) == (1, 2)
    assert s2["status"] == "completed"
    assert s2["test_loss"] == pytest.approx(s1["test_loss"], rel=1e-9)


@pytest.mark.slow
def test_same_seed_same_metrics_with_dropout(tmp_path):
    args = [*FAST, "reg=dropout", "train.workers=2"]
    assert api.train(args, tmp_path / "a").status == "completed"
    assert api.train(args, tmp_path / "b").status == "completed"
    pd.testing.assert_frame_equal(_metrics(tmp_path / "a"), _metrics(tmp_path / "b"))
    assert read_summary(tmp_path / "a")["status"] == "completed"


def test_mixed_batches_run_in_one_process(tmp_path):
    """reg=mixup pairs rows across the parts: those steps fall back to one process and still train."""
    d = tmp_path / "mix"
    assert api.train([*FAST, "reg=mixup", "train.workers=2"], d).status == "completed"
    m = _metrics(d)
    assert read_summary(d)["status"] == "completed"
    assert np.isfinite(m["train_loss"]).all() and len(m) == 2


def test_refusals_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # Rich wraps the console at this width

    def refusal(args):
        assert run([*args, f"hydra.run.dir={tmp_path / 'r'}"]) == 2
        return capsys.readouterr().err.strip().splitlines()

    assert refusal([*FAST, "arch.batch_norm=true", "train.workers=2"]) == [
        "Error: train.workers > 1: data-parallel steps do not support batch_norm models (each process would "
        "normalise with its own batch statistics); use train.workers=1"]
    assert refusal(["data=reverse_digits", "data.n_train=40", "data.n_val=8", "data.n_test=8", "train.epochs=1",
                    "train.progress=false", "train.workers=2"]) == [
        "Error: train.workers > 1 is not supported for seq2seq models: the data-parallel step runs the sequence "
        "model only (the decoder's step-by-step loop is not split); use train.workers=1"]
    assert refusal([*FAST, "train.workers=0"]) == ["Error: train.workers must be >= 1 (got 0)"]


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_cleanly_and_leaves_no_worker(tmp_path):
    """A terminal's Ctrl-C reaches the trainer and its worker: the worker ignores it, the run
    stops as interrupted (exit 130) with its files, and the worker is gone afterwards."""
    d = tmp_path / "int"
    args = ["train", "train.workers=2", "train.epochs=500", "train.progress=false", "data.length=3000",
            "arch.hidden_size=32", f"hydra.run.dir={d}"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab.cli", *args], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (d / "metrics.csv").exists():
        time.sleep(0.2)
    assert (d / "metrics.csv").exists(), proc.communicate(timeout=5)
    workers = [p for p in Path("/proc").glob("[0-9]*") if _parent(p) == proc.pid and "rnnlab.engine.parallel" in
               (p / "cmdline").read_bytes().decode(errors="replace")]
    assert len(workers) == 1
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    s = read_summary(d)
    assert (s["status"], s["workers"]) == ("interrupted", 2)
    assert len(pd.read_csv(d / "metrics.csv")) >= s["epochs_run"] >= 1
    assert not workers[0].exists()


def _parent(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
