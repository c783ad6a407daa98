"""`rnnlab search` under faults: interrupted trials resume their run folder, and bad places and names are one line.

Real Optuna studies in real sqlite storage, real signals (`signal.raise_signal`), real training runs.
The process-level scenarios (a SIGKILLed worker found by its heartbeat; PostgreSQL) are slow tests:
this file's and tests/search/test_postgres.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from rich.console import Console

from rnnlab import api
from rnnlab.commands.search import SearchOptions, plan, run
from rnnlab.search import objective
from rnnlab.search.study import work
from rnnlab.train.tasks.sequence import SequenceTask
from tests.conftest import TINY, read_summary

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # the retry callback's

ONE = "optim.lr=choice:0.01"  # one point: every trial trains the same config, so runs compare exactly
BASE = [*TINY, "train.epochs=4"]
TIMING = ["seconds", "samples_per_s", "monitor_seconds"]


def search(out: Path, *params: str, args: list[str] | tuple = (), **opts) -> tuple[int, str]:
    console = Console(file=io.StringIO(), width=250)
    code = run(SearchOptions(params=list(params or [ONE]), args=[*BASE, *args], output=str(out), pruner="none",
                             **opts), console)
    return code, console.file.getvalue()


def trials(out: Path) -> list:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}").get_trials()


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=TIMING, errors="ignore")


def uninterrupted(tmp_path: Path) -> Path:
    """The same trial's run, trained in one go (no study)."""
    ref = tmp_path / "ref"
    api.train([*BASE, "train.progress=false", "train.plots=false", ONE.replace("choice:", "")], ref)
    return ref


def signal_at(monkeypatch, cls, name: str, when, after: bool = False) -> list:
    """Patch cls.name to send this process a SIGINT once, before (or after) the call for which when(args) is true."""
    sent, original = [], getattr(cls, name)

    def patched(self, *args):
        now = not sent and when(args)
        if now and not after:
            sent.append(1)
            signal.raise_signal(signal.SIGINT)
        result = original(self, *args)
        if now and after:
            sent.append(1)
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(cls, name, patched)
    return sent


# ----------------------------------------------------------------------------- an interrupted trial resumes


def trials_only(out: Path, *args: str, notes: list | None = None) -> int:
    """The trials of `rnnlab search` without its outputs (the fast test; the slow ones check those): exit code."""
    p = plan(SearchOptions(params=[ONE], args=[*BASE, *args], output=str(out), pruner="none", n_trials=1))
    if notes is not None:
        notes.extend(p.notes)
    return work(p.spec, p.setup, p.n_trials, None)


@pytest.mark.slow  # a fault scenario: a study, a signal and a resume
def test_interrupted_trial_resumes_its_run_folder_exactly(tmp_path, monkeypatch):
    """Ctrl-C at epoch 2 of 4: the trial is FAIL with status=interrupted and its reason, its retry waits;
    the next search resumes trial_0000 from its checkpoint, and the trial ends as the uninterrupted run."""
    out = tmp_path / "s"
    sent = signal_at(monkeypatch, objective.PruneHook, "__call__", lambda a: a[0] == 2)
    notes = []
    assert trials_only(out, "optim.lr=0.5", notes=notes) == 130 and sent  # a good override the space replaces
    assert notes == ["optim.lr=0.5 is replaced by the search space's optim.lr in every trial"]
    first, retry = trials(out)
    assert first.state.name == "FAIL" and first.user_attrs["status"] == "interrupted"
    assert first.user_attrs["reason"] == "interrupted after 2 completed epochs"
    assert retry.state.name == "WAITING" and retry.params == first.params
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0
    assert read_summary(out / "trial_0000")["status"] == "interrupted"
    monkeypatch.undo()

    assert trials_only(out) == 0
    first, retry = trials(out)
    assert retry.state.name == "COMPLETE" and retry.user_attrs["run_dir"] == str(out / "trial_0000")
    assert sorted(p.name for p in out.glob("trial_*")) == ["trial_0000"]  # resumed, not started over
    resumed, ref = read_summary(out / "trial_0000"), read_summary(uninterrupted(tmp_path))
    # The signal came in epoch 2's hooks, before its checkpoint_last: resumed from epoch 1.
    assert resumed["status"] == "completed" and resumed["resumed_from_epochs"] == [1]
    assert resumed["search"] == {"output": str(out), "trial": 1, "retry_of": 0}
    assert retry.value == resumed["best_val_loss"] == ref["best_val_loss"]
    pd.testing.assert_frame_equal(metrics(out / "trial_0000"), metrics(tmp_path / "ref"))


