"""The copy memory problem (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

Alphabet: index 0 is the blank, 1..n_symbols the data symbols, n_symbols + 1 the
delimiter (input only). With L = copy_len and D = delay, every sequence has
T_total = L + D + L steps (0-indexed):

* input: steps 0..L-1 hold L symbols drawn uniformly from 1..n_symbols; steps L..L+D-1
  are blank except step L+D-1, which is the delimiter ("start answering now"); the last
  L steps L+D..T_total-1 are blank. So D counts the steps between the last data symbol
  and the first answer step, delimiter included: Arjovsky et al.'s setting (T - 1 blanks,
  the delimiter, sequence length T + 20) is copy_len 10, delay T.
* target: blank (0) at steps 0..L+D-1; the last L steps reproduce the L input symbols
  in order (target[L+D+k] = input symbol k).

Outputs: n_symbols + 1 classes, output k meaning input symbol k (blank and the data
symbols); the delimiter never is a target, so it has no output. Class names
(TaskData.classes): "blank", "s1", ..., "s<n_symbols>".

Loss positions (Split.target_mask, (N, T_total)): loss_on "answer" (default) counts the
last L steps only; loss_on "all" counts every step (target_mask is None: no mask).

Memoryless baseline (meta["memoryless_ce"], nats per counted position): a model that
knows the time step but remembers nothing predicts blank with certainty where the target
is blank and a uniform guess over the n_symbols at the answer steps, scoring
log(n_symbols) with loss_on "answer" and L log(n_symbols) / T_total with "all".

Shapes: x (N, T_total, n_symbols + 2) one-hot float, y (N, T_total) int64 labels, no
input mask (every sequence is full length).
"""

from __future__ import annotations

import math

import numpy as np

from rnnlab.data.base import Split, TaskData

LOSS_ON = ("answer", "all")


def seq_len(copy_len: int, delay: int) -> int:
    return 2 * copy_len + delay


def memoryless_ce(n_symbols: int, copy_len: int, delay: int, loss_on: str = "answer") -> float:
    """Cross entropy (nats per counted position) of the best model without memory."""
    if loss_on == "answer":
        return math.log(n_symbols)
    return copy_len * math.log(n_symbols) / seq_len(copy_len, delay)


def class_names(n_symbols: int) -> list[str]:
    return ["blank"] + [f"s{k}" for k in range(1, n_symbols + 1)]


def make(n: int, n_symbols: int, copy_len: int, delay: int, rng: np.random.Generator,
         dtype=np.float32, loss_on: str = "answer") -> Split:
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {', '.join(LOSS_ON)} (got '{loss_on}')")
    T = seq_len(copy_len, delay)
    symbols = rng.integers(1, n_symbols + 1, size=(n, copy_len))
    ids = np.zeros((n, T), dtype=np.int64)
    ids[:, :copy_len] = symbols
    ids[:, copy_len + delay - 1] = n_symbols + 1  # delimiter
    x = np.eye(n_symbols + 2, dtype=dtype)[ids]
    y = np.zeros((n, T), dtype=np.int64)
    y[:, T - copy_len:] = symbols
    target_mask = None
    if loss_on == "answer":
        target_mask = np.zeros((n, T), dtype=dtype)
        target_mask[:, T - copy_len:] = 1
    return Split(x, y, target_mask=target_mask)


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    args = (cfg.n_symbols, cfg.copy_len, cfg.delay, rng, dtype, cfg.loss_on)
    train = make(cfg.n_train, *args)
    val = make(cfg.n_val, *args)
    test = make(cfg.n_test, *args)
    return TaskData(
        kind="multiclass", train=train, val=val, test=test,
        input_size=cfg.n_symbols + 2, output_size=cfg.n_symbols + 1,
        default_loss="cross_entropy", baselines={}, classes=class_names(cfg.n_symbols),
        meta={
            "task": "copy", "n_symbols": cfg.n_symbols, "copy_len": cfg.copy_len,
            "delay": cfg.delay, "seq_len": seq_len(cfg.copy_len, cfg.delay),
            "loss_on": cfg.loss_on, "per_step": True,
            "memoryless_ce": memoryless_ce(cfg.n_symbols, cfg.copy_len, cfg.delay, cfg.loss_on),
        },
    )
