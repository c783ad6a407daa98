"""Language modelling on any UTF-8 text (`data=textlm`): predict the next character (or word) at every step.

Source (`data.path`): a text file, a folder (its *.txt files, sorted by path, read recursively) or the IMDB
archive (the default: aclImdb_v1_labeled.tar.gz in $RNNLAB_DATA, its reviews in file order), so it works
out of the box. Documents are joined into one stream with a separator (a newline at character level,
`<eos>` at word level); `data.max_chars` caps how much is read.

Split by position, never shuffled: the first (1 - val_frac - test_frac) of the stream trains, then
validation, then test, so no test text is seen in training. The vocabulary is fitted on the train part:
`<pad>` (id 0), `<oov>` (id 1), then characters (every one seen `min_freq` times) or words (the
`vocab_size` most frequent: a 20k-way softmax dominates the cost on two cores) by frequency.

Samples: each split cut into non-overlapping windows of `seq_len` + 1 tokens; x = window[:-1] (token ids
(N, T)), y = window[1:] (the next token at every step, (N, T) int64), no padding. The model must give an
output at every step (`arch.pooling=none`), classes are the vocabulary.

Baselines (meta["baselines"], cross-entropy on the test part in bits per token and nats): the unigram
model of the train part (add-one smoothing) and the bigram model interpolated with it (Jelinek-Mercer,
the weight chosen on the validation part), computed on the same split as the model; bits per character
at character level, also per character at word level (the bits of a text divided by its characters).

Shapes: x (N, seq_len) int64 token ids, y (N, seq_len) int64.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError, Split, TaskData
from rnnlab.data.paths import resolve_path

DEFAULT_FILE = "aclImdb_v1_labeled.tar.gz"
PAD, OOV = "<pad>", "<oov>"
SEPARATOR = {"char": "\n", "word": "<eos>"}
_WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*|[^\w\s]")
_LAMBDAS = np.linspace(0.05, 0.95, 19)


def read_documents(path: Path, max_chars: int | None) -> list[str]:
    """The documents of a text file (one), a folder of .txt files, or the IMDB archive or folder."""
    if not path.exists():
        raise DataError(f"text not found: {path} (set data.path, or RNNLAB_DATA for the IMDB default)")
    if path.is_file() and not path.name.endswith((".tar.gz", ".tgz", ".tar")):
        docs = [_read(path)]
    elif path.is_dir() and not (path / "aclImdb").is_dir() and not (path / "train").is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise DataError(f"{path}: no .txt files in the folder")
        docs = [_read(p) for p in files]
    else:
        from rnnlab.data.imdb import read_reviews

        found = read_reviews(path)
        docs = [text for part in found.values() for _, _, text in part]
    return _capped([d.replace("<br />", "\n") for d in docs if d.strip()], max_chars, path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _capped(docs: list[str], max_chars: int | None, path: Path) -> list[str]:
    if not docs:
        raise DataError(f"{path}: the text is empty")
    if max_chars is None:
        return docs
    out, total = [], 0
    for d in docs:
        out.append(d[: max_chars - total])
        total += len(out[-1])
        if total >= max_chars:
            break
    return out


def tokens_of(docs: list[str], level: str, lowercase: bool) -> list[str]:
    """One stream of tokens: characters, or words and punctuation marks; documents joined by SEPARATOR."""
    out: list[str] = []
    for d in docs:
        d = d.lower() if lowercase else d
        out.extend(d if level == "char" else _WORD.findall(d))
        out.append(SEPARATOR[level])
    return out


def fit_vocab(train: list[str], level: str, size: int, min_freq: int) -> list[str]:
    counts = Counter(train)
    ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    if level == "word":
        ranked = ranked[: size - 2]
    return [PAD, OOV, *ranked]


def encode(text: str, vocab: list[str], level: str, lowercase: bool = False) -> tuple[np.ndarray, list[str]]:
    """Token ids of a text in a fitted vocabulary, and the tokens it does not have (in order of appearance):
    at word level those map to <oov>; at character level the caller refuses them (a character model has
    never seen them)."""
    text = text.lower() if lowercase else text
    tokens = list(text) if level == "char" else _WORD.findall(text)
    index = {t: i for i, t in enumerate(vocab)}
    unknown = list(dict.fromkeys(t for t in tokens if t not in index or t in (PAD, OOV)))
    return np.array([index.get(t, 1) for t in tokens], dtype=np.int64), unknown


def decode(ids, vocab: list[str], level: str) -> str:
    """Text of token ids: characters joined; words joined by spaces, none before punctuation, <eos> a newline."""
    tokens = [vocab[int(i)] for i in ids]
    if level == "char":
        return "".join(tokens)
    out = ""
    for t in tokens:
        if t == SEPARATOR["word"]:
            out += "\n"
        elif out and not out.endswith(("\n", "(", '"')) and not re.fullmatch(r"[.,!?;:)\]}%]", t):
            out += " " + t
        else:
            out += t
    return out


def windows(ids: np.ndarray, seq_len: int) -> Split:
    """Non-overlapping windows of seq_len + 1 ids: x the first seq_len, y the next token at each step."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise DataError(f"a split has {len(ids)} tokens, fewer than data.seq_len + 1 = {seq_len + 1}: "
                        "lower data.seq_len or give more text")
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return Split(x.astype(np.int64), y.astype(np.int64))


