"""The run folder's files: the typed summary (strict JSON both ways), metrics.csv appended per epoch
(a torn last line dropped), the checkpoint layout with its training state, and one loader for every
kind of model. Folders written before this layout (tests/fixtures/*_format1) still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rnnlab import api
from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.record import checkpoint, metrics_log
from rnnlab.record import summary as summary_file
from rnnlab.record.summary import Summary
from rnnlab.runtime.io import strict_json
from tests.conftest import TINY

FIXTURES = Path(__file__).parents[1] / "fixtures"


# ---------------------------------------------------------------- summary.json


def test_summary_is_strict_json_with_the_reason_for_each_null(tmp_path):
    s = Summary(run_dir=str(tmp_path), status="diverged", best_val_loss=math.nan,
                test_metrics={"r2": -math.inf, "mse": 1.5})
    s["forecast"] = [1.0, math.inf]  # a task's extra entry
    text = s.to_json()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["best_val_loss"] is None and data["test_metrics"] == {"r2": None, "mse": 1.5}
    assert data["non_finite"] == {"best_val_loss": "nan", "test_metrics.r2": "-inf", "forecast[1]": "inf"}
    assert data["forecast"] == [1.0, None] and data["format_version"] == 2


def test_summary_reads_back_typed_with_extras_at_the_top_level(tmp_path):
    s = Summary(run_dir=str(tmp_path), status="completed", epochs_run=3, test_loss=0.25)
    s.update({"threshold": 0.4, "classes": ["neg", "pos"]})
    (tmp_path / "summary.json").write_text(s.to_json())
    back = summary_file.read(tmp_path)
    assert back.status == "completed" and back.epochs_run == 3 and back.test_loss == 0.25
    assert back["threshold"] == 0.4 and back.get("classes") == ["neg", "pos"] and back.get("missing", 7) == 7
    assert back.to_dict() == s.to_dict()


def test_a_summary_written_before_format_2_still_reads():
    s = summary_file.read(FIXTURES / "run_format1")
    assert s.format_version == 1 and s.status == "completed" and s.epochs_run == 2
    assert math.isnan(s.val_metrics["mape"])  # its bare NaN is accepted on reading
    assert s["n_params"] > 0 and s.dashboard is not None and s.dashboard["epochs_to_best"] == 2


def test_strict_json_refuses_what_it_cannot_write():
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        strict_json({"a": object()})


# ---------------------------------------------------------------- metrics.csv


def test_metrics_are_appended_one_line_per_epoch_and_a_torn_line_is_dropped(tmp_path):
    log = metrics_log.MetricsLog(tmp_path)
    log.start()
    log.append({"epoch": 1, "train_loss": 0.5, "val_loss": math.nan})
    size = log.path.stat().st_size
    log.append({"epoch": 2, "train_loss": 0.25, "val_loss": 0.125})
    assert log.path.read_text().count("\n") == 3 and log.path.stat().st_size > size
    frame = metrics_log.read(tmp_path)
    assert frame["epoch"].tolist() == [1, 2] and math.isnan(frame["val_loss"][0])
    with open(log.path, "a") as fh:  # a kill in the middle of the third epoch's line
        fh.write("3,0.1")
    assert metrics_log.read(tmp_path)["epoch"].tolist() == [1, 2]
    header, rows = metrics_log.read_rows(tmp_path)
    assert header == ["epoch", "train_loss", "val_loss"] and len(rows) == 2


def test_a_row_with_a_new_column_rewrites_the_header(tmp_path):
    log = metrics_log.MetricsLog(tmp_path)
    log.start()
    log.append({"epoch": 1, "val_loss": 1.0})
    log.append({"epoch": 2, "val_loss": 0.5, "extra": 3})
    frame = metrics_log.read(tmp_path)
    assert list(frame.columns) == ["epoch", "val_loss", "extra"] and math.isnan(frame["extra"][0])


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("run") / "run"
    summary = api.train([*TINY, "optim=adam", "train.early_stopping_patience=5"], d)
    assert summary.status == "completed"
    return d


def test_the_last_checkpoint_holds_the_training_state(trained):
    info, arrays = checkpoint.load_training_state(trained)
    assert info["format_version"] == 2 and info["epoch"] == 3 and info["optimizer"] == "adam"
    assert info["step"] == len(arrays["lr_trace"]) > 0
    assert set(info["streams"]) == {"data", "init", "shuffle", "dropout", "noise", "mixup"}
    assert len(info["history"]) == 3 and info["selection"]["epoch"] >= 1
    # saved after the epoch's hooks: early stopping's reference is the selection's last improvement
    early = info["callbacks"]["early_stopping"]
    best = int(np.argmin(info["history"])) + 1
    assert early["ref_epoch"] == best == info["selection"]["epoch"]
    assert early["ref_value"] == info["selection"]["value"] == min(info["history"])
    last = checkpoint.load(trained / "checkpoint_last")
    assert last.info["epoch"] == 3
    moments = {k: v for k, v in arrays.items() if k.startswith("optim:adam.")}
    assert {k.split(".", 2)[1] for k in moments} == {"m", "v"}
    assert {k.split(".", 2)[2] for k in moments} == set(last.params)  # one per parameter and slot
    assert int(arrays["optim:step"]) == info["step"]
    json.loads((trained / "checkpoint_last" / "training_state.json").read_text())  # strict JSON


def test_a_saved_random_stream_restores_exactly():
    from rnnlab.train.recorder import _stream_state, restore_stream

    rng = np.random.default_rng(12345)
    rng.standard_normal(17)  # somewhere in the middle of the stream
    state = json.loads(json.dumps(_stream_state(rng)))  # through JSON, as training_state.json holds it
    again = restore_stream(state)
    np.testing.assert_array_equal(again.standard_normal(5), rng.standard_normal(5))
    assert isinstance(state["state"]["state"], str)  # the 128-bit integers are kept exact as strings


def test_one_loader_for_every_kind_and_format(trained):
    new = checkpoint.load(trained)
    assert new.kind == "sequence" and new.info["format_version"] == 2 and isinstance(new.spec, M.ModelSpec)
    old = checkpoint.load(FIXTURES / "run_format1")
    assert old.kind == "sequence" and old.info["format_version"] == 1 and old.state == {}
    s2s = checkpoint.load(FIXTURES / "seq2seq_format1")  # format 1 called this "corrupt"
    assert s2s.kind == "seq2seq" and isinstance(s2s.spec, Q.Seq2SeqSpec) and s2s.spec.attention == "luong"
    assert set(s2s.params) == set(Q.init_params(s2s.spec, np.random.default_rng(0)))


def test_weights_of_another_architecture_are_refused(tmp_path):
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=4, src_vocab=9, tgt_vocab=9, pad_id=0)
    params = Q.init_params(spec, np.random.default_rng(0))
    checkpoint.save(tmp_path / "a", spec, params, {})
    bigger = Q.Seq2SeqSpec(cell="gru", hidden_size=5, src_vocab=9, tgt_vocab=9, pad_id=0)
    checkpoint.save(tmp_path / "b", bigger, Q.init_params(bigger, np.random.default_rng(0)), {})
    (tmp_path / "a" / "model.npz").replace(tmp_path / "b" / "model.npz")  # 4-unit weights, 5-unit spec
    with pytest.raises(checkpoint.CheckpointError, match=r"enc\.weight_ih has shape \(12, 16\), expected \(15, 16\)"):
        checkpoint.load(tmp_path / "b")
    lstm = Q.Seq2SeqSpec(cell="lstm", hidden_size=4, src_vocab=9, tgt_vocab=9, pad_id=0)
    checkpoint.save(tmp_path / "c", lstm, params, {})  # GRU weights under an LSTM spec: shapes differ
    with pytest.raises(checkpoint.CheckpointError, match="expected"):
        checkpoint.load(tmp_path / "c")
    checkpoint.save(tmp_path / "d", spec, {k: v for k, v in params.items() if k != "head.bias"}, {})
    with pytest.raises(checkpoint.CheckpointError, match="parameter names differ: missing head.bias"):
        checkpoint.load(tmp_path / "d")


def test_an_unknown_model_kind_is_one_line(tmp_path):
    spec = M.ModelSpec(cell="gru", input_size=1, hidden_size=3, output_size=1)
    checkpoint.save(tmp_path, spec, M.init_params(spec, np.random.default_rng(0)), {})
    info = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**info, "model": "transformer"}))
    with pytest.raises(checkpoint.CheckpointError, match="unknown model kind 'transformer'"):
        checkpoint.load(tmp_path)


# ---------------------------------------------------------------- readers of old run folders


def test_compare_and_report_read_a_folder_written_before_format_2(tmp_path):
    import shutil

    from rnnlab.commands.compare import compare
    from rnnlab.report.html import write_report

    old = shutil.copytree(FIXTURES / "run_format1", tmp_path / "old")
    new = tmp_path / "new"
    assert api.train([*TINY, "train.epochs=2"], new).status == "completed"
    result = compare([str(old), str(new)], output=tmp_path / "cmp")
    table = result["table"]
    assert len(table) == 2 and set(table["status"]) == {"completed"}
    write_report(old)
    html = (old / "report.html").read_text()
    assert "Metrics per epoch" in html and "Partial report" not in html  # a completed run, read in full
    assert "<td>1.079</td>" in html  # its last validation loss, from the old metrics.csv


def test_a_failure_outside_the_run_marks_its_own_folder_and_drops_an_older_runs_results(tmp_path):
    import shutil

    from rnnlab.train.recorder import record_failure

    folder = shutil.copytree(FIXTURES / "run_format1", tmp_path / "reused")  # an older run's folder
    s = record_failure(folder, "data.path does not exist", bad_input=True)
    back = summary_file.read(folder)
    assert (back.status, back.message, back.bad_input) == ("failed", "data.path does not exist", True)
    assert back.run_dir == str(folder) and back.test_metrics is None and back.epochs_run == 0
    assert s.status == "failed" and not (tmp_path / "outputs").exists()  # nothing written elsewhere
