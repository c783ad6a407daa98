"""Lowering a model to a dataflow graph (the ONNX export): the protocol blocks and cells build against.

The engine imports no graph library. An exporter implements `Graph` (``rnnlab.export.onnx_graph`` on
``onnx.helper``) and walks the model's blocks: every block has ``lower(g, flow) -> flow`` (blocks.py),
the graph form of its ``forward`` in evaluation mode, with ``Flow.h`` and ``Flow.final`` holding symbol
names instead of arrays (``final``: per direction a tuple of (B, H) state names, h first, as in forward).
The engine modules lower their own layers next to their forward (``dense.lower``, ``conv1d.lower``,
``attention.multihead_lower``, ...), and cells lower themselves in their own modules (`Cell.lower_sequence`,
`Cell.lower_step` in cells/_protocol.py): a cell with an ONNX recurrent op defines ``lower_sequence`` (the
fused op, its gate permutation), and every built-in cell defines ``lower_step`` (one step as plain ops), which
`scan_sequence` runs in a Scan (cells without a fused op, and zoneout's evaluation recurrence). A block or
cell without a lowering raises `Unsupported` naming itself.

The `Graph` protocol (operator names, attributes and input conventions are ONNX's at opset 17)::

    g.dtype                 np.float32: the type of every float tensor
    g.param(name)           the initializer holding the model parameter (or running statistic) `name`,
                            in g.dtype; made once per name, named like it
    g.value(name)           that parameter's NumPy array, for lowerings that transform it (permuted gate
                            blocks, a transposed weight)
    g.const(value, hint)    a new initializer (float arrays in g.dtype, integer ones as given)
    g.op(op_type, inputs, outputs=1, **attrs)
                            one node; "" skips an optional input; the output's name, or a list of
                            `outputs` names
    g.scan(step, states, sequences, reverse=False)
                            a Scan over axis 1 of the batch-first `sequences` ((B, T, ...) each):
                            ``step(body, states_t, slices_t) -> (new_states, outputs_t)`` builds the body
                            on `body`, a Graph of its own that can read every initializer; returns
                            (final states, per-step outputs (B, T, ...)), outputs aligned with the input
                            positions in both directions

and the symbols of the sequence being lowered (batch-first, made by the exporter from the caller's mask)::

    g.mask   (B, T) float 0/1    g.mask3  (B, T, 1) float    g.keep  (B, T) bool    g.keep3  (B, T, 1) bool
    g.lens   (B,) int32, the number of real steps of each row

Blocks see every row post-padded (its real steps first: the exporter shifts pre-padded rows before the
first block and the per-step outputs back after the last), so ``lens`` describes the mask exactly, as the
fused recurrent ops' ``sequence_lens`` needs. Padded steps follow the engine: the state is carried, the
outputs are 0.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

# ONNX's element type codes (TensorProto.DataType), for Cast's "to"
FLOAT, INT32, INT64, BOOL = 1, 6, 7, 9


class Unsupported(ValueError):
    """A block or cell that has no graph lowering; the message names it (one line)."""


class Graph(Protocol):
    dtype: Any
    mask: str
    mask3: str
    keep: str
    keep3: str
    lens: str

    def param(self, name: str) -> str: ...

    def value(self, name: str) -> np.ndarray: ...

    def const(self, value, hint: str = "const") -> str: ...

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> Any: ...

    def scan(self, step, states: list[str], sequences: list[str], reverse: bool = False
             ) -> tuple[list[str], list[str]]: ...


def axes(*values: int) -> np.ndarray:
    """An int64 axes vector (ReduceSum, Squeeze, Unsqueeze take their axes as an input at opset 17)."""
    return np.array(values, dtype=np.int64)


def transposed(g: Graph, name: str) -> str:
    """A constant holding parameter `name` transposed (a Dense weight (out, in) as MatMul's (in, out))."""
    return g.const(np.ascontiguousarray(g.value(name).T), hint=f"{name}.T")


def batch_zeros(g: Graph, like: str, width: int) -> str:
    """Zeros (B, width) with the batch size of `like` (a batch-first tensor)."""
    batch = g.op("Shape", [like], start=0, end=1)
    shape = g.op("Concat", [batch, g.const(axes(width))], axis=0)
    return g.op("Expand", [g.const(np.zeros((1, width))), shape])


def fused_sequence(g: Graph, op_type: str, W, R, B, x: str, num_states: int, **attrs):
    """One ONNX RNN / GRU / LSTM node over x (B, T, D) for the stacked per-direction weights W (nd, G*H, D),
    R (nd, G*H, H), B (nd, 2*G*H) (already in the op's gate order), with ``sequence_lens`` = g.lens and zero
    initial states. Returns (per direction y (B, T, H), per direction the final state tuple (B, H) each).

    The ops are time-major (onnxruntime refuses layout=1), hence the transposes. At t >= lens the op
    outputs 0 and its final states are those after the last real step, as the engine; a length-0 row gets
    zero final states, which are the engine's carried initial states here (always zero)."""
    nd, _, H = R.shape
    xt = g.op("Transpose", [x], perm=[1, 0, 2])
    outs = g.op(op_type, [xt, g.const(W, f"{op_type}.W"), g.const(R, f"{op_type}.R"), g.const(B, f"{op_type}.B"),
                          g.lens], outputs=1 + num_states, hidden_size=int(H),
                direction="bidirectional" if nd == 2 else "forward", **attrs)
    y = g.op("Transpose", [outs[0]], perm=[2, 0, 1, 3])  # (T, nd, B, H) -> (B, T, nd, H)
    ys, finals = [], []
    for d in range(nd):
        at = g.const(np.array(d, dtype=np.int64))
        ys.append(g.op("Gather", [y, at], axis=2))
        finals.append(tuple(g.op("Gather", [s, at], axis=0) for s in outs[1:]))
    return ys, finals


def gate_rows(w: np.ndarray, order) -> np.ndarray:
    """w (G*H, ...) or (G*H,) with its H-row gate blocks taken in `order` (indices into the blocks)."""
    blocks = np.split(np.asarray(w), len(order), axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def pytorch_weights(g: Graph, keys: list[dict[str, str]], order=(0,)):
    """(W, R, B) of an ONNX recurrent op from PyTorch-layout parameters (weight_ih, weight_hh, bias_ih,
    bias_hh) per direction, gate blocks taken in `order` (PyTorch's gate order -> the op's)."""
    def rows(k, name):
        return gate_rows(g.value(k[name]), order)

    W = np.stack([rows(k, "weight_ih") for k in keys])
    R = np.stack([rows(k, "weight_hh") for k in keys])
    B = np.stack([np.concatenate([rows(k, "bias_ih"), rows(k, "bias_hh")]) for k in keys])
    return W, R, B


def affine(g: Graph, x: str, weight: str, bias: str) -> str:
    """x (B, in) W^T + b for 2-D x with W (out, in) parameters (Gemm is 2-D only)."""
    return g.op("Gemm", [x, g.param(weight), g.param(bias)], transB=1)


def scan_sequence(cell, g: Graph, keys: list[dict[str, str]], x: str, zoneout: float = 0.0, options=None):
    """Any cell over x (B, T, D) as one Scan per direction around its ``lower_step``: the graph form of
    the per-step runner (cells/_stepwise.py) in evaluation mode, zoneout's expectation included
    (s_t = z s_{t-1} + (1 - z) s_new for every state). Masks as the runner: a padded step carries the
    state and outputs 0. keys: per direction (forward, then reverse) the cell's parameter name -> the
    model's. Returns (per direction y (B, T, H), per direction the final state tuple)."""
    options = dict(options or {})
    _, H = cell.sizes({k: g.value(v) for k, v in keys[0].items()})
    zero = batch_zeros(g, x, H)
    z = float(zoneout)
    ys, finals = [], []
    for d, k in enumerate(keys):
        def step(b, states, slices, k=k):
            x_t, m_t = slices  # (B, D), (B, 1)
            new = cell.lower_step(b, k, x_t, tuple(states), **options)
            if z:
                keep_old, take_new = b.const(np.array(z)), b.const(np.array(1.0 - z))
                new = [b.op("Add", [b.op("Mul", [keep_old, old]), b.op("Mul", [take_new, nw])])
                       for nw, old in zip(new, states, strict=True)]
            real = b.op("Cast", [m_t], to=BOOL)
            carried = [b.op("Where", [real, nw, old]) for nw, old in zip(new, states, strict=True)]
            return carried, [b.op("Mul", [new[0], m_t])]

        final, (y,) = g.scan(step, [zero] * cell.num_states, [x, g.mask3], reverse=d == 1)
        ys.append(y)
        finals.append(tuple(final))
    return ys, finals


def masked_softmax(g: Graph, scores: str, keep: str | None) -> str:
    """Softmax over the last axis with weight exactly 0 where keep (bool, broadcastable) is False; a row
    with nothing kept is all 0 (attention.masked_softmax)."""
    if keep is None:
        return g.op("Softmax", [scores], axis=-1)
    ninf = g.const(np.array(-np.inf))
    w = g.op("Softmax", [g.op("Where", [keep, scores, ninf])], axis=-1)
    return g.op("Where", [keep, w, g.const(np.array(0.0))])  # a row with nothing kept is NaN before this
