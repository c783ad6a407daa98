"""What a cell module declares, and the `Cell` handle the rest of rnnlab uses.

A cell module (one per cell, in this package or a user's own module) defines:

==================  =========================================================================
``NAME``            the name configs use (``arch.cell=NAME``)
``NUM_STATES``      states carried between steps, h first (LSTM: 2, (h, c))
``PARAM_NAMES``     parameter names of one layer direction (PyTorch's where PyTorch has the cell)
``sizes(params)``   -> (input size D, hidden size H)
``init_params(rng, input_size, hidden_size, dtype=np.float32, **options)``
``step_forward(params, x_t, state, rec_mask=None, **options)`` -> ``state_new, cache``
``step_backward(dstate_new, cache)`` -> ``dx_t, dstate, grads``
``step_activations(cache)`` -> ``{name: (kind, (B, H) array)}``
==================  =========================================================================

and optionally:

==================  =========================================================================
``STATE_NAMES``     names of the states (default ``("h", "c", ...)``)
``GATES``           names of the gate blocks stacked along the recurrent weight's rows
``OPTIONS``         ``{name: Option(default, ...)}``: the cell's own settings (e.g. nonlinearity)
``check_options``   ``check_options(options)``: raises ValueError when options conflict with each other
``RECURRENT``       a `Recurrent`: the parameter carrying the state and its kind, for the weight monitor
``LABELS``          ``{activation name: description}`` for plots
``forward`` /       the tuned sequence kernels (``forward(params, x, state0=None, mask=None,
``backward``        reverse=False, **options)`` -> ``(hs, stateT), cache`` and ``backward(params,
                    dhs, dstateT, cache, dh_trace=None)`` -> ``dx, dstate0, grads``); without
                    them the cell runs on the per-step runner (``_stepwise``)
``activations``     ``activations(cache)`` -> ``{name: (kind, (B, T, H) array)}`` from forward's cache
``infer``           ``infer(params, x, state0=None, mask=None, reverse=False, out=None, **options)``
                    -> ``(hs, stateT)``: forward's numbers without a cache, for evaluation (hs
                    written into `out`, a writable (B, T, H) view, when given); without it the
                    cell's forward runs and its cache is dropped
``after_step``      ``after_step(params, **options)``: a projection applied in place after every
                    optimizer step (IndRNN's bound on its recurrent weights)
``lower_step``      ``lower_step(g, keys, x_t, state, **options)`` -> the new state tuple: one step in
                    evaluation mode as graph ops (``rnnlab.engine.lowering``); `keys` maps the cell's
                    parameter names to the model's (``g.param(keys["weight_ih"])``); x_t (B, D) and
                    the states (B, H) are symbol names. Needed to export the cell (ONNX)
``lower_sequence``  ``lower_sequence(g, keys, x, **options)`` -> ``(ys, finals)``: the layer as one
                    fused graph op (ONNX LSTM / GRU / RNN) over x (B, T, D) with ``g.lens``; `keys`
                    per direction (forward, then reverse); ys per direction (B, T, H), finals per
                    direction a state tuple. Without it the export runs ``lower_step`` in a Scan
``STANDALONE``      ``{export format: source}``: the cell written for a generated file outside
                    rnnlab (``rnnlab export``): "numpy" defines ``cell_step(p, x, state,
                    **options)`` -> the new state tuple (NumPy only; the file's prelude gives
                    ``sigmoid`` and ``layer_norm(x, gamma, beta, eps)``); "torch" also defines
                    ``cell_module(input_size, hidden_size, bidirectional, **options)`` -> an
                    ``nn.Module`` holding ``<param>_l0`` (and ``<param>_l0_reverse``) and
                    ``CELL_NATIVE`` (True when that module runs whole sequences: torch.nn's cells);
                    "keras" defines ``cell_layer(hidden_size, go_backwards, dtype, **options)`` ->
                    a Keras RNN layer returning sequences and states, and ``cell_weights(p,
                    **options)`` -> its weights (NumPy) from the cell's parameters
==================  =========================================================================

Step pairs follow cs231n's ``rnn_layers.py``: ``state`` is a tuple of (B, H) arrays, ``x_t``
(B, D); the step's cache holds what its backward needs (parameters included). ``rec_mask``
(B, H) is recurrent (variational) dropout: the cell multiplies h_{t-1} by it where h_{t-1}
enters its recurrent product. Activation kinds are "sigmoid", "tanh" and "relu" (what the
saturation analysis bounds) and "linear" (unbounded, e.g. a cell state). Options reach every
function that names them as keywords.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from rnnlab.engine import lowering
from rnnlab.engine.cells import _stepwise

REQUIRED = ("NAME", "NUM_STATES", "PARAM_NAMES", "sizes", "init_params", "step_forward", "step_backward",
            "step_activations")
KINDS = ("sigmoid", "tanh", "relu", "linear")  # linear: unbounded (the LSTM's cell state), never saturates


@dataclass(frozen=True)
class Option:
    """A cell setting: its default, and the allowed values (``choices``) or a range check."""

    default: Any
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    doc: str = ""

    def check(self, key: str, value: Any) -> Any:
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{key} must be one of {', '.join(map(str, self.choices))} (got {value!r})")
            return value
        if self.low is not None or self.high is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number (got {value!r})")
            if self.high is None and value < self.low:
                raise ValueError(f"{key} must be >= {self.low} (got {value})")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ValueError(f"{key} must be in [{self.low}, {self.high}] (got {value})")
        return value


@dataclass(frozen=True)
class Recurrent:
    """The parameter that carries the state from step to step, for the weight monitor.

    kind "matrix": (G*H, H) rows stacked in ``blocks`` order (one H x H block per gate, or the
    whole square matrix when there are no blocks); "diagonal": an (H,) vector of per-unit weights
    (IndRNN). ``carrier``: the block whose spectral radius stands for the layer (the candidate).
    """

    param: str = "weight_hh"
    kind: str = "matrix"
    blocks: tuple[str, ...] = ()
    carrier: str | None = None


@dataclass(frozen=True, eq=False)
class Cell:
    """A registered cell: the module's declarations with defaults filled in, and its functions
    called with just the options each accepts."""

    name: str
    module: ModuleType
    num_states: int
    state_names: tuple[str, ...]
    param_names: tuple[str, ...]
    gates: tuple[str, ...]
    options: Mapping[str, Option]
    recurrent: Recurrent | None
    labels: Mapping[str, str]
    tuned: bool  # the module has its own forward/backward kernels
    standalone: Mapping[str, str] = field(default_factory=dict)  # export format -> the cell's source there
    _accepts: Mapping[str, frozenset] = field(repr=False, default_factory=dict)

    def __repr__(self) -> str:
        return f"Cell({self.name!r})"

    # ---------------------------------------------------------------- options

    def resolve(self, given: Mapping[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
        """The cell's options: defaults updated with `given` (unknown names and bad values raise
        ValueError naming ``prefix + name``)."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            close = difflib.get_close_matches(unknown[0], list(self.options), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"{prefix}{unknown[0]}: cell {self.name} has no option {unknown[0]!r} "
                             f"(its options: {known}{hint})")
        out = {k: o.default for k, o in self.options.items()}
        for k, v in given.items():
            out[k] = self.options[k].check(f"{prefix}{k}", v)
        check = getattr(self.module, "check_options", None)
        if check is not None:
            try:
                check(out)
            except ValueError as exc:
                raise ValueError(f"{prefix.rstrip('.') or 'cell options'}: {exc}") from None
        return out

    def _opts(self, fn: str, options: Mapping[str, Any]) -> dict[str, Any]:
        accepted = self._accepts.get(fn, frozenset())
        return {k: v for k, v in options.items() if k in accepted}

    # ---------------------------------------------------------------- the protocol, uniformly

    def sizes(self, params) -> tuple[int, int]:
        return self.module.sizes(params)

    def init_params(self, rng, input_size: int, hidden_size: int, dtype=np.float32, **options):
        return self.module.init_params(rng, input_size, hidden_size, dtype, **self._opts("init_params", options))

    def forward(self, params, x, state0=None, mask=None, reverse=False, **options):
        """The tuned kernel (or the per-step runner): ``(hs, stateT), cache``."""
        if self.tuned:
            return self.module.forward(params, x, state0, mask, reverse, **self._opts("forward", options))
        return self.stepwise_forward(params, x, state0, mask, reverse, **options)

    def infer(self, params, x, state0=None, mask=None, reverse=False, out=None, **options):
        """``(hs, stateT)`` as forward gives them, without a cache (the module's ``infer``, else its
        forward); with `out` ((B, T, H), writable) hs is written there and returned."""
        fn = getattr(self.module, "infer", None)
        if fn is not None:
            return fn(params, x, state0, mask, reverse, out, **self._opts("infer", options))
        (hs, stateT), _ = self.forward(params, x, state0, mask, reverse, **options)
        if out is None:
            return hs, stateT
        np.copyto(out, hs)
        return out, stateT

    def backward(self, params, dhs, dstateT, cache, dh_trace=None):
        if cache.get("stepwise"):
            return self.stepwise_backward(params, dhs, dstateT, cache, dh_trace)
        return self.module.backward(params, dhs, dstateT, cache, dh_trace)

    def step_forward(self, params, x_t, state, rec_mask=None, **options):
        return self.module.step_forward(params, x_t, state, rec_mask, **self._opts("step_forward", options))

    def step_backward(self, dstate, cache):
        return self.module.step_backward(dstate, cache)

    def step_activations(self, cache):
        return self.module.step_activations(cache)

    def activations(self, cache) -> dict[str, tuple[str, np.ndarray]]:
        """Named intermediates of a forward cache, each (kind, (B, T, H) array), from either runner."""
        if cache.get("stepwise"):
            return _stepwise.activations(self, cache)
        return self.module.activations(cache)

    def stepwise_forward(self, params, x, state0=None, mask=None, reverse=False, *, rec_mask=None,
                         zone_masks=None, zoneout_eval=None, **options):
        """The per-step runner over the step pair, with recurrent dropout and zoneout (``_stepwise``)."""
        return _stepwise.forward(self, params, x, state0, mask, reverse, rec_mask=rec_mask, zone_masks=zone_masks,
                                 zoneout_eval=zoneout_eval, **options)

    def stepwise_backward(self, params, dhs, dstateT, cache, dh_trace=None):
        return _stepwise.backward(self, params, dhs, dstateT, cache, dh_trace)

    def after_step(self, params, **options) -> None:
        fn = getattr(self.module, "after_step", None)
        if fn is not None:
            fn(params, **self._opts("after_step", options))

    # ---------------------------------------------------------------- graph lowering (export)

    def lower_sequence(self, g, keys, x, zoneout: float = 0.0, **options):
        """The layer over x (B, T, D) in graph ops: the module's fused op, or its ``lower_step`` in a Scan
        (no fused op, or zoneout, whose evaluation recurrence no fused op has). ``(ys, finals)`` per
        direction, as the module's ``lower_sequence``."""
        fused = getattr(self.module, "lower_sequence", None)
        if fused is not None and not zoneout:
            return fused(g, keys, x, **self._opts("lower_sequence", options))
        self._needs_lowering()
        return lowering.scan_sequence(self, g, keys, x, zoneout, options)

    def lower_step(self, g, keys, x_t, state, **options):
        """One step in graph ops: the new state tuple (names)."""
        self._needs_lowering()
        return self.module.lower_step(g, keys, x_t, state, **self._opts("lower_step", options))

    def _needs_lowering(self) -> None:
        if not hasattr(self.module, "lower_step"):
            raise lowering.Unsupported(f"cell '{self.name}' ({self.module.__name__}) has no graph lowering "
                                       "(its module defines no lower_step)")


