"""Sequence classification files (data=seqfile): wide/long CSV and NPZ round trips, masks,
stratified splits, train-only scaling, missing values, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.config.schema import SeqfileConf
from rnnlab.config.validate import ConfigError
from rnnlab.data import registry
from rnnlab.data import seqfile as sf
from rnnlab.data.base import DataError


def _load(path, seed=0, **kw):
    return sf.load(SeqfileConf(path=str(path), **kw), np.random.default_rng(seed))


def _splits(d):
    return {k: getattr(d, k) for k in ("train", "val", "test")}


def _wide(tmp_path, n=40, name="wide.csv", labels=("cat", "dog"), max_t=8):
    """Row i: label labels[i % C], length 3 + i % (max_t - 2), values 1000 * i + step."""
    lines = ["label," + ",".join(f"t{j}" for j in range(max_t))]
    lengths = []
    for i in range(n):
        length = 3 + i % (max_t - 2)
        cells = [str(1000 * i + j) for j in range(length)] + [""] * (max_t - length)
        lines.append(f"{labels[i % len(labels)]}," + ",".join(cells))
        lengths.append(length)
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path, np.array(lengths)


def _long(tmp_path, n=30, name="long.csv", n_classes=3, seed=1):
    """Sequence i (id 's<i>'): length 2 + i % 5, features (100 * i + time, -time), rows shuffled."""
    rows = []
    for i in range(n):
        for t in range(2 + i % 5):
            rows.append({"id": f"s{i}", "time": t, "label": f"c{i % n_classes}", "f1": 100.0 * i + t, "f2": -t})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path, frame


def _npz(tmp_path, name="seqs.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------- round trips


def test_wide_round_trip_with_variable_lengths(tmp_path):
    path, lengths = _wide(tmp_path)
    d = _load(path, scale=False)
    assert d.kind == "binary" and d.output_size == 1 and d.default_loss == "bce"
    assert d.classes == ["cat", "dog"] and d.meta["classes"] == ["cat", "dog"]
    assert d.input_size == 1 and d.meta["format"] == "wide" and d.meta["max_len"] == 8
    seen = []
    for s in _splits(d).values():
        assert s.x.dtype == np.float32 and s.x.shape[1:] == (8, 1)
        assert s.y.dtype == np.int64 and s.y.shape == (len(s),)
        assert s.mask.shape == (len(s), 8) and s.mask.dtype == np.float32
        for x, y, m in zip(s.x, s.y, s.mask, strict=True):
            i = int(x[0, 0]) // 1000  # the row this sequence came from
            seen.append(i)
            k = lengths[i]
            assert y == i % 2
            np.testing.assert_array_equal(m, np.arange(8) < k)  # post-padding: real steps first
            np.testing.assert_array_equal(x[:k, 0], 1000 * i + np.arange(k))
            assert (x[k:] == 0).all()
    assert sorted(seen) == list(range(40))
    json.dumps(d.meta)  # meta goes into model.json


def test_long_round_trip_groups_by_id_and_sorts_by_time(tmp_path):
    path, _ = _long(tmp_path)
    d = _load(path, scale=False)
    assert d.kind == "multiclass" and d.output_size == 3 and d.default_loss == "cross_entropy"
    assert d.classes == ["c0", "c1", "c2"] and d.input_size == 2
    assert d.meta["format"] == "long" and d.meta["features"] == ["f1", "f2"]
    seen = []
    for s in _splits(d).values():
        assert s.x.shape[1:] == (6, 2)
        for x, y, m in zip(s.x, s.y, s.mask, strict=True):
            i = int(x[0, 0]) // 100
            seen.append(i)
            k = 2 + i % 5
            assert y == i % 3 and m.sum() == k and (m[:k] == 1).all()
            np.testing.assert_array_equal(x[:k, 0], 100 * i + np.arange(k))  # sorted by time
            np.testing.assert_array_equal(x[:k, 1], -np.arange(k))
    assert sorted(seen) == list(range(30))
    json.dumps(d.meta)


def test_long_format_listed_features_and_date_times(tmp_path):
    path, frame = _long(tmp_path)
    frame["time"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["time"], unit="D")).dt.strftime("%Y-%m-%d")
    frame["note"] = "text"
    frame.to_csv(path, index=False)
    d = _load(path, scale=False, feature_columns=["f2"])
    assert d.input_size == 1 and d.meta["features"] == ["f2"]
    assert d.meta["lengths"]["max"] == 6
    d2 = _load(path, scale=False)  # the text column is skipped
    assert d2.meta["features"] == ["f1", "f2"]
    x = d2.train.x[0, :, 1]
    k = int(d2.train.mask[0].sum())
    np.testing.assert_array_equal(x[:k], -np.arange(k))  # date order


@pytest.mark.parametrize("shape", ["3d_lengths", "2d_mask", "full"])
def test_npz_round_trip(tmp_path, shape):
    rng = np.random.default_rng(3)
    n, t = 30, 7
    lengths = 2 + np.arange(n) % 6
    x = rng.standard_normal((n, t, 2))
    x[:, :, 0] = np.arange(n)[:, None]  # identifies the sequence
    y = np.where(np.arange(n) % 3 == 0, "pos", "neg")
    if shape == "3d_lengths":
        path = _npz(tmp_path, x=x, y=y, lengths=lengths)
    elif shape == "2d_mask":
        x = x[:, :, 0]
        path = _npz(tmp_path, x=x, y=y, mask=(np.arange(t) < lengths[:, None]).astype(np.uint8))
    else:
        path = _npz(tmp_path, x=x, y=y)
    d = _load(path, scale=False)
    assert d.meta["format"] == "npz" and d.classes == ["neg", "pos"] and d.kind == "binary"
    assert d.input_size == (1 if shape == "2d_mask" else 2)
    json.dumps(d.meta)
    for s in _splits(d).values():
        ids = s.x[:, 0, 0].astype(int)
        np.testing.assert_array_equal(s.y, (ids % 3 == 0).astype(int))
        if shape == "full":
            assert s.mask is None and s.x.shape[1] == t
        else:
            np.testing.assert_array_equal(s.mask, np.arange(t) < lengths[ids][:, None])
            assert (s.x[s.mask == 0] == 0).all()


def test_numeric_labels_sort_numerically(tmp_path):
    n = 30
    x = np.ones((n, 4))
    path = _npz(tmp_path, x=x, y=np.array([10, 2, 1] * (n // 3)))
    d = _load(path)
    assert d.classes == ["1", "2", "10"] and d.kind == "multiclass"
    csv = tmp_path / "w.csv"
    pd.DataFrame({"label": [10.0, 2.0, 1.0] * 10, "a": 1.0, "b": 2.0}).to_csv(csv, index=False)
    assert _load(csv).classes == ["1", "2", "10"]


def test_max_len_keeps_the_first_steps(tmp_path):
    path, lengths = _wide(tmp_path)
    d = _load(path, scale=False, max_len=4)
    assert d.meta["max_len"] == 4 and d.meta["truncate"] == 4
    for s in _splits(d).values():
        assert s.x.shape[1] == 4
        i = (s.x[:, 0, 0] // 1000).astype(int)
        k = np.minimum(lengths[i], 4)
        np.testing.assert_array_equal(s.mask, np.arange(4) < k[:, None])
        np.testing.assert_array_equal(s.x[:, :, 0], (1000 * i[:, None] + np.arange(4)) * s.mask)  # first steps kept
    d3 = _load(path, scale=False, max_len=3)
    assert all(s.mask is None for s in _splits(d3).values())  # all rows reach 3 steps


def test_mask_is_none_only_when_all_sequences_are_full(tmp_path):
    path, _ = _wide(tmp_path)
    d = _load(path, max_len=5)
    assert all(s.mask is not None for s in _splits(d).values())  # lengths 3 and 4 remain


# ---------------------------------------------------------------- splits and scaling


def test_stratified_split_keeps_class_proportions(tmp_path):
    y = np.array(["a"] * 200 + ["b"] * 100)
    x = np.arange(300, dtype=float)[:, None] * np.ones((1, 5))
    path = _npz(tmp_path, x=x, y=y)
    d = _load(path, val_frac=0.2, test_frac=0.2)
    assert d.meta["class_counts"] == {"train": [120, 60], "val": [40, 20], "test": [40, 20]}
    for s in _splits(d).values():
        assert np.bincount(s.y).tolist() == [2 * (s.y == 1).sum(), (s.y == 1).sum()]
    # seeded: the same seed gives the same split, another seed another one
    again, other = _load(path, val_frac=0.2, test_frac=0.2), _load(path, seed=1, val_frac=0.2, test_frac=0.2)
    np.testing.assert_array_equal(again.test.x, d.test.x)
    assert not np.array_equal(other.test.x, d.test.x)
    # no sequence in two splits
    raw = _load(path, scale=False, val_frac=0.2, test_frac=0.2)
    ids = np.concatenate([s.x[:, 0, 0] for s in _splits(raw).values()])
    assert sorted(ids.tolist()) == list(range(300))


def test_scaler_is_fitted_on_real_train_steps_only(tmp_path):
    path, _ = _long(tmp_path)
    raw = _load(path, scale=False)
    d = _load(path)
    real = raw.train.x[raw.train.mask == 1]  # (steps, 2)
    mean, std = real.mean(axis=0), real.std(axis=0)
    np.testing.assert_allclose(d.meta["scaler"]["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(d.meta["scaler"]["std"], std, rtol=1e-5)
    everything = np.concatenate([s.x[s.mask == 1] for s in _splits(raw).values()])
    assert not np.allclose(everything.mean(axis=0), mean)  # the val/test steps are not part of the fit
    for k in ("train", "val", "test"):
        r, s = getattr(raw, k), getattr(d, k)
        np.testing.assert_allclose(s.x[s.mask == 1], (r.x[r.mask == 1] - mean) / std, rtol=1e-4, atol=1e-5)
        assert (s.x[s.mask == 0] == 0).all()  # padding stays zero after scaling
    assert raw.meta["scaler"] is None


def test_separate_test_file(tmp_path):
    path, _ = _wide(tmp_path, n=40)
    test_path, _ = _wide(tmp_path, n=10, name="test.csv", max_t=10)
    d = _load(path, scale=False, test_path=str(test_path), val_frac=0.25, test_frac=0.3)
    assert len(d.train) + len(d.val) == 40 and len(d.val) == 10 and len(d.test) == 10
    assert d.train.x.shape[1] == d.test.x.shape[1] == 10  # padded to the longer file
    assert d.meta["test_path"] == str(test_path)
    bad, _ = _wide(tmp_path, n=10, name="bad.csv", labels=("cat", "cow"))
    with pytest.raises(DataError, match=r"test file bad.csv has labels not in wide.csv: 'cow'"):
        _load(path, test_path=str(bad))


def test_path_inside_rnnlab_data(tmp_path, monkeypatch):
    _wide(tmp_path)
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    d = _load("wide.csv")
    assert d.meta["path"] == str(tmp_path / "wide.csv")


# ---------------------------------------------------------------- missing values


def test_wide_missing_values_policies(tmp_path):
    path, lengths = _wide(tmp_path)
    text = path.read_text().splitlines()
    cells = text[3].split(",")  # file line 4 = row 2 (length 5)
    cells[2] = ""  # an empty cell before the last value: missing, not padding
    text[3] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as exc:
        _load(path)
    message = "wide.csv: missing values in rows 4 (file line numbers); set data.nan_policy to drop or fill"
    assert str(exc.value) == message
    dropped = _load(path, nan_policy="drop")
    assert sum(map(len, _splits(dropped).values())) == 39 and dropped.meta["dropped"] == 1
    filled = _load(path, nan_policy="fill", scale=False)
    for s in _splits(filled).values():
        rows = np.flatnonzero(s.x[:, 0, 0] == 2000)
        if len(rows):
            np.testing.assert_array_equal(s.x[rows[0], :5, 0], [2000, 2000, 2002, 2003, 2004])  # forward-filled
            assert s.mask[rows[0]].sum() == 5


def test_fill_carries_values_forward_and_leading_gaps_back():
    x = np.array([[[np.nan], [1.0], [np.nan], [3.0], [np.nan]], [[np.nan], [np.nan], [np.nan], [9.0], [9.0]]])
    out = sf._fill_gaps(x, np.array([4, 3]))
    np.testing.assert_array_equal(out[0, :4, 0], [1, 1, 1, 3])
    np.testing.assert_array_equal(out[1, :3, 0], [0, 0, 0])  # no value within the sequence: 0, never the padding


def test_long_missing_values_policies(tmp_path):
    path, frame = _long(tmp_path)
    r = int(np.flatnonzero(frame["id"] == "s7")[0])
    frame.loc[r, "f2"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"missing values in rows {r + 2} \(file line numbers\); set data.nan_policy"):
        _load(path)
    d = _load(path, nan_policy="drop", scale=False)
    ids = sorted(int(v) // 100 for s in _splits(d).values() for v in s.x[:, 0, 0])
    assert ids == [i for i in range(30) if i != 7]
    d = _load(path, nan_policy="fill")
    assert all(np.isfinite(s.x).all() for s in _splits(d).values())


def test_npz_missing_values(tmp_path):
    x = np.ones((20, 5, 1))
    x[3, 1, 0] = np.nan
    x[4, 4, 0] = np.nan  # in the padding of sequence 4: not missing
    lengths = np.full(20, 5)
    lengths[4] = 3
    path = _npz(tmp_path, x=x, y=np.arange(20) % 2, lengths=lengths)
    with pytest.raises(DataError, match=r"missing values in sequences 3 \(0-based\)"):
        _load(path)
    assert _load(path, nan_policy="drop").meta["dropped"] == 1


# ---------------------------------------------------------------- one-line errors


def _write(text: str, name: str = "d.csv"):
    def setup(tmp_path):
        p = tmp_path / name
        p.write_text(text)
        return p
    return setup


def _write_npz(**arrays):
    def setup(tmp_path):
        return _npz(tmp_path, **arrays)
    return setup


TWO = "label,a,b\n0,1,2\n1,3,4\n0,5,6\n1,7,8\n0,1,1\n1,2,2\n0,3,3\n1,4,4\n0,5,5\n1,6,6\n"


@pytest.mark.parametrize(
    "setup, kw, message",
    [
        (lambda p: p / "nope.csv", {}, "data file not found: "),
        (_write(""), {}, "data file is empty: "),
        (_write("label,a,b\n"), {}, "data file has a header but no rows: "),
        (_write(TWO, "d.json"), {}, "cannot tell the format of d.json from its extension"),
        (_write(TWO), {"label_column": "class"},
         "d.csv has no label column 'class' (set data.label_column; columns: label, a, b)"),
        (_write(TWO), {"format": "long"},
         "d.csv is read as long (data.format=long) but no column looks like a sequence id (named like id, "
         "sample_id, series, ... or in runs); set data.id_column (columns: label, a, b)"),
        (_write(TWO), {"format": "long", "id_column": "id"},
         "d.csv has no id column 'id' (set data.id_column; columns: label, a, b)"),
        (_write("id,label,a\ns,0,1\n"), {"format": "long"},
         "d.csv is read as long (data.format=long) but has no column named like a time (t, time, step, "
         "timestamp, date, ...); set data.time_column, or data.format=wide if each row is one sequence "
         "(columns: id, label, a)"),
        (_write("id,label,a\ns,0,1\n"), {"format": "long", "time_column": "time"},
         "d.csv has no time column 'time' (set data.time_column; columns: id, label, a)"),
        (_write(TWO), {"feature_columns": ["a", "z"]},
         "d.csv has no column 'z' in data.feature_columns (columns: label, a, b)"),
        (_write(TWO.replace("5,6", "5,six").replace("7,8", "x,8")), {},
         "d.csv: non-numeric values in rows 4, 5 (file line numbers), e.g. 'six' in column 'b'"),
        (_write("label,a,b\n" + "x,1,2\n" * 10), {}, "d.csv: found only one class ('x') in label column 'label'"),
        (_write(TWO + "2,1,1\n"), {},
         "d.csv: class '2' has only 1 sequence(s), too few for val_frac=0.5 and test_frac=0.3"),
        (_write("id,time,label,f\na,0,x,1\na,1,y,2\nb,0,x,1\n"), {},
         "d.csv: the label changes within id 'a' (x, y); a sequence needs one label on all its rows"),
        (_write("id,time,label,f\na,0,x,1\na,0,x,2\nb,0,y,1\n"), {},
         "d.csv: id 'a' has time '0' more than once (rows 2 and 3, file line numbers)"),
        (_write("id,time,label,f\na,0,x,1\na,soon,x,2\nb,0,y,1\n"), {},
         "d.csv: time column 'time' has values that are neither numbers nor dates in rows 3"),
        (_write(TWO), {"path": None}, "data.path must name a sequence file (CSV, NPZ or .ts)"),
        (_write_npz(x=np.ones((4, 3))), {},
         "seqs.npz has no array 'y' or 'Y' (arrays: x); it needs x (N, T, D) or (N, T) and y (N,), or set data.y_key"),
        (_write_npz(x=np.ones((4, 3)), y=np.arange(3)), {},
         "seqs.npz: y must have shape (N,) = (4,) to match x (got (3,))"),
        (_write_npz(x=np.ones(4), y=np.arange(4)), {}, "seqs.npz: x must have shape (N, T, D) or (N, T)"),
        (_write_npz(x=np.ones((4, 3)), y=np.arange(4), mask=np.array([[1, 0, 1]] * 4)), {},
         "seqs.npz: mask must be 1 on the first steps and 0 after them (post-padding); sequences 0, 1, 2, 3"),
        (_write_npz(x=np.ones((4, 3)), y=np.arange(4), mask=np.ones((4, 2))), {},
         "seqs.npz: mask must have shape (N, T) = (4, 3) to match x (got (4, 2))"),
        (_write_npz(x=np.ones((4, 3)), y=np.arange(4), mask=np.ones((4, 3)), lengths=np.ones(4)), {},
         "seqs.npz has both 'mask' and 'lengths'; give one of them"),
        (_write_npz(x=np.ones((4, 3)), y=np.arange(4), lengths=np.full(4, 9)), {},
         "seqs.npz: lengths must be whole numbers in 0..3 (T of x)"),
        (_write_npz(x=np.ones((4, 3)), y=np.array([{"a": 1}] * 4, dtype=object)), {},
         "seqs.npz: array 'y' holds Python objects"),
        (_write("not a zip", "z.npz"), {}, "cannot read "),
    ],
)
def test_bad_input_gives_one_line(tmp_path, setup, kw, message):
    path = setup(tmp_path)
    cfg = {"path": str(path), "val_frac": 0.5, "test_frac": 0.3, **kw}
    with pytest.raises(DataError) as exc:
        sf.load(SeqfileConf(**cfg), np.random.default_rng(0))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_test_file_with_other_features_is_refused(tmp_path):
    path, _ = _long(tmp_path)
    other = tmp_path / "other.csv"
    pd.DataFrame({"label": ["c0", "c1"], "a": [1, 2]}).to_csv(other, index=False)
    with pytest.raises(DataError, match=r"test file other.csv has 1 features per step, but long.csv has 2"):
        _load(path, test_path=str(other))


def test_missing_labels_cannot_be_filled(tmp_path):
    path, _ = _wide(tmp_path)
    text = path.read_text().replace("\ndog,1000,", "\n,1000,")
    path.write_text(text)
    with pytest.raises(DataError, match=r"missing values in rows 3 "):
        _load(path)
    no_fill = r"rows 3 \(file line numbers\) have no label or no values, which nan_policy=fill cannot fill"
    with pytest.raises(DataError, match=no_fill):
        _load(path, nan_policy="fill")
    assert _load(path, nan_policy="drop").meta["dropped"] == 1


# ---------------------------------------------------------------- config


def test_config_composes_validates_and_loads(tmp_path):
    path, _ = _long(tmp_path)
    rc = compose_and_validate(["data=seqfile", f"data.path={path}", "data.nan_policy=drop", "data.max_len=4"])
    assert isinstance(rc.data, SeqfileConf)
    assert rc.data.path == str(path) and rc.data.nan_policy == "drop" and rc.data.max_len == 4
    assert rc.data.feature_columns is None and rc.data.format == "auto"
    d = registry.load(rc.data, np.random.default_rng(0), np.float64)
    assert d.train.x.dtype == np.float64 and d.train.x.shape[1:] == (4, 2) and d.classes == ["c0", "c1", "c2"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.bogus=1", "unknown key 'data.bogus'"),
        ("data.format=json", "data.format must be one of auto, wide, long, npz, ts (got 'json')"),
        ("data.layout=CHW", "data.layout must be one of NTD, NDT (got 'CHW')"),
        ("data.x_key=''", "data.x_key must name a column or array, or be null (got an empty name)"),
        ("data.nan_policy=ffill", "data.nan_policy must be one of error, drop, fill (got 'ffill')"),
        ("data.max_len=0", "data.max_len must be >= 1 (got 0)"),
        ("data.max_len=abc", "data.max_len: Value 'abc' could not be converted to Integer"),
        ("data.val_frac=0.8", "data.val_frac + data.test_frac must leave at least 10 % for training"),
    ],
)
def test_bad_config_values_give_one_line(tmp_path, override, message):
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(["data=seqfile", f"data.path={tmp_path / 'x.csv'}", override])
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert "\n" not in str(exc.value)
