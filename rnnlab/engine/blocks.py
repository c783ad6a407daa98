"""The model's building blocks: each a stateless forward/backward pair with its own parameters.

A model is a list of blocks (``model.blocks(spec)``); ``model.forward`` runs the list and
``model.backward`` walks it in reverse, so a new block is a new class here and one line in that
list, never an edit of forward or backward (micrograd's property, at NumPy speed).

What flows between blocks is a `Flow`: ``h``, the sequence (B, T, F) or, after pooling, the
features (B, F) / outputs; and ``final``, the final states of the latest recurrent block, one
state tuple per direction (pooling "last" reads them; the blocks in between pass them on).
Backward passes the same shape of thing: the gradients of ``h`` (None when nothing above read
it) and of ``final`` (None, or per direction a tuple whose entries may be None).

Every block has

* ``name`` (unique in the model) and ``init_params(rng, dtype) -> {model name: array}``;
* ``forward(params, flow, ctx) -> (flow, cache)`` and ``backward(params, dflow, cache, ctx) ->
  (dflow, grads)`` with grads keyed by model parameter names (a frozen parameter has no entry);
* ``lower(g, flow) -> flow``: the graph form of forward in evaluation mode (the ONNX export), flow
  holding symbol names (``rnnlab.engine.lowering``); the default refuses with `lowering.Unsupported`;
* optionally ``init_state(dtype)`` (running statistics: state that is neither a parameter nor
  recurrent, e.g. BatchNorm's), ``shows(cache)`` (what the monitors may look at, by name),
  ``after_step(params)`` (a projection after every optimizer step) and ``infer(params, flow,
  ctx) -> flow``: forward in evaluation without a cache (``model.infer``; by default forward
  with its cache dropped, overridden where forward keeps or builds large intermediates).

`Context` carries what is shared by one call: the mask, train mode, the dropout generator, the
running statistics in and out, the recurrent blocks' initial states in and final states out,
and for backward the optional dL/dh_t traces and initial-state gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnlab.engine import attention, bidirectional, cells, conv1d, dense, dropout, embedding, lowering, norm
from rnnlab.engine.cells._sequence import step_runs


@dataclass
class Flow:
    h: np.ndarray | None
    final: tuple | None = None


@dataclass
class Context:
    mask: np.ndarray | None = None
    train: bool = False
    rng: np.random.Generator | None = None
    dtype: Any = np.float32
    state: dict = field(default_factory=dict)  # running statistics read (BatchNorm)
    new_state: dict = field(default_factory=dict)  # running statistics after this forward
    initial_states: dict = field(default_factory=dict)  # recurrent block name -> per-direction state tuples
    final_states: dict = field(default_factory=dict)  # filled by forward, same layout
    trace: dict | None = None  # backward: "layer0", "layer0_reverse", ... -> (T, B, H) dL/dh_t
    dstates: dict | None = None  # backward: recurrent block name -> gradients of its initial states

    @property
    def drop(self) -> bool:
        """Dropout (and recurrent regularizer masks) only in training with a generator."""
        return self.train and self.rng is not None


def _sub(params: dict, keys: dict[str, str]) -> dict:
    return {k: params[v] for k, v in keys.items()}


class Block:
    name = "block"
    keys: dict[str, str] = {}  # layer-module parameter name -> model parameter name

    def init_params(self, rng, dtype) -> dict[str, np.ndarray]:
        return {}

    def init_state(self, dtype) -> dict[str, np.ndarray]:
        return {}

    def shows(self, cache) -> dict[str, Any]:
        return {}

    def lower(self, g, flow: Flow) -> Flow:
        """The graph form of forward in evaluation mode (see the module docstring)."""
        raise lowering.Unsupported(f"block {self.name} ({type(self).__name__}) has no graph lowering")

    def infer(self, params, flow, ctx) -> Flow:
        return self.forward(params, flow, ctx)[0]

    def after_step(self, params) -> None:
        return None

    def trace_keys(self) -> list[str]:
        """Keys of the dL/dh_t traces this block fills in backward (recurrent layers)."""
        return []

    def recurrent_weights(self) -> list[tuple[str, str, cells.Recurrent]]:
        """(layer key, model parameter name, `cells.Recurrent`) of the state-carrying weights."""
        return []

    def _named(self, p: dict) -> dict:
        return {self.keys[k]: v for k, v in p.items()}


# ----------------------------------------------------------------------------------------
# input side
# ----------------------------------------------------------------------------------------


class Input(Block):
    """Float inputs (B, T, D), cast to the model's dtype."""

    name = "input"

    def forward(self, params, flow, ctx):
        return Flow(np.asarray(flow.h, dtype=ctx.dtype)), None

    def lower(self, g, flow):
        return flow  # the graph's input is declared in g.dtype

    def backward(self, params, dflow, cache, ctx):
        return dflow, {}


