"""`rnnlab predict` / `run.predict(...)` on new inputs, read with the run's own preprocessing: a forecast from
a CSV series equals the run's forecast.csv when given the training file, IMDB texts and sequence files give
the probabilities predictions.csv has for the same inputs, and bad input is one line with exit code 2
and no file written."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.predict import run as predict_cmd
from rnnlab.data.base import DataError
from tests.data import imdb_tree as tree

QUIET = ["train.epochs=1", "train.batch_size=16", "train.progress=false", "train.plots=false", "monitor=none",
         "arch.hidden_size=8"]


def _cmd(*args, **kw):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = predict_cmd(*args, **kw)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    """A monthly series with a log transform and a covariate, and a run forecasting 4 months from 12."""
    d = tmp_path_factory.mktemp("series")
    dates = pd.date_range("2001-01-01", periods=120, freq="MS")
    t = np.arange(120)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"month": dates.strftime("%Y-%m-%d"), "sales": 50 + 10 * np.sin(t / 2) + t + rng.random(120),
                          "price": 3 + np.cos(t / 3), "ignored": "x"})
    frame.to_csv(d / "sales.csv", index=False)
    args = ["data=csv", f"data.path={d / 'sales.csv'}", "data.date_column=month", "data.target=sales",
            "data.covariates=[price]", "data.transform=log_returns", "data.n_in=12", "data.n_out=4",
            "data.baselines=[naive]", *QUIET]
    api.train(args, d / "run")
    return d, frame


def test_a_forecast_of_the_training_file_is_the_runs_forecast_csv(series_run):
    d, _ = series_run
    got = api.load_run(d / "run").predict(d / "sales.csv")
    saved = pd.read_csv(d / "run" / "forecast.csv")
    assert list(got.columns) == ["sample", "horizon", "date", "prediction"]
    assert got["date"].tolist() == saved["date"].tolist() == ["2011-01-01", "2011-02-01", "2011-03-01", "2011-04-01"]
    np.testing.assert_allclose(got["prediction"], saved["forecast"], rtol=1e-6)


def test_a_shorter_series_forecasts_after_its_own_last_row_through_the_command(series_run, tmp_path):
    d, frame = series_run
    frame.iloc[:60].to_csv(tmp_path / "first5y.csv", index=False)
    out = tmp_path / "out.csv"
    code, err = _cmd(str(d / "run"), str(tmp_path / "first5y.csv"), None, str(out))
    assert code == 0, err
    got = pd.read_csv(out)
    assert got["date"].tolist() == ["2006-01-01", "2006-02-01", "2006-03-01", "2006-04-01"]
    # the same numbers from a DataFrame in Python
    again = api.load_run(d / "run").predict(frame.iloc[:60])
    np.testing.assert_allclose(again["prediction"], got["prediction"], rtol=1e-9)


@pytest.mark.parametrize("case, words", [
    ("short", "has 12 rows, but the model reads the last 12 (one more for transform log_returns): give at least 13"),
    ("no_covariate", "has no column 'price'"),
    ("text", "non-numeric values in rows 3"),
    ("not_csv", "has no column 'month', 'sales', 'price' (columns: a,b 1,2)"),
])
def test_bad_series_inputs_are_one_line_and_write_nothing(series_run, tmp_path, case, words):
    d, frame = series_run
    path = tmp_path / "in.csv"
    if case == "short":
        frame.iloc[:12].to_csv(path, index=False)
    elif case == "no_covariate":
        frame.drop(columns="price").to_csv(path, index=False)
    elif case == "text":
        bad = frame.astype({"sales": object})
        bad.loc[1, "sales"] = "twelve"
        bad.to_csv(path, index=False)
    else:
        path.write_bytes(b'"a,b\n1,"2\n\x00\x00')
    out = tmp_path / "out.csv"
    code, err = _cmd(str(d / "run"), str(path), None, str(out))
    assert code == 2 and err.startswith("Error: ") and words in err and err.count("\n") == 1, err
    assert not out.exists()


def test_the_command_needs_exactly_one_of_input_and_split(series_run, tmp_path):
    d, _ = series_run
    for args in ((str(d / "run"), None, None, None), (str(d / "run"), str(d / "sales.csv"), "test", None)):
        code, err = _cmd(*args)
        assert code == 2 and "give one of --input FILE" in err


# ---------------------------------------------------------------- texts (IMDB)


@pytest.fixture(scope="module")
def imdb_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("imdb")
    acl = tree.write_folder(d, 10)
    args = ["data=imdb", f"data.path={acl}", "data.vocab_size=40", "data.maxlen=12", "data.embed_dim=6",
            "data.padding=pre", "arch=bigru", "arch.pooling=mean", *QUIET]
    api.train(args, d / "run")
    return d, acl


def test_texts_get_the_probabilities_of_the_runs_predictions_csv(imdb_run, tmp_path):
    d, acl = imdb_run
    saved = pd.read_csv(d / "run" / "predictions.csv")
    texts = [(acl / "test" / ("pos" if row.target else "neg") / f"{row.review}.txt").read_text()
             for row in saved.itertuples()]
    (tmp_path / "reviews.txt").write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n\n")
    run = api.load_run(d / "run")
    got = run.predict(tmp_path / "reviews.txt")
    assert list(got.columns) == ["sample", "input", "tokens", "text", "prediction", "label", "prob"]
    assert got["input"].iloc[1] == "line 2" and len(got) == len(saved)  # the blank line at the end is no text
    np.testing.assert_allclose(got["prob"], saved["prob"], rtol=1e-6)
    np.testing.assert_array_equal(got["prediction"], saved["prediction"])
    assert set(got["label"]) <= {"neg", "pos"}
    assert "not in the vocabulary" in got.attrs["notes"][0]
    # a folder of .txt files, and a list of strings
    folder = run.predict(acl / "test" / "pos")
    assert folder["input"].iloc[0].endswith(".txt") and len(folder) == 10
    listed = run.predict(["loved it, superb and brilliant", "qwertyuiop zxcvbnm"])
    assert listed["tokens"].tolist() == [5, 2] and len(listed) == 2  # unknown words are <oov>, not an error


def test_a_text_without_words_is_one_line(imdb_run, tmp_path):
    d, _ = imdb_run
    (tmp_path / "r.txt").write_text("a fine film\n<br /> !!\n")
    code, err = _cmd(str(d / "run"), str(tmp_path / "r.txt"), None, str(tmp_path / "o.csv"))
    assert code == 2 and "no words in line 2" in err and not (tmp_path / "o.csv").exists()


# ---------------------------------------------------------------- sequence files


@pytest.fixture(scope="module")
def seq_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("seq")
    rng = np.random.default_rng(0)
    rows = [{"id": f"s{i}", "time": t, "label": ["ant", "bee", "cat"][i % 3], "f1": i % 3 + rng.normal(0, 0.3),
             "f2": t / 4.0} for i in range(45) for t in range(3 + i % 4)]
    pd.DataFrame(rows).to_csv(d / "train.csv", index=False)
    test = [{**r, "id": "n" + r["id"]} for r in rows if r["id"] in {"s1", "s2", "s3", "s4"}]
    pd.DataFrame(test).to_csv(d / "test.csv", index=False)
    args = ["data=seqfile", f"data.path={d / 'train.csv'}", f"data.test_path={d / 'test.csv'}", *QUIET]
    api.train(args, d / "run")
    return d, pd.DataFrame(test)


def test_a_sequence_file_without_labels_gets_the_runs_test_probabilities(seq_run, tmp_path):
    d, test = seq_run
    test.drop(columns="label").to_csv(tmp_path / "new.csv", index=False)
    got = api.load_run(d / "run").predict(tmp_path / "new.csv")
    saved = pd.read_csv(d / "run" / "predictions.csv")
    probs = [f"prob_{c}" for c in ("ant", "bee", "cat")]
    assert list(got.columns) == ["sample", "input", "length", "prediction", "label", *probs]
    assert got["length"].tolist() == [4, 5, 6, 3]
    np.testing.assert_allclose(got[probs].to_numpy(), saved[probs].to_numpy(), rtol=1e-6)


def test_a_sequence_file_with_another_feature_count_is_one_line(seq_run, tmp_path):
    d, test = seq_run
    test.assign(f3=1.0).drop(columns="label").to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DataError, match="has 3 features per step .* trained on 2 \\(f1, f2\\)"):
        api.load_run(d / "run").predict(tmp_path / "new.csv")


# ---------------------------------------------------------------- arrays


def test_arrays_for_a_synthetic_task_and_their_checks(tmp_path):
    args = ["data=adding", "data.length=8", "data.n_train=64", "data.n_val=16", "data.n_test=16", *QUIET]
    api.train(args, tmp_path / "run")
    run = api.load_run(tmp_path / "run")
    x = np.random.default_rng(0).random((5, 8, 2)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    got = run.predict(tmp_path / "x.npz")
    np.testing.assert_allclose(got["prediction"], run.forward(x)[:, 0], rtol=1e-6)
    np.savez(tmp_path / "bad.npz", x=x[:, :, :1])
    with pytest.raises(DataError, match="input_size|features|\\(N, T, D\\)|2"):
        run.predict(tmp_path / "bad.npz")


def test_split_test_through_the_command_writes_the_runs_predictions_csv_again(series_run, tmp_path):
    import rnnlab

    d, _ = series_run
    out = tmp_path / "again.csv"
    code, err = _cmd(str(d / "run"), None, "test", str(out))
    assert code == 0, err
    again, saved = pd.read_csv(out), pd.read_csv(d / "run" / "predictions.csv")
    assert list(again.columns) == list(saved.columns) == ["sample", "horizon", "date", "target", "prediction", "naive"]
    assert (again["date"] == saved["date"]).all()
    num = ["sample", "horizon", "target", "prediction", "naive"]
    np.testing.assert_allclose(again[num].to_numpy(float), saved[num].to_numpy(float), rtol=1e-6, atol=1e-9)
    assert rnnlab.load_run(d / "run").summary.status == "completed"  # the top-level entry point
