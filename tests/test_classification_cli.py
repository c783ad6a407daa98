"""`rnnlab train` on classification data end to end: IMDB reviews (binary, with the report files),
the copy task (per-step targets), a multiclass CSV, and the one-line errors for a model that
does not fit the data."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.train import run
from tests.conftest import read_summary, run_cli
from tests.data import imdb_tree as tree

N_PER = 12
IMDB_TINY = [
    "data=imdb", "data.vocab_size=50", "data.maxlen=20", "data.embed_dim=8", "arch=bigru", "arch.hidden_size=8",
    "arch.pooling=max", "train.epochs=2", "train.batch_size=8", "train.progress=false", "monitor=none",
]
COPY_TINY = ["data=copy", "data.n_train=64", "data.n_val=16", "data.n_test=16", "data.delay=3", "data.copy_len=2",
             "arch.hidden_size=8", "train.epochs=2", "train.batch_size=32", "train.progress=false", "monitor=none"]
SINE_TINY = ["data.length=400", "data.n_in=12", "arch.hidden_size=8", "train.epochs=1", "train.progress=false",
             "monitor=none"]


@pytest.fixture(scope="module")
def acl(tmp_path_factory):
    return tree.write_folder(tmp_path_factory.mktemp("imdb"), N_PER)


@pytest.fixture(scope="module")
def imdb_run(acl, tmp_path_factory):
    """One tiny IMDB run through `run`, the function behind the Typer command (stderr captured).

    Plots are off here (drawing them doubles the run's time); the slow real-CLI test checks the
    plot files of a run, test_classification_plots the drawing of the new ones.
    """
    run_dir = tmp_path_factory.mktemp("imdb_run") / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run([*IMDB_TINY, "train.plots=false", f"data.path={acl}", f"hydra.run.dir={run_dir}"])
    return code, err.getvalue(), run_dir


# ---------------------------------------------------------------- IMDB: binary


def test_imdb_run_completes_with_binary_metrics(imdb_run):
    code, err, d = imdb_run
    assert code == 0, err
    assert "Traceback" not in err
    s = read_summary(d)
    assert s["status"] == "completed" and s["task"] == "binary" and s["loss"] == "bce"
    assert s["classes"] == ["neg", "pos"]
    assert s["n_test"] == 2 * N_PER and s["n_train"] + s["n_val"] == 2 * N_PER
    tm = s["test_metrics"]
    assert set(tm) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "confusion", "threshold"}
    (tn, fp), (fn, tp) = tm["confusion"]
    assert tn + fp + fn + tp == 2 * N_PER and fn + tp == N_PER
    assert tm["accuracy"] == pytest.approx((tn + tp) / (2 * N_PER))
    assert 0 <= tm["roc_auc"] <= 1
    # no train.threshold: it comes from the validation split, and the test metrics use it
    assert s["threshold_source"] == "validation accuracy"
    assert tm["threshold"] == s["threshold"] == s["val_metrics"]["threshold"]
    assert s["baselines"]["majority_class"]["test_metrics"]["accuracy"] == pytest.approx(0.5)
    assert "val_metrics" in s["baselines"]["majority_class"]
    # the summary table shows classification columns and the threshold
    assert "ROC-AUC" in err and "threshold" in err


def test_imdb_predictions_csv(imdb_run, acl):
    *_, d = imdb_run
    s = read_summary(d)
    p = pd.read_csv(d / "predictions.csv", dtype={"review": str})
    assert list(p.columns) == ["sample", "target", "prediction", "prob", "review", "rating", "tokens"]
    assert len(p) == 2 * N_PER and p["sample"].tolist() == list(range(2 * N_PER))
    # one row per test review, each review once, labelled by its folder
    names = {f"{lab}/{f.stem}" for lab in ("neg", "pos") for f in (acl / "test" / lab).glob("*.txt")}
    rows = {f"{'pos' if t else 'neg'}/{r}" for t, r in zip(p["target"], p["review"], strict=True)}
    assert rows == names
    np.testing.assert_array_equal(p["target"], (p["rating"] >= 7).astype(int))
    assert p["prob"].between(0, 1).all()
    np.testing.assert_array_equal(p["prediction"], (p["prob"] >= s["threshold"]).astype(int))
    # the confusion matrix in the summary is the one of this file
    (tn, fp), (fn, tp) = s["test_metrics"]["confusion"]
    assert tp == int(((p["prediction"] == 1) & (p["target"] == 1)).sum())
    assert fp == int(((p["prediction"] == 1) & (p["target"] == 0)).sum())
    assert (p["tokens"] > 0).all()


def test_imdb_most_wrong_csv(imdb_run):
    *_, d = imdb_run
    p = pd.read_csv(d / "predictions.csv")
    w = pd.read_csv(d / "most_wrong.csv")
    assert "text" in w.columns and "confidence" in w.columns
    wrong = p[p["prediction"] != p["target"]]
    assert len(w) == min(25, len(wrong))
    assert (w["prediction"] != w["target"]).all()
    assert set(w["sample"]) <= set(wrong["sample"])
    conf = np.where(w["prediction"] == 1, w["prob"], 1 - w["prob"])
    np.testing.assert_allclose(w["confidence"], conf)
    assert (np.diff(w["confidence"].to_numpy()) <= 0).all()  # most confident mistakes first
    # the text is the review's own
    for _, row in w.iterrows():
        assert f"idtest{'pos' if row['target'] else 'neg'}" in row["text"].lower()


def test_imdb_metrics_and_checkpoint(imdb_run):
    *_, d = imdb_run
    assert not (d / "plots").exists()  # train.plots=false
    m = pd.read_csv(d / "metrics.csv")
    assert "val_accuracy" in m.columns and m["epoch"].tolist() == [1, 2]
    assert m["val_accuracy"].between(0, 1).all()
    info = json.loads((d / "checkpoint" / "model.json").read_text())
    # the tiny training part has fewer than 50 distinct words: the vocabulary is what there is
    assert info["spec"]["vocab_size"] == len(info["data"]["vocab"]) <= 50
    assert info["spec"]["pooling"] == "max" and info["task"] == "binary"


def test_classification_plots(imdb_run, tmp_path):
    """The confusion, ROC and PR plots as the trainer asks for them (curves built as classify.py does)."""
    from rnnlab.analysis import metrics as mt
    from rnnlab.report import plots

    *_, d = imdb_run
    p = pd.read_csv(d / "predictions.csv")
    rows = pd.read_csv(d / "metrics.csv").to_dict("records")
    y, prob = p["target"].to_numpy(), p["prob"].to_numpy()
    m = read_summary(d)["test_metrics"]
    fpr, tpr, _ = mt.roc_curve(y, prob)
    prec, rec, _ = mt.pr_curve(y, prob)
    curves = {"roc": (fpr, tpr, m["roc_auc"]), "pr": (rec, prec, m["average_precision"]),
              "confusion": (np.array(m["confusion"]), ["neg", "pos"])}
    made = plots.save_run_plots(tmp_path, rows, [1e-3] * 6, 3, None, curves=curves)
    names = sorted(f.name for f in made)
    assert names == ["confusion.png", "loss.png", "lr.png", "pr.png", "roc.png"]
    for f in made:
        assert f.stat().st_size > 1000 and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a multiclass confusion matrix with many classes draws too
    cm = np.arange(36).reshape(6, 6)
    assert plots.confusion_plot(cm, [f"c{i}" for i in range(6)], tmp_path / "cm6.png").is_file()


@pytest.mark.slow
def test_imdb_through_the_real_cli(acl, tmp_path):
    """The same run through `python -m rnnlab.cli train`, plots included (a fresh interpreter: ~6 s)."""
    d = tmp_path / "run"
    res = run_cli(["train", *IMDB_TINY, f"data.path={acl}", f"hydra.run.dir={d}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "Run summary" in res.stderr
    s = read_summary(d)
    assert s["status"] == "completed" and s["task"] == "binary"
    for f in ("predictions.csv", "most_wrong.csv", "metrics.csv", "plots/confusion.png", "plots/roc.png",
              "plots/pr.png", "plots/loss.png", "checkpoint/model.npz"):
        assert (d / f).is_file(), f
    assert not (d / "plots" / "predictions.png").exists()  # the regression plot does not apply


def test_monitor_val_accuracy_and_fixed_threshold(acl, tmp_path):
    d = tmp_path / "run"
    # with this seed the validation accuracy tops out at epoch 2 while the validation loss keeps
    # falling to epoch 5, so monitoring the accuracy picks another checkpoint than the loss would
    args = [*IMDB_TINY, f"data.path={acl}", "data.val_frac=0.25", "train.epochs=5", "optim.lr=0.01",
            "train.monitor=val_accuracy", "train.threshold=0.5", "train.plots=false"]
    assert api.train(args, d).status == "completed"
    s = read_summary(d)
    assert s["monitored_metric"] == "val_accuracy"
    m = pd.read_csv(d / "metrics.csv")
    best = int(m["epoch"][m["val_accuracy"].to_numpy().argmax()])  # the first epoch with the best accuracy
    assert s["best_epoch"] == best
    assert s["best_val_loss"] == pytest.approx(m["val_loss"][best - 1])
    info = json.loads((d / "checkpoint" / "model.json").read_text())
    assert info["epoch"] == best
    assert info["val_accuracy"] == pytest.approx(m["val_accuracy"].max())
    # the configured threshold is used as given
    assert s["threshold"] == 0.5 and s["threshold_source"] == "config"
    assert s["test_metrics"]["threshold"] == 0.5 and s["val_metrics"]["threshold"] == 0.5
    assert s["test_metrics"]["accuracy"] == s["test_metrics"]["accuracy_at_0.5"]
    p = pd.read_csv(d / "predictions.csv")
    np.testing.assert_array_equal(p["prediction"], (p["prob"] >= 0.5).astype(int))


def test_missing_imdb_path_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "500")  # the path must not be wrapped
    missing = tmp_path / "no_such_aclImdb"
    assert run([*IMDB_TINY, f"data.path={missing}", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert "IMDB data not found" in err and str(missing) in err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "IMDB data not found" in ln]
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert not (tmp_path / "r").exists()  # bad input leaves no run folder


# ---------------------------------------------------------------- per-step targets: copy


def test_copy_task_with_pooling_none(tmp_path):
    d = tmp_path / "copy"
    assert api.train([*COPY_TINY, "arch.pooling=none", "train.plots=false"], d).status == "completed"
    s = read_summary(d)
    assert s["status"] == "completed" and s["task"] == "multiclass"
    tm = s["test_metrics"]
    assert 0 <= tm["sequence_accuracy"] <= tm["accuracy"] <= 1
    n_cls = 8 + 1
    assert np.array(tm["confusion"]).shape == (n_cls, n_cls)
    assert np.array(tm["confusion"]).sum() == 16 * 2  # the answer steps of the 16 test sequences
    assert "val_accuracy" in pd.read_csv(d / "metrics.csv").columns
    assert not (d / "predictions.csv").exists()  # no per-sample table for per-step targets


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_copy_without_pooling_none_exits_2(tmp_path, capsys):
    assert run([*COPY_TINY, f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    _one_line_error(capsys, "arch.pooling=none", "data 'copy'")


def test_sine_with_pooling_none_exits_2(tmp_path, capsys):
    assert run([*SINE_TINY, "arch.pooling=none", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    _one_line_error(capsys, "arch.pooling=none", "one target per sequence")


def test_regression_with_monitor_val_accuracy_exits_2(tmp_path, capsys):
    assert run([*SINE_TINY, "train.monitor=val_accuracy", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    _one_line_error(capsys, "train.monitor=val_accuracy", "classification")


# ---------------------------------------------------------------- multiclass CSV


def test_seqfile_multiclass_run(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["ant", "bee", "cat"]
    lines = ["label," + ",".join(f"t{j}" for j in range(6))]
    for i in range(30):
        c = i % 3
        n = 3 + i % 4
        cells = [f"{c + 0.3 * rng.standard_normal():.3f}" for _ in range(n)] + [""] * (6 - n)
        lines.append(f"{classes[c]}," + ",".join(cells))
    path = tmp_path / "seqs.csv"
    path.write_text("\n".join(lines) + "\n")
    d = tmp_path / "run"
    args = ["data=seqfile", f"data.path={path}", "arch.hidden_size=8", "train.epochs=2", "train.batch_size=8",
            "train.progress=false", "train.plots=false", "monitor=none"]
    assert api.train(args, d).status == "completed"
    s = read_summary(d)
    assert s["status"] == "completed" and s["task"] == "multiclass" and s["classes"] == classes
    assert set(s["test_metrics"]) >= {"accuracy", "precision", "recall", "f1", "confusion"}
    p = pd.read_csv(d / "predictions.csv")
    assert list(p.columns[:3]) == ["sample", "target", "prediction"]
    assert {f"prob_{c}" for c in classes} <= set(p.columns)
    probs = p[[f"prob_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(p["prediction"], probs.argmax(axis=1))
    assert len(p) == s["n_test"]
    assert not (d / "most_wrong.csv").exists()
