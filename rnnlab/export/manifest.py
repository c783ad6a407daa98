"""The JSON format, written into every export as ``model.json``: what the model is and how to feed it,
without rnnlab. A `format_version`; the architecture (the spec, the cell's gate order, inputs and outputs
with their shapes); the preprocessing state (the run's data config and what its loader fitted: scalers,
transform, vocabulary, padding); the dtype; the sha256 of every weight file the export holds; the
training summary; where it came from (run folder, checkpoint, epoch, status); what each format wrote.
`rnnlab predict EXPORT_DIR` reads it back."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rnnlab.export.base import ExportOptions, Written

NAME = "json"
SUMMARY = "model.json: architecture, gate order, inputs and outputs, preprocessing state, weights' sha256, summary"
FORMAT_VERSION = 1
MANIFEST = "model.json"
WEIGHT_SUFFIXES = (".onnx", ".npz", ".safetensors", ".pt2", ".tflite")


def write(run, folder: Path, options: ExportOptions) -> Written:
    """Nothing of its own: the manifest is written by `write_manifest` once every format has written."""
    del run, folder, options
    return Written(files=[MANIFEST])


def describe(run) -> dict:
    """The manifest's model and data sections for a trained run."""
    from rnnlab.engine import cells
    from rnnlab.record import checkpoint

    spec = run.spec
    cell = cells.get(spec.cell)
    tokens = getattr(spec, "vocab_size", None) is not None
    data = run.info.get("data", {})
    return {
        "format_version": FORMAT_VERSION,
        "model": {"kind": run.info.get("model") or _kind(spec),
                  "spec": checkpoint.spec_dict(spec), "cell": spec.cell, "gate_order": list(cell.gates),
                  "parameter_names": "PyTorch's (weight_ih_l0, weight_hh_l0_reverse, ...)",
                  "dtype": run.info.get("dtype", "float32")},
        "inputs": _inputs(spec, tokens, data),
        "outputs": {"task": run.kind, "classes": run.classes, "threshold": run.threshold if run.kind == "binary"
                    else None, "size": getattr(spec, "output_size", None),
                    "per_step": bool(getattr(spec, "per_step", False))},
        "preprocessing": {"data_config": run.config.to_dict()["data"], "state": data},
        "config": run.config.to_dict(),
        "summary": run.summary.to_dict() if run.summary is not None else None,
        "source": {"run": str(run.path), "epoch": run.info.get("epoch"),
                   "status": run.summary.status if run.summary is not None else "unknown",
                   "checkpoint_sha256": _sha256(run.path / "checkpoint" / "model.npz")
                   if (run.path / "checkpoint" / "model.npz").is_file() else None},
    }


def _kind(spec) -> str:
    from rnnlab.record import checkpoint

    return checkpoint.kind_of(spec)


def _inputs(spec, tokens: bool, data: dict) -> dict:
    if _kind(spec) == "seq2seq":
        return {"note": "encoder.onnx takes the source; decoder.onnx one step (see formats.onnx)"}
    x = {"name": "tokens", "dtype": "int64", "shape": ["batch", "seq"]} if tokens else \
        {"name": "x", "dtype": "float32", "shape": ["batch", "seq", spec.input_size]}
    return {"x": x, "mask": {"name": "mask", "dtype": "float32", "shape": ["batch", "seq"],
                             "meaning": "1 = a real step; each row one run of 1s, padded after or before"},
            "padding": data.get("padding", "post")}


def write_manifest(folder: Path, body: dict, formats: dict[str, dict]) -> Path:
    from rnnlab.runtime.io import write_json

    weights = {f.name: _sha256(f) for f in sorted(folder.iterdir()) if f.suffix in WEIGHT_SUFFIXES}
    return write_json(folder / MANIFEST, {**body, "weights_sha256": weights, "formats": formats})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
