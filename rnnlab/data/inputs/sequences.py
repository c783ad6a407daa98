"""Sequences to classify (data=seqfile): a file in a format the run could read (long or wide CSV, NPZ,
.ts), labels optional; cut to the run's data.max_len, scaled with its per-feature scaler, padded after
the end with a mask, as at training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.data import seqformats
from rnnlab.data.base import DataError
from rnnlab.data.inputs import Inputs
from rnnlab.data.seqformats.common import listing

READS_NPZ = True  # an .npz is one of the sequence file formats


def read(source, cfg, meta: dict, dtype=np.float32) -> Inputs:
    import pandas as pd

    if not isinstance(source, Path):
        raise DataError("give the sequences as a file (CSV, NPZ or .ts), as the model was trained on")
    got = seqformats.read(source, _Unlabeled(cfg))
    seqs = got.seqs
    n_features = meta["n_features"]
    if seqs.x.shape[2] != n_features:
        raise DataError(f"{source.name} has {seqs.x.shape[2]} features per step ({got.format} layout), but the "
                        f"model was trained on {n_features}"
                        + (f" ({', '.join(meta['features'])})" if meta.get("features") else ""))
    lengths = seqs.lengths if meta.get("truncate") is None else np.minimum(seqs.lengths, meta["truncate"])
    t = int(lengths.max()) if len(lengths) else 0
    real = np.arange(t)[None, :] < lengths[:, None]
    x = np.zeros((len(lengths), t, n_features))
    x[:, : min(t, seqs.x.shape[1])] = seqs.x[:, :t]
    _check(source, x, real, lengths, seqs)
    if meta.get("scaler"):
        x = (x - np.asarray(meta["scaler"]["mean"])) / np.asarray(meta["scaler"]["std"])
    x = np.where(real[:, :, None], x, 0.0)
    rows = pd.DataFrame({"input": [seqs.describe(np.array([i])) for i in range(len(lengths))], "length": lengths})
    if any(lab is not None for lab in seqs.labels):
        rows["label"] = seqs.labels
    mask = None if real.all() else real.astype(dtype)
    return Inputs(x.astype(dtype), mask, rows)


class _Unlabeled:
    """The run's data config, reading files that may lack the label column or array (new inputs)."""

    unlabeled = True

    def __init__(self, cfg):
        self._cfg = cfg

    def __getattr__(self, name):
        return getattr(self._cfg, name)


def _check(source: Path, x: np.ndarray, real: np.ndarray, lengths: np.ndarray, seqs) -> None:
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise DataError(f"{source.name}: {seqs.describe(empty)} have no steps")
    bad = np.flatnonzero((np.isnan(x) & real[:, :, None]).any(axis=(1, 2)))
    if len(bad):
        raise DataError(f"{source.name}: missing values in {seqs.describe(bad)}; the model needs every step's "
                        f"features (sequences {listing(bad)})")