def test_signal_while_optuna_starts_a_trial_is_held_until_the_trial_runs(tmp_path, monkeypatch):
    """Ctrl-C while Optuna starts the trial's heartbeat thread (outside the objective): held, then raised as
    the trial starts, so the trial is interrupted and retried, and no heartbeat thread is left running (an
    interrupt there used to leave one, and the process never exited)."""
    import threading

    from optuna.storages._heartbeat import HeartbeatThread

    out = tmp_path / "s"
    signal_at(monkeypatch, HeartbeatThread, "start", lambda a: True, after=True)  # the thread runs
    threads = set(threading.enumerate())
    assert trials_only(out) == 130
    first, retry = trials(out)
    assert first.state.name == "FAIL" and first.user_attrs["reason"] == "interrupted before training started"
    assert retry.state.name == "WAITING"
    left = [t for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert left == []


@pytest.mark.slow  # 2 searches with their outputs
def test_trial_interrupted_in_the_test_phase_is_not_left_running(tmp_path, monkeypatch):
    """Ctrl-C after the last epoch, while the test split is evaluated: the trial is interrupted (not running,
    not a failure without a reason) and its retry resumes the trained run: no epoch again, the same value.
    The outputs tell the interrupted trial, its retry and the waiting retry apart."""
    out = tmp_path / "s"
    sent = signal_at(monkeypatch, SequenceTask, "test_report", lambda a: True)
    code, text = search(out, n_trials=1)
    assert sent and code == 130, text
    first, retry = trials(out)
    assert first.state.name == "FAIL" and first.user_attrs["status"] == "interrupted"
    reason = first.user_attrs["reason"]  # the run's own words (the test phase says so), or the trial's
    assert reason.startswith("interrupted") and "after 4 completed epochs" in reason
    assert retry.state.name == "WAITING"
    s = json.loads((out / "search_summary.json").read_text())
    assert (s["complete"], s["interrupted"], s["failed"], s["running"], s["waiting"]) == (0, 1, 0, 0, 1)
    assert "1 trials wait (retries of trials interrupted or lost" in text
    monkeypatch.undo()

    code, text = search(out, n_trials=1)
    assert code == 0, text
    assert "Note: trial 0 stopped before the end" in text
    resumed, ref = read_summary(out / "trial_0000"), read_summary(uninterrupted(tmp_path))
    assert resumed["status"] == "completed" and resumed["resumed_from_epochs"] == [4]
    assert trials(out)[1].value == ref["best_val_loss"]
    assert resumed["test_metrics"] == ref["test_metrics"]
    table = pd.read_csv(out / "trials.csv")
    assert table[["trial", "state", "retry_of"]].fillna(-1).values.tolist() == [[1, "complete", 0],
                                                                                 [0, "interrupted", -1]]
    assert table["reason"].iloc[1].endswith("; retried as trial 1")
    s = json.loads((out / "search_summary.json").read_text())
    assert (s["complete"], s["interrupted"], s["failed"], s["waiting"]) == (1, 1, 0, 0)
    assert s["best"]["run_dir"] == str(out / "trial_0000")


@pytest.mark.slow  # 4 searches
def test_a_retry_with_nothing_to_resume_starts_over_in_its_own_folder(tmp_path, monkeypatch):
    """Stopped in epoch 1's hooks (before any checkpoint_last), or resumed with another model: the retry trains
    the same point from the start in its own folder, and the old folder is left as it was."""
    out = tmp_path / "s"
    signal_at(monkeypatch, objective.PruneHook, "__call__", lambda a: a[0] == 1)
    assert trials_only(out) == 130
    monkeypatch.undo()
    assert trials_only(out) == 0
    first, retry = trials(out)
    assert retry.state.name == "COMPLETE" and retry.user_attrs["run_dir"] == str(out / "trial_0001")
    assert read_summary(out / "trial_0000")["status"] == "interrupted"
    assert "resumed_from_epochs" not in read_summary(out / "trial_0001")

    other = tmp_path / "t"  # stopped at epoch 3, then the search goes on with a bigger model
    signal_at(monkeypatch, objective.PruneHook, "__call__", lambda a: a[0] == 3)
    assert trials_only(other) == 130
    monkeypatch.undo()
    before = (other / "trial_0000" / ".hydra" / "config.yaml").read_text()
    p = plan(SearchOptions(params=[ONE], args=[*BASE, "arch.hidden_size=10"], output=str(other), pruner="none",
                           n_trials=1))
    assert work(p.spec, p.setup, p.n_trials, None) == 0
    assert trials(other)[1].user_attrs["run_dir"] == str(other / "trial_0001")
    assert read_summary(other / "trial_0000")["status"] == "interrupted"
    assert (other / "trial_0000" / ".hydra" / "config.yaml").read_text() == before  # the refused resume left it


# ----------------------------------------------------------------------------- bad places and names: one line


LR = "optim.lr=float:1e-3:1e-1:log"


def one_line(code: int, text: str) -> str:
    assert code == 2, text
    assert len(text.strip().splitlines()) == 1 and text.startswith("Error: "), text
    return text.strip()[len("Error: "):]


def test_n_trials_0_on_a_new_study_creates_nothing(tmp_path):
    """`--n-trials 0` writes the outputs of an existing study (as optuna.load_study, it does not create one):
    on a new study it is refused, and neither the folder nor a study.db appears."""
    out = tmp_path / "new" / "s"
    message = one_line(*search(out, LR, n_trials=0))
    assert message == (f"--n-trials 0 writes the outputs of an existing study, and there is no study 'search' in "
                       f"sqlite:///{out.resolve() / 'study.db'}: nothing was created (give --n-trials N to start it)")
    assert not (tmp_path / "new").exists()
    db = tmp_path / "other.db"
    message = one_line(*search(out, LR, n_trials=0, storage=f"sqlite:///{db}"))
    assert message.startswith("--n-trials 0 writes the outputs of an existing study") and not db.exists()


@pytest.mark.parametrize("where, cause", [
    ("file", "is a file, not a folder: give another --output"),
    ("file/sub", "cannot write there (Not a directory)"),
    ("/proc/rnnlab-study", "cannot write there (No such file or directory)"),
])
def test_output_that_cannot_hold_a_study(tmp_path, where, cause):
    (tmp_path / "file").write_text("not a folder\n")
    out = Path(where) if where.startswith("/") else tmp_path / where
    message = one_line(*search(out, LR, n_trials=1))
    assert message.startswith(f"study folder {out}") and message.endswith(cause)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert (tmp_path / "file").read_text() == "not a folder\n"


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only file system: a read-only bind mount (root ignores chmod; skipped without mount rights)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    ok = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True).returncode == 0
    ok = ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode == 0
    if not ok:
        subprocess.run(["umount", str(ro)], capture_output=True)
        pytest.skip("cannot make a read-only bind mount here (needs CAP_SYS_ADMIN)")
    yield ro
    subprocess.run(["umount", str(ro)], check=True)


