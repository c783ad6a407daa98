"""Preprocessing refitted per cross-validation fold (TaskData.refit, folds.resplit): each fold's scalers and
vocabulary come from its training rows only, so its validation rows inform nothing but its validation scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab.config.schema import AddingConf, CsvConf, CvConf, SineConf
from rnnlab.data import folds as F
from rnnlab.data import registry, sine
from rnnlab.data import timeseries as ts
from rnnlab.data.base import StandardScaler

SINE = SineConf(length=400, n_in=12, n_out=3)  # t_val 280, t_test 340: 266 train windows, 58 val windows
REFITTED = " refitted on the fold's training rows"


def _series(cfg=SINE, seed=0):
    return sine.make_series(cfg.length, cfg.periods, cfg.amplitudes, cfg.noise, np.random.default_rng(seed))


def _fold(cfg, cv, seed=0, loader=sine.load):
    return F.resplit(loader(cfg, np.random.default_rng(seed), np.float32), cv, 0, cfg.name)


def _steps(split, n_in: int, horizon: int) -> np.ndarray:
    """Sorted positions of the series the split's windows read or predict (its info: each first target)."""
    first = np.asarray(split.info)
    return np.unique(np.concatenate([np.arange(f - n_in, f + horizon) for f in first]))


def _values_by_step(split, n_in: int) -> dict[int, float]:
    """Step -> the scaled value the split's windows hold there (inputs and targets)."""
    out = {}
    for x, y, f in zip(split.x[:, :, 0], split.y, np.asarray(split.info), strict=True):
        out.update(zip(range(f - n_in, f), x.tolist(), strict=True))
        out.update(zip(range(f, f + len(y)), y.tolist(), strict=True))
    return out


@pytest.mark.parametrize("cv", [CvConf(fold=1, k=3), CvConf(fold=2, k=4, strategy="kfold")])
def test_sine_fold_scaler_is_fitted_on_the_steps_of_its_training_windows(cv):
    d = _fold(SINE, cv)
    steps = _steps(d.train, SINE.n_in, SINE.n_out)
    expected = StandardScaler.fit(_series()[steps])
    assert (d.scaler.mean, d.scaler.std) == (expected.mean, expected.std)  # exactly, each step once
    assert d.meta["scaler"] == expected.to_dict()
    assert d.meta["cv"]["preprocessing"] == "scaler and baselines" + REFITTED
    # the fold's training windows, every covered step once: mean 0 and std 1 in scaled units
    values = np.array(list(_values_by_step(d.train, SINE.n_in).values()))
    assert len(values) == len(steps)
    assert abs(values.mean()) < 1e-6 and values.std() == pytest.approx(1.0, abs=1e-6)
    # and not the loader's scaler (the train part of the series, which holds some of the fold's val windows)
    base = sine.load(SINE, np.random.default_rng(0), np.float32)
    assert d.scaler.mean != base.scaler.mean and d.scaler.std != base.scaler.std


def test_sine_fold_scaler_ignores_its_validation_steps(monkeypatch):
    cv = CvConf(fold=0, k=3)
    before = _fold(SINE, cv)
    steps = _steps(before.train, SINE.n_in, SINE.n_out)
    val_only = int(_steps(before.val, SINE.n_in, SINE.n_out)[-1])  # a target of the fold's last val window
    assert val_only not in steps and val_only < 280  # in the loader's train part
    original = _series()
    series = original.copy()
    series[val_only] += 50.0
    monkeypatch.setattr(sine, "make_series", lambda *a, **k: series.copy())
    after = _fold(SINE, cv)
    assert (after.scaler.mean, after.scaler.std) == (before.scaler.mean, before.scaler.std)
    np.testing.assert_array_equal(after.train.x, before.train.x)
    # the changed step is in the fold's validation inputs or targets, scaled by the fold's scaler
    assert after.val.y.max() == pytest.approx((series[val_only] - after.scaler.mean) / after.scaler.std, rel=1e-6)
    plain = sine.load(SINE, np.random.default_rng(0), np.float32)  # the loader's own scaler does see it
    assert plain.scaler == StandardScaler.fit(series[:280]) != StandardScaler.fit(original[:280])


