"""--format numpy: the generated predict.py (NumPy only) equals the engine's forward, greedy decoding and
generation.

Parameters are float64 and outputs must match the engine to 1e-6 (they agree to rounding, about 1e-15);
one float32 model checks the dtype is kept (rtol 1e-5). Configurations: every pair of factor values
(``pairwise_models``; the full product of the structural factors in the slow suite), each on unmasked,
post-/pre-padded and hole/middle/empty-masked batches.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from rnnlab.engine import blocks as B
from rnnlab.engine import cells
from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.export import architecture, numpy_format, numpy_snippets
from rnnlab.export.base import ExportError
from tests.export import pairwise_models as PM

STDLIB = {"json", "math", "sys", "pathlib"}


def load_script(folder):
    """predict.py of an export folder, imported from its file under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"predict_{folder.name}", folder / "predict.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return {n.split(".")[0] for n in names}


def export(spec, params, state, folder, **kw):
    written = numpy_format.write_model(spec, params, state, folder, **kw)
    assert sorted(written.files) == sorted(p.name for p in folder.iterdir() if p.suffix != ".pyc" and p.is_file())
    assert imported_modules(folder / "predict.py") <= STDLIB | {"numpy"}
    return load_script(folder)


@pytest.mark.parametrize("name, options", PM.cell_variants(), ids=PM.variant_id)
def test_every_cells_numpy_step_equals_its_step_forward(name, options):
    cell, opts, p, x, state = PM.cell_inputs(name, options)
    space: dict = {}
    exec(numpy_snippets.PRELUDE + cell.standalone["numpy"], space)
    ref, _ = cell.step_forward(p, x, state, None, **opts)
    got = space["cell_step"](p, x, state, **opts)
    assert len(got) == cell.num_states
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def check_case(case, tmp_path):
    spec = PM.spec_of(case)
    params, state = PM.model_of(spec)
    mod = export(spec, params, state, tmp_path)
    model = mod.load(tmp_path)
    x = PM.inputs_of(spec)
    for name, mask in PM.MASKS.items():
        ref = M.forward(spec, params, x, mask, state=state)[0]
        got = mod.predict(model, x, mask)
        assert got.shape == ref.shape and got.dtype == ref.dtype, name
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("case", PM.pairwise(), ids=PM.case_id)
def test_predict_equals_the_engine(case, tmp_path):
    check_case(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", PM.product(), ids=PM.case_id)
def test_predict_equals_the_engine_full_product(case, tmp_path):
    check_case(case, tmp_path)


def test_the_script_holds_only_the_blocks_and_cell_used(tmp_path):
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2, pooling="mean")
    params, state = PM.model_of(spec)
    export(spec, params, state, tmp_path)
    text = (tmp_path / "predict.py").read_text()
    defined = {n.name for n in ast.parse(text).body if isinstance(n, ast.FunctionDef)}
    assert {f for f in defined if f.startswith("block_")} == {"block_input", "block_recurrent", "block_pool_mean",
                                                             "block_head"}
    assert "cell_step" in defined and "GRU step" in text and "LSTM step" not in text
    arch = json.loads((tmp_path / "architecture.json").read_text())
    assert [b["kind"] for b in arch["blocks"]] == ["input", "recurrent", "pool_mean", "head"]  # dropouts left out
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(params)


