"""reverse_digits and sine2cosine: shapes, masks and the correctness of the targets."""

import numpy as np
import pytest

from rnnlab.data import seq2seq_tasks as S


def test_reverse_digits_shapes_and_vocab():
    task = S.reverse_digits(50, 10, 20, np.random.default_rng(0), min_len=2, max_len=6, n_digits=8)
    assert task.kind == "tokens"
    m = task.meta
    assert m["vocab_size"] == 11 and (m["pad_id"], m["bos_id"], m["eos_id"]) == (0, 1, 2)
    for split, n in ((task.train, 50), (task.val, 10), (task.test, 20)):
        assert len(split) == n
        assert split.src.shape == split.src_mask.shape == (n, 6)
        assert split.tgt_in.shape == split.tgt_out.shape == split.tgt_mask.shape == (n, 7)
        assert split.src.dtype == split.tgt_in.dtype == split.tgt_out.dtype == np.int64
        assert split.src.min() >= 0 and split.src.max() < m["vocab_size"]


def test_reverse_digits_targets_are_reversed_sources():
    sp = S.make_reverse_digits(200, np.random.default_rng(1), min_len=1, max_len=5, n_digits=10)
    L = S.src_lengths(sp)
    assert L.min() >= 1 and L.max() <= 5 and len(set(L.tolist())) > 1  # variable lengths
    for i in range(len(sp)):
        n = L[i]
        s = sp.src[i]
        np.testing.assert_array_equal(sp.src_mask[i], (np.arange(5) < n).astype(float))
        assert (s[:n] >= S.DIGIT0).all() and (s[n:] == S.PAD).all()  # post-padding
        np.testing.assert_array_equal(sp.tgt_out[i, :n], s[:n][::-1])
        assert sp.tgt_out[i, n] == S.EOS and (sp.tgt_out[i, n + 1:] == S.PAD).all()
        assert sp.tgt_in[i, 0] == S.BOS
        np.testing.assert_array_equal(sp.tgt_in[i, 1:n + 1], sp.tgt_out[i, :n])  # shifted by one
        assert (sp.tgt_in[i, n + 1:] == S.PAD).all()
        np.testing.assert_array_equal(sp.tgt_mask[i], (np.arange(6) <= n).astype(float))


def test_reverse_digits_batch_and_errors():
    sp = S.make_reverse_digits(10, np.random.default_rng(2))
    b = sp.batch(np.array([3, 1]))
    np.testing.assert_array_equal(b.src, sp.src[[3, 1]])
    np.testing.assert_array_equal(b.tgt_mask, sp.tgt_mask[[3, 1]])
    with pytest.raises(ValueError):
        S.make_reverse_digits(5, np.random.default_rng(0), min_len=4, max_len=3)


@pytest.mark.parametrize("offset", ["same", "next"])
def test_sine2cosine_targets(offset):
    task = S.sine2cosine(30, 5, 5, np.random.default_rng(3), t_in=12, t_out=8, offset=offset, start_value=0.25)
    assert task.kind == "continuous" and task.meta["t_out"] == 8
    sp = task.train
    assert sp.src.shape == (30, 12, 1) and sp.tgt_out.shape == sp.tgt_in.shape == (30, 8, 1)
    assert sp.src_mask.shape == (30, 12) and sp.src_mask.all() and sp.tgt_mask.shape == (30, 8) and sp.tgt_mask.all()
    np.testing.assert_allclose(sp.tgt_in[:, 0, 0], 0.25)
    np.testing.assert_array_equal(sp.tgt_in[:, 1:], sp.tgt_out[:, :-1])
    # recover w and phi from the sine: x_t = sin(w t + phi); cos follows from them
    x = sp.src[:, :, 0].astype(np.float64)
    shift = 0 if offset == "same" else 12
    for i in range(len(sp)):
        s0, s1 = x[i, 0], x[i, 1]
        best = None
        for w in np.linspace(0.2, 0.6, 4001):
            phi = np.arctan2(s0, (s1 - s0 * np.cos(w)) / np.sin(w))  # sin(phi)=s0, cos(phi) from s1
            err = np.abs(np.sin(w * np.arange(12) + phi) - x[i]).max()
            if best is None or err < best[0]:
                best = (err, w, phi)
        err, w, phi = best
        assert err < 1e-3
        np.testing.assert_allclose(sp.tgt_out[i, :, 0], np.cos(w * (np.arange(8) + shift) + phi), atol=5e-3)


def test_sine2cosine_same_offset_is_the_derivative_direction():
    sp = S.make_sine2cosine(4, np.random.default_rng(4), t_in=10, offset="same")
    np.testing.assert_allclose(sp.src[..., 0] ** 2 + sp.tgt_out[..., 0] ** 2, 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        S.make_sine2cosine(2, np.random.default_rng(0), offset="later")
