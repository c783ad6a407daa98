"""Language models: sampling (rnnlab/engine/sampling.py), prompts and text (rnnlab/data/textlm.py encode/decode),
`rnnlab generate` and its bad input, and what a language model's run writes (samples, readable cells, metrics)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlab import api
from rnnlab.data import textlm
from rnnlab.engine import model as M
from rnnlab.engine import sampling
from tests.conftest import TINY

TEXT = ('The film (a "remake") was long.\nI liked it; the cast was fine, the end was not.\n' * 60)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    (d / "text.txt").write_text(TEXT, encoding="utf-8")
    s = api.train(["data=textlm", f"data.path={d / 'text.txt'}", "data.seq_len=20", "data.max_chars=null",
                   "data.embed_dim=6", "arch=lstm", "arch.pooling=none", "arch.hidden_size=12", "train.epochs=1",
                   "train.batch_size=8", "train.stateful=true", "train.progress=false", "monitor=none"], d / "run")
    return d / "run", s


def test_probabilities_follow_temperature_top_k_and_top_p():
    z = np.log(np.array([[0.5, 0.25, 0.15, 0.1]]))
    np.testing.assert_allclose(sampling.probabilities(z, 1.0), [[0.5, 0.25, 0.15, 0.1]])
    p2 = sampling.probabilities(z, 2.0)[0]
    want = np.sqrt([0.5, 0.25, 0.15, 0.1])
    np.testing.assert_allclose(p2, want / want.sum())
    np.testing.assert_allclose(sampling.probabilities(z, 1.0, top_k=2), [[2 / 3, 1 / 3, 0, 0]])
    # nucleus 0.7: 0.5 < 0.7, 0.5 + 0.25 reaches it: the two most likely stay
    np.testing.assert_allclose(sampling.probabilities(z, 1.0, top_p=0.7), [[2 / 3, 1 / 3, 0, 0]])
    np.testing.assert_allclose(sampling.probabilities(z, 1.0, top_p=0.3), [[1, 0, 0, 0]])  # the top one always stays
    np.testing.assert_allclose(sampling.probabilities(z, 0.0), [[1, 0, 0, 0]])  # greedy
    np.testing.assert_allclose(sampling.probabilities(z, 1.0, banned=(0,)), [[0, 0.5, 0.3, 0.2]])


def test_draws_follow_the_probabilities_and_the_seed():
    p = np.tile([[0.1, 0.6, 0.3]], (30000, 1))
    a = sampling.draw(p, np.random.default_rng(1))
    np.testing.assert_allclose(np.bincount(a, minlength=3) / len(a), [0.1, 0.6, 0.3], atol=0.01)
    np.testing.assert_array_equal(a, sampling.draw(p, np.random.default_rng(1)))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_greedy_sampling_with_the_carried_state_equals_rereading_the_prefix(cell):
    spec = M.ModelSpec(cell=cell, input_size=4, hidden_size=6, output_size=9, vocab_size=9, pooling="none",
                       num_layers=2)
    params = M.init_params(spec, np.random.default_rng(0), dtype=np.float64)
    prompt = np.array([3, 4, 5])
    out = sampling.sample(spec, params, prompt, 6, np.random.default_rng(0), temperature=0.0, n=2)
    assert out.shape == (2, 6) and (out[0] == out[1]).all()
    seq = np.concatenate([prompt, out[0]])
    logits = M.infer(spec, params, seq[None, :-1])[0]  # each step's logits from the whole prefix
    z = logits[len(prompt) - 1 :]
    z[:, 0] = -np.inf  # the padding id is never drawn
    np.testing.assert_array_equal(z.argmax(axis=1), out[0])


def test_prompts_are_encoded_and_samples_decoded():
    vocab = ["<pad>", "<oov>", "\n", " ", "a", "b"]
    ids, unknown = textlm.encode("ab ax", vocab, "char")
    assert ids.tolist() == [4, 5, 3, 4, 1] and unknown == ["x"]
    assert textlm.decode([4, 5, 3, 2, 4], vocab, "char") == "ab \na"
    words = ["<pad>", "<oov>", "<eos>", "the", "film", ".", ",", "(", ")"]
    ids, unknown = textlm.encode("The film, (the dog).", words, "word", lowercase=True)
    assert unknown == ["dog"] and ids.tolist() == [3, 4, 6, 7, 3, 1, 8, 5]
    assert textlm.decode(ids, words, "word") == "the film, (the <oov>)."


def test_a_language_model_run_reports_bits_samples_and_readable_cells(lm_run):
    run_dir, s = lm_run
    assert s.status == "completed" and s["language_model"] is True
    m, base = s.test_metrics, s["baselines"]
    assert m["bits_per_token"] == pytest.approx(m["cross_entropy"] / np.log(2))
    assert m["bits_per_char"] == pytest.approx(m["bits_per_token"])  # one character per token
    assert set(base) == {"unigram", "bigram"} and base["bigram"]["test_metrics"]["bits_per_char"] > 0
    assert [x["temperature"] for x in s["samples"]] == [0.5, 0.8, 1.0, 0.0]
    assert all(len(x["text"]) == 300 for x in s["samples"])
    import pandas as pd

    units = pd.read_csv(run_dir / "units.csv")
    assert set(units["feature"]) >= {"inside_quotes", "inside_parentheses", "position_in_line", "after_space"}
    assert units["r"].abs().max() <= 1 and len(units) == 5 * units["feature"].nunique()
    acts = pd.read_csv(run_dir / "unit_activations.csv", keep_default_na=False)
    assert len(acts) == min(2000, s["n_test"] * 20) and "char" in acts
    sat = pd.read_csv(run_dir / "gate_saturation.csv")
    assert set(sat["gate"]) == {"i", "f", "o"} and sat[["left", "right"]].sum(axis=1).max() <= 1
    page = (run_dir / "report.html").read_text()
    assert 'id="language"' in page and "Cells you can read" in page and "temperature 0.8" in page
    assert (run_dir / "plots" / "gate_saturation.png").stat().st_size > 1000


def test_generate_prints_seeded_samples_and_writes_json(lm_run, tmp_path, capsys):
    from rnnlab.commands.generate import run

    run_dir, _ = lm_run
    out = tmp_path / "s.json"
    assert run(str(run_dir), prompt="The film", length=40, n=3, seed=5, top_p=0.9, output=str(out)) == 0
    first = json.loads(out.read_text())
    assert len(first["samples"]) == 3 and all(t.startswith("The film") and len(t) == 48 for t in first["samples"])
    assert "The film" in capsys.readouterr().out
    assert run(str(run_dir), prompt="The film", length=40, n=3, seed=5, top_p=0.9, output=str(out)) == 0
    assert json.loads(out.read_text())["samples"] == first["samples"]
    assert run(str(run_dir), prompt="The film", length=40, n=1, greedy=True, output=str(out)) == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": 0.0}, "--temperature 0.0: must be > 0"),
    ({"temperature": -1.0}, "--temperature -1.0: must be > 0"),
    ({"top_p": 0.0}, r"--top-p 0.0: must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"--top-p 1.5: must be in \(0, 1\]"),
    ({"prompt": "The Zebra"}, "the prompt has 2 characters the model's vocabulary lacks: 'Z', 'b'"),
])
def test_generate_refuses_bad_input_in_one_line(lm_run, tmp_path, capsys, kwargs, message):
    from rnnlab.commands.generate import run

    out = tmp_path / "s.json"
    assert run(str(lm_run[0]), output=str(out), **kwargs) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and "\n" not in err
    import re

    assert re.search(message, err), err
    assert not out.exists()


def test_generate_refuses_a_run_that_is_not_a_language_model(tmp_path, capsys):
    from rnnlab.commands.generate import run

    api.train([*TINY, "train.epochs=1"], tmp_path / "sine")
    assert run(str(tmp_path / "sine")) == 2
    err = capsys.readouterr().err.strip()
    assert "not a language model" in err and "\n" not in err


def test_generate_decodes_a_seq2seq_runs_prompt_as_its_source(tmp_path, capsys):
    from rnnlab.commands.generate import run

    api.train(["data=reverse_digits", "data.n_train=64", "data.n_val=16", "data.n_test=16", "arch=gru",
               "arch.hidden_size=8", "train.epochs=1", "train.batch_size=16", "train.progress=false",
               "train.plots=false", "monitor=none"], tmp_path / "s2s")
    out = tmp_path / "d.json"
    assert run(str(tmp_path / "s2s"), prompt="3 1 4", output=str(out)) == 0
    (text,) = json.loads(out.read_text())["samples"]
    src, _, decoded = text.partition(" -> ")
    assert src == "3 1 4" and all(t.isdigit() or t == "<eos>" for t in decoded.split()), text
    assert text in capsys.readouterr().out
    assert run(str(tmp_path / "s2s"), prompt="") == 2
    assert "give the source sequence to decode" in capsys.readouterr().err