def test_float32_is_kept(tmp_path):
    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=2, bidirectional=True, pooling="none",
                       batch_norm=True)
    params, state = PM.model_of(spec, dtype=np.float32)
    mod = export(spec, params, state, tmp_path)
    x, mask = PM.inputs_of(spec, dtype=np.float32), PM.MASKS["post_pre_full"]
    ref = M.forward(spec, params, x, mask, state=state)[0]
    got = mod.predict(mod.load(tmp_path), x, mask)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_main_runs_without_rnnlab(tmp_path):
    """python -I predict.py in.npz out.npy|out.csv in a process where importing rnnlab fails."""
    spec = M.ModelSpec(cell="indrnn", input_size=3, hidden_size=4, output_size=2, pooling="none", conv_channels=2)
    params, state = PM.model_of(spec)
    export(spec, params, state, tmp_path / "model")
    x, mask = PM.inputs_of(spec), PM.MASKS["post_pre_full"]
    np.savez(tmp_path / "in.npz", x=x, mask=mask)
    ref = M.forward(spec, params, x, mask, state=state)[0]
    blocked = ("import runpy, sys; sys.modules['rnnlab'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    for out in ("out.npy", "out.csv"):
        proc = subprocess.run([sys.executable, "-I", "-c", blocked, str(tmp_path / "model" / "predict.py"),
                               str(tmp_path / "in.npz"), str(tmp_path / out)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ref, rtol=1e-6, atol=1e-9)
    rows = np.loadtxt(tmp_path / "out.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == "row,step,y0,y1"
    np.testing.assert_allclose(rows[:, 2:], ref.reshape(-1, 2), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(rows[:, :2], [[b, t] for b in range(3) for t in range(5)])


def test_main_usage(tmp_path):
    spec = M.ModelSpec(cell="rnn", input_size=3, hidden_size=4, output_size=2)
    mod = export(spec, *PM.model_of(spec), tmp_path)
    assert mod.main([]) == 2


# ---------------------------------------------------------------------------------------------
# seq2seq: encoder with greedy decoding or generation
# ---------------------------------------------------------------------------------------------

S2S = [  # (cell options, attention, tokens)
    ("lstm", {}, "luong", True), ("gru", {}, "bahdanau", False), ("rnn", {"nonlinearity": "relu"}, None, True),
    ("indrnn", {"nonlinearity": "tanh"}, "bahdanau", True), ("ln_lstm", {}, "luong", False), ("lstm", {}, None, False),
    ("gru", {}, None, True),
]
SRC_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])


@pytest.mark.parametrize("cell, options, attention, tokens", S2S, ids=lambda v: str(v))
def test_seq2seq_decoding_equals_the_engine(cell, options, attention, tokens, tmp_path):
    sides = {"src_vocab": 9, "tgt_vocab": 8, "pad_id": 0} if tokens else {"src_dim": 2, "tgt_dim": 2}
    spec = Q.Seq2SeqSpec(cell=cell, hidden_size=4, embed_dim=3, attention=attention, attn_size=3,
                         cell_options=options, **sides)
    rng = np.random.default_rng(3)
    params = {k: v.astype(np.float64) for k, v in Q.init_params(spec, rng).items()}
    src = rng.integers(3, 9, (3, 5)) if tokens else rng.standard_normal((3, 5, 2))
    if tokens:
        # an EOS the model does emit: the first sequence's third greedy token
        eos = int(Q.greedy_decode(spec, params, src, SRC_MASK, 6, 1, None).tokens[0, 2])
        mod = export(spec, params, {}, tmp_path, decoding={"max_len": 6, "bos_id": 1, "eos_id": eos})
        ref = Q.greedy_decode(spec, params, src, SRC_MASK, 6, 1, eos)
        got = mod.greedy_decode(mod.load(tmp_path), src, SRC_MASK)
        assert ref.lengths[0] <= 3
        np.testing.assert_array_equal(got["tokens"], ref.tokens)
        np.testing.assert_array_equal(got["lengths"], ref.lengths)
        np.testing.assert_allclose(got["log_prob"], ref.log_prob, rtol=1e-9)
        np.testing.assert_array_equal(mod.predict(mod.load(tmp_path), src, SRC_MASK), ref.tokens)
    else:
        mod = export(spec, params, {}, tmp_path, decoding={"steps": 4, "start_value": 0.5})
        ref = Q.generate(spec, params, src, 4, 0.5, SRC_MASK)
        got = mod.generate(mod.load(tmp_path), src, src_mask=SRC_MASK)
        np.testing.assert_allclose(got["outputs"], ref.outputs, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(mod.predict(mod.load(tmp_path), src, SRC_MASK), ref.outputs, rtol=1e-6,
                                   atol=1e-12)
    if attention:
        np.testing.assert_allclose(got["attention"], ref.attention, atol=1e-12)
    else:
        assert got["attention"] is None


def test_seq2seq_decoding_settings_come_from_the_run(tmp_path):
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=4, embed_dim=3, src_vocab=9, tgt_vocab=8)
    params = Q.init_params(spec, np.random.default_rng(0))

    class Run:  # what write reads of a TrainedRun
        info = {"data": {"max_out_len": 7, "bos_id": 1, "eos_id": 2}}

    Run.spec, Run.params, Run.state = spec, params, {}
    numpy_format.write(Run, tmp_path, None)
    assert json.loads((tmp_path / "architecture.json").read_text())["decoding"] == {"max_len": 7, "bos_id": 1,
                                                                                    "eos_id": 2}
    Run.info = {"data": {}}
    with pytest.raises(ExportError, match="^--format numpy: the seq2seq checkpoint's data lacks max_out_len"):
        numpy_format.write(Run, tmp_path / "again", None)


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------


def test_a_cell_without_numpy_source_is_refused(tmp_path, monkeypatch):
    monkeypatch.delitem(cells.get("gru").standalone, "numpy")
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2)
    with pytest.raises(ExportError) as exc:
        numpy_format.write_model(spec, *PM.model_of(spec), tmp_path)
    assert str(exc.value) == "--format numpy: cell gru has no numpy source (STANDALONE['numpy'] in its module)"


def test_a_block_without_description_is_refused(tmp_path, monkeypatch):
    monkeypatch.delitem(architecture.DESCRIBERS, B.PoolMax)
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2, pooling="max")
    with pytest.raises(ExportError, match=r"^--format numpy: block PoolMax \(pool\) has no export description$"):
        numpy_format.write_model(spec, *PM.model_of(spec), tmp_path)
