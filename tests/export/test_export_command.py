"""`rnnlab export`: the manifest every export holds, the folder written whole or not at all, and the one-line
refusals (not a run, unknown format, an output folder that is not an export)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from rnnlab import api
from rnnlab.commands.export import run as export_cmd
from rnnlab.train.callbacks import Callback
from tests.conftest import TINY


def _cmd(*args, **kw):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = export_cmd(*args, **kw)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("export") / "run"
    api.train([*TINY, "train.epochs=1", "data.n_out=2"], d)
    return d


def test_the_json_manifest_says_what_the_model_is_and_how_to_feed_it(run_dir, tmp_path):
    code, err = _cmd(str(run_dir), "json", str(tmp_path / "out"))
    assert code == 0, err
    m = json.loads((tmp_path / "out" / "model.json").read_text())
    assert m["format_version"] == 1 and m["model"]["kind"] == "sequence" and m["model"]["cell"] == "lstm"
    assert m["model"]["gate_order"] == ["i", "f", "g", "o"] and m["model"]["spec"]["output_size"] == 2
    assert m["inputs"]["x"]["shape"] == ["batch", "seq", 1] and m["outputs"]["task"] == "regression"
    assert m["preprocessing"]["state"]["n_in"] == 12 and set(m["preprocessing"]["state"]["scaler"]) == {"mean", "std"}
    assert m["summary"]["status"] == "completed" and m["source"]["epoch"] == 1
    assert len(m["source"]["checkpoint_sha256"]) == 64 and m["formats"] == {"json": {"files": ["model.json"]}}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json"]


@pytest.mark.parametrize("fmt, words", [("onnx,keras2", "unknown export format 'keras2'"), (",", "at least one")])
def test_bad_formats_are_one_line(run_dir, tmp_path, fmt, words):
    code, err = _cmd(str(run_dir), fmt, str(tmp_path / "out"))
    assert code == 2 and words in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_not_a_run_and_a_foreign_output_folder_are_one_line(run_dir, tmp_path):
    code, err = _cmd(str(tmp_path), "json", None)
    assert code == 2 and "not a run folder" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, err = _cmd(str(run_dir), "json", str(tmp_path / "mine"))
    assert code == 2 and "exists and is not an export" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_failing_format_leaves_nothing_and_an_old_export_stays(run_dir, tmp_path, monkeypatch):
    from rnnlab.export import manifest

    out = tmp_path / "out"
    assert _cmd(str(run_dir), "json", str(out))[0] == 0
    before = (out / "model.json").read_text()

    def broken(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest, "write_manifest", broken)
    code, err = _cmd(str(run_dir), "json", str(out))
    assert code == 2 and "No space left on device" in err
    assert (out / "model.json").read_text() == before  # the old export untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


class _BlowUpInEpoch2(Callback):
    """Makes the run diverge for real in its second epoch: the parameters become inf after an update."""

    def on_step_end(self, fit, info):
        if info.epoch == 1:
            fit.params["head.weight"][...] = float("inf")


def test_a_diverged_run_exports_its_last_good_checkpoint_and_says_so(tmp_path):
    d = tmp_path / "div"
    s = api.train([*TINY, "train.epochs=3", "data.n_out=2"], d, callbacks=[_BlowUpInEpoch2()])
    assert s.status == "diverged"
    out = io.StringIO()
    from rich.console import Console

    assert export_cmd(str(d), "json", str(tmp_path / "out"), console=Console(file=out, width=200)) == 0
    assert "run status diverged: exporting its last good checkpoint (the selected weights, epoch 1)" in out.getvalue()
    m = json.loads((tmp_path / "out" / "model.json").read_text())
    assert m["source"]["status"] == "diverged" and m["source"]["epoch"] == 1


def test_a_corrupt_checkpoint_is_one_line_for_export_and_predict(run_dir, tmp_path):
    import shutil

    from rnnlab.commands.predict import run as predict_cmd

    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad)
    data = (bad / "checkpoint" / "model.npz").read_bytes()
    (bad / "checkpoint" / "model.npz").write_bytes(data[: len(data) // 2])
    code, err = _cmd(str(bad), "json", str(tmp_path / "out"))
    assert code == 2 and "model.npz" in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
    e = io.StringIO()
    with contextlib.redirect_stderr(e):
        assert predict_cmd(str(bad), None, "test", str(tmp_path / "p.csv")) == 2
    assert "model.npz" in e.getvalue() and not (tmp_path / "p.csv").exists()