def baselines(train: np.ndarray, val: np.ndarray, test: np.ndarray, V: int, chars: int) -> dict:
    """Unigram (add-one) and interpolated bigram cross-entropy on the test ids, per token and per character
    (chars: the test part's characters)."""
    uni = (np.bincount(train, minlength=V) + 1.0) / (len(train) + V)
    pair = np.zeros((V, V)) if V <= 1024 else None  # dense pair counts up to 8 MB
    if pair is None:  # a word vocabulary: counts of the pairs seen, sparse
        keys, counts = np.unique(train[:-1] * V + train[1:], return_counts=True)
    else:
        np.add.at(pair, (train[:-1], train[1:]), 1.0)
        keys = counts = None
    first = np.bincount(train[:-1], minlength=V).astype(np.float64)

    def bigram_p(a, b):
        if pair is not None:
            c = pair[a, b]
        else:
            pos = np.searchsorted(keys, a * V + b)
            pos = np.minimum(pos, len(keys) - 1)
            c = np.where(keys[pos] == a * V + b, counts[pos], 0.0)
        return np.divide(c, first[a], out=np.zeros(len(a)), where=first[a] > 0)

    def ce(ids, lam):  # nats per predicted token
        p = lam * bigram_p(ids[:-1], ids[1:]) + (1 - lam) * uni[ids[1:]]
        return float(-np.mean(np.log(p)))

    lam = min(_LAMBDAS, key=lambda w: ce(val, w))
    out = {"unigram": float(-np.mean(np.log(uni[test[1:]]))), "bigram": ce(test, lam)}
    per_char = (len(test) - 1) / max(chars, 1)
    return {name: {"nats_per_token": v, "bits_per_token": v / math.log(2), "bits_per_char": v / math.log(2) * per_char}
            for name, v in out.items()} | {"bigram_weight": float(lam)}


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    path = resolve_path(cfg.path, DEFAULT_FILE)
    tokens = tokens_of(read_documents(path, cfg.max_chars), cfg.level, cfg.lowercase)
    n = len(tokens)
    a, b = int(n * (1 - cfg.val_frac - cfg.test_frac)), int(n * (1 - cfg.test_frac))
    vocab = fit_vocab(tokens[:a], cfg.level, cfg.vocab_size, cfg.min_freq)
    index = {t: i for i, t in enumerate(vocab)}
    ids = np.fromiter((index.get(t, 1) for t in tokens), dtype=np.int64, count=n)
    parts = {"train": ids[:a], "val": ids[a:b], "test": ids[b:]}
    splits = {k: windows(v, cfg.seq_len) for k, v in parts.items()}
    chars = sum(len(t) for t in tokens[b:])
    starts = {"train": 0, "val": a, "test": b}
    scored = {k: tokens[starts[k] : starts[k] + len(s.y) * cfg.seq_len + 1] for k, s in splits.items()}
    meta = {"task": "textlm", "path": str(path), "level": cfg.level, "lowercase": cfg.lowercase, "vocab": vocab,
            "seq_len": cfg.seq_len,
            "tokens": {k: int(len(v)) for k, v in parts.items()},
            "oov_share_test": float(np.mean(parts["test"] == 1)),
            # characters per predicted token of each split's windows: bits per char = bits per token / this
            "chars_per_token": {k: sum(len(t) for t in v[1:]) / max(len(v) - 1, 1) for k, v in scored.items()},
            "baselines": baselines(parts["train"], parts["val"], parts["test"], len(vocab), chars)}
    return TaskData(kind="multiclass", train=splits["train"], val=splits["val"], test=splits["test"],
                    input_size=cfg.embed_dim, output_size=len(vocab), default_loss="cross_entropy", meta=meta,
                    embedding={"vocab_size": len(vocab), "dim": cfg.embed_dim, "weights": None, "trainable": True,
                               "padding_idx": 0}, contiguous=True)
