"""--format torch and torch-export: model.safetensors (written without torch) with model_def.py's RnnlabModel,
and torch.export's model.pt2, against the engine's forward.

The safetensors file is checked with safetensors.numpy alone. With torch installed, every pairwise
configuration (``pairwise_models``; the full product in the slow suite) loads with strict=True and matches
the engine to 1e-5 (float32) on unmasked and padded batches (post-, pre-padded, holes, empty rows); the
full product (slow suite) in float64 to 1e-9.
torch.export takes seconds per recurrent direction, so the exported programs are slow-suite tests.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys

import numpy as np
import pytest

from rnnlab.engine import cells
from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.export import torch_export_format, torch_format, torch_snippets
from rnnlab.export.base import ExportError
from tests.export import pairwise_models as PM


def load_model_def(folder):
    spec = importlib.util.spec_from_file_location(f"model_def_{folder.name}", folder / "model_def.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def float32_model(spec, seed=0):
    return PM.model_of(spec, seed, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# without torch: the safetensors file
# ---------------------------------------------------------------------------------------------


def test_safetensors_round_trip_without_torch(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    spec = M.ModelSpec(cell="lstm", input_size=3, hidden_size=4, output_size=2, num_layers=2, bidirectional=True,
                       batch_norm=True, pooling="attention", conv_channels=2, vocab_size=7)
    params, state = float32_model(spec)
    params["head.weight"] = np.asfortranarray(params["head.weight"])  # safetensors 0.8 stores raw memory
    written = torch_format.write_model(spec, params, state, tmp_path)
    assert sorted(written.files) == sorted(p.name for p in tmp_path.iterdir())
    loaded = load_file(str(tmp_path / "model.safetensors"))
    renamed = {"rnn.1.weight_hh_l0_reverse": "rnn.weight_hh_l1_reverse", "rnn.0.bias_ih_l0": "rnn.bias_ih_l0",
               "bn1.weight": "bn1.gamma", "bn0.bias": "bn0.beta", "bn1.running_var": "bn1.running_var",
               "embedding.weight": "embedding.weight", "head.weight": "head.weight", "attn.v": "attn.v",
               "conv.weight": "conv.weight"}
    for ours_there, ours in renamed.items():
        np.testing.assert_array_equal(loaded[ours_there], {**params, **state}[ours])
    assert loaded["bn0.num_batches_tracked"].dtype == np.int64
    assert len(loaded) == len(params) + len(state) + 2  # and the two BatchNorm counters
    with safe_open(str(tmp_path / "model.safetensors"), framework="np") as f:
        arch = json.loads(f.metadata()["architecture"])
    assert arch["spec"] == json.loads(json.dumps(spec.to_dict()))
    assert [b["kind"] for b in arch["blocks"]] == ["embedding", "conv", "recurrent", "batch_norm", "recurrent",
                                                    "batch_norm", "pool_attention", "head"]
    tree = ast.parse((tmp_path / "model_def.py").read_text())
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports == {"json", "pathlib", "torch", "safetensors"}


def test_seq2seq_is_refused(tmp_path):
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=4, src_vocab=5, tgt_vocab=5)
    params = Q.init_params(spec, np.random.default_rng(0))
    for fmt in (torch_format, torch_export_format):
        with pytest.raises(ExportError, match=f"^--format {fmt.NAME}: seq2seq models are not supported"):
            fmt.write_model(spec, params, {}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_torch_export_without_torch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2)
    with pytest.raises(ExportError) as exc:
        torch_export_format.write_model(spec, *float32_model(spec), tmp_path)
    assert str(exc.value) == "--format torch-export: torch is not installed (pip install torch)"


def test_a_cell_without_torch_source_is_refused(tmp_path, monkeypatch):
    monkeypatch.delitem(cells.get("indrnn").standalone, "torch")
    spec = M.ModelSpec(cell="indrnn", input_size=3, hidden_size=4, output_size=2)
    with pytest.raises(ExportError) as exc:
        torch_format.write_model(spec, *float32_model(spec), tmp_path)
    assert str(exc.value) == "--format torch: cell indrnn has no torch source (STANDALONE['torch'] in its module)"


# ---------------------------------------------------------------------------------------------
# with torch: the module against the engine
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # needs torch (the bench extra; not in CI): its import alone is ~3 s
@pytest.mark.parametrize("name, options", PM.cell_variants(), ids=PM.variant_id)
def test_every_cells_torch_source(name, options):
    """cell_step equals step_forward; cell_module holds <param>_l0 and <param>_l0_reverse of the engine's shapes."""
    torch = pytest.importorskip("torch")
    cell, opts, p, x, state = PM.cell_inputs(name, options)
    space: dict = {}
    exec(torch_snippets.PRELUDE + cell.standalone["torch"], space)
    ref, _ = cell.step_forward(p, x, state, None, **opts)
    got = space["cell_step"]({k: torch.from_numpy(v) for k, v in p.items()}, torch.from_numpy(x),
                             tuple(torch.from_numpy(s) for s in state), **opts)
    assert len(got) == cell.num_states
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-12, atol=1e-14)
    module = space["cell_module"](PM.D, PM.H, True, **opts)
    shapes = {n: tuple(t.shape) for n, t in module.named_parameters()}
    assert shapes == {k + sfx: v.shape for sfx in ("_l0", "_l0_reverse") for k, v in p.items()}
    assert isinstance(space["CELL_NATIVE"], bool)


