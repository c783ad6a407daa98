"""IMDB movie reviews (Maas et al. 2011): binary sentiment from the aclImdb layout.

Reads ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` from the extracted folder
(the aclImdb folder or the folder holding it) or straight from the ``.tar.gz`` (the
original Stanford archive, whose ``train/unsup`` part is ignored, or the labelled-only
one in ../shared/data). The vocabulary is fitted on the training reviews only (a
cross-validation fold refits it on the fold's training reviews: TaskData.refit); a
stratified `val_frac` of them is held out for validation (model selection and the
decision threshold), and the 25k test reviews are touched once, at the end.

Inputs are token ids (N, maxlen) with a mask (N, maxlen); labels 1 = positive.
"""

from __future__ import annotations

import copy
import re
import tarfile
from itertools import chain
from pathlib import Path

import numpy as np

from rnnlab.data import text
from rnnlab.data.base import DataError, Refit, Split, TaskData
from rnnlab.data.paths import resolve_path

DEFAULT_FILE = "aclImdb_v1_labeled.tar.gz"
_PARTS = [(split, label) for split in ("train", "test") for label in ("neg", "pos")]
_NAME = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def read_reviews(path: Path) -> dict[tuple[str, str], list[tuple[str, int, str]]]:
    """{(split, label): [(file id, rating, text), ...]} sorted by file id, from a folder or archive."""
    if not path.exists():
        raise DataError(f"IMDB data not found: {path} (set data.path or RNNLAB_DATA)")
    found: dict[tuple[str, str], list] = {k: [] for k in _PARTS}
    if path.is_dir():
        root = path / "aclImdb" if (path / "aclImdb").is_dir() else path
        for split, label in _PARTS:
            folder = root / split / label
            for f in folder.glob("*.txt") if folder.is_dir() else ():
                m = _NAME.search(f"{split}/{label}/{f.name}")
                if m:
                    body = f.read_text(encoding="utf-8", errors="replace")
                    found[split, label].append((f.stem, int(m.group(4)), body))
    else:
        try:
            with tarfile.open(path, "r:*") as tf:
                for member in tf:
                    m = _NAME.search(member.name)
                    if m and member.isfile():
                        data = tf.extractfile(member).read().decode("utf-8", errors="replace")
                        found[m.group(1), m.group(2)].append((f"{m.group(3)}_{m.group(4)}", int(m.group(4)), data))
        except (tarfile.TarError, OSError, EOFError) as exc:
            # tarfile lists every compression it tried on lines of their own: keep the first line
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(": ")
            raise DataError(f"cannot read {path} as an aclImdb folder or tar archive: {reason}") from None
    missing = [f"{s}/{lab}" for (s, lab), v in found.items() if not v]
    if missing:
        raise DataError(f"{path} does not have the aclImdb layout: no <id>_<rating>.txt reviews in "
                        f"{', '.join(missing)} (expected aclImdb/{{train,test}}/{{pos,neg}}/)")
    for v in found.values():
        v.sort(key=lambda r: tuple(int(p) for p in r[0].split("_")))
    return found


