"""arch.batch_norm end to end: a tiny run, its checkpoint's running statistics, and the config check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.commands.train import run
from rnnlab.data import registry
from rnnlab.engine import model as M
from rnnlab.record import checkpoint
from rnnlab.train.tasks.predict import predict_split
from tests.conftest import TINY, read_summary


def test_batch_norm_run_saves_and_reloads_the_running_statistics(tmp_path):
    overrides = [*TINY, "arch.batch_norm=true", "arch.num_layers=2"]
    run_dir = tmp_path / "run"
    assert api.train(overrides, run_dir).status == "completed"
    assert read_summary(run_dir)["status"] == "completed"
    with np.load(run_dir / "checkpoint/model.npz", allow_pickle=False) as z:
        assert {"state:bn0.running_mean", "state:bn1.running_var", "bn0.gamma", "bn1.beta"} <= set(z.files)
        assert not np.allclose(z["state:bn0.running_mean"], 0.0)  # updated by training
    spec, params, info = checkpoint.load(run_dir)
    assert spec.batch_norm and not any(k.startswith("state:") for k in params)
    state = info["state"]
    assert set(state) == set(M.init_state(spec))
    assert state["bn0.running_var"].dtype == np.float32

    # The reloaded checkpoint predicts the run's predictions.csv (the best epoch's weights and statistics).
    cfg = compose_and_validate(overrides)
    dtype = np.dtype(cfg.train.dtype)
    data = registry.load(cfg.data, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(6)[0]), dtype)
    pred = predict_split(spec, params, data.test, cfg.train.eval_batch_size, state)
    frame = pd.read_csv(run_dir / "predictions.csv")
    np.testing.assert_allclose(frame["prediction"].to_numpy(), data.to_original(pred, "test").ravel(),
                               rtol=1e-5, atol=1e-6)
    # other running statistics would give other predictions: the saved ones are those of the run
    shifted = {k: v + 0.5 for k, v in state.items()}
    other = data.to_original(predict_split(spec, params, data.test, cfg.train.eval_batch_size, shifted), "test")
    assert not np.allclose(frame["prediction"].to_numpy(), other.ravel(), rtol=1e-5, atol=1e-6)


def test_checkpoints_without_state_load_as_before(tmp_path):
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=3, output_size=1)
    params = M.init_params(spec, np.random.default_rng(0))
    checkpoint.save(tmp_path / "ck", spec, params, {"epoch": 1})
    with np.load(tmp_path / "ck/model.npz", allow_pickle=False) as z:
        assert set(z.files) == set(params)
    _, loaded, info = checkpoint.load(tmp_path / "ck")
    assert set(loaded) == set(params) and info["state"] == {}


def test_a_batch_norm_checkpoint_without_its_state_is_refused(tmp_path):
    spec = M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1, batch_norm=True)
    params = M.init_params(spec, np.random.default_rng(0))
    checkpoint.save(tmp_path / "ck", spec, params, {"epoch": 1})  # no state given
    with pytest.raises(checkpoint.CheckpointError, match="state names differ"):
        checkpoint.load(tmp_path / "ck")
    state = M.init_state(spec)
    checkpoint.save(tmp_path / "ck", spec, params, {"epoch": 1}, state)
    _, _, info = checkpoint.load(tmp_path / "ck")
    for k in state:
        np.testing.assert_array_equal(info["state"][k], state[k])


def test_batch_norm_with_layer_norm_is_one_line_exit_2(tmp_path, capsys):
    code = run(["arch.batch_norm=true", "arch.layer_norm=true", f"hydra.run.dir={tmp_path / 'x'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "arch.batch_norm and arch.layer_norm are mutually exclusive" in err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()


def test_batch_norm_classification_per_step_run_with_last_weights(tmp_path):
    """The classification report and checkpoint_last (train.restore_best_weights=false) get the state too."""
    run_dir = tmp_path / "r"
    copy_tiny = ["data=copy", "data.n_train=64", "data.n_val=16", "data.n_test=16", "data.delay=3", "data.copy_len=2",
                 "arch.hidden_size=8", "train.epochs=2", "train.batch_size=32", "train.progress=false"]
    assert api.train([*copy_tiny, "arch.pooling=none", "arch.batch_norm=true", "train.plots=false",
                      "monitor=none", "train.restore_best_weights=false"], run_dir).status == "completed"
    s = read_summary(run_dir)
    assert s["status"] == "completed" and s["test_weights"] == "last"
    assert 0.0 <= s["test_metrics"]["accuracy"] <= 1.0
    _, _, info = checkpoint.load(run_dir / "checkpoint_last")
    assert set(info["state"]) == {"bn0.running_mean", "bn0.running_var"}
