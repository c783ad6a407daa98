"""Checkpoints round-trip without pickle; broken ones fail with one clear line; writes are atomic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlab.engine import model as M
from rnnlab.record import checkpoint
from rnnlab.runtime.io import atomic_write, write_json

SPEC = M.ModelSpec(cell="gru", input_size=2, hidden_size=4, output_size=1, num_layers=2, bidirectional=True)


@pytest.fixture
def saved(tmp_path):
    params = M.init_params(SPEC, np.random.default_rng(0))
    checkpoint.save(tmp_path / "checkpoint", SPEC, params, {"epoch": 3, "data": {"scaler": {"mean": 1.0, "std": 2.0}}})
    return tmp_path, params


def test_round_trip(saved):
    run_dir, params = saved
    spec, loaded, info = checkpoint.load(run_dir)  # a run folder works as well as the checkpoint folder
    assert spec == SPEC
    assert info["epoch"] == 3 and info["data"]["scaler"]["std"] == 2.0
    assert set(loaded) == set(params)
    for k in params:
        np.testing.assert_array_equal(loaded[k], params[k])
        assert loaded[k].dtype == np.float32
    x = np.random.default_rng(1).standard_normal((3, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(M.forward(spec, loaded, x)[0], M.forward(SPEC, params, x)[0])


def test_npz_holds_plain_arrays(saved):
    run_dir, _ = saved
    with np.load(run_dir / "checkpoint" / "model.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.npz").unlink(), "checkpoint file missing"),
        (lambda d: (d / "model.npz").write_bytes((d / "model.npz").read_bytes()[:100]), "corrupt checkpoint"),
        (lambda d: (d / "model.json").write_text("{not json"), "corrupt checkpoint"),
        (lambda d: (d / "model.json").write_text(json.dumps({"spec": {"oops": 1}})), "corrupt checkpoint"),
    ],
)
def test_broken_checkpoints_raise_one_line(saved, damage, message):
    run_dir, _ = saved
    damage(run_dir / "checkpoint")
    with pytest.raises(checkpoint.CheckpointError) as exc:
        checkpoint.load(run_dir / "checkpoint")
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_mismatched_spec_is_reported(saved):
    run_dir, _ = saved
    js = run_dir / "checkpoint" / "model.json"
    info = json.loads(js.read_text())
    info["spec"]["hidden_size"] = 5
    js.write_text(json.dumps(info))
    with pytest.raises(checkpoint.CheckpointError, match="has shape"):
        checkpoint.load(run_dir)


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "summary.json"
    write_json(target, {"status": "completed"})

    def explode(fh):
        fh.write('{"status": "half')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind
