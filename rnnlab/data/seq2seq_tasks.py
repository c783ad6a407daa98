"""Sequence-to-sequence tasks for ``rnnlab.engine.seq2seq``.

Every task gives ``Seq2SeqSplit`` objects with

* ``src``: token ids (N, Ts) int64 or vectors (N, Ts, D_in) float,
* ``src_mask`` (N, Ts) float 0/1 (1 = real step; post-padding),
* ``tgt_in``: the decoder inputs under teacher forcing, ``tgt_out`` the targets, both (N, T_out)
  ids or (N, T_out, D_out) floats, with ``tgt_in[:, 0]`` the start symbol / value and
  ``tgt_in[:, t] = tgt_out[:, t - 1]`` for t >= 1 (real steps),
* ``tgt_mask`` (N, T_out) float 0/1: the target steps the loss counts.

``Seq2SeqTask`` bundles train / val / test splits with the sizes a model needs (``meta``).

reverse_digits
--------------
Vocabulary (source and target share it): ``PAD`` = 0, ``BOS`` = 1, ``EOS`` = 2, digit d is
token ``DIGIT0 + d`` = 3 + d for d in 0..n_digits-1 (vocab size 3 + n_digits). A source is a
random digit sequence of length L uniform in [min_len, max_len], post-padded with PAD to
Ts = max_len; the target is the reversed sequence followed by EOS: ``tgt_out`` = [s_{L-1}, ...,
s_0, EOS, PAD...], ``tgt_in`` = [BOS, s_{L-1}, ..., s_0, PAD...], T_out = max_len + 1, and
``tgt_mask`` is 1 on the L + 1 real target steps (the EOS included). Output step t < L should
attend to source position L - 1 - t.

sine2cosine
-----------
Continuous, 1-d: per sequence a frequency w ~ U(w_min, w_max) (radians per step) and a phase
phi ~ U(0, 2 pi); ``src[:, t] = sin(w t + phi)`` for t < T_in; ``tgt_out[:, t] = cos(w (t + offset)
+ phi)`` for t < T_out with offset 0 ("same": the cosine over the same steps) or T_in ("next": the
cosine continued after the window). ``tgt_in`` starts with ``start_value`` (default 0). Masks are
all ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD, BOS, EOS, DIGIT0 = 0, 1, 2, 3


@dataclass
class Seq2SeqSplit:
    src: np.ndarray
    src_mask: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    tgt_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, idx) -> Seq2SeqSplit:
        """The rows idx (an index array or slice) of every field."""
        return Seq2SeqSplit(self.src[idx], self.src_mask[idx], self.tgt_in[idx], self.tgt_out[idx],
                            self.tgt_mask[idx])


@dataclass
class Seq2SeqTask:
    kind: str  # "tokens" or "continuous"
    train: Seq2SeqSplit
    val: Seq2SeqSplit
    test: Seq2SeqSplit
    meta: dict[str, Any] = field(default_factory=dict)


def src_lengths(split: Seq2SeqSplit) -> np.ndarray:
    return split.src_mask.sum(axis=1).astype(np.int64)


# ----------------------------------------------------------------------------------------
# reverse_digits
# ----------------------------------------------------------------------------------------


def reverse_digits_vocab(n_digits: int) -> int:
    return DIGIT0 + n_digits


def make_reverse_digits(n: int, rng: np.random.Generator, min_len: int = 3, max_len: int = 6,
                        n_digits: int = 10, dtype=np.float32) -> Seq2SeqSplit:
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len (got {min_len}, {max_len})")
    if n_digits < 1:
        raise ValueError(f"n_digits must be >= 1 (got {n_digits})")
    lengths = rng.integers(min_len, max_len + 1, size=n)
    src, real = encode_digits(rng.integers(0, n_digits, size=(n, max_len)), lengths, max_len)
    pos = np.arange(max_len)
    T_out = max_len + 1
    tgt_out = np.full((n, T_out), PAD, dtype=np.int64)
    # reversed: tgt_out[i, t] = src[i, L - 1 - t] for t < L
    rev_idx = np.clip(lengths[:, None] - 1 - pos[None, :], 0, max_len - 1)
    tgt_out[:, :max_len] = np.where(real, np.take_along_axis(src, rev_idx, axis=1), PAD)
    tgt_out[np.arange(n), lengths] = EOS
    tgt_in = np.full((n, T_out), PAD, dtype=np.int64)
    tgt_in[:, 0] = BOS
    tgt_in[:, 1:] = tgt_out[:, :-1]
    tgt_in[tgt_in == EOS] = PAD  # the step after EOS is padding (no real step reads EOS)
    tgt_mask = (np.arange(T_out)[None, :] <= lengths[:, None]).astype(dtype)
    return Seq2SeqSplit(src, real.astype(dtype), tgt_in, tgt_out, tgt_mask)


def encode_digits(digits: np.ndarray, lengths: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Sources as the model reads them, from digit values (N, >= max_len) whose first lengths[i] are real:
    (src (N, max_len) int64, digit d as token DIGIT0 + d, post-padded with PAD; real (N, max_len) bool)."""
    real = np.arange(max_len)[None, :] < np.asarray(lengths)[:, None]
    return np.where(real, np.asarray(digits)[:, :max_len] + DIGIT0, PAD).astype(np.int64), real


