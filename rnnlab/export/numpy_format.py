"""`rnnlab export --format numpy`: a standalone predict.py that needs only NumPy, its weights and its architecture.

Files: ``predict.py`` (``load(folder=None)``, ``predict(model, x, mask=None)``, and ``python predict.py
inputs.npz outputs.npy|.csv``), ``weights.npz`` (parameters and BatchNorm running statistics under the
model's names; plain arrays, loadable with ``allow_pickle=False``) and ``architecture.json`` (what
``architecture.describe`` says, plus seq2seq decoding settings). The script holds the prelude, the cell's
``STANDALONE["numpy"]`` source and the snippets of just the block kinds the model uses
(``numpy_snippets``), so it is the inference half of the engine for this one model. Seq2seq models get an
encoder with greedy decoding (token targets) or free-running generation (continuous targets).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnlab.export import architecture, numpy_snippets
from rnnlab.export.base import ExportError, ExportOptions, Written
from rnnlab.record import checkpoint
from rnnlab.runtime.io import write_text

NAME = "numpy"
SUMMARY = "predict.py needing only NumPy (no rnnlab), weights.npz and architecture.json"
FILES = ("predict.py", "weights.npz", "architecture.json")


def write(run, folder: Path, options: ExportOptions) -> Written:
    return write_model(run.spec, run.params, run.state, folder, decoding=_decoding(run))


def _decoding(run) -> dict | None:
    """Seq2seq decoding settings from the run's data (None for sequence models)."""
    if checkpoint.kind_of(run.spec) != "seq2seq":
        return None
    meta = run.info.get("data") or {}
    if run.spec.tokens_out:
        if "max_out_len" not in meta or "bos_id" not in meta:
            raise ExportError("--format numpy: the seq2seq checkpoint's data lacks max_out_len and bos_id "
                              "(the greedy decoder's length and start token)")
        return {"max_len": int(meta["max_out_len"]), "bos_id": int(meta["bos_id"]),
                "eos_id": None if meta.get("eos_id") is None else int(meta["eos_id"])}
    if "t_out" not in meta:
        raise ExportError("--format numpy: the seq2seq checkpoint's data lacks t_out (how many steps to generate)")
    return {"steps": int(meta["t_out"]), "start_value": float(meta.get("start_value", 0.0))}


def write_model(spec, params: dict, state: dict, folder, decoding: dict | None = None) -> Written:
    """Write the three files of `spec` with `params` and `state` into `folder`. decoding (seq2seq):
    {"max_len", "bos_id", "eos_id"} (token targets) or {"steps", "start_value"} (continuous)."""
    folder = Path(folder)
    arch = architecture.describe(spec, params, NAME)
    if arch["model"] == "seq2seq":
        if decoding is None:
            raise ExportError("--format numpy: a seq2seq model needs its decoding settings")
        arch["decoding"] = dict(decoding)
    text = script(arch)  # refusals come before any file
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "predict.py", text)
    write_arrays(folder, arch, {**params, **state})
    return Written(files=list(FILES), facts={"inputs": ["x", "mask"], "needs": ["numpy"]})


def write_arrays(folder: Path, arch: dict, arrays: dict) -> None:
    """architecture.json, and weights.npz: the arrays under the model's names, no pickled objects."""
    write_text(folder / "architecture.json", json.dumps(arch, indent=1) + "\n")
    np.savez(folder / "weights.npz", **{k: np.ascontiguousarray(v) for k, v in arrays.items()})


def script(arch: dict) -> str:
    """predict.py for an architecture: prelude, the cell, the blocks used, the model kind's predict, main."""
    cell = arch["spec"]["cell"]
    parts = [numpy_snippets.PRELUDE, architecture.cell_source(cell, "numpy", NAME)]
    kinds = list(dict.fromkeys(b["kind"] for b in arch.get("blocks", [])))
    for kind in kinds:
        if kind not in numpy_snippets.BLOCKS:
            raise ExportError(f"--format numpy: block kind {kind} has no NumPy snippet")
        parts.append(numpy_snippets.BLOCKS[kind])
    if kinds:
        parts.append("BLOCKS = {\n" + "".join(f'    "{k}": block_{k},\n' for k in kinds) + "}")
    parts += [numpy_snippets.MODELS[arch["model"]], numpy_snippets.MAIN]
    return "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
