"""A sequence model as a list of blocks: [embedding] -> dropout -> [conv] -> recurrent stack -> [self-attention]
-> pooling -> dropout -> head.

Shapes: x (B, T, D) float, or token ids (B, T) int when the spec has an embedding (`vocab_size` set;
D is then `embed_dim`); mask (B, T) of 0/1 or None; output (B, output_size), or (B, T, output_size)
with pooling "none".

`blocks(spec)` lists the blocks (``rnnlab.engine.blocks``); `forward` runs them in order and
`backward` walks them in reverse, so neither names a block; `infer` runs them for evaluation
without caches (what `predict` and the evaluation of splits use). Per recurrent layer: dropout between
layers (`dropout`, from the second layer on), the recurrent layer (any registered cell, uni- or
bidirectional with `merge_mode`; `recurrent_dropout` / `zoneout` run it on the cell's per-step runner),
then LayerNorm (`layer_norm`) or BatchNorm (`batch_norm`, masked statistics over the real steps; its
running statistics are a separate `state` dict, `init_state`). Then multi-head self-attention with a
residual (`self_attention_heads`; not with pooling "last", which reads the final states the block
never sees), pooling ("last": final states; "mean"/"max" over unmasked steps; "attention": learned
weights; "none": every step), dropout (`output_dropout`) and a Dense head. Padded steps never change
a prediction; with pooling "none" they output exactly 0 and pass no gradient back.

Parameters live in one flat dict with PyTorch's names, so a checkpoint maps 1:1 onto
`torch.nn.LSTM/GRU/RNN` (`rnn.weight_ih_l0`, `rnn.weight_hh_l0_reverse`, ...) plus `head.weight`,
`head.bias`, and where present `embedding.weight`, `conv.*`, `norm{l}.*`, `bn{l}.*`, `mhsa.*`, `attn.*`.
The protocol is micrograd-sized: `init_params`, `forward -> (y, cache)`, `backward -> (grads, dx)`
with grads keyed like params. Nothing is kept between calls: the cache carries everything backward
needs. Recurrent state: `forward(initial_states=...)` takes per-layer initial states (recurrent block
name "rnn0", "rnn1", ... -> per direction a state tuple) and `cache["final_states"]` returns them in
the same layout; `backward(dstates=d)` fills d with the gradients of the initial states. These are
apart from BatchNorm's running statistics (`state`), which are not recurrent state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnlab.engine import bidirectional, blocks, cells, row_threads
from rnnlab.engine.blocks import Context, Flow

POOLINGS = tuple(blocks.POOLS)
MERGE_MODES = bidirectional.MERGE_MODES


@dataclass(frozen=True)
class ModelSpec:
    cell: str
    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    dropout: float = 0.0  # between recurrent layers
    # The cell's nonlinearity where it has that option (rnn, indrnn); None = the cell's default.
    nonlinearity: str | None = None
    pooling: str = "last"
    input_dropout: float = 0.0
    output_dropout: float = 0.0  # on the pooled features (every step's with "none"), before the head
    # Optional embedding front for token ids: input_size must then equal embed_dim.
    vocab_size: int | None = None
    padding_idx: int | None = 0
    embed_trainable: bool = True  # False: frozen (e.g. pretrained vectors), no gradient
    # Optional causal Conv1D front (relu) before the recurrent layers: 0 channels = none.
    conv_channels: int = 0
    conv_kernel: int = 3
    conv_dilation: int = 1
    # LayerNorm on every recurrent layer's (merged) output.
    layer_norm: bool = False
    # BatchNorm over batch and time on every recurrent layer's output (running statistics in `state`).
    batch_norm: bool = False
    # Recurrent regularizers (every cell; the per-step runner): variational dropout p on h_{t-1} in the
    # recurrent product (one mask per sequence) and zoneout rate z (on every state of the cell).
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    # Multi-head self-attention on the top layer's outputs, with a residual, before pooling: 0 heads = none.
    self_attention_heads: int = 0
    self_attention_causal: bool = False
    # The cell's other options (cells.get(cell).options), e.g. {"per_gate": False} for ln_lstm.
    cell_options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nonlinearity is not None and "nonlinearity" not in cells.get(self.cell).options:
            object.__setattr__(self, "nonlinearity", None)  # model.json files of rnnlab <= 0.1 say "tanh" for all
        check_spec(self)

    @property
    def cell_kwargs(self) -> dict[str, Any]:
        """The cell's resolved options (defaults, then cell_options, then nonlinearity)."""
        given = dict(self.cell_options)
        if self.nonlinearity is not None:
            given["nonlinearity"] = self.nonlinearity
        return cells.get(self.cell).resolve(given)

    @property
    def recurrent_regularized(self) -> bool:
        """True when the recurrent layers run the per-step runner (recurrent dropout or zoneout on)."""
        return self.recurrent_dropout > 0 or self.zoneout > 0

    @property
    def per_step(self) -> bool:
        """True when the model outputs one prediction per step (pooling "none")."""
        return self.pooling == "none"

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def feature_size(self) -> int:
        """Width of one merged layer output (and of the pooled features)."""
        if self.bidirectional and self.merge_mode == "concat":
            return 2 * self.hidden_size
        return self.hidden_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model spec keys: {', '.join(sorted(unknown))}")
        return cls(**d)


