"""IMDB reviews (data=imdb) on a tiny aclImdb tree: folder, parent folder and .tar.gz inputs,
stratified validation split, train-only vocabulary, class-balanced subsampling, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.config.schema import ImdbConf
from rnnlab.config.validate import ConfigError
from rnnlab.data import imdb, registry, text
from rnnlab.data.base import DataError
from tests.data import imdb_tree as tree

N_PER = 12  # reviews per split and label in the tiny tree


def _load(path, seed=0, **kw):
    kw = {"vocab_size": 1000, "maxlen": 30, "val_frac": 0.25, "embed_dim": 8, **kw}
    return imdb.load(ImdbConf(path=str(path), **kw), np.random.default_rng(seed))


@pytest.fixture(scope="module")
def acl(tmp_path_factory):
    """The aclImdb folder of a tiny tree."""
    return tree.write_folder(tmp_path_factory.mktemp("imdb"), N_PER)


@pytest.fixture(scope="module")
def data(acl):
    return _load(acl)


def _ids_of(d, word):
    vocab = d.meta["vocab"]
    return vocab.index(word) if word in vocab else text.OOV_ID


# ---------------------------------------------------------------- what load() gives


def test_shapes_kind_and_labels(data):
    d = data
    assert d.kind == "binary" and d.output_size == 1 and d.default_loss == "bce"
    assert d.classes == ["neg", "pos"]
    assert d.input_size == 8
    assert len(d.train) + len(d.val) == 2 * N_PER and len(d.test) == 2 * N_PER
    for s in (d.train, d.val, d.test):
        assert s.x.shape == s.mask.shape == (len(s), 30)
        assert s.x.dtype == np.int32 and s.mask.dtype == np.float32
        assert s.y.shape == (len(s),) and set(np.unique(s.y)) <= {0, 1}
        # post padding: the real tokens come first, every review has at least one
        assert (s.mask.sum(axis=1) >= 1).all()
        np.testing.assert_array_equal(s.mask > 0, s.x != text.PAD_ID)
        np.testing.assert_array_equal(np.diff(s.mask, axis=1) <= 0, True)
    # labels: 1 = positive, i.e. the reviews rated 7..10
    info = d.test.info
    np.testing.assert_array_equal(d.test.y, (info["rating"].to_numpy() >= 7).astype(int))
    assert (d.test.y == 1).sum() == N_PER
    assert d.embedding == {"vocab_size": len(d.meta["vocab"]), "dim": 8, "weights": None, "trainable": True,
                           "padding_idx": 0}


def test_sentiment_words_land_where_they_belong(data):
    """Positive words occur in positive reviews only: the tokens really come from the right files."""
    d = data
    pos_ids = {_ids_of(d, w) for w in tree.POS_WORDS}
    neg_ids = {_ids_of(d, w) for w in tree.NEG_WORDS}
    assert text.OOV_ID not in pos_ids | neg_ids
    for s in (d.train, d.val, d.test):
        for row, label in zip(s.x, s.y, strict=True):
            toks = set(row.tolist())
            assert toks & (pos_ids if label else neg_ids)
            assert not toks & (neg_ids if label else pos_ids)


def test_masks_match_token_counts(data, acl):
    info = data.test.info
    # the tokenizer drops the <br /> tags: the counted tokens are the words of the text
    for k in range(len(info)):
        n = len(text.tokenize(info["text"][k]))
        assert info["tokens"][k] == n
        assert data.test.mask[k].sum() == min(n, 30)


def test_test_info_columns(data, acl):
    info = data.test.info
    assert list(info.columns) == ["review", "rating", "tokens", "text"]
    assert len(info) == len(data.test)
    for k in range(len(info)):
        label = "pos" if data.test.y[k] else "neg"
        review_id = info["review"][k]
        body = (acl / "test" / label / f"{review_id}.txt").read_text()
        assert info["text"][k] == body  # the raw text, <br /> tags and all
        assert int(review_id.split("_")[1]) == info["rating"][k]
    assert any("<br />" in t for t in info["text"])
    assert data.train.info is None and data.val.info is None


def test_validation_split_is_stratified(acl):
    for val_frac, k in [(0.25, 3), (0.5, 6), (0.1, 1)]:
        d = _load(acl, val_frac=val_frac)
        assert len(d.val) == 2 * k
        assert (d.val.y == 1).sum() == k and (d.val.y == 0).sum() == k
        assert (d.train.y == 1).sum() == N_PER - k and (d.train.y == 0).sum() == N_PER - k


def test_vocabulary_comes_from_the_training_part_only(data):
    d = data
    vocab = d.meta["vocab"]
    assert vocab[:2] == ["<pad>", "<oov>"]
    assert d.meta["vocab_size"] == len(vocab)
    # a word that occurs only in a test review is unknown
    assert tree.TEST_ONLY_WORD not in vocab
    assert not any(w.startswith("idtest") for w in vocab)
    assert d.meta["oov_rate_test"] > 0
    # every training review has its own marker word: exactly the markers of the reviews left in
    # the train part are in the vocabulary; those of the (stratified) validation part are not
    markers = [w for w in vocab if w.startswith("idtrain")]
    assert len(markers) == len(d.train) == 2 * N_PER - len(d.val)
    train_markers = {vocab[i] for row in d.train.x for i in row if vocab[i].startswith("idtrain")}
    assert train_markers == set(markers)
    # each val review's marker (its last token) is <oov>: it was not fitted on
    for row, m in zip(d.val.x, d.val.mask, strict=True):
        assert row[int(m.sum()) - 1] == text.OOV_ID
    # and the test review with the test-only word ends in <oov>, <oov> (marker and word)
    first = d.test.info.index[d.test.info["review"].isin(["0_1", "0_7"])]
    for k in first:
        n = int(d.test.mask[k].sum())
        assert d.test.x[k, n - 2 : n].tolist() == [text.OOV_ID, text.OOV_ID]


def test_vocab_size_limit_and_frequency_order(acl):
    d = _load(acl, vocab_size=5)
    assert len(d.meta["vocab"]) == 5 and d.embedding["vocab_size"] == 5
    assert int(d.train.x.max()) <= 4
    full = _load(acl)
    assert d.meta["vocab"] == full.meta["vocab"][:5]  # the most frequent words first


def test_truncation_pre_keeps_the_end_post_keeps_the_start(acl):
    pre = _load(acl, maxlen=4, truncating="pre")
    post = _load(acl, maxlen=4, truncating="post")
    vocab = pre.meta["vocab"]
    for k in range(len(pre.test)):
        toks = text.tokenize(pre.test.info["text"][k])
        enc = [vocab.index(w) if w in vocab else 1 for w in toks]
        assert pre.test.x[k][pre.test.mask[k] > 0].tolist() == enc[-4:]
        assert post.test.x[k][post.test.mask[k] > 0].tolist() == enc[:4]
    assert pre.meta["truncated_frac"] == 1.0  # every review is longer than 4 tokens


def test_pre_padding_and_punctuation(acl):
    d = _load(acl, padding="pre", punctuation="keep")
    assert (d.test.mask[:, -1] == 1).all()  # real tokens end at the last column
    assert "." in d.meta["vocab"]  # every review ends with a full stop
    assert d.meta["padding"] == "pre" and d.meta["punctuation"] == "keep"


def test_meta_fields(data, acl):
    m = data.meta
    assert m["task"] == "imdb" and m["path"] == str(acl)
    assert (m["maxlen"], m["truncating"], m["padding"]) == (30, "pre", "post")
    assert m["lowercase"] is True and m["punctuation"] == "strip"
    assert m["pretrained"] is None and m["pretrained_coverage"] is None
    assert m["truncated_frac"] == 0.0  # the tiny reviews are shorter than 30 tokens
    assert 5 <= m["tokens_median"] <= 20
    x, mask = data.test.x, data.test.mask
    assert m["oov_rate_test"] == pytest.approx(np.mean(x[mask > 0] == text.OOV_ID))


def test_same_seed_same_data_other_seed_other_split(acl, data):
    again = _load(acl)
    np.testing.assert_array_equal(again.train.x, data.train.x)
    np.testing.assert_array_equal(again.val.x, data.val.x)
    other = _load(acl, seed=1)
    assert not np.array_equal(other.val.x, data.val.x)


def test_registry_dispatches_to_imdb(acl):
    d = registry.load(ImdbConf(path=str(acl), val_frac=0.25), np.random.default_rng(0), np.float32)
    assert d.kind == "binary" and d.meta["task"] == "imdb"


# ---------------------------------------------------------------- the input forms


def _same(a, b):
    for name in ("train", "val", "test"):
        sa, sb = getattr(a, name), getattr(b, name)
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
        np.testing.assert_array_equal(sa.mask, sb.mask)
    assert a.meta["vocab"] == b.meta["vocab"]
    assert a.test.info.equals(b.test.info)


def test_parent_folder_and_tarballs_read_the_same(tmp_path, acl, data):
    _same(_load(acl.parent), data)  # the folder that holds aclImdb/
    archive = tree.write_tar(tmp_path / "aclImdb_v1.tar.gz", N_PER)
    _same(_load(archive), data)
    # the original archive's train/unsup reviews, README and vocab file are ignored
    full = tree.write_tar(tmp_path / "aclImdb_full.tar.gz", N_PER, extra=tree.UNSUP_EXTRA)
    _same(_load(full), data)


def test_folder_with_unsup_and_readme_is_read_the_same(tmp_path, data):
    acl = tree.write_folder(tmp_path, N_PER, extra=tree.UNSUP_EXTRA)
    _same(_load(acl), data)


def test_non_review_files_are_ignored(tmp_path, data):
    acl = tree.write_folder(tmp_path, N_PER, extra={"train/pos/notes.txt": "great great great",
                                                    "test/neg/urls_neg.txt": "http://x"})
    _same(_load(acl), data)


def test_relative_path_inside_rnnlab_data(tmp_path, monkeypatch, data):
    tree.write_folder(tmp_path / "store", N_PER)
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    assert imdb.resolve_path("aclImdb") == tmp_path / "store" / "aclImdb"
    _same(_load("aclImdb"), data)
    assert imdb.resolve_path(None, imdb.DEFAULT_FILE) == tmp_path / "store" / imdb.DEFAULT_FILE


# ---------------------------------------------------------------- subsampling


def test_subsampling_is_class_balanced(acl):
    d = _load(acl, n_train=10, n_test=7, val_frac=0.2)
    assert len(d.train) + len(d.val) == 10
    assert (np.r_[d.train.y, d.val.y] == 1).sum() == 5
    assert (d.val.y == 1).sum() == 1 and (d.val.y == 0).sum() == 1
    assert len(d.test) == 7 and sorted(np.bincount(d.test.y).tolist()) == [3, 4]
    assert len(d.test.info) == 7
    # different seeds pick different reviews
    e = _load(acl, n_train=10, n_test=7, val_frac=0.2, seed=3)
    assert set(d.test.info["review"] + d.test.y.astype(str)) != set(e.test.info["review"] + e.test.y.astype(str))


def test_subsample_larger_than_the_data_keeps_everything(acl, data):
    d = _load(acl, n_train=1000, n_test=1000)
    _same(d, data)


def test_val_frac_that_leaves_no_validation_is_an_error(acl):
    with pytest.raises(DataError, match=r"data.val_frac=0.1 leaves no reviews"):
        _load(acl, n_train=4, val_frac=0.1)


# ---------------------------------------------------------------- pretrained vectors


def test_pretrained_vectors_and_freezing(tmp_path, acl):
    vec = tmp_path / "glove.txt"
    vec.write_text("great 1 2 3 4 5 6 7 8\nawful -1 -2 -3 -4 -5 -6 -7 -8\nnotaword 0 0 0 0 0 0 0 0\n")
    d = _load(acl, pretrained=str(vec), freeze_embeddings=True)
    w = d.embedding["weights"]
    vocab = d.meta["vocab"]
    assert w.shape == (len(vocab), 8) and w.dtype == np.float32
    np.testing.assert_array_equal(w[vocab.index("great")], np.arange(1, 9))
    np.testing.assert_array_equal(w[0], 0)
    assert d.embedding["trainable"] is False
    assert d.meta["pretrained_coverage"] == 2 and d.meta["pretrained"] == str(vec)


def test_pretrained_with_the_wrong_dimension(tmp_path, acl):
    vec = tmp_path / "glove.txt"
    vec.write_text("great 1 2 3\n")
    with pytest.raises(DataError, match="line 1: vector of 3 values, but data.embed_dim is 8"):
        _load(acl, pretrained=str(vec))


# ---------------------------------------------------------------- bad input: one clear line


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg, msg
    return msg


def test_missing_path(tmp_path):
    with pytest.raises(DataError) as exc:
        _load(tmp_path / "nowhere")
    msg = _one_line(exc)
    assert msg.startswith("IMDB data not found:") and str(tmp_path / "nowhere") in msg


def test_folder_without_the_layout_names_the_missing_folders(tmp_path):
    acl = tmp_path / "aclImdb"
    for part in ("train/pos", "train/neg", "test/pos"):
        (acl / part).mkdir(parents=True)
        (acl / part / "0_8.txt").write_text("fine film")
    (acl / "test" / "neg").mkdir()
    (acl / "test" / "neg" / "notes.md").write_text("not a review")
    with pytest.raises(DataError) as exc:
        _load(acl)
    msg = _one_line(exc)
    assert "does not have the aclImdb layout" in msg and "test/neg" in msg
    assert "train/pos" not in msg and "test/pos" not in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as exc:
        _load(empty)
    msg = _one_line(exc)
    assert all(p in msg for p in ("train/neg", "train/pos", "test/neg", "test/pos"))


def test_archive_without_the_layout(tmp_path):
    import tarfile

    path = tmp_path / "other.tar.gz"
    src = tmp_path / "readme.txt"
    src.write_text("hello")
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src, arcname="something/readme.txt")
    with pytest.raises(DataError) as exc:
        _load(path)
    assert "does not have the aclImdb layout" in _one_line(exc)


@pytest.mark.parametrize("corruption", ["junk", "truncated", "flipped"])
def test_corrupt_archive_is_one_line(tmp_path, corruption):
    raw = tree.write_tar(tmp_path / "good.tar.gz", N_PER).read_bytes()
    if corruption == "junk":
        bad = b"this is not an archive\n" * 20
    elif corruption == "truncated":
        bad = raw[: len(raw) // 2]
    else:  # bytes flipped right behind the gzip header: the first tar header cannot be read
        b = bytearray(raw)
        for i in range(200, len(b) - 100, 37):
            b[i] ^= 0xFF
        bad = bytes(b)
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(bad)
    with pytest.raises(DataError) as exc:
        _load(path)
    msg = _one_line(exc)
    assert msg.startswith(f"cannot read {path} as an aclImdb folder or tar archive")


# ---------------------------------------------------------------- config errors via the schema


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.vocab_size=0"], "data.vocab_size must be >= 3 (got 0)"),
        (["data.maxlen=0"], "data.maxlen must be >= 1 (got 0)"),
        (["data.truncating=middle"], "data.truncating must be one of pre, post (got 'middle')"),
        (["data.padding=both"], "data.padding must be one of pre, post (got 'both')"),
        (["data.punctuation=drop"], "data.punctuation must be one of strip, keep (got 'drop')"),
        (["data.freeze_embeddings=true"], "data.freeze_embeddings=true needs data.pretrained"),
        (["data.val_frac=0.95"], "data.val_frac must be in (0, 0.9)"),
        (["data.n_train=1"], "data.n_train must be >= 2 (got 1)"),
        (["data.maxlen=abc"], "data.maxlen: Value 'abc' could not be converted to Integer"),
        (["data.bogus=1"], "unknown key 'data.bogus'"),
    ],
)
def test_bad_imdb_config_names_the_key(overrides, message):
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(["data=imdb", *overrides])
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_freeze_with_pretrained_is_accepted():
    rc = compose_and_validate(["data=imdb", "data.pretrained=glove.txt", "data.freeze_embeddings=true"])
    assert rc.data.freeze_embeddings is True and rc.data.pretrained == "glove.txt"
