"""The recurrent cells: one module each in this package, and the registry every other module reads.

``get(name)`` returns a `Cell` (see ``_protocol`` for what a cell module declares); ``names()``
lists the registered cells. The registry is built from this package's modules (those not
starting with ``_``), so a new cell is one new module: nothing else lists cells.

A cell from the user's own code plugs in two ways (as ``keras.layers.RNN(cell)`` takes any cell):

* ``register_cell(module)`` from Python, after which ``arch.cell=<its NAME>`` works in-process;
* ``arch.cell=package.module`` (an import path) from the command line or a config: the module is
  imported and registered under that path, so a checkpoint naming it loads again wherever the
  module is importable.

A module needs only the step pair (``step_forward`` / ``step_backward``), ``step_activations``,
``sizes`` and ``init_params``; the per-step runner then gives it sequences, masks, both
directions, zoneout and recurrent dropout. Tuned ``forward`` / ``backward`` kernels are optional.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from rnnlab.engine.cells._protocol import Cell, Option, Recurrent, make_cell

__all__ = ["Cell", "Option", "Recurrent", "get", "names", "register_cell"]

_REGISTRY: dict[str, Cell] = {}
_state = {"discovered": False}


def _discover() -> None:
    """Register this package's cell modules once (before any user cell, so built-in names win)."""
    if _state["discovered"]:
        return
    _state["discovered"] = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            register_cell(importlib.import_module(f"{__name__}.{info.name}"))


def register_cell(module: ModuleType, name: str | None = None) -> Cell:
    """Register a cell module (under its NAME, or `name`); returns its `Cell`. ValueError when the
    module does not fulfil the protocol or the name is taken by another module."""
    _discover()
    cell = make_cell(module)
    key = name or cell.name
    old = _REGISTRY.get(key)
    if old is not None and old.module is not module:
        raise ValueError(f"cell name {key!r} is already registered (by {old.module.__name__})")
    _REGISTRY[key] = cell
    return cell


def names() -> tuple[str, ...]:
    """The built-in cells, then any registered from user code, in registration order."""
    _discover()
    return tuple(_REGISTRY)


def get(name: str) -> Cell:
    """The cell called `name`, or the cell module at the import path `name`."""
    _discover()
    cell = _REGISTRY.get(name)
    if cell is not None:
        return cell
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):  # no such module (not a failing import inside)
            raise ValueError(f"unknown cell '{name}' (choose from: {', '.join(_REGISTRY)}, "
                             "or a module path)") from None
        raise ValueError(f"cell module '{name}' cannot be imported ({exc})") from None
    except (ImportError, ValueError, TypeError) as exc:
        raise ValueError(f"cell module '{name}' cannot be imported ({exc})") from None
    return register_cell(module, name)
