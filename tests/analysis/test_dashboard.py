"""The metrics dashboard in summary.json (a pure function of the metrics rows), Huber, the live progress."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from rich.console import Console

from rnnlab.analysis.dashboard import dashboard, improvement_rate, is_oscillating, is_plateau, peak_memory_mb
from rnnlab.analysis.metrics import regression_metrics
from rnnlab.report.progress import TrainingProgress


def rows_of(val, seconds=None, sps=None, acc=None):
    out = []
    for i, v in enumerate(val):
        r = {"epoch": i + 1, "val_loss": v, "seconds": (seconds or [1.0] * len(val))[i],
             "samples_per_s": (sps or [100.0] * len(val))[i]}
        if acc is not None:
            r["val_accuracy"] = acc[i]
        out.append(r)
    return out


def test_steady_improvement():
    d = dashboard(rows_of([1.0, 0.8, 0.6, 0.5, 0.4], seconds=[1, 2, 3, 2, 2], sps=[10, 20, 30, 40, 50]),
                  peak_memory_mb=123.0)
    assert d["seconds_per_epoch"] == pytest.approx(2.0)
    assert d["samples_per_s"] == pytest.approx(30.0)
    assert d["peak_memory_mb"] == 123.0
    assert d["improvement_rate"] == pytest.approx((0.8 - 0.4) / 0.8 / 3)
    assert d["plateau"] is False and d["oscillation"] is False
    assert d["epochs_to_best"] == 5


def test_plateau():
    val = [1.0, 0.5, 0.4, 0.3999, 0.39995, 0.3998]  # best before the last 3: 0.4; gain 0.05% <= 0.1%
    d = dashboard(rows_of(val))
    assert d["plateau"] is True and d["epochs_to_best"] == 6
    assert d["improvement_rate"] == pytest.approx((0.4 - 0.3998) / 0.4 / 3)
    assert is_plateau([1.0, 0.5, 0.4, 0.39, 0.395, 0.41]) is False  # 2.5% better in the window
    assert is_plateau([1.0, 0.5, 0.6, 0.7, 0.8]) is True  # worse is no improvement
    assert is_plateau([1.0, 1.0, 1.0]) is False  # too few epochs to say
    assert is_plateau([1.0, 0.9, 0.9, 0.9, 0.9]) is True  # best before the window: 0.9, no gain
    assert is_plateau([1.0, 0.9, 0.9, 0.9, 0.9], patience=4) is False  # the window now holds the 10% gain


def test_oscillation():
    assert dashboard(rows_of([1.0, 0.5, 0.7, 0.4, 0.6, 0.3]))["oscillation"] is True  # 4 changes
    assert is_oscillating([1.0, 0.5, 0.7, 0.4, 0.6, 0.6]) is True  # 3 changes (a flat step is no change)
    assert is_oscillating([1.0, 0.5, 0.7, 0.4, 0.3, 0.2]) is False  # 2 changes
    # only the last 6 epochs count
    assert is_oscillating([1.0, 2.0, 1.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5]) is False


def test_short_and_empty_runs():
    empty = dashboard([])
    assert empty == {"seconds_per_epoch": None, "samples_per_s": None, "peak_memory_mb": None,
                     "improvement_rate": None, "plateau": False, "oscillation": False, "epochs_to_best": None}
    one = dashboard(rows_of([0.7]))
    assert one["improvement_rate"] is None and one["epochs_to_best"] == 1
    assert improvement_rate([1.0, 0.5]) == pytest.approx(0.5)
    assert improvement_rate([0.0, 0.0]) == 0.0  # no division by zero
    nan_row = rows_of([1.0, 0.5])
    nan_row.append({"epoch": 3, "val_loss": float("nan"), "seconds": float("inf"), "samples_per_s": None})
    d = dashboard(nan_row)
    assert d["epochs_to_best"] == 2 and d["seconds_per_epoch"] == pytest.approx(1.0)
    assert all(v is None or isinstance(v, bool) or math.isfinite(v) for v in d.values())


def test_epochs_to_best_follows_the_monitor():
    rows = rows_of([1.0, 0.8, 0.9], acc=[0.5, 0.6, 0.7])
    assert dashboard(rows)["epochs_to_best"] == 2
    assert dashboard(rows, monitor="val_accuracy")["epochs_to_best"] == 3


def test_peak_memory_is_megabytes():
    mb = peak_memory_mb()
    assert mb is not None and 10 < mb < 100_000


def test_huber_in_regression_metrics():
    m = regression_metrics(np.array([0.0, 0.0, 1.0]), np.array([0.5, 2.0, 1.0]))
    assert m["huber"] == pytest.approx((0.125 + 1.5 + 0.0) / 3)  # 0.5 e^2 | delta (|e| - delta/2)
    assert regression_metrics(np.zeros(2), np.zeros(2), huber_delta=0.5)["huber"] == 0.0
    assert regression_metrics(np.zeros(1), np.array([3.0]), huber_delta=2.0)["huber"] == pytest.approx(4.0)
    assert math.isfinite(regression_metrics(np.zeros(4), np.ones(4))["mape"]) is False  # all-zero targets: nan


def test_progress_shows_samples_per_second_and_accuracy():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, color_system=None)
    with TrainingProgress(2, 3, console=console, samples_per_step=32) as p:
        for _ in range(3):
            p.batch(0, 0.5, 1e-3)
        p.epoch_end(0, 0.5, 0.4, 1e-3, val_accuracy=0.875, samples_per_s=1234.0)
    out = buf.getvalue()
    assert "samples/s" in out and "acc 0.875" in out and "val 0.4" in out
    quiet = io.StringIO()
    with TrainingProgress(2, 3, enabled=False, console=Console(file=quiet, force_terminal=True)) as p:
        p.batch(0, 0.5, 1e-3)
        p.epoch_end(0, 0.5, 0.4, 1e-3)
    assert quiet.getvalue() == ""


def test_live_signals_show_memory_and_flags():
    from rnnlab.report.progress import live_signals

    zigzag = [{"val_loss": v} for v in (1.0, 0.5, 0.6, 0.4, 0.45, 0.41, 0.43, 0.42, 0.44)]
    text = live_signals(zigzag)
    assert "MB" in text and "oscillating" in text and "plateau" in text
    assert "plateau" not in live_signals([{"val_loss": v} for v in (1.0, 0.8, 0.6, 0.4)])
