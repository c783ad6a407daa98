"""Adversarial examples (`rnnlab attack`): the per-sample loss gradient, FGSM's first-order gain, PGD against
FGSM inside the ball, padding left alone, the clean metric, the command's files, table and report section,
and one line with exit code 2 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tests.explain.test_explain_command as explain_tests
from rnnlab import api
from rnnlab.commands.attack import run as attack_cmd
from rnnlab.engine import model as M
from rnnlab.explain import attack
from rnnlab.explain.attack import Ball
from rnnlab.explain.function import ModelFunction
from rnnlab.predict.run import load_run
from tests.data import imdb_tree as tree

adding_run = explain_tests.adding_run  # the tiny adding-problem run (module scope) of the explain tests
QUIET = explain_tests.QUIET
MASK = np.array([[1] * 7, [1] * 4 + [0] * 3, [0] * 2 + [1] * 5, [1] * 7], np.float64)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A tiny binary text model (GRU over embeddings, padded after the review) on the test tree of reviews."""
    base = tmp_path_factory.mktemp("text")
    acl = tree.write_folder(base, 10)
    run_dir = base / "run"
    api.train(["data=imdb", f"data.path={acl}", "data.vocab_size=40", "data.maxlen=12", "data.embed_dim=6",
               "data.padding=post", "arch=gru", "arch.hidden_size=6", "train.epochs=2", *QUIET], run_dir)
    return run_dir


def _model(kind: str, cell="gru", seed=0, **kw):
    """A random float64 model of the task kind: (ModelFunction, z, mask, targets)."""
    rng = np.random.default_rng(seed)
    out = {"regression": 2, "binary": 1, "multiclass": 3}[kind]
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=5, output_size=out, **kw)
    p = M.init_params(spec, rng, dtype=np.float64)
    for k in p:
        p[k] *= 2.0  # away from the linear regime
    z = rng.standard_normal((4, 7, 3))
    n = (4, 7) if spec.per_step else (4,)
    y = {"regression": rng.standard_normal((4, 2)), "binary": rng.integers(0, 2, n),
         "multiclass": rng.integers(0, 3, n)}[kind]
    return ModelFunction(spec, p), z, MASK, y


CASES = [("regression", {"pooling": "last"}), ("binary", {"pooling": "mean", "bidirectional": True}),
         ("multiclass", {"pooling": "max"}), ("multiclass", {"pooling": "none"}), ("binary", {"pooling": "none"})]


@pytest.mark.parametrize("kind, kw", CASES)
def test_the_loss_gradient_is_exact(kind, kw):
    f, z, mask, y = _model(kind, "lstm", **kw)
    L, G = attack.loss_and_grad(f, z, mask, y, kind)
    np.testing.assert_allclose(L, attack.loss_values(f, z, mask, y, kind), rtol=1e-12)
    assert np.all(G[mask == 0] == 0)
    rng = np.random.default_rng(5)
    for _ in range(3):  # centred differences along random directions, per sample
        v = rng.standard_normal(z.shape) * (mask != 0)[:, :, None]
        h = 1e-5
        numeric = (attack.loss_values(f, z + h * v, mask, y, kind)
                   - attack.loss_values(f, z - h * v, mask, y, kind)) / (2 * h)
        exact = (G * v).sum(axis=(1, 2))
        assert np.max(np.abs(numeric - exact) / np.abs(exact)) < 1e-6