def _keywords(fn: Callable) -> frozenset:
    sig = inspect.signature(fn)
    return frozenset(n for n, p in sig.parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def make_cell(module: ModuleType) -> Cell:
    """Check a module against the protocol and wrap it (ValueError naming what is missing)."""
    missing = [a for a in REQUIRED if not hasattr(module, a)]
    if missing:
        raise ValueError(f"cell module '{module.__name__}' lacks {', '.join(missing)} (see rnnlab.engine.cells)")
    tuned = hasattr(module, "forward")
    if tuned != hasattr(module, "backward") or (tuned and not hasattr(module, "activations")):
        raise ValueError(f"cell module '{module.__name__}': forward, backward and activations come together")
    n = int(module.NUM_STATES)
    options = dict(getattr(module, "OPTIONS", {}))
    for k, o in options.items():
        if not isinstance(o, Option):
            raise ValueError(f"cell module '{module.__name__}': OPTIONS[{k!r}] must be an Option")
    fns = ("init_params", "forward", "infer", "step_forward", "after_step", "lower_step", "lower_sequence")
    accepts = {f: _keywords(getattr(module, f)) & set(options) for f in fns if hasattr(module, f)}
    default_names = ("h", "c") + tuple(f"s{k}" for k in range(2, n))
    return Cell(
        name=str(module.NAME),
        module=module,
        num_states=n,
        state_names=tuple(getattr(module, "STATE_NAMES", default_names[:n])),
        param_names=tuple(module.PARAM_NAMES),
        gates=tuple(getattr(module, "GATES", ())),
        options=options,
        recurrent=getattr(module, "RECURRENT", None),
        labels=dict(getattr(module, "LABELS", {})),
        tuned=tuned,
        standalone=dict(getattr(module, "STANDALONE", {})),
        _accepts=accepts,
    )
