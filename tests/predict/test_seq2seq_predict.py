"""`rnnlab predict` / `run.predict(...)` of seq2seq runs: digit sequences from a text file are encoded as the
data set encodes its test sources and decode to the run's predictions.csv (beam search with the run's
beam_size, greedy without), the engine and the ONNX graphs (built now, or an export's encoder.onnx and
decoder.onnx) agree on every token, source series from arrays, CSV and NPZ generate the engine's outputs,
and bad input is one line with exit code 2 and no file written."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.predict import run as predict_cmd
from rnnlab.data import inputs
from rnnlab.data.base import DataError
from rnnlab.engine import seq2seq as Q
from rnnlab.export import bundle

QUIET = ["train.epochs=1", "train.batch_size=8", "train.progress=false", "train.plots=false", "monitor=none",
         "arch=gru", "arch.hidden_size=6", "optim.lr=0.05"]
DIGITS = ["data=reverse_digits", "data.n_train=48", "data.n_val=8", "data.n_test=12", "data.max_len=5",
          "data.embed_dim=4", "train.beam_size=2", *QUIET]
SINES = ["data=sine2cosine", "data.n_train=32", "data.n_val=8", "data.n_test=6", "data.t_in=6", "data.t_out=4",
         "data.start_value=0.3", "arch.attention=bahdanau", *QUIET]


def _cmd(*args, **kw):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = predict_cmd(*args, **kw)
    return code, err.getvalue()


# ---------------------------------------------------------------- reverse_digits


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A tiny reverse_digits run decoding with beam search (beam_size 2), its ONNX export (graphs, no
    weights), and its test sources as a text file in both notations ("6 6 0" and "660") with a blank line."""
    d = tmp_path_factory.mktemp("digits")
    assert api.train(DIGITS, d / "run").status == "completed"
    run = api.load_run(d / "run")
    bundle.export(run, ["onnx", "json"], d / "export")
    saved = pd.read_csv(d / "run" / "predictions.csv", dtype=str, keep_default_na=False)
    lines = [s if i % 2 else s.replace(" ", "") for i, s in enumerate(saved["source"])]
    (d / "sources.txt").write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    return d, run, saved


def test_digits_from_a_text_file_decode_to_the_runs_predictions(digits):
    d, run, saved = digits
    got = run.predict(d / "sources.txt")
    assert list(got.columns) == ["sample", "input", "prediction", "log_prob"] and len(got) == len(saved) == 12
    assert got["input"].tolist() == saved["source"].tolist()
    assert got["prediction"].tolist() == saved["prediction"].tolist()
    assert got["prediction"].nunique() > 1  # the model decodes different sources differently
    assert got.attrs["notes"] == ["12 sources decoded on the engine backend: beam search (beam_size 2)"]
    # encoded exactly as the data set encodes its test sources; log_prob is the beam's
    test = run.task().data.test
    read = inputs.read(d / "sources.txt", run.config.data, run.info["data"])
    np.testing.assert_array_equal(read.x, test.src)
    np.testing.assert_array_equal(read.mask, test.src_mask)
    meta = run.info["data"]
    beam = Q.beam_search(run.spec, run.params, test.src, test.src_mask, 2, meta["max_out_len"], 1, 2)
    np.testing.assert_allclose(got["log_prob"], beam.log_prob, rtol=1e-12)


def test_without_beam_size_the_run_decodes_greedily(digits):
    d, _, _ = digits
    run = api.load_run(d / "run")
    run.config.train.beam_size = 1
    got = run.predict(["31415", "2 7 1", "0"])
    assert got["input"].tolist() == ["3 1 4 1 5", "2 7 1", "0"]
    assert got.attrs["notes"] == ["1 of 3 sequences are shorter than the 3 digits the run was trained on "
                                  "(data.min_len)", "3 sources decoded on the engine backend: greedy"]
    src = np.array([[6, 4, 7, 4, 8], [5, 10, 4, 0, 0], [3, 0, 0, 0, 0]])
    ref = Q.greedy_decode(run.spec, run.params, src, (src > 0).astype(np.float32), 6, 1, 2)
    assert got["prediction"].tolist() == [" ".join("<eos>" if t == 2 else str(t - 3) for t in row[:n])
                                          for row, n in zip(ref.tokens, ref.lengths, strict=True)]
    np.testing.assert_allclose(got["log_prob"], ref.log_prob, rtol=1e-12)


