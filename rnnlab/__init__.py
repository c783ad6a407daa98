"""rnnlab: a command-line lab for recurrent neural networks (NumPy engine, Hydra configs, Typer CLI).

In Python: ``rnnlab.load_run(path)`` gives a trained run (or an export) for use; ``rnnlab.api`` composes,
trains and loads (`rnnlab.api.compose`, `train`, `load_run`). Nothing heavy is imported here, so the
command line starts fast.
"""

from __future__ import annotations


def load_run(path, which: str = "checkpoint"):
    """A trained run folder, or a folder `rnnlab export` wrote, for use: config, summary, metrics frame,
    weights, ``predict(...)`` on raw inputs and ``forward(x, mask)`` on arrays (`rnnlab.api.load_run`)."""
    from rnnlab.api import load_run as load

    return load(path, which)
