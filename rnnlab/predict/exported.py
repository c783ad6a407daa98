"""An exported folder read back for `rnnlab predict EXPORT_DIR`: the manifest (model.json) gives the config,
the architecture, the preprocessing state and the summary; the graph (model.onnx) runs in onnxruntime,
or the weights (weights.npz of the numpy format) on the engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnlab.predict.run import NotARunError, TrainedRun

MANIFEST = "model.json"


def load_export(path: Path) -> TrainedRun:
    from omegaconf import OmegaConf

    from rnnlab.config.validate import validate
    from rnnlab.engine.model import ModelSpec
    from rnnlab.record.summary import Summary

    try:
        body = json.loads((path / MANIFEST).read_text())
        config = validate(OmegaConf.create(body["config"]))
        spec = ModelSpec.from_dict(body["model"]["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotARunError(f"{path}: not a readable export ({MANIFEST}: {exc})") from None
    params, state = _weights(path)
    onnx_file = path / "model.onnx"
    if not params and not onnx_file.is_file():
        raise NotARunError(f"{path}: the export holds neither model.onnx nor weights.npz (export onnx or numpy)")
    summary = Summary.from_dict(body["summary"]) if body.get("summary") else None
    info = {"data": body["preprocessing"]["state"], "task": body["outputs"]["task"],
            "classes": body["outputs"]["classes"], "epoch": body["source"].get("epoch"), "model": "sequence"}
    return TrainedRun(path, config, summary, spec, params, state, info,
                      model_file=onnx_file if onnx_file.is_file() else None)


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
