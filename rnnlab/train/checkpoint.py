"""Checkpoints without pickle: `model.npz` (arrays only) + `model.json` (architecture, data state).

Load with `np.load(..., allow_pickle=False)`; a missing, truncated or mismatched file
raises `CheckpointError` with one line saying what is wrong. A model's non-parameter state
(the BatchNorm running statistics, `model.init_state`) is stored in the same npz under
"state:<name>"; `load` returns it as `info["state"]` ({} for models without state and for
checkpoints written before state existed).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.engine.model import ModelSpec
from rnnlab.runtime.io import atomic_write, write_json

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message is one line meant for the user."""


STATE_PREFIX = "state:"


def save(folder: str | Path, spec: ModelSpec, params: dict, meta: dict[str, Any], state: dict | None = None) -> Path:
    folder = Path(folder)
    arrays = {**params, **{STATE_PREFIX + k: v for k, v in (state or {}).items()}}
    atomic_write(folder / "model.npz", lambda fh: np.savez(fh, **arrays), mode="wb")
    info = {"format_version": FORMAT_VERSION, "spec": spec.to_dict(), **meta}
    write_json(folder / "model.json", info)
    return folder


def load(folder: str | Path) -> tuple[ModelSpec, dict[str, np.ndarray], dict[str, Any]]:
    folder = Path(folder)
    if folder.is_dir() and (folder / "checkpoint").is_dir():
        folder = folder / "checkpoint"  # a run folder was given
    npz, js = folder / "model.npz", folder / "model.json"
    for f in (npz, js):
        if not f.is_file():
            raise CheckpointError(f"checkpoint file missing: {f}")
    try:
        info = json.loads(js.read_text())
        spec = ModelSpec.from_dict(info["spec"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint {js}: {exc}") from None
    try:
        with np.load(npz, allow_pickle=False) as z:
            params = {k: z[k] for k in z.files if not k.startswith(STATE_PREFIX)}
            state = {k[len(STATE_PREFIX):]: z[k] for k in z.files if k.startswith(STATE_PREFIX)}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"corrupt checkpoint {npz}: {exc}") from None
    from rnnlab.engine.model import init_params, init_state

    expected = init_params(spec, np.random.default_rng(0), dtype=np.float64)
    if set(expected) != set(params):
        raise CheckpointError(f"checkpoint {npz} does not match its model.json (parameter names differ)")
    for k, v in expected.items():
        if v.shape != params[k].shape:
            raise CheckpointError(f"checkpoint {npz}: {k} has shape {params[k].shape}, expected {v.shape}")
    expected = init_state(spec, dtype=np.float64)
    if set(expected) != set(state):
        raise CheckpointError(f"checkpoint {npz} does not match its model.json (state names differ)")
    for k, v in expected.items():
        if v.shape != state[k].shape:
            raise CheckpointError(f"checkpoint {npz}: {k} has shape {state[k].shape}, expected {v.shape}")
    info["state"] = state
    return spec, params, info
