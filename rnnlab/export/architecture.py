"""A model's architecture as plain JSON data, for the formats that generate code around it (numpy, torch).

``describe(spec)`` lists what inference runs: for a sequence model one entry per engine block
(``model.blocks_of``) with its ``kind`` and settings, dropout left out (it is the identity in
evaluation); for a seq2seq model the spec's settings. One describer per block class, so a new block
is a new describer here (and its snippet in each format), never an edit of a function that walks
the blocks. Parameter names inside an entry are the model's (``rnn.weight_ih_l0``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from rnnlab.engine import blocks as B
from rnnlab.engine import cells, model
from rnnlab.export.base import ExportError
from rnnlab.record import checkpoint


def _recurrent(b: B.Recurrent) -> dict:
    return {"kind": "recurrent", "layer": b.layer, "cell": b.cell.name, "options": dict(b.options),
            "input_size": b.input_size, "hidden_size": b.hidden_size, "reverses": list(b.reverses),
            "merge_mode": b.merge_mode, "zoneout": float(b.zoneout), "num_states": b.cell.num_states,
            "param_names": list(b.cell.param_names), "params": [b.direction_keys(rev) for rev in b.reverses]}


DESCRIBERS: dict[type, Callable[[Any], dict | None]] = {
    B.Input: lambda b: {"kind": "input"},
    B.Embedding: lambda b: {"kind": "embedding", "vocab_size": b.vocab_size, "dim": b.dim,
                            "padding_idx": b.padding_idx, "params": dict(b.keys)},
    B.Dropout: lambda b: None,
    B.Conv: lambda b: {"kind": "conv", "in_channels": b.in_channels, "channels": b.channels, "kernel": b.kernel,
                       "dilation": b.dilation, "params": dict(b.keys)},
    B.Recurrent: _recurrent,
    B.LayerNorm: lambda b: {"kind": "layer_norm", "name": b.name, "features": b.features, "params": dict(b.keys)},
    B.BatchNorm: lambda b: {"kind": "batch_norm", "name": b.name, "features": b.features, "params": dict(b.keys),
                            "state": dict(b.state_keys)},
    B.SelfAttention: lambda b: {"kind": "self_attention", "features": b.features, "heads": b.heads,
                                "causal": b.causal, "params": dict(b.keys)},
    B.PoolLast: lambda b: {"kind": "pool_last", "merge_mode": b.merge_mode},
    B.PoolMean: lambda b: {"kind": "pool_mean"},
    B.PoolMax: lambda b: {"kind": "pool_max"},
    B.PoolAttention: lambda b: {"kind": "pool_attention", "features": b.features, "params": dict(b.keys)},
    B.PoolNone: lambda b: {"kind": "pool_none"},
    B.Head: lambda b: {"kind": "head", "features": b.features, "outputs": b.outputs, "per_step": b.per_step,
                       "params": dict(b.keys)},
}


def describe_blocks(spec, fmt: str) -> list[dict]:
    """The blocks inference runs, in order (ExportError naming a block `fmt` has no describer for)."""
    out = []
    for block in model.blocks_of(spec):
        describer = DESCRIBERS.get(type(block))
        if describer is None:
            raise ExportError(f"--format {fmt}: block {type(block).__name__} ({block.name}) has no export description")
        entry = describer(block)
        if entry is not None:
            out.append(entry)
    return out


def describe(spec, params: dict, fmt: str) -> dict:
    """{"model": "sequence" | "seq2seq", "spec": the spec's fields, "dtype": the parameters' dtype,
    "blocks": [...] (sequence models)}."""
    kind = checkpoint.kind_of(spec)
    arch: dict[str, Any] = {"model": kind, "spec": dataclasses.asdict(spec), "dtype": str(params["head.weight"].dtype)}
    if kind == "sequence":
        arch["blocks"] = describe_blocks(spec, fmt)
    else:
        arch["cell_options"] = dict(spec.cell_kwargs)
        arch["num_states"] = cells.get(spec.cell).num_states
    return arch


def cell_source(cell_name: str, language: str, fmt: str) -> str:
    """The cell's source in `language` (its module's ``STANDALONE[language]``), or ExportError naming the
    cell and the format `fmt` that needs it."""
    source = cells.get(cell_name).standalone.get(language)
    if source is None:
        raise ExportError(f"--format {fmt}: cell {cell_name} has no {language} source "
                          f"(STANDALONE[{language!r}] in its module)")
    return source
