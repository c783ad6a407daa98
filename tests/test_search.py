"""`rnnlab search`: real Optuna studies in real sqlite storage, with real (tiny) training runs."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from rnnlab.commands.search import SearchOptions, run
from rnnlab.config.validate import group_options
from rnnlab.search.space import space_names
from tests.conftest import TINY, read_summary, run_cli

FAST = TINY  # 3 epochs of an 8-unit model on 400 steps of sine, no plots, no monitor
LR = "optim.lr=float:1e-3:1e-1:log"
HS = "arch.hidden_size=int:4:16"


def search(*params: str, args: list[str] | tuple = (), base: list[str] | None = None, **opts) -> tuple[int, str]:
    """Run `rnnlab search` in this process; (exit code, what it printed)."""
    console = Console(file=io.StringIO(), width=250)
    code = run(SearchOptions(params=list(params), args=[*(FAST if base is None else base), *args], **opts), console)
    return code, console.file.getvalue()


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "search_summary.json").read_text())


def trials_of(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "trials.csv")


# ----------------------------------------------------------------------------- bad input: one line, exit 2


ARCHS = ", ".join(group_options("arch"))
BAD = [
    ([], [], {}, "the search space is empty: give a SPACE file (e.g. sine_small) or --param KEY=SPEC"),
    (["optim.lr=float:0.1:0.001"], [], {}, "optim.lr: low must be below high (got low=0.1, high=0.001)"),
    (["optim.lr=float:0:0.1:log"], [], {}, "optim.lr: log scale needs low > 0 (got low=0.0)"),
    (["arch=choice:"], [], {}, "arch: choice needs at least one value"),
    (["optim.lr=flot:1:2"], [], {}, "--param optim.lr=flot:1:2: unknown type 'flot' (use float:LOW:HIGH[:log|:STEP], "
                                    "int:LOW:HIGH[:log|:STEP] or choice:A,B,...)"),
    (["arch.hidden_sizee=int:4:8"], [], {}, "search space arch.hidden_sizee=4: unknown key 'arch.hidden_sizee' "
                                            "(did you mean arch.hidden_size?)"),
    (["arch=choice:rnn,foo"], [], {}, f"search space arch=foo: unknown arch 'foo' (choose from: {ARCHS})"),
    (["reg.dropout=float:0:1.5"], [], {}, "search space reg.dropout=1.5: reg.dropout must be in [0, 1) (got 1.5)"),
    ([LR, "arch.hidden_size=int:0:8"], [], {},
     "search space arch.hidden_size=0: arch.hidden_size must be >= 1 (got 0)"),
    ([LR], ["train.epochs=abc"], {}, "overrides: train.epochs: Value 'abc' could not be converted to Integer"),
    ([LR], ["train.epochs=0"], {}, "overrides: train.epochs must be >= 1 (got 0)"),
    ([LR], ["arch=rnn,lstm"], {}, "arch=rnn,lstm: a sweep in the overrides; search it with --param (e.g. --param "
                                  "arch=choice:A,B), or run a grid with rnnlab train -m"),
    ([LR], ["hydra.run.dir=x"], {}, "hydra.run.dir=x: Hydra's own settings have no effect in rnnlab search"),
    ([LR], ["--foo"], {}, "unknown option '--foo' (see rnnlab search --help)"),
    ([LR], [], {"sampler": "grid"}, "optim.lr: --sampler grid needs a step for a float range (write "
                                    "float:LOW:HIGH:STEP or use choice)"),
    ([LR, "arch=choice:rnn,gru"], [], {"sampler": "cmaes"},
     "--sampler cmaes needs at least two int or float ranges (got 1); use tpe or random"),
    ([LR], [], {"sampler": "bayes"}, "unknown sampler 'bayes' (choose from: tpe, random, grid, cmaes)"),
    ([LR], [], {"pruner": "asha"}, "unknown pruner 'asha' (choose from: median, hyperband, none)"),
    ([LR], [], {"n_trials": -1}, "--n-trials must be >= 0 (got -1)"),
    ([LR], [], {"timeout": 0.0}, "--timeout must be > 0 seconds (got 0.0)"),
    ([LR], [], {"metric": "loss"}, "unknown metric 'loss' (a number of summary.json: val_loss, test_loss, test_mse, "
                                   "val_mae, test_r2, val_accuracy, test_f1, runtime_s, ...)"),
    ([LR], [], {"metric": "val_foo"}, "cannot tell whether a higher or lower val_foo is better: give --direction"),
    ([LR], [], {"study_name": "a/b"}, "--study-name 'a/b': use letters, digits, '.', '-' and '_' (it names a folder)"),
]


@pytest.mark.parametrize("params, args, opts, message", BAD, ids=[m[:40] for *_, m in BAD])
def test_bad_input_is_one_line_and_exit_2(tmp_path, params, args, opts, message):
    out = tmp_path / "study"
    code, text = search(*params, args=args, output=str(out), **opts)
    assert code == 2
    assert text.strip() == f"Error: {message}"
    assert not out.exists()  # checked before anything is written


def test_bad_space_file_and_storage(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("params:\n  optim.lr: {type: float, low: 1, hgh: 2}\n")
    code, text = search(space=str(space), output=str(tmp_path / "a"))
    assert (code, text.strip()) == (2, "Error: optim.lr: unknown field 'hgh' (fields: type, low, high, step, log, "
                                       "values)")
    code, text = search(LR, storage="nosuchdb://nowhere", output=str(tmp_path / "b"))
    assert code == 2 and text.startswith("Error: cannot open storage nosuchdb://nowhere: ") and "\n" not in text.strip()


def test_bad_input_through_the_real_cli(tmp_path):
    r = run_cli(["search", "--param", "optim.lr=float:1:0.1", "train.epochs=2"], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "Error: optim.lr: low must be below high (got low=1.0, high=0.1)"
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # suite time: each space composes every parameter's values (~2 s)
@pytest.mark.parametrize("name", space_names())
def test_shipped_spaces_compose(name):
    from rnnlab.search.compose import check_space
    from rnnlab.search.metric import check_metric
    from rnnlab.search.space import load_space_file

    f = load_space_file(name)
    check_metric(f.metric)
    rc = check_space(f.params, f.overrides)
    assert rc.train.epochs >= 1 and len(f.params) >= 3


# ----------------------------------------------------------------------------- studies


@pytest.mark.slow  # suite time: the scenario is in the slow suite
def test_tiny_study_outputs_best_config_and_refusals(tmp_path):
    """One study of 3 trials: its folder, table and plots; `rnnlab compare` reads it; the best config trains
    again to the same loss; the kept study refuses another space or metric (the two-study reproducibility
    and the resume are slow tests)."""
    a = tmp_path / "a"
    code, text = search(LR, HS, sampler="random", n_trials=3, seed=0, output=str(a))
    assert code == 0, text
    sa = summary_of(a)
    assert (sa["n_trials"], sa["complete"], sa["pruned"], sa["failed"]) == (3, 3, 0, 0)
    assert (sa["metric"], sa["direction"], sa["sampler"], sa["seed"]) == ("val_loss", "minimize", "random", 0)
    assert sa["storage"] == f"sqlite:///{(a / 'study.db').resolve()}"

    table = trials_of(a)
    assert list(table["rank"]) == [1, 2, 3] and list(table["state"]) == ["complete"] * 3
    assert list(table["val_loss"]) == sorted(table["val_loss"])
    assert sa["best"]["value"] == table["val_loss"].iloc[0]
    for _, row in table.iterrows():
        run_dir = a / f"trial_{row['trial']:04d}"
        assert read_summary(run_dir)["best_val_loss"] == row["val_loss"]
        config = (run_dir / ".hydra" / "config.yaml").read_text()
        assert f"hidden_size: {row['params.arch.hidden_size']}\n" in config
        overrides = (run_dir / ".hydra" / "overrides.yaml").read_text().splitlines()
        assert overrides[-1] == f"- arch.hidden_size={row['params.arch.hidden_size']}"
    for name in ("trials.csv", "best_config.yaml", "experiment/best.yaml", "optimization_history.png",
                 "param_importances.png", "study.db"):
        assert (a / name).is_file(), name
    assert sa["plots"] == ["optimization_history.png", "param_importances.png"]

    # `rnnlab compare` reads the trial folders
    from rnnlab.commands.compare import run as compare

    assert compare([str(a)], output=str(tmp_path / "cmp")) == 0
    assert len(pd.read_csv(tmp_path / "cmp" / "comparison.csv")) == 3

    # The documented command trains the best trial again, to the same validation loss.
    from rnnlab.commands.train import run as train

    best = (a / "experiment" / "best.yaml").read_text()
    assert best.startswith("# @package _global_\n") and f"rnnlab train -cd {a} experiment=best" in best
    assert sa["reproduce_best"] == f"rnnlab train -cd {a} experiment=best"
    assert train(["-cd", str(a), "experiment=best", "train.plots=false", f"hydra.run.dir={tmp_path / 'again'}"]) == 0
    again = read_summary(tmp_path / "again")
    assert again["best_val_loss"] == pytest.approx(sa["best"]["value"], rel=1e-9)
    assert again["n_params"] == read_summary(Path(sa["best"]["run_dir"]))["n_params"]

    # The study is kept: another space or metric is refused (going on with it: the slow resume test).
    code, text = search("optim.lr=choice:0.01,0.1", HS, n_trials=1, output=str(a))
    assert (code, text.strip()) == (2, "Error: study 'search' searched optim.lr as float 0.001..0.1 log; this space "
                                       "says choice 0.01, 0.1: use another --study-name")
    code, text = search(LR, HS, n_trials=1, metric="val_r2", output=str(a))
    assert (code, text.strip()) == (2, "Error: study 'search' optimizes val_loss, not val_r2: use --metric val_loss "
                                       "or another --study-name")
    assert summary_of(a)["n_trials"] == 3


@pytest.mark.slow
def test_tiny_study_is_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        code, text = search(LR, HS, sampler="random", n_trials=3, seed=0, output=str(out))
        assert code == 0, text
    sa, sb = summary_of(a), summary_of(b)
    assert sa["best"]["value"] == sb["best"]["value"] and sa["best"]["params"] == sb["best"]["params"]
    same = ["rank", "trial", "state", "val_loss", "params.optim.lr", "params.arch.hidden_size", "epochs_run"]
    assert trials_of(a)[same].equals(trials_of(b)[same])


@pytest.mark.slow  # suite time: the scenario is in the slow suite
def test_pruning_stops_poor_trials_early(tmp_path):
    out = tmp_path / "s"
    code, text = search("optim.lr=float:1e-4:1e-1:log", HS, args=["train.epochs=4"], sampler="random", n_trials=8,
                        seed=0, pruner_startup=1, pruner_warmup=1, output=str(out))
    assert code == 0, text
    s = summary_of(out)
    assert s["pruned"] >= 2 and s["complete"] + s["pruned"] == 8 and s["failed"] == 0
    table = trials_of(out)
    pruned = table[table["state"] == "pruned"]
    assert len(pruned) == s["pruned"]
    for _, row in pruned.iterrows():
        run_dir = out / f"trial_{row['trial']:04d}"
        metrics = pd.read_csv(run_dir / "metrics.csv")
        assert 1 <= len(metrics) < 4 and row["epochs_run"] == len(metrics)
        summ = read_summary(run_dir)
        assert summ["status"] == "pruned" and summ["message"].startswith(f"pruned after epoch {len(metrics)} of 4")
    done = table[table["state"] == "complete"]
    assert (done["epochs_run"] == 4).all()
    assert s["epochs_saved_by_pruning"] == int((4 - pruned["epochs_run"]).sum()) > 0
    assert s["estimated_seconds_saved_by_pruning"] > 0
    assert f"pruning: {s['pruned']} of 8 trials pruned, {s['epochs_saved_by_pruning']} epochs not run" in text


@pytest.mark.slow
def test_resume_grows_the_study_and_refuses_another_space(tmp_path):
    out = tmp_path / "s"
    for _ in range(2):
        code, text = search(LR, HS, sampler="random", n_trials=2, seed=0, output=str(out))
        assert code == 0, text
    s = summary_of(out)
    assert (s["n_trials"], s["complete"], s["this_run"]["new_trials"]) == (4, 4, 2)
    table = trials_of(out).sort_values("trial")
    assert list(table["trial"]) == [0, 1, 2, 3]
    # a resumed random sampler does not replay the points already tried (its refusals of another space
    # or metric: the fast test_tiny_study_outputs_best_config_and_refusals)
    assert set(table["params.optim.lr"][:2]).isdisjoint(table["params.optim.lr"][2:])
    (out / "trials.csv").unlink()
    code, text = search(LR, HS, n_trials=0, output=str(out))  # only the outputs, rebuilt from the study
    assert code == 0, text
    assert (summary_of(out)["n_trials"], summary_of(out)["this_run"]["new_trials"]) == (4, 0)
    assert len(trials_of(out)) == 4


@pytest.mark.slow  # several runs with plots or a study: the fast suite stays under 3 minutes
def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
    csv = tmp_path / "series.csv"
    csv.write_text("value\n" + "\n".join(f"{(i % 17) / 17:.4f}" for i in range(300)) + "\n")
    base = ["data=csv", "data.date_column=null", "data.target=value", "data.n_in=12", "arch.hidden_size=8",
            "train.epochs=2", "train.batch_size=32", "monitor=none", "optim=sgd", "train.clip_norm=null"]
    out = tmp_path / "s"
    code, text = search("optim.lr=choice:0.01,1000000.0", f"data.path=choice:{csv},{tmp_path / 'missing.csv'}",
                        base=base, sampler="grid", seed=0, output=str(out))
    assert code == 0, text
    s = summary_of(out)
    assert (s["n_trials"], s["complete"], s["failed"]) == (4, 1, 3)
    table = trials_of(out).set_index(["params.optim.lr", "params.data.path"])
    assert table.loc[(0.01, str(csv)), "state"] == "complete"
    assert table.loc[(1e6, str(csv)), "reason"].startswith("diverged: loss became")
    for lr in (0.01, 1e6):
        assert table.loc[(lr, str(tmp_path / "missing.csv")), "reason"] == \
            f"bad input: data file not found: {tmp_path / 'missing.csv'}"
    assert s["best"]["params"] == {"optim.lr": 0.01, "data.path": str(csv)}
    assert "3 trials failed (reasons in trials.csv)" in text


@pytest.mark.slow  # suite time: a search scenario
def test_a_metric_the_runs_lack_stops_the_search(tmp_path, capsys):
    out = tmp_path / "s"
    code, _ = search(LR, n_trials=3, metric="val_accuracy", output=str(out))  # sine is regression
    assert code == 2
    err = capsys.readouterr().err
    assert "Error: summary.json of trial 0 has no metric 'val_accuracy' (it has: best_val_loss, final_val_loss, " in err
    s = summary_of(out)
    assert (s["n_trials"], s["failed"]) == (1, 1)  # stopped after the first trial, which is kept
    assert trials_of(out)["reason"].iloc[0] == "no val_accuracy in summary.json"


@pytest.mark.slow  # 6 s: the grid sampler's bookkeeping; the fast suite has the random and TPE studies
def test_grid_covers_the_grid_exactly_once(tmp_path):
    out = tmp_path / "s"
    code, text = search("arch=choice:rnn,gru", "arch.hidden_size=int:4:8:4", sampler="grid", seed=0, output=str(out))
    assert code == 0, text
    table = trials_of(out)
    assert sorted(zip(table["params.arch"], table["params.arch.hidden_size"], strict=True)) == \
        [("gru", 4), ("gru", 8), ("rnn", 4), ("rnn", 8)]
    for _, row in table.iterrows():  # a group choice picks the group's file
        assert f"cell: {row['params.arch']}\n" in (Path(row["run_dir"]) / ".hydra" / "config.yaml").read_text()
    assert summary_of(out)["n_trials"] == 4


@pytest.mark.slow
def test_a_covered_grid_adds_no_trials(tmp_path):
    out = tmp_path / "s"
    for _ in range(2):
        code, text = search("arch=choice:rnn,gru", "arch.hidden_size=int:4:8:4", sampler="grid", seed=0,
                            output=str(out))
        assert code == 0, text
    assert "the grid is covered already: no new trials" in text
    assert summary_of(out)["n_trials"] == 4 and len(trials_of(out)) == 4


@pytest.mark.slow  # 6 s: another sampler and pruner through the same objective
def test_cmaes_sampler_and_hyperband_pruner(tmp_path):
    out = tmp_path / "s"
    code, text = search(LR, HS, "arch=choice:rnn,gru", args=["train.epochs=4"], sampler="cmaes", pruner="hyperband",
                        n_trials=3, seed=0, output=str(out))
    assert code == 0, text
    assert "Note: cmaes: the choices arch are drawn at random (CMA-ES moves the ranges)" in text
    s = summary_of(out)
    assert s["complete"] + s["pruned"] == 3 and s["complete"] >= 1
    assert s["pruner_settings"] == {"min_resource": 1, "max_resource": 4, "reduction_factor": 3}


@pytest.mark.slow  # several runs with plots or a study: the fast suite stays under 3 minutes
def test_space_file_with_command_line_params_and_maximize(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("objective: {metric: val_r2}\n"
                     "params:\n  optim.lr: {type: float, low: 1e-3, high: 1e-1, log: true}\n"
                     "  arch.hidden_size: {type: int, low: 4, high: 64}\noverrides: [train.epochs=2]\n")
    out = tmp_path / "s"
    code, text = search("arch.hidden_size=int:4:8", space=str(space), n_trials=2, pruner="none", output=str(out))
    assert code == 0, text
    s = summary_of(out)
    assert (s["study_name"], s["metric"], s["direction"]) == ("space", "val_r2", "maximize")
    assert s["space"] == {"optim.lr": "float 0.001..0.1 log", "arch.hidden_size": "int 4..8"}  # --param replaced it
    table = trials_of(out)
    assert list(table["val_r2"]) == sorted(table["val_r2"], reverse=True)  # higher is better
    assert table["params.arch.hidden_size"].between(4, 8).all()
    assert (table["epochs_run"] == 3).all()  # the command line's train.epochs=3 wins over the file's 2


# ----------------------------------------------------------------------------- processes (slow)


@pytest.mark.slow
def test_parallel_workers_share_one_study(tmp_path):
    out = tmp_path / "s"
    code, text = search(LR, HS, sampler="random", n_trials=4, seed=0, n_jobs=2, output=str(out))
    assert code == 0, text
    s = summary_of(out)
    assert (s["n_trials"], s["complete"]) == (4, 4)
    summaries = [read_summary(out / f"trial_{i:04d}") for i in range(4)]
    assert {x["blas_threads"] for x in summaries} == {"1"}  # one BLAS thread per worker
    assert len({x["pid"] for x in summaries}) == 2


@pytest.mark.slow
def test_two_search_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [subprocess.Popen([sys.executable, "-m", "rnnlab.cli", "search", "--param", LR, "--param", HS,
                               "--n-trials", "3", "--seed", str(i), "--pruner", "none", "--storage", storage,
                               "--study-name", "shared",
                               "--output", str(tmp_path / name), *FAST],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, name in enumerate(("a", "b"))]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    folders = sorted(p.name for name in ("a", "b") for p in (tmp_path / name).glob("trial_*"))
    assert folders == [f"trial_{i:04d}" for i in range(6)]  # 6 distinct trial numbers over the two processes
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_the_study(tmp_path):
    out = tmp_path / "s"
    args = [sys.executable, "-m", "rnnlab.cli", "search", "--param", LR, "--param", HS, "--n-trials", "50",
            "--output", str(out), "--pruner", "none", *TINY, "monitor=none", "train.epochs=40"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = out / "trial_0001" / "metrics.csv"  # two epochs in: a checkpoint to resume from
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    s = summary_of(out)
    assert s["this_run"]["interrupted"] is True and s["complete"] >= 1
    table = trials_of(out)
    stopped = table[table["state"] == "interrupted"]
    assert len(stopped) == 1 and stopped["reason"].iloc[0].startswith("interrupted after")
    assert s["failed"] == 0 and s["waiting"] == 1  # its retry
    # the study goes on where it stopped: the interrupted trial first, resumed in its folder
    r = run_cli(["search", "--param", LR, "--param", HS, "--n-trials", "1", "--output", str(out), *TINY,
                 "monitor=none", "train.epochs=40"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    after = summary_of(out)
    assert after["n_trials"] == s["n_trials"] and after["complete"] == s["complete"] + 1 and after["waiting"] == 0
    folder = Path(stopped["run_dir"].iloc[0])
    assert read_summary(folder)["status"] == "completed" and read_summary(folder)["resumed_from_epochs"]
