"""ONNX export: every architecture option runs in onnxruntime to the engine's numbers (a pairwise cover of
the options in the fast suite), the gate-order facts, seq2seq decoding, INT8, and the one-line refusals."""

from __future__ import annotations

import itertools
import json
import types

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnlab.engine import blocks, cells, lowering  # noqa: E402
from rnnlab.engine import model as M  # noqa: E402
from rnnlab.engine import seq2seq as Q  # noqa: E402
from rnnlab.export import onnx_format as O  # noqa: E402
from rnnlab.export.base import ExportError, ExportOptions  # noqa: E402

REL = 1e-4  # max |onnxruntime - engine| / max |engine|, float32

# ----------------------------------------------------------------------------------------
# the export matrix
# ----------------------------------------------------------------------------------------

CELLS = {"rnn_tanh": ("rnn", "tanh"), "rnn_relu": ("rnn", "relu"), "lstm": ("lstm", None), "gru": ("gru", None),
         "indrnn": ("indrnn", None), "ln_lstm": ("ln_lstm", None)}
FACTORS = {
    "cell": tuple(CELLS),
    "layout": ("uni", "concat", "sum", "mean", "mul"),
    "layers": (1, 2),
    "pooling": ("last", "mean", "max", "attention", "none"),
    "norm": ("none", "layer_norm", "batch_norm"),
    "front": ("none", "conv", "embedding", "embedding+conv"),
    "self_attention": ("none", "full", "causal"),
    "regularizer": ("none", "zoneout", "recurrent_dropout"),
}
NAMES = tuple(FACTORS)


def _allowed(row: dict) -> bool:
    """The spec's one constraint between options: self-attention needs a pooling other than "last"."""
    return not (row.get("self_attention", "none") != "none" and row.get("pooling") == "last")


def _pair(k, v, n, w):
    return ((k, v), (n, w)) if k < n else ((n, w), (k, v))


def _pairs(row: tuple) -> set:
    return {_pair(i, row[i], j, row[j]) for i, j in itertools.combinations(range(len(row)), 2)}


def _all_pairs() -> set:
    return {_pair(i, a, j, b) for i, j in itertools.combinations(range(len(NAMES)), 2)
            for a, b in itertools.product(FACTORS[NAMES[i]], FACTORS[NAMES[j]])
            if _allowed({NAMES[i]: a, NAMES[j]: b})}


def pairwise_cover(seed: int = 0, tries: int = 12) -> list[tuple]:
    """Option rows in which every allowed pair of values of two options meets at least once (greedy,
    AETG-style: a row starts from an uncovered pair and takes, option by option, the value covering the
    most uncovered pairs; the best of a few such rows is kept; deterministic)."""
    rng = np.random.default_rng(seed)
    todo, rows = _all_pairs(), []
    while todo:
        ordered, best, gain = sorted(todo, key=repr), None, -1
        for _ in range(tries):
            (i, a), (j, b) = ordered[int(rng.integers(len(ordered)))]
            row = {i: a, j: b}
            for k in map(int, rng.permutation(len(NAMES))):
                if k in row:
                    continue

                def gained(v, k=k, row=row, todo=todo):
                    if not _allowed({NAMES[n]: w for n, w in {**row, k: v}.items()}):
                        return -1
                    return sum(_pair(k, v, n, w) in todo for n, w in row.items())

                row[k] = max(FACTORS[NAMES[k]], key=gained)
            t = tuple(row[k] for k in range(len(NAMES)))
            if len(_pairs(t) & todo) > gain:
                best, gain = t, len(_pairs(t) & todo)
        rows.append(best)
        todo -= _pairs(best)
    return rows


FAST = pairwise_cover()


def _config_id(row) -> str:
    return "-".join(str(v) for v in row)


