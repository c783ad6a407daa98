"""Bad input: one line on stderr, exit code 2, no traceback, and no misleading run folder (issue 14).

In-process through the commands' `run` (as the Typer command calls it) to stay fast; Hydra's and
Python's warnings are recorded so that none reaches the user. Read-only cases use a real read-only
bind mount (we run as root, so permissions alone would not stop a write); they skip where mounting is
not allowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rnnlab.commands import augment, compare, cv
from rnnlab.commands.train import run
from rnnlab.config.composition import Composer
from rnnlab.config.schema import usable_cores
from rnnlab.config.validate import NAME_MAX_BYTES
from rnnlab.record import summary as summary_file
from rnnlab.runtime.folders import claim_new_dir
from tests.conftest import TINY, read_summary, run_cli


def one_error(capsys) -> str:
    """The one line the user sees (stderr), with nothing else printed."""
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0][len("Error: "):]


def train_refused(args: list[str], capsys) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = run([*TINY, *args])
    assert code == 2
    assert not caught, [str(w.message) for w in caught]  # Hydra's warnings would print two more lines
    return one_error(capsys)


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ----------------------------------------------------------------------------- config folders (-cd)


@pytest.mark.parametrize(("content", "cause"), [
    (b"lr: [0.1,\n  momentum: }\n", "not valid YAML: while parsing a flow node: expected the node content, "
                                    "but found '}' (line 2, column 13)"),
    (bytes(range(256)) * 2, "not a text file (byte 0x80 is not UTF-8)"),
    (b"a: 1\n\x00\x01binary\n", "not valid YAML: unacceptable character #x0000: special characters are not "
                                 "allowed"),
])
def test_a_damaged_config_file_is_one_line_naming_it(cwd, capsys, content, cause):
    # as `rnnlab search` writes it: rnnlab train -cd outputs/search/STUDY experiment=best
    best = cwd / "study" / "experiment" / "best.yaml"
    best.parent.mkdir(parents=True)
    best.write_bytes(content)
    line = train_refused(["-cd", str(cwd / "study"), "experiment=best"], capsys)
    assert line.startswith(f"config file {best}: {cause}"), line
    assert not (cwd / "outputs").exists()


def test_a_missing_config_folder_is_one_line_without_hydras_warning(cwd, capsys):
    assert train_refused(["-cd", str(cwd / "nope")], capsys) == f"config folder {cwd / 'nope'}: not found"


# ----------------------------------------------------------------------------- overrides


def test_an_override_without_a_key(cwd, capsys):
    assert train_refused(["=3"], capsys) == "override '=3' has no key (write KEY=VALUE, e.g. train.epochs=5)"


def test_a_number_python_cannot_convert(cwd, capsys):
    line = train_refused([f"train.epochs={'9' * 100_000}"], capsys)
    assert line.startswith("cannot parse override 'train.epochs=9999"), line
    assert "(100013 characters)" in line and "Exceeds the limit (4300 digits)" in line
    assert len(line) < 250  # the value is not echoed


def test_a_name_that_is_not_one_folder_name(cwd, capsys):
    message = "name '../../x': use letters, digits, '.', '-' and '_' (it names a folder)"
    assert train_refused(["name=../../x"], capsys) == message
    assert not list(cwd.rglob("*"))  # nothing written, inside outputs/ or outside it


@pytest.mark.parametrize(("name", "message"), [
    ("a" * 300, f"name is 300 bytes long: at most {NAME_MAX_BYTES} (it names a folder, and file names are "
                "limited to 255 bytes)"),
    ("é" * 150, f"name is 300 bytes long: at most {NAME_MAX_BYTES}"),
    ("a/b", "name 'a/b': use letters, digits, '.', '-' and '_' (it names a folder)"),
    ("..", "name '..': use letters, digits, '.', '-' and '_' (it names a folder)"),
    ("x" * 100 + "/", "name 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (101 characters)': use letters"),
])
def test_the_one_name_check(name, message):
    from rnnlab.config.validate import ConfigError, check_folder_name

    with pytest.raises(ConfigError) as info:
        check_folder_name(name, "name")
    assert str(info.value).startswith(message), str(info.value)
    check_folder_name("lstm_baseline-2.v1", "name")  # accepted


def test_search_uses_the_same_name_check():
    from rnnlab.commands.search import SearchOptions, _check_options
    from rnnlab.search import SearchError

    with pytest.raises(SearchError, match=f"--study-name is 300 bytes long: at most {NAME_MAX_BYTES}"):
        _check_options(SearchOptions(study_name="s" * 300))


def test_more_workers_than_cores():
    from rnnlab.config.schema import TrainConf

    n = usable_cores()
    with pytest.raises(ValueError, match=rf"^train.workers must be <= {n}, the cores this process may use "
                                         rf"\(got {n + 1}\)$"):
        TrainConf(workers=n + 1)
    assert TrainConf(workers=n).workers == n


# ----------------------------------------------------------------------------- other commands


def test_augment_preview_of_seq2seq_data(tmp_path, capsys):
    assert augment.run(["data=reverse_digits"], "jitter", tmp_path / "a.png", 2) == 2
    assert one_error(capsys) == ("data 'reverse_digits' is a sequence-to-sequence task: data.augment applies to "
                                 "sequence and forecasting data, not to seq2seq pairs")
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("test_metrics", [1, 2], "test_metrics must be an object (got a list)"),
    ("epochs_run", "3", "epochs_run must be an integer (got a string)"),
    ("best_val_loss", True, "best_val_loss must be a number (got a boolean)"),
    ("status", {"a": 1}, "status must be a string (got an object)"),
])
def test_a_summary_of_wrong_types_is_unreadable_naming_file_and_key(tmp_path, capsys, key, value, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    good = {"status": "completed", "task": "regression", "epochs_run": 3, "test_metrics": {"mse": 0.5}}
    (run_dir / "summary.json").write_text(json.dumps({**good, key: value}))
    with pytest.raises(ValueError, match="^" + str(run_dir / "summary.json") + ": " + message.replace("(", r"\(")
                       .replace(")", r"\)") + "$"):
        summary_file.read(run_dir)
    # compare lists it as unreadable (left out, as a summary that is not JSON), with that line
    assert compare.run([str(run_dir)], output=tmp_path / "cmp") == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"unreadable summary: {run_dir / 'summary.json'}: {message}" in out.splitlines()


# ----------------------------------------------------------------------------- run and sweep folders


def test_a_run_folder_that_is_a_file(cwd, capsys):
    (cwd / "f").write_text("x")
    assert train_refused(["hydra.run.dir=f"], capsys) == "run folder f: is a file"
    assert train_refused(["hydra.run.dir=f/run"], capsys) == "run folder f/run: f is a file"
    assert (cwd / "f").read_text() == "x"


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` as a read-only bind mount of itself (a real EROFS, which root cannot write through)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.decode().strip()}")
    try:
        try:
            (folder / "probe").write_text("x")
        except OSError:
            yield folder
        else:
            pytest.skip("the bind mount is writable")
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_read_only_folders_are_one_line_before_anything_runs(cwd, capsys):
    ro = cwd / "ro"
    (ro / "old_run").mkdir(parents=True)
    with read_only(ro):
        assert train_refused([f"hydra.run.dir={ro / 'old_run'}"], capsys) == (
            f"run folder {ro / 'old_run'}: Read-only file system")
        assert train_refused([f"hydra.run.dir={ro / 'new'}"], capsys) == (
            f"run folder {ro / 'new'}: Read-only file system")
        assert train_refused(["-m", "seed=1,2", f"hydra.sweep.dir={ro / 'sweep'}"], capsys) == (
            f"sweep folder {ro / 'sweep'}: Read-only file system")
        assert cv.run([*TINY, "cv.k=2", f"hydra.sweep.dir={ro / 'old_run'}"]) == 2
        assert one_error(capsys) == f"sweep folder {ro / 'old_run'}: Read-only file system"
        os.chdir(ro)  # the default folder, outputs/train/<timestamp>, cannot be created
        try:
            line = train_refused([], capsys)
        finally:
            os.chdir(cwd)  # or the mount stays busy
        assert line == "run folder outputs: Read-only file system", line
    assert sorted(p.name for p in ro.iterdir()) == ["old_run"]


def test_a_data_error_leaves_no_run_folder(cwd, capsys):
    missing = cwd / "nope.csv"
    assert run(["data=csv", f"data.path={missing}"]) == 2  # the default folder
    assert one_error(capsys) == f"data file not found: {missing}"
    assert list((cwd / "outputs" / "train").iterdir()) == []


@pytest.mark.slow
def test_a_data_error_leaves_no_new_folder_the_user_named_and_keeps_an_old_one(cwd, capsys):
    assert run(["data=csv", "data.path=nope.csv", "hydra.run.dir=given"]) == 2
    assert not (cwd / "given").exists()
    (cwd / "mine").mkdir()
    (cwd / "mine" / "notes.txt").write_text("my notes")
    assert run(["data=csv", "data.path=nope.csv", "hydra.run.dir=mine"]) == 2
    assert (cwd / "mine" / "notes.txt").read_text() == "my notes"
    assert read_summary(cwd / "mine")["bad_input"] is True


@pytest.mark.slow
def test_a_multirun_job_on_bad_data_keeps_a_folder_that_says_it_holds_nothing(cwd, capsys):
    sweep = cwd / "sweep"
    assert run(["-m", "data=csv", "data.path=a.csv,b.csv", f"hydra.sweep.dir={sweep}"]) == 1
    for job, file in (("0", "a.csv"), ("1", "b.csv")):
        s = read_summary(sweep / job)
        assert s == {"status": "failed", "run_dir": str(sweep / job), "message": f"data file not found: {file}",
                     "bad_input": True, "format_version": summary_file.FORMAT_VERSION}
        assert not (sweep / job / "checkpoint").exists()


# ----------------------------------------------------------------------------- unique default folders


def test_claim_new_dir_adds_a_suffix_when_the_name_is_taken(tmp_path):
    first = claim_new_dir(tmp_path / "runs" / "2026-01-01_00-00-00_x")
    assert first == tmp_path / "runs" / "2026-01-01_00-00-00_x"
    assert claim_new_dir(first) == tmp_path / "runs" / "2026-01-01_00-00-00_x-2"
    assert claim_new_dir(first) == tmp_path / "runs" / "2026-01-01_00-00-00_x-3"


@pytest.mark.slow
def test_claim_is_race_free_across_processes(tmp_path):
    """Eight processes claim the same name at once: eight folders."""
    code = ("import sys; from rnnlab.runtime.folders import claim_new_dir; "
            "sys.stdin.read(); print(claim_new_dir(sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "x")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate("")[0].strip() for p in procs]  # all wait on stdin, then claim together
    assert sorted(outs) == sorted([str(tmp_path / "x"), *(f"{tmp_path / 'x'}-{n}" for n in range(2, 9))])


def test_the_default_folder_is_claimed_once_per_config(cwd):
    with Composer() as c:
        a, b = c.compose(["name=same"]).cfg, c.compose(["name=same"]).cfg
    first = OmegaConf.select(a, "hydra.run.dir")
    assert OmegaConf.select(a, "hydra.run.dir") == first  # Hydra resolves it again: the same folder
    second = OmegaConf.select(b, "hydra.run.dir")
    assert second != first and Path(first).is_dir() and Path(second).is_dir()
    assert Path(first).parent == Path("outputs/train") and first.endswith("_same")


@pytest.mark.slow
def test_two_runs_started_together_with_the_same_name_both_complete(tmp_path):
    """Two `rnnlab train name=twin` started together. The default folder of every second of the next
    minute is taken beforehand (as by runs started in that second), so both must find a free name
    whichever second they start in, and race each other for it when it is the same one."""
    train = tmp_path / "outputs" / "train"
    now = time.time()
    taken = {train / (time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now + i)) + "_twin") for i in range(60)}
    for folder in taken:
        folder.mkdir(parents=True)
    args = ["train", *TINY, "train.epochs=2", "name=twin"]
    env = {**os.environ, "COLUMNS": "200"}
    procs = [subprocess.Popen([sys.executable, "-m", "rnnlab.cli", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    runs = sorted(set(train.iterdir()) - taken)
    assert len(runs) == 2 and all(re.fullmatch(r"\d{4}(-\d\d){2}_(\d\d-){2}\d\d_twin-[23]", r.name) for r in runs)
    for run_dir in runs:
        s = read_summary(run_dir)
        assert (s["status"], s["epochs_run"], s["run_dir"]) == ("completed", 2, str(run_dir.resolve()))
        assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3
    assert all(not any(f.iterdir()) for f in taken)  # nobody else's folder was written into


@pytest.mark.slow
def test_no_traceback_reaches_stderr_through_the_real_cli(tmp_path):
    (tmp_path / "cfg" / "experiment").mkdir(parents=True)
    (tmp_path / "cfg" / "experiment" / "best.yaml").write_bytes(b"\xff\xfe\x00binary")
    for args, line in (
        (["-cd", str(tmp_path / "nope")], f"Error: config folder {tmp_path / 'nope'}: not found"),
        (["-cd", str(tmp_path / "cfg"), "experiment=best"],
         f"Error: config file {tmp_path / 'cfg' / 'experiment' / 'best.yaml'}: not a text file (byte 0xff is not "
         "UTF-8)"),
        (["name=a/b"], "Error: name 'a/b': use letters, digits, '.', '-' and '_' (it names a folder)"),
    ):
        res = run_cli(["train", *args], cwd=tmp_path)
        assert (res.returncode, res.stderr.strip().splitlines()) == (2, [line]), res.stderr
    assert not (tmp_path / "outputs").exists()
