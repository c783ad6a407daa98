"""Multiruns that survive: each job decided on its folder (skip / resume / start), `rnnlab train -m
--resume SWEEP_DIR` and `rnnlab cv --resume CV_DIR` (the slow tests kill real sweeps with SIGKILL and
compare the resumed jobs with an uninterrupted sweep), job outcomes read from the job folders (not
from a file in the CLI's temp dir), and the submitit launcher for real."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rnnlab import api
from rnnlab.commands import sweep_resume as R
from rnnlab.commands.train import run
from tests.conftest import TINY, read_summary
from tests.train.test_resume import InterruptAt

TIMING = ["seconds", "samples_per_s", "monitor_seconds"]
JOB = ["arch=rnn", "seed=0"]  # the overrides of the job in the fixture folders


# ---------------------------------------------------------------------------- one job's folder, by hand


def job_folder(root: Path, status: str | None = None, *, checkpoint=False, last=False, bad_input=False,
               overrides=JOB) -> Path:
    """A job folder as a sweep leaves it: Hydra's .hydra/ and log, and what the run got to write."""
    d = root / "0"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (d / "train.log").write_text("")
    if status:
        (d / "summary.json").write_text(json.dumps({"status": status, "bad_input": bad_input}))
        (d / "metrics.csv").write_text("epoch,train_loss\n")
    if checkpoint:
        (d / "checkpoint").mkdir()
        (d / "checkpoint" / "model.json").write_text("{}")
    if last:
        (d / ".checkpoint_last.2").mkdir()
        (d / ".checkpoint_last.2" / "training_state.json").write_text("{}")
        os.symlink(".checkpoint_last.2", d / "checkpoint_last")
    return d


@pytest.mark.parametrize("state, action", [
    (dict(), "start"),  # Hydra made the folder, the job was killed before the run began
    (dict(status="completed", checkpoint=True, last=True), "skip"),
    (dict(status="diverged", checkpoint=True, last=True), "skip"),  # the same config and seed diverge again
    (dict(status="pruned", checkpoint=True, last=True), "skip"),
    (dict(status="interrupted", checkpoint=True, last=True), "resume"),
    (dict(status="running", checkpoint=True, last=True), "resume"),  # SIGKILL: the summary still says running
    (dict(status="failed", checkpoint=True, last=True), "resume"),  # a crash (a dead worker, a bug since fixed)
    (dict(status="running", checkpoint=True), "start"),  # killed before its first epoch completed
    (dict(status="failed", bad_input=True), "start"),  # bad input: tried again (the data may be there now)
    (dict(status="interrupted"), "start"),  # interrupted during start-up: nothing was trained
])
def test_each_job_is_decided_on_its_folder(tmp_path, state, action):
    d = job_folder(tmp_path, **state)
    assert R.decide(d, JOB, resume=True) == action
    assert R.decide(tmp_path / "never_made", JOB, resume=True) == "start"


def test_a_folder_of_another_job_or_a_new_sweep_into_a_run_is_refused(tmp_path):
    d = job_folder(tmp_path / "a", "completed", checkpoint=True, last=True)
    with pytest.raises(R.SweepError, match=r"holds a run of other overrides than this job's \(arch=gru seed=0\)"):
        R.decide(d, ["arch=gru", "seed=0"], resume=True)
    assert R.decide(d, ["arch=rnn", "seed=0"], resume=True) == "skip"
    assert R.decide(d, ["seed=0", "arch=rnn"], resume=True) == "skip"  # compared key by key
    with pytest.raises(R.SweepError, match="already holds a run"):
        R.decide(d, JOB, resume=False)  # a new sweep into an old sweep's folder
    stub = job_folder(tmp_path / "b", "failed", bad_input=True)
    assert R.decide(stub, JOB, resume=False) == "start"  # a bad-input stub is no run