def torch_inputs(torch, x, mask):
    return torch.from_numpy(x), None if mask is None else torch.from_numpy(mask)


def check_case(case, tmp_path, dtype=np.float32, tol=1e-5):
    torch = pytest.importorskip("torch")
    spec = PM.spec_of(case)
    params, state = PM.model_of(spec, dtype=dtype)
    torch_format.write_model(spec, params, state, tmp_path)
    model = load_model_def(tmp_path).load(tmp_path)  # load_state_dict(strict=True)
    assert not model.training
    x = PM.inputs_of(spec, dtype=dtype)
    for name, mask in PM.MASKS.items():
        ref = M.forward(spec, params, x, mask, state=state)[0]
        with torch.no_grad():
            got = model(*torch_inputs(torch, x, mask)).numpy()
        assert got.shape == ref.shape and got.dtype == ref.dtype, name
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, err_msg=name)


@pytest.mark.slow  # needs torch (the bench extra; not in CI): its import alone is ~3 s
@pytest.mark.parametrize("case", PM.pairwise(), ids=PM.case_id)
def test_module_equals_the_engine(case, tmp_path):
    check_case(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", PM.product(), ids=PM.case_id)
def test_module_equals_the_engine_full_product(case, tmp_path):
    """In float64: a deep float32 model (LayerNorm after a product of two directions) rounds to 1.4e-5 in
    places, against 4.5e-6 between the engine's own float32 and float64; float64 agrees to 1e-14."""
    check_case(case, tmp_path, np.float64, 1e-9)


@pytest.mark.slow  # needs torch (the bench extra; not in CI): its import alone is ~3 s
def test_modules_are_torch_nn_where_torch_has_them(tmp_path):
    torch = pytest.importorskip("torch")
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2, num_layers=2, bidirectional=True,
                       layer_norm=True, conv_channels=2, vocab_size=7, pooling="mean")
    torch_format.write_model(spec, *float32_model(spec), tmp_path)
    model = load_model_def(tmp_path).load(tmp_path)
    nn = torch.nn
    assert [type(m) for m in model.rnn] == [nn.GRU, nn.GRU] and all(m.batch_first for m in model.rnn)
    assert (type(model.embedding), type(model.conv), type(model.norm1), type(model.head)) == (
        nn.Embedding, nn.Conv1d, nn.LayerNorm, nn.Linear)


@pytest.mark.slow  # needs torch (the bench extra; not in CI): its import alone is ~3 s
def test_float64_models_stay_float64(tmp_path):
    torch = pytest.importorskip("torch")
    spec = M.ModelSpec(cell="rnn", input_size=3, hidden_size=4, output_size=2, bidirectional=True, pooling="none")
    params, state = PM.model_of(spec)
    torch_format.write_model(spec, params, state, tmp_path)
    model = load_model_def(tmp_path).load(tmp_path)
    x, mask = PM.inputs_of(spec), PM.MASKS["post_pre_full"]
    with torch.no_grad():
        got = model(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, M.forward(spec, params, x, mask, state=state)[0], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# torch.export: model.pt2 with dynamic batch and steps
# ---------------------------------------------------------------------------------------------

EXPORTED = {  # every cell, bidirectional, zoneout, attention, norms, an embedding
    "rnn-mean": {"cell": "rnn", "pooling": "mean"},
    "lstm-bi-last": {"cell": "lstm", "bidirectional": True},
    "gru-zoneout-attention": {"cell": "gru", "zoneout": 0.2, "pooling": "attention", "layer_norm": True},
    "indrnn-conv-mhsa-none": {"cell": "indrnn", "conv_channels": 2, "self_attention_heads": 2,
                              "self_attention_causal": True, "pooling": "none", "batch_norm": True},
    "ln_lstm-bi-mul-max": {"cell": "ln_lstm", "bidirectional": True, "merge_mode": "mul", "pooling": "max"},
    "rnn-relu-embedding-2layers": {"cell": "rnn", "nonlinearity": "relu", "vocab_size": 7, "num_layers": 2},
}


@pytest.mark.slow  # 3-10 s an export (torch.export compiles every recurrent direction's scan)
@pytest.mark.parametrize("kw", list(EXPORTED.values()), ids=list(EXPORTED))
def test_torch_export_loads_back_with_dynamic_shapes(kw, tmp_path):
    torch = pytest.importorskip("torch")
    spec = M.ModelSpec(input_size=3, hidden_size=4, output_size=2, **kw)
    params, state = float32_model(spec)
    written = torch_export_format.write_model(spec, params, state, tmp_path)
    assert written.files == ["model.pt2"] and written.facts["dynamic"] == ["batch", "steps"]
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    for B, T in ((3, 5), (1, 4)):  # neither is the traced (2, 3)
        x = PM.inputs_of(spec, B=B, T=T, dtype=np.float32)
        mask = np.ones((B, T), dtype=np.float32)
        mask[0, -2:] = 0
        if B > 1:
            mask[1, :2] = 0
        ref = M.forward(spec, params, x, mask, state=state)[0]
        got = program(torch.from_numpy(x), torch.from_numpy(mask)).detach().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=f"{B}x{T}")