def _configs():
    fast = set(FAST)
    for row in FAST:
        yield pytest.param(*row, id=_config_id(row))
    # slow: every cell x layout x pooling x depth, the other options turning over with the index
    rest = [FACTORS[n] for n in NAMES[4:]]
    for k, (cell, layout, layers, pooling) in enumerate(itertools.product(*(FACTORS[n] for n in NAMES[:4]))):
        others = tuple(levels[(k // (1 + i)) % len(levels)] for i, levels in enumerate(rest))
        row = (cell, layout, layers, pooling, *others)
        if pooling == "last":
            row = row[:6] + ("none",) + row[7:]
        if row not in fast:
            yield pytest.param(*row, id=_config_id(row), marks=pytest.mark.slow)


def _spec(cell, layout, layers, pooling, norm, front, self_attention, regularizer) -> M.ModelSpec:
    name, nonlin = CELLS[cell]
    return M.ModelSpec(
        cell=name, nonlinearity=nonlin, input_size=3, hidden_size=4, output_size=2, num_layers=layers,
        bidirectional=layout != "uni", merge_mode="concat" if layout == "uni" else layout, pooling=pooling,
        layer_norm=norm == "layer_norm", batch_norm=norm == "batch_norm",
        vocab_size=7 if "embedding" in front else None, conv_channels=3 if "conv" in front else 0,
        conv_kernel=2, conv_dilation=2, self_attention_heads=0 if self_attention == "none" else 2,
        self_attention_causal=self_attention == "causal", zoneout=0.3 if regularizer == "zoneout" else 0.0,
        recurrent_dropout=0.4 if regularizer == "recurrent_dropout" else 0.0, dropout=0.2, input_dropout=0.1,
        output_dropout=0.1)


def _weights(spec, seed=0):
    """Random parameters away from the init's special values (unit gains, zero biases) and non-trivial
    BatchNorm running statistics."""
    rng = np.random.default_rng(seed)
    params = {k: (v + 0.2 * rng.standard_normal(v.shape)).astype(np.float32)
              for k, v in M.init_params(spec, rng).items()}
    state = {k: (rng.uniform(0.5, 2.0, v.shape) if k.endswith("running_var") else 0.3 * rng.standard_normal(v.shape))
             .astype(np.float32) for k, v in M.init_state(spec).items()}
    return params, state


def _inputs(spec, rng, masks):
    B, T = masks.shape
    if spec.vocab_size is not None:
        return rng.integers(0, spec.vocab_size, (B, T))
    return rng.standard_normal((B, T, spec.input_size)).astype(np.float32)


# shape 1: a full row, a pre-padded row (the IMDB data.padding=pre layout) and an empty row;
# shape 2 (another batch size and length on the same session): a post-padded row and a full one
MASKS = (np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]], np.float32),
         np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.float32))


def _close(y, ref):
    assert y.shape == ref.shape and y.dtype == np.float32
    scale = float(np.abs(ref).max())
    assert scale > 1e-3  # a test that can fail: the outputs are not all zero
    assert float(np.abs(y - ref).max()) <= REL * scale


@pytest.mark.parametrize(NAMES, list(_configs()))
def test_export_matches_the_engine(cell, layout, layers, pooling, norm, front, self_attention, regularizer):
    spec = _spec(cell, layout, layers, pooling, norm, front, self_attention, regularizer)
    params, state = _weights(spec)
    model = O.build_model(spec, params, state)
    onnx.checker.check_model(model, full_check=True)
    ops = O.op_counts(model)
    fused = CELLS[cell][0] in ("rnn", "lstm", "gru") and regularizer != "zoneout"
    assert (ops["Scan"] == 0) == fused and ops["Scan"] in (0, layers * spec.directions)
    sess = O.session(model)
    rng = np.random.default_rng(1)
    for masks in MASKS:  # two (batch, seq) shapes on one session: dynamic axes
        x = _inputs(spec, rng, masks)
        y = O.run_sequence(sess, x, masks)
        ref = M.forward(spec, params, x, masks, train=False, state=state)[0]
        _close(y, ref)
        if spec.per_step:
            assert np.all(y[masks == 0] == 0)  # padded steps exactly 0, as the engine


def test_the_fast_matrix_covers_every_pair_of_options():
    covered = set().union(*(_pairs(r) for r in FAST))
    assert covered == _all_pairs()
    assert all(_allowed(dict(zip(NAMES, r, strict=True))) for r in FAST)
    assert len(FAST) <= 40  # the product has 24300 rows
    built_in = {n for n in cells.names() if cells.get(n).module.__name__ == f"rnnlab.engine.cells.{n}"}
    assert built_in == {name for name, _ in CELLS.values()}  # every built-in cell is in the matrix


def test_model_metadata_and_io():
    spec = _spec("lstm", "concat", 1, "none", "none", "embedding", "none", "none")
    params, state = _weights(spec)
    model = O.build_model(spec, params, state, {"rnnlab.task": "tagging"})
    assert (model.opset_import[0].version, model.ir_version, model.producer_name) == (17, 8, "rnnlab")
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["rnnlab.spec"]) == spec.to_dict()
    assert props["rnnlab.task"] == "tagging" and "pre" in props["rnnlab.padding"]
    assert [i.name for i in model.graph.input] == ["tokens", "mask"]
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert dims == [["batch", "seq", 2]]


