"""The adding problem (Hochreiter & Schmidhuber 1997): a classic long-range benchmark.

Each sequence has T steps of two channels: a value drawn from U(0, 1) and a marker that
is 1 at exactly two steps (one in the first half, one in the second) and 0 elsewhere.
The target is the sum of the two marked values. Always predicting the mean (1.0) scores
MSE 1/6 = 0.167; a model must carry the first marked value across about T/2 steps to do
better, which vanilla RNNs fail at for T around 100 and LSTM/GRU manage.

Shapes: x (N, T, 2), y (N, 1).
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.base import Split, TaskData


def make(n: int, length: int, rng: np.random.Generator, dtype=np.float32) -> Split:
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=2).astype(dtype)
    y = (values[rows, first] + values[rows, second])[:, None].astype(dtype)
    return Split(x, y)


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    train = make(cfg.n_train, cfg.length, rng, dtype)
    val = make(cfg.n_val, cfg.length, rng, dtype)
    test = make(cfg.n_test, cfg.length, rng, dtype)
    mean = {k: np.ones((len(s), 1)) for k, s in (("train", train), ("val", val), ("test", test))}
    return TaskData(
        kind="regression", train=train, val=val, test=test, input_size=2, output_size=1,
        default_loss="mse", baselines={"predict_mean": mean},
        meta={"task": "adding", "length": cfg.length},
    )
