"""Noisy multi-frequency sine, cut into windows: n_in past values -> n_out next values.

The series is a sum of sines with the configured periods and amplitudes plus Gaussian
noise. Windows are split in time order (rnnlab.data.windows); the scaler is fitted on
the train part of the series (the steps the training windows cover; a cross-validation
fold refits it on its own training windows' steps).
"""

from __future__ import annotations

import numpy as np

from rnnlab.data import baselines as B
from rnnlab.data.base import Refit, Split, StandardScaler, TaskData
from rnnlab.data.windows import covered, origins, part_starts, split_windows, target_rows


def make_series(length, periods, amplitudes, noise, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)
    phases = rng.uniform(0, 2 * np.pi, size=len(periods))
    clean = sum(a * np.sin(2 * np.pi * t / p + ph) for p, a, ph in zip(periods, amplitudes, phases, strict=True))
    return clean + noise * rng.standard_normal(length)


def load(cfg, rng: np.random.Generator, dtype=np.float32) -> TaskData:
    series = make_series(cfg.length, cfg.periods, cfg.amplitudes, cfg.noise, rng)
    parts = part_starts(cfg, len(series))
    train_horizon = 1 if cfg.strategy == "recursive" else cfg.n_out  # recursive trains on one-step targets
    idx, first_target = split_windows(len(series), cfg.n_in, cfg.n_out, parts, train_horizon)
    win = np.lib.stride_tricks.sliding_window_view(series, cfg.n_in + cfg.n_out)
    x, y = win[:, : cfg.n_in], win[:, cfg.n_in :]
    tr, va = idx["train"], idx["val"]

    def scaled(train_windows):
        """The fields that depend on the scaler, with the scaler fitted on the steps
        `train_windows` cover: the train part of the series, or a cross-validation fold's."""
        steps = covered(train_windows, cfg.n_in, train_horizon, len(series))
        scaler = StandardScaler.fit(series[steps]) if cfg.scale else StandardScaler()
        xs = scaler.transform(x).astype(dtype)[:, :, None]
        ys = scaler.transform(y).astype(dtype)
        splits = {name: Split(np.ascontiguousarray(xs[ix]), np.ascontiguousarray(ys[ix]),
                              info=target_rows(ix, first_target)) for name, ix in idx.items()}
        return {**splits, "scaler": scaler, "meta": {"scaler": scaler.to_dict()}}

    fields = scaled(tr)
    scaler = fields["scaler"]
    # Baselines on the raw series, fitted before the first origin of the split they forecast (train
    # rows too, so cross-validation folds can score them on any val rows). The sum of sines has no
    # single season: no seasonal naive, and MASE scales by the one-step naive forecast.
    first = {name: first_target[ix] for name, ix in idx.items()}  # each window forecasts from its first target
    baselines, models = B.split_forecasts(series, first, cfg.n_out, None, B.wanted(cfg))
    data = TaskData(
        kind="regression",
        train=fields["train"],
        val=fields["val"],
        test=fields["test"],
        input_size=1,
        output_size=cfg.n_out,
        default_loss="mse",
        scaler=scaler,
        baselines=baselines,
        mase_scale=B.mase_scale(series[: first["test"].min()], None),
        original_targets={name: np.ascontiguousarray(y[ix]) for name, ix in idx.items()},
        meta={"scaler": scaler.to_dict(), "n_in": cfg.n_in, "n_out": cfg.n_out, **origins(idx, first_target),
              "baseline_models": models},
        sample_unit="windows",
    )
    dev = np.concatenate([tr, va])  # development rows: the train windows, then the val windows

    def refit(rows, val_rows):
        fold = data.refitted(**scaled(dev[rows])) if cfg.scale else data.refitted()
        fold.baselines = B.refit_dev(data.baselines, series, first_target[dev], len(tr), val_rows, cfg.n_out, None)
        return fold

    data.refit = Refit("scaler and baselines" if cfg.scale else "baselines", refit)
    return data
