"""Noisy multi-frequency sine, cut into windows: n_in past values -> n_out next values.

The series is a sum of sines with the configured periods and amplitudes plus Gaussian
noise. Windows are assigned to train/val/test by where their targets fall in time
(targets straddling a boundary are dropped), so no target is seen by two splits; the
inputs of the first val/test windows may reach back into the previous split, which is
history a forecaster would have. The scaler is fitted on the train part of the series.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.base import DataError, Split, StandardScaler, TaskData


def make_series(length, periods, amplitudes, noise, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)
    phases = rng.uniform(0, 2 * np.pi, size=len(periods))
    clean = sum(a * np.sin(2 * np.pi * t / p + ph) for p, a, ph in zip(periods, amplitudes, phases, strict=True))
    return clean + noise * rng.standard_normal(length)


def window_splits(series: np.ndarray, n_in: int, n_out: int, val_frac: float, test_frac: float):
    """Windows (N, n_in) and targets (N, n_out), and index arrays for train/val/test."""
    n = len(series)
    if n < n_in + n_out:
        raise DataError(f"series of length {n} is shorter than n_in + n_out = {n_in + n_out}")
    win = np.lib.stride_tricks.sliding_window_view(series, n_in + n_out)
    x, y = win[:, :n_in], win[:, n_in:]
    first_target = np.arange(len(win)) + n_in
    last_target = first_target + n_out - 1
    t_test = int(round(n * (1 - test_frac)))
    t_val = int(round(n * (1 - test_frac - val_frac)))
    train = np.flatnonzero(last_target < t_val)
    val = np.flatnonzero((first_target >= t_val) & (last_target < t_test))
    test = np.flatnonzero(first_target >= t_test)
    for name, idx in (("train", train), ("val", val), ("test", test)):
        if len(idx) == 0:
            raise DataError(
                f"the {name} split has no windows: the series ({n} steps) is too short for "
                f"n_in={n_in}, n_out={n_out} with val_frac={val_frac}, test_frac={test_frac}"
            )
    return x, y, train, val, test, t_val


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    series = make_series(cfg.length, cfg.periods, cfg.amplitudes, cfg.noise, rng)
    x, y, tr, va, te, t_val = window_splits(series, cfg.n_in, cfg.n_out, cfg.val_frac, cfg.test_frac)
    scaler = StandardScaler.fit(series[:t_val]) if cfg.scale else StandardScaler()
    xs = scaler.transform(x).astype(dtype)[:, :, None]
    ys = scaler.transform(y).astype(dtype)

    def split(idx):
        return Split(np.ascontiguousarray(xs[idx]), np.ascontiguousarray(ys[idx]))

    # Naive forecast: the last observed value, repeated over the horizon.
    naive = scaler.inverse(np.repeat(xs[:, -1, :].astype(np.float64), cfg.n_out, axis=1))
    return TaskData(
        kind="regression",
        train=split(tr),
        val=split(va),
        test=split(te),
        input_size=1,
        output_size=cfg.n_out,
        default_loss="mse",
        scaler=scaler,
        baselines={"naive_last": {"val": naive[va], "test": naive[te]}},
        meta={"scaler": scaler.to_dict(), "n_in": cfg.n_in, "n_out": cfg.n_out},
    )
