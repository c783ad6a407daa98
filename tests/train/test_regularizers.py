"""The regularizers through `rnnlab train` (in-process `run`): penalties with their loss columns, gradient
noise, mixup, label smoothing, focal loss, early stopping with min_delta / restore_best_weights, the
one-line errors, and same seed -> same metrics."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.commands.train import run
from rnnlab.data.base import DataError
from rnnlab.train import batches as train_batches_module
from rnnlab.train import run as run_module
from rnnlab.train.tasks import reports, sequence
from tests.conftest import TINY, read_summary
from tests.data import imdb_tree as tree

FAST = [*TINY, "train.epochs=2"]
COPY_TINY = ["data=copy", "data.n_train=64", "data.n_val=16", "data.n_test=16", "data.delay=3", "data.copy_len=2",
             "arch.hidden_size=8", "arch.pooling=none", "train.epochs=2", "train.batch_size=32",
             "train.progress=false", "train.plots=false", "monitor=none"]
TIMING = ["seconds", "samples_per_s"]


def _metrics(d) -> pd.DataFrame:
    return pd.read_csv(d / "metrics.csv").drop(columns=TIMING + ["monitor_seconds"], errors="ignore")


@pytest.mark.parametrize(
    "reg,columns,absent",
    [
        ("none", [], ["l1_loss", "l2_loss"]),
        ("dropout", [], ["l1_loss", "l2_loss"]),
        ("l2", ["l2_loss"], ["l1_loss"]),
        ("l1", ["l1_loss"], ["l2_loss"]),
        ("elastic_net", ["l1_loss", "l2_loss"], []),
        ("noise", [], ["l1_loss", "l2_loss"]),
        ("mixup", [], ["l1_loss", "l2_loss"]),
    ],
)
def test_each_reg_option_runs_and_writes_its_loss_columns(tmp_path, reg, columns, absent):
    d = tmp_path / reg
    assert api.train([*FAST, f"reg={reg}"], d).status == "completed"
    m = pd.read_csv(d / "metrics.csv")
    assert read_summary(d)["status"] == "completed"
    for c in columns:
        assert c in m.columns and (m[c] > 0).all() and np.isfinite(m[c]).all()
    for c in absent:
        assert c not in m.columns


def test_l1_column_matches_the_formula(tmp_path):
    d = tmp_path / "l1"
    assert api.train([*FAST, "reg=elastic_net", "reg.l1=0.001", "reg.l2=0.01", "train.epochs=1"], d).status == \
        "completed"
    m = pd.read_csv(d / "metrics.csv")
    params = dict(np.load(d / "checkpoint/model.npz", allow_pickle=False))
    l1 = 0.001 * sum(float(np.abs(v.astype(np.float64)).sum()) for k, v in params.items() if ".weight" in k)
    assert m.loc[0, "l1_loss"] == pytest.approx(l1, rel=0.05)  # the mean over the epoch's steps


def test_regularizers_combine(tmp_path):
    d = tmp_path / "combo"
    assert api.train([*FAST, "reg=dropout", "reg.l2=1e-4", "reg.grad_noise_eta=0.01", "reg.l1=1e-5",
                      "reg.mixup_alpha=0.2"], d).status == "completed"
    assert {"l1_loss", "l2_loss"} <= set(pd.read_csv(d / "metrics.csv").columns)
    rc = compose_and_validate(["reg=dropout", "reg.l2=1e-4", "reg.grad_noise_eta=0.01"])
    assert (rc.reg.dropout, rc.reg.l2, rc.reg.grad_noise_eta, rc.reg.grad_noise_gamma) == (0.2, 1e-4, 0.01, 0.55)


def test_same_seed_same_metrics_with_noise_and_mixup(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    both = ["reg=noise", "reg.mixup_alpha=0.2"]
    assert api.train([*FAST, *both], a).status == "completed"
    assert api.train([*FAST, *both], b).status == "completed"
    pd.testing.assert_frame_equal(_metrics(a), _metrics(b))
    assert api.train([*FAST, *both, "seed=1"], c).status == "completed"
    assert not _metrics(a)["train_loss"].equals(_metrics(c)["train_loss"])


def test_noise_and_mixup_leave_the_other_random_streams_alone(monkeypatch, tmp_path):
    """Data, init, shuffling and dropout draw the same numbers whether or not noise / mixup are on."""
    seen = []
    real = train_batches_module.train_batches
    monkeypatch.setattr(train_batches_module, "train_batches", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    for i, extra in enumerate([[], ["reg.grad_noise_eta=0.1", "reg.mixup_alpha=0.4"]]):
        assert api.train([*FAST, "reg=dropout", *extra], tmp_path / str(i)).status == "completed"
    n = len(seen) // 2
    assert n == 2
    for x, y in zip(seen[:n], seen[n:], strict=True):
        for bx, by in zip(x, y, strict=True):
            np.testing.assert_array_equal(bx, by)


# ---------------------------------------------------------------- losses from the config


def test_label_smoothing_and_focal_on_the_copy_task(tmp_path):
    d = tmp_path / "focal"
    assert api.train([*COPY_TINY, "train.loss=focal", "train.focal_gamma=1.5", "train.label_smoothing=0.1",
                      "reg.mixup_alpha=0.3"], d).status == "completed"
    s = read_summary(d)
    assert s["status"] == "completed" and s["loss"] == "focal"
    d2 = tmp_path / "alpha"
    alpha = "[" + ",".join(["1.0"] * 9) + "]"  # 8 symbols + the blank
    s = api.train([*COPY_TINY, "train.loss=focal", f"train.focal_alpha={alpha}", "train.epochs=1"], d2)
    assert s.status == "completed" and s["loss"] == "focal"


def test_label_smoothing_is_in_the_training_loss_only():
    from types import SimpleNamespace

    rc = compose_and_validate(["data=copy", "train.loss=cross_entropy", "train.label_smoothing=0.2"])
    data = SimpleNamespace(default_loss="cross_entropy")
    logits, labels = np.random.default_rng(0).standard_normal((4, 3)), np.array([0, 1, 2, 1])
    _, eval_fn = sequence.loss_fn(rc, data)
    _, train_fn = sequence.loss_fn(rc, data, smoothing=True)
    from rnnlab.engine import losses

    assert eval_fn(logits, labels)[0] == losses.softmax_cross_entropy(logits, labels)[0]
    assert train_fn(logits, labels)[0] == losses.softmax_cross_entropy(logits, labels, label_smoothing=0.2)[0]


def _one_line(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "override,message",
    [
        ("reg.l1=-0.1", "reg.l1 must be >= 0.0 (got -0.1)"),
        ("reg.grad_noise_eta=-1", "reg.grad_noise_eta must be >= 0.0"),
        ("reg.grad_noise_gamma=-0.5", "reg.grad_noise_gamma must be >= 0.0"),
        ("reg.mixup_alpha=-1", "reg.mixup_alpha must be >= 0.0"),
        ("train.early_stopping_min_delta=-1", "train.early_stopping_min_delta must be >= 0.0"),
        ("train.label_smoothing=1.5", "train.label_smoothing must be in [0, 1)"),
        ("train.focal_gamma=-2", "train.focal_gamma must be >= 0.0"),
        ("train.focal_alpha=2", "train.focal_alpha must be null, a number in [0, 1]"),
        ("train.loss=hinge", "train.loss must be one of"),
    ],
)
def test_bad_ranges_exit_2_with_one_line(tmp_path, capsys, override, message):
    assert run([*FAST, override, f"hydra.run.dir={tmp_path / 'x'}"]) == 2
    _one_line(capsys, message)
    assert not (tmp_path / "x").exists()  # caught before launch


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.loss=focal", "train.loss=focal needs a classification data set"),
        ("train.loss=bce", "train.loss=bce needs two classes, but data 'sine' is regression (use mse, mae or huber"),
        ("train.loss=cross_entropy", "train.loss=cross_entropy needs three or more classes, but data 'sine' is "
                                     "regression"),
        ("train.label_smoothing=0.1", "train.label_smoothing needs loss bce, cross_entropy or focal (got mse)"),
    ],
)
def test_loss_options_that_do_not_fit_the_data_are_one_line(tmp_path, override, message):
    with pytest.raises(DataError) as exc:
        api.train(api.compose([*FAST, override]), tmp_path / "x")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_loss_that_does_not_fit_exits_2_with_one_line(tmp_path, capsys):
    """The same refusal through the command line: exit code 2, one Error line."""
    assert run([*FAST, "train.loss=bce", f"hydra.run.dir={tmp_path / 'x'}"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "train.loss=bce needs two classes" in lines[0], err


def test_mixup_refuses_token_inputs(tmp_path):
    acl = tree.write_folder(tmp_path / "imdb", 6)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(["data=imdb", "data.vocab_size=50", "data.maxlen=20", "data.embed_dim=8", "arch=gru",
                    "arch.hidden_size=8", "train.progress=false", "reg=mixup", f"data.path={acl}",
                    f"hydra.run.dir={tmp_path / 'r'}"])
    assert code == 2
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err.getvalue()
    assert "reg.mixup_alpha needs float inputs" in lines[0] and "token ids" in lines[0]
    assert "Traceback" not in err.getvalue()


# ---------------------------------------------------------------- early stopping on a constructed run

VAL = [1.0, 0.8, 0.79, 0.85, 0.9, 0.95, 0.99, 1.2]


def _scripted_run(monkeypatch, tmp_path, *overrides):
    """A run whose validation losses are VAL, epoch by epoch; returns (summary, params seen per epoch,
    params the test evaluation used)."""
    rc = compose_and_validate([*FAST, "train.epochs=8", *overrides])
    real = sequence.evaluate
    record = {"epoch_params": [], "test_params": None}

    def fake(spec, params, split, loss_fn, batch_size, kind="regression", state=None):
        loss, pred = real(spec, params, split, loss_fn, batch_size, kind, state=state)
        if split is data_holder["val"]:
            record["epoch_params"].append({k: v.copy() for k, v in params.items()})
            return VAL[len(record["epoch_params"]) - 1], pred
        record["test_params"] = {k: v.copy() for k, v in params.items()}
        return loss, pred

    data_holder = {}
    real_load = run_module.registry.load

    def load(*a, **k):
        data = real_load(*a, **k)
        data_holder["val"] = data.val
        return data

    monkeypatch.setattr(sequence, "evaluate", fake)
    monkeypatch.setattr(reports, "evaluate", fake)
    monkeypatch.setattr(run_module.registry, "load", load)
    summary = run_module.train(rc, tmp_path / "run")
    return summary, record["epoch_params"], record["test_params"]


def _same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a)


def test_early_stopping_without_min_delta(monkeypatch, tmp_path):
    s, epochs, tested = _scripted_run(monkeypatch, tmp_path, "train.early_stopping_patience=2")
    # best 0.79 at epoch 3; epochs 4 and 5 do not improve -> stop after epoch 5
    assert s["epochs_run"] == 5 and s["best_epoch"] == 3
    assert s["message"] == "early stopping at epoch 5 (best epoch 3)"
    assert s["test_weights"] == "best" and s["test_weights_epoch"] == 3
    assert _same(tested, epochs[2]) and not _same(tested, epochs[4])
    with np.load(tmp_path / "run/checkpoint/model.npz") as z:
        assert _same(epochs[2], dict(z))


def test_early_stopping_min_delta_and_restore_best(monkeypatch, tmp_path):
    s, epochs, tested = _scripted_run(monkeypatch, tmp_path, "train.early_stopping_patience=2",
                                      "train.early_stopping_min_delta=0.05")
    # 0.79 is the best value but not 0.05 better than 0.8: the patience counts from epoch 2
    assert s["epochs_run"] == 4 and s["best_epoch"] == 3
    assert _same(tested, epochs[2])


def test_restore_best_weights_false_tests_the_last_weights(monkeypatch, tmp_path):
    s, epochs, tested = _scripted_run(monkeypatch, tmp_path, "train.early_stopping_patience=3",
                                      "train.restore_best_weights=false")
    assert s["epochs_run"] == 6 and s["best_epoch"] == 3
    assert s["test_weights"] == "last" and s["test_weights_epoch"] == 6
    assert _same(tested, epochs[5])
    with np.load(tmp_path / "run/checkpoint/model.npz") as z:  # the checkpoint stays the best epoch
        assert _same(epochs[2], dict(z))
    with np.load(tmp_path / "run/checkpoint_last/model.npz") as z:
        assert _same(epochs[5], dict(z))