# ----------------------------------------------------------------------------------------
# the gate-order facts (notes/issue16_onnx.md sections 1-3)
# ----------------------------------------------------------------------------------------


def _error(spec, params, model=None):
    model = model or O.build_model(spec, params)
    x = np.random.default_rng(2).standard_normal((2, 5, spec.input_size)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float32)
    y = O.run_sequence(O.session(model), x, mask)
    ref = M.forward(spec, params, x, mask)[0]
    return float(np.abs(y - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gate_permutation_is_needed(cell, monkeypatch):
    """PyTorch's LSTM gates i,f,g,o are ONNX's i,o,f,c ([0, 3, 1, 2]); GRU r,z,n are ONNX's z,r,h ([1, 0, 2])."""
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=2, bidirectional=True, pooling="mean")
    params, _ = _weights(spec)
    assert _error(spec, params) <= REL
    module = cells.get(cell).module
    monkeypatch.setattr(module, "ONNX_GATE_ORDER", tuple(range(len(module.ONNX_GATE_ORDER))))
    assert _error(spec, params) > 1e-2


def test_gru_needs_linear_before_reset():
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2, pooling="mean")
    params, _ = _weights(spec)
    model = O.build_model(spec, params)
    (node,) = [n for n in model.graph.node if n.op_type == "GRU"]
    (attr,) = [a for a in node.attribute if a.name == "linear_before_reset"]
    assert attr.i == 1 and _error(spec, params, model) <= REL
    attr.i = 0  # the other GRU variant (the ONNX default): valid, and silently different
    onnx.checker.check_model(model, full_check=True)
    assert _error(spec, params, model) > 1e-2


def test_rnn_activations_are_spelled_per_direction():
    spec = M.ModelSpec(cell="rnn", nonlinearity="relu", input_size=3, hidden_size=4, output_size=2,
                       bidirectional=True)
    model = O.build_model(spec, _weights(spec)[0])
    (node,) = [n for n in model.graph.node if n.op_type == "RNN"]
    attrs = {a.name: a for a in node.attribute}
    assert list(attrs["activations"].strings) == [b"Relu", b"Relu"]  # onnxruntime refuses "relu"
    assert attrs["direction"].s == b"bidirectional"


# ----------------------------------------------------------------------------------------
# seq2seq: encoder and one-step decoder graphs, decoding in Python
# ----------------------------------------------------------------------------------------

S2S_CELLS = ("lstm", "gru", "rnn", "indrnn", "ln_lstm")
ATTENTIONS = (None, "luong", "bahdanau")


def _s2s_params():
    for (ci, cell), (ai, att), tokens in itertools.product(enumerate(S2S_CELLS), enumerate(ATTENTIONS), (True, False)):
        fast = ai == ci % 3 and tokens == (ci % 2 == 0)  # every cell, attention and side once
        yield pytest.param(cell, att, tokens, id=f"{cell}-{att}-{'tokens' if tokens else 'values'}",
                           marks=() if fast else pytest.mark.slow)


SRC_MASK = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]], np.float32)  # post, pre, empty


