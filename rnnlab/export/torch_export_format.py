"""`rnnlab export --format torch-export`: the torch format's module through ``torch.export``, saved as model.pt2.

The program takes ``(x, mask)``: x (B, T, D) in the model's dtype (token ids (B, T) int64 with an
embedding) and mask (B, T) of 0/1 in the model's dtype (all ones when nothing is padded); batch and
sequence length are dynamic (``torch.export.Dim``). Load it with ``torch.export.load("model.pt2").module()``;
no rnnlab and no model_def.py needed. While exporting, every recurrent layer runs its cell's step
under ``scan`` (torch.nn.LSTM would fix the sequence length), so every cell exports. Needs torch;
sequence models only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

from rnnlab.export import torch_format
from rnnlab.export.base import ExportError, ExportOptions, Written
from rnnlab.runtime.io import write_text

NAME = "torch-export"
SUMMARY = "model.pt2: torch.export of the torch module, dynamic batch and sequence length (needs torch)"
FILES = ("model.pt2",)
EXAMPLE = (2, 3)  # (batch, steps) of the inputs traced; not 0 or 1, which torch.export would specialise


def write(run, folder: Path, options: ExportOptions) -> Written:
    return write_model(run.spec, run.params, run.state, folder)


def write_model(spec, params: dict, state: dict, folder) -> Written:
    """Trace RnnlabModel of `spec` with `params` and `state` and save model.pt2 into `folder`."""
    arch = torch_format.describe(spec, params, NAME)
    try:
        import torch
    except ImportError:
        raise ExportError("--format torch-export: torch is not installed (pip install torch)") from None
    x, mask = example_inputs(arch, torch)
    B, T = torch.export.Dim("batch"), torch.export.Dim("steps")
    with _built(arch, torch_format.tensors(arch, {**params, **state})) as module:
        try:
            program = torch.export.export(module, (x, mask), dynamic_shapes=({0: B, 1: T}, {0: B, 1: T}))
        except Exception as exc:  # torch's messages run to pages: keep the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"--format torch-export: torch.export failed ({first})") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(folder / "model.pt2"))
    return Written(files=list(FILES), facts={"inputs": ["x", "mask"], "dynamic": ["batch", "steps"],
                                             "torch": torch.__version__})


def example_inputs(arch: dict, torch):
    """(x, mask) of shape EXAMPLE in what the program takes."""
    spec, dtype = arch["spec"], getattr(torch, arch["dtype"])
    B, T = EXAMPLE
    if spec["vocab_size"] is not None:
        x = torch.zeros(B, T, dtype=torch.int64)
    else:
        x = torch.zeros(B, T, spec["input_size"], dtype=dtype)
    return x, torch.ones(B, T, dtype=dtype)


@contextlib.contextmanager
def _built(arch: dict, arrays: dict[str, np.ndarray]):
    """RnnlabModel from the generated model_def.py, weights loaded strictly, in eval mode; its module stays
    importable while the context is open (torch.export imports the module of the code it traces)."""
    import torch

    name = "rnnlab_export_model_def"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_def.py"
        write_text(path, torch_format.source(arch, NAME))
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
            model = mod.RnnlabModel(arch)
            model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)
            yield model.eval()
        finally:
            sys.modules.pop(name, None)
