"""`rnnlab export --format tflite`: ``model.tflite``, converted from a SavedModel of the Keras export's model.

The signature ``serving_default`` takes x (1, steps, D) float32 (token ids (1, steps) int32 with an
embedding) and mask (1, steps) of 0/1: one sequence a call, any length. The batch is fixed to 1 so that
Keras' recurrent loop converts to TFLite builtins (``WHILE``) without the Flex delegate (see
tensorflow_convert). TFLite runs float32: float64 weights are written as float32, and the export says so.
Run it with ``ai_edge_litert.interpreter.Interpreter`` (LiteRT) or ``tf.lite.Interpreter``. Needs
tensorflow (``pip install 'rnnlab[tensorflow]'``); refuses what the keras format refuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.export import tensorflow_convert
from rnnlab.export.base import ExportOptions, Written

NAME = "tflite"
SUMMARY = "model.tflite: the Keras model in TFLite builtins, one sequence a call (needs tensorflow)"
FILES = ("model.tflite",)


def write(run, folder: Path, options: ExportOptions) -> Written:
    return write_model(run.spec, run.params, run.state, folder)


def write_model(spec, params: dict, state: dict, folder) -> Written:
    wide = sorted({str(v.dtype) for v in {**params, **state}.values() if v.dtype.kind == "f" and v.itemsize > 4})
    params, state = as_float32(params), as_float32(state)
    facts = tensorflow_convert.convert(spec, params, state, folder, "tflite", NAME)
    notes = [f"tflite: {', '.join(wide)} weights written as float32 (TFLite runs float32)"] if wide else []
    return Written(files=list(FILES), notes=notes, facts=facts)


def as_float32(arrays: dict) -> dict:
    return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in arrays.items()}
