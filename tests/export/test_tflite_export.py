"""--format savedmodel and tflite: the Keras export's model under TensorFlow, against the engine's forward.

TensorFlow is the optional `tensorflow` extra, not in dev: the parity tests importorskip it and are
slow-suite (each export runs a child Python that imports TensorFlow, about 8 s). They were run in a
separate venv with tensorflow-cpu 2.21 and keras 3.15 (and ai-edge-litert 2.3 for the LiteRT test).
Measured in float32 over CASES: the SavedModel within 6.0e-7 of the engine, the TFLite model within 4.2e-7
(tf.lite.Interpreter and LiteRT alike), on padded batches (post-, pre-padded, holes, empty rows); asserted
to 1e-5. The refusals need no
TensorFlow and are fast.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.export import savedmodel_format, tensorflow_convert, tflite_format
from rnnlab.export.base import ExportError
from tests.conftest import absl_off_pytest_streams
from tests.export import pairwise_models as PM

TF_FORMATS = (savedmodel_format, tflite_format)
TOL = 1e-5


def small(**kw) -> M.ModelSpec:
    return M.ModelSpec(input_size=PM.D, hidden_size=PM.H, output_size=PM.O, **kw)


# ---------------------------------------------------------------------------------------------
# without tensorflow: the one-line refusals
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", TF_FORMATS, ids=lambda f: f.NAME)
def test_without_tensorflow_is_refused(fmt, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow raises ImportError
    spec = small(cell="gru")
    with pytest.raises(ExportError) as exc:
        fmt.write_model(spec, *PM.model_of(spec), tmp_path / "out")
    assert str(exc.value) == f"--format {fmt.NAME}: needs tensorflow: pip install 'rnnlab[tensorflow]'"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", TF_FORMATS, ids=lambda f: f.NAME)
def test_what_keras_layers_cannot_express_is_refused_naming_the_format(fmt, tmp_path):
    spec = small(cell="lstm", conv_channels=2)
    with pytest.raises(ExportError) as exc:
        fmt.write_model(spec, *PM.model_of(spec), tmp_path / "out")
    assert str(exc.value) == f"--format {fmt.NAME}: block conv (block 1) has no Keras layer here; " \
                             "use --format numpy or torch"
    s2s = Q.Seq2SeqSpec(cell="gru", hidden_size=4, src_vocab=5, tgt_vocab=5)
    refusal = f"^--format {fmt.NAME}: seq2seq models are not supported; use --format numpy$"
    with pytest.raises(ExportError, match=refusal):
        fmt.write_model(s2s, Q.init_params(s2s, np.random.default_rng(0)), {}, tmp_path / "out")
    spec = small(cell="indrnn")
    with pytest.raises(ExportError, match=f"^--format {fmt.NAME}: cell indrnn has no keras source"):
        fmt.write_model(spec, *PM.model_of(spec), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failure_in_the_tensorflow_child_is_one_line(tmp_path, monkeypatch):
    """The child's error comes back through result.json (here: a target it does not know, before it imports
    anything of TensorFlow, so the test needs none)."""
    monkeypatch.setattr(tensorflow_convert, "tensorflow_installed", lambda: True)
    spec = small(cell="gru")
    with pytest.raises(ExportError) as exc:
        tensorflow_convert.convert(spec, *PM.model_of(spec), tmp_path, "nonesuch", "tflite")
    assert str(exc.value) == "--format tflite: TensorFlow could not write the nonesuch (KeyError: 'nonesuch')"


# ---------------------------------------------------------------------------------------------
# with tensorflow: the SavedModel and the TFLite flatbuffer against the engine
# ---------------------------------------------------------------------------------------------

CASES = {  # lstm / gru / rnn, one and two directions, pooling last and mean; then the other blocks Keras has
    "lstm-uni-last": {"cell": "lstm"},
    "lstm-bi-mean": {"cell": "lstm", "bidirectional": True, "pooling": "mean"},
    "gru-uni-mean": {"cell": "gru", "pooling": "mean"},
    "gru-bi-last": {"cell": "gru", "bidirectional": True},
    "rnn-uni-last": {"cell": "rnn"},
    "rnn_relu-bi_sum-mean": {"cell": "rnn", "nonlinearity": "relu", "bidirectional": True, "merge_mode": "sum",
                             "pooling": "mean"},
    "lstm-embedding-2layers-layernorm-max": {"cell": "lstm", "vocab_size": PM.V, "num_layers": 2,
                                             "layer_norm": True, "pooling": "max"},
    "gru-bi_mul-batchnorm-none": {"cell": "gru", "bidirectional": True, "merge_mode": "mul", "batch_norm": True,
                                  "pooling": "none"},
}
SHAPES = ((3, 5), (2, 7))  # (batch, steps): both dynamic in the SavedModel, steps in the TFLite model


def masks_of(B: int, T: int) -> dict:
    """PM.MASKS at (3, 5) (post-, pre-padded, holes, an empty row); post-padding and all ones otherwise."""
    if (B, T) == (3, 5):
        return PM.MASKS
    return {"none": None, "post": (np.arange(T)[None] < np.arange(T, T - B, -1)[:, None] - 2).astype(np.float32)}


def feeds(spec, x, mask):
    """(x, mask) as the TensorFlow signatures take them: token ids int32, mask float32 (ones for none)."""
    x = x.astype(np.int32) if spec.vocab_size is not None else x.astype(np.float32)
    return x, np.ones(x.shape[:2], np.float32) if mask is None else mask.astype(np.float32)


@pytest.fixture(scope="module", params=list(CASES.values()), ids=list(CASES))
def exported(request, tmp_path_factory):
    pytest.importorskip("tensorflow")
    absl_off_pytest_streams()
    spec = small(**request.param)
    params, state = PM.model_of(spec, dtype=np.float32)
    folder = tmp_path_factory.mktemp("tf")
    written = {fmt.NAME: fmt.write_model(spec, params, state, folder) for fmt in TF_FORMATS}
    return spec, params, state, folder, written


def engine(spec, params, state, x, mask):
    return M.forward(spec, params, x, mask, state=state)[0]


@pytest.mark.slow
def test_savedmodel_equals_the_engine(exported):
    import tensorflow as tf

    spec, params, state, folder, written = exported
    assert written["savedmodel"].files == ["saved_model"] and written["savedmodel"].facts["dynamic"] == [
        "batch", "steps"]
    loaded = tf.saved_model.load(str(folder / "saved_model"))
    assert set(loaded.signatures) == {"serve", "serving_default"}
    for B, T in SHAPES:
        x = PM.inputs_of(spec, B=B, T=T, dtype=np.float32)
        for name, mask in masks_of(B, T).items():
            ref = engine(spec, params, state, x, mask)
            got = loaded.serve(*feeds(spec, x, mask)).numpy()
            assert got.shape == ref.shape and got.dtype == np.float32, name
            np.testing.assert_allclose(got, ref, rtol=TOL, atol=TOL, err_msg=f"{B}x{T} {name}")


def run_rows(runner, spec, x, mask) -> np.ndarray:
    """The TFLite signature one row at a time (its batch is 1)."""
    xs, ms = feeds(spec, x, mask)
    return np.concatenate([runner(x=xs[b:b + 1], mask=ms[b:b + 1])["output_0"] for b in range(len(xs))])


def check_tflite(interpreter, spec, params, state):
    runner = interpreter.get_signature_runner("serving_default")
    for B, T in SHAPES:
        x = PM.inputs_of(spec, B=B, T=T, dtype=np.float32)
        for name, mask in masks_of(B, T).items():
            ref = engine(spec, params, state, x, mask)
            got = run_rows(runner, spec, x, mask)
            assert got.shape == ref.shape and got.dtype == np.float32, name
            np.testing.assert_allclose(got, ref, rtol=TOL, atol=TOL, err_msg=f"{B}x{T} {name}")


@pytest.mark.slow
def test_tflite_equals_the_engine_in_builtin_ops(exported):
    import tensorflow as tf

    spec, params, state, folder, written = exported
    assert written["tflite"].facts["batch"] == 1 and written["tflite"].notes == []
    content = (folder / "model.tflite").read_bytes()
    no_delegate = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # XNNPACK hides the ops
    plain = tf.lite.Interpreter(model_content=content, experimental_op_resolver_type=no_delegate)
    ops = {op["op_name"] for op in plain._get_ops_details()}
    assert "WHILE" in ops and not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    check_tflite(tf.lite.Interpreter(model_content=content), spec, params, state)


@pytest.mark.slow
def test_litert_runs_the_tflite_model(exported):
    """LiteRT (ai-edge-litert), tf.lite.Interpreter's successor: the runtime a device would use."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    absl_off_pytest_streams()
    spec, params, state, folder, _ = exported
    check_tflite(litert.Interpreter(model_path=str(folder / "model.tflite")), spec, params, state)


