"""`rnnlab explain` on tiny trained runs: the files it writes, their agreement with the methods, the known
answer on the adding problem, a text model's tokens, and one line with exit code 2 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands.explain import run as explain_cmd
from tests.conftest import TINY
from tests.data import imdb_tree as tree

QUIET = ["train.progress=false", "train.plots=false", "monitor=none"]


@pytest.fixture(scope="module")
def adding_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("adding") / "run"
    api.train(["data=adding", "data.length=10", "data.n_train=256", "data.n_val=64", "data.n_test=64", "arch=lstm",
               "arch.hidden_size=8", "train.epochs=2", "train.batch_size=64", *QUIET], d)
    return d


def _cmd(run_dir, *, method="ig,saliency,gxi,occlusion", split="test", samples="0:6", target="pred",
         baseline="zero", steps=16, rule="gauss-legendre", output=None, randomisation=True, groups=16, **kw):
    return explain_cmd(str(run_dir), method, split, samples, target, baseline, steps, rule,
                       None if output is None else str(output), randomisation, groups=groups, **kw)


def test_explain_writes_its_folder_and_the_known_answer(adding_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table's headers on one line
    assert _cmd(adding_run) == 0
    out = capsys.readouterr().err  # the console is on stderr, as every command's
    assert "explain: 6 test samples, target pred, baseline zero" in out and "known answer" in out
    d = adding_run / "explain"
    assert sorted(p.name for p in d.iterdir()) == [
        "attributions.npz", "explain.json", "features.csv", "heatmap_0.png", "heatmap_1.png", "heatmap_2.png",
        "lags.csv", "layers.png", "overview.json", "sanity.json", "steps.csv"]
    report = (adding_run / "report.html").read_text()  # the run's report, with its Explanations section
    assert '<section id="explain"><h2>Explanations</h2><p>6 test samples, target pred, baseline zero' in report
    section = report[report.index('<section id="explain">'):report.index("</section>", report.index('id="explain"'))]
    assert all(f">{name}</td>" in section for name in ("ig", "saliency", "gxi", "occlusion")), section[:2000]
    s = json.loads((d / "explain.json").read_text())
    assert s["samples"] == list(range(6)) and s["data"] == "adding" and s["ig_steps"] == 16
    assert list(s["methods"]) == ["ig", "saliency", "gxi", "occlusion"]
    ig = s["methods"]["ig"]
    assert ig["completeness_gap_rel_max"] < 0.01 and ig["completeness_ok"] is True
    for m in s["methods"].values():  # every method: its known answer, deletion curve and randomisation
        assert 0 <= m["truth_share"] <= 1
        assert len(m["deletion"]["method"]) == 11 and m["deletion"]["method"][0] == pytest.approx(1.0)
        assert [st["randomised_down_to"] for st in m["randomisation"]["stages"]] == ["head", "rnn0"]
    sanity = json.loads((d / "sanity.json").read_text())
    assert set(sanity["ig"]) >= {"completeness_gap_rel_max", "randomisation", "deletion", "truth_share"}
    with np.load(d / "attributions.npz") as z:
        assert z["ig"].shape == (6, 10, 2) and z["ig_steps"].shape == (6, 10) and z["x"].shape == (6, 10, 2)
        # the known answer recomputed from the arrays: |attribution| on the marked steps over the total
        marked = z["x"][:, :, 1] == 1
        share = (np.abs(z["ig_steps"]) * marked).sum(1) / np.abs(z["ig_steps"]).sum(1)
        assert np.mean(share) == pytest.approx(ig["truth_share"], rel=1e-5)
    steps = pd.read_csv(d / "steps.csv")
    assert list(steps.columns) == ["sample", "step", "x0", "x1", "ig", "saliency", "gxi", "occlusion", "layer_rnn0"]
    assert len(steps) == 60
    np.testing.assert_allclose(steps.groupby("sample").ig.sum(),
                               np.asarray(_ig_totals(d)), rtol=1e-5)
    # layer integrated gradients: a last-pooled LSTM's only layer carries everything in its last state, and
    # its attributions add up to the same F(x) - F(baseline) as the inputs' (the head above it is linear)
    layer = s["layers"]["rnn0"]
    assert layer["completeness_gap_rel_max"] < 1e-5 and layer["mean_abs_by_step"][:9] == [0.0] * 9
    np.testing.assert_allclose(steps.groupby("sample").layer_rnn0.sum(), _ig_totals(d), rtol=1e-3)
    assert 'src="data:image/png;base64,' in section and "explain/heatmap_0.png" in section
    assert "explain/layers.png" in section and "permutation: score drop" in section


def test_the_global_view_ranks_features_and_lags_with_the_run_s_score(adding_run):
    view = json.loads((adding_run / "explain" / "overview.json").read_text())
    assert view["samples"] == 64 and view["method"] == "gxi" and view["target"] == "pred"
    assert sorted(r["name"] for r in view["features"]) == ["x0", "x1"]
    assert [r["name"] for r in view["lags"]] != [] and len(view["lags"]) == 10
    shares = [r["share"] for r in view["features"]]
    assert sum(shares) == pytest.approx(1.0) and shares == sorted(shares, reverse=True)
    run = api.load_run(adding_run)
    test = run.data().test
    mse = float(np.mean((run.forward(test.x, test.mask).ravel() - test.y.ravel()) ** 2))
    assert view["score"] == pytest.approx(-mse, rel=1e-5)  # the score permutation importance starts from
    lags = pd.read_csv(adding_run / "explain" / "lags.csv")
    assert list(lags.columns) == ["name", "mean_abs_attribution", "share", "permutation_drop", "permutation_std"]


def _ig_totals(d):
    with np.load(d / "attributions.npz") as z:
        return z["ig"].sum(axis=(1, 2))


def test_a_second_explain_replaces_the_folder_and_o_writes_elsewhere(adding_run, tmp_path):
    assert _cmd(adding_run, method="saliency", samples="3", output=tmp_path / "ex", randomisation=False) == 0
    s = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert s["samples"] == [3] and list(s["methods"]) == ["saliency"]
    assert "randomisation" not in s["methods"]["saliency"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("kw, message", [
    ({"method": "ig,lime"}, "--method ig,lime: unknown lime (choose from ig, saliency, smoothgrad, gxi, occlusion, "
                            "attention, shap)"),
    ({"samples": "60:70"}, "--samples 60:70: out of range (the split has 64 samples: 0:64)"),
    ({"samples": "a:b"}, "--samples a:b: use A:B, K or I,J,K (sample numbers of the split)"),
    ({"target": "class:1"}, "--target class:1: a regression model has no classes (use pred or step:H)"),
    ({"baseline": "pad"}, "--baseline pad: the model reads no tokens (use zero or mean)"),
    ({"baseline": "blur"}, "--baseline blur: unknown (use zero, mean, pad)"),
    ({"split": "dev"}, "--split dev: unknown (use test, val, train)"),
    ({"steps": 0}, "--steps 0: integrated gradients needs at least 1 step"),
    ({"groups": 0, "method": "shap"}, "--groups 0: shap needs at least 1 group"),
    ({"rule": "trapezoid"}, "--rule trapezoid: unknown (use gauss-legendre or midpoint)"),
    ({"method": "attention"}, "--method attention: the model has no attention pooling (arch.pooling=attention)"),
    ({"overview_method": "attention"}, "--overview-method attention: unknown (choose from ig, saliency, "
                                       "smoothgrad, gxi, occlusion, shap)"),
    ({"overview": -1}, "--overview -1: a number of samples, 0 for none"),
])
def test_bad_input_is_one_line_and_exit_2(adding_run, tmp_path, capsys, kw, message):
    out = tmp_path / "ex"
    assert _cmd(adding_run, output=out, randomisation=False, **kw) == 2
    err = capsys.readouterr().err
    assert err == f"Error: {message}\n"
    assert not out.exists()


def test_not_a_run_is_one_line(tmp_path, capsys):
    assert _cmd(tmp_path / "nothing") == 2
    assert capsys.readouterr().err == f"Error: {tmp_path / 'nothing'}: not found\n"


def test_a_text_model_gets_tokens_and_their_colours(tmp_path, capsys):
    acl = tree.write_folder(tmp_path, 10)
    run_dir = tmp_path / "run"
    api.train(["data=imdb", f"data.path={acl}", "data.vocab_size=40", "data.maxlen=12", "data.embed_dim=6",
               "data.padding=pre", "arch=gru", "arch.hidden_size=6", "arch.pooling=attention", "train.epochs=1",
               *QUIET], run_dir)
    assert _cmd(run_dir, method="ig,attention", samples="0:4", baseline="pad", target="class:1",
                randomisation=False) == 0
    d = run_dir / "explain"
    steps = pd.read_csv(d / "steps.csv")
    assert list(steps.columns) == ["sample", "step", "token", "ig", "attention", "layer_rnn0"]
    vocab = json.loads((run_dir / "checkpoint" / "model.json").read_text())["data"]["vocab"]
    with np.load(d / "attributions.npz") as z:
        tokens, mask = z["tokens"], z["mask"]
        assert z["ig"].shape == (4, 12, 6) and z["attention"].shape == (4, 12, 1)
        np.testing.assert_allclose(z["attention_steps"].sum(axis=1), 1.0, rtol=1e-5)  # weights over real steps
    assert steps.token.tolist() == [vocab[t] for t in tokens[mask != 0]]
    html = (d / "tokens.html").read_text()
    assert html.count("<p><b>sample") == 8 and "rgba(" in html  # 4 reviews x 2 methods
    report = (run_dir / "report.html").read_text()  # the first method's colours, per review
    section = report[report.index('<section id="explain">'):]
    assert section.count("<p><b>sample") == 4 and "title=" in section and "Tokens coloured by ig" in section
    s = json.loads((d / "explain.json").read_text())
    assert s["methods"]["ig"]["completeness_gap_rel_max"] < 0.01 and "truth_share" not in s["methods"]["ig"]
    top = pd.read_csv(d / "top_tokens.csv")  # the global view over the test split, towards class 1
    assert s["overview"]["target"] == "class:1" and set(top.direction) == {"positive", "negative"}
    assert set(top.token) <= set(vocab) and (top["count"] >= s["overview"]["tokens"]["min_count"]).all()
    assert '<th class="l">towards</th>' in section and not list(d.glob("heatmap_*.png"))


def test_a_seq2seq_run_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    api.train(["data=reverse_digits", "data.n_train=64", "data.n_val=16", "data.n_test=16", "arch.hidden_size=8",
               "train.epochs=1", *QUIET], run_dir)
    assert _cmd(run_dir) == 2
    assert capsys.readouterr().err.startswith("Error: explain: a seq2seq run is not supported")


def test_a_tiny_forecasting_run_explains_its_horizon(tmp_path):
    run_dir = tmp_path / "run"
    api.train([*TINY, "data.n_out=3", "train.epochs=1"], run_dir)
    assert _cmd(run_dir, method="ig,occlusion", target="step:3", randomisation=False) == 0
    s = json.loads((run_dir / "explain" / "explain.json").read_text())
    assert s["target"] == "step:3" and s["methods"]["occlusion"]["window"] == 1
    assert _cmd(run_dir, method="ig", target="step:4", randomisation=False) == 2


@pytest.mark.slow  # shap's first call compiles its numba kernels (~10 s a process); test_methods covers shap fast
def test_shap_with_a_group_per_step_finds_the_marked_steps(adding_run, tmp_path):
    assert _cmd(adding_run, method="shap", samples="0:4", groups=10, output=tmp_path / "ex", randomisation=False) == 0
    m = json.loads((tmp_path / "ex" / "explain.json").read_text())["methods"]["shap"]
    assert m["completeness_gap_rel_max"] < 1e-4 and 0 <= m["truth_share"] <= 1


def test_new_inputs_from_a_file_are_explained_and_a_wrong_shape_is_one_line(adding_run, tmp_path, capsys):
    x = np.random.default_rng(0).uniform(0, 1, (5, 10, 2))
    x[:, :, 1] = 0
    x[:, [2, 7], 1] = 1  # the two marked steps of the adding problem
    np.savez(tmp_path / "new.npz", x=x)
    out = tmp_path / "ex"
    assert _cmd(adding_run, method="ig", samples=None, output=out, randomisation=False,
                input_file=str(tmp_path / "new.npz")) == 0
    assert "explain: 5 input samples" in capsys.readouterr().err
    s = json.loads((out / "explain.json").read_text())
    assert s["samples"] == [0, 1, 2, 3, 4] and "overview" not in s  # no labels: no global view
    assert s["split"] == "input" and s["input"] == str(tmp_path / "new.npz")
    with np.load(out / "attributions.npz") as z:
        np.testing.assert_allclose(z["x"], x.astype(np.float32))
    np.save(tmp_path / "bad.npy", x)
    np.savez(tmp_path / "wide.npz", x=np.zeros((2, 10, 3)))
    assert _cmd(adding_run, output=tmp_path / "ex2", input_file=str(tmp_path / "wide.npz")) == 2
    assert capsys.readouterr().err == "Error: the inputs have 3 features per step, but the model reads 2\n"
    assert not (tmp_path / "ex2").exists()


def test_maximize_writes_its_folder_and_report_section(adding_run, capsys):
    assert explain_cmd(str(adding_run), "ig", "test", None, "pred", "zero", 8, "gauss-legendre", None,
                       maximize="unit:0:1", length=6, iterations=40) == 0
    assert "maximize unit:0:1:" in capsys.readouterr().err
    d = adding_run / "maximize"
    assert sorted(p.name for p in d.iterdir()) == ["best.csv", "inputs.npz", "maximize.json", "maximize.png"]
    s = json.loads((d / "maximize.json").read_text())
    assert s["goal"] == "unit:0:1" and s["length"] == 6 and len(s["restarts"]) == 4
    assert s["trace"][-1]["activation"] >= s["trace"][0]["activation"]
    assert list(pd.read_csv(d / "best.csv").columns) == ["step", "x0", "x1"]
    report = (adding_run / "report.html").read_text()
    assert '<section id="maximize"><h2>Activation maximisation</h2><p>unit:0:1: ' in report
    assert 'alt="maximize/maximize.png"' in report


@pytest.mark.parametrize("kw, message", [
    ({"maximize": "unit:0:8"}, "--maximize unit:0:8: unit 8 out of range 0..7"),
    ({"maximize": "class:0"}, "--maximize class:0: a regression model has outputs (output:K)"),
    ({"maximize": "output:1", "iterations": 0}, "--iterations 0: needs at least 1"),
])
def test_bad_maximize_is_one_line(adding_run, tmp_path, capsys, kw, message):
    out = tmp_path / "mx"
    assert explain_cmd(str(adding_run), "ig", "test", None, "pred", "zero", 8, "gauss-legendre", str(out),
                       **kw) == 2
    assert capsys.readouterr().err == f"Error: {message}\n"
    assert not out.exists()


def test_a_run_without_its_checkpoint_is_one_line_for_explain_maximize_and_attack(adding_run, tmp_path, capsys):
    import shutil

    from rnnlab.commands.attack import run as attack_cmd

    bare = tmp_path / "bare"
    shutil.copytree(adding_run, bare, ignore=shutil.ignore_patterns("checkpoint*", "explain", "maximize", "attack"))
    missing = f"Error: checkpoint file missing: {bare / 'checkpoint' / 'model.npz'}\n"
    assert _cmd(bare) == 2 and capsys.readouterr().err == missing
    assert _cmd(bare, maximize="unit:0:0") == 2 and capsys.readouterr().err == missing
    assert attack_cmd(str(bare)) == 2 and capsys.readouterr().err == missing
    assert not [p.name for p in bare.iterdir() if p.name in ("explain", "maximize", "attack")]
