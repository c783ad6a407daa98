"""--format keras: keras_model.py (Keras 3 layers, the torch backend here) against the engine's forward, and
its one-line refusals.

Keras is not a dependency of rnnlab: the parity tests importorskip it, and as importing it costs about
3 s they are slow-suite tests. The refusals and the generated file need no Keras.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys

import numpy as np
import pytest

from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.export import keras_format
from rnnlab.export.base import ExportError
from tests.conftest import absl_off_pytest_streams
from tests.export import pairwise_models as PM

# the factors Keras layers express: torch.nn's cells, no Conv1D, no attention, no zoneout
KERAS_FACTORS = {**PM.FACTORS, "cell": ["rnn_tanh", "rnn_relu", "lstm", "gru"], "conv": ["none"],
                 "attention": ["none"], "pooling": ["last", "mean", "max", "none"], "zoneout": ["0"]}


def keras_or_skip():
    if "keras" not in sys.modules:  # the backend is chosen at import
        os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    absl_off_pytest_streams()
    assert keras.backend.backend() == "torch"
    return keras


def load_keras_model(folder):
    spec = importlib.util.spec_from_file_location(f"keras_model_{folder.name}", folder / "keras_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("case", PM.pairwise(KERAS_FACTORS), ids=PM.case_id)
def test_keras_model_equals_the_engine(case, tmp_path):
    keras_or_skip()
    spec = PM.spec_of(case)
    params, state = PM.model_of(spec, dtype=np.float32)
    keras_format.write_model(spec, params, state, tmp_path)
    mod = load_keras_model(tmp_path)
    model = mod.load(tmp_path)
    x = PM.inputs_of(spec, dtype=np.float32)
    for name, mask in PM.MASKS.items():
        ref = M.forward(spec, params, x, mask, state=state)[0]
        got = mod.predict(model, x, mask)
        assert got.shape == ref.shape, name
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_file_uses_keras_layers_only(tmp_path):
    spec = M.ModelSpec(cell="gru", input_size=3, hidden_size=4, output_size=2, bidirectional=True, vocab_size=7,
                       layer_norm=True, pooling="max")
    written = keras_format.write_model(spec, *PM.model_of(spec), tmp_path)
    assert sorted(written.files) == sorted(p.name for p in tmp_path.iterdir())
    text = (tmp_path / "keras_model.py").read_text()
    tree = ast.parse(text)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports == {"json", "pathlib", "keras", "numpy"}
    assert "keras.layers.GRU(hidden_size, reset_after=True" in text and "keras.layers.LSTM" not in text


@pytest.mark.parametrize("kw, message", [
    ({"cell": "indrnn"}, "--format keras: cell indrnn has no keras source (STANDALONE['keras'] in its module)"),
    ({"cell": "lstm", "conv_channels": 2},
     "--format keras: block conv (block 1) has no Keras layer here; use --format numpy or torch"),
    ({"cell": "gru", "pooling": "attention"},
     "--format keras: block pool_attention (block 2) has no Keras layer here; use --format numpy or torch"),
    ({"cell": "gru", "pooling": "mean", "self_attention_heads": 2},
     "--format keras: block self_attention (block 2) has no Keras layer here; use --format numpy or torch"),
    ({"cell": "lstm", "num_layers": 2, "zoneout": 0.1},
     "--format keras: zoneout (recurrent layer 0) has no Keras layer; use --format numpy or torch"),
], ids=["indrnn", "conv", "attention_pooling", "self_attention", "zoneout"])
def test_what_keras_layers_cannot_express_is_refused(kw, message, tmp_path):
    spec = M.ModelSpec(input_size=3, hidden_size=4, output_size=2, **kw)
    with pytest.raises(ExportError) as exc:
        keras_format.write_model(spec, *PM.model_of(spec), tmp_path)
    assert str(exc.value) == message
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_seq2seq_is_refused(tmp_path):
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=4, src_vocab=5, tgt_vocab=5)
    with pytest.raises(ExportError, match="^--format keras: seq2seq models are not supported; use --format numpy$"):
        keras_format.write_model(spec, Q.init_params(spec, np.random.default_rng(0)), {}, tmp_path)