def test_onnx_and_an_export_decode_the_engines_tokens(digits):
    d, run, _ = digits
    engine = run.predict(d / "sources.txt")
    onnx = run.predict(d / "sources.txt", backend="onnx")
    exported = api.load_run(d / "export")
    assert exported.kind == "seq2seq_tokens" and sorted(exported.graphs) == ["decoder.onnx", "encoder.onnx"]
    from_export = exported.predict(d / "sources.txt")  # an export with graphs runs them by default
    assert from_export.attrs["notes"][0].endswith("on the onnx backend: beam search (beam_size 2)")
    for got in (onnx, from_export):
        assert got["prediction"].tolist() == engine["prediction"].tolist()
        np.testing.assert_allclose(got["log_prob"], engine["log_prob"], atol=1e-5)
    code, err = _cmd(str(d / "export"), str(d / "sources.txt"), None, str(d / "o.csv"), backend="engine")
    assert code == 2 and "holds no weights for the engine" in err and not (d / "o.csv").exists()


@pytest.mark.parametrize("text, words", [
    ("3 1 4\n\n2 a 7\n", "Error: line 3: 'a' is not a digit (e.g. '3 1 4' or '314')\n"),
    ("", "Error: in.txt has no digit sequences (one per line, e.g. '3 1 4' or '314')\n"),
    ("123456789\n", "Error: line 1 has 9 digits, but the model reads at most 5 (data.max_len)\n"),
], ids=["letter", "empty_file", "too_long"])
def test_bad_digit_inputs_are_one_line_and_write_nothing(digits, tmp_path, text, words):
    d, _, _ = digits
    (tmp_path / "in.txt").write_text(text)
    out = tmp_path / "out.csv"
    code, err = _cmd(str(d / "run"), str(tmp_path / "in.txt"), None, str(out))
    assert code == 2 and err == words and not out.exists()


# ---------------------------------------------------------------- sine2cosine


@pytest.fixture(scope="module")
def sines(tmp_path_factory):
    d = tmp_path_factory.mktemp("sines")
    assert api.train(SINES, d / "run").status == "completed"
    run = api.load_run(d / "run")
    return d, run, run.task().data.test


def test_source_series_generate_the_engines_outputs(sines):
    d, run, test = sines
    x = test.src[:, :, 0]
    ref = Q.generate(run.spec, run.params, test.src, 4, 0.3).outputs[:, :, 0]
    got = run.predict(x)
    assert list(got.columns) == ["sample", "input", "step", "prediction"] and len(got) == 6 * 4
    assert got["step"].tolist()[:5] == [0, 1, 2, 3, 0] and got["input"].iloc[4] == "x[1]"
    np.testing.assert_allclose(got["prediction"].to_numpy().reshape(6, 4), ref, rtol=1e-6, atol=1e-7)
    # the run's predictions.csv (its first 5 test sequences)
    saved = pd.read_csv(d / "run" / "predictions.csv")
    np.testing.assert_allclose(got["prediction"][: len(saved)], saved["prediction"], rtol=1e-6, atol=1e-7)
    # a CSV with a header and one series per row, and an .npz of (N, t_in, 1)
    header = ",".join(f"t{k}" for k in range(6))
    np.savetxt(d / "src.csv", x, fmt="%.9g", delimiter=",", header=header, comments="")
    np.savez(d / "src.npz", x=test.src)
    for source in (d / "src.csv", d / "src.npz"):
        again = run.predict(source)
        np.testing.assert_allclose(again["prediction"], got["prediction"], rtol=1e-6, atol=1e-7)
    assert again["input"].iloc[0] == "x[0]" and run.predict(d / "src.csv")["input"].iloc[4] == "row 3"
    onnx = run.predict(d / "src.csv", backend="onnx")
    np.testing.assert_allclose(onnx["prediction"], got["prediction"], atol=1e-4)


@pytest.mark.parametrize("rows, words", [
    ("1,2,3,4,5\n", "src.csv row 1 has 5 values, but the model reads series of 6 steps (data.t_in)"),
    ("1,2,3,4,5,6\n1,2,,4,5,6\n", "src.csv row 2, value 3: '' is not a finite number"),
], ids=["short_row", "empty_value"])
def test_bad_source_series_are_one_line(sines, tmp_path, rows, words):
    d, run, _ = sines
    (tmp_path / "src.csv").write_text(rows)
    with pytest.raises(DataError) as info:
        run.predict(tmp_path / "src.csv")
    assert str(info.value) == words
    with pytest.raises(DataError, match=r"give series as x \(N, 6\) or \(N, 6, 1\)"):
        run.predict(np.zeros((2, 5)))
