"""data=seqfile's readers (rnnlab/data/seqformats): `format: auto` tells long CSVs from wide ones
(or refuses), NPZ keys and channel-first layout, UCR/UEA .ts files, continuous labels refused,
and every refusal one line (exit 2 and no run folder through `rnnlab train`)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.commands.train import run
from rnnlab.config.schema import SeqfileConf
from rnnlab.data import registry
from rnnlab.data import seqfile as sf
from rnnlab.data.base import DataError
from rnnlab.data.seqformats import layout, tsfile


def _load(path, seed=0, **kw):
    return sf.load(SeqfileConf(path=str(path), **kw), np.random.default_rng(seed))


def _all(d):
    return [getattr(d, k) for k in ("train", "val", "test")]


def _n(d) -> int:
    return sum(len(s) for s in _all(d))


def _refused(path, message, **kw):
    with pytest.raises(DataError) as exc:
        _load(path, **kw)
    assert str(exc.value) == message
    return str(exc.value)


# ---------------------------------------------------------------- long or wide (format: auto)


def _long_rows(n=30, steps=lambda i: 12, id_name="id", time_name="t", time_of=lambda k: k, n_ch=12, id_of=None):
    """The issue's file: id, t, ch0..ch11, label; sequence i has steps(i) rows, ch_j = 100 i + k + j / 100."""
    rows = []
    for i in range(n):
        for k in range(steps(i)):
            row = {id_name: id_of(i) if id_of else f"s{i}", time_name: time_of(k)}
            row.update({f"ch{j}": 100.0 * i + k + j / 100 for j in range(n_ch)})
            row["label"] = f"c{i % 3}"
            rows.append(row)
    return pd.DataFrame(rows)


def _check_sequences(d, n, steps, n_ch=12):
    """Every sequence whole, its steps in time order, no sequence in two splits."""
    seen = []
    for s in _all(d):
        assert s.x.shape[2] == n_ch
        for x, y, m in zip(s.x, s.y, s.mask if s.mask is not None else np.ones(s.x.shape[:2]), strict=True):
            i = int(round(x[0, 0])) // 100
            k = steps(i)
            seen.append(i)
            assert m.sum() == k and y == i % 3
            np.testing.assert_allclose(x[:k, 0], 100 * i + np.arange(k))
            np.testing.assert_allclose(x[:k, 11] - x[:k, 0], 0.11, atol=1e-3)  # float32 near 3000
    assert sorted(seen) == list(range(n))


def test_the_issues_file_is_read_as_long(tmp_path):
    # id, t, ch0..ch11, label: was read as wide (one "sequence" per row, rows of a sequence in every split)
    path = tmp_path / "har.csv"
    _long_rows().to_csv(path, index=False)
    d = _load(path, scale=False)
    assert d.meta["format"] == "long"
    assert d.meta["format_reason"] == "column 'id' repeats in runs of 12 rows; 't' is time-like"
    assert (d.meta["id_column"], d.meta["time_column"]) == ("id", "t")
    assert _n(d) == 30 and d.input_size == 12 and d.meta["max_len"] == 12
    assert d.meta["features"] == [f"ch{j}" for j in range(12)]
    _check_sequences(d, 30, lambda i: 12)
    json.dumps(d.meta)


@pytest.mark.parametrize("id_name, time_name, time_of, reason", [
    ("id", "step", lambda k: k, "column 'id' repeats in runs of 10-12 rows; 'step' is time-like"),
    ("sample_id", "timestamp", lambda k: f"2024-03-{1 + k:02d} 08:00:00",
     "column 'sample_id' repeats in runs of 10-12 rows; 'timestamp' is time-like"),
    ("SampleID", "date", lambda k: f"2024-03-{1 + k:02d}",
     "column 'SampleID' repeats in runs of 10-12 rows; 'date' is time-like"),
    ("series", "time_s", lambda k: 0.5 * k, "column 'series' repeats in runs of 10-12 rows; 'time_s' is time-like"),
    # no column named like an id: one whose values come in runs is the id
    ("name", "t", lambda k: k, "column 'name' repeats in runs of 10-12 rows; 't' is time-like"),
])
def test_long_files_with_other_column_names(tmp_path, id_name, time_name, time_of, reason):
    steps = lambda i: 10 + i % 3  # noqa: E731
    frame = _long_rows(steps=steps, id_name=id_name, time_name=time_name, time_of=time_of)
    frame = frame.iloc[::-1].reset_index(drop=True)  # time runs backwards: the reader sorts it
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    d = _load(path, scale=False)
    assert (d.meta["format"], d.meta["format_reason"]) == ("long", reason)
    _check_sequences(d, 30, steps)


def test_shuffled_long_file_and_a_row_id_column(tmp_path):
    frame = _long_rows(n=30, n_ch=12).sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(len(frame)))  # a row number: unique, not the sequence id
    frame = frame.rename(columns={"id": "recording"})
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    d = _load(path, scale=False)
    assert d.meta["format_reason"] == "column 'recording' repeats (30 values on 360 rows); 't' is time-like"
    assert d.meta["features"] == [f"ch{j}" for j in range(12)]  # row_id is not a feature
    _check_sequences(d, 30, lambda i: 12)


def _wide_rows(n=40, t=8, sort_by_label=True):
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "label": [f"c{i % 2}" for i in range(n)]})
    for j in range(t):
        frame[f"v{j}"] = 1000.0 * np.arange(n) + j
    return frame.sort_values("label", kind="stable").reset_index(drop=True) if sort_by_label else frame


def test_wide_files_stay_wide(tmp_path):
    # an id column with one value per row, and labels in runs (the file sorted by label): not an id
    path = tmp_path / "w.csv"
    frame = _wide_rows()
    frame.to_csv(path, index=False)
    d = _load(path, scale=False)
    assert d.meta["format"] == "wide" and d.input_size == 1 and d.meta["max_len"] == 8  # id is not a step
    assert d.meta["format_reason"] == "column 'id' has a different value on (almost) every row: one sequence per row"
    assert _n(d) == 40
    # numeric row ids, and a text copy of the label (in runs as well): still wide
    frame["id"] = np.arange(40)
    frame.insert(1, "class_name", frame["label"].map({"c0": "cat", "c1": "dog"}))
    frame.to_csv(path, index=False)
    d = _load(path, scale=False)
    assert d.meta["format"] == "wide" and d.meta["max_len"] == 8 and _n(d) == 40
    frame.drop(columns=["id", "class_name"]).to_csv(path, index=False)
    d = _load(path, scale=False)
    assert d.meta["format_reason"] == "no column repeats like a sequence id: one sequence per row"


def test_the_index_pandas_writes_is_not_a_step(tmp_path):
    path = tmp_path / "w.csv"
    _wide_rows().to_csv(path)  # index=True: a first column 'Unnamed: 0' holding 0..39
    d = _load(path, scale=False)
    assert d.meta["format"] == "wide" and d.meta["max_len"] == 8
    assert d.meta["format_reason"].endswith("; 'Unnamed: 0' numbers the rows (skipped)")
    _long_rows(n_ch=2).to_csv(path)
    d = _load(path, scale=False)
    assert d.meta["format"] == "long" and d.meta["features"] == ["ch0", "ch1"] and _n(d) == 30


def test_explicit_columns_and_formats_are_respected(tmp_path):
    frame = _long_rows(id_name="rec", time_name="k", steps=lambda i: 4)
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    d = _load(path, scale=False, id_column="rec", time_column="k")
    assert d.meta["format"] == "long" and _n(d) == 30
    assert d.meta["format_reason"] == "data.id_column=rec and data.time_column=k are set"
    d = _load(path, scale=False, time_column="k")  # the id found by its runs
    assert d.meta["format"] == "long" and d.meta["id_column"] == "rec" and _n(d) == 30
    w = _load(path, format="wide", scale=False, val_frac=0.2, test_frac=0.2)  # the user said wide: wide
    assert w.meta["format"] == "wide" and _n(w) == 120 and w.meta["format_reason"] == "data.format=wide"