def test_sine_fold_equals_a_plain_run_on_that_fold():
    """Expanding fold 0: a plain load whose validation part starts right after the fold's training windows
    has the same training windows, scaler and test windows, and its first validation windows are the fold's."""
    fold = _fold(SINE, CvConf(fold=0, k=3))
    last_train_target = int(np.asarray(fold.train.info)[-1]) + SINE.n_out  # end of the training steps
    plain_cfg = SineConf(length=400, n_in=12, n_out=3, val_size=340 - last_train_target, test_size=60)
    plain = sine.load(plain_cfg, np.random.default_rng(0), np.float32)
    assert (fold.scaler.mean, fold.scaler.std) == (plain.scaler.mean, plain.scaler.std)
    for name in ("x", "y", "info"):
        np.testing.assert_array_equal(getattr(fold.train, name), getattr(plain.train, name))
        np.testing.assert_array_equal(getattr(fold.val, name), getattr(plain.val, name)[: len(fold.val)])
        np.testing.assert_array_equal(getattr(fold.test, name), getattr(plain.test, name))
    np.testing.assert_array_equal(fold.targets_original("val"), plain.targets_original("val")[: len(fold.val)])


def test_recursive_folds_fit_on_one_step_targets():
    cfg = SineConf(length=400, n_in=12, n_out=3, strategy="recursive")
    d = registry.load(cfg, np.random.default_rng(0), np.float32, cv=CvConf(fold=1, k=3), seed=0)
    steps = _steps(d.train, cfg.n_in, 1)  # trained on the first target of each window
    assert d.scaler.mean == StandardScaler.fit(_series(cfg)[steps]).mean


def test_what_a_fold_records_and_registry_drops_the_refit():
    assert sine.load(SINE, np.random.default_rng(0), np.float32).refit.what == "scaler and baselines"
    assert registry.load(SINE, np.random.default_rng(0), np.float32).refit is None  # the raw series freed
    unscaled = SineConf(length=400, n_in=12, n_out=3, scale=False)
    d = registry.load(unscaled, np.random.default_rng(0), np.float32, cv=CvConf(fold=0, k=3), seed=0)
    # no scaler to refit, but the baselines' parameters still come from before the fold's validation rows
    assert d.meta["cv"]["preprocessing"] == "baselines refitted on the fold's training rows"
    assert d.scaler.to_dict() == {"mean": 0.0, "std": 1.0}
    adding = registry.load(AddingConf(length=10, n_train=20, n_val=5, n_test=5), np.random.default_rng(0),
                           np.float32, cv=CvConf(fold=0, k=2), seed=0)
    assert adding.meta["cv"]["preprocessing"] == "none needed"


# ----------------------------------------------------------------------------- csv: one scaler per column


