"""Stateful truncated BPTT (`train.stateful`, `train.bptt`; rnnlab/train/tasks/stream.py): the lanes' layout,
the state carried from chunk to chunk, the gradient of a chunk against the truncated-BPTT formula (centred
finite differences with the carried state held fixed, float64), the refusals, and what it learns on the
echo task (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab import api
from rnnlab.config.validate import ConfigError
from rnnlab.data import registry
from rnnlab.data.base import Split
from rnnlab.engine import cells
from rnnlab.engine import model as M
from rnnlab.engine.losses import softmax_cross_entropy
from rnnlab.train.tasks import for_data
from rnnlab.train.tasks.base import Streams
from rnnlab.train.tasks.stream import Lanes, StreamTask

ECHO = ["data=echo", "data.n_train=30", "data.n_val=6", "data.n_test=6", "arch.pooling=none", "arch.hidden_size=5",
        "train.stateful=true", "train.bptt=4", "train.batch_size=3", "train.dtype=float64"]


def _task(overrides) -> StreamTask:
    cfg = api.compose(overrides)
    streams = Streams.from_seed(cfg.seed)
    data = registry.load(cfg.data, streams.data, np.dtype(cfg.train.dtype))
    task = for_data(cfg, data, streams)
    assert isinstance(task, StreamTask)
    return task


def test_lanes_cut_the_stream_into_contiguous_equal_parts():
    ids = np.arange(7 * 5).reshape(7, 5)  # 7 windows of 5: the stream 0..34
    lanes = Lanes.of(Split(ids, ids + 100), 3)  # 35 // 3 = 11 steps a lane, 2 dropped
    np.testing.assert_array_equal(lanes.x, np.arange(33).reshape(3, 11))
    np.testing.assert_array_equal(lanes.y, lanes.x + 100)
    assert [(s.start, s.stop) for s in lanes.chunks(4)] == [(0, 4), (4, 8), (8, 11)]
    assert Lanes.of(Split(ids, ids), 1000).y.shape == (35, 1)  # never more lanes than steps


@pytest.mark.parametrize("cell", cells.names())
def test_carried_chunks_equal_each_lane_read_whole(cell):
    task = _task([*ECHO, f"arch={cell}", "arch.num_layers=2"])
    params, state = task.init_model(np.float64)
    whole = M.infer(task.spec, params, task.lanes.x)  # every lane in one pass from a zero state
    outs = []
    for k in task.epoch_batches(0):
        cols = task.slices[int(k[0])]
        out, _ = M.forward(task.spec, params, task.lanes.x[:, cols], initial_states=task.carry)
        task.train_step(params, state, k)  # carries the state (the parameters do not change here)
        outs.append(out)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=0, atol=1e-12)
    task.epoch_batches(1)
    assert task.carry is None  # an epoch starts from zero states


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_chunks_gradient_is_truncated_bptt_from_the_carried_state(cell):
    """The step's gradient = d loss(chunk k; params, carry held fixed) / d params for every parameter (centred
    finite differences, rel. error < 1e-6), and differs from the gradient through the earlier chunks."""
    task = _task([*ECHO, f"arch={cell}", "arch.num_layers=2", "arch.hidden_size=3"])
    params, state = task.init_model(np.float64)
    batches = task.epoch_batches(0)
    for k in batches[:2]:
        task.train_step(params, state, k)  # two chunks: the third starts from a carried state
    carry = task.carry
    cols = task.slices[2]
    xb, yb = task.lanes.x[:, cols], task.lanes.y[:, cols]
    grads = task.train_step(params, state, batches[2]).grads

    def chunk_loss(p):
        out, _ = M.forward(task.spec, p, xb, initial_states=carry)
        return softmax_cross_entropy(out, yb)[0]

    def through_all(p):  # the full BPTT loss of chunk 2: the state recomputed from the stream's start
        out = M.infer(task.spec, p, task.lanes.x[:, : cols.stop])[:, cols]
        return softmax_cross_entropy(out, yb)[0]

    eps = 1e-6
    differs = 0.0
    for name, w in params.items():
        num, full = np.zeros_like(w), np.zeros_like(w)
        recurrent = name == "rnn.weight_hh_l0"  # where the state's history enters: compare with full BPTT
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + eps
            up, up_full = chunk_loss(params), through_all(params) if recurrent else 0.0
            w[i] = old - eps
            down, down_full = chunk_loss(params), through_all(params) if recurrent else 0.0
            w[i] = old
            num[i], full[i] = (up - down) / (2 * eps), (up_full - down_full) / (2 * eps)
        err = np.abs(grads[name] - num).max() / max(np.abs(num).max(), 1e-12)
        assert err < 1e-6, (name, err)
        if recurrent:
            differs = np.abs(full - num).max()
    assert differs > 1e-4  # truncation is real: the carried state's dependence on the weights is ignored


def test_the_carried_state_goes_into_the_training_state_and_back():
    task = _task([*ECHO, "arch=lstm"])
    params, state = task.init_model(np.float64)
    k = task.epoch_batches(0)[0]
    task.train_step(params, state, k)
    flat = task.state_dict()
    assert sorted(flat) == ["rnn0:0:0", "rnn0:0:1"] and flat["rnn0:0:0"].shape == (3, 5)  # LSTM's (h, c)
    other = _task([*ECHO, "arch=lstm"])
    other.load_state_dict(flat)
    for a, b in zip(task.carry["rnn0"][0], other.carry["rnn0"][0], strict=True):
        np.testing.assert_array_equal(a, b)
    other.load_state_dict({})
    assert other.carry is None


@pytest.mark.parametrize(("extra", "message"), [
    (["arch.bidirectional=true"], "a bidirectional layer's backward half would need the future"),
    (None, "needs data whose samples continue each other"),
    (["train.shuffle=true"], "reads each stream in order: drop train.shuffle=true"),
    (["arch.self_attention_heads=1"], "carries only the recurrent state"),
    (["train.workers=2"], "keeps every lane's state in this process: use train.workers=1"),
])
def test_stateful_refusals_are_one_line(extra, message, tmp_path):
    args = [*ECHO, *extra] if extra else ["data=copy", "data.n_train=8", "data.n_val=4", "data.n_test=4",
                                          "arch.pooling=none", "train.stateful=true"]  # independent sequences
    with pytest.raises((ConfigError, ValueError), match=message) as exc:
        api.train([*args, "train.epochs=1", "train.progress=false", "train.plots=false", "monitor=none"],
                  tmp_path / "r")
    assert "\n" not in str(exc.value)


def test_bptt_needs_stateful(tmp_path):
    with pytest.raises(ValueError, match="train.bptt sets the chunk length of stateful training"):
        api.compose(["data=echo", "arch.pooling=none", "train.bptt=5"])


def test_a_stateful_run_reports_tokens_and_lanes(tmp_path):
    s = api.train([*ECHO, "train.epochs=2", "train.progress=false", "train.plots=false", "monitor=none"],
                  tmp_path / "r")
    assert s.status == "completed"
    # 30 windows of 10 steps = 300 steps, 3 lanes of 100, chunks of 4: 25 steps an epoch
    assert (s["lanes"], s["lane_length"], s["bptt"], s["stateful"]) == (3, 100, 4, True)
    m = s.test_metrics
    assert set(m) >= {"accuracy", "top5_accuracy", "perplexity", "bits_per_token", "cross_entropy"}
    assert m["perplexity"] == pytest.approx(np.exp(m["cross_entropy"]))
    assert m["top5_accuracy"] == 1.0  # 4 symbols: the true one is always among the top 5
    assert s["baselines"]["chance"]["test_metrics"]["accuracy"] == 0.25


@pytest.mark.slow
def test_state_carried_across_chunks_learns_what_windows_cannot(tmp_path):
    """Echo with delay 8 in windows of 10: stateful (chunks of 10) > 95 %; stateless stays at its ceiling
    (0.4: the first 8 steps of every window are guesses at 1/4)."""
    base = ["data=echo", "data.n_train=20000", "arch=gru", "arch.pooling=none", "arch.hidden_size=32",
            "train.epochs=8", "train.batch_size=32", "optim.lr=0.003", "train.progress=false",
            "train.plots=false", "monitor=none"]
    stateful = api.train([*base, "train.stateful=true"], tmp_path / "stateful")
    stateless = api.train(base, tmp_path / "stateless")
    assert stateful.test_metrics["accuracy"] > 0.95
    assert stateless.test_metrics["accuracy"] < 0.42


# ---------------------------------------------------------------- a forecast series as one stream


SINE_STREAM = ["data=sine", "data.length=600", "data.n_in=20", "data.strategy=stream", "arch=gru",
               "arch.pooling=none", "arch.hidden_size=8", "train.dtype=float64", "train.progress=false",
               "train.plots=false", "monitor=none"]


def test_a_series_becomes_one_stream_of_next_value_targets():
    cfg = api.compose(SINE_STREAM)
    direct = registry.load(api.compose([*SINE_STREAM, "data.strategy=direct", "data.baselines=[]"]).data,
                           Streams.from_seed(0).data,
                           np.float64)
    data = registry.load(cfg.data, Streams.from_seed(0).data, np.float64)
    assert data.contiguous and data.train.y.shape[1:] == (20, 1) and data.future is None and not data.baselines
    rows = np.concatenate([direct.train.x[0], direct.train.x[1:, -1]])  # the train split's rows in order
    x = data.train.x.reshape(-1, data.train.x.shape[-1])
    np.testing.assert_array_equal(x, rows[: len(x)])
    y = data.train.y.reshape(-1)
    np.testing.assert_array_equal(y[:-1], x[1:, 0])  # every step's target is the next value


def test_a_stateful_stream_forecast_reports_one_step_errors_beside_naive(tmp_path):
    s = api.train([*SINE_STREAM, "train.stateful=true", "train.batch_size=1", "train.epochs=3"], tmp_path / "r")
    assert s.status == "completed" and s["lanes"] == 1
    m, naive = s.test_metrics, s["baselines"]["naive"]["test_metrics"]
    assert {"mae", "rmse", "r2"} <= set(m) and naive["mae"] > 0
    cfg = api.compose(SINE_STREAM)
    data = registry.load(cfg.data, Streams.from_seed(0).data, np.float64)
    inv = data.scaler.inverse
    by_hand = np.mean(np.abs(inv(data.test.y.reshape(-1)) - inv(data.test.x[..., 0].reshape(-1))))
    assert naive["mae"] == pytest.approx(by_hand)


def test_a_stream_forecast_needs_an_output_at_every_step(tmp_path):
    with pytest.raises(Exception, match="use arch.pooling=none"):
        api.train([*SINE_STREAM, "arch.pooling=last", "train.epochs=1"], tmp_path / "r")