def check_spec(spec, key=lambda name: name) -> None:
    """The architecture's constraints, in one place: ModelSpec checks itself with its field names, and
    the config (`config.schema.ArchConf`) checks its arch section before any spec is built, naming its
    keys through `key` (e.g. "pooling" -> "arch.pooling"). `spec`: any object with ModelSpec's fields."""
    try:
        cell = cells.get(spec.cell)
    except ValueError:
        raise ValueError(f"{key('cell')} must be one of {', '.join(cells.names())} or a module path "
                         f"(got '{spec.cell}')") from None
    given = dict(spec.cell_options)
    if spec.nonlinearity is not None:
        if "nonlinearity" not in cell.options:
            raise ValueError(f"{key('nonlinearity')}: cell {spec.cell} has no nonlinearity option "
                             f"(set {key('nonlinearity')}=null)")
        given["nonlinearity"] = spec.nonlinearity
    cell.resolve(given, prefix=key("cell_options") + ".")
    for name, choices in (("pooling", POOLINGS), ("merge_mode", MERGE_MODES)):
        if getattr(spec, name) not in choices:
            raise ValueError(f"{key(name)} must be one of {', '.join(choices)} (got '{getattr(spec, name)}')")
    for name in ("recurrent_dropout", "zoneout"):
        v = getattr(spec, name, 0.0)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{key(name)} must be in [0, 1) (got {v})")
    if spec.batch_norm and spec.layer_norm:
        raise ValueError(f"{key('batch_norm')} and {key('layer_norm')} are mutually exclusive (set one to false)")
    heads = spec.self_attention_heads
    if heads < 0:
        raise ValueError(f"{key('self_attention_heads')} must be >= 0 (got {heads})")
    if heads and spec.pooling == "last":
        raise ValueError(f"{key('self_attention_heads')} needs {key('pooling')} mean, max, attention or none "
                         "(pooling last reads the final states, which self-attention does not change)")
    features = spec.hidden_size * (2 if spec.bidirectional and spec.merge_mode == "concat" else 1)
    if heads and features % heads:
        raise ValueError(f"{key('self_attention_heads')} ({heads}) must divide the feature size {features} "
                         f"({key('hidden_size')}, doubled by bidirectional concat)")


def blocks_of(spec: ModelSpec) -> list[blocks.Block]:
    """The model's blocks in forward order (the one place that says what a spec builds)."""
    B = blocks
    out: list[B.Block] = []
    if spec.vocab_size is not None:
        out.append(B.Embedding(spec.vocab_size, spec.input_size, spec.padding_idx, spec.embed_trainable))
    else:
        out.append(B.Input())
    out.append(B.Dropout("input_dropout", spec.input_dropout))
    size = spec.input_size
    if spec.conv_channels:
        out.append(B.Conv(size, spec.conv_channels, spec.conv_kernel, spec.conv_dilation))
        size = spec.conv_channels
    opts = spec.cell_kwargs
    for layer in range(spec.num_layers):
        if layer > 0:
            out.append(B.Dropout(f"dropout{layer}", spec.dropout))
        out.append(B.Recurrent(layer, spec.cell, opts, size, spec.hidden_size, spec.bidirectional, spec.merge_mode,
                               spec.recurrent_dropout, spec.zoneout))
        if spec.layer_norm:
            out.append(B.LayerNorm(layer, spec.feature_size))
        if spec.batch_norm:
            out.append(B.BatchNorm(layer, spec.feature_size))
        size = spec.feature_size
    if spec.self_attention_heads:
        out.append(B.SelfAttention(size, spec.self_attention_heads, spec.self_attention_causal))
    if spec.pooling == "last":
        out.append(B.PoolLast(spec.merge_mode, cells.get(spec.cell).num_states))
    elif spec.pooling == "attention":
        out.append(B.PoolAttention(size))
    else:
        out.append(B.POOLS[spec.pooling]())
    out.append(B.Dropout("output_dropout", spec.output_dropout))
    out.append(B.Head(size, spec.output_size, spec.per_step))
    return out