def _prices(tmp_path, n=240, bump=None):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"Date": pd.bdate_range("2022-01-03", periods=n).strftime("%Y-%m-%d"),
                          "Close": 100 + np.cumsum(rng.standard_normal(n)),
                          "Volume": rng.uniform(1e6, 2e6, n)})
    if bump is not None:
        frame.loc[bump, ["Close", "Volume"]] += [30.0, 5e6]
    path = tmp_path / "prices.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_csv_fold_refits_every_column_scaler_the_inverse_and_the_forecast_input(tmp_path):
    path, frame = _prices(tmp_path)
    cfg = CsvConf(path=str(path), n_in=8, n_out=2, covariates=["Volume"], transform="diff")
    cv = CvConf(fold=1, k=3)
    d = _fold(cfg, cv, loader=ts.load)
    level = frame["Close"].to_numpy()
    feats = np.stack([np.diff(level), frame["Volume"].to_numpy()[1:]], axis=1)  # the usable rows (diff drops one)
    rows = _steps(d.train, cfg.n_in, cfg.n_out) - 1  # info counts rows as loaded
    fitted = [StandardScaler.fit(feats[rows, j]) for j in range(2)]
    assert d.meta["scalers"] == [s.to_dict() for s in fitted]
    assert d.scaler == fitted[0] and d.meta["cv"]["preprocessing"] == "scalers and baselines" + REFITTED
    np.testing.assert_allclose(d.train.x[:, -1, 1], fitted[1].transform(feats[np.asarray(d.train.info) - 2, 1]),
                               rtol=1e-5)
    # the inverse undoes the fold's scaler (then the difference), back to the file's levels
    first = np.asarray(d.val.info)
    np.testing.assert_allclose(d.targets_original("val"), np.stack([level[first], level[first + 1]], axis=1),
                               rtol=1e-6)
    np.testing.assert_allclose(d.future["x"][0], np.stack([s.transform(feats[-8:, j]) for j, s in enumerate(fitted)],
                                                          axis=1), rtol=1e-5)
    future = d.to_original(np.zeros((1, 2)), "future")  # a zero forecast in scaled units = the fold's mean change
    np.testing.assert_allclose(future[0], level[-1] + fitted[0].mean * np.arange(1, 3))
    # a row only the fold's validation windows see changes none of the scalers
    val_only = int(_steps(d.val, cfg.n_in, cfg.n_out)[-1])
    assert val_only - 1 not in rows
    bumped, _ = _prices(tmp_path, bump=val_only)
    again = _fold(CsvConf(path=str(bumped), n_in=8, n_out=2, covariates=["Volume"], transform="diff"), cv,
                  loader=ts.load)
    assert again.meta["scalers"] == d.meta["scalers"]


# ----------------------------------------------------------------------------- imdb: the vocabulary


def _imdb(tmp_path, **kw):
    from rnnlab.config.schema import ImdbConf
    from rnnlab.data import imdb
    from tests.data import imdb_tree as tree

    cfg = ImdbConf(path=str(tree.write_folder(tmp_path, 12)), **{"vocab_size": 1000, "maxlen": 30, "val_frac": 0.25,
                                                                 "embed_dim": 4, **kw})
    return cfg, imdb.load, imdb.load(cfg, np.random.default_rng(0))


def _last_tokens(split) -> np.ndarray:
    """Each review's last real token: its marker, a word of that review only (tests/data/imdb_tree.py)."""
    return split.x[np.arange(len(split)), split.mask.sum(axis=1).astype(int) - 1]


def test_imdb_fold_vocabulary_comes_from_its_training_reviews(tmp_path):
    from rnnlab.data.text import OOV_ID

    cfg, load, base = _imdb(tmp_path)
    assert (_last_tokens(base.train) != OOV_ID).all() and (_last_tokens(base.val) == OOV_ID).all()
    cv = CvConf(fold=1, k=3)
    d = _fold(cfg, cv, loader=load)
    assert d.meta["cv"]["preprocessing"] == "vocabulary" + REFITTED
    # a word of one validation review only is <oov> in that fold, though the loader's vocabulary has it
    # for the validation reviews that come from its train part; every training review's marker is known
    assert (_last_tokens(d.val) == OOV_ID).all() and (_last_tokens(d.train) != OOV_ID).all()
    markers = {w for w in d.meta["vocab"] if w.startswith("idtrain")}
    assert len(markers) == len(d.train)
    # the embedding follows the fold's vocabulary; the test reviews are encoded with it too
    assert d.embedding["vocab_size"] == d.meta["vocab_size"] == len(d.meta["vocab"]) != base.meta["vocab_size"]
    assert d.test.x.max() < len(d.meta["vocab"]) and len(d.test) == len(base.test)
    assert d.test.info.equals(base.test.info)
    # the loader's own rows give the loader's encoding back: the same code fits both
    own = base.refit.fit(np.arange(len(base.train)), len(base.train) + np.arange(len(base.val)))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(own, split).x, getattr(base, split).x)
    assert own.meta == base.meta