@pytest.mark.parametrize("frame, kw, message", [
    (_long_rows().drop(columns=["t"]), {},
     "f.csv looks long (column 'id' repeats in runs of 12 rows) but has no column named like a time (t, time, step, "
     "timestamp, date, ...); set data.time_column, or data.format=wide if each row is one sequence (columns: id, "
     + ", ".join(f"ch{j}" for j in range(12)) + ", label)"),
    (_long_rows(n_ch=1).assign(subject=lambda f: f["id"].str[:2]), {},
     "f.csv: columns 'id', 'subject' all repeat like a sequence id; set data.id_column (and data.time_column) to "
     "read it as long, or data.format=wide if each row is one sequence"),
    (_long_rows(n_ch=1).assign(step=lambda f: -f["t"]), {},
     "f.csv looks long (column 'id' repeats in runs of 12 rows) but its time column is ambiguous: 't', 'step'; "
     "set data.time_column"),
    (_long_rows(n_ch=1).assign(grp=lambda f: f["id"]).drop(columns=["id", "t"]), {},
     "f.csv looks long (column 'grp' repeats in runs of 12 rows) but has no column named like a time (t, time, "
     "step, timestamp, date, ...); set data.time_column, or data.format=wide if each row is one sequence "
     "(columns: ch0, label, grp)"),
    (_long_rows(n_ch=1), {"id_column": "nope"}, "f.csv has no id column 'nope' (set data.id_column; columns: id, "
     "t, ch0, label)"),
    (_wide_rows(), {"time_column": "v0"},
     "f.csv: data.time_column=v0 is set but no column repeats like a sequence id; set data.id_column (columns: id, "
     "label, " + ", ".join(f"v{j}" for j in range(8)) + ")"),
])
def test_a_file_that_looks_long_is_read_as_long_or_refused(tmp_path, frame, kw, message):
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    _refused(path, message, **kw)


def test_time_columns_that_agree_are_not_ambiguous(tmp_path):
    frame = _long_rows(n_ch=1, steps=lambda i: 5)
    frame["date"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["t"], unit="D")
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    d = _load(path)
    reason = "column 'id' repeats in runs of 5 rows; 't' is time-like ('date' gives the same order)"
    assert d.meta["format_reason"] == reason


@pytest.mark.parametrize("name, is_id, is_time", [
    ("id", True, False), ("ID", True, False), ("sample_id", True, False), ("SampleID", True, False),
    ("sampleid", True, False), ("series", True, False), ("subject", True, False), ("width", False, False),
    ("sample_rate", False, False), ("t", False, True), ("time", False, True), ("Timestamp", False, True),
    ("time_ms", False, True), ("step", False, True), ("t0", False, False), ("step_3", False, False),
    ("index", False, True), ("label", False, False),
])
def test_column_names(name, is_id, is_time):
    assert (layout.id_named(name), layout.time_named(name)) == (is_id, is_time)


# ---------------------------------------------------------------- NPZ keys and layout