def _subsample(idx: np.ndarray, labels: np.ndarray, n: int | None, rng) -> np.ndarray:
    """A class-balanced random subset of n indices (all when n is None or large)."""
    if n is None or n >= len(idx):
        return idx
    picks = []
    for c in (0, 1):
        members = idx[labels[idx] == c]
        picks.append(rng.choice(members, size=min(len(members), n // 2 + (c == 1) * (n % 2)), replace=False))
    return np.sort(np.concatenate(picks))


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    path = resolve_path(cfg.path, DEFAULT_FILE)
    reviews = read_reviews(path)

    def part(split):
        rows = reviews[split, "neg"] + reviews[split, "pos"]
        labels = np.array([0] * len(reviews[split, "neg"]) + [1] * len(reviews[split, "pos"]), dtype=np.int64)
        return rows, labels

    train_rows, train_y = part("train")
    test_rows, test_y = part("test")
    train_idx = _subsample(np.arange(len(train_rows)), train_y, cfg.n_train, rng)
    test_idx = _subsample(np.arange(len(test_rows)), test_y, cfg.n_test, rng)

    # stratified validation split of the training reviews
    val_parts, fit_parts = [], []
    for c in (0, 1):
        members = rng.permutation(train_idx[train_y[train_idx] == c])
        k = int(round(cfg.val_frac * len(members)))
        val_parts.append(members[:k])
        fit_parts.append(members[k:])
    fit_idx, val_idx = np.sort(np.concatenate(fit_parts)), np.sort(np.concatenate(val_parts))
    if len(val_idx) == 0 or len(fit_idx) == 0:
        raise DataError(f"data.val_frac={cfg.val_frac} leaves no reviews for training or validation")

    # One corpus, documents in split order (train, val, test): development row r is document r.
    def tokens(rows, idx):
        return (text.tokenize(rows[i][2], cfg.lowercase, cfg.punctuation) for i in idx)

    corpus = text.Corpus(chain(tokens(train_rows, fit_idx), tokens(train_rows, val_idx), tokens(test_rows, test_idx)))
    bounds = np.cumsum([0, len(fit_idx), len(val_idx), len(test_idx)])
    parts = {name: (np.arange(bounds[k], bounds[k + 1]), y)
             for k, (name, y) in enumerate((("train", train_y[fit_idx]), ("val", train_y[val_idx]),
                                            ("test", test_y[test_idx])))}
    test_info = _test_info(test_rows, test_idx, corpus.lengths(parts["test"][0]))
    vectors_rng = copy.deepcopy(rng)  # a refit draws the vectors of words without one as the loader did

    def encoded(fit_docs: np.ndarray, rng: np.random.Generator) -> TaskData:
        """The reviews encoded with the vocabulary of documents `fit_docs` (the training reviews, or a
        cross-validation fold's)."""
        vocab = corpus.fit_vocab(fit_docs, cfg.vocab_size, cfg.min_freq)
        splits = {}
        for name, (rows, y) in parts.items():
            ids, mask = corpus.encode(rows, vocab, cfg.maxlen, cfg.truncating, cfg.padding)
            splits[name] = Split(ids, y, mask, info=test_info if name == "test" else None)
        return _task(cfg, path, splits, vocab, corpus.lengths(fit_docs), rng, dtype)

    data = encoded(parts["train"][0], rng)
    data.refit = Refit("vocabulary", lambda rows, _val: encoded(rows, copy.deepcopy(vectors_rng)))
    return data


def _test_info(rows, idx: np.ndarray, tokens: np.ndarray):
    """Split.info of the test reviews: file name, rating, tokens and text (for the report)."""
    import pandas as pd

    return pd.DataFrame({"review": [rows[i][0] for i in idx], "rating": [rows[i][1] for i in idx],
                         "tokens": tokens, "text": [rows[i][2] for i in idx]})


def _task(cfg, path: Path, splits: dict[str, Split], vocab: list[str], fit_lengths: np.ndarray, rng,
          dtype) -> TaskData:
    """The TaskData of encoded splits: embedding (pretrained vectors looked up for this vocabulary) and meta."""
    test = splits["test"]
    weights, covered = None, None
    if cfg.pretrained:
        weights, covered = text.load_vectors(cfg.pretrained, vocab, cfg.embed_dim, rng, dtype)
    meta = {
        "task": "imdb",
        "path": str(path.resolve()),
        "vocab_size": len(vocab),
        "maxlen": cfg.maxlen,
        "truncating": cfg.truncating,
        "padding": cfg.padding,
        "lowercase": cfg.lowercase,
        "punctuation": cfg.punctuation,
        "tokens_median": float(np.median(fit_lengths)),
        "truncated_frac": float(np.mean(fit_lengths > cfg.maxlen)),
        "oov_rate_test": float(np.mean(test.x[test.mask > 0] == text.OOV_ID)),
        "pretrained": cfg.pretrained,
        "pretrained_coverage": covered,
        "vocab": vocab,
    }
    return TaskData(
        kind="binary", train=splits["train"], val=splits["val"], test=test,
        input_size=cfg.embed_dim, output_size=1, default_loss="bce",
        meta=meta, classes=["neg", "pos"],
        embedding={"vocab_size": len(vocab), "dim": cfg.embed_dim, "weights": weights,
                   "trainable": not cfg.freeze_embeddings, "padding_idx": text.PAD_ID},
    )