def init_params(spec: ModelSpec, rng: np.random.Generator, dtype=np.float32) -> dict:
    params: dict[str, np.ndarray] = {}
    for block in blocks_of(spec):
        params.update(block.init_params(rng, dtype))
    return params


def init_state(spec: ModelSpec, dtype=np.float32) -> dict[str, np.ndarray]:
    """Running statistics (BatchNorm: mean 0, var 1) of every block that has them; {} otherwise."""
    state: dict[str, np.ndarray] = {}
    for block in blocks_of(spec):
        state.update(block.init_state(dtype))
    return state


def n_params(params: dict) -> int:
    """Parameters counted once each: a matrix shared under two names (tied weights) counts once."""
    return int(sum(v.size for v in {id(v): v for v in params.values()}.values()))


def forward(
    spec: ModelSpec,
    params: dict,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
    state: dict | None = None,
    initial_states: dict | None = None,
):
    """y (B, output_size) (or (B, T, output_size) with pooling "none"), cache.

    state: the running statistics (`init_state`; BatchNorm): required in evaluation mode when the
    model has any; in training mode the batch statistics are used and the updated running
    statistics are returned in cache["new_state"] (a new dict; `state` is not modified; None starts
    from init_state). Dropout and the recurrent regularizers' masks are active only with train=True
    and an rng. initial_states / cache["final_states"]: see the module docstring.
    """
    walk = blocks_of(spec)
    ctx = _context(walk, params, mask, train, rng, state, initial_states)
    flow, caches = _forward_blocks(walk, params, Flow(x), ctx)
    cache = {"blocks": caches, "new_state": ctx.new_state, "final_states": ctx.final_states,
             "input_shape": np.shape(x)}
    return flow.h, cache


def _forward_blocks(walk, params, flow: Flow, ctx: Context) -> tuple[Flow, list]:
    caches = []
    for block in walk:
        flow, c = block.forward(params, flow, ctx)
        caches.append(c)
    return flow, caches


def block_index(spec: ModelSpec, name: str) -> int:
    """The position of the block called `name` ("rnn0", "pool", "head", ...) in `blocks_of(spec)`."""
    names = [b.name for b in blocks_of(spec)]
    if name not in names:
        raise KeyError(f"the model has no block {name!r} (blocks: {', '.join(names)})")
    return names.index(name)


def forward_part(spec: ModelSpec, params: dict, flow: Flow, part: slice, mask=None, state=None):
    """Evaluation-mode forward of the blocks `blocks_of(spec)[part]` from `flow` (what the block before
    the part passes on: a `Flow` of h and, after a recurrent block, its final states): (flow, cache).
    Splitting the model at a block boundary lets a caller read or replace what flows there (layer
    attributions, activation maximisation); forward of the parts in sequence is `forward`."""
    walk = blocks_of(spec)
    ctx = _context(walk, params, mask, False, None, state, None)
    flow, caches = _forward_blocks(walk[part], params, flow, ctx)
    return flow, {"blocks": caches, "part": part}


def backward_part(spec: ModelSpec, params: dict, dflow: Flow, cache) -> tuple[dict, Flow]:
    """Gradients of the part's parameters and the gradient `Flow` at the part's input (dh, and the
    final states' gradients where the part reads them), from `dflow` at its output."""
    walk = blocks_of(spec)[cache["part"]]
    return _backward_blocks(walk, cache["blocks"], params, dflow, Context(dtype=params["head.weight"].dtype))


def _backward_blocks(walk, caches, params, dflow: Flow, ctx: Context) -> tuple[dict, Flow]:
    grads: dict[str, np.ndarray] = {}
    for block, c in zip(reversed(walk), reversed(caches), strict=True):
        dflow, g = block.backward(params, dflow, c, ctx)
        grads.update(g)
    return grads, dflow


def _context(walk, params, mask, train, rng, state, initial_states) -> Context:
    dtype = params["head.weight"].dtype
    fresh = {k: v for block in walk for k, v in block.init_state(dtype).items()}
    if fresh and state is None and not train:
        raise ValueError("a batch_norm model in evaluation mode needs state= (its BatchNorm running statistics)")
    state = fresh if state is None else state
    return Context(mask=mask, train=train, rng=rng, dtype=dtype, state=state, new_state=dict(state) if fresh else {},
                   initial_states=dict(initial_states or {}))


