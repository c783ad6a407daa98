"""The engine's graph-builder protocol (`rnnlab.engine.lowering.Graph`) on ``onnx.helper``.

`OnnxGraph` collects one graph's nodes and the initializers of every graph built from it (a Scan body
reads its parent's initializers by name), names every value once, and makes the model (opset 17,
ir_version 8: onnxruntime loads it, and so do runtimes older than the installed onnx's IR 14).
`start_sequence(mask)` gives the sequence symbols the blocks read (g.mask, g.lens, ...) and the
shift between the caller's rows and the post-padded ones the blocks see (`Alignment`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from rnnlab.engine import lowering
from rnnlab.engine.lowering import BOOL, FLOAT, INT32, INT64, axes

OPSET = 17
IR_VERSION = 8
_SMALL = 16  # constants up to this many entries are shared by value


@dataclass
class _Shared:
    """What a graph and its Scan bodies share: the values, initializers and the names taken."""

    values: dict[str, np.ndarray]
    dtype: np.dtype
    initializers: dict[str, TensorProto] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # parameter name -> initializer name
    small: dict[tuple, str] = field(default_factory=dict)  # (dtype, shape, bytes) -> initializer name
    names: set[str] = field(default_factory=set)

    def name(self, hint: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.]", "_", hint) or "v"
        name, k = base, 0
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name


class OnnxGraph:
    """One graph (the model's, or a Scan body's) implementing `rnnlab.engine.lowering.Graph`."""

    def __init__(self, values: dict[str, np.ndarray], dtype=np.float32, *, _shared: _Shared | None = None):
        self._shared = _shared or _Shared(values, np.dtype(dtype))
        self.dtype = self._shared.dtype
        self.nodes: list = []
        self.inputs: list = []
        self.outputs: list = []
        self._sequence: dict[str, str] | None = None

    # ------------------------------------------------------------------ the protocol

    def value(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self._shared.values[name])
        except KeyError:
            raise lowering.Unsupported(f"no parameter or running statistic named {name!r}") from None

    def param(self, name: str) -> str:
        known = self._shared.params.get(name)
        if known is None:
            known = self._shared.params[name] = self._initializer(self.value(name), name)
        return known

    def const(self, value, hint: str = "const") -> str:
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(self.dtype)
        if arr.size > _SMALL:
            return self._initializer(arr, hint)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        known = self._shared.small.get(key)
        if known is None:
            known = self._shared.small[key] = self._initializer(arr, hint)
        return known

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, domain: str = "", **attrs):
        names = [self._shared.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, domain=domain or None, **attrs))
        return names[0] if outputs == 1 else names

    def scan(self, step, states: list[str], sequences: list[str], reverse: bool = False):
        body = OnnxGraph({}, _shared=self._shared)
        s_in = [self._shared.name("state_in") for _ in states]
        x_in = [self._shared.name("slice") for _ in sequences]
        new_states, outs = step(body, s_in, x_in)
        # a body output must be a value the body makes, and each one only once
        made, seen = [], set(s_in + x_in)
        for n in [*new_states, *outs]:
            if n in seen:
                n = body.op("Identity", [n])
            seen.add(n)
            made.append(n)
        info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in s_in + x_in]
        graph = helper.make_graph(body.nodes, self._shared.name("scan_body"), info,
                                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in made])
        d = 1 if reverse else 0
        res = self.op("Scan", [*states, *sequences], outputs=len(made), body=graph,
                      num_scan_inputs=len(sequences), scan_input_axes=[1] * len(sequences),
                      scan_input_directions=[d] * len(sequences), scan_output_axes=[1] * len(outs),
                      scan_output_directions=[d] * len(outs))
        res = [res] if len(made) == 1 else res
        return res[: len(states)], res[len(states):]

    # ------------------------------------------------------------------ sequence symbols

    @property
    def mask(self) -> str:
        return self._symbol("mask")

    @property
    def mask3(self) -> str:
        return self._symbol("mask3")

    @property
    def keep(self) -> str:
        return self._symbol("keep")

    @property
    def keep3(self) -> str:
        return self._symbol("keep3")

    @property
    def lens(self) -> str:
        return self._symbol("lens")

    def _symbol(self, what: str) -> str:
        if self._sequence is None:
            raise lowering.Unsupported(f"{what}: this graph has no sequence (a step lowering may not read the mask)")
        return self._sequence[what]

    def start_sequence(self, mask: str) -> Alignment:
        """The sequence symbols from the caller's mask (B, T) (1 = real step; each row one run of real steps,
        padded after or before), in the post-padded frame the blocks see; returns the shift between frames."""
        i64 = lambda v: self.const(np.array(v, dtype=np.int64))  # noqa: E731
        real = self.op("Cast", [self.op("Cast", [mask], to=BOOL)], to=FLOAT)  # nonzero = real, as the engine
        steps = self.op("Gather", [self.op("Shape", [mask]), i64(1)], axis=0)
        pos = self.op("Range", [i64(0), steps, i64(1)])  # (T,)
        first = self.op("ArgMax", [real], axis=1, keepdims=1)  # (B, 1): the first real step (0 in an empty row)
        count = self.op("Cast", [self.op("ReduceSum", [real, self.const(axes(1))], keepdims=1)], to=INT64)  # (B, 1)
        keep = self.op("Less", [pos, count])  # (B, T): post-padded
        mask_f = self.op("Cast", [keep], to=FLOAT)
        self._sequence = {
            "keep": keep, "mask": mask_f,
            "keep3": self.op("Unsqueeze", [keep, self.const(axes(2))]),
            "mask3": self.op("Unsqueeze", [mask_f, self.const(axes(2))]),
            "lens": self.op("Cast", [self.op("Reshape", [count, i64([-1])])], to=INT32),
        }
        to_left = self.op("Mod", [self.op("Add", [pos, first]), steps])  # rotate each row left by its first step
        to_caller = self.op("Mod", [self.op("Add", [self.op("Sub", [pos, first]), steps]), steps])
        return Alignment(self, to_left, to_caller)

    # ------------------------------------------------------------------ inputs, outputs, model

    def input(self, name: str, elem_type: int, shape: list) -> str:
        self._take(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, value: str, name: str, elem_type: int, shape: list) -> None:
        self._take(name)
        self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def model(self, name: str, doc: str, metadata: dict[str, str]):
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs,
                                  initializer=list(self._shared.initializers.values()))
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="rnnlab", doc_string=doc)
        helper.set_model_props(m, metadata)
        return m

    def _take(self, name: str) -> None:
        if name in self._shared.names:
            raise ValueError(f"graph value name {name!r} is taken")
        self._shared.names.add(name)

    def _initializer(self, arr: np.ndarray, hint: str) -> str:
        arr = np.asarray(arr)
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(self.dtype)
        name = self._shared.name(hint)
        # copy, not np.ascontiguousarray, which turns a 0-d array into a 1-d one
        self._shared.initializers[name] = numpy_helper.from_array(arr.copy(order="C"), name)
        return name


@dataclass
class Alignment:
    """Moves batch-first sequences between the caller's rows and the post-padded rows the blocks see: a
    rotation of each row by its first real step (GatherElements), so pre-padded rows work with the
    fused recurrent ops' sequence_lens. Every block treats padded steps alike wherever they are, so the
    model gives the same numbers in either frame."""

    g: OnnxGraph
    left: str  # (B, T) source step of each post-padded step
    back: str  # (B, T) the inverse

    def to_left(self, x: str, rank: int) -> str:
        return self._gather(x, self.left, rank)

    def to_caller(self, y: str, rank: int) -> str:
        return self._gather(y, self.back, rank)

    def _gather(self, x: str, index: str, rank: int) -> str:
        g = self.g
        if rank == 3:
            index = g.op("Expand", [g.op("Unsqueeze", [index, g.const(axes(2))]), g.op("Shape", [x])])
        return g.op("GatherElements", [x, index], axis=1)