def test_output_on_a_read_only_file_system(read_only_dir):
    for out in (read_only_dir, read_only_dir / "s"):  # the folder itself, or one to create in it
        message = one_line(*search(out, LR, n_trials=1))
        assert message == f"study folder {out}: cannot write there (Read-only file system)"
    assert list(read_only_dir.iterdir()) == []


def test_too_long_study_name_is_refused():
    code, text = search(Path("unused"), LR, study_name="s" * 300)
    message = one_line(code, text)  # config.validate.check_folder_name's limit: one check for train and search
    assert message.startswith("--study-name is 300 bytes long: at most ") and "(it names a folder" in message
    assert not Path("unused").exists()


@pytest.mark.parametrize("override, param, error", [
    ("optim.lr=abc", LR, "optim.lr: Value 'abc' could not be converted to Float"),
    ("arch=foo", "arch=choice:rnn,gru", "unknown arch 'foo' (choose from: "),
])
def test_bad_override_of_a_searched_key_is_refused_not_dropped(tmp_path, override, param, error):
    out = tmp_path / "s"
    message = one_line(*search(out, param, args=[override]))
    assert message.startswith(f"overrides: {error}")
    assert not out.exists()


def test_workers_must_agree_on_the_heartbeat(tmp_path):
    """Each worker fails the trials whose heartbeat is older than its own grace period: one heartbeat per study."""
    out = tmp_path / "s"
    out.mkdir()
    optuna.create_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}").set_user_attr("heartbeat_s", 5)
    message = one_line(*search(out, n_trials=1, heartbeat=7))
    assert message == ("study 'search' runs with --heartbeat 5 (all its workers must agree, or a short one fails "
                       "the others' running trials): leave it out or give 5")
    assert plan(SearchOptions(params=[ONE], args=BASE, output=str(out), n_trials=0)).spec.heartbeat == 5


