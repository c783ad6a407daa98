"""Cross-validation folds (rnnlab/data/folds.py): split indices with scikit-learn's semantics, the
strategy choice, and re-splitting loaded data sets (test untouched, baselines, inverses, seq2seq)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab.config.schema import AddingConf, CopyConf, CsvConf, CvConf, ReverseDigitsConf, SineConf
from rnnlab.data import folds as F
from rnnlab.data import registry, sine
from rnnlab.data.base import DataError, Split, TaskData

SINE = SineConf(length=400, n_in=12, n_out=3)


def _check_partition(folds, n):
    """Every fold: train and val disjoint; the val parts of all folds cover 0..n-1 exactly once."""
    for f in folds:
        assert not set(f.train) & set(f.val)
        assert set(f.train) | set(f.val) == set(range(n))
    np.testing.assert_array_equal(np.sort(np.concatenate([f.val for f in folds])), np.arange(n))


# ----------------------------------------------------------------------------- split indices


def test_kfold_without_shuffle_cuts_contiguous_blocks_like_sklearn():
    folds = F.kfold(10, 3, shuffle=False)
    assert [f.val.tolist() for f in folds] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]  # first n % k one larger
    assert folds[1].train.tolist() == [0, 1, 2, 3, 7, 8, 9]
    _check_partition(folds, 10)


def test_kfold_shuffle_is_seeded():
    a = F.kfold(50, 5, rng=np.random.default_rng(3))
    b = F.kfold(50, 5, rng=np.random.default_rng(3))
    c = F.kfold(50, 5, rng=np.random.default_rng(4))
    assert all(np.array_equal(x.val, y.val) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.val, y.val) for x, y in zip(a, c, strict=True))
    assert [len(f.val) for f in a] == [10] * 5
    assert not np.array_equal(a[0].val, np.arange(10))  # shuffled
    _check_partition(a, 50)


@pytest.mark.parametrize("shuffle", [True, False])
def test_stratified_kfold_keeps_class_shares_within_one_sample(shuffle):
    y = np.random.default_rng(0).permutation(np.array([0] * 37 + [1] * 11 + [2] * 5 + [3] * 20))
    folds = F.stratified_kfold(y, 4, shuffle=shuffle, rng=np.random.default_rng(1))
    _check_partition(folds, len(y))
    sizes = [len(f.val) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for c in range(4):
        counts = [int(np.sum(y[f.val] == c)) for f in folds]
        assert max(counts) - min(counts) <= 1, (c, counts)
        assert sum(counts) == int(np.sum(y == c))


def test_time_series_split_matches_sklearn_example():
    # sklearn's TimeSeriesSplit(n_splits=3, test_size=2, gap=2) on 12 samples
    folds = F.time_series_split(12, 3, gap=2, val_size=2)
    assert [(f.train.tolist(), f.val.tolist()) for f in folds] == [
        ([0, 1, 2, 3], [6, 7]), ([0, 1, 2, 3, 4, 5], [8, 9]), ([0, 1, 2, 3, 4, 5, 6, 7], [10, 11])]
    # and the default test_size n // (k + 1), no gap: TimeSeriesSplit(n_splits=5) on 6 samples
    folds = F.time_series_split(6, 5)
    assert [(f.train.tolist(), f.val.tolist()) for f in folds] == [
        ([0], [1]), ([0, 1], [2]), ([0, 1, 2], [3]), ([0, 1, 2, 3], [4]), ([0, 1, 2, 3, 4], [5])]


def test_expanding_and_sliding_order_gap_and_max_train_size():
    n, k, gap = 103, 4, 3
    expanding = F.time_series_split(n, k, gap=gap)
    for f in expanding:
        assert f.train.max() < f.val.min()  # the past trains, the future validates
        assert f.val.min() - f.train.max() - 1 == gap  # exactly `gap` samples left out
        np.testing.assert_array_equal(f.val, np.arange(f.val[0], f.val[-1] + 1))  # one block
        assert f.train[0] == 0
    assert [len(f.train) for f in expanding] == sorted(len(f.train) for f in expanding)  # grows
    assert expanding[-1].val[-1] == n - 1
    capped = F.time_series_split(n, k, gap=gap, max_train_size=20)
    assert [len(f.train) for f in capped] == [20] * k
    assert all(np.array_equal(c.val, e.val) for c, e in zip(capped, expanding, strict=True))
    # sliding without max_train_size: every fold keeps the first fold's training length
    _, sliding = F.plan(_series_data(n), CvConf(k=k, strategy="sliding", gap=gap), seed=0)
    assert len({len(f.train) for f in sliding}) == 1 and len(sliding[0].train) == len(expanding[0].train)
    assert sliding[-1].train[0] > 0


def test_split_errors_are_one_line():
    with pytest.raises(DataError, match=r"^cv.k=12 folds need at least 12 samples in the development set "
                                        r"\(train \+ val\), which has 10$"):
        F.kfold(10, 12)
    with pytest.raises(DataError, match=r"^cv.k=5 time-series folds need at least 6 samples"):
        F.time_series_split(5, 5)
    with pytest.raises(DataError, match=r"^cv.k=3 time-series folds with validation blocks of 4 and cv.gap=8 need "
                                        r"more than 20 samples in the development set \(train \+ val\), which has 20$"):
        F.time_series_split(20, 3, gap=8, val_size=4)


# ----------------------------------------------------------------------------- strategy choice and plan


def _series_data(n):
    split = Split(np.zeros((n, 4, 1), np.float32), np.zeros((n, 1), np.float32))
    empty = Split(np.zeros((0, 4, 1), np.float32), np.zeros((0, 1), np.float32))
    return TaskData("regression", split, empty, empty, 1, 1, "mse", meta={"n_in": 4, "n_out": 1})


def test_auto_strategy_per_data_set():
    rng = np.random.default_rng(0)
    sine = registry.load(SINE, rng, np.float32)
    adding = registry.load(AddingConf(length=10, n_train=20, n_val=5, n_test=5), rng, np.float32)
    copy = registry.load(CopyConf(n_train=20, n_val=5, n_test=5, delay=3, copy_len=2), rng, np.float32)
    labels = _classification(40)
    assert F.resolve_strategy("auto", sine) == "expanding"
    assert F.resolve_strategy("auto", adding) == "kfold"
    assert F.resolve_strategy("auto", copy) == "kfold"  # a label at every step: no stratification
    assert F.resolve_strategy("auto", labels) == "stratified"
    assert F.resolve_strategy("sliding", labels) == "sliding"
    # the default gap keeps every target step in one part: n_out - 1 windows
    assert F.resolve_gap(CvConf(), sine, "expanding") == 2
    assert F.resolve_gap(CvConf(gap=0), sine, "expanding") == 0
    assert F.resolve_gap(CvConf(), adding, "expanding") == 0


def test_plan_refuses_what_does_not_fit_the_data():
    rng = np.random.default_rng(0)
    sine = registry.load(SINE, rng, np.float32)
    copy = registry.load(CopyConf(n_train=20, n_val=5, n_test=5, delay=3, copy_len=2), rng, np.float32)
    with pytest.raises(DataError, match=r"^cv.strategy=stratified needs one class label per sequence, but data "
                                        r"'sine' is regression \(use kfold, expanding or sliding\)$"):
        F.plan(sine, CvConf(strategy="stratified"), 0, "sine")
    with pytest.raises(DataError, match="data 'copy' has no single label per sequence"):
        F.plan(copy, CvConf(strategy="stratified"), 0, "copy")
    with pytest.raises(DataError, match=r"^cv.gap applies to the time-series strategies expanding and sliding "
                                        r"\(cv.strategy resolves to kfold here\)$"):
        F.plan(copy, CvConf(gap=2), 0, "copy")


def test_fold_assignment_follows_the_seed_only():
    data = _classification(60)
    a = F.plan(data, CvConf(k=3), seed=5)[1]
    b = F.plan(data, CvConf(k=3), seed=5)[1]
    c = F.plan(data, CvConf(k=3), seed=6)[1]
    assert all(np.array_equal(x.val, y.val) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.val, y.val) for x, y in zip(a, c, strict=True))


def test_cv_config_ranges():
    for kwargs, message in [
        ({"k": 1}, "cv.k must be >= 2 (got 1)"),
        ({"strategy": "foo"}, "cv.strategy must be one of auto, kfold, stratified, expanding, sliding (got 'foo')"),
        ({"fold": 5, "k": 5}, "cv.fold must be in 0..4 for cv.k=5 (got 5)"),
        ({"gap": -1}, "cv.gap must be >= 0 (got -1)"),
        ({"val_size": 0}, "cv.val_size must be >= 1 (got 0)"),
        ({"strategy": "kfold", "gap": 2, "max_train_size": 9},
         "cv.gap and cv.max_train_size apply to cv.strategy expanding or sliding (got kfold)"),
    ]:
        with pytest.raises(ValueError) as exc:
            CvConf(**kwargs)
        assert str(exc.value) == message


# ----------------------------------------------------------------------------- re-splitting


def _classification(n, seed=0):
    """Binary TaskData with masks, an info table and a per-row id, for re-split bookkeeping."""
    rng = np.random.default_rng(seed)
    n_tr = int(n * 0.75)
    x = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 5, 2), np.float32)
    y = (rng.random(n) < 0.3).astype(np.int64)
    mask = (rng.random((n, 5)) < 0.8).astype(np.float32)
    info = pd.DataFrame({"id": np.arange(n)})
    tr = Split(x[:n_tr], y[:n_tr], mask[:n_tr], info.iloc[:n_tr].reset_index(drop=True))
    va = Split(x[n_tr:], y[n_tr:], None, info.iloc[n_tr:].reset_index(drop=True))  # unpadded val
    te = Split(x[:4] + 1000, y[:4], None, None)
    return TaskData("binary", tr, va, te, 2, 1, "bce", classes=["a", "b"])


def test_resplit_classification_keeps_rows_together():
    data = _classification(40)
    test_x = data.test.x.copy()
    fold = F.resplit(data, CvConf(fold=1, k=4), seed=0, data_name="toy")
    assert len(fold.train) + len(fold.val) == 40
    for split in (fold.train, fold.val):
        ids = split.info["id"].to_numpy()
        np.testing.assert_array_equal(split.x[:, 0, 0], ids)  # x, info move together
        assert split.mask is not None and split.mask.shape == (len(split), 5)
    np.testing.assert_array_equal(fold.test.x, test_x)
    assert not set(fold.train.info["id"]) & set(fold.val.info["id"])
    # rows that came from the unpadded val split got an all-ones mask
    from_val = fold.val.info["id"].to_numpy() >= 30
    assert np.all(fold.val.mask[from_val] == 1)
    assert fold.meta["cv"] == {"fold": 1, "k": 4, "strategy": "stratified", "n_train": 30, "n_val": 10,
                              "preprocessing": "none needed"}


def test_resplit_sine_keeps_test_and_rebuilds_val_baselines():
    rng_seed = 0
    base = registry.load(SINE, np.random.default_rng(rng_seed), np.float32)
    raw = base.scaler.inverse  # rows compared in original units: each fold scales by its own training rows
    dev_x = raw(np.concatenate([base.train.x, base.val.x]).astype(np.float64))
    dev = {name: np.concatenate([b["train"], b["val"]]) for name, b in base.baselines.items()}
    assert set(dev) == {"naive", "drift", "mean", "ets"}  # sine has no season: no seasonal naive
    _, folds = F.plan(base, CvConf(k=3), seed=0)
    for f in folds:
        d = registry.load(SINE, np.random.default_rng(rng_seed), np.float32, cv=CvConf(fold=f.index, k=3), seed=0)
        np.testing.assert_allclose(d.scaler.inverse(d.train.x.astype(np.float64)), dev_x[f.train], atol=1e-5)
        np.testing.assert_allclose(d.scaler.inverse(d.val.x.astype(np.float64)), dev_x[f.val], atol=1e-5)
        np.testing.assert_allclose(d.scaler.inverse(d.test.x.astype(np.float64)),
                                   raw(base.test.x.astype(np.float64)), atol=1e-5)
        assert set(d.baselines) == set(dev)
        for name in ("naive",):  # no parameters: the loader's forecasts of the fold's rows
            np.testing.assert_array_equal(d.baselines[name]["val"], dev[name][f.val])
        # parameters fitted on the series before the fold's first validation origin, not the loader's
        series = sine.make_series(SINE.length, SINE.periods, SINE.amplitudes, SINE.noise,
                                  np.random.default_rng(rng_seed))
        cut = int(d.val.info.min())
        np.testing.assert_allclose(d.baselines["mean"]["val"], series[:cut].mean(), rtol=1e-12)
        for name, b in d.baselines.items():
            np.testing.assert_array_equal(b["test"], base.baselines[name]["test"])
        assert d.meta["val_origins"] == len(d.val) == len(f.val)  # the fold's, not the loader's
        cv = d.meta["cv"]
        assert cv["strategy"] == "expanding" and cv["gap"] == 2
        assert cv["train_range"] == [0, len(f.train)] and cv["val_range"] == [int(f.val[0]), int(f.val[-1]) + 1]


def test_resplit_then_recursive_has_horizon_targets_of_the_fold():
    cfg = SineConf(length=400, n_in=12, n_out=3, strategy="recursive")
    rec = registry.load(cfg, np.random.default_rng(0), np.float32, cv=CvConf(fold=2, k=3), seed=0)
    # the loader's windows (one-step training targets reach validation: n_out - 1 more than direct), re-split
    fold = F.resplit(sine.load(cfg, np.random.default_rng(0), np.float32), CvConf(fold=2, k=3), 0, "sine")
    assert rec.recursive_horizon == 3 and rec.train.y.shape == (len(fold.train), 1)
    assert fold.val.y.shape[1] == 3
    # the fold's validation targets are the series' own n_out values after each window's origin
    series = sine.make_series(cfg.length, cfg.periods, cfg.amplitudes, cfg.noise, np.random.default_rng(0))
    want = series[rec.val.info[:, None] + np.arange(3)]
    np.testing.assert_array_equal(rec.targets_original("val"), want)


def test_resplit_csv_maps_each_row_through_its_own_inverse(tmp_path):
    """data.transform=diff: a window's level comes from its own last observed value, wherever it lands."""
    rng = np.random.default_rng(1)
    n = 300
    close = 100 + np.cumsum(rng.standard_normal(n))
    pd.DataFrame({"Date": pd.bdate_range("2021-01-01", periods=n).strftime("%Y-%m-%d"), "Close": close}).to_csv(
        tmp_path / "p.csv", index=False)
    cfg = CsvConf(path=str(tmp_path / "p.csv"), n_in=10, n_out=2, transform="diff", seasonal_period=5)
    base = registry.load(cfg, np.random.default_rng(0), np.float32)
    dev_levels = np.concatenate([base.targets_original("train"), base.targets_original("val")])
    cv = CvConf(fold=0, k=3, strategy="kfold")
    _, folds = F.plan(base, cv, seed=0)
    d = registry.load(cfg, np.random.default_rng(0), np.float32, cv=cv, seed=0)
    np.testing.assert_allclose(d.targets_original("val"), dev_levels[folds[0].val])
    np.testing.assert_allclose(d.targets_original("train"), dev_levels[folds[0].train])
    np.testing.assert_allclose(d.targets_original("test"), base.targets_original("test"))
    assert set(d.baselines) == {"naive", "seasonal_naive", "drift", "mean", "ets"}
    assert len(d.baselines["seasonal_naive"]["val"]) == len(d.val)


def test_resplit_drops_baselines_without_train_rows():
    data = _series_data(30)
    data.baselines = {"only_val_test": {"val": np.zeros((0, 1)), "test": np.zeros((0, 1))}}
    out = F.resplit(data, CvConf(fold=0, k=2), seed=0)
    assert out.baselines == {} and out.meta["cv"]["dropped_baselines"] == ["only_val_test"]


def test_resplit_seq2seq():
    cfg = ReverseDigitsConf(n_train=30, n_val=10, n_test=10)
    base = registry.load(cfg, np.random.default_rng(0), np.float32)
    d = registry.load(cfg, np.random.default_rng(0), np.float32, cv=CvConf(fold=3, k=4), seed=0)
    assert len(d.train) == 30 and len(d.val) == 10
    dev = np.concatenate([base.train.src, base.val.src])
    _, folds = F.plan(base, CvConf(k=4), seed=0)
    np.testing.assert_array_equal(d.val.src, dev[folds[3].val])
    np.testing.assert_array_equal(d.val.tgt_out, np.concatenate([base.train.tgt_out, base.val.tgt_out])[folds[3].val])
    np.testing.assert_array_equal(d.test.src, base.test.src)
    assert d.meta["cv"]["strategy"] == "kfold"
