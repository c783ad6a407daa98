"""An exported folder read back for `rnnlab predict EXPORT_DIR`: the manifest (model.json) gives the config,
the architecture (a sequence or seq2seq model), the preprocessing state and the summary; the graphs
(model.onnx, or a seq2seq model's encoder.onnx and decoder.onnx) run in onnxruntime, or the weights
(weights.npz of the numpy format) on the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnlab.predict.run import NotARunError, TrainedRun

MANIFEST = "model.json"
GRAPHS = {"sequence": ("model.onnx",), "seq2seq": ("encoder.onnx", "decoder.onnx")}  # model kind -> its graphs


def load_export(path: Path) -> TrainedRun:
    from omegaconf import OmegaConf

    from rnnlab.config.validate import validate
    from rnnlab.record import checkpoint
    from rnnlab.record.summary import Summary

    try:
        body = json.loads((path / MANIFEST).read_text())
        config = validate(OmegaConf.create(body["config"]))
        kind = body["model"].get("kind", "sequence")
        spec = checkpoint.MODEL_KINDS[kind]().spec_from_dict(body["model"]["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotARunError(f"{path}: not a readable export ({MANIFEST}: {exc})") from None
    params, state = _weights(path)
    names = GRAPHS[kind]
    graphs = {n: path / n for n in names if (path / n).is_file()}
    if not params and len(graphs) < len(names):
        raise NotARunError(f"{path}: the export holds neither {' and '.join(names)} nor weights.npz "
                           "(export onnx or numpy)")
    summary = Summary.from_dict(body["summary"]) if body.get("summary") else None
    info = {"data": body["preprocessing"]["state"], "task": body["outputs"]["task"],
            "classes": body["outputs"]["classes"], "epoch": body["source"].get("epoch"), "model": kind}
    return TrainedRun(path, config, summary, spec, params, state, info,
                      graphs=graphs if len(graphs) == len(names) else {})


def _weights(path: Path) -> tuple[dict, dict]:
    """(params, state) of the numpy format's weights.npz ("state:" prefixed entries), or ({}, {})."""
    f = path / "weights.npz"
    if not f.is_file():
        return {}, {}
    with np.load(f, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    state = {k[len("state:"):]: v for k, v in arrays.items() if k.startswith("state:")}
    params = {k: v for k, v in arrays.items() if not k.startswith("state:") and not k.startswith("_")}
    return params, state