@pytest.mark.slow  # the outputs (pandas, matplotlib)
def test_n_trials_0_on_a_study_without_trials_writes_empty_outputs(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    optuna.create_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    code, text = search(out, n_trials=0)
    assert code == 1 and "Error" not in text and "Traceback" not in text  # 1: no trial completed
    assert pd.read_csv(out / "trials.csv").empty
    assert json.loads((out / "search_summary.json").read_text())["n_trials"] == 0


# ----------------------------------------------------------------------------- a killed worker (slow, processes)


HEARTBEAT_S = 1  # a killed worker's trial is found lost after 4 silent heartbeats (4 s)


def start_worker(out: Path, storage: str, n_trials: int, seed: int, epochs: int = 60) -> subprocess.Popen:
    args = [sys.executable, "-m", "rnnlab.cli", "search", "--param", "optim.lr=float:1e-3:1e-1:log",
            "--param", "arch.hidden_size=int:4:12", "--sampler", "random", "--pruner", "none", "--seed", str(seed),
            "--n-trials", str(n_trials), "--storage", storage, "--study-name", "shared", "--output", str(out),
            "--heartbeat", str(HEARTBEAT_S), *TINY, f"train.epochs={epochs}"]
    return subprocess.Popen(args, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def wait_for(predicate, timeout: float = 180, what: str = ""):
    deadline = time.time() + timeout
    while not (found := predicate()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def running_trial_of(out: Path, pid: int, epochs: int = 3) -> int | None:
    """The number of the trial that process pid trains, once it has a checkpoint_last and `epochs` epochs
    in metrics.csv (None before)."""
    for folder in out.glob("trial_*"):
        try:
            summary = json.loads((folder / "summary.json").read_text())
            rows = len((folder / "metrics.csv").read_text().splitlines()) - 1
        except (OSError, ValueError):
            continue
        if summary.get("pid") == pid and summary.get("status") == "running" and rows >= epochs \
                and (folder / "checkpoint_last").is_dir():
            return int(folder.name[len("trial_"):])
    return None


def check_killed_trial_resumed(out: Path, storage: str, killed: int, n_expected: int) -> None:
    """The study after the kill: every trial but the killed one complete, none running, the killed one
    retried once and resumed in its own folder, and the best trial as the trial folders say."""
    study = optuna.load_study(study_name="shared", storage=storage)
    states = {t.number: t.state.name for t in study.trials}
    assert len(states) == n_expected, states
    assert [n for n, s in states.items() if s != "COMPLETE"] == [killed], states
    retries = [t for t in study.trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
               == killed]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].user_attrs["run_dir"] == str(out / f"trial_{killed:04d}")
    assert retries[0].params == study.trials[killed].params
    resumed = read_summary(out / f"trial_{killed:04d}")
    assert resumed["status"] == "completed" and resumed["resumed_from_epochs"][0] >= 1
    assert resumed["search"] == {"output": str(out), "trial": retries[0].number, "retry_of": killed}
    assert not (out / f"trial_{retries[0].number:04d}").exists()
    values = {t.number: read_summary(Path(t.user_attrs["run_dir"]))["best_val_loss"] for t in study.trials
              if t.state.name == "COMPLETE"}
    assert values == {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    assert study.best_value == min(values.values())
    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["best"]["value"] == study.best_value and summary["best"]["params"] == study.best_params
    assert (summary["complete"], summary["lost"], summary["running"], summary["waiting"]) == (n_expected - 1, 1, 0, 0)
    table = pd.read_csv(out / "trials.csv")
    lost = table[table["trial"] == killed].iloc[0]
    assert lost["state"] == "lost" and lost["reason"].endswith(f"; retried as trial {retries[0].number}")


def killed_worker_scenario(tmp_path: Path, storage: str) -> dict:
    """Two workers on one study; one is SIGKILLed mid-trial and, once its trial's heartbeat is stale, restarted.
    A worker fails the lost trial and Optuna's retry callback enqueues it; its retry resumes the trial's folder
    from checkpoint_last. Returns what happened (for the note)."""
    out = tmp_path / "study"
    out.mkdir()
    victim, other = start_worker(out, storage, 3, seed=1), start_worker(out, storage, 4, seed=2)
    killed = wait_for(lambda: running_trial_of(out, victim.pid), what="a trial of the victim with a checkpoint")
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    time.sleep(4 * HEARTBEAT_S + 1)  # its trial is stale now: the first ask of either worker retries it
    again = start_worker(out, storage, 2, seed=3)
    results = [p.communicate(timeout=600) for p in (other, again)]
    assert [other.returncode, again.returncode] == [0, 0], results
    for _, err in results:
        assert "Traceback" not in err, err
    # Both wrote the outputs as they ended; the last word, with every trial finished:
    r = subprocess.run([sys.executable, "-m", "rnnlab.cli", "search", "--param", "optim.lr=float:1e-3:1e-1:log",
                        "--param", "arch.hidden_size=int:4:12", "--n-trials", "0", "--storage", storage,
                        "--study-name", "shared", "--output", str(out), *TINY], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="shared", storage=storage)
    by_victim = sum(t.user_attrs.get("pid") == victim.pid for t in study.trials)
    check_killed_trial_resumed(out, storage, killed, by_victim + 4 + 2)
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == killed)
    return {"killed": killed, "trials": len(study.trials), "retried_as": retry.number,
            "retried_by": "the restarted worker" if retry.user_attrs["pid"] == again.pid else "the other worker",
            "resumed_from": read_summary(out / f"trial_{killed:04d}")["resumed_from_epochs"],
            "stderr": "".join(err for _, err in results)}


@pytest.mark.slow
def test_killed_worker_trial_is_retried_and_resumed_sqlite(tmp_path):
    outcome = killed_worker_scenario(tmp_path, f"sqlite:///{tmp_path / 'shared.db'}")
    print(f"sqlite: {({k: v for k, v in outcome.items() if k != 'stderr'})}")  # for the note (pytest -s)
