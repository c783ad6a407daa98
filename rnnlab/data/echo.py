"""The echo task (`data=echo`): repeat the symbol seen `delay` steps ago, at every step of one long stream.

A stream of symbols drawn uniformly from 0..n_symbols-1; the target at step t is the input at step
t - delay. The stream is cut into non-overlapping windows of seq_len steps, in order (`contiguous`), so
what a window's first `delay` steps must answer was shown in the window before. It is the test of
stateful training (`train.stateful=true`): with windows shorter than the delay, or the answers at the
start of each window, only a state carried across windows can know it; without one those steps are
guesses (accuracy 1 / n_symbols there; meta["stateless_ceiling"] is the best a stateless model can reach).

Shapes: x (N, seq_len, n_symbols) one-hot float, y (N, seq_len) int64 labels, no masks.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.base import Split, TaskData


def stream(n_steps: int, n_symbols: int, delay: int, rng: np.random.Generator, dtype=np.float32) -> tuple:
    """(x (n_steps, n_symbols) one-hot, y (n_steps,) labels) with y[t] = the symbol of x[t - delay]."""
    s = rng.integers(0, n_symbols, size=n_steps + delay)
    return np.eye(n_symbols, dtype=dtype)[s[delay:]], s[:n_steps].astype(np.int64)


def split(n_windows: int, seq_len: int, n_symbols: int, delay: int, rng, dtype) -> Split:
    x, y = stream(n_windows * seq_len, n_symbols, delay, rng, dtype)
    return Split(x.reshape(n_windows, seq_len, n_symbols), y.reshape(n_windows, seq_len))


def stateless_ceiling(n_symbols: int, delay: int, seq_len: int) -> float:
    """Accuracy of a perfect model that starts every window afresh: the first `delay` steps are guesses."""
    known = max(seq_len - delay, 0) / seq_len
    return known + (1 - known) / n_symbols


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    parts = {k: split(getattr(cfg, f"n_{k}"), cfg.seq_len, cfg.n_symbols, cfg.delay, rng, dtype)
             for k in ("train", "val", "test")}
    return TaskData(kind="multiclass", **parts, input_size=cfg.n_symbols, output_size=cfg.n_symbols,
                    default_loss="cross_entropy", classes=[f"s{k}" for k in range(cfg.n_symbols)],
                    meta={"task": "echo", "n_symbols": cfg.n_symbols, "delay": cfg.delay, "seq_len": cfg.seq_len,
                          "chance": 1 / cfg.n_symbols,
                          "stateless_ceiling": stateless_ceiling(cfg.n_symbols, cfg.delay, cfg.seq_len)},
                    contiguous=True)
