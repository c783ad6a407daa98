"""`rnnlab train train.workers=N`: the data-parallel step through the real trainer and CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab.commands.train import run
from tests.conftest import TINY, read_summary, run_cli

FAST = [*TINY, "train.epochs=2", "train.plots=false", "monitor=none"]
TIMING = ["seconds", "samples_per_s", "monitor_seconds"]


def _metrics(d) -> pd.DataFrame:
    return pd.read_csv(d / "metrics.csv").drop(columns=TIMING, errors="ignore")


def test_two_workers_follow_the_one_process_run_in_float64(tmp_path):
    """No dropout: the same steps up to rounding, so the same losses epoch by epoch."""
    common = [*FAST, "train.dtype=float64", "train.epochs=3"]
    assert run([*common, "train.workers=1", f"hydra.run.dir={tmp_path / 'one'}"]) == 0
    assert run([*common, "train.workers=2", f"hydra.run.dir={tmp_path / 'two'}"]) == 0
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    for col in ("train_loss", "val_loss", "grad_norm"):
        np.testing.assert_allclose(two[col], one[col], rtol=1e-9, err_msg=col)
    s1, s2 = read_summary(tmp_path / "one"), read_summary(tmp_path / "two")
    assert (s1["workers"], s2["workers"]) == (1, 2)
    assert s2["status"] == "completed"
    assert s2["test_loss"] == pytest.approx(s1["test_loss"], rel=1e-9)


def test_same_seed_same_metrics_with_dropout(tmp_path):
    args = [*FAST, "reg=dropout", "train.workers=2"]
    assert run([*args, f"hydra.run.dir={tmp_path / 'a'}"]) == 0
    assert run([*args, f"hydra.run.dir={tmp_path / 'b'}"]) == 0
    pd.testing.assert_frame_equal(_metrics(tmp_path / "a"), _metrics(tmp_path / "b"))
    assert read_summary(tmp_path / "a")["status"] == "completed"


def test_mixed_batches_run_in_one_process(tmp_path):
    """reg=mixup pairs rows across the parts: those steps fall back to one process and still train."""
    d = tmp_path / "mix"
    assert run([*FAST, "reg=mixup", "train.workers=2", f"hydra.run.dir={d}"]) == 0
    m = _metrics(d)
    assert read_summary(d)["status"] == "completed"
    assert np.isfinite(m["train_loss"]).all() and len(m) == 2


def test_refusals_are_one_line_errors(tmp_path):
    res = run_cli(["train", *FAST, "arch.batch_norm=true", "train.workers=2"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "Error: train.workers > 1 does not support arch.batch_norm (each process would normalise with its own "
        "batch statistics); use train.workers=1"]
    res = run_cli(["train", *FAST, "train.workers=0"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["Error: train.workers must be >= 1 (got 0)"]
