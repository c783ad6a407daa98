"""Weight tying for language models (`arch.tie_weights`, rnnlab/train/tasks/stream.py): one matrix under both
names, its gradient the sum of both uses (centred finite differences, float64), updated once per step, counted
once, and refused in one line where it cannot apply."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab import api
from rnnlab.config.validate import ConfigError
from rnnlab.data import registry
from rnnlab.data.base import DataError
from rnnlab.engine import model as M
from rnnlab.engine.losses import softmax_cross_entropy
from rnnlab.train.tasks import for_data
from rnnlab.train.tasks.base import Streams

TEXT = "the cat sat on the mat. (the dog) said \"no\".\n" * 20


def _args(tmp_path, *extra):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    return ["data=textlm", f"data.path={path}", "data.seq_len=8", "data.max_chars=null", "data.embed_dim=6",
            "arch=gru", "arch.pooling=none", "arch.hidden_size=6", "arch.tie_weights=true", "train.batch_size=4",
            "train.dtype=float64", "train.stateful=true", "train.bptt=4", *extra]


def _task(overrides):
    cfg = api.compose(overrides)
    streams = Streams.from_seed(cfg.seed)
    data = registry.load(cfg.data, streams.data, np.dtype(cfg.train.dtype))
    return for_data(cfg, data, streams)


def test_the_tied_matrix_gets_the_gradient_of_both_uses(tmp_path):
    task = _task(_args(tmp_path))
    params, state = task.init_model(np.float64)
    assert params["head.weight"] is params["embedding.weight"] and M.n_params(params) < sum(
        v.size for v in params.values())
    batches = task.epoch_batches(0)
    task.train_step(params, state, batches[0])  # the next chunk starts from a carried state
    carry, cols = task.carry, task.slices[1]
    xb, yb = task.lanes.x[:, cols], task.lanes.y[:, cols]
    grads = task.train_step(params, state, batches[1]).grads
    assert "head.weight" not in grads  # the optimizer updates the shared matrix once

    w, eps = params["embedding.weight"], 1e-6
    num = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        old = w[i]
        w[i] = old + eps
        up = softmax_cross_entropy(M.forward(task.spec, params, xb, initial_states=carry)[0], yb)[0]
        w[i] = old - eps
        down = softmax_cross_entropy(M.forward(task.spec, params, xb, initial_states=carry)[0], yb)[0]
        w[i] = old
        num[i] = (up - down) / (2 * eps)
    err = np.abs(grads["embedding.weight"] - num).max() / np.abs(num).max()
    assert err < 1e-6, err


def test_a_tied_run_trains_saves_and_counts_the_matrix_once(tmp_path):
    s = api.train([*_args(tmp_path), "train.epochs=2", "train.progress=false", "train.plots=false", "monitor=none"],
                  tmp_path / "run")
    assert s.status == "completed"
    with np.load(tmp_path / "run" / "checkpoint" / "model.npz") as z:
        np.testing.assert_array_equal(z["head.weight"], z["embedding.weight"])
        assert s["n_params"] == sum(z[k].size for k in z.files) - z["head.weight"].size


@pytest.mark.parametrize(("extra", "message"), [
    (["arch.hidden_size=7"], "the head reads 7 features and the embedding has 6"),
    (["reg.l2=0.01"], "use optim=adamw's weight_decay instead"),
])
def test_tying_refuses_in_one_line(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message) as exc:
        api.train([*_args(tmp_path, *extra), "train.epochs=1", "train.progress=false", "train.plots=false",
                   "monitor=none"], tmp_path / "r")
    assert "\n" not in str(exc.value)


def test_tying_needs_a_language_model(tmp_path):
    with pytest.raises(DataError, match="needs data=textlm"):
        api.train(["data=copy", "data.n_train=8", "data.n_val=4", "data.n_test=4", "arch.pooling=none",
                   "arch.tie_weights=true", "train.epochs=1", "train.progress=false", "train.plots=false",
                   "monitor=none"], tmp_path / "r")
