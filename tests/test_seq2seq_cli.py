"""`rnnlab train data=reverse_digits|sine2cosine`: the encoder-decoder end to end (tiny runs in this process;
plots on: the attention plot and the report are part of a seq2seq run folder), and its one-line refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.train import run
from rnnlab.record import checkpoint
from tests.conftest import read_summary

TINY_DIGITS = ["data=reverse_digits", "data.n_train=200", "data.n_val=40", "data.n_test=40", "data.max_len=5",
               "arch=gru", "arch.hidden_size=12", "train.epochs=2", "train.progress=false", "monitor=none"]
TINY_SINE = ["data=sine2cosine", "data.n_train=120", "data.n_val=20", "data.n_test=20", "data.t_in=8",
             "arch.hidden_size=8", "train.epochs=2", "train.progress=false", "monitor=none"]


def _train(args, tmp_path):
    """Train ARGS into tmp_path/run (what `rnnlab train ARGS` does); the run must complete."""
    d = tmp_path / "run"
    s = api.train(args, d)
    assert s.status == "completed", s.message
    return d


def _checkpoint_loads(d):
    with np.load(d / "checkpoint" / "model.npz", allow_pickle=False) as z:
        assert len(z.files) > 0
    spec, params, info = checkpoint.load(d)
    assert info["model"] == "seq2seq" and set(params) and spec.hidden_size == info["spec"]["hidden_size"]
    return spec


def test_reverse_digits_with_attention_and_scheduled_sampling(tmp_path):
    d = _train([*TINY_DIGITS, "arch.attention=luong", "train.teacher_forcing_end=0.5"], tmp_path)
    s = read_summary(d)
    assert s["status"] == "completed" and s["epochs_run"] == 2 and s["model"] == "seq2seq"
    for key in ("test_token_accuracy", "test_sequence_accuracy", "test_loss", "attention_alignment"):
        assert key in s, key
    assert 0 <= s["test_token_accuracy"] <= 1 and 0 <= s["attention_alignment"] <= 1
    assert set(s["test_metrics"]) == {"accuracy", "sequence_accuracy"}
    assert "most_frequent_token" in s["baselines"]
    m = pd.read_csv(d / "metrics.csv")
    assert {"epoch", "train_loss", "val_loss", "val_accuracy", "val_sequence_accuracy", "teacher_forcing",
            "lr"} <= set(m.columns)
    assert m["teacher_forcing"].tolist() == [1.0, 0.5]  # linear decay to the end value by the last epoch
    spec = _checkpoint_loads(d)
    assert spec.attention == "luong" and spec.cell == "gru"
    assert (d / "plots" / "attention.png").is_file() and (d / "plots" / "loss.png").is_file()
    att = pd.read_csv(d / "attention_mean.csv")
    sums = att.iloc[:, 1:].sum(axis=1)  # each output step averaged over the sequences still decoding there
    assert att.shape[1] == s["attention_length"] + 1 and np.allclose(sums[sums > 0], 1, atol=1e-4)
    p = pd.read_csv(d / "predictions.csv", dtype=str)
    assert {"source", "target", "prediction"} <= set(p.columns) and len(p) > 0
    assert (d / "report.html").is_file()


def test_reverse_digits_without_attention_and_beam(tmp_path):
    d = _train([*TINY_DIGITS, "arch=lstm", "train.beam_size=3"], tmp_path)
    s = read_summary(d)
    assert s["status"] == "completed" and s["decoding"] == "beam search (beam_size 3)"
    assert "attention_alignment" not in s
    assert not (d / "plots" / "attention.png").exists() and not (d / "attention_mean.csv").exists()
    assert pd.read_csv(d / "metrics.csv")["teacher_forcing"].tolist() == [1.0, 1.0]
    assert _checkpoint_loads(d).attention is None


def test_sine2cosine(tmp_path):
    d = _train([*TINY_SINE, "arch.attention=bahdanau", "train.teacher_forcing=0.8", "train.teacher_forcing_end=0.2"],
               tmp_path)
    s = read_summary(d)
    assert s["status"] == "completed" and s["test_mse"] >= 0
    assert set(s["baselines"]) == {"zero", "train_mean"}
    m = pd.read_csv(d / "metrics.csv")
    assert {"val_mse", "teacher_forcing"} <= set(m.columns)
    assert np.allclose(m["teacher_forcing"], [0.8, 0.2])
    _checkpoint_loads(d)
    assert (d / "plots" / "attention.png").is_file()
    assert len(pd.read_csv(d / "predictions.csv")) == 5 * 8


@pytest.mark.parametrize("args, needle", [
    (["data=reverse_digits", "arch.attention=foo"], "arch.attention must be one of none, luong, bahdanau"),
    (["data=sine", "arch.attention=luong"], "arch.attention=luong is for the seq2seq data sets"),
    (["data=reverse_digits", "arch=stacked_lstm"], "does not support: arch.num_layers=2"),
    (["data=sine2cosine", "train.beam_size=2"], "needs token targets"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    size = "data.n_train=20" if args[0] != "data=sine" else "data.length=400"
    code = run([*args, "train.epochs=1", "train.progress=false", size, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if "Error" in line]
    assert len(lines) == 1 and needle in lines[0], err