def test_the_per_step_loss_counts_the_target_steps_only():
    f, z, mask, y = _model("multiclass", pooling="none")
    counted = np.zeros_like(mask)
    counted[:, 2:5] = mask[:, 2:5]
    L, G = attack.loss_and_grad(f, z, mask, y, "multiclass", loss_mask=counted)
    out = f.outputs(z, mask)
    logp = out - np.log(np.exp(out).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(L, (nll * counted).sum(1) / counted.sum(1), rtol=1e-12)


def test_a_token_model_is_attacked_at_its_embeddings():
    spec = M.ModelSpec(cell="gru", input_size=4, hidden_size=5, output_size=1, vocab_size=9, padding_idx=0)
    p = M.init_params(spec, np.random.default_rng(0), dtype=np.float64)
    f = ModelFunction(spec, p)
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 2, 0]])
    mask = (ids != 0).astype(np.float64)
    y = np.array([1, 0])
    z = f.embed(ids)
    L, G = attack.loss_and_grad(f, z, mask, y, "binary")
    assert G.shape == (2, 5, 4) and np.all(G[mask == 0] == 0)
    ball = Ball("l2", np.array([1.0, 2.0]).reshape(2, 1, 1))
    d = attack.fgsm(f, z, mask, y, "binary", 0.1, ball)
    np.testing.assert_allclose(np.sqrt((d ** 2).sum(axis=(1, 2))), [0.1, 0.2], rtol=1e-12)  # Miyato's r
    np.testing.assert_allclose(d, 0.1 * ball.unit * G / np.sqrt((G ** 2).sum(axis=(1, 2), keepdims=True)))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_raises_the_loss_by_eps_times_the_dual_norm_to_first_order(norm):
    """A nearly linear model (small weights): L(z + delta) - L(z) = eps ||g||_1 (L-inf) or eps r ||g||_2 (L2)."""
    spec = M.ModelSpec(cell="rnn", input_size=3, hidden_size=4, output_size=2, pooling="mean")
    p = M.init_params(spec, np.random.default_rng(1), dtype=np.float64)
    p = {k: 0.3 * v for k, v in p.items()}
    f = ModelFunction(spec, p)
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((4, 7, 3)), rng.standard_normal((4, 2))
    ball = Ball("linf", np.ones((1, 1, 3))) if norm == "linf" else Ball("l2", np.full((4, 1, 1), 2.0))
    L, g = attack.loss_and_grad(f, z, MASK, y, "regression")
    gain = np.abs(g).sum(axis=(1, 2)) if norm == "linf" else 2.0 * np.sqrt((g ** 2).sum(axis=(1, 2)))
    for eps in (1e-3, 1e-4):
        d = attack.fgsm(f, z, MASK, y, "regression", eps, ball)
        up = attack.loss_values(f, z + d, MASK, y, "regression") - L
        assert np.all(up > 0)
        np.testing.assert_allclose(up, eps * gain, rtol=20 * eps)  # the second-order rest shrinks with eps


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind, kw", CASES[:3])
def test_pgd_beats_fgsm_inside_the_ball_and_leaves_padding_alone(norm, kind, kw):
    f, z, mask, y = _model(kind, "gru", seed=3, **kw)
    unit = np.array([0.5, 1.0, 2.0]).reshape(1, 1, 3) if norm == "linf" else np.full((4, 1, 1), 3.0)
    ball = Ball(norm, unit)
    clean = attack.loss_values(f, z, mask, y, kind)
    for eps in (0.05, 1.0):
        d_f = attack.fgsm(f, z, mask, y, kind, eps, ball)
        d_p = attack.pgd(f, z, mask, y, kind, eps, ball, steps=10, seed=1)
        l_f = attack.loss_values(f, z + d_f, mask, y, kind)
        l_p = attack.loss_values(f, z + d_p, mask, y, kind)
        assert np.all(l_p >= l_f - 1e-9), (l_p, l_f)
        if eps == 1.0:  # the loss curves over a large ball: the iterations gain more than FGSM's linear step
            assert (l_p - clean).mean() > 1.2 * (l_f - clean).mean() > 0, (l_p, l_f, clean)
        for d in (d_f, d_p):
            assert np.all(ball.norms(d) <= eps * (1 + 1e-9))
            assert np.all(d[mask == 0] == 0)  # padded steps are never moved
            if norm == "linf":
                assert np.all(np.abs(d) <= eps * unit * (1 + 1e-9))
    assert np.all(attack.pgd(f, z, mask, y, kind, 0.0, ball) == 0)


def _accuracy_from_forward(run, rows):
    data = run.data()
    x, y, m = data.test.x[rows], data.test.y[rows], data.test.mask[rows]
    out = run.forward(x, m.astype(np.float32))
    return float(np.mean((out[:, 0] >= 0) == (y > 0)))


def test_the_clean_accuracy_is_the_models(text_run):
    run = load_run(text_run)
    res = attack.sweep(run, "test", "0:20", ["fgsm", "pgd"], [0.0, 0.5], steps=3,
                       vocab=run.info["data"]["vocab"])
    clean = _accuracy_from_forward(run, np.arange(20))
    s = res.summary
    assert s["clean"]["accuracy"] == clean
    assert [r["accuracy"] for r in s["results"] if r["eps"] == 0] == [clean, clean]
    assert s["inputs"] == "embeddings" and s["ball"]["norm"] == "l2" and s["ball"]["mean_embedding_norm"] > 0
    at = {r["method"]: r for r in s["results"] if r["eps"] == 0.5}
    assert at["pgd"]["loss"] >= at["fgsm"]["loss"] > s["clean"]["loss"]
    assert all(r["max_norm"] <= r["eps"] * (1 + 1e-6) for r in s["results"])


def test_a_per_step_model_is_scored_on_its_counted_steps(tmp_path):
    run_dir = tmp_path / "run"
    api.train(["data=copy", "data.n_train=128", "data.n_val=32", "data.n_test=32", "arch.hidden_size=8",
               "arch.pooling=none", "train.epochs=1", *QUIET], run_dir)
    run = load_run(run_dir)
    s = attack.sweep(run, "test", None, ["pgd"], [0.0, 0.5], steps=2).summary
    test = run.data().test
    counted = test.target_mask > 0
    clean = float(np.mean(run.forward(test.x).argmax(-1)[counted] == test.y[counted]))
    assert s["n_samples"] == 32 and s["clean"]["accuracy"] == clean and s["loss"] == "cross_entropy"
    assert s["results"][1]["loss"] > s["clean"]["loss"]


