"""Where a prediction runs: the NumPy engine, or the model's ONNX graph in onnxruntime (built from the run's
weights, or read from an exported folder). A backend is ``forward(x, mask) -> outputs``, the engine's raw
outputs (logits, scaled regression values), so both can be compared on any input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.export.base import ExportError

BACKENDS = ("engine", "onnx")


def engine(spec, params, state):
    from rnnlab.engine import model as M

    def forward(x, mask=None):
        return M.predict(spec, params, np.asarray(x), mask, state=state)

    return forward


def onnx(spec, params, state, model_file: Path | None = None):
    """The graph in `model_file` (an export's model.onnx), or built from the weights now."""
    from rnnlab.export import onnx_format

    graph = model_file if model_file is not None else onnx_format.build_model(spec, params, state, {})
    sess = onnx_format.session(graph)

    def forward(x, mask=None):
        x = np.asarray(x)
        m = np.ones(x.shape[:2], dtype=np.float32) if mask is None else np.asarray(mask, dtype=np.float32)
        return onnx_format.run_sequence(sess, x, m)

    return forward


def make(name: str, spec, params, state, model_file: Path | None = None):
    if name not in BACKENDS:
        raise ExportError(f"--backend must be one of {', '.join(BACKENDS)} (got '{name}')")
    if name == "engine":
        if not params:
            raise ExportError("this export holds no weights for the engine (export numpy too, or use --backend onnx)")
        return engine(spec, params, state)
    if getattr(spec, "src_dim", None) is not None or hasattr(spec, "tgt_vocab"):
        raise ExportError("--backend onnx predicts sequence models; a seq2seq model runs on the engine")
    return onnx(spec, params, state, model_file)
