"""data=textlm: the stream split by position, the vocabulary fitted on the train part, next-token windows,
the unigram and bigram baselines, one-line refusals, and a tiny LSTM that learns a periodic text."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlab import api
from rnnlab.config.schema import TextlmConf
from rnnlab.data import textlm
from rnnlab.data.base import DataError
from tests.conftest import read_summary

QUIET = ["train.progress=false", "train.plots=false", "monitor=none"]


def _conf(path, **kw):
    return TextlmConf(path=str(path), **kw)


def test_windows_hold_the_next_token_at_every_step():
    ids = np.arange(23)
    s = textlm.windows(ids, 5)
    assert s.x.shape == s.y.shape == (4, 5) and s.mask is None and s.target_mask is None
    np.testing.assert_array_equal(s.x.ravel(), ids[:20])
    np.testing.assert_array_equal(s.y.ravel(), ids[1:21])  # windows meet: the stream is read once, in order
    with pytest.raises(DataError, match="fewer than data.seq_len"):
        textlm.windows(np.arange(5), 5)


def test_the_stream_is_split_by_position_and_the_vocabulary_fitted_on_train(tmp_path):
    (tmp_path / "t.txt").write_text("ab" * 450 + "xyz" * 30, encoding="utf-8")  # x, y, z only in the last 10 %
    data = textlm.load(_conf(tmp_path / "t.txt", seq_len=10, val_frac=0.05, test_frac=0.05),
                       np.random.default_rng(0))
    vocab = data.meta["vocab"]
    assert vocab[:2] == ["<pad>", "<oov>"] and set(vocab[2:]) == {"a", "b"}  # the closing newline is in the test part
    assert data.meta["tokens"] == {"train": 891, "val": 50, "test": 50}
    assert np.all(data.test.x == 1) and data.meta["oov_share_test"] == 1.0  # unseen characters: <oov>
    assert data.kind == "multiclass" and data.output_size == len(vocab) and data.embedding["vocab_size"] == 4
    assert data.train.x.dtype == np.int64 and data.train.x.shape == (89, 10)


def test_baselines_are_the_unigram_and_interpolated_bigram_cross_entropy():
    V = 4
    train = np.array([2, 3] * 500)
    val = test = np.array([2, 3] * 50)
    b = textlm.baselines(train, val, test, V, chars=100)
    uni = (np.bincount(train, minlength=V) + 1) / (len(train) + V)
    assert b["unigram"]["nats_per_token"] == pytest.approx(-np.mean(np.log(uni[test[1:]])))
    assert b["unigram"]["bits_per_token"] == pytest.approx(b["unigram"]["nats_per_token"] / math.log(2))
    # a perfectly alternating text: the bigram model is almost certain, at the largest interpolation weight
    assert b["bigram_weight"] == pytest.approx(0.95) and b["bigram"]["bits_per_token"] < 0.1 < 1.0 < \
        b["unigram"]["bits_per_token"]
    assert b["bigram"]["bits_per_char"] == pytest.approx(b["bigram"]["bits_per_token"] * 99 / 100)
    sparse = textlm.baselines(train + 5000, val + 5000, test + 5000, 5010, chars=100)  # the sparse path
    assert sparse["bigram"]["nats_per_token"] == pytest.approx(
        textlm.baselines(train, val, test, V, chars=100)["bigram"]["nats_per_token"], abs=0.05)


def test_folders_words_and_bad_text_are_read_or_refused_in_one_line(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.txt").write_text("Second doc, here.", encoding="utf-8")
    (tmp_path / "docs" / "a.txt").write_text("First doc!", encoding="utf-8")
    docs = textlm.read_documents(tmp_path / "docs", None)
    assert docs == ["First doc!", "Second doc, here."]  # sorted by path
    assert textlm.tokens_of(docs, "word", True) == ["first", "doc", "!", "<eos>", "second", "doc", ",", "here",
                                                    ".", "<eos>"]
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError) as err:
        textlm.read_documents(tmp_path / "bad.txt", None)
    assert str(err.value) == f"{tmp_path / 'bad.txt'}: not UTF-8 text (byte 3: unexpected end of data)"
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(DataError, match="the text is empty"):
        textlm.read_documents(tmp_path / "empty.txt", None)
    assert textlm.read_documents(tmp_path / "docs", 12) == ["First doc!", "Se"]  # data.max_chars


def test_a_tiny_lstm_learns_a_periodic_text_and_a_pooled_model_is_refused(tmp_path):
    (tmp_path / "t.txt").write_text("abcde" * 800, encoding="utf-8")
    base = ["data=textlm", f"data.path={tmp_path / 't.txt'}", "data.seq_len=20", "arch=lstm", "arch.hidden_size=16",
            *QUIET]
    with pytest.raises(DataError, match="use arch.pooling=none"):
        api.train(base, tmp_path / "pooled")
    api.train([*base, "arch.pooling=none", "train.epochs=4", "optim.lr=0.02"], tmp_path / "run")
    s = read_summary(tmp_path / "run")
    assert s["status"] == "completed" and s["test_metrics"]["accuracy"] > 0.95


def test_copy_with_the_loss_on_every_step_trains(tmp_path):
    """target_mask None with per-step targets (data.loss_on=all) used to crash the test report."""
    api.train(["data=copy", "data.loss_on=all", "data.copy_len=2", "data.delay=3", "data.n_train=64",
               "data.n_val=16", "data.n_test=16", "arch.pooling=none", "arch.hidden_size=8", "train.epochs=1",
               *QUIET], tmp_path / "run")
    s = read_summary(tmp_path / "run")
    assert s["status"] == "completed" and 0 <= s["test_metrics"]["sequence_accuracy"] <= 1
