"""A sequence model (`rnnlab.engine.model`) applied to new inputs: read as its training data were, run
through a backend's forward (`rnnlab.predict.backends`), mapped back to the data's units and laid out as
a table (`rnnlab.predict.frames`)."""

from __future__ import annotations

import numpy as np


def predict(run, source, backend: str):
    """`TrainedRun.predict` of a sequence model on backend "engine" or "onnx"."""
    from rnnlab.predict import backends

    return predict_with(run, backends.make(backend, run.spec, run.params, run.state, run.graphs), source)


def predict_with(run, forward, source):
    """`predict` through forward(x, mask) -> raw outputs (a backend of `rnnlab.predict.backends`)."""
    from rnnlab.data import inputs as reader
    from rnnlab.predict.frames import outputs_frame
    from rnnlab.train.tasks.predict import roll

    got = reader.read(source, run.config.data, run.info.get("data", {}), np.dtype(run.config.train.dtype))
    check_fits(run.spec, got.x)
    horizon = run.info.get("data", {}).get("n_out")
    if getattr(run.config.data, "strategy", "direct") == "recursive":
        y = roll(lambda w: forward(w, None), got.x, horizon)
    else:
        y = forward(got.x, got.mask)
    if got.to_original is not None:
        y = got.to_original(y)
    frame = outputs_frame(run.kind, np.asarray(y), got, run.classes, run.threshold)
    frame.attrs["notes"] = list(got.notes)
    return frame


def check_fits(spec, x: np.ndarray) -> None:
    """Inputs of the width the model reads (a file of another task fails here, in one line)."""
    from rnnlab.data.base import DataError

    if getattr(spec, "vocab_size", None) is None and (x.ndim != 3 or x.shape[2] != spec.input_size):
        raise DataError(f"the inputs have {x.shape[2] if x.ndim == 3 else '?'} features per step, but the model "
                        f"reads {spec.input_size}")
