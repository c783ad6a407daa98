"""Mini-batches for padded sequences: every index once per epoch, length bucketing, trimming
of shared padding, and trimmed evaluation that gives exactly the untrimmed model outputs."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.data.base import Split
from rnnlab.engine import model as M
from rnnlab.train import batches
from rnnlab.train.tasks.predict import predict_split


def _padded(lengths, T, padding="post", vocab=20, seed=0, per_step=False):
    """Token ids (N, T) with 0 at the padded steps, their mask, and labels."""
    rng = np.random.default_rng(seed)
    n = len(lengths)
    mask = np.zeros((n, T), dtype=np.float32)
    for i, k in enumerate(lengths):
        if padding == "post":
            mask[i, :k] = 1
        else:
            mask[i, T - k :] = 1
    x = np.where(mask > 0, rng.integers(2, vocab, (n, T)), 0).astype(np.int32)
    if per_step:
        y = rng.integers(0, 3, (n, T))
        return Split(x, y, mask, target_mask=mask.copy())
    return Split(x, rng.integers(0, 2, n), mask)


def _lengths(n, T, seed=0):
    return np.random.default_rng(seed).integers(1, T + 1, n)


# ---------------------------------------------------------------- real_columns


def test_real_columns_edge_cases():
    assert batches.real_columns(None, 7) == slice(0, 7)
    m = np.array([[0, 1, 1, 0, 0], [0, 0, 1, 1, 0]], dtype=np.float32)
    assert batches.real_columns(m, 5) == slice(1, 4)
    gap = np.array([[0, 1, 0, 0, 1, 0]])  # a gap inside is kept (the range is contiguous)
    assert batches.real_columns(gap, 6) == slice(1, 5)
    assert batches.real_columns(np.ones((3, 4)), 4) == slice(0, 4)
    assert batches.real_columns(np.zeros((3, 4)), 4) == slice(0, 1)  # no real step: keep one column
    assert batches.real_columns(np.zeros((2, 0)), 0) == slice(0, 0)
    assert batches.real_columns(np.array([[0, 0, 0, 1]]), 4) == slice(3, 4)
    assert batches.real_columns(np.array([[1, 0, 0, 0]]), 4) == slice(0, 1)


# ---------------------------------------------------------------- take


def test_take_trims_post_padding_to_the_longest():
    s = _padded([2, 3, 1, 6], T=6, padding="post")
    x, y, mask, tmask = batches.take(s, np.array([0, 1, 2]))
    assert x.shape == mask.shape == (3, 3)
    np.testing.assert_array_equal(x, s.x[[0, 1, 2], :3])
    np.testing.assert_array_equal(y, s.y[[0, 1, 2]])
    assert tmask is None
    assert mask.sum() == 6  # no real step was cut
    x, *_ = batches.take(s, np.array([2, 3]))
    assert x.shape == (2, 6)


def test_take_trims_pre_padding_from_the_left():
    s = _padded([2, 3, 1, 6], T=6, padding="pre")
    x, _, mask, _ = batches.take(s, np.array([0, 2, 1]))
    assert x.shape == (3, 3)
    np.testing.assert_array_equal(x, s.x[[0, 2, 1], 3:])
    np.testing.assert_array_equal(mask, s.mask[[0, 2, 1], 3:])
    assert mask[:, -1].all()


def test_take_without_trim_or_mask_keeps_everything():
    s = _padded([2, 3], T=6)
    x, _, mask, _ = batches.take(s, np.array([0, 1]), trim=False)
    assert x.shape == mask.shape == (2, 6)
    dense = Split(np.zeros((4, 5, 2), dtype=np.float32), np.zeros((4, 1)))
    x, y, mask, tmask = batches.take(dense, np.array([3, 1]))
    assert x.shape == (2, 5, 2) and y.shape == (2, 1) and mask is None and tmask is None


def test_take_trims_per_step_targets_with_the_inputs():
    s = _padded([2, 4, 3], T=7, padding="pre", per_step=True)
    assert batches.per_step_targets(s)
    x, y, mask, tmask = batches.take(s, np.array([0, 2]))
    assert x.shape == y.shape == mask.shape == tmask.shape == (2, 3)
    np.testing.assert_array_equal(y, s.y[[0, 2], 4:])
    np.testing.assert_array_equal(tmask, s.target_mask[[0, 2], 4:])
    # one label per sequence: y is not cut
    s1 = _padded([2, 4, 3], T=7)
    assert not batches.per_step_targets(s1)
    _, y1, _, _ = batches.take(s1, np.array([0, 2]))
    assert y1.shape == (2,)


# ---------------------------------------------------------------- train_batches


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("n, bs", [(1000, 32), (37, 8), (5, 16), (64, 64)])
def test_every_index_once_per_epoch(n, bs, bucket):
    s = _padded(_lengths(n, 30), T=30)
    rng = np.random.default_rng(0)
    for _ in range(2):
        bl = batches.train_batches(s, bs, rng, bucket=bucket, pool=4)
        allidx = np.concatenate(bl)
        assert len(allidx) == n
        np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
        assert all(1 <= len(b) <= bs for b in bl)
        assert len(bl) == -(-n // bs)  # pools hold whole batches: only the last batch is short


def test_every_index_once_without_a_mask():
    s = Split(np.zeros((50, 4, 1), dtype=np.float32), np.zeros((50, 1)))
    bl = batches.train_batches(s, 16, np.random.default_rng(1), bucket=True)
    np.testing.assert_array_equal(np.sort(np.concatenate(bl)), np.arange(50))
    assert [len(b) for b in bl] == [16, 16, 16, 2]


def _spread(split, bl):
    lens = batches.lengths(split)
    return float(np.mean([lens[b].max() - lens[b].min() for b in bl]))


def test_bucketing_makes_length_homogeneous_batches():
    s = _padded(_lengths(3200, 200, seed=2), T=200)
    plain = batches.train_batches(s, 32, np.random.default_rng(0), bucket=False)
    bucketed = batches.train_batches(s, 32, np.random.default_rng(0), bucket=True)
    assert _spread(s, plain) > 150  # lengths 1..200: a random batch spans most of the range
    assert _spread(s, bucketed) < 0.1 * _spread(s, plain)
    # and so trimming saves most of the padded columns
    cols = [batches.real_columns(s.mask[b], 200) for b in bucketed]
    assert np.mean([c.stop - c.start for c in cols]) < 0.7 * 200
    # batch order is shuffled: not sorted by length across the epoch
    mean_len = [batches.lengths(s)[b].mean() for b in bucketed]
    assert not (np.all(np.diff(mean_len) >= 0) or np.all(np.diff(mean_len) <= 0))


def test_bucketing_varies_between_epochs():
    s = _padded(_lengths(400, 50), T=50)
    rng = np.random.default_rng(0)
    a = batches.train_batches(s, 16, rng)
    b = batches.train_batches(s, 16, rng)
    assert not all(np.array_equal(p, q) for p, q in zip(a, b, strict=False))


@pytest.mark.parametrize("bucket", [True, False])
def test_seeded_determinism(bucket):
    s = _padded(_lengths(300, 40), T=40)

    def epochs(seed):
        rng = np.random.default_rng(seed)
        return [batches.train_batches(s, 16, rng, bucket=bucket) for _ in range(3)]

    a, b, c = epochs(7), epochs(7), epochs(8)
    for ea, eb in zip(a, b, strict=True):
        assert len(ea) == len(eb) and all(np.array_equal(p, q) for p, q in zip(ea, eb, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a[0], c[0], strict=False))


# ---------------------------------------------------------------- eval_batches + predict_split


def test_eval_batches_cover_every_index_grouped_by_length():
    s = _padded(_lengths(101, 25), T=25)
    bl = batches.eval_batches(s, 10)
    allidx = np.concatenate(bl)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(101))
    assert [len(b) for b in bl] == [10] * 10 + [1]
    lens = batches.lengths(s)[allidx]
    assert (np.diff(lens) >= 0).all()
    dense = Split(np.zeros((7, 3, 1)), np.zeros((7, 1)))
    assert [b.tolist() for b in batches.eval_batches(dense, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert batches.eval_batches(Split(np.zeros((0, 3), dtype=np.int32), np.zeros(0), np.zeros((0, 3))), 4) == []


def _spec(pooling, output_size=1, vocab=20):
    return M.ModelSpec(cell="gru", input_size=6, hidden_size=5, output_size=output_size, bidirectional=True,
                       pooling=pooling, vocab_size=vocab, padding_idx=0)


@pytest.mark.parametrize("padding", ["post", "pre"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_predict_split_equals_untrimmed_predict(pooling, padding):
    T = 23
    lengths = _lengths(45, T, seed=5)
    lengths[:3] = [1, T, 2]
    s = _padded(lengths, T=T, padding=padding, seed=1)
    spec = _spec(pooling)
    params = M.init_params(spec, np.random.default_rng(3))
    # make the pad embedding non-zero: a model that leaked padding would now differ
    params["embedding.weight"][0] = 0.5
    # trimming really happens for the short batches
    assert any(batches.real_columns(s.mask[b], T) != slice(0, T) for b in batches.eval_batches(s, 8))
    got = predict_split(spec, params, s, batch_size=8)
    want = M.predict(spec, params, s.x, s.mask)
    assert got.shape == want.shape == (45, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # and in the split's order, whatever the batch size
    np.testing.assert_allclose(predict_split(spec, params, s, batch_size=1000), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predict_split(spec, params, s, batch_size=1), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_predict_split_per_step_outputs_equal_untrimmed(padding):
    T = 12
    s = _padded(_lengths(20, T, seed=9), T=T, padding=padding, seed=2, per_step=True)
    spec = _spec("none", output_size=3)
    params = M.init_params(spec, np.random.default_rng(4))
    got = predict_split(spec, params, s, batch_size=4)
    want = M.predict(spec, params, s.x, s.mask)
    assert got.shape == want.shape == (20, T, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[s.mask == 0], 0)


def test_predict_split_without_a_mask_and_empty():
    spec = M.ModelSpec(cell="gru", input_size=2, hidden_size=4, output_size=1)
    params = M.init_params(spec, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((9, 5, 2)).astype(np.float32)
    s = Split(x, np.zeros((9, 1)))
    np.testing.assert_allclose(predict_split(spec, params, s, 4), M.predict(spec, params, x), rtol=1e-6, atol=1e-6)
    empty = Split(np.zeros((0, 5, 2), dtype=np.float32), np.zeros((0, 1)))
    assert predict_split(spec, params, empty, 4).shape == (0, 1)


def test_unshuffled_batches_take_the_rows_in_order_and_draw_nothing():
    from rnnlab.data.base import Split

    split = Split(np.zeros((7, 3, 1)), np.zeros(7))
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    got = batches.train_batches(split, 3, rng, shuffle=False)
    assert [b.tolist() for b in got] == [[0, 1, 2], [3, 4, 5], [6]]
    assert rng.bit_generator.state == before
