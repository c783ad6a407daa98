"""Text to padded token ids: tokenizer, vocabulary fitted on train only, padding and masks.

Ids: 0 = ``<pad>``, 1 = ``<oov>``, then words by descending train frequency (ties by
word, so the vocabulary is the same on every machine). A vocabulary of size V keeps the
V - 2 most frequent train words with at least `min_freq` occurrences; everything else,
including words seen only in the test reviews, maps to ``<oov>``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from rnnlab.data.base import DataError

PAD, OOV = "<pad>", "<oov>"
PAD_ID, OOV_ID = 0, 1
PUNCTUATION = ("strip", "keep")

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,40}>")
# Words with inner apostrophes and hyphens ("don't", "well-made") stay whole; numbers are words.
_WORD = r"[^\W_]+(?:['\-][^\W_]+)*"
_TOKEN = {"strip": re.compile(_WORD), "keep": re.compile(_WORD + r"|[!?.,;:()\"]")}


def tokenize(text: str, lowercase: bool = True, punctuation: str = "strip") -> list[str]:
    """HTML breaks and tags become spaces; words (and, with punctuation=keep, the
    punctuation marks ! ? . , ; : ( ) " as tokens of their own)."""
    text = _TAG.sub(" ", _BREAK.sub(" ", text))
    if lowercase:
        text = text.lower()
    return _TOKEN[punctuation].findall(text)


def fit_vocab(docs: Iterable[Sequence[str]], size: int, min_freq: int = 1) -> list[str]:
    """Words by id: [<pad>, <oov>, most frequent ...] with at most `size` entries."""
    if size < 3:
        raise DataError(f"data.vocab_size must be at least 3 (<pad>, <oov> and one word), got {size}")
    counts = Counter()
    for d in docs:
        counts.update(d)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    return [PAD, OOV, *words[: size - 2]]


def encode(docs: Sequence[Sequence[str]], vocab: Sequence[str], maxlen: int,
           truncating: str = "pre", padding: str = "post") -> tuple[np.ndarray, np.ndarray]:
    """ids (N, maxlen) int32 and mask (N, maxlen) float32 (1 = a real token).

    truncating="pre" keeps the last maxlen tokens (Keras' default; the end of a review
    carries its verdict), "post" the first. padding="post" puts the pad ids after the
    tokens, "pre" before them. An empty document keeps one <oov> token so every sequence
    has at least one real step.
    """
    index = {w: i for i, w in enumerate(vocab)}
    n = len(docs)
    ids = np.zeros((n, maxlen), dtype=np.int32)
    mask = np.zeros((n, maxlen), dtype=np.float32)
    for r, doc in enumerate(docs):
        toks = doc[-maxlen:] if truncating == "pre" else doc[:maxlen]
        row = [index.get(w, OOV_ID) for w in toks] or [OOV_ID]
        k = len(row)
        cols = slice(0, k) if padding == "post" else slice(maxlen - k, maxlen)
        ids[r, cols] = row
        mask[r, cols] = 1.0
    return ids, mask


def load_vectors(path: str, vocab: Sequence[str], dim: int, rng: np.random.Generator,
                 dtype=np.float32) -> tuple[np.ndarray, int]:
    """An embedding matrix (V, dim) from a GloVe-format text file ("word v1 v2 ...").

    Words missing from the file get N(0, 0.1^2) vectors (the pad row zeros). Returns the
    matrix and how many vocabulary words the file covered.
    """
    index = {w: i for i, w in enumerate(vocab)}
    weights = (0.1 * rng.standard_normal((len(vocab), dim))).astype(dtype)
    weights[PAD_ID] = 0
    found = 0
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read pretrained vectors {path}: {exc.strerror or exc}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            i = index.get(parts[0])
            if i is None or i == PAD_ID:
                continue
            if len(parts) - 1 != dim:
                raise DataError(f"{path} line {lineno}: vector of {len(parts) - 1} values, "
                                f"but data.embed_dim is {dim}")
            try:
                weights[i] = np.asarray(parts[1:], dtype=np.float64)
            except ValueError:
                raise DataError(f"{path} line {lineno}: non-numeric vector values") from None
            found += 1
    if found == 0:
        raise DataError(f"{path}: no vocabulary word has a vector (is it a GloVe-format text file?)")
    return weights, found