def _npz(tmp_path, name="a.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _ntd(n=30, t=7, d=2):
    x = np.random.default_rng(0).standard_normal((n, t, d))
    x[:, :, 0] = np.arange(n)[:, None]  # the sequence's number
    return x, np.arange(n) % 3


def test_npz_accepts_scikit_learn_names_and_configured_keys(tmp_path):
    x, y = _ntd()
    ref = _load(_npz(tmp_path, "ref.npz", x=x, y=y), scale=False)
    keys = {"x_key": "feats", "y_key": "target"}
    for name, arrays, kw in [("upper.npz", {"X": x, "y": y}, {}), ("both.npz", {"X": x, "Y": y}, {}),
                             ("keys.npz", {"feats": x, "target": y, "x": x[:, :2]}, keys)]:
        d = _load(_npz(tmp_path, name, **arrays), scale=False, **kw)
        np.testing.assert_array_equal(d.train.x, ref.train.x)
        np.testing.assert_array_equal(d.test.y, ref.test.y)
    assert (d.meta["x_key"], d.meta["y_key"], d.meta["layout"]) == ("feats", "target", "NTD")


def test_npz_channel_first_layout(tmp_path):
    x, y = _ntd(t=7, d=3)
    lengths = 2 + np.arange(30) % 6
    ref = _load(_npz(tmp_path, "ref.npz", x=x, y=y, lengths=lengths), scale=False)
    d = _load(_npz(tmp_path, "ndt.npz", X=x.transpose(0, 2, 1), y=y, lengths=lengths), scale=False, layout="NDT")
    assert d.input_size == 3 and d.meta["max_len"] == 7 and d.meta["layout"] == "NDT"
    for a, b in zip(_all(ref), _all(d), strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.mask, b.mask)
    # fewer steps than features: refused without data.layout (test below), read as said with NTD
    wide = _load(_npz(tmp_path, "ntd.npz", x=np.ones((30, 4, 9)), y=y), layout="NTD")
    assert (wide.input_size, wide.meta["max_len"]) == (9, 4)


@pytest.mark.parametrize("arrays, kw, message", [
    ({"x": np.ones((6, 4)), "X": np.ones((6, 4)), "y": np.arange(6) % 2}, {},
     "a.npz has both 'x' and 'X'; set data.x_key to the one to use"),
    ({"x": np.ones((6, 4)), "y": np.arange(6) % 2}, {"x_key": "feats"},
     "a.npz has no array 'feats' (set by data.x_key; arrays: x, y)"),
    ({"x": np.ones((6, 4)), "y": np.arange(6) % 2}, {"y_key": "z"}, "a.npz has no array 'z' (set by data.y_key; "
     "arrays: x, y)"),
    ({"data": np.ones((6, 4)), "y": np.arange(6) % 2}, {},
     "a.npz has no array 'x' or 'X' (arrays: data, y); it needs x (N, T, D) or (N, T) and y (N,), or set data.x_key"),
    ({"X": np.ones((6, 4)), "y": np.arange(6) % 2}, {"layout": "NDT"},
     "a.npz: data.layout=NDT needs X with 3 axes (N, D, T) (got shape (6, 4)); a 2-axis array is (N, T): use "
     "data.layout=NTD"),
    # sktime's numpy3D is (N, D, T): read as (N, T, D) it would be 6 steps of 100 features, silently
    ({"X": np.ones((6, 6, 100)), "y": np.arange(6) % 2}, {},
     "a.npz: X of shape (6, 6, 100) read as (N, T, D) has fewer steps (6) than features (100), as a "
     "channel-first array would; set data.layout=NDT if it is (N, D, T) (sktime's numpy3D), or data.layout=NTD "
     "if it is (N, T, D)"),
    ({"X": np.ones((6, 3, 5)), "y": np.arange(5)}, {"layout": "NDT"},
     "a.npz: y must have shape (N,) = (6,) to match X (got (5,))"),
])
def test_bad_npz_keys_and_layouts_are_one_line(tmp_path, arrays, kw, message):
    _refused(_npz(tmp_path, **arrays), message, **kw)


def test_npz_options_on_other_formats_are_refused(tmp_path):
    path = tmp_path / "w.csv"
    _wide_rows().to_csv(path, index=False)
    _refused(path, "data.layout=NDT applies to NPZ files, but w.csv is read as CSV", layout="NDT")
    _refused(path, "data.x_key=X applies to NPZ files, but w.csv is read as wide", x_key="X", format="wide")


# ---------------------------------------------------------------- UCR/UEA .ts files

TS_UNIVARIATE = """# GunPoint-like, equal length
@problemName Tiny
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true 1 2
@data
0.5,1.0,-1.5,2.0:1
1e-1,0,3,4:2

7,8,9,10.25:1
"""
TS_MULTI = """% the archive's comments start with % as well
@problemname Multi
@TIMESTAMPS false
@missing true
@univariate false
@dimensions 2
@equallength false
@classlabel true walk run
@data
1,2,3:10,20,30:walk
4,?,6,7:40,50,60,70:run
8,9:80,?:walk
"""


def _ts(tmp_path, text, name="a.ts"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ts_parser_matches_the_format_by_hand(tmp_path):
    got = tsfile.read(_ts(tmp_path, TS_UNIVARIATE), SeqfileConf(), "r")
    np.testing.assert_array_equal(got.seqs.x[:, :, 0], [[0.5, 1.0, -1.5, 2.0], [0.1, 0, 3, 4], [7, 8, 9, 10.25]])
    assert got.seqs.lengths.tolist() == [4, 4, 4] and got.seqs.labels.tolist() == ["1", "2", "1"]
    assert got.format == "ts" and not got.incomplete.any()
    got = tsfile.read(_ts(tmp_path, TS_MULTI), SeqfileConf(), "r")
    nan = np.nan
    expected = np.array([[[1, 10], [2, 20], [3, 30], [nan, nan]],
                         [[4, 40], [nan, 50], [6, 60], [7, 70]],
                         [[8, 80], [9, nan], [nan, nan], [nan, nan]]])
    np.testing.assert_array_equal(got.seqs.x, expected)  # NaN where '?' or past the length
    assert got.seqs.lengths.tolist() == [3, 4, 2] and got.seqs.labels.tolist() == ["walk", "run", "walk"]
    assert got.incomplete.tolist() == [False, True, True] and got.seqs.features == ["dim_0", "dim_1"]
    assert got.seqs.describe(np.array([1, 2])) == "cases on lines 11, 12"


def _ucr_pair(tmp_path, n_train=24, n_test=9):
    rng = np.random.default_rng(0)

    def write(name, n):
        lines = ["@problemName Toy", "@timeStamps false", "@univariate false", "@dimensions 2",
                 "@equalLength false", "@classLabel true up down flat", "@data"]
        for i in range(n):
            k = 5 + i % 4
            cls = ("up", "down", "flat")[i % 3]
            dims = [",".join(f"{v:.3f}" for v in rng.standard_normal(k)) for _ in range(2)]
            lines.append(":".join([*dims, cls]))
        return _ts(tmp_path, "\n".join(lines) + "\n", name)
    return write("Toy_TRAIN.ts", n_train), write("Toy_TEST.ts", n_test)


def test_ucr_train_and_test_files(tmp_path):
    train, test = _ucr_pair(tmp_path)
    rc = compose_and_validate(["data=seqfile", f"data.path={train}", f"data.test_path={test}", "data.val_frac=0.25"])
    d = registry.load(rc.data, np.random.default_rng(0), np.float32)
    assert (d.meta["format"], d.meta["format_reason"]) == ("ts", "the .ts extension")
    assert (d.meta["test_format"], d.meta["test_path"]) == ("ts", str(test))
    assert len(d.train) + len(d.val) == 24 and len(d.val) == 6 and len(d.test) == 9
    assert d.classes == ["down", "flat", "up"] and d.input_size == 2 and d.meta["max_len"] == 8
    # the test file's cases, in its order: labels up, down, flat, ... and lengths 5, 6, 7, 8, 5, ...
    assert d.test.y.tolist() == [2, 0, 1] * 3 and d.test.mask.sum(axis=1).tolist() == [5 + i % 4 for i in range(9)]


HEAD = "@problemName P\n@timeStamps false\n@univariate true\n@classLabel true a b\n"


@pytest.mark.parametrize("text, message", [
    (HEAD + "@data\n1,2,x:a\n", "a.ts line 6: 'x' in dimension 1 is not a number (values are separated by ',', "
     "dimensions by ':', '?' is a missing value)"),
    (HEAD + "@data\n1,2:c\n", "a.ts line 6: class label 'c' is not among those @classLabel lists (a, b)"),
    (HEAD + "@data\n1,2\n", "a.ts line 6: no ':' before the class label (dimensions are separated by ':', the label "
     "comes last)"),
    (HEAD + "@data\n1,2:\n", "a.ts line 6: no class label after the last ':'"),
    (HEAD + "@data\n1,2:3,4:a\n", "a.ts line 6: 2 dimensions in a file marked @univariate true"),
    (HEAD.replace("true\n@class", "false\n@dimensions 2\n@class") + "@data\n1,2:3:a\n",
     "a.ts line 7: its dimensions have different lengths (1, 2); seqfile needs one length per sequence"),
    (HEAD.replace("true\n@class", "false\n@class") + "@data\n1,2:3,4:a\n1:b\n",
     "a.ts line 7: 1 dimensions, but the first case has 2"),
    (HEAD + "@equalLength true\n@seriesLength 3\n@data\n1,2,3:a\n1,2:b\n",
     "a.ts line 9: 2 values, but @seriesLength says 3"),
    (HEAD + "@data\n1,inf:a\n", "a.ts line 6: dimension 1 holds an infinite value"),
    (HEAD, "a.ts: no @data line (a .ts file lists its @tags, then @data and one case per line)"),
    (HEAD + "@data\n", "a.ts: no cases after @data"),
    (HEAD + "@data now\n", "a.ts line 5: @data takes no value"),
    ("1,2:a\n" + HEAD, "a.ts line 1: data before the @data line (a .ts file starts with @tags)"),
    (HEAD.replace("@timeStamps false", "@timeStamps true") + "@data\n(0,1),(1,2):a\n",
     "a.ts: @timeStamps true ((time, value) tuples) is not supported; save the values without time stamps"),
    (HEAD.replace("@timeStamps false", "@timeStamps maybe"), "a.ts line 2: @timeStamps must be followed by true or "
     "false"),
    (HEAD.replace("@classLabel true a b", "@classLabel false") + "@data\n1,2\n",
     "a.ts: @classLabel false: the file has no class labels, which seqfile needs"),
    (HEAD.replace("@classLabel true a b", "@classLabel true"), "a.ts line 4: @classLabel true must list the class "
     "names"),
    (HEAD.replace("@classLabel true a b", "@targetLabel true") + "@data\n1,2:0.5\n",
     "a.ts: @targetLabel true is a regression target; seqfile is classification (@classLabel true with class names)"),
    (HEAD.replace("@classLabel true a b\n", "") + "@data\n1,2:a\n",
     "a.ts: no @classLabel line before @data; seqfile needs class labels (@classLabel true followed by the class "
     "names)"),
    (HEAD + "@dimensions two\n@data\n", "a.ts line 5: @dimensions must be followed by a whole number >= 1"),
])
def test_malformed_ts_files_are_one_line(tmp_path, text, message):
    _refused(_ts(tmp_path, text), message)


def test_ts_that_is_not_text_and_ts_missing_values(tmp_path):
    path = tmp_path / "b.ts"
    path.write_bytes(b"@problemName \xff\n")
    _refused(path, f"cannot read {path} as a .ts file: not UTF-8 text (byte 0xff at offset 13)")
    lines = [f"{i},{i + 1},{'?' if i == 4 else i}:{'ab'[i % 2]}" for i in range(12)]
    path = _ts(tmp_path, HEAD + "@data\n" + "\n".join(lines) + "\n")
    _refused(path, "a.ts: missing values in cases on lines 10; set data.nan_policy to drop or fill",
             val_frac=0.2, test_frac=0.2)
    assert _n(_load(path, nan_policy="drop", val_frac=0.2, test_frac=0.2)) == 11


# ---------------------------------------------------------------- continuous labels


def test_continuous_labels_are_refused(tmp_path):
    path = tmp_path / "w.csv"
    frame = _wide_rows(n=40)
    frame["label"] = np.round(np.linspace(0.1, 3.7, 40), 2)
    frame.to_csv(path, index=False)
    _refused(path, "w.csv: the labels in label column 'label' look continuous (40 of 40 values are not whole numbers, "
             "e.g. 0.1); seqfile is classification (one class per sequence): give class labels, whole numbers or text")
    _refused(_npz(tmp_path, x=np.ones((40, 5)), y=np.arange(40) * 3),
             "a.npz: the labels in array 'y' look continuous (40 distinct values for 40 sequences); seqfile is "
             "classification (one class per sequence): give class labels, whole numbers or text")
    # whole numbers as floats, and many classes with several sequences each, are classes
    assert _load(_npz(tmp_path, "ok.npz", x=np.ones((60, 5)), y=(np.arange(60) % 12).astype(float))).output_size == 12


# ---------------------------------------------------------------- config and the command line


def test_keys_that_name_the_same_thing_are_refused():
    # the bad single values (layout, format, x_key) are in test_seqfile.py's test_bad_config_values_give_one_line
    with pytest.raises(ValueError, match=r"data.x_key and data.y_key name the same array \('a'\)"):
        SeqfileConf(x_key="a", y_key="a")
    with pytest.raises(ValueError, match=r"data.id_column and data.time_column name the same column \('t'\)"):
        SeqfileConf(id_column="t", time_column="t")


def test_a_refused_file_exits_2_with_one_line_and_no_run_folder(tmp_path, monkeypatch, capsys):
    # one run through `rnnlab train`'s `run` (each costs a second or two): every refusal above is the same
    # DataError, which the command turns into exit 2 (tests/test_bad_input.py)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "f.csv"
    _long_rows(n_ch=2).drop(columns=["t"]).to_csv(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = run(["data=seqfile", f"data.path={path}", "arch.hidden_size=4", "train.epochs=1", "train.progress=false",
                    "train.plots=false", "monitor=none"])
    assert code == 2 and not caught
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert err.strip().splitlines() == [
        "Error: f.csv looks long (column 'id' repeats in runs of 12 rows) but has no column named like a time (t, "
        "time, step, timestamp, date, ...); set data.time_column, or data.format=wide if each row is one sequence "
        "(columns: id, ch0, ch1, label)"]
    assert list((tmp_path / "outputs" / "train").iterdir()) == []  # no run folder (as in test_bad_input)