@pytest.mark.slow
def test_float64_models(tmp_path):
    """The SavedModel keeps float64; the TFLite model is float32, and the export says so."""
    tf = pytest.importorskip("tensorflow")
    absl_off_pytest_streams()
    spec = small(cell="gru", bidirectional=True, pooling="mean")
    params, state = PM.model_of(spec)
    saved = savedmodel_format.write_model(spec, params, state, tmp_path)
    lite = tflite_format.write_model(spec, params, state, tmp_path)
    assert saved.notes == [] and lite.notes == ["tflite: float64 weights written as float32 (TFLite runs float32)"]
    x, mask = PM.inputs_of(spec), PM.MASKS["post_pre_full"]
    ref = engine(spec, params, state, x, mask)
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))  # kept: its functions need its variables alive
    got = loaded.serve(x, mask.astype(np.float64)).numpy()
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    runner = tf.lite.Interpreter(model_path=str(tmp_path / "model.tflite")).get_signature_runner("serving_default")
    np.testing.assert_allclose(run_rows(runner, spec, x, mask), ref, rtol=TOL, atol=TOL)


@pytest.mark.slow
def test_rnnlab_export_writes_the_tflite_model_and_its_hash(tmp_path):
    pytest.importorskip("tensorflow")
    absl_off_pytest_streams()
    from rnnlab import api
    from rnnlab.commands.export import run as export_cmd
    from tests.conftest import TINY

    api.train([*TINY, "train.epochs=1", "data.n_out=2"], tmp_path / "run")
    assert export_cmd(str(tmp_path / "run"), "tflite", str(tmp_path / "out")) == 0
    manifest = json.loads((tmp_path / "out" / "model.json").read_text())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json", "model.tflite"]
    assert manifest["formats"]["tflite"]["files"] == ["model.tflite"]
    assert manifest["formats"]["tflite"]["dynamic"] == ["steps"]
    assert len(manifest["weights_sha256"]["model.tflite"]) == 64
