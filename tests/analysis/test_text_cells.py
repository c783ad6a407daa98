"""Readable cells (rnnlab.analysis.text_cells, rnnlab.report.text_cells_plots): text features on hand-worked
strings, activations of one long sequence (chunked = unchunked, aligned with the model's output), the
correlation ranking on a planted unit, gate saturation on hand-made gates, the HTML and the scatter."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnlab.analysis import text_cells as tc
from rnnlab.engine import model as M
from rnnlab.report import text_cells_plots as tp


def ones_at(n: int, where) -> list[float]:
    out = [0.0] * n
    for i in where:
        out[i] = 1.0
    return out


# --------------------------------------------------------------------------------------
# text features
# --------------------------------------------------------------------------------------


def test_text_features_hand_worked():
    text = 'He said "hi (x)".\nOk'
    #       0123456789012345 6 7 89  (index 17 is the newline)
    n = len(text)
    f = tc.text_features(text)
    assert set(f) == set(tc.FEATURES)
    assert all(a.shape == (n,) and a.dtype == np.float64 for a in f.values())
    expected = {
        "inside_quotes": ones_at(n, range(8, 15)),  # the opening " is inside, the closing one outside
        "inside_parentheses": ones_at(n, [12, 13]),
        "position_in_line": list(range(18)) + [0, 1],
        "after_space": ones_at(n, [3, 8, 12, 18]),  # 18: after the newline
        "is_space": ones_at(n, [2, 7, 11, 17]),
        "is_upper": ones_at(n, [0, 18]),
        "is_punctuation": ones_at(n, [8, 12, 14, 15, 16]),
        "word_position": [0, 1, 0, 0, 1, 2, 3, 0, 0, 1, 2, 0, 0, 1, 2, 3, 4, 0, 0, 1],
    }
    for name, want in expected.items():
        np.testing.assert_array_equal(f[name], want, err_msg=name)


def test_text_features_nesting_toggles_and_edges():
    f = tc.text_features('(()))(""x"')
    np.testing.assert_array_equal(f["inside_parentheses"], [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])  # no negative depth
    np.testing.assert_array_equal(f["inside_quotes"], [0, 0, 0, 0, 0, 0, 1, 0, 0, 1])
    assert all(len(a) == 0 for a in tc.text_features("").values())
    g = tc.text_features(" a\tB")
    np.testing.assert_array_equal(g["after_space"], [0, 1, 0, 1])  # nothing before the first character
    np.testing.assert_array_equal(g["is_space"], [1, 0, 1, 0])


# --------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------

GATES = {"lstm": {"i", "f", "g", "o", "c", "tanh_c"}, "gru": {"r", "z", "n"}, "rnn": set()}


def tiny(cell: str, **kw):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=6, num_layers=2, vocab_size=6,
                       pooling="none", **kw)
    return spec, M.init_params(spec, np.random.default_rng(0), dtype=np.float64)


@pytest.mark.parametrize("cell", sorted(GATES))
def test_activations_chunked_equal_unchunked(cell):
    spec, params = tiny(cell)
    ids = np.random.default_rng(1).integers(0, 6, 23)
    whole = tc.activations(spec, params, ids)
    want = {f"layer{l}" for l in range(2)} | {f"layer{l}.{g}" for l in range(2) for g in GATES[cell]}
    assert set(whole) == want
    assert all(a.shape == (23, 4) for a in whole.values())
    for chunk in (5, 1, 100):
        parts = tc.activations(spec, params, ids, chunk=chunk)
        assert set(parts) == want
        for k in want:
            np.testing.assert_allclose(parts[k], whole[k], rtol=0, atol=1e-12, err_msg=f"{k} chunk={chunk}")
    # carried states matter: restarting every chunk from zeros gives other states after the first chunk
    restarted = np.concatenate([tc.activations(spec, params, ids[s : s + 5])["layer1"] for s in range(0, 23, 5)])
    assert np.abs(restarted[5:] - whole["layer1"][5:]).max() > 1e-6


def test_activations_align_with_the_model_output():
    spec, params = tiny("lstm")
    ids = np.random.default_rng(2).integers(0, 6, 17)
    acts = tc.activations(spec, params, ids, chunk=4)
    y = M.infer(spec, params, ids[None])[0]  # the head on the top layer's state at every step
    np.testing.assert_allclose(acts["layer1"] @ params["head.weight"].T + params["head.bias"], y, atol=1e-12)
    for g in ("i", "f", "o"):
        assert ((acts[f"layer0.{g}"] > 0) & (acts[f"layer0.{g}"] < 1)).all()
    np.testing.assert_allclose(acts["layer0.tanh_c"], np.tanh(acts["layer0.c"]), atol=1e-12)


def test_activations_refuses_bidirectional_and_bad_input():
    spec, params = tiny("gru", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        tc.activations(spec, params, np.array([1, 2, 3]))
    spec, params = tiny("gru")
    with pytest.raises(ValueError, match="chunk"):
        tc.activations(spec, params, np.array([1, 2, 3]), chunk=0)
    with pytest.raises(ValueError, match="token ids"):
        tc.activations(spec, params, np.array([[1, 2, 3]]))


# --------------------------------------------------------------------------------------
# correlated units and gate saturation
# --------------------------------------------------------------------------------------


def test_correlated_units_finds_the_planted_unit():
    rng = np.random.default_rng(3)
    T = 300
    feature = (rng.random(T) < 0.3).astype(float)
    acts = {"layer0": rng.normal(size=(T, 6)), "layer1": rng.normal(size=(T, 5)),
            "layer1.f": np.tile(feature[:, None], (1, 5))}  # gates are not hidden states: never ranked
    acts["layer0"][:, 2] = 0.7  # a constant unit: r = 0, no 0/0 warning
    acts["layer1"][:, 3] = feature + 0.01 * rng.normal(size=T)
    features = {"planted": feature, "negated": 1 - feature, "constant": np.ones(T)}
    rows = tc.correlated_units(acts, features, top=4)
    assert [r["feature"] for r in rows] == ["planted"] * 4 + ["negated"] * 4 + ["constant"] * 4
    first = rows[0]
    assert (first["layer"], first["unit"]) == ("layer1", 3) and first["r"] > 0.99
    assert (rows[4]["layer"], rows[4]["unit"]) == ("layer1", 3) and rows[4]["r"] < -0.99
    planted = [abs(r["r"]) for r in rows[:4]]
    assert planted == sorted(planted, reverse=True) and planted[1] < 0.3
    assert all(r["r"] == 0.0 for r in rows[8:])
    assert all(r["layer"] in ("layer0", "layer1") for r in rows)
    direct = np.corrcoef(acts["layer0"][:, 0], feature)[0, 1]
    np.testing.assert_allclose(tc.pearson(acts["layer0"], feature)[0], direct, atol=1e-12)


def test_gate_saturation_hand_made():
    f = np.array([[0.05, 0.95], [0.5, 0.99], [0.01, 0.5], [0.2, 0.92], [0.1, 0.9]])  # 0.1, 0.9: not saturated
    acts = {"layer0": np.zeros((5, 2)), "layer0.f": f, "layer0.g": -np.ones((5, 2)), "layer0.c": np.zeros((5, 2)),
            "layer1.i": np.full((5, 1), 0.97)}
    rows = tc.gate_saturation(acts)
    assert [(r["layer"], r["gate"], r["unit"]) for r in rows] == [("layer0", "f", 0), ("layer0", "f", 1),
                                                                   ("layer1", "i", 0)]
    assert [(r["left"], r["right"]) for r in rows] == [(0.4, 0.0), (0.0, 0.6), (0.0, 1.0)]
    wide = tc.gate_saturation(acts, low=0.3, high=0.5, gates=("f",))
    assert [(r["left"], r["right"]) for r in wide] == [(0.8, 0.0), (0.0, 0.8)]


def test_pipeline_on_a_text():
    text = 'She said "Hi (there)".\nHe said "No".\n' * 3
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) + 1 for c in text])  # 0 is the padding id
    spec = M.ModelSpec(cell="lstm", input_size=4, hidden_size=5, output_size=len(vocab) + 1, num_layers=2,
                       vocab_size=len(vocab) + 1, pooling="none")
    params = M.init_params(spec, np.random.default_rng(4), dtype=np.float64)
    acts = tc.activations(spec, params, ids, chunk=16)
    features = tc.text_features(text)
    rows = tc.correlated_units(acts, features, top=3)
    assert len(rows) == 3 * len(features) and all(-1 <= r["r"] <= 1 for r in rows)
    assert len(tc.gate_saturation(acts)) == 2 * 3 * 5  # layers x (i, f, o) x units


# --------------------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------------------

SPAN = re.compile(r'<span style="background:rgba\((\d+),(\d+),(\d+),([\d.]+)\)" title="([^"]*)">(.*?)</span>')


def test_unit_html_escapes_and_colours():
    text = "a<b&\nc"
    out = tp.unit_html(text, np.array([0.8, -0.5, 0.0, 1.0, 0.2, -1.0]), "layer0 unit <3>")
    spans = SPAN.findall(out)
    assert out.count("<span") == len(spans) == len(text)
    assert "&lt;" in out and "&amp;" in out and "<b&" not in out and "unit &lt;3&gt;" in out
    assert "<br>" in out
    r, g, b, alpha, title, ch = spans[0]
    assert ch == "a" and int(r) > int(b) and float(alpha) == 0.8 and title == "0.800"  # positive: red
    r, g, b, alpha, _, ch = spans[1]
    assert ch == "&lt;" and int(b) > int(r) and float(alpha) == 0.5  # negative: blue
    assert float(spans[2][3]) == 0.0  # zero: transparent over white
    # other ranges: scaled by max |v|
    scaled = SPAN.findall(tp.unit_html("xy", np.array([4.0, 1.0]), "c"))
    assert [float(s[3]) for s in scaled] == [1.0, 0.25]
    with pytest.raises(ValueError):
        tp.unit_html("xy", np.zeros(3), "t")


def test_saturation_plot_writes_a_png(tmp_path):
    rng = np.random.default_rng(5)
    rows = [{"layer": f"layer{l}", "gate": g, "unit": u, "left": float(a), "right": float(b)}
            for l in range(2) for g in ("i", "f", "o") for u, (a, b) in enumerate(rng.dirichlet([1, 1, 1], 6)[:, :2])]
    path = tp.saturation_plot(rows, tmp_path / "sat" / "saturation.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        tp.saturation_plot([], tmp_path / "none.png")
