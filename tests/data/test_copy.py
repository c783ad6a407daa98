"""The copy memory task: layout of inputs and targets, loss masks, the memoryless baseline,
config checks, and a tiny LSTM with per-step outputs that learns to copy."""

import math

import numpy as np
import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.config.schema import CopyConf
from rnnlab.config.validate import ConfigError
from rnnlab.data import copy_task, registry
from rnnlab.engine import model as M
from rnnlab.engine.losses import softmax_cross_entropy
from rnnlab.engine.optim import make_optimizer


def test_layout_of_inputs_and_targets():
    n, K, L, D = 200, 5, 4, 7
    s = copy_task.make(n, K, L, D, np.random.default_rng(0))
    T = 2 * L + D
    assert s.x.shape == (n, T, K + 2) and s.x.dtype == np.float32
    assert s.y.shape == (n, T) and s.y.dtype == np.int64
    assert s.mask is None
    np.testing.assert_array_equal(s.x.sum(axis=2), 1)  # one-hot
    ids = s.x.argmax(axis=2)
    symbols = ids[:, :L]
    assert symbols.min() >= 1 and symbols.max() <= K
    assert len(np.unique(symbols)) == K  # every symbol shows up in 800 draws
    np.testing.assert_array_equal(ids[:, L + D - 1], K + 1)  # the delimiter
    blank = np.ones(T, dtype=bool)
    blank[:L] = False
    blank[L + D - 1] = False
    np.testing.assert_array_equal(ids[:, blank], 0)
    # the target is blank until the answer window, which holds the first L symbols in order
    np.testing.assert_array_equal(s.y[:, : L + D], 0)
    np.testing.assert_array_equal(s.y[:, L + D:], symbols)
    assert s.y.max() <= K  # the delimiter is never a target: K + 1 outputs suffice


def test_target_masks():
    a = copy_task.make(10, 3, 2, 4, np.random.default_rng(0), loss_on="answer")
    assert a.target_mask.shape == (10, 8) and a.target_mask.dtype == np.float32
    np.testing.assert_array_equal(a.target_mask, np.tile([0, 0, 0, 0, 0, 0, 1, 1], (10, 1)))
    b = copy_task.make(10, 3, 2, 4, np.random.default_rng(0), loss_on="all")
    assert b.target_mask is None  # every position counts
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    with pytest.raises(ValueError, match="loss_on"):
        copy_task.make(10, 3, 2, 4, np.random.default_rng(0), loss_on="some")


@pytest.mark.parametrize("loss_on", ["answer", "all"])
def test_load_and_memoryless_baseline(loss_on):
    cfg = CopyConf(n_symbols=6, copy_len=5, delay=10, loss_on=loss_on, n_train=30, n_val=40000, n_test=20)
    d = registry.load(cfg, np.random.default_rng(1), np.float32)
    assert (len(d.train), len(d.val), len(d.test)) == (30, 40000, 20)
    assert d.kind == "multiclass" and d.default_loss == "cross_entropy" and d.baselines == {}
    assert d.input_size == 8 and d.output_size == 7
    assert d.classes == ["blank", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert d.meta["seq_len"] == 20 and d.meta["loss_on"] == loss_on
    expected = math.log(6) if loss_on == "answer" else 5 * math.log(6) / 20
    assert d.meta["memoryless_ce"] == pytest.approx(expected)
    # The memoryless predictor: blank for sure off the answer window, uniform over the
    # symbols inside it. Its cross entropy on real data is the stored number.
    T = 20
    logits = np.full((len(d.val), T, 7), -np.inf)
    logits[:, :15, 0] = 0.0
    logits[:, 15:, 1:] = 0.0
    logits = np.maximum(logits, -1e4)  # finite, with exp underflowing to 0
    ce, _ = softmax_cross_entropy(logits, d.val.y, d.val.target_mask)
    assert ce == pytest.approx(expected, rel=1e-6)
    # ... and it is the best a memoryless model can do: the symbols are uniform.
    counts = np.bincount(d.val.y[:, 15:].ravel(), minlength=7)[1:]
    assert counts.min() / counts.max() > 0.95


def test_default_config_matches_the_schema():
    rc = compose_and_validate(["data=copy"])
    assert rc.data == CopyConf()
    rc = compose_and_validate(["data=copy", "data.delay=200", "data.loss_on=all", "arch.pooling=none"])
    assert rc.data.delay == 200 and rc.data.loss_on == "all" and rc.arch.pooling == "none"


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.n_symbols=1", "data.n_symbols must be >= 2 (got 1)"),
        ("data.copy_len=0", "data.copy_len must be >= 1 (got 0)"),
        ("data.delay=0", "data.delay must be >= 1 (got 0)"),
        ("data.loss_on=last", "data.loss_on must be one of answer, all (got 'last')"),
        ("data.n_val=0", "data.n_val must be >= 1 (got 0)"),
        ("data.length=5", "unknown key 'data.length'"),
    ],
)
def test_bad_config_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(["data=copy", override])
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.slow  # a 500-step training demonstration
def test_tiny_lstm_with_per_step_outputs_learns_to_copy():
    """Fresh batches each step, Adam, loss on the answer window only: well under log(4)."""
    K, L, D = 4, 3, 5
    rng = np.random.default_rng(0)
    spec = M.ModelSpec(cell="lstm", input_size=K + 2, hidden_size=32, output_size=K + 1, pooling="none")
    params = M.init_params(spec, rng)
    opt = make_optimizer("adam", lr=0.02)
    for _ in range(500):
        b = copy_task.make(64, K, L, D, rng)
        y, cache = M.forward(spec, params, b.x)
        _, dy = softmax_cross_entropy(y, b.y, mask=b.target_mask)
        grads, _ = M.backward(spec, params, dy, cache)
        opt.step(params, grads)
    val = copy_task.make(512, K, L, D, np.random.default_rng(1))
    y, _ = M.forward(spec, params, val.x)
    ce, _ = softmax_cross_entropy(y, val.y, mask=val.target_mask)
    baseline = copy_task.memoryless_ce(K, L, D, "answer")
    assert ce < 0.25 * baseline, (ce, baseline)
    accuracy = (y.argmax(axis=2) == val.y)[:, -L:].mean()
    assert accuracy > 0.9
