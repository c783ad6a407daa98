"""Text to token ids: tokenizer, train-only vocabulary, truncation/padding/masks, GloVe vectors."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.data import text
from rnnlab.data.base import DataError
from rnnlab.data.text import OOV, OOV_ID, PAD, PAD_ID, encode, fit_vocab, load_vectors, tokenize

# ---------------------------------------------------------------- tokenize


def test_tokenize_lowercases_and_drops_html():
    toks = tokenize("A GREAT Movie.<br /><br />The <i>best</i> one<BR>ever<br/>made")
    assert toks == ["a", "great", "movie", "the", "best", "one", "ever", "made"]
    assert not any("<" in t or ">" in t or t in ("br", "i") for t in toks)


def test_tokenize_keeps_case_when_asked():
    assert tokenize("Great MOVIE", lowercase=False) == ["Great", "MOVIE"]


def test_tokenize_keeps_inner_apostrophes_and_hyphens():
    toks = tokenize("I didn't like this well-made, over-the-top film. It's 10/10 -- 'quoted'")
    assert "didn't" in toks and "well-made" in toks and "over-the-top" in toks and "it's" in toks
    assert toks.count("10") == 2
    # dangling apostrophes and dashes are not part of a word and not tokens with strip
    assert "'quoted'" not in toks and "quoted" in toks
    assert "--" not in toks and "-" not in toks


def test_tokenize_strip_drops_punctuation():
    assert tokenize("Wow!!! Really? Yes, (no); fine: \"ok\".") == ["wow", "really", "yes", "no", "fine", "ok"]


def test_tokenize_keep_makes_punctuation_tokens():
    toks = tokenize("Wow!!! Really? Yes, (no); fine: \"ok\".", punctuation="keep")
    assert toks == ["wow", "!", "!", "!", "really", "?", "yes", ",", "(", "no", ")", ";",
                    "fine", ":", '"', "ok", '"', "."]
    # words keep their apostrophes with punctuation=keep too
    assert tokenize("Don't!", punctuation="keep") == ["don't", "!"]


def test_tokenize_empty_and_tags_only():
    assert tokenize("") == []
    assert tokenize("<br /><br />") == []


# ---------------------------------------------------------------- fit_vocab


def test_fit_vocab_orders_by_frequency_then_word():
    docs = [["b", "a", "c", "a"], ["c", "d", "a"], ["b", "e"]]
    # counts: a 3, b 2, c 2, d 1, e 1  -> ties broken alphabetically
    assert fit_vocab(docs, size=100) == [PAD, OOV, "a", "b", "c", "d", "e"]
    assert fit_vocab(reversed(docs), size=100) == fit_vocab(docs, size=100)  # order of docs is irrelevant


def test_fit_vocab_size_limit_and_special_ids():
    docs = [["b", "a", "c", "a"], ["c", "d", "a"], ["b", "e"]]
    v = fit_vocab(docs, size=4)
    assert v == [PAD, OOV, "a", "b"]
    assert v[PAD_ID] == "<pad>" and v[OOV_ID] == "<oov>"
    assert fit_vocab(docs, size=3) == [PAD, OOV, "a"]


def test_fit_vocab_min_freq():
    docs = [["b", "a", "c", "a"], ["c", "d", "a"], ["b", "e"]]
    assert fit_vocab(docs, size=100, min_freq=2) == [PAD, OOV, "a", "b", "c"]
    assert fit_vocab(docs, size=100, min_freq=3) == [PAD, OOV, "a"]
    assert fit_vocab(docs, size=100, min_freq=4) == [PAD, OOV]


def test_fit_vocab_accepts_a_generator():
    assert fit_vocab((d for d in [["x"], ["y", "x"]]), size=10) == [PAD, OOV, "x", "y"]


@pytest.mark.parametrize("size", [0, 1, 2, -5])
def test_fit_vocab_too_small_is_a_data_error(size):
    with pytest.raises(DataError, match="vocab_size must be at least 3"):
        fit_vocab([["a"]], size=size)


# ---------------------------------------------------------------- encode

VOCAB = [PAD, OOV, "a", "b", "c", "d", "e"]
IDS = {w: i for i, w in enumerate(VOCAB)}


def _ids(words):
    return [IDS[w] for w in words]


def test_encode_pre_truncation_keeps_the_end():
    ids, mask = encode([list("abcde")], VOCAB, maxlen=3, truncating="pre")
    assert ids.tolist() == [_ids("cde")]
    assert mask.tolist() == [[1, 1, 1]]


def test_encode_post_truncation_keeps_the_start():
    ids, _ = encode([list("abcde")], VOCAB, maxlen=3, truncating="post")
    assert ids.tolist() == [_ids("abc")]


def test_encode_post_and_pre_padding_with_masks():
    docs = [list("ab"), list("abcd"), list("c")]
    ids, mask = encode(docs, VOCAB, maxlen=4, padding="post")
    assert ids.dtype == np.int32 and mask.dtype == np.float32
    assert ids.shape == mask.shape == (3, 4)
    assert ids.tolist() == [[2, 3, 0, 0], [2, 3, 4, 5], [4, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    ids, mask = encode(docs, VOCAB, maxlen=4, padding="pre")
    assert ids.tolist() == [[0, 0, 2, 3], [2, 3, 4, 5], [0, 0, 0, 4]]
    assert mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]]
    # the mask is exactly where the ids are not padding (no word has id 0)
    np.testing.assert_array_equal(mask > 0, ids != PAD_ID)


def test_encode_truncation_and_padding_combine():
    ids, mask = encode([list("abcde"), list("e")], VOCAB, maxlen=3, truncating="post", padding="pre")
    assert ids.tolist() == [_ids("abc"), [0, 0, IDS["e"]]]
    assert mask.sum(axis=1).tolist() == [3, 1]


def test_encode_unknown_words_map_to_oov():
    ids, mask = encode([["a", "zebra", "b", "Zebra"]], VOCAB, maxlen=5)
    assert ids[0].tolist() == [IDS["a"], OOV_ID, IDS["b"], OOV_ID, PAD_ID]
    assert mask[0].tolist() == [1, 1, 1, 1, 0]


def test_tokenizer_never_produces_the_special_tokens():
    # "<pad>"/"<oov>" typed in a review are removed like tags, so they cannot collide with ids 0/1
    assert tokenize("a <pad> b <oov> c") == ["a", "b", "c"]


def test_encode_empty_document_is_one_oov_token():
    for padding in ("post", "pre"):
        ids, mask = encode([[], list("ab")], VOCAB, maxlen=3, padding=padding)
        assert mask[0].sum() == 1
        assert ids[0][mask[0] > 0].tolist() == [OOV_ID]
        assert (ids[0][mask[0] == 0] == PAD_ID).all()
    ids, mask = encode([[]], VOCAB, maxlen=3, padding="post")
    assert ids.tolist() == [[OOV_ID, 0, 0]]
    ids, mask = encode([[]], VOCAB, maxlen=3, padding="pre")
    assert ids.tolist() == [[0, 0, OOV_ID]]


def test_encode_no_documents():
    ids, mask = encode([], VOCAB, maxlen=4)
    assert ids.shape == mask.shape == (0, 4)


# ---------------------------------------------------------------- load_vectors


def _glove(tmp_path, lines, name="vec.txt"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_load_vectors_sets_rows_and_fills_the_rest(tmp_path):
    vocab = [PAD, OOV, "good", "bad", "meh"]
    path = _glove(tmp_path, [
        "good 0.1 0.2 0.3",
        "unrelated 9 9 9",  # not in the vocabulary: skipped
        "bad -1 -2 -3.5",
        "",  # blank lines are skipped
    ])
    w, found = load_vectors(str(path), vocab, dim=3, rng=np.random.default_rng(0))
    assert found == 2
    assert w.shape == (5, 3) and w.dtype == np.float32
    np.testing.assert_allclose(w[2], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(w[3], [-1, -2, -3.5])
    np.testing.assert_array_equal(w[PAD_ID], 0)
    # missing words (<oov>, "meh") get small random vectors, different from each other
    for i in (OOV_ID, 4):
        assert np.all(np.isfinite(w[i])) and np.any(w[i] != 0) and np.abs(w[i]).max() < 1.0
    assert not np.allclose(w[OOV_ID], w[4])
    # seeded: the same rng seed gives the same matrix
    w2, _ = load_vectors(str(path), vocab, dim=3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(w, w2)
    w64, _ = load_vectors(str(path), vocab, dim=3, rng=np.random.default_rng(0), dtype=np.float64)
    assert w64.dtype == np.float64


def test_load_vectors_pad_row_stays_zero_even_if_the_file_has_it(tmp_path):
    path = _glove(tmp_path, ["<pad> 5 5", "good 1 2"])
    w, found = load_vectors(str(path), [PAD, OOV, "good"], dim=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(w[PAD_ID], 0)
    assert found == 1


def test_load_vectors_wrong_dim_names_the_line(tmp_path):
    path = _glove(tmp_path, ["good 0.1 0.2 0.3", "unrelated 1 2", "bad 1 2"])
    with pytest.raises(DataError) as exc:
        load_vectors(str(path), [PAD, OOV, "good", "bad"], dim=3, rng=np.random.default_rng(0))
    msg = str(exc.value)
    assert "line 3" in msg and "2 values" in msg and "embed_dim is 3" in msg
    assert "\n" not in msg


def test_load_vectors_non_numeric_names_the_line(tmp_path):
    path = _glove(tmp_path, ["good 0.1 x"])
    with pytest.raises(DataError, match="line 1: non-numeric"):
        load_vectors(str(path), [PAD, OOV, "good"], dim=2, rng=np.random.default_rng(0))


def test_load_vectors_without_coverage_is_an_error(tmp_path):
    path = _glove(tmp_path, ["other 1 2", "words 3 4"])
    with pytest.raises(DataError, match="no vocabulary word has a vector"):
        load_vectors(str(path), [PAD, OOV, "good"], dim=2, rng=np.random.default_rng(0))


def test_load_vectors_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError) as exc:
        load_vectors(str(missing), [PAD, OOV, "good"], dim=2, rng=np.random.default_rng(0))
    assert "cannot read pretrained vectors" in str(exc.value) and str(missing) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_module_constants():
    assert (text.PAD_ID, text.OOV_ID) == (0, 1)


def test_tag_stripping_keeps_text_between_angle_brackets():
    assert text.tokenize("rated it <3 stars but > average<br />Great <i>film</i>!") == [
        "rated", "it", "3", "stars", "but", "average", "great", "film"]
