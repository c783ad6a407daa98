"""Data-parallel steps (engine/parallel.py): the summed parts equal the one-process step in float64,
with masks, per-step outputs, uneven splits and label smoothing; dropout's per-part streams; and the
failures: a worker's exception, a dead worker, the refusals."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing import shared_memory

import numpy as np
import pytest

from rnnlab.engine import losses
from rnnlab.engine import model as M
from rnnlab.engine.parallel import (
    DataParallel,
    WorkerError,
    loss_count,
    make_loss,
    part_loss_and_grads,
    split_rows,
)


def _serial(spec, params, loss_fn, x, mask, target, tmask, rng=None):
    out, cache = M.forward(spec, params, x, mask, train=True, rng=rng)
    loss, dout = loss_fn(out, target, mask=tmask)
    grads, _ = M.backward(spec, params, dout, cache)
    return loss, grads


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(1e-300, np.max(np.abs(b))))


def _assert_same(got, want, tol=1e-12):
    (l1, g1), (l0, g0) = got, want
    assert l1 == pytest.approx(l0, rel=tol)
    assert set(g1) == set(g0)
    for k in g0:
        assert g1[k].shape == g0[k].shape, k
        assert _rel(g1[k], g0[k]) <= tol, k


def test_split_rows():
    assert split_rows(10, 3) == [slice(0, 4), slice(4, 7), slice(7, 10)]
    assert split_rows(4, 2) == [slice(0, 2), slice(2, 4)]
    assert split_rows(1, 2) == [slice(0, 1)]  # the empty part is dropped
    assert sum(s.stop - s.start for s in split_rows(101, 4)) == 101


def test_loss_count_matches_the_losses_mean():
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 5, 2))
    mask = np.ones((4, 5))
    mask[1, 3:] = 0
    assert loss_count(target, None) == 40
    assert loss_count(target, mask) == 2 * mask.sum()
    # the count is what losses.mse divides by: sum of squared errors / count == mse
    sq = ((pred - target) ** 2 * mask[..., None]).sum()
    assert losses.mse(pred, target, mask)[0] == pytest.approx(sq / loss_count(target, mask))
    labels = rng.integers(0, 3, (4, 5))
    assert loss_count(labels, mask) == mask.sum()


def test_make_loss_binds_options():
    rng = np.random.default_rng(1)
    logits, labels = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    want = losses.softmax_cross_entropy(logits, labels, label_smoothing=0.2)[0]
    assert make_loss("cross_entropy", {"label_smoothing": 0.2})(logits, labels)[0] == pytest.approx(want)
    assert make_loss("mse", {}) is losses.mse


def test_bidirectional_per_step_classification_with_masks_equals_one_process():
    """3 processes, 9 rows (4 + 3 + 2... as 3/3/3), padded rows, token-level loss with label smoothing."""
    spec = M.ModelSpec(cell="lstm", input_size=5, hidden_size=7, output_size=3, num_layers=2,
                       bidirectional=True, pooling="none")
    rng = np.random.default_rng(0)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((9, 6, 5))
    y = rng.integers(0, 3, (9, 6))
    mask = np.ones((9, 6))
    mask[2, 4:] = 0
    mask[7, 1:] = 0
    fn = make_loss("cross_entropy", {"label_smoothing": 0.1})
    want = _serial(spec, params, fn, x, mask, y, mask)
    with DataParallel(spec, "cross_entropy", workers=3, loss_opts={"label_smoothing": 0.1}) as dp:
        got = dp.loss_and_grads(params, x, mask, y, mask)
        again = dp.loss_and_grads(params, x, mask, y, mask)  # the shared blocks are reused
    _assert_same(got, want)
    _assert_same(again, want)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_uneven_split_regression_equals_one_process(cell):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=6, output_size=2, pooling="mean")
    rng = np.random.default_rng(2)
    params = M.init_params(spec, rng, dtype=np.float64)
    x, y = rng.standard_normal((7, 5, 3)), rng.standard_normal((7, 2))
    want = _serial(spec, params, losses.mse, x, None, y, None)
    with DataParallel(spec, "mse", workers=2) as dp:
        _assert_same(dp.loss_and_grads(params, x, None, y), want)
        one_row = dp.loss_and_grads(params, x[:1], None, y[:1])  # fewer rows than processes
    _assert_same(one_row, _serial(spec, params, losses.mse, x[:1], None, y[:1], None))


def test_embedding_binary_model_equals_one_process():
    spec = M.ModelSpec(cell="gru", input_size=4, hidden_size=5, output_size=1, vocab_size=20, padding_idx=0,
                       pooling="mean")
    rng = np.random.default_rng(3)
    params = M.init_params(spec, rng, dtype=np.float64)
    tokens = rng.integers(1, 20, (8, 6))
    mask = np.ones((8, 6))
    mask[0, 4:] = mask[5, 2:] = 0
    tokens[mask == 0] = 0
    y = rng.integers(0, 2, (8, 1)).astype(np.float64)
    want = _serial(spec, params, losses.bce_with_logits, tokens, mask, y, None)
    with DataParallel(spec, "bce", workers=2) as dp:
        _assert_same(dp.loss_and_grads(params, tokens, mask, y), want)


def test_dropout_uses_one_stream_per_part_and_is_reproducible():
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=6, output_size=1, num_layers=2, dropout=0.5,
                       output_dropout=0.3)
    rng = np.random.default_rng(4)
    params = M.init_params(spec, rng, dtype=np.float64)
    x, y = rng.standard_normal((6, 4, 3)), rng.standard_normal((6, 1))
    with DataParallel(spec, "mse", workers=2) as dp:
        a = dp.loss_and_grads(params, x, None, y, rng=np.random.default_rng(7))
        b = dp.loss_and_grads(params, x, None, y, rng=np.random.default_rng(7))
        c = dp.loss_and_grads(params, x, None, y, rng=np.random.default_rng(8))
    _assert_same(a, b, tol=0)
    assert a[0] != c[0]
    # what the parts did: part k drew its masks from default_rng([seed, k]) with the step's seed
    seed = int(np.random.default_rng(7).integers(2**63))
    parts = [part_loss_and_grads(spec, params, losses.mse, x[s], None, y[s], None, 0.5,
                                 np.random.default_rng([seed, k])) for k, s in enumerate(split_rows(6, 2))]
    want = (parts[0][0] + parts[1][0], {k: parts[0][1][k] + parts[1][1][k] for k in params})
    _assert_same(a, want)


def test_a_workers_exception_is_raised_with_its_message_and_the_next_step_works():
    spec = M.ModelSpec(cell="rnn", input_size=2, hidden_size=3, output_size=3, pooling="last")
    rng = np.random.default_rng(5)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((4, 3, 2))
    bad = np.array([0, 1, 2, 7])  # label 7 of 3 classes: only the worker's rows are wrong
    good = np.array([0, 1, 2, 1])
    with DataParallel(spec, "cross_entropy", workers=2) as dp:
        with pytest.raises(WorkerError, match=r"data-parallel worker 1: ValueError: .*"):
            dp.loss_and_grads(params, x, None, bad)
        _assert_same(dp.loss_and_grads(params, x, None, good),
                     _serial(spec, params, losses.softmax_cross_entropy, x, None, good, None))


def test_an_exception_in_this_process_leaves_no_reply_behind():
    spec = M.ModelSpec(cell="rnn", input_size=2, hidden_size=3, output_size=3, pooling="last")
    rng = np.random.default_rng(6)
    params = M.init_params(spec, rng, dtype=np.float64)
    x = rng.standard_normal((4, 3, 2))
    good = np.array([0, 1, 2, 1])
    with DataParallel(spec, "cross_entropy", workers=2) as dp:
        with pytest.raises(ValueError):
            dp.loss_and_grads(params, x, None, np.array([9, 1, 2, 1]))  # part 0 (here) fails
        _assert_same(dp.loss_and_grads(params, x, None, good),
                     _serial(spec, params, losses.softmax_cross_entropy, x, None, good, None))


def test_a_dead_worker_is_reported_and_close_cleans_up():
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=3, output_size=1)
    rng = np.random.default_rng(7)
    params = M.init_params(spec, rng, dtype=np.float64)
    x, y = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 1))
    dp = DataParallel(spec, "mse", workers=2)
    with dp:
        dp.loss_and_grads(params, x, None, y)
        name = dp._shms[0].name
        proc = dp._procs[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        gone = r"data-parallel worker 1 (died|closed its pipe|is gone) \(exit code -9\)"
        with pytest.raises(WorkerError, match=gone):
            dp.loss_and_grads(params, x, None, y)
    assert proc.poll() == -signal.SIGKILL
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=name)  # unlinked by close()
    dp.close()  # twice is fine


def test_workers_stop_on_exit_and_ignore_ctrl_c():
    spec = M.ModelSpec(cell="rnn", input_size=2, hidden_size=3, output_size=1)
    params = M.init_params(spec, np.random.default_rng(8), dtype=np.float64)
    x, y = np.ones((4, 3, 2)), np.ones((4, 1))
    with DataParallel(spec, "mse", workers=3) as dp:
        procs = list(dp._procs)
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        assert dp.pids == [p.pid for p in procs]
        dp.loss_and_grads(params, x, None, y)
        os.kill(procs[0].pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        time.sleep(0.2)
        assert procs[0].poll() is None
        dp.loss_and_grads(params, x, None, y)
    assert [p.poll() for p in procs] == [0, 0]


def test_refusals():
    spec = M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1)
    with pytest.raises(ValueError, match="workers >= 2"):
        DataParallel(spec, "mse", workers=1)
    bn = M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1, batch_norm=True)
    with pytest.raises(ValueError, match="batch_norm"):
        DataParallel(bn, "mse", workers=2)
    with pytest.raises(RuntimeError, match="not started"):
        DataParallel(spec, "mse", workers=2).loss_and_grads({}, np.ones((2, 1, 2)), None, np.ones((2, 1)))