class Embedding(Block):
    """Token ids (B, T) -> vectors (B, T, E). Backward returns the gradient at the vectors."""

    name = "embedding"
    keys = {"weight": "embedding.weight"}

    def __init__(self, vocab_size: int, dim: int, padding_idx, trainable: bool):
        self.vocab_size, self.dim, self.padding_idx, self.trainable = vocab_size, dim, padding_idx, trainable

    def init_params(self, rng, dtype):
        return self._named(embedding.init_params(rng, self.vocab_size, self.dim, self.padding_idx, dtype=dtype))

    def forward(self, params, flow, ctx):
        y, cache = embedding.forward(_sub(params, self.keys), flow.h, self.padding_idx)
        return Flow(y), cache

    def lower(self, g, flow):
        return Flow(embedding.lower(g, self.keys, flow.h))

    def backward(self, params, dflow, cache, ctx):
        if not self.trainable:  # frozen (e.g. pretrained vectors): no gradient entry at all
            return dflow, {}
        return dflow, self._named(embedding.backward(_sub(params, self.keys), dflow.h, cache))


class Dropout(Block):
    """Inverted dropout on the sequence or the features (an independent mask per entry)."""

    def __init__(self, name: str, p: float):
        self.name, self.p = name, p

    def forward(self, params, flow, ctx):
        h, cache = dropout.forward(flow.h, self.p, ctx.rng, train=ctx.drop)
        return Flow(h, flow.final), cache

    def lower(self, g, flow):
        return flow  # the identity in evaluation mode

    def backward(self, params, dflow, cache, ctx):
        dh = None if dflow.h is None else dropout.backward(dflow.h, cache)
        return Flow(dh, dflow.final), {}


class Conv(Block):
    """Causal Conv1D with relu (the Conv1D + LSTM hybrid's front)."""

    name = "conv"
    keys = {"weight": "conv.weight", "bias": "conv.bias"}

    def __init__(self, in_channels: int, channels: int, kernel: int, dilation: int):
        self.in_channels, self.channels, self.kernel, self.dilation = in_channels, channels, kernel, dilation

    def init_params(self, rng, dtype):
        return self._named(conv1d.init_params(rng, self.in_channels, self.channels, self.kernel, dtype=dtype))

    def forward(self, params, flow, ctx):
        y, cache = conv1d.forward(_sub(params, self.keys), flow.h, ctx.mask, dilation=self.dilation,
                                  activation="relu")
        return Flow(y), cache

    def lower(self, g, flow):
        return Flow(conv1d.lower(g, self.keys, flow.h, dilation=self.dilation, activation="relu"))

    def backward(self, params, dflow, cache, ctx):
        dx, g = conv1d.backward(_sub(params, self.keys), dflow.h, cache)
        return Flow(dx), self._named(g)


# ----------------------------------------------------------------------------------------
# recurrent layer
# ----------------------------------------------------------------------------------------


