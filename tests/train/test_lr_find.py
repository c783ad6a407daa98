"""rnnlab lr-find: the exponential sweep, the smoothing, the suggestion on a quadratic of known curvature
(through the real fit loop), and the command's files, printed override and one-line errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shlex

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands import lr_find as cmd
from rnnlab.train import loop
from rnnlab.train.lr_find import ExponentialSweep, LRFinder, format_lr, smooth, suggest, sweep_lr
from rnnlab.train.tasks.base import StepOut, Streams
from tests.conftest import TINY


# ---------------------------------------------------------------------------- a quadratic "task"
class Quadratic:
    """f(w) = lam/2 ||w||^2, one batch = one gradient: SGD multiplies w by (1 - lr lam) per step, so the
    loss falls for lr < 2/lam and grows without bound above (the divergence bound)."""

    model_kind, spec = "sequence", None

    def __init__(self, lam: float, steps_per_epoch: int = 7):
        self.lam, self.steps_per_epoch = lam, steps_per_epoch
        self.streams = Streams.from_seed(0)

    def init_model(self, dtype):
        return {"w": np.full(4, 1.0)}, {}

    def session(self):
        return contextlib.nullcontext()

    def begin_epoch(self, epoch):
        return {}

    def epoch_batches(self, epoch):
        return range(self.steps_per_epoch)

    def train_step(self, params, state, batch):
        w = params["w"]
        return StepOut(float(self.lam / 2 * w @ w), {"w": self.lam * w}, state, 1)

    def after_step(self, params):
        pass

    def validate(self, params, state):
        w = params["w"]
        return {"val_loss": float(self.lam / 2 * w @ w)}


class NoRecorder:
    def begin(self, fit): pass
    def epoch_end(self, fit, row, improved): pass
    def epoch_saved(self, fit): pass
    def step_due(self, fit): return False
    def stopped(self, fit): pass


@pytest.fixture(scope="module")
def sgd_config():
    rc = api.compose(["optim=sgd", "train.clip_norm=null", "train.dtype=float64", "monitor=none"])
    return dataclasses.replace(rc, train=dataclasses.replace(rc.train, epochs=1000, progress=False))


def range_test(cfg, lam, **kw):
    finder = LRFinder(**{"start": 1e-5, "end": 1e3, "steps": 100, **kw})
    fit = loop.run(loop.Fit.start(Quadratic(lam), cfg), NoRecorder(), [finder])
    return fit, finder


# ---------------------------------------------------------------------------- the sweep and the smoothing
def test_the_sweep_is_exponential_from_start_to_end():
    start, end, steps = 1e-7, 10.0, 100
    sched = ExponentialSweep(start, end, steps)
    lrs = np.array([sched.lr_at(k, k // 7) for k in range(steps)])
    np.testing.assert_allclose(lrs, [start * (end / start) ** (k / (steps - 1)) for k in range(steps)], rtol=1e-12)
    assert lrs[0] == pytest.approx(start) and lrs[-1] == pytest.approx(end)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (end / start) ** (1 / (steps - 1)))  # one ratio per step
    assert sweep_lr(3, 1e-4, 1.0, 5) == pytest.approx(1e-1)


def test_the_loop_applies_the_sweep_across_epochs(sgd_config):
    fit, finder = range_test(sgd_config, lam=1.0, start=1e-6, end=1e-2, steps=30)  # no divergence below 2
    assert fit.status == "completed" and fit.step == 30 and fit.epoch == 30 // 7  # the partial epoch: no row
    expected = [1e-6 * 1e4 ** (k / 29) for k in range(30)]
    np.testing.assert_allclose(fit.lr_trace, expected, rtol=1e-12)  # what the optimizer got
    np.testing.assert_allclose(finder.lrs, expected, rtol=1e-12)  # what the finder recorded beside each loss
    assert finder.stopped == "swept 30 steps up to lr 0.01"


def test_smoothing_is_the_bias_corrected_moving_average():
    losses = [1.0, 0.5, 2.0, 0.25]
    # by hand: avg_k = 0.98 avg_{k-1} + 0.02 loss_k (avg_-1 = 0), smoothed_k = avg_k / (1 - 0.98^(k+1))
    a0 = 0.02 * 1.0
    a1 = 0.98 * a0 + 0.02 * 0.5
    a2 = 0.98 * a1 + 0.02 * 2.0
    a3 = 0.98 * a2 + 0.02 * 0.25
    hand = [a0 / 0.02, a1 / (1 - 0.9604), a2 / (1 - 0.941192), a3 / (1 - 0.92236816)]
    np.testing.assert_allclose(smooth(losses), hand, rtol=1e-12)
    assert hand[0] == pytest.approx(1.0) and hand[1] == pytest.approx(0.0296 / 0.0396)  # no bias to zero
    finder = LRFinder(steps=10)  # the callback's running version gives the same numbers
    fit = type("F", (), {"schedule": ExponentialSweep(1e-7, 10.0, 10), "history": []})()
    for k, loss in enumerate(losses):
        finder.on_step(fit, type("I", (), {"step": k, "epoch": 0, "loss": loss})())
    np.testing.assert_allclose(finder.smoothed, hand, rtol=1e-12)


# ---------------------------------------------------------------------------- the suggestion
@pytest.mark.parametrize("lam", [0.5, 4.0, 60.0])
def test_suggestion_on_a_quadratic_is_below_the_divergence_bound(sgd_config, lam):
    fit, finder = range_test(sgd_config, lam)
    assert fit.status == "completed", fit.message
    assert "exceeded 4x its minimum" in finder.stopped  # the loss blew up past 2/lam and the sweep stopped
    assert finder.lrs[-1] > 2 / lam
    s = finder.suggestion
    assert s is not None and s < 2 / lam, (s, 2 / lam)
    assert s > 1e-3 / lam  # and where the loss actually falls, not at the flat start
    # the steepest descent of the smoothed loss against log lr, first 10 and last 5 points left out
    i = finder.lrs.index(s)
    slope = np.gradient(finder.smoothed[10:-5], np.log(finder.lrs[10:-5]))
    assert i - 10 == int(np.argmin(slope))


def test_suggest_on_the_analytic_sgd_curve():
    lam, lrs = 10.0, sweep_lr(np.arange(100), 1e-5, 1e3, 100)
    w, losses = 1.0, []
    for lr in lrs:
        losses.append(lam / 2 * w * w)
        w *= 1 - lr * lam
    losses = np.array(losses)
    losses = losses[: np.argmax(losses > 1e6)]  # as if stopped when it blew up
    i = suggest(lrs[: len(losses)], smooth(losses))
    assert lrs[i] < 2 / lam


def test_suggest_ignores_non_finite_points_and_needs_a_slope():
    lrs = sweep_lr(np.arange(40), 1e-4, 1.0, 40)
    curve = 1 / (1 + np.exp(4 * (np.log10(lrs) + 2)))  # falls fastest at lr 1e-2
    assert lrs[suggest(lrs, curve)] == pytest.approx(1e-2, rel=0.3)
    with_nan = curve.copy()
    with_nan[-1] = np.nan
    assert suggest(lrs, with_nan) == suggest(lrs[:-1], curve[:-1])
    assert suggest(lrs[:3], curve[:3]) is None


def test_a_loss_that_becomes_inf_ends_the_sweep_as_completed(sgd_config):
    fit, finder = range_test(sgd_config, lam=4.0, end=1e12, diverge_factor=math.inf)  # only overflow stops it
    assert fit.status == "completed"
    assert finder.stopped.startswith("the loss diverged at lr") and not math.isfinite(finder.losses[-1])
    assert finder.suggestion is not None and finder.suggestion < 2 / 4.0


def test_range_is_checked():
    for kw, msg in (({"start": 0.0}, "--start"), ({"end": 1e-8}, "--end"), ({"steps": 1}, "--steps")):
        with pytest.raises(ValueError, match=msg):
            LRFinder(**kw)
    assert [format_lr(x) for x in (0.014849, 3e-5, 0.5, 1.0)] == ["0.015", "3e-05", "0.5", "1"]


# ---------------------------------------------------------------------------- the command
def test_command_writes_the_files_and_prints_a_pasteable_override(tmp_path, capsys):
    out = tmp_path / "lrf"
    code = cmd.run([*TINY, "arch=gru", "optim.lr=0.5"], steps=30, output=str(out))  # the sweep ignores optim.lr
    printed = capsys.readouterr().out
    assert code == 0, printed
    frame = pd.read_csv(out / "lr_find.csv")
    assert list(frame.columns) == ["step", "lr", "loss", "smoothed_loss"] and 5 < len(frame) <= 30
    np.testing.assert_allclose(frame["lr"], [sweep_lr(k, 1e-7, 10.0, 30) for k in range(len(frame))])
    np.testing.assert_allclose(frame["smoothed_loss"], smooth(frame["loss"]))
    assert (out / "plots" / "lr_find.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["message"].startswith("lr-find: ")
    entry = summary["lr_find"]
    assert entry["steps"] == 30 and entry["steps_run"] == len(frame) and "not those of a trained model" in entry["note"]
    override = printed.strip().splitlines()[-1]
    assert override == entry["override"] and override.startswith("optim.lr=")
    # the user's overrides, not ours, quoted for the shell where they need it
    assert f"rnnlab train {' '.join(map(shlex.quote, TINY))} arch=gru {override}\n" in printed
    assert api.compose([override]).optim["lr"] == pytest.approx(entry["suggested_lr"], rel=0.05)
    assert frame["lr"].min() <= entry["suggested_lr"] <= frame["lr"].max()


def test_typer_command_passes_its_options(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rnnlab.cli import app

    seen = {}
    monkeypatch.setattr(cmd, "run", lambda args, **kw: seen.update(args=args, **kw) or 0)
    result = CliRunner().invoke(app, ["lr-find", "arch=gru", "--start", "1e-5", "--end", "1", "--steps", "50",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen == {"args": ["arch=gru"], "start": 1e-5, "end": 1.0, "steps": 50, "output": str(tmp_path)}


@pytest.mark.parametrize("args, kw, message", [
    (["optim.lr=abc"], {}, "Error: optim.lr: Value 'abc' could not be converted to Float"),
    (["arch=foo"], {}, "Error: unknown arch 'foo'"),
    (["-m", "arch=gru"], {}, "Error: lr-find takes KEY=VALUE overrides only, not -m"),
    (["arch=gru,lstm"], {}, "Error: arch=gru,lstm is a sweep"),
    ([], {"steps": 1}, "Error: --steps must be >= 2 (got 1)"),
    ([], {"start": 1.0, "end": 0.1}, "Error: --end must be a finite learning rate above --start 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, kw, message):
    assert cmd.run(args, output=str(tmp_path / "x"), **kw) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


def test_status_line_on_a_terminal_is_transient(tmp_path):
    import io

    from rich.console import Console

    buf = io.StringIO()
    finder = LRFinder(steps=20)
    status = cmd.StatusLine(finder, Console(file=buf, force_terminal=True, width=120))
    rc = api.compose([*TINY, "train.epochs=20"])
    api.train(rc, tmp_path / "run", callbacks=[finder, status])
    assert "lr-find: step 20/20" in buf.getvalue() and finder.stopped.startswith("swept 20 steps")  # the last refresh
