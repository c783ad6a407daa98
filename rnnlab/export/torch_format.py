"""`rnnlab export --format torch`: the weights as model.safetensors and an nn.Module in model_def.py.

``model.safetensors`` is written with ``safetensors.numpy`` (no torch needed to export) under the names
of ``RnnlabModel``'s state_dict, with the architecture JSON in its metadata, so ``model_def.load()`` is
``load_state_dict(safetensors.torch.load_file(...), strict=True)``. ``model_def.py`` uses torch.nn's
LSTM / GRU / RNN (batch_first), Embedding, Conv1d, LayerNorm, BatchNorm1d and Linear where the engine's
blocks are theirs, and small modules for the rest (self-attention and attention pooling as the engine
computes them, cells torch lacks as a loop over their ``cell_step``; the cell's source is its module's
``STANDALONE["torch"]``). Names: rnnlab's, except where the module structure needs others
(``RENAMES``): a layer's cell weights are ``rnn.<layer>.<name>_l0[_reverse]`` (one torch.nn module per
layer, as LayerNorm or BatchNorm may sit between layers) and LayerNorm / BatchNorm gains and biases are
``weight`` / ``bias``. Sequence models only; seq2seq models are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rnnlab.export import architecture, torch_snippets
from rnnlab.export.base import ExportError, ExportOptions, Written
from rnnlab.runtime.io import write_text

NAME = "torch"
SUMMARY = "model.safetensors and model_def.py (a torch.nn.Module, loads with strict=True); sequence models"
FILES = ("model.safetensors", "model_def.py")


def write(run, folder: Path, options: ExportOptions) -> Written:
    return write_model(run.spec, run.params, run.state, folder)


def write_model(spec, params: dict, state: dict, folder) -> Written:
    """Write model.safetensors and model_def.py of `spec` with `params` and `state` into `folder`."""
    from safetensors.numpy import save_file

    arch = describe(spec, params, NAME)
    text = source(arch, NAME)  # refusals come before any file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "model_def.py", text)
    save_file(tensors(arch, {**params, **state}), str(folder / "model.safetensors"),
              metadata={"architecture": json.dumps(arch), "format": "rnnlab-torch"})
    return Written(files=list(FILES), facts={"inputs": ["x", "mask"], "needs": ["torch", "safetensors"]})


def describe(spec, params: dict, fmt: str) -> dict:
    """The architecture of a sequence model (ExportError, in `fmt`'s name, for seq2seq)."""
    arch = architecture.describe(spec, params, fmt)
    if arch["model"] != "sequence":
        raise ExportError(f"--format {fmt}: seq2seq models are not supported (their decoding loop is not a "
                          "module forward); use --format numpy")
    return arch


def source(arch: dict, fmt: str = NAME) -> str:
    """model_def.py: prelude, the cell, the blocks the model uses, RnnlabModel and load."""
    kinds = list(dict.fromkeys(b["kind"] for b in arch["blocks"]))
    missing = [k for k in kinds if k not in torch_snippets.BLOCKS]
    if missing:
        raise ExportError(f"--format {fmt}: block kind {missing[0]} has no torch snippet")
    parts = [torch_snippets.PRELUDE, architecture.cell_source(arch["spec"]["cell"], "torch", fmt)]
    parts += [torch_snippets.BLOCKS[k] for k in kinds]
    for table in ("BUILD", "RUN"):
        parts.append(f"{table} = {{\n" + "".join(f'    "{k}": {table.lower()}_{k},\n' for k in kinds) + "}")
    parts.append(torch_snippets.MODEL)
    return "\n\n\n".join(p.strip("\n") for p in parts) + "\n"


def _recurrent(block: dict, arrays: dict) -> dict:
    out = {}
    for keys, reverse in zip(block["params"], block["reverses"], strict=True):
        sfx = "_l0_reverse" if reverse else "_l0"
        out.update({f"rnn.{block['layer']}.{k}{sfx}": arrays[v] for k, v in keys.items()})
    return out


def _norm(block: dict, arrays: dict) -> dict:
    names = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}
    keys = {**block["params"], **block.get("state", {})}
    out = {f"{block['name']}.{names[k]}": arrays[v] for k, v in keys.items()}
    if "state" in block:  # BatchNorm1d's counter: strict loading wants it; eval mode never reads it
        out[f"{block['name']}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return out


# Blocks whose torch modules name their tensors otherwise than the rnnlab model; the rest keep the names.
RENAMES = {"recurrent": _recurrent, "layer_norm": _norm, "batch_norm": _norm}


def tensors(arch: dict, arrays: dict) -> dict[str, np.ndarray]:
    """{RnnlabModel state_dict name: C-contiguous array} (safetensors.numpy writes raw memory in C order)."""
    out: dict[str, np.ndarray] = {}
    for block in arch["blocks"]:
        rename = RENAMES.get(block["kind"])
        named = rename(block, arrays) if rename else {v: arrays[v] for v in block.get("params", {}).values()}
        out.update(named)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