class Recurrent(Block):
    """One recurrent layer of a registered cell, uni- or bidirectional (directions merged by
    ``merge_mode``). Parameters ``rnn.<cell name>_l{layer}[_reverse]`` (torch.nn.LSTM's names).

    Initial states: ``ctx.initial_states[name]`` (per direction a state tuple; absent = zeros);
    final states go to ``ctx.final_states[name]`` and ``Flow.final``. With recurrent dropout or
    zoneout the layer runs the cell's per-step runner on masks sampled here (per direction: the
    recurrent-dropout mask, then one zoneout mask per state), else its tuned kernel.
    """

    def __init__(self, layer: int, cell: str, options: dict, input_size: int, hidden_size: int, both_ways: bool,
                 merge_mode: str, recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        self.layer, self.name = layer, f"rnn{layer}"
        self.cell = cells.get(cell)
        self.options, self.input_size, self.hidden_size = options, input_size, hidden_size
        self.reverses = (False, True) if both_ways else (False,)
        self.merge_mode, self.recurrent_dropout, self.zoneout = merge_mode, recurrent_dropout, zoneout

    def direction_keys(self, reverse: bool) -> dict[str, str]:
        sfx = f"_l{self.layer}" + ("_reverse" if reverse else "")
        return {k: f"rnn.{k}{sfx}" for k in self.cell.param_names}

    def trace_key(self, reverse: bool) -> str:
        return f"layer{self.layer}" + ("_reverse" if reverse else "")

    def trace_keys(self) -> list[str]:
        return [self.trace_key(rev) for rev in self.reverses]

    def recurrent_weights(self):
        rec = self.cell.recurrent
        if rec is None:
            return []
        return [(f"l{self.layer}" + ("_reverse" if rev else ""), self.direction_keys(rev)[rec.param], rec)
                for rev in self.reverses]

    def init_params(self, rng, dtype):
        out = {}
        for rev in self.reverses:
            p = self.cell.init_params(rng, self.input_size, self.hidden_size, dtype=dtype, **self.options)
            out.update({name: p[k] for k, name in self.direction_keys(rev).items()})
        return out

    @property
    def regularized(self) -> bool:
        return self.recurrent_dropout > 0 or self.zoneout > 0

    def _reg_opts(self, B: int, T: int, ctx) -> dict:
        """Runner options of one direction: sampled masks in training, zoneout's expectation in eval."""
        H, dtype, opts = self.hidden_size, ctx.dtype, {}
        if ctx.drop:
            if self.recurrent_dropout > 0:
                opts["rec_mask"] = dropout.sample_mask(ctx.rng, (B, H), self.recurrent_dropout, dtype)
            if self.zoneout > 0:
                opts["zone_masks"] = tuple((ctx.rng.random((T, B, H)) < self.zoneout).astype(dtype)
                                           for _ in range(self.cell.num_states))
        elif self.zoneout > 0:
            opts["zoneout_eval"] = self.zoneout
        return opts

    def forward(self, params, flow, ctx):
        h = flow.h
        B, T = h.shape[:2]
        if self.regularized:
            run, reg = self.cell.stepwise_forward, [self._reg_opts(B, T, ctx) for _ in self.reverses]
        else:
            run, reg = self.cell.forward, [{}] * len(self.reverses)
        init = ctx.initial_states.get(self.name) or (None,) * len(self.reverses)
        outs, finals, caches = [], [], []
        for rev, s0, r in zip(self.reverses, init, reg, strict=True):
            (hs, sT), c = run(_sub(params, self.direction_keys(rev)), h, s0, ctx.mask, rev, **self.options, **r)
            outs.append(hs)
            finals.append(sT)
            caches.append(c)
        y = outs[0] if len(outs) == 1 else bidirectional.merge(outs[0], outs[1], self.merge_mode)
        ctx.final_states[self.name] = tuple(finals)
        return Flow(y, tuple(finals)), {"dirs": caches, "outs": outs, "shape": (B, T)}

    def lower(self, g, flow):
        """The cell's fused op, or its step in a Scan (zoneout's expectation; cells without a fused op);
        recurrent dropout is off in evaluation mode."""
        keys = [self.direction_keys(rev) for rev in self.reverses]
        ys, finals = self.cell.lower_sequence(g, keys, flow.h, zoneout=self.zoneout, **self.options)
        y = ys[0] if len(ys) == 1 else bidirectional.lower_merge(g, ys[0], ys[1], self.merge_mode)
        return Flow(y, tuple(finals))

    def infer(self, params, flow, ctx):
        """forward's outputs from the cells' cacheless kernels. A concatenating bidirectional layer
        has both directions write into one feature-major (T, 2H, B) buffer (the tuned GRU and LSTM
        kernels' own layout), so nothing is copied to merge them."""
        h = flow.h
        B, T = h.shape[:2]
        H = self.hidden_size
        init = ctx.initial_states.get(self.name) or (None,) * len(self.reverses)
        merged, dests = None, [None] * len(self.reverses)
        if len(self.reverses) == 2 and self.merge_mode == "concat":
            merged = np.empty((T, 2 * H, B), dtype=ctx.dtype)
            dests = [merged[:, :H].transpose(2, 0, 1), merged[:, H:].transpose(2, 0, 1)]
        outs, finals = [], []
        for rev, s0, dest in zip(self.reverses, init, dests, strict=True):
            p = _sub(params, self.direction_keys(rev))
            if self.regularized:  # zoneout's expectation runs on the per-step runner
                (hs, sT), _ = self.cell.stepwise_forward(p, h, s0, ctx.mask, rev, **self.options,
                                                         **self._reg_opts(B, T, ctx))
                if dest is not None:
                    np.copyto(dest, hs)
            else:
                hs, sT = self.cell.infer(p, h, s0, ctx.mask, rev, out=dest, **self.options)
            outs.append(hs)
            finals.append(sT)
        if merged is not None:
            y = merged.transpose(2, 0, 1)
        else:
            y = outs[0] if len(outs) == 1 else bidirectional.merge(outs[0], outs[1], self.merge_mode)
        ctx.final_states[self.name] = tuple(finals)
        return Flow(y, tuple(finals))

    def backward(self, params, dflow, cache, ctx):
        outs = cache["outs"]
        if dflow.h is None:
            dys = [None] * len(outs)
        elif len(outs) == 1:
            dys = [dflow.h]
        else:
            dys = list(bidirectional.merge_backward(dflow.h, outs[0], outs[1], self.merge_mode))
        dfinal = dflow.final or (None,) * len(outs)
        B, T = cache["shape"]
        grads, dx, d0 = {}, None, []
        for rev, dy, ds, c in zip(self.reverses, dys, dfinal, cache["dirs"], strict=True):
            tr = None
            if ctx.trace is not None:
                tr = ctx.trace[self.trace_key(rev)] = np.empty((T, B, self.hidden_size), dtype=ctx.dtype)
            ds = ds if ds is not None else (None,) * self.cell.num_states
            dxd, ds0, g = self.cell.backward(_sub(params, self.direction_keys(rev)), dy, ds, c, dh_trace=tr)
            dx = dxd if dx is None else dx + dxd
            d0.append(ds0)
            grads[rev] = {name: g[k] for k, name in self.direction_keys(rev).items()}
        if ctx.dstates is not None:
            ctx.dstates[self.name] = tuple(d0)
        out = {}  # reverse direction's gradients first (the order global norms are summed in)
        for rev in sorted(grads, reverse=True):
            out.update(grads[rev])
        return Flow(dx), out

    def shows(self, cache):
        """Per direction: the layer key ("l0", "l0_reverse"), hidden states (B, T, H) and the
        cell's named activations."""
        views = []
        for rev, c in zip(self.reverses, cache["dirs"], strict=True):
            views.append({"layer": self.layer, "direction": "reverse" if rev else "forward", "hs": c["hs"],
                          "activations": self.cell.activations(c)})
        return {"states": views}

    def after_step(self, params) -> None:
        for rev in self.reverses:
            self.cell.after_step(_sub(params, self.direction_keys(rev)), **self.options)


# ----------------------------------------------------------------------------------------
# between layers
# ----------------------------------------------------------------------------------------


class _Norm(Block):
    """A normalisation of a recurrent layer's merged output: final states pass through, and under
    pooling "last" (nothing above reads the sequence) its backward starts from zeros."""

    def __init__(self, name: str, features: int):
        self.name, self.features = name, features
        self.keys = {"gamma": f"{name}.gamma", "beta": f"{name}.beta"}

    def init_params(self, rng, dtype):
        return self._named(norm.init_params(self.features, dtype=dtype))

    def backward(self, params, dflow, cache, ctx):
        cache, shape = cache
        dh = dflow.h if dflow.h is not None else np.zeros(shape, dtype=ctx.dtype)
        dx, g = self.layer_backward(_sub(params, self.keys), dh, cache)
        return Flow(dx, dflow.final), self._named(g)


class LayerNorm(_Norm):
    """LayerNorm over the features (padded steps stay 0)."""

    layer_backward = staticmethod(norm.layer_norm_backward)

    def __init__(self, layer: int, features: int):
        super().__init__(f"norm{layer}", features)

    def forward(self, params, flow, ctx):
        y, cache = norm.layer_norm_forward(_sub(params, self.keys), flow.h, ctx.mask)
        return Flow(y, flow.final), (cache, flow.h.shape)

    def lower(self, g, flow):
        return Flow(norm.lower_layer_norm(g, self.keys, flow.h), flow.final)


class BatchNorm(_Norm):
    """BatchNorm over batch and time (masked statistics over the real steps); its running
    statistics ``bn{l}.running_mean`` / ``running_var`` are state, not parameters."""

    layer_backward = staticmethod(norm.batch_norm_backward)

    def __init__(self, layer: int, features: int):
        super().__init__(f"bn{layer}", features)
        self.state_keys = {"mean": f"bn{layer}.running_mean", "var": f"bn{layer}.running_var"}

    def init_state(self, dtype):
        run = norm.init_running(self.features, dtype=dtype)
        return {name: run[k] for k, name in self.state_keys.items()}

    def forward(self, params, flow, ctx):
        y, run, cache = norm.batch_norm_forward(_sub(params, self.keys), flow.h, ctx.mask, train=ctx.train,
                                                running=_sub(ctx.state, self.state_keys))
        ctx.new_state.update({name: run[k] for k, name in self.state_keys.items()})
        return Flow(y, flow.final), (cache, flow.h.shape)

    def lower(self, g, flow):
        return Flow(norm.lower_batch_norm(g, self.keys, self.state_keys, flow.h), flow.final)


class SelfAttention(Block):
    """h + MHSA(h) on the merged outputs with the padding mask as key mask; the block's output is
    zeroed at padded steps, so padding never changes a prediction."""

    name = "mhsa"
    keys = {k: f"mhsa.{k}" for k in attention.MHA_KEYS}

    def __init__(self, features: int, heads: int, causal: bool):
        self.features, self.heads, self.causal = features, heads, causal

    def init_params(self, rng, dtype):
        return self._named(attention.multihead_init(rng, self.features, self.heads, dtype=dtype))

    def forward(self, params, flow, ctx):
        h = flow.h
        a, mcache = attention.multihead_forward(_sub(params, self.keys), h, ctx.mask, causal=self.causal,
                                                num_heads=self.heads)
        keep = None
        if ctx.mask is not None:
            keep = (np.asarray(ctx.mask) != 0)[:, :, None]  # (B, T, 1)
            a = np.where(keep, a, 0).astype(a.dtype, copy=False)
        return Flow(h + a, flow.final), (mcache, keep)

    def lower(self, g, flow):
        a = attention.multihead_lower(g, self.keys, flow.h, g.keep, self.causal, self.heads, self.features)
        a = g.op("Where", [g.keep3, a, g.const(np.zeros(()))])
        return Flow(g.op("Add", [flow.h, a]), flow.final)

    def backward(self, params, dflow, cache, ctx):
        mcache, keep = cache
        dh = dflow.h  # never None: pooling "last" is refused with self-attention
        da = dh if keep is None else np.where(keep, dh, 0).astype(dh.dtype, copy=False)
        dx, _, g = attention.multihead_backward(_sub(params, self.keys), da, mcache)
        return Flow(dh + dx), self._named(g)

    def shows(self, cache):
        return {"self_attention": cache[0]["weights"]}  # (B, heads, T, T)


# ----------------------------------------------------------------------------------------
# pooling over time
# ----------------------------------------------------------------------------------------


def _reduce_real_steps(y: np.ndarray, mask: np.ndarray, ufunc, initial) -> np.ndarray | None:
    """`ufunc` (np.maximum, np.add) folded over each row's real steps of y (B, T, F), step by step on
    the run of real rows at that step: no (B, T, F) temporary, and the accumulator in y's memory
    layout. None when some step's real rows are not one run (``step_runs``)."""
    B, T, _ = y.shape
    runs = step_runs(mask, B, T)
    if runs is None:
        return None
    acc = np.full_like(y[:, 0, :], initial)
    for t, (a, b) in enumerate(zip(*runs, strict=True)):
        if a < b:
            ufunc(acc[a:b], y[a:b, t], out=acc[a:b])
    return acc


class PoolLast(Block):
    """The final state h of the top layer (both directions merged): PyTorch's h_n, not Keras'
    output[:, -1] (for the reverse direction that is the state after reading one step)."""

    name = "pool"

    def __init__(self, merge_mode: str, num_states: int):
        self.merge_mode, self.num_states = merge_mode, num_states

    def forward(self, params, flow, ctx):
        f = flow.final
        feat = f[0][0] if len(f) == 1 else bidirectional.merge(f[0][0], f[1][0], self.merge_mode)
        return Flow(feat), f

    def lower(self, g, flow):
        f = flow.final
        return Flow(f[0][0] if len(f) == 1 else bidirectional.lower_merge(g, f[0][0], f[1][0], self.merge_mode))

    def backward(self, params, dflow, cache, ctx):
        rest = (None,) * (self.num_states - 1)
        if len(cache) == 1:
            return Flow(None, ((dflow.h,) + rest,)), {}
        dhf, dhb = bidirectional.merge_backward(dflow.h, cache[0][0], cache[1][0], self.merge_mode)
        return Flow(None, ((dhf,) + rest, (dhb,) + rest)), {}


class PoolMean(Block):
    """Mean over the real steps (all steps without a mask)."""

    name = "pool"

    def forward(self, params, flow, ctx):
        y = flow.h
        if ctx.mask is None:
            return Flow(y.mean(axis=1)), (y.shape, None)
        m = ctx.mask[:, :, None].astype(y.dtype)
        count = np.maximum(m.sum(axis=1), 1.0)
        return Flow((y * m).sum(axis=1) / count), (y.shape, (m, count))

    def lower(self, g, flow):
        over_time = g.const(lowering.axes(1))
        total = g.op("ReduceSum", [g.op("Mul", [flow.h, g.mask3]), over_time], keepdims=0)
        count = g.op("Max", [g.op("ReduceSum", [g.mask3, over_time], keepdims=0), g.const(np.ones(()))])
        return Flow(g.op("Div", [total, count]))

    def infer(self, params, flow, ctx):
        total = None if ctx.mask is None else _reduce_real_steps(flow.h, ctx.mask, np.add, 0)
        if total is None:
            return self.forward(params, flow, ctx)[0]
        count = np.maximum(ctx.mask.astype(total.dtype).sum(axis=1), 1.0)
        return Flow(total / count[:, None])

    def backward(self, params, dflow, cache, ctx):
        shape, mc = cache
        dfeat = dflow.h
        if mc is None:
            dy = np.broadcast_to(dfeat[:, None, :] / shape[1], shape)
        else:
            m, count = mc
            dy = (dfeat / count)[:, None, :] * m
        return Flow(np.ascontiguousarray(dy)), {}


class PoolMax(Block):
    """Max over the real steps; the argmax routes the gradient."""

    name = "pool"

    def forward(self, params, flow, ctx):
        y = flow.h
        z = y if ctx.mask is None else np.where(ctx.mask[:, :, None] > 0, y, -np.inf)
        idx = np.argmax(z, axis=1)  # (B, F)
        return Flow(np.take_along_axis(y, idx[:, None, :], axis=1)[:, 0, :]), (y.shape, idx)

    def lower(self, g, flow):
        y = flow.h
        top = g.op("ReduceMax", [g.op("Where", [g.keep3, y, g.const(np.array(-np.inf))])], axes=[1], keepdims=0)
        # a row without a real step: argmax of all -inf is step 0, as np.argmax
        real = g.op("Cast", [g.op("ReduceMax", [g.mask3], axes=[1], keepdims=0)], to=lowering.BOOL)
        first = g.op("Gather", [y, g.const(np.array(0, dtype=np.int64))], axis=1)
        return Flow(g.op("Where", [real, top, first]))

    def infer(self, params, flow, ctx):
        y = flow.h
        if ctx.mask is None:
            return Flow(y.max(axis=1))
        feat = _reduce_real_steps(y, ctx.mask, np.maximum, -np.inf)
        if feat is None:
            return self.forward(params, flow, ctx)[0]
        empty = ~(np.asarray(ctx.mask) != 0).any(axis=1)  # no real step: forward's argmax takes step 0
        feat[empty] = y[empty, 0]
        return Flow(feat)

    def backward(self, params, dflow, cache, ctx):
        shape, idx = cache
        dy = np.zeros(shape, dtype=dflow.h.dtype)
        np.put_along_axis(dy, idx[:, None, :], dflow.h[:, None, :], axis=1)
        return Flow(dy), {}


class PoolAttention(Block):
    """Learned attention over the real steps: e_t = v^T tanh(W h_t + b), a = softmax over the
    unmasked steps, features = sum_t a_t h_t. Shows its weights (B, T) as "attention"."""

    name = "pool"
    keys = {"weight": "attn.weight", "bias": "attn.bias", "v": "attn.v"}

    def __init__(self, features: int):
        self.features = features

    def init_params(self, rng, dtype):
        return self._named(attention.pool_init(rng, self.features, dtype=dtype))

    def forward(self, params, flow, ctx):
        feat, cache = attention.pool_forward(_sub(params, self.keys), flow.h, ctx.mask)
        return Flow(feat), cache

    def lower(self, g, flow):
        return Flow(attention.pool_lower(g, self.keys, flow.h, g.keep))

    def backward(self, params, dflow, cache, ctx):
        dh, g = attention.pool_backward(_sub(params, self.keys), dflow.h, cache)
        return Flow(dh), self._named(g)

    def shows(self, cache):
        return {"attention": cache["weights"]}


class PoolNone(Block):
    """No pooling: one output per step (Keras' return_sequences + TimeDistributed(Dense))."""

    name = "pool"

    def forward(self, params, flow, ctx):
        return Flow(flow.h), None

    def lower(self, g, flow):
        return Flow(flow.h)

    def backward(self, params, dflow, cache, ctx):
        return Flow(dflow.h), {}


POOLS = {"last": PoolLast, "mean": PoolMean, "max": PoolMax, "none": PoolNone, "attention": PoolAttention}


# ----------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------


class Head(Block):
    """Dense head to logits or regression outputs, at every step with pooling "none": padded
    steps then output exactly 0 (not the bias) and pass no gradient back."""

    name = "head"
    keys = {"weight": "head.weight", "bias": "head.bias"}

    def __init__(self, features: int, outputs: int, per_step: bool):
        self.features, self.outputs, self.per_step = features, outputs, per_step

    def init_params(self, rng, dtype):
        return self._named(dense.init_params(rng, self.features, self.outputs, dtype=dtype))

    def forward(self, params, flow, ctx):
        y, cache = dense.forward(_sub(params, self.keys), flow.h)
        keep = None
        if self.per_step and ctx.mask is not None:
            keep = (np.asarray(ctx.mask) != 0)[:, :, None]  # (B, T, 1)
            y = np.where(keep, y, 0).astype(y.dtype, copy=False)
        return Flow(y), (cache, keep)

    def lower(self, g, flow):
        y = dense.lower(g, self.keys, flow.h)
        if self.per_step:
            y = g.op("Where", [g.keep3, y, g.const(np.zeros(()))])
        return Flow(y)

    def backward(self, params, dflow, cache, ctx):
        cache, keep = cache
        dy = dflow.h
        if keep is not None:
            dy = np.where(keep, dy, 0).astype(dy.dtype, copy=False)
        dfeat, g = dense.backward(_sub(params, self.keys), dy, cache)
        return Flow(dfeat), self._named(g)
