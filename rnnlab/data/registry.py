"""Data sets by `data.name`; each loader takes its typed config and a seeded generator."""

from __future__ import annotations

import importlib

from rnnlab.data.seq2seq_tasks import Seq2SeqTask

LOADERS = {
    "sine": "rnnlab.data.sine",
    "csv": "rnnlab.data.timeseries",
    "adding": "rnnlab.data.adding",
    "imdb": "rnnlab.data.imdb",
    "copy": "rnnlab.data.copy_task",
    "textlm": "rnnlab.data.textlm",
    "echo": "rnnlab.data.echo",
    "seqfile": "rnnlab.data.seqfile",
    # seq2seq tasks: load returns a Seq2SeqTask (see is_seq2seq), trained through rnnlab.train.tasks.seq2seq
    "reverse_digits": "rnnlab.data.seq2seq_tasks:load_reverse_digits",
    "sine2cosine": "rnnlab.data.seq2seq_tasks:load_sine2cosine",
}


def load(cfg, rng, dtype, cv=None, seed: int = 0):
    """The data set of `cfg`; with `cv.fold` set, its train/val re-split into that fold (folds.py, seeded)."""
    module, _, fn = LOADERS[cfg.name].partition(":")
    data = getattr(importlib.import_module(module), fn or "load")(cfg, rng, dtype)
    if cv is not None and cv.fold is not None:  # before as_recursive, which keeps one-step train targets
        from rnnlab.data.folds import resplit

        data = resplit(data, cv, seed, cfg.name)
    if getattr(data, "refit", None) is not None:
        data.refit = None  # only resplit needs it: free the unprocessed data it holds
    strategy = getattr(cfg, "strategy", "direct")
    if strategy in ("recursive", "stream"):
        from rnnlab.data.windows import as_recursive, as_stream

        data = as_recursive(data) if strategy == "recursive" else as_stream(data)
    return data


def is_seq2seq(data) -> bool:
    """True for the encoder-decoder tasks (a Seq2SeqTask rather than a TaskData)."""

    return isinstance(data, Seq2SeqTask)
