"""`rnnlab compare`: collect runs, rank them, group by a config key (scipy tests), ensemble their predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rnnlab.analysis import metrics as mt
from rnnlab.commands.compare import compare, run
from rnnlab.commands.train import run as train
from tests.conftest import TINY, read_summary, run_cli


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Six tiny runs: seed 0, 1, 2 x arch gru, lstm (jobs 0..5; the seed also draws the data), one in-process
    Hydra multirun (`rnnlab train -m`), which must have run every job of the grid in order."""
    root = tmp_path_factory.mktemp("compare")
    sweep_dir = root / "sweep"
    assert train(["-m", *TINY, "train.epochs=2", "train.limit_batches=3", "seed=0,1,2", "arch=gru,lstm",
                  f"hydra.sweep.dir={sweep_dir}"]) == 0
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == [str(i) for i in range(6)]
    assert all(read_summary(sweep_dir / str(i))["status"] == "completed" for i in range(6))
    specs = [json.loads((sweep_dir / str(i) / "checkpoint" / "model.json").read_text())["spec"] for i in range(6)]
    assert [s["cell"] for s in specs] == ["gru", "lstm"] * 3
    assert [read_summary(sweep_dir / str(i))["seed"] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert (sweep_dir / "multirun.yaml").is_file()
    return sweep_dir


def summaries(sweep: Path) -> dict[str, dict]:
    return {str(i): read_summary(sweep / str(i)) for i in range(6)}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.slow  # suite time: the scenario is in the slow suite
def test_compare_multirun_folder(sweep, tmp_path):
    out = tmp_path / "out"
    r = run_cli(["compare", str(sweep), "--output", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ranked by test_mse (lower is better)" in r.stdout
    table = pd.read_csv(out / "comparison.csv")
    for col in ("rank", "run", "status", "included", "overrides", "arch.cell", "arch.hidden_size", "optim.name",
                "optim.lr", "reg.name", "seed", "test_mse", "test_rmse", "test_mae", "test_r2", "val_mse", "val_r2",
                "best_epoch", "epochs_run", "runtime_s", "n_params"):
        assert col in table.columns, col
    assert sorted(table["run"].astype(str)) == [str(i) for i in range(6)]
    assert list(table["rank"]) == [1, 2, 3, 4, 5, 6] and table["included"].all()
    assert list(table["test_mse"]) == sorted(table["test_mse"])  # lower is better: ascending
    s = summaries(sweep)
    for _, row in table.iterrows():
        summ = s[str(row["run"])]
        assert row["test_mse"] == pytest.approx(summ["test_metrics"]["mse"], rel=1e-12)
        assert row["val_mae"] == pytest.approx(summ["val_metrics"]["mae"], rel=1e-12)
        assert row["n_params"] == summ["n_params"] and row["seed"] == summ["seed"]
        assert f"seed={summ['seed']}" in row["overrides"] and f"arch={row['arch.cell']}" in row["overrides"]
    assert set(table["arch.cell"]) == {"gru", "lstm"} and (table["arch.hidden_size"] == 8).all()
    png = out / "loss_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_compare_glob_default_output(sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run([f"{sweep}/[0-3]"]) == 0
    table = pd.read_csv(tmp_path / "comparison" / "comparison.csv")
    assert sorted(table["run"].astype(str)) == ["0", "1", "2", "3"]
    assert (tmp_path / "comparison" / "loss_curves.png").is_file()


def test_compare_single_run(sweep, tmp_path):
    res = compare([str(sweep / "2")], output=tmp_path / "c")
    assert list(res["table"]["run"]) == ["2"] and res["table"]["rank"].tolist() == [1]
    assert res["table"]["test_mse"].iloc[0] == read_summary(sweep / "2")["test_metrics"]["mse"]
    assert (tmp_path / "c" / "comparison.csv").is_file()


def test_parent_folder_and_duplicates(sweep, tmp_path):
    """A folder holding the sweep is searched; a run named twice counts once."""
    res = compare([str(sweep.parent), str(sweep / "0")], output=tmp_path / "c")
    assert len(res["table"]) == 6
    assert sorted(res["table"]["run"]) == [str(i) for i in range(6)]  # relative to the common parent


@pytest.mark.parametrize(("metric", "column", "descending"), [
    ("r2", "test_r2", True), ("val.mae", "val_mae", False), ("test_mape", "test_mape", False),
])
def test_sort_direction(sweep, tmp_path, metric, column, descending):
    res = compare([str(sweep)], metric=metric, output=tmp_path / "c")
    assert res["metric"] == column and res["higher_is_better"] is descending
    values = list(res["table"][column])
    assert values == sorted(values, reverse=descending) and len(set(values)) == 6


def test_by_arch_cell_matches_numpy_and_scipy(sweep, tmp_path, capsys):
    out = tmp_path / "c"
    assert run([str(sweep)], by="arch.cell", output=out) == 0
    stdout = capsys.readouterr().out
    assert "Welch" in stdout and "Mann-Whitney U" in stdout and "by arch.cell" in stdout
    groups = pd.read_csv(out / "comparison_groups.csv")
    assert list(groups["value"]).count("gru") == 1 and set(groups["value"]) == {"gru", "lstm"}
    assert list(groups["n"]) == [3, 3]
    s = summaries(sweep)
    by_cell = {c: np.array([x["test_metrics"]["mse"] for i, x in s.items()
                            if ("gru" if int(i) % 2 == 0 else "lstm") == c]) for c in ("gru", "lstm")}
    for _, g in groups.iterrows():
        a = by_cell[g["value"]]
        assert g["mean"] == pytest.approx(a.mean(), rel=1e-12)
        assert g["std"] == pytest.approx(a.std(ddof=1), rel=1e-10)
    best, other = groups.iloc[0], groups.iloc[1]
    assert best["mean"] <= other["mean"] and bool(best["best"]) and np.isnan(best["welch_p"])
    a, b = by_cell[best["value"]], by_cell[other["value"]]
    t = stats.ttest_ind(a, b, equal_var=False)
    u = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert other["welch_t"] == pytest.approx(t.statistic, rel=1e-12)
    assert other["welch_p"] == pytest.approx(t.pvalue, rel=1e-12)
    assert other["mannwhitney_u"] == u.statistic and other["mannwhitney_p"] == pytest.approx(u.pvalue, rel=1e-12)


def test_by_with_a_group_of_one(sweep, tmp_path, capsys):
    """Runs 0, 1, 2 = gru seed 0, lstm seed 0, gru seed 1: lstm has n=1, so no std and no tests."""
    assert run([str(sweep / str(i)) for i in range(3)], by="arch.cell", output=tmp_path / "c") == 0
    groups = pd.read_csv(tmp_path / "c" / "comparison_groups.csv").set_index("value")
    assert groups.loc["gru", "n"] == 2 and groups.loc["lstm", "n"] == 1
    assert np.isnan(groups.loc["lstm", "std"]) and np.isnan(groups.loc["lstm", "welch_p"])
    assert np.isnan(groups.loc["lstm", "mannwhitney_p"])
    assert "n < 2" in str(groups.loc["lstm", "note"])
    assert "n < 2" in capsys.readouterr().out


def test_by_numeric_key(sweep, tmp_path):
    res = compare([str(sweep)], by="seed", metric="val_mse", output=tmp_path / "c")
    g = res["groups"]
    assert sorted(g["value"]) == ["0", "1", "2"] and list(g["n"]) == [2, 2, 2]
    assert list(g["mean"]) == sorted(g["mean"])


def test_by_config_group_uses_the_chosen_option(sweep, tmp_path):
    """--by arch groups by Hydra's choice (gru, lstm), not by the whole arch dict; same groups as arch.cell here."""
    by_group = compare([str(sweep)], by="arch", output=tmp_path / "g")["groups"]
    by_cell = compare([str(sweep)], by="arch.cell", output=tmp_path / "c")["groups"]
    assert sorted(by_group["value"]) == ["gru", "lstm"] and list(by_group["n"]) == [3, 3]
    assert list(by_group["value"]) == list(by_cell["value"])
    np.testing.assert_array_equal(by_group["mean"], by_cell["mean"])


def test_ensemble_regression_matches_hand_computation(sweep, tmp_path, capsys):
    runs = [sweep / "0", sweep / "1"]  # the same seed: the same test set
    assert run([str(p) for p in runs], use_ensemble=True, output=tmp_path / "c") == 0
    out = capsys.readouterr().out
    assert "Ensemble (row E" in out and "ensemble" in out
    frames = [pd.read_csv(p / "predictions.csv") for p in runs]
    expect = mt.regression_metrics(frames[0]["target"], (frames[0]["prediction"] + frames[1]["prediction"]) / 2)
    got = json.loads((tmp_path / "c" / "ensemble.json").read_text())
    assert got["n"] == 2 and got["members"] == ["0", "1"]
    for k, v in expect.items():
        assert got["test_metrics"][k] == pytest.approx(v, rel=1e-12), k


def test_ensemble_refuses_different_test_sets(sweep, tmp_path, capsys):
    assert run([str(sweep)], use_ensemble=True, output=tmp_path / "c") == 2  # seeds draw different data
    assert "test sets differ" in one_error_line(capsys.readouterr().err)


def _fake_classification_runs(sweep: Path, tmp_path: Path, kind: str) -> tuple[list[Path], list[pd.DataFrame]]:
    """Two copies of a run posing as classification runs with made-up predictions on one test set."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2 if kind == "binary" else 3, 40)
    dirs, frames = [], []
    for i in range(2):
        d = tmp_path / "cls" / str(i)
        shutil.copytree(sweep / str(i), d)
        s = read_summary(d)
        s.update(task=kind, test_metrics={"accuracy": 0.5 + i / 10, "f1": 0.5},
                 val_metrics={"accuracy": 0.5, "f1": 0.5})
        (d / "summary.json").write_text(json.dumps(s))
        if kind == "binary":
            f = pd.DataFrame({"sample": np.arange(40), "target": y, "prediction": 0, "prob": rng.random(40)})
        else:
            p = rng.dirichlet(np.ones(3), 40)
            f = pd.DataFrame({"sample": np.arange(40), "target": y, "prediction": p.argmax(1),
                              **{f"prob_{c}": p[:, k] for k, c in enumerate("abc")}})
        f.to_csv(d / "predictions.csv", index=False)
        dirs.append(d)
        frames.append(f)
    return dirs, frames


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_ensemble_classification_soft_vote(sweep, tmp_path, kind):
    dirs, frames = _fake_classification_runs(sweep, tmp_path, kind)
    res = compare([str(tmp_path / "cls")], use_ensemble=True, output=tmp_path / "c")
    assert res["metric"] == "test_accuracy" and res["higher_is_better"]
    assert list(res["table"]["run"]) == ["1", "0"]  # accuracy 0.6 before 0.5
    y = frames[0]["target"]
    if kind == "binary":
        expect = mt.binary_metrics(y, (frames[0]["prob"] + frames[1]["prob"]) / 2, 0.5)
    else:
        cols = ["prob_a", "prob_b", "prob_c"]
        expect = mt.multiclass_metrics(y, (frames[0][cols].to_numpy() + frames[1][cols].to_numpy()) / 2)
    assert res["ensemble"]["test_metrics"]["confusion"] == expect["confusion"]
    for k in ("accuracy", "f1", "precision", "recall"):
        assert res["ensemble"]["test_metrics"][k] == pytest.approx(expect[k], rel=1e-12)


def test_failed_runs_listed_and_excluded(sweep, tmp_path, capsys):
    root = tmp_path / "sw"
    shutil.copytree(sweep, root)
    for i, status in ((0, "failed"), (3, "diverged")):
        s = read_summary(root / str(i))
        s.update(status=status, message="boom")
        (root / str(i) / "summary.json").write_text(json.dumps(s))
    assert run([str(root)], by="arch.cell", use_ensemble=False, output=tmp_path / "c") == 0
    out = capsys.readouterr().out
    assert "Excluded from the ranking and the statistics" in out and "failed" in out and "diverged" in out
    table = pd.read_csv(tmp_path / "c" / "comparison.csv")
    assert len(table) == 6
    assert list(table["status"].iloc[-2:]) == ["failed", "diverged"]
    assert not table["included"].iloc[-2:].any() and table["rank"].iloc[-2:].isna().all()
    assert list(table["rank"].iloc[:4]) == [1, 2, 3, 4]
    groups = pd.read_csv(tmp_path / "c" / "comparison_groups.csv")
    assert sorted(groups["n"]) == [2, 2]


def _mixed_tasks(sweep: Path, tmp_path: Path) -> list[str]:
    fake = tmp_path / "cls_run"
    shutil.copytree(sweep / "0", fake)
    s = read_summary(fake)
    s.update(task="binary", test_metrics={"accuracy": 0.9}, val_metrics={"accuracy": 0.9})
    (fake / "summary.json").write_text(json.dumps(s))
    return [str(sweep), str(fake)]


@pytest.mark.parametrize(("case", "expect"), [
    ("missing", "does not exist"),
    ("empty_dir", "no run folders in"),
    ("a_file", "is not a folder"),
    ("no_glob_match", "no run folders matching"),
    ("mixed_tasks", "runs of different tasks: 6 regression"),
    ("unknown_metric", "do not know whether a higher test_foo is better"),
    ("absent_metric", "metric test_roc_auc is not in every completed run"),
    ("no_common_metric", "no common metric"),
    ("missing_by_key", "no run has the config key arch.nope"),
])
def test_bad_input_one_line_exit_2(sweep, tmp_path, capsys, case, expect):
    kwargs: dict = {}
    if case == "missing":
        inputs = [str(tmp_path / "nope")]
    elif case == "empty_dir":
        (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
        (tmp_path / "empty" / "notes.txt").write_text("not a run")
        inputs = [str(tmp_path / "empty")]
    elif case == "a_file":
        (tmp_path / "f.txt").write_text("x")
        inputs = [str(tmp_path / "f.txt")]
    elif case == "no_glob_match":
        inputs = [str(tmp_path / "run_*")]
    elif case == "mixed_tasks":
        inputs = _mixed_tasks(sweep, tmp_path)
    elif case == "no_common_metric":
        d = tmp_path / "bare"
        shutil.copytree(sweep / "0", d)
        s = read_summary(d)
        s.pop("test_metrics"), s.pop("val_metrics")
        (d / "summary.json").write_text(json.dumps(s))
        inputs = [str(d)]
    else:
        inputs = [str(sweep)]
        kwargs = {"unknown_metric": {"metric": "foo"}, "absent_metric": {"metric": "roc_auc"},
                  "missing_by_key": {"by": "arch.nope"}}[case]
    assert run(inputs, output=tmp_path / "c", **kwargs) == 2
    line = one_error_line(capsys.readouterr().err)
    assert expect in line, line
    if case == "mixed_tasks":
        assert "1 classification" in line
    assert not (tmp_path / "c").exists()


def test_bad_input_prints_only_the_error_line(tmp_path, capsys):
    assert run([str(tmp_path / "run_*")]) == 2
    out, err = capsys.readouterr()
    assert one_error_line(err) == f"Error: no run folders matching {tmp_path / 'run_*'}"
    assert out == ""


def test_folder_without_summary_and_ensemble_of_one(sweep, tmp_path, capsys):
    started = tmp_path / "runs" / "started" / ".hydra"
    started.mkdir(parents=True)
    shutil.copy(sweep / "0" / ".hydra" / "config.yaml", started / "config.yaml")
    assert run([str(tmp_path / "runs")], output=tmp_path / "c") == 0
    out = capsys.readouterr().out
    assert "No completed runs" in out and "no summary" in out
    table = pd.read_csv(tmp_path / "c" / "comparison.csv")
    assert list(table["status"]) == ["no summary"] and not table["included"].any()
    assert run([str(tmp_path / "runs"), str(sweep / "0")], use_ensemble=True, output=tmp_path / "d") == 2
    assert "at least 2 completed runs (1 completed)" in one_error_line(capsys.readouterr().err)
