"""Checkpoints without pickle, in a versioned layout, and one loader for every kind of model.

    checkpoint/              the selected (best) epoch; checkpoint_last/: the last completed epoch
                             (or, with train.checkpoint_every_steps, the last saved step inside an epoch)
      model.npz              parameters, and the model's state (BatchNorm statistics) as "state:<name>"
      model.json             {"format_version": 2, "model": "sequence" | "seq2seq", "spec": {...},
                              "epoch", "val_loss", "data", "task", "loss", "dtype", ...}
                             (a mid-epoch checkpoint_last adds "step" and "batch": batches of epoch + 1 taken)
      training_state.npz     (checkpoint_last) the optimizer's arrays (moments), "optim:<slot>:<param>";
                             the lr trace; callbacks' arrays "callback:<name>:<key>" (the monitor's
                             records); a mid-epoch position "position:<key>" (batch order, partial sums)
      training_state.json    (checkpoint_last) epoch, step, optimizer scalars, random streams,
                             model selection and early-stopping state, the loss history, the
                             callbacks' other state, the position's counters

`load` reads any of them (format 1 too, written before the kinds were named) and checks the
parameter and state names and shapes against what the spec builds; a missing, truncated or
mismatched file raises `CheckpointError` with one line. `load_training_state` reads the
training state back for a resumed run.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.engine.seq2seq import Seq2SeqSpec
from rnnlab.runtime import signals
from rnnlab.runtime.io import atomic_write, strict_json, write_text

FORMAT_VERSION = 2
STATE_PREFIX = "state:"
OPTIM_PREFIX = "optim:"
POSITION_PREFIX = "position:"  # a mid-epoch checkpoint's batch order and partial sums
TASK_PREFIX = "task:"  # the task adapter's own state (stateful training's carried recurrent state)


def callback_prefix(name: str) -> str:
    """Where a callback's arrays (the monitor's records) go in training_state.npz."""
    return f"callback:{name}:"


def split_arrays(state: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A flat state dict as (its JSON values, its arrays keyed prefix + name) for training_state.json / .npz."""
    arrays = {prefix + k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    return {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}, arrays


def join_arrays(values: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """The state dict `split_arrays` split, put back together."""
    return {**values, **{k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}}


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message is one line meant for the user."""


class ModelKind(NamedTuple):
    """How to rebuild one kind of model from its spec dict, and what its parameters must be."""

    spec_from_dict: Any  # dict -> spec
    init_params: Any  # (spec, rng, dtype) -> params
    init_state: Any  # (spec, dtype) -> state dict


def _sequence() -> ModelKind:

    return ModelKind(M.ModelSpec.from_dict, M.init_params, M.init_state)


def _seq2seq() -> ModelKind:

    def spec_from_dict(d):
        return Q.Seq2SeqSpec(**{k: v for k, v in d.items() if k != "model"})

    return ModelKind(spec_from_dict, Q.init_params, lambda spec, dtype=None: {})


MODEL_KINDS = {"sequence": _sequence, "seq2seq": _seq2seq}


def kind_of(spec) -> str:
    """The model kind a spec object builds."""

    return "seq2seq" if isinstance(spec, Seq2SeqSpec) else "sequence"


def spec_dict(spec) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(spec)


class Loaded(NamedTuple):
    spec: Any
    params: dict[str, np.ndarray]
    info: dict[str, Any]  # model.json, with "state" (the model's state arrays) and "model" (its kind)

    @property
    def kind(self) -> str:
        return self.info["model"]

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self.info["state"]


def save(folder: str | Path, spec, params: dict, meta: dict[str, Any], state: dict | None = None,
         training: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None, same_as: Path | None = None) -> Path:
    """Write model.npz and model.json (and with `training` = (json part, arrays) the training state).
    The weights are written first and model.json last, each atomically. same_as: a checkpoint folder
    known to hold these very weights (the best epoch is the last one): its model.npz is linked, not
    written again."""
    folder = Path(folder)
    if training is not None:
        info, arrays = training
        atomic_write(folder / "training_state.npz", lambda fh: np.savez(fh, **arrays), mode="wb")
        write_text(folder / "training_state.json", strict_json({"format_version": FORMAT_VERSION, **info}))
    if same_as is None or not _link(Path(same_as) / "model.npz", folder / "model.npz"):
        weights = {**params, **{STATE_PREFIX + k: v for k, v in (state or {}).items()}}
        atomic_write(folder / "model.npz", lambda fh: np.savez(fh, **weights), mode="wb")
    info = {"format_version": FORMAT_VERSION, "model": kind_of(spec), "spec": spec_dict(spec), **meta}
    write_text(folder / "model.json", strict_json(info))
    return folder


def _link(src: Path, dst: Path) -> bool:
    """Hard-link src to dst atomically (a later atomic replace of src leaves dst as it is); False when
    the file system cannot."""
    import os

    tmp = dst.with_name(f".{dst.name}.link.tmp")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        with signals.temp_file(str(tmp)):
            os.link(src, tmp)
            os.replace(tmp, dst)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


def _folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if folder.is_dir() and (folder / "checkpoint").is_dir():
        return folder / "checkpoint"  # a run folder was given
    return folder


def load(folder: str | Path) -> Loaded:
    """(spec, params, info) of a checkpoint folder or run folder, checked against the spec."""
    folder = _folder(folder)
    npz, js = folder / "model.npz", folder / "model.json"
    for f in (npz, js):
        if not f.is_file():
            raise CheckpointError(f"checkpoint file missing: {f}")
    try:
        info = json.loads(js.read_text())
        kind = info.get("model") or info["spec"].get("model") or "sequence"
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind '{kind}' (known: {', '.join(MODEL_KINDS)})")
        model = MODEL_KINDS[kind]()
        spec = model.spec_from_dict({k: v for k, v in info["spec"].items() if k != "model"})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"corrupt checkpoint {js}: {exc}") from None
    try:
        with np.load(npz, allow_pickle=False) as z:
            params = {k: z[k] for k in z.files if not k.startswith(STATE_PREFIX)}
            state = {k[len(STATE_PREFIX):]: z[k] for k in z.files if k.startswith(STATE_PREFIX)}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"corrupt checkpoint {npz}: {exc}") from None
    _check(npz, "parameter", model.init_params(spec, np.random.default_rng(0), dtype=np.float64), params)
    _check(npz, "state", model.init_state(spec, dtype=np.float64), state)
    info.update(model=kind, state=state)
    return Loaded(spec, params, info)


def _check(npz: Path, what: str, expected: dict, found: dict) -> None:
    if set(expected) != set(found):
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        detail = "; ".join(p for p in (f"missing {', '.join(missing[:3])}" if missing else "",
                                       f"unexpected {', '.join(extra[:3])}" if extra else "") if p)
        raise CheckpointError(f"checkpoint {npz} does not match its model.json ({what} names differ: {detail})")
    for k, v in expected.items():
        if v.shape != found[k].shape:
            raise CheckpointError(f"checkpoint {npz}: {k} has shape {found[k].shape}, expected {v.shape}")


def load_training_state(folder: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(training_state.json, training_state.npz arrays) of checkpoint_last (or a run folder)."""
    folder = Path(folder)
    if (folder / "checkpoint_last").is_dir():
        folder = folder / "checkpoint_last"
    js, npz = folder / "training_state.json", folder / "training_state.npz"
    for f in (js, npz):
        if not f.is_file():
            raise CheckpointError(f"no training state to resume from: {f} is missing")
    try:
        info = json.loads(js.read_text())
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"corrupt training state in {folder}: {exc}") from None
    return info, arrays


def has_training_state(run_dir: str | Path) -> bool:
    """Whether run_dir holds a completed epoch to resume from (checkpoint_last/'s training state)."""
    return (Path(run_dir) / "checkpoint_last" / "training_state.json").is_file()