def digits_text(ids) -> str:
    """Token ids as text ("3 1 4"): digits, EOS as <eos> (and nothing after it), padding and BOS left out."""
    words = []
    for t in ids:
        t = int(t)
        if t == EOS:
            words.append("<eos>")
            break
        if t >= DIGIT0:
            words.append(str(t - DIGIT0))
    return " ".join(words)


def reverse_digits(n_train: int, n_val: int, n_test: int, rng: np.random.Generator, min_len: int = 3,
                   max_len: int = 6, n_digits: int = 10, dtype=np.float32) -> Seq2SeqTask:
    args = (rng, min_len, max_len, n_digits, dtype)
    return Seq2SeqTask(
        "tokens", make_reverse_digits(n_train, *args), make_reverse_digits(n_val, *args),
        make_reverse_digits(n_test, *args),
        meta={"task": "reverse_digits", "vocab_size": reverse_digits_vocab(n_digits), "pad_id": PAD,
              "bos_id": BOS, "eos_id": EOS, "min_len": min_len, "max_len": max_len, "n_digits": n_digits,
              "max_out_len": max_len + 1, "chance_accuracy": 1.0 / n_digits},
    )


# ----------------------------------------------------------------------------------------
# sine2cosine
# ----------------------------------------------------------------------------------------

OFFSETS = ("same", "next")


def make_sine2cosine(n: int, rng: np.random.Generator, t_in: int = 20, t_out: int | None = None,
                     offset: str = "same", w_min: float = 0.2, w_max: float = 0.6, start_value: float = 0.0,
                     dtype=np.float32) -> Seq2SeqSplit:
    if offset not in OFFSETS:
        raise ValueError(f"offset must be one of {', '.join(OFFSETS)} (got {offset!r})")
    t_out = t_in if t_out is None else t_out
    w = rng.uniform(w_min, w_max, size=(n, 1))
    phi = rng.uniform(0, 2 * np.pi, size=(n, 1))
    shift = 0 if offset == "same" else t_in
    src, src_mask = encode_series(np.sin(w * np.arange(t_in)[None, :] + phi), dtype)
    tgt_out = np.cos(w * (np.arange(t_out)[None, :] + shift) + phi)[:, :, None].astype(dtype)
    tgt_in = np.empty_like(tgt_out)
    tgt_in[:, 0] = start_value
    tgt_in[:, 1:] = tgt_out[:, :-1]
    return Seq2SeqSplit(src, src_mask, tgt_in, tgt_out, np.ones((n, t_out), dtype=dtype))


def encode_series(values: np.ndarray, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Source series (N, T) as the model reads them: (src (N, T, 1), src_mask (N, T) all ones)."""
    values = np.asarray(values)
    return values[:, :, None].astype(dtype), np.ones(values.shape, dtype=dtype)


def sine2cosine(n_train: int, n_val: int, n_test: int, rng: np.random.Generator, t_in: int = 20,
                t_out: int | None = None, offset: str = "same", w_min: float = 0.2, w_max: float = 0.6,
                start_value: float = 0.0, dtype=np.float32) -> Seq2SeqTask:
    args = (rng, t_in, t_out, offset, w_min, w_max, start_value, dtype)
    return Seq2SeqTask(
        "continuous", make_sine2cosine(n_train, *args), make_sine2cosine(n_val, *args),
        make_sine2cosine(n_test, *args),
        meta={"task": "sine2cosine", "src_dim": 1, "tgt_dim": 1, "t_in": t_in,
              "t_out": t_in if t_out is None else t_out, "offset": offset, "start_value": start_value},
    )


# ----------------------------------------------------------------------------------------
# loaders for the data registry (data=reverse_digits / data=sine2cosine)
# ----------------------------------------------------------------------------------------


def load_reverse_digits(cfg, rng: np.random.Generator, dtype=np.float32) -> Seq2SeqTask:
    """ReverseDigitsConf -> Seq2SeqTask (meta also carries embed_dim)."""
    task = reverse_digits(cfg.n_train, cfg.n_val, cfg.n_test, rng, min_len=cfg.min_len, max_len=cfg.max_len,
                          n_digits=cfg.n_digits, dtype=dtype)
    task.meta["embed_dim"] = cfg.embed_dim
    return task


def load_sine2cosine(cfg, rng: np.random.Generator, dtype=np.float32) -> Seq2SeqTask:
    """Sine2CosineConf -> Seq2SeqTask."""
    return sine2cosine(cfg.n_train, cfg.n_val, cfg.n_test, rng, t_in=cfg.t_in, t_out=cfg.t_out, offset=cfg.offset,
                       w_min=cfg.w_min, w_max=cfg.w_max, start_value=cfg.start_value, dtype=dtype)
