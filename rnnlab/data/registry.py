"""Data sets by `data.name`; each loader takes its typed config and a seeded generator."""

from __future__ import annotations

import importlib

LOADERS = {
    "sine": "rnnlab.data.sine",
    "csv": "rnnlab.data.timeseries",
    "adding": "rnnlab.data.adding",
    "imdb": "rnnlab.data.imdb",
    "copy": "rnnlab.data.copy_task",
    "seqfile": "rnnlab.data.seqfile",
}


def load(cfg, rng, dtype):
    data = importlib.import_module(LOADERS[cfg.name]).load(cfg, rng, dtype)
    if getattr(cfg, "strategy", "direct") == "recursive":
        from rnnlab.data.windows import as_recursive

        data = as_recursive(data)
    return data
