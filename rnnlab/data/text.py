"""Text to padded token ids: tokenizer, vocabulary fitted on train only, padding and masks.

Ids: 0 = ``<pad>``, 1 = ``<oov>``, then words by descending train frequency (ties by
word, so the vocabulary is the same on every machine). A vocabulary of size V keeps the
V - 2 most frequent train words with at least `min_freq` occurrences; everything else,
including words seen only in the test reviews, maps to ``<oov>``.
"""

from __future__ import annotations

import re
from array import array
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
    corpus = Corpus(docs)
    return corpus.fit_vocab(np.arange(len(corpus)), size, min_freq)


def encode(docs: Sequence[Sequence[str]], vocab: Sequence[str], maxlen: int,
           truncating: str = "pre", padding: str = "post") -> tuple[np.ndarray, np.ndarray]:
    """ids (N, maxlen) int32 and mask (N, maxlen) float32 (1 = a real token).

    truncating="pre" keeps the last maxlen tokens (Keras' default; the end of a review
    carries its verdict), "post" the first. padding="post" puts the pad ids after the
    tokens, "pre" before them. An empty document keeps one <oov> token so every sequence
    has at least one real step.
    """
    corpus = Corpus(docs)
    return corpus.encode(np.arange(len(corpus)), vocab, maxlen, truncating, padding)


class Corpus:
    """Tokenised documents kept as ids into the table of their distinct words (4 bytes a token rather
    than a string each), so that a vocabulary can be fitted on any subset of them and every document
    encoded with it without tokenising again: cross-validation refits the IMDB vocabulary per fold."""

    def __init__(self, docs: Iterable[Sequence[str]]):
        self.index: dict[str, int] = {}
        tokens, lengths = array("i"), [0]
        for doc in docs:
            tokens.extend(self.index.setdefault(w, len(self.index)) for w in doc)  # a new word: the next id
            lengths.append(len(doc))
        self.words = list(self.index)
        self.tokens = np.frombuffer(tokens, dtype=np.intc) if tokens else np.zeros(0, dtype=np.intc)
        self.starts = np.cumsum(lengths)  # document r is tokens[starts[r]:starts[r + 1]]

    def __len__(self) -> int:
        return len(self.starts) - 1

    def lengths(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Tokens of documents `rows` (all by default)."""
        return np.diff(self.starts)[rows]

    def fit_vocab(self, rows: np.ndarray, size: int, min_freq: int = 1) -> list[str]:
        """The vocabulary of documents `rows`: [<pad>, <oov>, most frequent ...], at most `size` entries,
        words with at least min_freq occurrences, ties in frequency broken by the word."""
        if size < 3:
            raise DataError(f"data.vocab_size must be at least 3 (<pad>, <oov> and one word), got {size}")
        chosen = np.zeros(len(self), dtype=bool)
        chosen[rows] = True
        counts = np.bincount(self.tokens[np.repeat(chosen, self.lengths())], minlength=len(self.words))
        kept = np.flatnonzero(counts >= max(min_freq, 1))
        words = sorted(kept.tolist(), key=lambda i: (-counts[i], self.words[i]))
        return [PAD, OOV, *(self.words[i] for i in words[: size - 2])]

    def encode(self, rows: np.ndarray, vocab: Sequence[str], maxlen: int, truncating: str = "pre",
               padding: str = "post") -> tuple[np.ndarray, np.ndarray]:
        """Documents `rows` as ids (len(rows), maxlen) and mask, as `encode` (words not in vocab are <oov>)."""
        lookup = np.full(len(self.words), OOV_ID, dtype=np.int32)
        for i, w in enumerate(vocab):
            if w in self.index:
                lookup[self.index[w]] = i
        ids = np.zeros((len(rows), maxlen), dtype=np.int32)
        mask = np.zeros((len(rows), maxlen), dtype=np.float32)
        for r, doc in enumerate(rows):
            start, stop = self.starts[doc], self.starts[doc + 1]
            if truncating == "pre":
                start = max(start, stop - maxlen)
            else:
                stop = min(stop, start + maxlen)
            row = lookup[self.tokens[start:stop]] if stop > start else [OOV_ID]
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
