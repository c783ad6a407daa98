"""Exact resume: a run stopped at any step and resumed with `api.train(..., resume=True)` ends exactly
as the uninterrupted run of the same seed: the same metrics.csv (timing columns aside), the same
best and last weights and the same test metrics; in float64 and float32, with dropout, mixup,
gradient noise, augmentation, a plateau schedule and early stopping's state, and for seq2seq's
scheduled sampling. (Kills from outside the process and sweeps: the slow fault-injection tests.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.config.validate import ConfigError
from rnnlab.train.callbacks import Callback
from tests.conftest import TINY

TIMING = ["seconds", "samples_per_s", "monitor_seconds"]
TINY = [*TINY, "train.limit_batches=3"]  # 3 steps an epoch: step 7 is in epoch 3


class InterruptAt(Callback):
    """Ctrl-C after the optimizer step `step` (0-based over the run)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, fit, info):
        if info.step == self.step:
            raise KeyboardInterrupt


def _weights(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same_run(a, b):
    ma, mb = (pd.read_csv(d / "metrics.csv").drop(columns=TIMING, errors="ignore") for d in (a, b))
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    for name in ("checkpoint", "checkpoint_last"):
        wa, wb = _weights(a / name / "model.npz"), _weights(b / name / "model.npz")
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{name}/{k}")


CASES = {
    "float64-dropout-noise-plateau": [*TINY, "train.epochs=5", "train.dtype=float64", "reg=dropout",
                                      "reg.grad_noise_eta=0.05", "sched=plateau", "sched.patience=1",
                                      "train.early_stopping_patience=3", "monitor=default"],
    "float32-mixup-augment": [*TINY, "train.epochs=4", "reg.mixup_alpha=0.4", "data.augment=[jitter]",
                              "optim=nadam"],
    # stateful truncated BPTT: the carried state is resumed with the mid-epoch checkpoint (13 chunks an epoch)
    "stateful-echo-float64-dropout-every-5-steps": [
        "data=echo", "data.n_train=40", "data.n_val=8", "data.n_test=8", "arch=gru", "arch.pooling=none",
        "arch.hidden_size=8", "arch.num_layers=2", "arch.dropout=0.2", "train.stateful=true", "train.bptt=4",
        "train.batch_size=8", "train.epochs=3", "train.dtype=float64", "train.checkpoint_every_steps=5",
        "train.progress=false", "train.plots=false", "monitor=none"],
    "seq2seq-scheduled-sampling": ["data=reverse_digits", "data.n_train=96", "data.n_val=16", "data.n_test=16",
                                   "arch=gru", "arch.hidden_size=8", "arch.attention=luong", "train.epochs=4",
                                   "train.batch_size=16", "train.teacher_forcing=1.0",
                                   "train.teacher_forcing_end=0.3", "train.progress=false", "train.plots=false",
                                   "monitor=none"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_resumed_run_equals_the_uninterrupted_one(case, tmp_path):
    overrides = CASES[case]
    whole = api.train(overrides, tmp_path / "whole")
    steps = len(pd.read_csv(tmp_path / "whole" / "metrics.csv")) and whole.epochs_run
    assert whole.status == "completed" and steps >= 3
    d = tmp_path / "resumed"
    first = api.train(overrides, d, callbacks=[InterruptAt(7 if "data=echo" not in overrides else 21)])  # a later epoch
    assert first.status == "interrupted" and 1 <= first.epochs_run < whole.epochs_run
    again = api.train(overrides, d, resume=True)
    assert again.status == "completed" and again.epochs_run == whole.epochs_run
    assert again["resumed_from_epochs"] == [first.epochs_run]
    _same_run(tmp_path / "whole", d)
    assert again.test_metrics == whole.test_metrics and again.best_epoch == whole.best_epoch


@pytest.mark.slow  # suite time: the scenario is in the slow suite
def test_resuming_twice_lists_both_segments_and_still_matches(tmp_path):
    overrides = [*TINY, "train.epochs=5", "reg=dropout"]
    api.train(overrides, tmp_path / "whole")
    d = tmp_path / "r"
    api.train(overrides, d, callbacks=[InterruptAt(3)])
    api.train(overrides, d, resume=True, callbacks=[InterruptAt(10)])
    s = api.train(overrides, d, resume=True)
    assert s.status == "completed" and s["resumed_from_epochs"][0] == 1 and len(s["resumed_from_epochs"]) == 2
    _same_run(tmp_path / "whole", d)


def test_a_torn_metrics_line_and_rows_past_the_checkpoint_are_dropped(tmp_path):
    overrides = [*TINY, "train.epochs=4"]
    api.train(overrides, tmp_path / "whole")
    d = tmp_path / "r"
    api.train(overrides, d, callbacks=[InterruptAt(5)])  # stops in epoch 2 (3 batches an epoch)
    with open(d / "metrics.csv", "a") as fh:  # as if killed while writing a later epoch's line
        fh.write("9,0.001,0.5")
    assert api.train(overrides, d, resume=True).status == "completed"
    _same_run(tmp_path / "whole", d)


def test_resume_refuses_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot resume .*: no training state to resume from"):
        api.train(TINY, tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing" / "summary.json").exists()  # nothing written
    d = tmp_path / "r"
    api.train([*TINY, "train.epochs=2"], d)
    before = (d / "summary.json").read_text()
    with pytest.raises(ConfigError, match="a different model than this config builds") as exc:
        api.train([*TINY, "arch.hidden_size=9"], d, resume=True)
    assert "\n" not in str(exc.value)
    assert (d / "summary.json").read_text() == before  # the run stays resumable with its own config
    assert api.train([*TINY, "train.epochs=3"], d, resume=True).epochs_run == 3


# ---------------------------------------------------------------- rnnlab train --resume


def test_cli_resume_continues_a_finished_run_to_more_epochs(tmp_path, capsys, monkeypatch):
    """Two epochs, then `--resume DIR train.epochs=4`, equals four epochs in one go (constant lr)."""
    from rnnlab.commands.train import run

    monkeypatch.setenv("COLUMNS", "200")
    base = [*TINY, "train.epochs=4"]
    assert run([*base, f"hydra.run.dir={tmp_path / 'whole'}"]) == 0
    d = tmp_path / "r"
    assert run([*TINY, "train.epochs=2", f"hydra.run.dir={d}"]) == 0
    assert run(["--resume", str(d), "train.epochs=4"]) == 0
    _same_run(tmp_path / "whole", d)
    import yaml

    assert "train.epochs=4" in yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
    capsys.readouterr()
    assert run(["--resume", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == (f"Error: --resume {tmp_path / 'nowhere'}: not a run folder "
                                               "(no .hydra/overrides.yaml)")
    assert run(["-m", f"--resume={d}", "seed=1,2"]) == 2
    assert "--resume continues one run" in capsys.readouterr().err


# ---------------------------------------------------------------- killed from outside, then resumed


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_run_killed_at_random_moments_resumes_to_its_uninterrupted_twin(sig, tmp_path):
    """A real process, signalled at a random moment after its first epochs (mid-epoch or while writing
    its files), then `rnnlab train --resume`: the same metrics.csv and weights as an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    args = ["data.length=2000", "data.n_in=12", "arch.hidden_size=16", "train.epochs=8", "train.batch_size=32",
            "train.progress=false", "train.plots=false", "monitor=none", "reg=dropout"]
    env = {**__import__("os").environ, "COLUMNS": "200"}

    def cli(*a):
        return subprocess.Popen([sys.executable, "-m", "rnnlab.cli", "train", *a], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    assert cli(*args, f"hydra.run.dir={tmp_path / 'whole'}").wait(timeout=300) == 0
    rng = np.random.default_rng(["SIGKILL", "SIGTERM", "SIGINT"].index(sig))
    for k in range(2):
        d = tmp_path / f"run{k}"
        proc = cli(*args, f"hydra.run.dir={d}")
        deadline = time.time() + 120
        while time.time() < deadline and not (d / "checkpoint_last").exists():
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.6)))  # somewhere in the next epochs
        proc.send_signal(getattr(signal, sig))
        code = proc.wait(timeout=120)
        assert code != 0 or (d / "summary.json").exists()
        resumed = cli("--resume", str(d))
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
        _same_run(tmp_path / "whole", d)
        assert not list(d.glob("**/*.tmp")) and len(list(d.glob(".checkpoint_last.*"))) == 1


# ---------------------------------------------------------------- one run per folder


def test_a_folder_that_holds_a_run_is_refused_without_resume_and_left_as_it_is(tmp_path, capsys, monkeypatch):
    from rnnlab.commands.train import run
    from rnnlab.train.recorder import RunFolderError

    monkeypatch.setenv("COLUMNS", "300")
    d = tmp_path / "r"
    assert run([*TINY, "train.epochs=1", f"hydra.run.dir={d}"]) == 0
    before = (d / "summary.json").read_text()
    capsys.readouterr()
    assert run([*TINY, "train.epochs=2", f"hydra.run.dir={d}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"Error: run folder {d} already holds a run: continue it with rnnlab train --resume {d}, or choose "
        "another folder"]
    assert (d / "summary.json").read_text() == before  # untouched
    with pytest.raises(RunFolderError):
        api.train([*TINY, "train.epochs=2"], d)


def test_a_folder_in_use_is_refused_and_a_bad_input_stub_is_no_run(tmp_path):
    import fcntl

    from rnnlab.data.base import DataError
    from rnnlab.train.recorder import RunFolderError

    d = tmp_path / "busy"
    d.mkdir()
    with open(d / ".lock", "a+") as held:  # another process's run holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunFolderError, match="is in use by another run"):
            api.train(TINY, d)
    assert not (d / "summary.json").exists()
    s = tmp_path / "stub"
    with pytest.raises(DataError):
        api.train(["data=csv", "data.path=/nonexistent.csv", "train.progress=false"], s)
    assert api.train([*TINY, "train.epochs=1"], s).status == "completed"  # the failed stub's folder is reusable
