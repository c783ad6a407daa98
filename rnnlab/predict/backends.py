"""Where a prediction runs: the NumPy engine, or the model's ONNX graphs in onnxruntime (built from the run's
weights, or read from an exported folder). For a sequence model a backend is ``forward(x, mask) -> outputs``,
the engine's raw outputs (logits, scaled regression values), so both can be compared on any input; for a
seq2seq model it is a step source for the engine's decoding loops (``steps``: `rnnlab.engine.seq2seq.Steps`,
or the encoder and decoder graphs as `rnnlab.export.onnx_format.OnnxSteps`), so both decode by one set of rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnlab.export.base import ExportError

BACKENDS = ("engine", "onnx")
SEQ2SEQ_GRAPHS = ("encoder.onnx", "decoder.onnx")


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


def make(name: str, spec, params, state, graphs: dict[str, Path] | None = None):
    """A sequence model's forward on backend `name` (graphs: an export's ONNX files by name)."""
    _check(name, params)
    if name == "engine":
        return engine(spec, params, state)
    return onnx(spec, params, state, (graphs or {}).get("model.onnx"))


def steps(name: str, spec, params, graphs: dict[str, Path] | None = None):
    """A seq2seq model's step source on backend `name`: the engine's, or encoder.onnx and decoder.onnx in
    onnxruntime (an export's, or built from the weights now)."""
    _check(name, params)
    if name == "engine":
        from rnnlab.engine.seq2seq import Steps

        return Steps(spec, params)
    from rnnlab.export import onnx_format

    graphs = graphs or {}
    if all(g in graphs for g in SEQ2SEQ_GRAPHS):
        encoder, decoder = (graphs[g] for g in SEQ2SEQ_GRAPHS)
    else:
        encoder, decoder = onnx_format.build_seq2seq(spec, params)
    return onnx_format.OnnxSteps(onnx_format.session(encoder), onnx_format.session(decoder))


def _check(name: str, params) -> None:
    if name not in BACKENDS:
        raise ExportError(f"--backend must be one of {', '.join(BACKENDS)} (got '{name}')")
    if name == "engine" and not params:
        raise ExportError("this export holds no weights for the engine (export numpy too, or use --backend onnx)")
