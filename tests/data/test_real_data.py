"""The real data sets in ../shared/data (beside the checkout, or $RNNLAB_DATA): loaders on the full files.

Slow (reading and tokenising 50k reviews takes about 15 s). CI has ../shared beside the clone.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.config.schema import CsvConf, ImdbConf
from rnnlab.data import imdb, registry
from rnnlab.data.paths import resolve_path

pytestmark = pytest.mark.slow


def test_imdb_archive_has_25k_train_and_25k_test():
    path = resolve_path(None, imdb.DEFAULT_FILE)
    assert path.exists(), f"the real IMDB archive is expected at {path}"
    reviews = imdb.read_reviews(path)
    assert {k: len(v) for k, v in reviews.items()} == {
        ("train", "neg"): 12500, ("train", "pos"): 12500, ("test", "neg"): 12500, ("test", "pos"): 12500}
    data = registry.load(ImdbConf(vocab_size=20000, maxlen=400), np.random.default_rng(0), np.float32)
    assert (len(data.train), len(data.val), len(data.test)) == (22500, 2500, 25000)
    assert data.train.x.shape == (22500, 400) and data.train.x.max() < 20000
    assert data.meta["vocab"][:4] == ["<pad>", "<oov>", "the", "and"]
    assert 150 < data.meta["tokens_median"] < 200
    assert 0.005 < data.meta["oov_rate_test"] < 0.05
    assert np.bincount(data.val.y).tolist() == [1250, 1250]


def test_sp500_file_loads_with_30_day_windows():
    cfg = CsvConf(default_file="sp500_daily_1990-2023.csv", target="Close", covariates=["Volume"],
                  transform="log_returns", covariate_transform="log_returns", n_in=60, n_out=30)
    data = registry.load(cfg, np.random.default_rng(0), np.float32)
    assert data.train.x.shape[1:] == (60, 2) and data.train.y.shape[1] == 30
    assert len(data.train) + len(data.val) + len(data.test) > 8000
    assert data.future["x"].shape == (1, 60, 2)