def test_imdb_fold_looks_pretrained_vectors_up_for_its_vocabulary(tmp_path):
    vec = tmp_path / "glove.txt"
    markers = [f"idtrain{label}{i}" for label in ("neg", "pos") for i in range(12)]  # one word per review
    vec.write_text("great 1 2 3 4\nawful -1 -2 -3 -4\n" + "".join(f"{m} 0 0 0 1\n" for m in markers))
    cfg, load, base = _imdb(tmp_path, pretrained=str(vec))
    a, b = (_fold(cfg, CvConf(fold=2, k=3), loader=load) for _ in range(2))
    vocab, w = a.meta["vocab"], a.embedding["weights"]
    # the fold's training reviews' markers have vectors, its validation reviews' are not in its vocabulary
    assert w.shape == (len(vocab), 4) and a.meta["pretrained_coverage"] == 2 + len(a.train)
    assert base.meta["pretrained_coverage"] == 2 + len(base.train) != a.meta["pretrained_coverage"]
    np.testing.assert_array_equal(w[vocab.index("great")], [1, 2, 3, 4])
    np.testing.assert_array_equal(w[vocab.index("awful")], [-1, -2, -3, -4])
    np.testing.assert_array_equal(w, b.embedding["weights"])  # the same vectors every time (cv --resume)


# ----------------------------------------------------------------------------- seqfile: per-feature scaler


def _sequences(tmp_path, bump=None, name="seqs.npz"):
    """60 sequences of 2 features and lengths 3..9 (NPZ with lengths); `bump`: sequence whose values change."""
    rng = np.random.default_rng(5)
    x = rng.normal([3.0, -20.0], [2.0, 7.0], size=(60, 9, 2))
    if bump is not None:
        x[bump] += [100.0, 1000.0]
    path = tmp_path / name
    np.savez(path, x=x, y=np.arange(60) % 3, lengths=3 + np.arange(60) % 7)
    return path


def test_seqfile_fold_scaler_is_fitted_on_its_training_sequences_real_steps(tmp_path):
    from rnnlab.config.schema import SeqfileConf
    from rnnlab.data import seqfile

    path = _sequences(tmp_path)
    cv = CvConf(fold=2, k=4)
    d = _fold(SeqfileConf(path=str(path)), cv, loader=seqfile.load)
    raw = _fold(SeqfileConf(path=str(path), scale=False), cv, loader=seqfile.load)  # the same fold, unscaled
    assert d.meta["cv"]["preprocessing"] == "scaler" + REFITTED
    real = raw.train.x[raw.train.mask > 0].astype(np.float64)  # the fold's training sequences' real steps
    np.testing.assert_allclose(d.meta["scaler"]["mean"], real.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(d.meta["scaler"]["std"], real.std(axis=0), rtol=1e-6)
    scaled = d.train.x[d.train.mask > 0]
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, atol=1e-5)
    assert (d.train.x[d.train.mask == 0] == 0).all() and (d.test.x[d.test.mask == 0] == 0).all()  # padding stays 0
    mean, std = (np.array(d.meta["scaler"][k]) for k in ("mean", "std"))
    for split in ("val", "test"):
        np.testing.assert_allclose(getattr(d, split).x, ((getattr(raw, split).x - mean) / std)
                                   * getattr(raw, split).mask[:, :, None], atol=1e-5)
    # a sequence of the fold's validation part that the loader trains on: changing it changes the loader's
    # scaler, not the fold's
    first = np.load(path)["x"][:, 0, 0]

    def file_rows(split):
        return {int(np.flatnonzero(np.isclose(first, v, rtol=1e-6))[0]) for v in split.x[:, 0, 0]}

    base = seqfile.load(SeqfileConf(path=str(path), scale=False), np.random.default_rng(0), np.float32)
    moved = min(file_rows(raw.val) & file_rows(base.train))
    bumped = str(_sequences(tmp_path, bump=moved, name="bumped.npz"))
    again = _fold(SeqfileConf(path=bumped), cv, loader=seqfile.load)
    assert again.meta["scaler"] == d.meta["scaler"]
    plain = seqfile.load(SeqfileConf(path=str(path)), np.random.default_rng(0)).meta["scaler"]
    assert seqfile.load(SeqfileConf(path=bumped), np.random.default_rng(0)).meta["scaler"] != plain
