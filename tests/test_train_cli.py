"""`rnnlab train` end to end through Typer + real Hydra, on a tiny config in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from rnnlab import api
from rnnlab.commands.train import run
from rnnlab.config.validate import group_options
from tests.conftest import TINY, read_summary, run_cli

RUN_FILES = [
    "metrics.csv", "summary.json", "predictions.csv", "checkpoint/model.npz", "checkpoint/model.json",
    "plots/loss.png", "plots/predictions.png", "plots/lr.png",
    ".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml",
]


def test_single_run_writes_the_run_folder(tmp_path, tiny_overrides):
    assert run([*tiny_overrides, "train.plots=true"]) == 0  # the plots are part of the run folder
    run_dir = tmp_path / "run"
    for f in RUN_FILES:
        assert (run_dir / f).is_file(), f
    m = pd.read_csv(run_dir / "metrics.csv")
    assert list(m.columns)[:7] == ["epoch", "lr", "train_loss", "val_loss", "grad_norm", "seconds", "samples_per_s"]
    assert m["epoch"].tolist() == [1, 2, 3]
    assert np.isfinite(m[["train_loss", "val_loss"]].to_numpy()).all()
    s = read_summary(run_dir)
    assert s["status"] == "completed"
    assert s["epochs_run"] == 3 and 1 <= s["best_epoch"] <= 3
    assert set(s["test_metrics"]) >= {"mse", "rmse", "mae", "r2"}
    assert set(s["baselines"]) == {"naive", "drift", "mean"}  # TINY leaves ETS out
    assert s["n_params"] == 4 * 8 * (1 + 8 + 2) + 9
    with np.load(run_dir / "checkpoint/model.npz", allow_pickle=False) as z:
        assert z["rnn.weight_hh_l0"].shape == (32, 8)
        assert z["rnn.weight_hh_l0"].dtype == np.float32
    info = json.loads((run_dir / "checkpoint/model.json").read_text())
    assert info["spec"]["cell"] == "lstm" and info["epoch"] == s["best_epoch"]
    assert set(info["data"]["scaler"]) == {"mean", "std"}
    p = pd.read_csv(run_dir / "predictions.csv")
    assert list(p.columns) == ["sample", "horizon", "step", "target", "prediction", "naive", "drift", "mean"]
    assert len(p) == s["n_test"]
    cfg = yaml.safe_load((run_dir / ".hydra/config.yaml").read_text())
    assert cfg["arch"]["hidden_size"] == 8


def test_same_seed_same_metrics(tmp_path):
    dirs = []
    for i in range(2):
        d = tmp_path / f"r{i}"
        assert api.train([*TINY, "arch=bigru", "reg=dropout"], d).status == "completed"
        dirs.append(d)
    a, b = (pd.read_csv(d / "metrics.csv").drop(columns=["seconds", "samples_per_s", "monitor_seconds"]) for d in dirs)
    pd.testing.assert_frame_equal(a, b)
    c = tmp_path / "r2"
    assert api.train([*TINY, "arch=bigru", "reg=dropout", "seed=1"], c).status == "completed"
    assert not pd.read_csv(c / "metrics.csv")["train_loss"].equals(a["train_loss"])


def test_divergence_stops_cleanly(tmp_path):
    d = tmp_path / "div"
    args = [*TINY, "optim=sgd", "optim.lr=1e6", "train.clip_norm=null", "arch=rnn", "arch.nonlinearity=relu",
            "train.epochs=5", f"hydra.run.dir={d}"]
    assert run(args) == 1
    s = read_summary(d)
    assert s["status"] == "diverged"
    assert "loss became" in s["message"]
    # the checkpoint on disk is the last good one and loads without pickle
    with np.load(d / "checkpoint/model.npz", allow_pickle=False) as z:
        assert all(np.isfinite(z[k]).all() for k in z.files)
    assert (d / "summary.json").is_file() and (d / "checkpoint/model.json").is_file()


def test_sigterm_during_a_run_stops_it_as_interrupted_with_its_files(tmp_path):
    """In-process: SIGTERM (sent by the run's own epoch hook after epoch 2) becomes a clean stop."""
    assert threading.current_thread() is threading.main_thread()  # the trainer's handler needs it

    def hook(epoch, row):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    d = tmp_path / "int"
    s = api.train(api.compose([*TINY, "train.epochs=50"]), d, epoch_hook=hook)
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored
    assert s.status == "interrupted" and s.message == "interrupted after 2 completed epochs"
    assert read_summary(d)["status"] == "interrupted" and read_summary(d)["epochs_run"] == 2
    assert len(pd.read_csv(d / "metrics.csv")) == 2
    with np.load(d / "checkpoint/model.npz", allow_pickle=False) as z:
        assert all(np.isfinite(z[k]).all() for k in z.files)


@pytest.mark.slow
def test_sigterm_marks_interrupted_and_keeps_files(tmp_path):
    d = tmp_path / "int"
    args = ["train", "train.epochs=500", "train.progress=false", "data.length=3000", "arch.hidden_size=32",
            f"hydra.run.dir={d}"]
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab.cli", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (d / "metrics.csv").exists():
        time.sleep(0.2)
    assert (d / "metrics.csv").exists(), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as shells and Slurm expect
    s = read_summary(d)
    assert s["status"] == "interrupted"
    assert s["epochs_run"] >= 1
    assert len(pd.read_csv(d / "metrics.csv")) >= s["epochs_run"]
    assert (d / "checkpoint/model.npz").is_file()


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=abc", "optim.lr: Value 'abc' could not be converted to Float"),
        ("arch=foo", f"unknown arch 'foo' (choose from: {', '.join(group_options('arch'))})"),
        ("arch.foo=1", "unknown key 'arch.foo'"),
        ("optim.lr=-1", "optim.lr must be > 0"),
        ("arch.hidden_size=0", "arch.hidden_size must be >= 1 (got 0)"),
        ("train.dtype=float16", "train.dtype must be one of float32, float64 (got 'float16')"),
        ("data.n_in=1990", "data.length 2000 is too short for n_in=1990, n_out=1"),
    ],
)
def test_bad_config_gives_one_line_and_exit_2(tmp_path, override, message, capsys):
    code = run([override, f"hydra.run.dir={tmp_path / 'x'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()  # nothing launched


def test_bad_sweep_value_is_caught_before_launch(tmp_path, capsys):
    code = run(["-m", "arch=lstm,nope", f"hydra.sweep.dir={tmp_path / 'sw'}"])
    assert code == 2
    assert "unknown arch 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()


@pytest.mark.slow
def test_multirun_runs_every_job(tmp_path):
    sweep = tmp_path / "sweep"
    assert run(["-m", *TINY, "train.epochs=1", "arch=rnn,lstm,gru", f"hydra.sweep.dir={sweep}"]) == 0
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2"]
    cells = [json.loads((p / "checkpoint/model.json").read_text())["spec"]["cell"] for p in jobs]
    assert cells == ["rnn", "lstm", "gru"]
    assert all(read_summary(p)["status"] == "completed" for p in jobs)
    assert (sweep / "multirun.yaml").is_file()


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "train.epochs=1", "arch=rnn,gru", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    res = run_cli(["train", *args], cwd=tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    summaries = [read_summary(sweep / j) for j in ("0", "1")]
    assert all(s["status"] == "completed" for s in summaries)
    # each worker ran with one BLAS thread and in its own process
    assert [s["blas_threads"] for s in summaries] == ["1", "1"]
    assert summaries[0]["pid"] != summaries[1]["pid"]


def test_cli_subprocess_error_is_one_line(tmp_path):
    res = run_cli(["train", "optim.lr=abc"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["Error: optim.lr: Value 'abc' could not be converted to Float"]
    assert not (tmp_path / "outputs").exists()


def test_help_is_fast(tmp_path):
    t0 = time.perf_counter()
    res = run_cli(["--help"], cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0 and "train" in res.stdout
    assert elapsed < 1.5, elapsed  # includes interpreter start; the target is well under a second


def test_train_help_lists_every_option_of_every_group():
    from typer.testing import CliRunner

    from rnnlab.cli import GROUPS, app

    res = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "2000"})
    assert res.exit_code == 0, res.output
    for group in GROUPS:
        line = next(ln for ln in res.output.splitlines() if ln.strip().startswith(f"{group}:"))
        listed = [o.strip() for o in line.split(":", 1)[1].split(",")]
        assert listed == group_options(group), group
    assert "rnnlab train -m" in res.output


def test_cfg_job_prints_config_without_running(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["--cfg", "job", "arch=gru"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["arch"]["cell"] == "gru"
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # a whole CLI run for one default folder; the fast suite runs the CLI elsewhere
def test_default_run_folder_is_under_outputs(tmp_path):
    res = run_cli(["train", *TINY, "name=smoke"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = list((tmp_path / "outputs" / "train").glob("*_smoke"))
    assert len(runs) == 1 and (runs[0] / "summary.json").is_file()
    assert "Run summary" in res.stderr


@pytest.mark.slow  # suite time: a subprocess run (data=csv trains in-process in the option matrix)
def test_csv_forecasting_run_writes_the_forecast(tmp_path):
    import pandas as pd

    n = 260
    dates = pd.bdate_range("2021-01-04", periods=n)
    close = 50 + np.cumsum(np.random.default_rng(0).standard_normal(n))
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": close}).to_csv(tmp_path / "p.csv", index=False)
    d = tmp_path / "run"
    args = ["data=csv", f"data.path={tmp_path / 'p.csv'}", "data.n_in=10", "data.n_out=5", "data.transform=diff",
            "arch.hidden_size=8", "train.epochs=2", "train.progress=false", "monitor=none", f"hydra.run.dir={d}"]
    assert run(args) == 0  # plots stay on: the forecast plot is part of the run
    s = read_summary(d)
    assert set(s["baselines"]) == {"naive", "seasonal_naive", "drift", "mean", "ets"}
    assert s["baselines"]["ets"]["model"].startswith("ETS(")  # the model the AICc search chose
    # MASE on the scale of the (lag-5) seasonal naive before the first test origin, for model and baselines
    m = s["test_metrics"]
    assert s["mase_scale"] > 0 and m["mase"] == pytest.approx(m["mae"] / s["mase_scale"])
    assert all("mase" in b["test_metrics"] and "smape" in b["val_metrics"] for b in s["baselines"].values())
    assert len(s["forecast"]) == 5
    f = pd.read_csv(d / "forecast.csv")
    assert f["horizon"].tolist() == [1, 2, 3, 4, 5]
    assert f["date"].iloc[0] > dates[-1].strftime("%Y-%m-%d")
    assert (d / "plots" / "forecast.png").is_file() and (d / "plots" / "error_by_horizon.png").is_file()


def test_missing_csv_is_one_line_exit_2(tmp_path, capsys):
    code = run(["data=csv", f"data.path={tmp_path / 'nope.csv'}", f"hydra.run.dir={tmp_path / 'r'}"])
    assert code == 2
    assert f"data file not found: {tmp_path / 'nope.csv'}" in capsys.readouterr().err


def test_l2_penalty_is_reported_as_its_own_column(tmp_path):
    d = tmp_path / "l2"
    assert api.train([*TINY, "reg=l2", "reg.l2=0.01"], d).status == "completed"
    m = pd.read_csv(d / "metrics.csv")
    assert "l2_loss" in m.columns
    params = dict(np.load(d / "checkpoint/model.npz", allow_pickle=False))
    # the logged penalty matches 0.5 * l2 * sum ||W||^2 of the weights (biases excluded)
    expected = 0.5 * 0.01 * sum(float(np.sum(v.astype(np.float64) ** 2)) for k, v in params.items() if ".weight" in k)
    best = read_summary(d)["best_epoch"]
    assert m.loc[best - 1, "l2_loss"] == pytest.approx(expected, rel=0.05)
