"""The export formats by name: each a module with NAME, SUMMARY and write(run, folder, options) (see
rnnlab/export/__init__.py). `rnnlab export --format a,b` writes them into one folder beside the manifest."""

from __future__ import annotations

import importlib

from rnnlab.export.base import ExportError

FORMATS = {
    "onnx": "rnnlab.export.onnx_format",  # first: serve reads its model.onnx
    "torch": "rnnlab.export.torch_format",
    "torch-export": "rnnlab.export.torch_export_format",
    "numpy": "rnnlab.export.numpy_format",
    "keras": "rnnlab.export.keras_format",
    "savedmodel": "rnnlab.export.savedmodel_format",
    "tflite": "rnnlab.export.tflite_format",
    "json": "rnnlab.export.manifest",
    "serve": "rnnlab.export.serve_format",
}


def parse(spec: str) -> list[str]:
    """Format names from "onnx,numpy" plus what they need, in the registry's order; one-line refusal of an
    unknown one."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ExportError(f"--format needs at least one of {', '.join(FORMATS)}")
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export format '{unknown[0]}' (choose from {', '.join(FORMATS)})")
    for name in list(names):  # a format that reads another's files (serve runs model.onnx) brings it along
        names += [n for n in getattr(get(name), "NEEDS", ()) if n not in names]
    return sorted(names, key=list(FORMATS).index)  # the registry's order: what a format reads is written first


def get(name: str):
    return importlib.import_module(FORMATS[name])
