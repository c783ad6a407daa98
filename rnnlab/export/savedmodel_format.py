"""`rnnlab export --format savedmodel`: a TensorFlow SavedModel (``saved_model/``) of the Keras export's model.

The keras format's model is loaded under TensorFlow and saved with the endpoint ``serve`` (also
``serving_default``): x (batch, steps, D) in the model's dtype (token ids (batch, steps) int32 with an
embedding) and mask (batch, steps) of 0/1, all ones when nothing is padded; batch and steps are dynamic.
``tf.saved_model.load("saved_model").serve(x, mask)``: no rnnlab and no Keras needed. Needs tensorflow
(``pip install 'rnnlab[tensorflow]'``); refuses what the keras format refuses (see tensorflow_convert).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.export import tensorflow_convert
from rnnlab.export.base import ExportOptions, Written

NAME = "savedmodel"
SUMMARY = "saved_model/: a TensorFlow SavedModel of the Keras model, dynamic batch and length (needs tensorflow)"
FILES = ("saved_model",)


def write(run, folder: Path, options: ExportOptions) -> Written:
    return write_model(run.spec, run.params, run.state, folder)


def write_model(spec, params: dict, state: dict, folder) -> Written:
    facts = tensorflow_convert.convert(spec, params, state, folder, "savedmodel", NAME)
    return Written(files=list(FILES), facts=facts)