def test_the_command_writes_its_folder_table_and_report(adding_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert attack_cmd(str(adding_run), samples="0:32", eps="0,0.1,0.5", pgd_steps=3) == 0
    out = capsys.readouterr().err
    assert "attack: 32 test samples, L-inf ball on the inputs" in out and "mse" in out and "pgd" in out
    d = adding_run / "attack"
    assert sorted(p.name for p in d.iterdir()) == ["attack.csv", "attack.json", "attack.png"]
    s = json.loads((d / "attack.json").read_text())
    assert s["task"] == "regression" and s["metrics"] == ["mse", "mae"] and s["n_samples"] == 32
    assert s["ball"]["norm"] == "linf" and len(s["ball"]["feature_std"]) == 2
    frame = pd.read_csv(d / "attack.csv")
    assert list(frame.columns[:5]) == ["method", "eps", "mse", "mae", "loss"]
    assert frame.method.tolist() == ["fgsm"] * 3 + ["pgd"] * 3 and frame.eps.tolist() == [0, 0.1, 0.5] * 2
    run = load_run(adding_run)  # eps 0: the model's own error on the samples
    data = run.data()
    pred = run.forward(data.test.x[:32])
    assert frame.mse[0] == pytest.approx(float(np.mean((pred - data.test.y[:32]) ** 2)), rel=1e-6)
    assert (frame.mse[1:3] > frame.mse[0]).all() and (frame.mse[4:6] >= frame.mse[1:3].values - 1e-7).all()
    assert (d / "attack.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (adding_run / "report.html").read_text()
    start = report.index('<section id="attack"><h2>Adversarial examples</h2>')
    section = report[start:report.index("</section>", start)]
    assert "<th>pgd mse</th>" in section and "data:image/png;base64," in section and "attack/attack.png" in section
    assert report.count('alt="attack/attack.png"') == 1  # not again among the other plots


def test_a_text_run_gets_its_tokens(text_run, tmp_path, capsys):
    out = tmp_path / "atk"
    assert attack_cmd(str(text_run), samples="0:12", eps="0,0.3", pgd_steps=3, output=str(out)) == 0
    assert "tokens moved most (pgd, eps 0.3" in capsys.readouterr().err
    tokens = pd.read_csv(out / "tokens.csv", keep_default_na=False)
    assert list(tokens.columns) == ["token", "id", "count", "mean_norm", "vs_even"]
    assert tokens.mean_norm.is_monotonic_decreasing and (tokens["count"] > 0).all()
    run = load_run(text_run)
    x, m = run.data().test.x[:12], run.data().test.mask[:12]
    assert tokens["count"].sum() == int((m != 0).sum())  # every real step, once
    vocab = run.info["data"]["vocab"]
    assert all(vocab[i] == t for i, t in zip(tokens.id, tokens.token, strict=True))
    assert set(tokens.id) == set(x[m != 0].tolist())
    s = json.loads((out / "attack.json").read_text())
    assert s["tokens_at"] == {"method": "pgd", "eps": 0.3} and all(t["count"] >= 3 for t in s["tokens"])
    assert not (text_run / "attack").exists()  # -o: the run folder is left alone


@pytest.mark.parametrize("kw, message", [
    ({"methods": "fgsm,cw"}, "--method fgsm,cw: unknown cw (choose from fgsm, pgd)"),
    ({"eps": "0,-0.1"}, "--eps 0,-0.1: -0.1 must be a finite number >= 0"),
    ({"eps": "0,big"}, "--eps 0,big: big is not a number (use e.g. 0,0.01,0.05,0.1)"),
    ({"samples": "60:70"}, "--samples 60:70: out of range (the split has 64 samples: 0:64)"),
    ({"pgd_steps": 0}, "--pgd-steps 0: PGD needs at least 1 step"),
    ({"split": "dev"}, "--split dev: unknown (use test, val, train)"),
])
def test_bad_input_is_one_line_and_exit_2(adding_run, tmp_path, capsys, kw, message):
    out = tmp_path / "attack"
    assert attack_cmd(str(adding_run), output=str(out), **kw) == 2
    assert capsys.readouterr().err == f"Error: {message}\n"
    assert not out.exists()


def test_not_a_run_and_a_seq2seq_run_are_refused(tmp_path, capsys):
    assert attack_cmd(str(tmp_path / "nothing")) == 2
    assert capsys.readouterr().err == f"Error: {tmp_path / 'nothing'}: not found\n"
    assert not (tmp_path / "nothing").exists()
    run_dir = tmp_path / "run"
    api.train(["data=reverse_digits", "data.n_train=64", "data.n_val=16", "data.n_test=16", "arch.hidden_size=8",
               "train.epochs=1", *QUIET], run_dir)
    assert attack_cmd(str(run_dir)) == 2
    assert capsys.readouterr().err == ("Error: attack: a seq2seq run is not supported (its output is a decoded "
                                       "sequence); attack a sequence model\n")
    assert not (run_dir / "attack").exists()
