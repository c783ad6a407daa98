"""`rnnlab export`: the manifest every export holds, the folder written whole or not at all, and the one-line
refusals (not a run, unknown format, an output folder that is not an export)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from rnnlab import api
from rnnlab.commands.export import run as export_cmd
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