@pytest.mark.parametrize("cell, attention, tokens", list(_s2s_params()))
def test_seq2seq_decodes_as_the_engine(cell, attention, tokens):
    io = dict(src_vocab=7, tgt_vocab=6, pad_id=0) if tokens else dict(src_dim=2, tgt_dim=2)
    spec = Q.Seq2SeqSpec(cell=cell, hidden_size=4, embed_dim=3, attention=attention, **io)
    rng = np.random.default_rng(3)
    params = {k: (v * (4.0 if k.startswith("attn.") else 1.0) + 0.1 * rng.standard_normal(v.shape)).astype(np.float32)
              for k, v in Q.init_params(spec, rng).items()}
    enc, dec = O.build_seq2seq(spec, params)
    for m in (enc, dec):
        onnx.checker.check_model(m, full_check=True)
    es, ds = O.session(enc), O.session(dec)
    src = rng.integers(1, 7, (3, 5)) if tokens else rng.standard_normal((3, 5, 2)).astype(np.float32)
    tgt_in = rng.integers(0, 6, (3, 4)) if tokens else rng.standard_normal((3, 4, 2)).astype(np.float32)

    # per-step outputs and attention under teacher forcing
    ref, cache = Q.forward(spec, params, src, SRC_MASK, tgt_in)
    steps = O.OnnxSteps(es, ds)
    encoded = steps.encode(src, SRC_MASK)
    state = encoded["state"]
    for t in range(tgt_in.shape[1]):
        out, state, w = steps.step(encoded, state, tgt_in[:, t])
        _close(out, ref[:, t].astype(np.float32))
        if attention:
            np.testing.assert_allclose(w, cache["attention"][:, t], atol=1e-5)
            assert np.all(w[SRC_MASK == 0] == 0)
        else:
            assert w is None

    if tokens:
        a = Q.greedy_decode(spec, params, src, SRC_MASK, 6, bos_id=1, eos_id=2)
        b = O.greedy_decode_onnx(es, ds, src, SRC_MASK, 6, bos=1, eos=2)
        np.testing.assert_array_equal(b.tokens, a.tokens)
        np.testing.assert_array_equal(b.lengths, a.lengths)
        np.testing.assert_allclose(b.log_prob, a.log_prob, atol=1e-4)
        a = Q.beam_search(spec, params, src, SRC_MASK, 3, 6, bos_id=1, eos_id=2)
        b = O.beam_search_onnx(es, ds, src, SRC_MASK, 3, 6, bos=1, eos=2)
        np.testing.assert_array_equal(b.tokens, a.tokens)
    else:
        a = Q.generate(spec, params, src, 4, 0.5, SRC_MASK)
        b = O.generate_onnx(es, ds, src, 4, 0.5, SRC_MASK)
        _close(b.outputs, a.outputs.astype(np.float32))


# ----------------------------------------------------------------------------------------
# INT8, write(), refusals
# ----------------------------------------------------------------------------------------

INT8_BOUND = 0.1  # max |int8 - float| / max |float| measured on these models over 5 seeds: 0.0007 - 0.034


@pytest.mark.parametrize("cell, quantized, kept", [("lstm", "com.microsoft::DynamicQuantizeLSTM", None),
                                                   ("gru", None, "GRU")])
def test_int8_quantizes_lstm_and_leaves_gru_float(cell, quantized, kept, tmp_path):
    spec = M.ModelSpec(cell=cell, input_size=3, hidden_size=4, output_size=2, bidirectional=True, pooling="mean")
    params, _ = _weights(spec)
    onnx.save(O.build_model(spec, params), tmp_path / "m.onnx")
    note, facts = O.quantize_int8(tmp_path / "m.onnx", tmp_path / "m.int8.onnx")
    after = O.op_counts(onnx.load(str(tmp_path / "m.int8.onnx")))
    if quantized:
        assert after[quantized] == 1 and after["LSTM"] == 0 and "DynamicQuantizeLSTM" in note
    else:
        assert after[kept] == 1 and facts["left_float"] == {kept: 1} and f"left float: {kept} x1" in note
    assert facts["quantized"]["MatMul"] == 1  # the head
    x = np.random.default_rng(4).standard_normal((3, 5, 3)).astype(np.float32)
    y8 = O.run_sequence(O.session(tmp_path / "m.int8.onnx"), x, MASKS[0])
    y = O.run_sequence(O.session(tmp_path / "m.onnx"), x, MASKS[0])
    assert 0 < np.abs(y8 - y).max() <= INT8_BOUND * np.abs(y).max()


def test_write_a_run(tmp_path):
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=2, batch_norm=True, pooling="max")
    params, state = _weights(spec)
    run = types.SimpleNamespace(spec=spec, params=params, state=state, info={"task": "classification", "epoch": 3})
    written = O.write(run, tmp_path, ExportOptions(quantize="int8"))
    assert written.files == ["model.onnx", "model.int8.onnx"]
    assert written.facts["opset"] == 17 and written.facts["graphs"]["model.onnx"]["inputs"]["x"] == ["batch", "seq", 3]
    assert len(written.notes) == 1 and "DynamicQuantizeLSTM" in written.notes[0]
    sess = O.session(tmp_path / "model.onnx")
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["rnnlab.run"]) == run.info and json.loads(meta["rnnlab.spec"]) == spec.to_dict()
    x = np.random.default_rng(5).standard_normal((3, 5, 3)).astype(np.float32)
    _close(O.run_sequence(sess, x, MASKS[0]), M.forward(spec, params, x, MASKS[0], state=state)[0])


