"""TensorFlow exports built from the Keras export: the keras format's files, written into a temporary folder,
are loaded by a child Python with ``KERAS_BACKEND=tensorflow``, which writes the target into the export
folder. A child, because Keras fixes its backend at import: this process's Keras (if any, on any backend)
is never asked to switch.

``python -m rnnlab.export.tensorflow_convert TARGET KERAS_DIR OUT`` runs ``TARGETS[TARGET]`` and leaves
``result.json`` in KERAS_DIR: {"facts": {...}} or {"error": "one line"}.

* ``savedmodel``: ``OUT/saved_model`` with the endpoint ``serve`` (also ``serving_default``) taking
  x (batch, steps, D) in the model's dtype (token ids (batch, steps) int32 with an embedding) and
  mask (batch, steps) of 0/1; batch and steps are dynamic.
* ``tflite``: ``OUT/model.tflite`` from a SavedModel of the same endpoint with the batch fixed to 1,
  TFLite builtins only (the ``WHILE`` op; no Flex / SELECT_TF_OPS). With a dynamic batch the converter
  cannot lower the TensorList of Keras' recurrent loop (its element shape (batch, H) is not static) and
  asks for SELECT_TF_OPS, which needs the Flex delegate at run time; a batch of 1 keeps it builtin.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rnnlab.export import keras_format
from rnnlab.export.base import ExportError

INSTALL = "needs tensorflow: pip install 'rnnlab[tensorflow]'"
RESULT = "result.json"


def convert(spec, params: dict, state: dict, folder, target: str, fmt: str) -> dict:
    """Write `target` ("savedmodel" | "tflite") of the model into `folder`; the child's facts (ExportError,
    naming `fmt`, for a model Keras layers do not express, no tensorflow, or a failed conversion)."""
    with tempfile.TemporaryDirectory() as tmp:
        keras_format.write_model(spec, params, state, tmp, fmt)  # its refusals come first: they need no tensorflow
        if not tensorflow_installed():
            raise ExportError(f"--format {fmt}: {INSTALL}")
        Path(folder).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, "-m", __name__, target, tmp, str(folder)], env=env,
                              capture_output=True, text=True)
        path = Path(tmp) / RESULT
        result = json.loads(path.read_text()) if path.is_file() else {"error": _crash(proc)}
    if "error" in result:
        raise ExportError(f"--format {fmt}: {result['error']}")
    return result["facts"]


def tensorflow_installed() -> bool:
    """Whether tensorflow and keras can be imported, without importing them (seconds, and Keras would fix
    its backend here)."""
    return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None


def _crash(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return f"the TensorFlow child exited with code {proc.returncode}" + (f" ({lines[-1].strip()})" if lines else "")


# ---------------------------------------------------------------------------------------------
# the child: runs under KERAS_BACKEND=tensorflow
# ---------------------------------------------------------------------------------------------


def _load(keras_dir: Path):
    """The Keras model of keras_model.py in `keras_dir`, built (Keras exports only built models)."""
    import numpy as np

    spec = importlib.util.spec_from_file_location("rnnlab_keras_model", keras_dir / "keras_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    arch = json.loads((keras_dir / "architecture.json").read_text())
    model = mod.load(keras_dir)
    tokens = arch["spec"]["vocab_size"] is not None
    x = np.zeros((1, 2), np.int32) if tokens else np.zeros((1, 2, arch["spec"]["input_size"]), arch["dtype"])
    model(x, np.ones((1, 2), arch["dtype"]))
    return model, arch


def _signature(arch: dict, batch: int | None, tf) -> list:
    spec, dtype = arch["spec"], arch["dtype"]
    if spec["vocab_size"] is not None:
        x = tf.TensorSpec((batch, None), tf.int32, name="x")
    else:
        x = tf.TensorSpec((batch, None, spec["input_size"]), dtype, name="x")
    return [x, tf.TensorSpec((batch, None), dtype, name="mask")]


def _write_saved_model(model, arch: dict, path: Path, batch: int | None) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x, mask: model(x, mask), input_signature=_signature(arch, batch, tf))
    archive.write_out(str(path), verbose=False)


def savedmodel(model, arch: dict, out: Path) -> dict:
    import tensorflow as tf

    _write_saved_model(model, arch, out / "saved_model", None)
    return {"endpoint": "serve", "inputs": ["x", "mask"], "dynamic": ["batch", "steps"],
            "tensorflow": tf.__version__}


def tflite(model, arch: dict, out: Path) -> dict:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        _write_saved_model(model, arch, Path(tmp), 1)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # the converter's message is pages of MLIR: name the ops it could not lower
            ops = sorted(set(re.findall(r"'(tf\.\w+)' op", str(exc))))
            raise RuntimeError(f"TFLite has no builtin for {', '.join(ops)}" if ops else _first_line(exc)) from None
    (out / "model.tflite").write_bytes(flatbuffer)
    return {"signature": "serving_default", "inputs": ["x", "mask"], "batch": 1, "dynamic": ["steps"],
            "ops": "TFLite builtins", "tensorflow": tf.__version__}


TARGETS = {"savedmodel": savedmodel, "tflite": tflite}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def main(argv: list[str]) -> None:
    target, keras_dir, out = argv[0], Path(argv[1]), Path(argv[2])
    try:
        write = TARGETS[target]
        result = {"facts": write(*_load(keras_dir), out)}
    except Exception as exc:
        result = {"error": f"TensorFlow could not write the {target} ({_first_line(exc)})"}
    (keras_dir / RESULT).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
