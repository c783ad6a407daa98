"""`rnnlab cv` end to end: a real Hydra multirun over cv.fold (basic and joblib launchers), the fold
table and its files, plots, failed folds, `rnnlab compare` on the folder, and one-line bad input."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab.commands import cv as cv_cmd
from rnnlab.commands.cv import run
from rnnlab.commands.hydra_bridge import compose_and_validate, split_args
from rnnlab.report import cv_results as R
from tests.conftest import read_summary, run_cli

# Tiny sine folds: 3 folds of about a second each.
TINY = ["data.length=400", "data.n_in=12", "arch.hidden_size=8", "train.epochs=2", "train.batch_size=32",
        "train.progress=false", "train.plots=false", "monitor=none", "data.baselines=[naive,drift,mean]"]
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def sine_cv(tmp_path_factory):
    """rnnlab cv cv.k=3 on tiny sine data (expanding windows), through `run` (the Typer command's body)."""
    sweep = tmp_path_factory.mktemp("cv") / "sweep"
    code = run([*TINY, "cv.k=3", f"hydra.sweep.dir={sweep}"])
    return code, sweep


def test_cv_writes_fold_runs_and_tables(sine_cv):
    code, sweep = sine_cv
    assert code == 0
    for f in ("cv_results.csv", "cv_summary.json", "multirun.yaml"):
        assert (sweep / f).is_file(), f
    assert not list(sweep.glob("*.png"))  # train.plots=false: no plots at all
    summaries = [read_summary(sweep / str(i)) for i in range(3)]
    assert [s["status"] for s in summaries] == ["completed"] * 3
    cvs = [s["cv"] for s in summaries]
    assert [c["fold"] for c in cvs] == [0, 1, 2]
    assert {c["strategy"] for c in cvs} == {"expanding"} and {c["k"] for c in cvs} == {3}
    # expanding windows: each fold trains on everything before its validation block
    for c, s in zip(cvs, summaries, strict=True):
        assert c["train_range"][0] == 0 and c["train_range"][1] == c["val_range"][0]  # gap 0 with n_out=1
        assert (s["n_train"], s["n_val"]) == (c["n_train"], c["n_val"])
    assert [c["n_train"] for c in cvs] == [82, 164, 246] and {c["n_val"] for c in cvs} == {82}
    assert len({s["n_test"] for s in summaries}) == 1  # the test split is the same in every fold
    # each fold fits its scaler on its own training windows, and saves that one with its model
    assert {c["preprocessing"] for c in cvs} == {"scaler and baselines refitted on the fold's training rows"}
    scalers = [json.loads((sweep / str(i) / "checkpoint" / "model.json").read_text())["data"]["scaler"]
               for i in range(3)]
    assert len({(s["mean"], s["std"]) for s in scalers}) == 3


def test_cv_table_numbers_are_the_fold_means(sine_cv):
    _, sweep = sine_cv
    summaries = [read_summary(sweep / str(i)) for i in range(3)]
    table = pd.read_csv(sweep / "cv_results.csv")
    assert table["fold"].astype(str).tolist() == ["0", "1", "2", "mean", "std"]
    for metric in ("test_mse", "val_mse", "test_r2"):
        split, name = metric.split("_", 1)
        values = np.array([s[f"{split}_metrics"][name] for s in summaries])
        assert table[metric].iloc[:3].tolist() == pytest.approx(values.tolist())
        assert table[metric].iloc[3] == pytest.approx(values.mean())
        assert table[metric].iloc[4] == pytest.approx(values.std(ddof=1))
    out = json.loads((sweep / "cv_summary.json").read_text())
    assert out["k"] == 3 and out["strategy"] == "expanding" and out["n_completed"] == 3 and out["failed_folds"] == []
    assert out["mean"]["test_mse"] == pytest.approx(table["test_mse"].iloc[3])
    assert [f["cv"]["fold"] for f in out["folds"]] == [0, 1, 2]
    assert out["n_dev"] == 328 and out["n_test"] == summaries[0]["n_test"]
    assert out["preprocessing"] == "scaler and baselines refitted on the fold's training rows"


def test_training_one_fold_cuts_the_same_fold(sine_cv, tmp_path):
    """`rnnlab train cv.fold=N` (what rnnlab cv runs per fold) trains on the same fold as the cv sweep did."""
    from rnnlab import api

    _, sweep = sine_cv
    s = api.train([*TINY, "cv.k=3", "cv.fold=1", "train.epochs=1"], tmp_path / "fold1")
    assert s.status == "completed"
    fold = json.loads((tmp_path / "fold1" / "checkpoint" / "model.json").read_text())["data"]["cv"]
    assert fold == read_summary(sweep / "1")["cv"]
    assert (s["n_train"], s["n_val"]) == (fold["n_train"], fold["n_val"])


@pytest.mark.slow
def test_cv_same_command_same_folds(sine_cv, tmp_path):
    """The seed fixes the fold assignment: the same command (here with fewer epochs) cuts the same folds."""
    _, sweep = sine_cv
    again = tmp_path / "again"
    assert run([*TINY, "cv.k=3", "train.epochs=1", f"hydra.sweep.dir={again}"]) == 0
    for i in range(3):
        a, b = read_summary(sweep / str(i))["cv"], read_summary(again / str(i))["cv"]
        assert a == b


def test_compare_reads_the_cv_folder(sine_cv, tmp_path):
    from rnnlab.commands.compare import run as compare

    _, sweep = sine_cv
    assert compare([str(sweep)], output=str(tmp_path / "cmp")) == 0
    frame = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert len(frame) == 3 and set(frame["status"]) == {"completed"}


@pytest.mark.slow  # several runs with plots or a study: the fast suite stays under 3 minutes
def test_cv_plots(tmp_path):
    sweep = tmp_path / "sweep"
    args = [a for a in TINY if a != "train.plots=false"] + ["train.epochs=1", "cv.k=2", f"hydra.sweep.dir={sweep}"]
    assert run(args) == 0
    for name in ("cv_folds.png", "cv_loss.png", "cv_predictions.png"):
        data = (sweep / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    assert json.loads((sweep / "cv_summary.json").read_text())["plots"] == [
        "cv_folds.png", "cv_loss.png", "cv_predictions.png"]


def _fold_predictions(tmp_path, n_origins: int, h: int) -> list[dict]:
    dates = pd.date_range("2020-01-01", periods=n_origins + h - 1, freq="MS")
    folds = []
    for k in range(2):
        rows = [{"sample": o, "horizon": j + 1, "date": dates[o + j].strftime("%Y-%m-%d"), "target": float(o + j),
                 "prediction": float(o + j + k), "naive": 0.0} for o in range(n_origins) for j in range(h)]
        (tmp_path / f"f{k}").mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / f"f{k}" / "predictions.csv", index=False)
        folds.append({"fold": k, "run_dir": str(tmp_path / f"f{k}"), "status": "completed"})
    return folds


def test_cv_predictions_show_a_single_origins_whole_trajectory(tmp_path):
    """One test origin of 12 monthly steps: each fold's panel draws its 12 steps (horizon 1 alone was one
    invisible point), on the target dates."""
    from rnnlab.report.cv_plots import predictions_grid_figure

    fig = predictions_grid_figure(_fold_predictions(tmp_path, 1, 12))
    for k, ax in enumerate(fig.axes[:2]):
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        assert len(lines["model"].get_xdata()) == 12
        np.testing.assert_array_equal(lines["model"].get_ydata(), np.arange(12) + k)
        assert pd.Timestamp(lines["target"].get_xdata()[-1]) == pd.Timestamp("2020-12-01")
    assert "the one test origin over its 12 steps" in fig._suptitle.get_text()


def test_cv_predictions_at_horizon_one_say_how_many_origins_are_shown(tmp_path):
    from rnnlab.report.cv_plots import predictions_grid_figure

    fig = predictions_grid_figure(_fold_predictions(tmp_path, 2500, 1))
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 2000  # was the first 300, silently
    assert "last 2,000 of 2,500 test origins" in fig._suptitle.get_text()


def test_fold_matrix_marks_train_gap_val_and_test():
    from rnnlab.data.folds import time_series_split
    from rnnlab.report.cv_plots import GAP, TEST, TRAIN, UNUSED, VAL, fold_matrix

    folds = time_series_split(12, 2, gap=1, val_size=3, max_train_size=4)
    m = fold_matrix(folds, 12, 2)
    assert m.shape == (2, 14)
    assert m[0].tolist() == [UNUSED, TRAIN, TRAIN, TRAIN, TRAIN, GAP, VAL, VAL, VAL, UNUSED, UNUSED, UNUSED,
                             TEST, TEST]
    assert m[1].tolist() == [UNUSED] * 4 + [TRAIN] * 4 + [GAP] + [VAL] * 3 + [TEST] * 2


@pytest.mark.slow  # suite time: a whole cv scenario
def test_diverged_folds_are_recorded_and_excluded(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    args = [*TINY, "optim=sgd", "optim.lr=1e6", "train.clip_norm=null", "arch=rnn", "arch.nonlinearity=relu",
            "cv.k=2", f"hydra.sweep.dir={sweep}"]
    assert run(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "fold 0 diverged: loss became" in err
    # said once, under the table
    assert "preprocessing: scaler and baselines refitted on the fold's training rows" in err
    table = pd.read_csv(sweep / "cv_results.csv")
    assert table["status"].tolist() == ["diverged", "diverged", "0 completed", "0 completed"]
    assert math.isnan(table["test_mse"].iloc[2])  # no completed fold: no mean
    assert json.loads((sweep / "cv_summary.json").read_text())["failed_folds"] == [0, 1]


def test_mean_and_std_skip_failed_folds():
    rows = [R.fold_row(0, {"status": "completed", "test_metrics": {"mse": 1.0}}, {"n_train": 10, "n_val": 5}),
            R.fold_row(1, {"status": "diverged", "test_metrics": {"mse": 1e9}}, {"n_train": 10, "n_val": 5}),
            R.fold_row(2, {"status": "completed", "test_metrics": {"mse": 3.0, "confusion": [[1]]}},
                       {"n_train": 12, "n_val": 5}),
            R.fold_row(3, {"status": "missing"}, {"n_train": 12, "n_val": 5})]
    mean, std = R.aggregate(rows)
    assert mean["test_mse"] == 2.0 and std["test_mse"] == pytest.approx(math.sqrt(2))
    assert mean["n_train"] == 11.0
    assert "test_confusion" not in rows[2]  # only scalar metrics
    frame = R.results_frame(rows, mean, std)
    assert frame["status"].tolist()[:4] == ["completed", "diverged", "completed", "missing"]
    assert frame["test_mse"].iloc[4] == 2.0 and frame["status"].iloc[4] == "2 completed"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["cv.k=1"], "cv.k must be >= 2 (got 1)"),
        (["cv.strategy=foo"], "cv.strategy must be one of auto, kfold, stratified, expanding, sliding (got 'foo')"),
        (["cv.k=400"], "cv.k=400 time-series folds need at least 401 samples in the development set (train + val), "
                       "which has 328"),
        (["cv.strategy=kfold", "cv.k=400"], "cv.k=400 folds need at least 400 samples in the development set "
                                            "(train + val), which has 328"),
        (["cv.strategy=stratified"], "cv.strategy=stratified needs one class label per sequence, but data 'sine' is "
                                     "regression (use kfold, expanding or sliding)"),
        (["cv.fold=1"], "rnnlab cv runs every fold itself: drop cv.fold (train one fold with rnnlab train cv.fold=N)"),
        (["arch=rnn,lstm"], "rnnlab cv cross-validates one config, but arch=rnn,lstm is a sweep: run rnnlab cv once "
                            "per value, then rnnlab compare outputs/cv --by arch"),
        (["cv.strategy=kfold", "cv.gap=2"], "cv.gap applies to cv.strategy expanding or sliding (got kfold)"),
        (["optim.lr=abc"], "optim.lr: Value 'abc' could not be converted to Float"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, overrides, message):
    code = run([*TINY, *overrides, f"hydra.sweep.dir={tmp_path / 'sw'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"Error: {message}"
    assert not (tmp_path / "sw").exists()  # nothing launched


def test_cli_bad_input_through_typer(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rnnlab.cli import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["cv", "cv.k=1"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == ["Error: cv.k must be >= 2 (got 1)"]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_joblib_runs_folds_in_parallel_processes(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TINY, "train.epochs=1", "cv.k=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            f"hydra.sweep.dir={sweep}"]
    res = run_cli(["cv", *args], cwd=tmp_path, timeout=180)
    assert res.returncode == 0, res.stderr
    summaries = [read_summary(sweep / str(i)) for i in range(2)]
    assert [s["cv"]["fold"] for s in summaries] == [0, 1]
    assert summaries[0]["pid"] != summaries[1]["pid"]
    assert [s["blas_threads"] for s in summaries] == ["1", "1"]
    assert pd.read_csv(sweep / "cv_results.csv")["fold"].astype(str).tolist() == ["0", "1", "mean", "std"]


@pytest.mark.slow  # a whole CLI run for one default folder; the fast suite runs the CLI elsewhere
def test_default_sweep_folder_is_outputs_cv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run([*TINY, "train.epochs=1", "cv.k=2", "name=tiny"]) == 0
    (sweep,) = (tmp_path / "outputs" / "cv").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_tiny", sweep.name)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert (sweep / "cv_results.csv").is_file()


def _readme_examples() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("rnnlab cv"):
                lines.append(line)
    return lines


@pytest.mark.slow  # composes every fold of every example (the README's train examples stay fast)
def test_readme_cv_examples_validate():
    examples = _readme_examples()
    assert len(examples) >= 4
    for line in examples:
        words = shlex.split(line)[2:]
        if "--resume" in words:  # the folder it resumes does not exist here: its overrides compose
            i = words.index("--resume")
            words = words[:i] + words[i + 2:]
        flags, overrides = split_args(words)
        cv_cmd._check_overrides(overrides)
        rc = compose_and_validate(overrides)
        if rc.data.name == "sine":  # the data of the others is not in the repository
            cv_cmd.plan_folds(rc)


def test_folds_at_chance_level_are_counted_and_named(sine_cv, capsys):
    """Two epochs of a tiny LSTM lose to the naive forecast: every fold says "completed" and warns; cv_summary.json
    names the folds at chance level and the console lists each fold's warning and their count."""
    from rich.console import Console

    _, sweep = sine_cv
    out = json.loads((sweep / "cv_summary.json").read_text())
    summaries = [read_summary(sweep / str(i)) for i in range(3)]
    assert [s["chance_check"]["chance"] for s in summaries] == [True] * 3
    assert out["chance_folds"] == [0, 1, 2]
    assert [f["warnings"] for f in out["folds"]] == [s["warnings"] for s in summaries]
    console = Console(file=__import__("io").StringIO(), width=400, color_system=None)
    cv_cmd._print_warnings(out["folds"], out["chance_folds"], console)
    lines = console.file.getvalue().splitlines()
    assert lines[:3] == [f"fold {i} warning: {summaries[i]['warnings'][0]}" for i in range(3)]
    assert lines[3] == "3 of 3 folds ended at chance level (fold 0, 1, 2): their scores enter the mean as they are"