def infer(spec: ModelSpec, params: dict, x: np.ndarray, mask: np.ndarray | None = None, state: dict | None = None,
          initial_states: dict | None = None, threads: int | None = None) -> np.ndarray:
    """``forward(train=False)``'s output (to float rounding) without its caches, for evaluation.

    The blocks' ``infer``: the cells' inference kernels keep one state and one chunk of gates
    instead of every step's, and work on each step's real rows only when the rows are sorted by
    length (as `eval_batches` sorts them). The rows run in `threads` Python threads
    (``row_threads``; None: one per usable core while each gets enough work). Monitors, which
    read the caches (`shows`), use `forward`."""
    parts = row_threads.plan(len(x), threads, spec.hidden_size)

    def rows(s: slice) -> np.ndarray:
        return _infer_rows(spec, params, x[s], None if mask is None else mask[s], state,
                           _state_rows(initial_states, s))

    outs = row_threads.run(rows, parts)
    return outs[0] if len(outs) == 1 else np.concatenate(outs)


def _infer_rows(spec, params, x, mask, state, initial_states) -> np.ndarray:
    walk = blocks_of(spec)
    ctx = _context(walk, params, mask, False, None, state, initial_states)
    flow = Flow(x)
    for block in walk:
        flow = block.infer(params, flow, ctx)
    return flow.h


def _state_rows(initial_states: dict | None, s: slice) -> dict | None:
    """The rows `s` of initial_states (block name -> per direction a state tuple, entries may be None)."""
    if not initial_states:
        return initial_states
    return {name: tuple(None if st is None else tuple(None if a is None else a[s] for a in st) for st in dirs)
            for name, dirs in initial_states.items()}


def backward(
    spec: ModelSpec, params: dict, dy: np.ndarray, cache, trace: dict | None = None, dstates: dict | None = None
) -> tuple[dict, np.ndarray]:
    """Gradients for every parameter (same keys as params) and dx (B, T, D).

    dy has y's shape: (B, output_size), or (B, T, output_size) with pooling "none". With an
    embedding, dx is the gradient at the embedded inputs; a frozen embedding has no entry in grads
    (optimizers leave parameters without a gradient alone).

    trace: None, or a dict that backward fills with the total gradient dL/dh_t of every recurrent
    layer's hidden state, time-major (T, B, H) arrays keyed "layer0", "layer0_reverse", "layer1",
    ... (bottom layer first; the cells' dh_trace). dstates: None, or a dict that backward fills with
    the gradients of the initial states (keyed like ``initial_states``).
    """
    walk = blocks_of(spec)
    ctx = Context(dtype=params["head.weight"].dtype, trace=trace, dstates=dstates)
    grads, dflow = _backward_blocks(walk, cache["blocks"], params, Flow(dy), ctx)
    if trace is not None:  # bottom layer first, forward direction before reverse
        order = [k for b in walk for k in b.trace_keys()]
        filled = {k: trace.pop(k) for k in order if k in trace}
        trace.update(filled)
    return grads, dflow.h


def shows(spec: ModelSpec, cache) -> dict[str, Any]:
    """What the blocks show the monitors, by name: "states" (per recurrent layer and direction: layer,
    direction, hs (B, T, H), the cell's named activations), "attention" (B, T) with attention
    pooling, "self_attention" (B, heads, T, T)."""
    out: dict[str, Any] = {}
    for block, c in zip(blocks_of(spec), cache["blocks"], strict=True):
        for k, v in block.shows(c).items():
            if isinstance(v, list):
                out.setdefault(k, []).extend(v)
            else:
                out[k] = v
    return out


def after_step(spec: ModelSpec, params: dict) -> None:
    """Apply the blocks' projections in place after an optimizer step (IndRNN's recurrent bound)."""
    for block in blocks_of(spec):
        block.after_step(params)


def recurrent_weights(spec: ModelSpec) -> list[tuple[str, str, cells.Recurrent]]:
    """(layer key "l0" / "l0_reverse", model parameter name, its `cells.Recurrent`) of every
    recurrent layer and direction whose cell declares its recurrent weight."""
    return [w for b in blocks_of(spec) for w in b.recurrent_weights()]


def predict(spec: ModelSpec, params: dict, x: np.ndarray, mask=None, batch_size: int = 1024, state=None):
    """`infer` over batches (no caches; the rows of a batch over threads); returns (N, output_size)
    (or (N, T, output_size)).
    state: the BatchNorm running statistics (needed with batch_norm)."""
    order = None
    if mask is not None:  # longest rows first: each step then runs on a prefix of rows (infer's packed path)
        order = np.argsort(-np.asarray(mask).sum(axis=1), kind="stable")
        x, mask = np.asarray(x)[order], np.asarray(mask)[order]
    outs = []
    for i in range(0, len(x), batch_size):
        m = None if mask is None else mask[i : i + batch_size]
        outs.append(infer(spec, params, x[i : i + batch_size], m, state=state))
    if not outs:
        return np.zeros((0, np.shape(x)[1], spec.output_size) if spec.per_step else (0, spec.output_size))
    y = np.concatenate(outs, axis=0)
    if order is not None:
        y[order] = y.copy()  # back to the caller's order
    return y
