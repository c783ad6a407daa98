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
    return importlib.import_module(LOADERS[cfg.name]).load(cfg, rng, dtype)