def test_a_folder_in_use_is_refused_and_deciding_changes_nothing(tmp_path):
    d = job_folder(tmp_path / "a", "running", checkpoint=True)
    before = _files(d)
    assert R.prepare(d, JOB, resume=True) == "start"  # the new run's files will replace the attempt's
    assert {k: v for k, v in _files(d).items() if k != ".lock"} == before
    d = job_folder(tmp_path / "b", "interrupted", checkpoint=True, last=True)
    with open(d / ".lock", "a+") as held:  # the run is still going, in another process
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(R.SweepError, match="is in use by another run"):
            R.prepare(d, JOB, resume=True)
    assert R.prepare(d, JOB, resume=True) == "resume"


def _multirun_yaml(sweep: Path, task: list[str], hydra: list[str] = (), command: str = "train") -> None:
    """The parts of a multirun.yaml that a resume reads: Hydra's job name (the command) and the overrides."""
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "job": {"name": command},
        "overrides": {"task": task, "hydra": [f"hydra.sweep.dir={sweep}", "hydra.mode=MULTIRUN",
                                              "hydra/sweeper=rnnlab", *hydra]}}}))


def test_the_sweep_is_the_one_in_the_folder(tmp_path):
    sweep = tmp_path / "s"
    _multirun_yaml(sweep, ["train.plots=false", "arch=rnn,gru"], ["hydra/launcher=joblib"])
    assert R.resume_args(sweep, []) == ["-m", "train.plots=false", "arch=rnn,gru", "hydra/launcher=joblib",
                                        f"hydra.sweep.dir={sweep}"]
    # given again (in any order, Hydra's spelling of a value), or a Hydra option changed: the same sweep
    assert R.resume_args(sweep, ["-m", "arch=rnn,gru", "train.plots=False", "hydra/launcher=basic"])[-2:] == [
        "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"]
    for given, message in [
        ("arch=rnn,lstm", "arch=rnn,lstm given, arch=rnn,gru in its multirun.yaml"),
        ("train.epochs=9", "train.epochs=9 given, no train.epochs in its multirun.yaml"),
    ]:
        with pytest.raises(R.SweepError) as exc:
            R.resume_args(sweep, [given])
        assert str(exc.value) == (f"--resume {sweep}: not the sweep it holds ({message}): "
                                  "give its own overrides, or none")


def test_a_sweep_is_resumed_by_the_command_that_ran_it(tmp_path):
    sweep = tmp_path / "s"
    _multirun_yaml(sweep, ["cv.fold=0,1,2"], command="cv")
    assert R.resume_args(sweep, [], command="cv", drop=("cv.fold",)) == ["-m", f"hydra.sweep.dir={sweep}"]
    with pytest.raises(R.SweepError) as exc:
        R.resume_args(sweep, [])
    assert str(exc.value) == (f"--resume {sweep}: a sweep of rnnlab cv, not of rnnlab train "
                              f"(resume it with rnnlab cv --resume {sweep})")