def test_write_a_seq2seq_run(tmp_path):
    spec = Q.Seq2SeqSpec(cell="lstm", hidden_size=4, src_vocab=7, tgt_vocab=6, embed_dim=3, attention="luong")
    params = Q.init_params(spec, np.random.default_rng(6))
    run = types.SimpleNamespace(spec=spec, params=params, state={}, info={})
    written = O.write(run, tmp_path, ExportOptions(quantize="int8"))
    assert written.files == ["encoder.onnx", "encoder.int8.onnx", "decoder.onnx", "decoder.int8.onnx"]
    assert written.facts["graphs"]["decoder.onnx"]["outputs"] == {
        "out": ["batch", 6], "next_h": ["batch", 4], "next_c": ["batch", 4], "attention": ["batch", "src_seq"]}
    src = np.random.default_rng(7).integers(1, 7, (3, 5))
    ref = Q.greedy_decode(spec, params, src, SRC_MASK, 5, bos_id=1, eos_id=2)
    got = O.greedy_decode_onnx(O.session(tmp_path / "encoder.onnx"), O.session(tmp_path / "decoder.onnx"),
                               src, SRC_MASK, 5, bos=1, eos=2)
    np.testing.assert_array_equal(got.tokens, ref.tokens)
    int8 = O.greedy_decode_onnx(O.session(tmp_path / "encoder.int8.onnx"), O.session(tmp_path / "decoder.int8.onnx"),
                                src, SRC_MASK, 5, bos=1, eos=2)
    assert int8.tokens.shape == ref.tokens.shape


@pytest.mark.parametrize("options, match", [(ExportOptions(opset=18), "opset 18 is not supported"),
                                            (ExportOptions(quantize="int4"), "quantize must be one of int8")])
def test_write_refuses_options_it_cannot_honour(options, match, tmp_path):
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2)
    run = types.SimpleNamespace(spec=spec, params=_weights(spec)[0], state={}, info={})
    with pytest.raises(ExportError, match=match):
        O.write(run, tmp_path, options)


USER_CELL = '''
import numpy as np

NAME = "user_rnn"
NUM_STATES = 1
PARAM_NAMES = ("W", "b")


def sizes(params):
    return params["W"].shape[1], params["W"].shape[0]


def init_params(rng, input_size, hidden_size, dtype=np.float32):
    return {"W": rng.standard_normal((hidden_size, input_size)).astype(dtype), "b": np.zeros(hidden_size, dtype)}


def step_forward(params, x_t, state, rec_mask=None):
    h = np.tanh(x_t @ params["W"].T + params["b"] + state[0])
    return (h,), {"h": h}


def step_backward(dstate, cache):
    raise NotImplementedError


def step_activations(cache):
    return {"h": ("tanh", cache["h"])}
'''


def test_a_cell_without_lowering_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "onnx_user_cells.py").write_text(USER_CELL)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = M.ModelSpec(cell="onnx_user_cells", input_size=3, hidden_size=4, output_size=2)
    with pytest.raises(ExportError) as info:
        O.build_model(spec, M.init_params(spec, np.random.default_rng(0)))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("ONNX export: cell 'user_rnn' (onnx_user_cells) has no graph lowering")
    s2s = Q.Seq2SeqSpec(cell="onnx_user_cells", hidden_size=4)
    with pytest.raises(ExportError, match="cell 'user_rnn'"):
        O.build_seq2seq(s2s, Q.init_params(s2s, np.random.default_rng(0)))


def test_a_block_without_lowering_names_itself():
    class Shift(blocks.Block):
        name = "shift"

    with pytest.raises(lowering.Unsupported, match=r"block shift \(Shift\) has no graph lowering"):
        Shift().lower(None, blocks.Flow("x"))


def test_masks_with_holes_are_refused_in_one_line():
    """The graph takes pre- or post-padding; a hole inside a row (or a run in the middle) would give wrong
    numbers without an error, so run_sequence refuses it, naming the row."""
    for m in MASKS:
        O.check_padding(m)  # full, pre-padded, empty and post-padded rows pass
    spec = _spec("gru", "uni", 1, "last", "none", "none", "none", "none")
    params, state = _weights(spec)
    sess = O.session(O.build_model(spec, params, state))
    x = np.random.default_rng(0).standard_normal((3, 5, spec.input_size)).astype(np.float32)
    for bad, row in (([[1, 1, 1, 1, 1], [1, 0, 1, 1, 1], [1, 1, 0, 0, 0]], 1),
                     ([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], 2)):
        with pytest.raises(ExportError) as exc:
            O.run_sequence(sess, x, np.array(bad, np.float32))
        assert str(exc.value) == (f"mask row {row}: its real steps are not one run at the start or the end of the "
                                  "row; the ONNX graph takes pre- or post-padding only (use --backend engine)")
