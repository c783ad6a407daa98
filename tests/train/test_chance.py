"""Runs that never leave chance level: the check (`train/chance.py`) against the majority class and the naive
forecast, its warning in summary.json, on the console, in the summary table and report.html; train.restarts
(`train/attempts.py`): new initial weights from the seed stream [seed, attempt], every attempt recorded, the
best by validation kept, and resumable inside any attempt; and the data's counts line at the start of a run."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from rnnlab import api
from rnnlab.config.validate import ConfigError
from rnnlab.report import notes
from rnnlab.train import chance
from rnnlab.train.attempts import streams_for
from rnnlab.train.callbacks import Callback
from rnnlab.train.tasks.base import Streams
from tests.train.test_resume import TINY, _same_run

STUCK = [*TINY, "optim.lr=1e-9"]  # tiny sine forecasting that cannot learn: the naive forecast wins
FLAT = ["arch.hidden_size=4", "train.epochs=3", "train.batch_size=16", "train.progress=false", "train.plots=false",
        "monitor=none"]


def _console():
    buf = io.StringIO()
    return Console(file=buf, width=300, color_system=None), buf


def _seqfile(path, learnable: bool, n: int = 80, seed: int = 0):
    """Two classes of 5-step sequences: separable (class mean -1 / +1), or labels unrelated to the noise (40 %
    'yes')."""
    rng = np.random.default_rng(seed)
    lines = ["label," + ",".join(f"t{j}" for j in range(5))]
    for i in range(n):
        c = i % 2 if learnable else int(rng.random() < 0.4)
        mu = (2 * c - 1) if learnable else 0.0
        lines.append(f"{'yes' if c else 'no'}," + ",".join(f"{mu + 0.3 * rng.standard_normal():.3f}"
                                                           for _ in range(5)))
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- the check itself


def _split(y, mask=None):
    return SimpleNamespace(y=np.asarray(y), target_mask=mask)


def _fit(rows, epoch, params=None):
    return SimpleNamespace(rows=rows, selection=SimpleNamespace(epoch=epoch, params=params, state={}))


def test_classification_is_at_chance_within_one_sample_or_half_a_point_of_the_majority_class():
    data = SimpleNamespace(kind="multiclass", train=_split([0, 0, 0, 1, 2]), val=_split([0] * 6 + [1] * 4))
    task = SimpleNamespace(model_kind="sequence", data=data)
    at = chance.check(task, _fit([{"val_accuracy": 0.3}, {"val_accuracy": 0.7}], 2))  # 0.6 + one sample of 10
    assert (at.metric, at.score, at.baseline, at.baseline_score, at.epoch, at.chance) == \
        ("accuracy", 0.7, "majority_class", 0.6, 2, True)
    assert not chance.check(task, _fit([{"val_accuracy": 0.71}], 1)).chance
    assert chance.warning(at.finding()) == ("the run ended at chance level: validation accuracy 0.7 of the best "
                                            "epoch (2) is not above the majority_class baseline's 0.6")
    big = SimpleNamespace(kind="binary", train=_split([1, 1, 0]), val=_split([1] * 600 + [0] * 400))
    task = SimpleNamespace(model_kind="sequence", data=big)
    assert chance.check(task, _fit([{"val_accuracy": 0.604}], 1)).chance  # half a point: 1/1000 is less
    assert not chance.check(task, _fit([{"val_accuracy": 0.606}], 1)).chance
    assert chance.check(task, _fit([{"val_accuracy": 0.9}], 0)) is None  # no completed best epoch: no verdict
    steps = SimpleNamespace(kind="multiclass", train=_split([[1, 1, 0]], np.ones((1, 3))),
                            val=_split([[2, 2, 1, 9]], np.array([[1, 1, 1, 0]])))  # masked step 9 does not count
    assert chance.check(SimpleNamespace(model_kind="sequence", data=steps),
                        _fit([{"val_accuracy": 1.0}], 1)).baseline_score == pytest.approx(1 / 3)


def test_regression_compares_the_best_weights_val_mae_in_original_units_with_the_naive_forecast(tmp_path):
    from rnnlab.data import registry
    from rnnlab.train import tasks

    rc = api.compose(TINY)
    data = registry.load(rc.data, np.random.default_rng(0), np.dtype("float32"))
    task = tasks.for_data(rc, data, Streams.from_seed(0))
    params, state = task.init_model(np.dtype("float32"))
    fit = SimpleNamespace(rows=[{"val_loss": 1.0}], selection=SimpleNamespace(epoch=1, params=params, state=state))
    from rnnlab.train.tasks.predict import predict_split

    truth = data.targets_original("val")
    mae = float(np.mean(np.abs(data.to_original(predict_split(task.spec, params, data.val, 64, state), "val") - truth)))
    naive = float(np.mean(np.abs(data.baselines["naive"]["val"] - truth)))
    v = chance.check(task, fit)  # untrained weights against the naive forecast
    assert (v.metric, v.baseline, v.chance) == ("mae", "naive", True)
    assert v.score == pytest.approx(mae, rel=1e-9) and v.baseline_score == pytest.approx(naive, rel=1e-12)
    data.baselines["naive"] = {"val": truth + 10 * mae, "test": truth}  # the preferred name, and a worse forecast
    v = chance.check(task, fit)
    assert (v.baseline, v.chance) == ("naive", False) and v.baseline_score == pytest.approx(10 * mae)
    assert "is below the naive baseline's" in v.finding()
    data.baselines.clear()
    assert chance.check(task, fit) is None  # nothing to compare with


# ---------------------------------------------------------------- the warning, end to end


def test_a_stuck_classifier_warns_and_a_learning_one_does_not(tmp_path):
    console, buf = _console()
    path = _seqfile(tmp_path / "stuck.csv", learnable=False)
    s = api.train(["data=seqfile", f"data.path={path}", *FLAT, "optim.lr=1e-9"], tmp_path / "stuck", console=console)
    base = s.baselines["majority_class"]["val_metrics"]["accuracy"]
    assert s.status == "completed" and s.chance_check["chance"] and s.chance_check["baseline_score"] == base
    expected = (f"the run ended at chance level: validation accuracy (threshold 0.5) "
                f"{s.chance_check['val_score']:.4g} of the best epoch ({s.best_epoch}) is not above the majority_class "
                f"baseline's {base:.4g}; train.restarts=N retrains from new initial weights when this happens")
    assert s.warnings == [expected]
    on_disk = json.loads((tmp_path / "stuck" / "summary.json").read_text())
    assert on_disk["warnings"] == [expected] and on_disk["attempts"] is None  # restarts off: no attempts
    text = buf.getvalue()
    assert text.splitlines()[0] == ("data: 56 training, 12 validation, 12 test sequences; format wide "
                                     "(no column repeats like a sequence id: one sequence per row)")
    assert f"warning: {expected}" in text.replace("\n", "")

    console, buf = _console()
    path = _seqfile(tmp_path / "learns.csv", learnable=True)
    s = api.train(["data=seqfile", f"data.path={path}", *FLAT, "optim.lr=0.05"], tmp_path / "learns", console=console)
    assert s.warnings == [] and s.chance_check["chance"] is False and s.chance_check["val_score"] > 0.9
    assert "warning" not in buf.getvalue()
    assert (s.n_train, s.n_val, s.n_test, s.sample_unit, s.n_test_origins, s.data_format) == \
        (56, 12, 12, "sequences", None, "wide")


def test_the_report_and_the_summary_table_show_the_warnings_counts_and_attempts(tmp_path):
    from rnnlab.record.summary import Summary
    from rnnlab.report.html import render_report
    from rnnlab.report.tables import summary_table

    d = tmp_path / "run"
    d.mkdir()
    attempts = [{"attempt": a, "seed_stream": [0, a], "status": "completed", "best_epoch": 1, "best_val_loss": 0.5,
                 "val_metric": "mae", "val_score": 2.0 - a / 10, "baseline": "naive", "baseline_score": 1.0,
                 "chance": True} for a in range(3)]
    s = Summary(status="completed", run_dir=str(d), task="regression", n_train=2100, n_val=450, n_test=450,
                sample_unit="windows", n_test_origins=450, warnings=["the run ended at chance level: <x & y>"],
                attempts=attempts, kept_attempt=2)
    (d / "summary.json").write_text(s.to_json())
    page, _ = render_report(d)
    box = page[page.index('id="warnings"'):]
    assert box.startswith('id="warnings"><strong>Warnings:</strong><ul><li>the run ended at chance level: '
                          "&lt;x &amp; y&gt;</li></ul>")
    assert "data: 2,100 training, 450 validation, 450 test windows (450 forecast origins)" in page
    assert "attempts: 3 (3 at chance level), kept attempt 2 (train.restarts)" in page
    assert page.count('<tr class="model"><td class="l">2</td>') == 1  # the kept attempt's row is marked
    console, buf = _console()
    console.print(summary_table(s))
    caption = " ".join(buf.getvalue().split("┘", 1)[1].split())  # under the table, wrapped to its width
    assert caption.endswith(" data: 2,100 training, 450 validation, 450 test windows (450 forecast origins) "
                            "attempts: 3 (3 at chance level), kept attempt 2 (train.restarts) "
                            "warning: the run ended at chance level: <x & y>")


# ---------------------------------------------------------------- train.restarts


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    """A stuck forecasting run with train.restarts=2: three attempts, all at chance level."""
    d = tmp_path_factory.mktemp("restarts") / "whole"
    console, buf = _console()
    s = api.train([*STUCK, "train.restarts=2"], d, console=console)
    return s, d, buf.getvalue()


def test_restarts_record_every_attempt_and_keep_the_best_by_validation(restarted):
    s, d, text = restarted
    assert [a["attempt"] for a in s.attempts] == [0, 1, 2] and all(a["chance"] for a in s.attempts)
    assert [a["seed_stream"] for a in s.attempts] == [[0, 0], [0, 1], [0, 2]]
    losses = [a["best_val_loss"] for a in s.attempts]
    assert s.kept_attempt == int(np.argmin(losses)) == 1  # attempt 1 is the best here; attempts differ
    kept = s.attempts[1]
    assert (s.best_epoch, s.best_val_loss, s.status) == (kept["best_epoch"], kept["best_val_loss"], "completed")
    m = pd.read_csv(d / "metrics.csv")
    assert m["attempt"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and m["epoch"].tolist() == [1, 2, 3] * 3
    for a in s.attempts:  # each attempt's curve is kept
        assert m[m["attempt"] == a["attempt"]]["val_loss"].min() == a["best_val_loss"]
    info = json.loads((d / "checkpoint" / "model.json").read_text())
    assert (info["attempt"], info["epoch"]) == (1, kept["best_epoch"])  # the final checkpoint is the kept one's
    last = json.loads((d / "checkpoint_last" / "training_state.json").read_text())["callbacks"]["restarts"]
    assert last["attempt"] == 1 and [r["attempt"] for r in last["others"]] == [0, 2]
    assert not list(d.glob("attempt_*")) and not list(d.glob(".attempt_*"))  # the snapshots are gone
    assert s.warnings == [f"the run ended at chance level: {kept['finding']} (kept attempt 1 of 3, train.restarts=2)"]
    assert "attempt 0 ended at chance level (validation mae" in text and "retraining from new initial weights " \
        "(attempt 1, at most 2)" in text and "attempt 2, at most 2" in text


def test_an_attempts_streams_are_drawn_from_seed_and_attempt():
    first = Streams.from_seed(7)
    assert streams_for(7, 0, first) == (first, [])
    a, extra = streams_for(7, 2, first)
    b, _ = streams_for(7, 2, first)
    assert a.init.random() == b.init.random() != Streams.from_seed(7).init.random()  # reproducible, and new
    assert np.random.SeedSequence([7, 0]).generate_state(2).tolist() == \
        np.random.SeedSequence(7).generate_state(2).tolist()  # seed stream [seed, 0] is the run's own
    assert len(extra) == 8


class InterruptIn(Callback):
    """Ctrl-C after optimizer step `step` of attempt `attempt` (each attempt's fit starts the hooks again)."""

    def __init__(self, attempt: int, step: int):
        self.attempt, self.step, self.fits = attempt, step, -1

    def on_fit_start(self, fit):
        self.fits += 1

    def on_step_end(self, fit, info):
        if self.fits == self.attempt and info.step == self.step:
            raise KeyboardInterrupt


def test_a_run_interrupted_in_its_last_attempt_resumes_into_it_and_equals_the_uninterrupted_one(restarted,
                                                                                                   tmp_path):
    """Stopped in attempt 2 (after the kept attempt 1 was snapshot): resumed there with the records and rows of
    attempts 0 and 1, it ends as the uninterrupted run: metrics, best and last weights, attempts, test."""
    whole, wd, _ = restarted
    d = tmp_path / "run"
    first = api.train([*STUCK, "train.restarts=2"], d, callbacks=[InterruptIn(2, 4)])
    assert first.status == "interrupted" and first.epochs_run == 1
    assert [a["attempt"] for a in first.attempts] == [0, 1, 2] and (d / "attempt_1").is_dir()
    again = api.train([*STUCK, "train.restarts=2"], d, resume=True)
    assert again.status == "completed" and again["resumed_from_epochs"] == [1]
    _same_run(wd, d)
    assert again.attempts == whole.attempts and again.kept_attempt == whole.kept_attempt == 1
    assert again.test_metrics == whole.test_metrics and again.warnings == whole.warnings


@pytest.mark.parametrize("value, message", [
    ("-1", "train.restarts must be >= 0 (got -1)"),
    ("1.5", "train.restarts: Value '1.5' of type 'float' could not be converted to Integer"),
    ("two", "train.restarts: Value 'two' could not be converted to Integer"),
])
def test_bad_restarts_are_one_line(value, message, tmp_path, capsys):
    with pytest.raises(ConfigError) as exc:
        api.compose([f"train.restarts={value}"])
    assert str(exc.value) == message


def test_bad_restarts_on_the_command_line_exit_2_and_write_nothing(tmp_path, capsys):
    from rnnlab.commands.train import run

    assert run([*TINY, "train.restarts=-1", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["Error: train.restarts must be >= 0 (got -1)"]
    assert not (tmp_path / "r").exists()


def test_one_forecast_origin_is_singular():
    s = {"n_train": 169, "n_val": 13, "n_test": 1, "sample_unit": "windows", "n_test_origins": 1}
    assert notes.data_line(s) == "data: 169 training, 13 validation, 1 test windows (1 forecast origin)"