def test_cli_refuses_another_sweep_in_one_line_and_launches_nothing(tmp_path, capsys):
    sweep = tmp_path / "s"
    _multirun_yaml(sweep, [*TINY, "arch=rnn,gru"])
    assert run(["-m", "arch=rnn,lstm", "--resume", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: --resume {sweep}: not the sweep it holds (arch=rnn,lstm given, arch=rnn,gru in its "
                   "multirun.yaml): give its own overrides, or none"]
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]
    assert run(["-m", *TINY, "arch=rnn,gru", "hydra/sweeper=basic", f"hydra.sweep.dir={tmp_path / 'b'}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "Error: hydra/sweeper: rnnlab's multiruns sweep a grid with their own sweeper (resumable with --resume "
        "SWEEP_DIR); search with rnnlab search"]
    assert not (tmp_path / "b").exists()


def test_a_job_folder_of_another_sweep_is_refused_before_any_job_runs(tmp_path, capsys):
    """The sweeper checks every job's folder before launching: job 1's holds a run of other overrides."""
    sweep = tmp_path / "s"
    _multirun_yaml(sweep, [*TINY, "seed=0,1"])
    job_folder(sweep / "x", "completed", checkpoint=True, last=True, overrides=[*TINY, "seed=7"]).rename(sweep / "1")
    assert run(["--resume", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"Error: --resume {sweep}: job 1: {sweep / '1'} holds a run of other overrides than this job's "
                   f"({' '.join([*TINY, 'seed=1']).replace('=false', '=False')})"]
    assert not (sweep / "0").exists()  # nothing launched


# ---------------------------------------------------------------------------- the CLI, in-process

SHORT = [*TINY, "train.limit_batches=3"]  # 3 steps an epoch


def _table(err: str) -> list[list[str]]:
    """The Multirun table's job rows (job, overrides, status, ...), from a wide console's output."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in err.splitlines() if line.startswith("│")]
    return [r for r in rows if r and r[0].isdigit()]


def _files(d: Path) -> dict[str, tuple[int, int]]:
    """Every file under d with its inode and mtime: what 'left untouched' means."""
    return {str(p.relative_to(d)): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in sorted(d.rglob("*"))}


@pytest.mark.slow  # a multirun and four small trainings: ~3 s of CPU
def test_resume_skips_finished_jobs_resumes_interrupted_ones_and_runs_the_rest(tmp_path, monkeypatch, capsys):
    """A sweep of seed=0,1,2 whose job 0 completed and job 1 was interrupted in epoch 2 (job 2 never ran):
    `rnnlab train --resume SWEEP` keeps job 0 as it was, resumes job 1 from epoch 1 and runs job 2."""
    monkeypatch.setenv("COLUMNS", "250")
    sweep = tmp_path / "s"
    _multirun_yaml(sweep, [*SHORT, "seed=0,1,2"])
    assert api.train([*SHORT, "seed=0"], sweep / "0").status == "completed"
    assert api.train([*SHORT, "seed=1"], sweep / "1", callbacks=[InterruptAt(4)]).epochs_run == 1
    before = _files(sweep / "0")
    assert run(["--resume", str(sweep)]) == 0
    assert _files(sweep / "0") == before  # not launched at all: Hydra did not even rewrite its .hydra/
    assert read_summary(sweep / "1")["resumed_from_epochs"] == [1]
    assert [read_summary(sweep / str(i))["status"] for i in range(3)] == ["completed"] * 3
    assert [(r[0], r[2], r[3]) for r in _table(capsys.readouterr().err)] == [
        ("0", "completed", "kept"), ("1", "completed", "resumed"), ("2", "completed", "run")]


@pytest.mark.slow
def test_job_outcomes_are_read_from_the_job_folders(tmp_path, monkeypatch, capsys):
    """A job on another machine cannot write to a file in the CLI's temp dir; here each job is told another
    RNNLAB_RESULTS_FILE (the old channel): the table and the exit code must still say job 1 diverged."""
    monkeypatch.setenv("COLUMNS", "250")
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.touch()
    sweep = tmp_path / "s"
    args = ["-m", *SHORT, "train.epochs=1", "optim=sgd", "train.clip_norm=null", "arch=rnn", "arch.nonlinearity=relu",
            "optim.lr=0.01,1e6", f"hydra.sweep.dir={sweep}", f"+hydra.job.env_set.RNNLAB_RESULTS_FILE={elsewhere}"]
    assert run(args) == 1
    assert [(r[0], r[2]) for r in _table(capsys.readouterr().err)] == [("0", "completed"), ("1", "diverged")]
    assert read_summary(sweep / "1")["status"] == "diverged"


# ---------------------------------------------------------------------------- killed for real, then resumed

KILL = ["data.length=1000", "data.n_in=12", "arch.hidden_size=16", "train.epochs=12", "train.batch_size=32",
        "train.progress=false", "train.plots=false", "monitor=none", "reg=dropout"]


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """`rnnlab ARGS` as the console script runs it (`python -m rnnlab`: signal handlers from the first line)."""
    return subprocess.Popen([sys.executable, "-m", "rnnlab", *args], cwd=cwd, env={**os.environ, "COLUMNS": "250"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_during_job(args: list[str], job: Path, cwd: Path, seed: int, sig: str = "SIGKILL") -> tuple[int, str]:
    """Start `rnnlab ARGS`, send it `sig` at a random moment after `job` completed its first epoch; returns
    (exit code, stderr)."""
    proc = _cli(args, cwd)
    deadline = time.time() + 240
    while time.time() < deadline and not (job / "checkpoint_last").exists():
        time.sleep(0.01)
    time.sleep(float(np.random.default_rng(seed).uniform(0.0, 0.4)))
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    status = read_summary(job)["status"]
    assert status == ("running" if sig == "SIGKILL" else "interrupted"), "the job finished first: make it longer"
    return proc.returncode, err


def _same_metrics(a: Path, b: Path) -> None:
    ma, mb = (pd.read_csv(d / "metrics.csv").drop(columns=TIMING, errors="ignore") for d in (a, b))
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)


def _check_resumed(sweep: Path, twin: Path, before: dict, jobs: int = 3) -> None:
    assert _files(sweep / "0") == before  # job 0 not rerun, not even touched
    assert len(read_summary(sweep / "1")["resumed_from_epochs"]) == 1
    for i in range(jobs):
        assert read_summary(sweep / str(i))["status"] == "completed"
        _same_metrics(twin / str(i), sweep / str(i))
        assert not list((sweep / str(i)).rglob("*.tmp")) and len(list((sweep / str(i)).glob(".checkpoint_last.*"))) == 1
    assert "resumed_from_epochs" not in read_summary(sweep / "2")


@pytest.fixture(scope="module")
def twin_sweep(tmp_path_factory) -> Path:
    """The uninterrupted sweep the killed ones are compared with."""
    root = tmp_path_factory.mktemp("twin")
    assert _cli(["train", "-m", *KILL, "seed=0,1,2", f"hydra.sweep.dir={root / 'twin'}"], root).wait(timeout=300) == 0
    return root / "twin"


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_a_multirun_stopped_during_its_second_job_resumes_to_the_uninterrupted_sweep(sig, twin_sweep, tmp_path):
    """SIGKILL: the sweep dies in job 1. Ctrl-C: job 1 stops as interrupted and the sweep with it (exit 130,
    the table lists job 2 as missing). Either way job 2 never starts, and --resume keeps job 0, resumes
    job 1 and runs job 2."""
    sweep = tmp_path / "sweep"
    code, err = _kill_during_job(["train", "-m", *KILL, "seed=0,1,2", f"hydra.sweep.dir={sweep}"], sweep / "1",
                                 tmp_path, seed=1, sig=sig)
    assert code == (130 if sig == "SIGINT" else -9), err
    assert not (sweep / "2").exists()  # a signal stops the sweep, not only its job
    if sig == "SIGINT":
        assert [(r[0], r[2]) for r in _table(err)] == [("0", "completed"), ("1", "interrupted"), ("2", "missing")]
    before = _files(sweep / "0")
    resumed = _cli(["train", "-m", "seed=0,1,2", "--resume", str(sweep)], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "1 finished jobs kept, 1 resumed, 1 started" in out  # Hydra's log, on stdout
    _check_resumed(sweep, twin_sweep, before)


@pytest.mark.slow
def test_a_cv_killed_during_its_second_fold_resumes_to_the_uninterrupted_cv(tmp_path):
    cv = ["cv", *KILL, "cv.k=3", "train.plots=true"]
    twin = _cli([*cv, f"hydra.sweep.dir={tmp_path / 'twin'}"], tmp_path)
    assert twin.wait(timeout=300) == 0
    sweep = tmp_path / "cv"
    _kill_during_job([*cv, f"hydra.sweep.dir={sweep}"], sweep / "1", tmp_path, seed=2)
    assert not (sweep / "cv_results.csv").exists()
    before = _files(sweep / "0")
    resumed = _cli(["cv", "--resume", str(sweep)], tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _check_resumed(sweep, tmp_path / "twin", before)
    a, b = (pd.read_csv(d / "cv_results.csv") for d in (tmp_path / "twin", sweep))
    metrics = [c for c in a.columns if c.startswith(("test_", "val_"))]
    assert metrics and a["fold"].astype(str).tolist() == ["0", "1", "2", "mean", "std"]
    pd.testing.assert_frame_equal(a[["fold", "status", *metrics]], b[["fold", "status", *metrics]], check_exact=True)
    assert {p.name for p in sweep.glob("*.png")} == {p.name for p in (tmp_path / "twin").glob("*.png")} != set()
    assert json.loads((sweep / "cv_summary.json").read_text())["n_completed"] == 3


# ---------------------------------------------------------------------------- submitit


@pytest.mark.slow
def test_submitit_local_runs_each_job_in_its_own_process_and_the_cli_reads_their_folders(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["train", "-m", *TINY, "train.epochs=1", "arch=rnn,gru", "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=5", f"hydra.sweep.dir={sweep}"]
    proc = _cli(args, tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summaries = [read_summary(sweep / str(i)) for i in range(2)]
    cells = [json.loads((sweep / str(i) / "checkpoint" / "model.json").read_text())["spec"]["cell"] for i in range(2)]
    assert cells == ["rnn", "gru"] and [s["status"] for s in summaries] == ["completed", "completed"]
    assert len({s["pid"] for s in summaries} | {proc.pid}) == 3  # each job in a process of its own
    assert [s["blas_threads"] for s in summaries] == ["1", "1"]  # cpus_per_task unset: one BLAS thread
    assert list((sweep / ".submitit").iterdir())  # submitit's own records, in the sweep folder
    assert [(r[0], r[2]) for r in _table(err)] == [("0", "completed"), ("1", "completed")]
    # A resumed sweep on submitit: job 1's summary lost (as if killed while writing it), so it resumes from
    # its last epoch, in a submitit process, which learns it from its own config and folder.
    (sweep / "1" / "summary.json").unlink()
    before = _files(sweep / "0")
    proc = _cli(["train", "--resume", str(sweep)], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [(r[0], r[2], r[3]) for r in _table(err)] == [("0", "completed", "kept"), ("1", "completed", "resumed")]
    assert _files(sweep / "0") == before
    again = read_summary(sweep / "1")
    assert again["resumed_from_epochs"] == [1] and again["test_metrics"] == summaries[1]["test_metrics"]
    assert again["pid"] not in (proc.pid, summaries[1]["pid"])


@pytest.mark.slow
def test_signals_at_random_moments_of_a_sweep_then_resume_give_the_uninterrupted_sweep(twin_sweep, tmp_path):
    """SIGKILL, SIGINT and SIGTERM at random moments over the whole life of a 3-job multirun (before it
    began, in any job, between jobs, after it ended), each followed by `rnnlab train --resume`: every
    job ends completed and equal to the uninterrupted sweep's, jobs finished before the signal are not
    touched, and a sweep stopped before it wrote multirun.yaml is one line (nothing to resume)."""
    rng = np.random.default_rng(14)
    t0 = time.monotonic()
    assert _cli(["train", "-m", *KILL, "seed=0,1,2", f"hydra.sweep.dir={tmp_path / 'timing'}"], tmp_path).wait() == 0
    life = time.monotonic() - t0
    hits = []
    for k, sig in enumerate(["SIGKILL", "SIGINT", "SIGTERM"] * 2):
        sweep = tmp_path / f"s{k}"
        proc = _cli(["train", "-m", *KILL, "seed=0,1,2", f"hydra.sweep.dir={sweep}"], tmp_path)
        time.sleep(float(rng.uniform(0.3, 1.1)) * life)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, -9, 130, 143), err
        finished = {j.name: _files(j) for j in sweep.glob("[0-9]")
                    if (j / "summary.json").exists() and read_summary(j)["status"] == "completed"}
        resumed = _cli(["train", "--resume", str(sweep)], tmp_path)
        _, err = resumed.communicate(timeout=300)
        if not (sweep / "multirun.yaml").exists():  # stopped before the sweep began
            assert resumed.returncode == 2 and len(err.strip().splitlines()) == 1, err
            hits.append((sig, "before the sweep"))
            continue
        assert resumed.returncode == 0, err
        for j in ("0", "1", "2"):
            assert read_summary(sweep / j)["status"] == "completed"
            _same_metrics(twin_sweep / j, sweep / j)
            assert not list((sweep / j).rglob("*.tmp"))
            if j in finished:
                assert _files(sweep / j) == finished[j]
        hits.append((sig, f"{len(finished)} jobs finished"))
    print("sweep signal hits:", hits)
    assert len({h[1] for h in hits}) >= 2  # the moments spread over the sweep's life
