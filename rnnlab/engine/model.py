"""A sequence model composed from the layer modules: [embedding] -> dropout -> recurrent stack -> pooling -> head.

Shapes: x (B, T, D) float, or token ids (B, T) int when the spec has an embedding
(`vocab_size` set; D is then `embed_dim`); mask (B, T) of 0/1 or None; output (B, output_size),
or (B, T, output_size) with pooling "none".
Layers: `num_layers` recurrent layers of one cell kind (rnn, lstm, gru), each uni- or
bidirectional (directions merged by `merge_mode`), dropout between layers, then
pooling of the top layer over time ("last": final states; "mean"/"max": over
unmasked steps; "attention": learned attention weights over unmasked steps), dropout, and a
Dense head producing logits or regression outputs.

Pooling "attention" is `attention.pool_forward` on the top layer's merged outputs (B, T, F):
e_t = v^T tanh(W h_t + b), a = softmax over the unmasked steps (0 at padded ones), features =
sum_t a_t h_t. Its parameters are `attn.weight` (F, F), `attn.bias` (F,), `attn.v` (F,) (the
attention width equals F); the weights (B, T) of the last forward are `cache["attention"]`
(None with the other poolings).

Pooling "none" gives one output per step (Keras `return_sequences=True` followed by
`TimeDistributed(Dense)`, or PyTorch's Linear on every step of the RNN output): the
top layer's (B, T, F) outputs go through dropout (an independent mask per step and
unit) and the same Dense head at every step. Padded steps (mask 0) output exactly 0
(not the head bias), and backward discards dy at padded steps, so they contribute no
gradient to any parameter (head bias included) nor to dx; the losses mask them as well.

Optional extras: a causal Conv1D front with relu (`conv_channels` > 0; `conv_kernel`,
`conv_dilation`; parameters `conv.weight` (C, D, k), `conv.bias`) between the input dropout
and the first recurrent layer (the Conv1D + LSTM hybrid); LayerNorm on every recurrent
layer's merged output (`layer_norm`; `norm{l}.gamma`, `norm{l}.beta`; with pooling "last" the
head reads the top layer's final state, which is not normalised); BatchNorm over batch and time on
every recurrent layer's merged output instead (`batch_norm`, exclusive with `layer_norm`; `bn{l}.gamma`,
`bn{l}.beta`; masked statistics over the real steps): its running statistics are no parameters but a
separate `state` dict (`bn{l}.running_mean`, `bn{l}.running_var`; `init_state`) that `forward` reads in
evaluation mode and returns updated in `cache["new_state"]` in training mode; and the layer-normalised
LSTM cell (`cell="ln_lstm"`, Ba et al. 2016; its extra parameters `rnn.ln_*` have no PyTorch
counterpart).
Multi-head self-attention (`self_attention_heads` > 0; `self_attention_causal`): after the top
recurrent layer (and its LayerNorm), h <- h + MHSA(h) on the merged outputs (B, T, F) with the
padding mask as key mask, before pooling; F must be divisible by the number of heads and pooling
"last" is refused (it reads the final states, which the block never sees). The block's output is
zeroed at padded steps, so padding never changes a prediction. Parameters `mhsa.W_q`, `mhsa.b_q`,
... `mhsa.W_o`, `mhsa.b_o` (attention.multihead_*); the weights (B, heads, T, T) of the last forward
are `cache["self_attention"]` (None without the block).
Recurrent regularizers (rnn, lstm, gru): `recurrent_dropout` p (variational dropout on h_{t-1}
where it enters the recurrent product, one mask per sequence, layer and direction; Gal &
Ghahramani 2016) and `zoneout` z (each unit keeps its previous h, and c for the LSTM, with
probability z; Krueger et al. 2017). When either is > 0 the recurrent layers run the per-step
cells of regcells.py (same parameters); training samples the masks from the forward's rng,
evaluation uses no recurrent dropout and zoneout's expectation z h_{t-1} + (1 - z) h_new.

Parameters live in one flat dict with PyTorch's names, so a checkpoint maps 1:1 onto
`torch.nn.LSTM/GRU/RNN` (`rnn.weight_ih_l0`, `rnn.weight_hh_l0_reverse`, ...) plus
`head.weight`, `head.bias` (and `embedding.weight`; `attn.*` with attention pooling). The model
protocol is micrograd-sized: `init_params`, `forward -> (y, cache)`, `backward -> (grads, dx)`
with grads keyed like params.
Nothing is kept between calls: the cache carries everything backward needs.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnlab.engine import attention, bidirectional, conv1d, dense, dropout, embedding, norm, regcells

CELLS = ("rnn", "lstm", "gru", "ln_lstm")
POOLINGS = ("last", "mean", "max", "none", "attention")
# attention pooling: attention.pool_* parameter name -> model parameter name
ATTN_KEYS = {"weight": "attn.weight", "bias": "attn.bias", "v": "attn.v"}
# multi-head self-attention block: attention.multihead_* parameter name -> model parameter name
MHSA_KEYS = {k: f"mhsa.{k}" for k in attention.MHA_KEYS}


def cell_module(name: str):
    if name not in CELLS:
        raise ValueError(f"unknown cell '{name}' (choose from: {', '.join(CELLS)})")
    return importlib.import_module(f"rnnlab.engine.{name}")


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
    nonlinearity: str = "tanh"  # vanilla RNN only
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
    # Recurrent regularizers (rnn, lstm, gru; regcells.py): variational dropout p on h_{t-1} in the
    # recurrent product (one mask per sequence) and zoneout rate z (h and, for the LSTM, c).
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    # Multi-head self-attention on the top layer's outputs, with a residual, before pooling: 0 heads = none.
    self_attention_heads: int = 0
    self_attention_causal: bool = False

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{self.pooling}' (choose from: {', '.join(POOLINGS)})")
        for key in ("recurrent_dropout", "zoneout"):
            v = getattr(self, key)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{key} must be in [0, 1) (got {v})")
        if self.batch_norm and self.layer_norm:
            raise ValueError("batch_norm and layer_norm are mutually exclusive (choose one)")
        if self.recurrent_regularized and self.cell not in regcells.GATES:
            raise ValueError(f"recurrent_dropout and zoneout support the rnn, lstm and gru cells (got '{self.cell}')")
        heads = self.self_attention_heads
        if heads < 0:
            raise ValueError(f"self_attention_heads must be >= 0 (got {heads})")
        if heads and self.pooling == "last":
            raise ValueError("self-attention needs pooling mean, max, attention or none (pooling last reads the "
                             "final states, which the self-attention block does not change)")
        if heads and self.feature_size % heads:
            raise ValueError(f"self-attention: the feature size {self.feature_size} (hidden_size {self.hidden_size}"
                             f"{', bidirectional concat' if self.feature_size != self.hidden_size else ''}) "
                             f"must be divisible by self_attention_heads ({heads})")

    @property
    def recurrent_regularized(self) -> bool:
        """True when the recurrent layers run regcells (recurrent dropout or zoneout on)."""
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


def layer_keys(layer: int, reverse: bool = False, cell: str = "lstm") -> dict[str, str]:
    """Map the cell's own parameter names to the model's PyTorch-style names."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return {k: f"rnn.{k}{sfx}" for k in cell_module(cell).PARAM_NAMES}


def _rnn_input_size(spec: ModelSpec) -> int:
    return spec.conv_channels or spec.input_size


CONV_KEYS = {"weight": "conv.weight", "bias": "conv.bias"}


def norm_keys(layer: int) -> dict[str, str]:
    return {"gamma": f"norm{layer}.gamma", "beta": f"norm{layer}.beta"}


def bn_keys(layer: int) -> dict[str, str]:
    return {"gamma": f"bn{layer}.gamma", "beta": f"bn{layer}.beta"}


def bn_state_keys(layer: int) -> dict[str, str]:
    """norm.batch_norm_forward's running-statistics names -> the model's state names."""
    return {"mean": f"bn{layer}.running_mean", "var": f"bn{layer}.running_var"}


def init_state(spec: ModelSpec, dtype=np.float32) -> dict[str, np.ndarray]:
    """BatchNorm running statistics (mean 0, var 1) of every layer; empty without batch_norm."""
    state: dict[str, np.ndarray] = {}
    if spec.batch_norm:
        for layer in range(spec.num_layers):
            run = norm.init_running(spec.feature_size, dtype=dtype)
            for k, name in bn_state_keys(layer).items():
                state[name] = run[k]
    return state


def _sub(params: dict, keys: dict[str, str]) -> dict:
    return {k: params[v] for k, v in keys.items()}


def init_params(spec: ModelSpec, rng: np.random.Generator, dtype=np.float32) -> dict:
    cell = cell_module(spec.cell)
    params: dict[str, np.ndarray] = {}
    if spec.vocab_size is not None:
        emb = embedding.init_params(rng, spec.vocab_size, spec.input_size, spec.padding_idx, dtype=dtype)
        params["embedding.weight"] = emb["weight"]
    if spec.conv_channels:
        cp = conv1d.init_params(rng, spec.input_size, spec.conv_channels, spec.conv_kernel, dtype=dtype)
        params["conv.weight"], params["conv.bias"] = cp["weight"], cp["bias"]
    in_size = _rnn_input_size(spec)
    for layer in range(spec.num_layers):
        for rev in (False, True)[: spec.directions]:
            p = cell.init_params(rng, in_size, spec.hidden_size, dtype=dtype)
            for k, name in layer_keys(layer, rev, spec.cell).items():
                params[name] = p[k]
        if spec.layer_norm:
            ln = norm.init_params(spec.feature_size, dtype=dtype)
            params[f"norm{layer}.gamma"], params[f"norm{layer}.beta"] = ln["gamma"], ln["beta"]
        if spec.batch_norm:
            bn = norm.init_params(spec.feature_size, dtype=dtype)
            params[f"bn{layer}.gamma"], params[f"bn{layer}.beta"] = bn["gamma"], bn["beta"]
        in_size = spec.feature_size
    if spec.self_attention_heads:
        mp = attention.multihead_init(rng, spec.feature_size, spec.self_attention_heads, dtype=dtype)
        for k, name in MHSA_KEYS.items():
            params[name] = mp[k]
    if spec.pooling == "attention":
        for k, v in attention.pool_init(rng, spec.feature_size, dtype=dtype).items():
            params[ATTN_KEYS[k]] = v
    head = dense.init_params(rng, spec.feature_size, spec.output_size, dtype=dtype)
    params["head.weight"] = head["weight"]
    params["head.bias"] = head["bias"]
    return params


def n_params(params: dict) -> int:
    return int(sum(v.size for v in params.values()))


def _pool_forward(spec: ModelSpec, y: np.ndarray, stateT, mask):
    """Features (B, F) from the top layer's outputs y (B, T, F) or its final state tuple(s);
    with pooling "none" the features are y itself (B, T, F)."""
    if spec.pooling == "none":
        return y, None
    if spec.pooling == "last":
        if spec.bidirectional:
            return bidirectional.merge(stateT[0][0], stateT[1][0], spec.merge_mode), None
        return stateT[0], None
    if spec.pooling == "mean":
        if mask is None:
            return y.mean(axis=1), None
        m = mask[:, :, None].astype(y.dtype)
        count = np.maximum(m.sum(axis=1), 1.0)
        return (y * m).sum(axis=1) / count, (m, count)
    # max over unmasked steps; argmax routes the gradient
    z = y if mask is None else np.where(mask[:, :, None] > 0, y, -np.inf)
    idx = np.argmax(z, axis=1)  # (B, F)
    feat = np.take_along_axis(y, idx[:, None, :], axis=1)[:, 0, :]
    return feat, idx


def _pool_backward(spec: ModelSpec, dfeat, pool_cache, y_shape, stateT_cache):
    """Returns (dy_top or None, dstateT for the top layer or None)."""
    if spec.pooling == "none":
        return dfeat, None
    if spec.pooling == "last":
        if spec.bidirectional:
            hf, hb = stateT_cache[0][0], stateT_cache[1][0]
            dhf, dhb = bidirectional.merge_backward(dfeat, hf, hb, spec.merge_mode)
            return None, (_state_grad(spec, dhf), _state_grad(spec, dhb))
        return None, _state_grad(spec, dfeat)
    B, T, F = y_shape
    if spec.pooling == "mean":
        if pool_cache is None:
            dy = np.broadcast_to(dfeat[:, None, :] / T, y_shape)
        else:
            m, count = pool_cache
            dy = (dfeat / count)[:, None, :] * m
        return np.ascontiguousarray(dy), None
    idx = pool_cache
    dy = np.zeros(y_shape, dtype=dfeat.dtype)
    np.put_along_axis(dy, idx[:, None, :], dfeat[:, None, :], axis=1)
    return dy, None


def _self_attention_forward(spec: ModelSpec, params: dict, h: np.ndarray, mask):
    """h + MHSA(h) (B, T, F), the block's output zeroed at padded steps; cache."""
    a, mcache = attention.multihead_forward(_sub(params, MHSA_KEYS), h, mask, causal=spec.self_attention_causal,
                                            num_heads=spec.self_attention_heads)
    keep = None
    if mask is not None:
        keep = (np.asarray(mask) != 0)[:, :, None]  # (B, T, 1)
        a = np.where(keep, a, 0).astype(a.dtype, copy=False)
    return h + a, (mcache, keep)


def _self_attention_backward(params: dict, dh: np.ndarray, sa_cache):
    """d(h + MHSA(h)) -> (dh, grads keyed mhsa.*); padded query rows pass nothing to the block."""
    mcache, keep = sa_cache
    da = dh if keep is None else np.where(keep, dh, 0).astype(dh.dtype, copy=False)
    dx, _, g = attention.multihead_backward(_sub(params, MHSA_KEYS), da, mcache)
    return dh + dx, {name: g[k] for k, name in MHSA_KEYS.items()}


def _layer_cell(spec: ModelSpec):
    """The module (or regcells cell) running the recurrent layers."""
    return regcells.get(spec.cell) if spec.recurrent_regularized else cell_module(spec.cell)


def _reg_opts(spec: ModelSpec, B: int, T: int, dtype, train: bool, rng) -> dict:
    """regcells options of one layer direction: sampled masks in training, zoneout's expectation in eval."""
    H = spec.hidden_size
    opts: dict[str, Any] = {}
    if train:
        if spec.recurrent_dropout > 0:
            opts["rec_mask"] = dropout.sample_mask(rng, (B, H), spec.recurrent_dropout, dtype)
        if spec.zoneout > 0:
            n = 2 if spec.cell == "lstm" else 1  # the LSTM's c gets its own masks at the same rate
            ms = tuple((rng.random((T, B, H)) < spec.zoneout).astype(dtype) for _ in range(n))
            opts["zone_masks"] = ms if n == 2 else ms[0]
    elif spec.zoneout > 0:
        opts["zoneout_eval"] = spec.zoneout
    return opts


def _state_grad(spec: ModelSpec, dh: np.ndarray):
    """A cell-state gradient tuple with dh for h and None for the rest (LSTM's c)."""
    return (dh,) + (None,) * (cell_module(spec.cell).NUM_STATES - 1)


def forward(
    spec: ModelSpec,
    params: dict,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    train: bool = False,
    rng: np.random.Generator | None = None,
    state: dict | None = None,
):
    """y (B, output_size) (or (B, T, output_size) with pooling "none"), cache.

    state: the BatchNorm running statistics (`init_state`; only read with batch_norm): required in
    evaluation mode; in training mode the batch statistics are used and the updated running
    statistics are returned in cache["new_state"] (a new dict; `state` is not modified; None starts
    from init_state).

    Dropout is active only with train=True (needs rng). With recurrent_dropout or zoneout the
    recurrent layers run regcells: masks sampled from rng in training (per layer and direction),
    no recurrent dropout and zoneout's expectation in evaluation.
    """
    cell = _layer_cell(spec)
    dtype = params["head.weight"].dtype
    new_state: dict[str, np.ndarray] = {}
    if spec.batch_norm:
        if state is None and not train:
            raise ValueError("a batch_norm model in evaluation mode needs state= (its BatchNorm running statistics)")
        state = init_state(spec, dtype) if state is None else state
        new_state = dict(state)
    emb_cache = None
    if spec.vocab_size is not None:
        x, emb_cache = embedding.forward({"weight": params["embedding.weight"]}, x, spec.padding_idx)
    else:
        x = np.asarray(x, dtype=dtype)
    opts = {"nonlinearity": spec.nonlinearity} if spec.cell == "rnn" else {}
    drop = train and rng is not None
    h, in_drop = dropout.forward(x, spec.input_dropout, rng, train=drop)
    conv_cache = None
    if spec.conv_channels:
        h, conv_cache = conv1d.forward(_sub(params, CONV_KEYS), h, mask, dilation=spec.conv_dilation,
                                       activation="relu")
    layers = []
    norms = []
    stateT = None
    for layer in range(spec.num_layers):
        if layer > 0:
            h, dcache = dropout.forward(h, spec.dropout, rng, train=drop)
        else:
            dcache = None
        pf = _sub(params, layer_keys(layer, False, spec.cell))
        if spec.recurrent_regularized:
            B, T = h.shape[:2]
            reg = [_reg_opts(spec, B, T, dtype, drop, rng) for _ in range(spec.directions)]
        else:
            reg = [{}] * spec.directions
        if spec.bidirectional:
            pb = _sub(params, layer_keys(layer, True, spec.cell))
            (h, stateT), lcache = bidirectional.forward(
                cell, pf, pb, h, mask=mask, merge_mode=spec.merge_mode, dir_opts=tuple(reg), **opts
            )
        else:
            (h, stateT), lcache = cell.forward(pf, h, None, mask, reverse=False, **opts, **reg[0])
        layers.append((lcache, dcache))
        if spec.layer_norm:
            h, ncache = norm.layer_norm_forward(_sub(params, norm_keys(layer)), h, mask)
            norms.append(ncache)
        if spec.batch_norm:
            skeys = bn_state_keys(layer)
            h, run, ncache = norm.batch_norm_forward(_sub(params, bn_keys(layer)), h, mask, train=train,
                                                     running=_sub(state, skeys))
            norms.append(ncache)
            for k, name in skeys.items():
                new_state[name] = run[k]
    sa_cache = None
    if spec.self_attention_heads:
        h, sa_cache = _self_attention_forward(spec, params, h, mask)
    if spec.pooling == "attention":
        feat, pool_cache = attention.pool_forward(_sub(params, ATTN_KEYS), h, mask)
    else:
        feat, pool_cache = _pool_forward(spec, h, stateT, mask)
    feat_d, out_drop = dropout.forward(feat, spec.output_dropout, rng, train=drop)
    y, head_cache = dense.forward({"weight": params["head.weight"], "bias": params["head.bias"]}, feat_d)
    keep = None
    if spec.per_step and mask is not None:
        keep = (np.asarray(mask) != 0)[:, :, None]  # (B, T, 1)
        y = np.where(keep, y, 0).astype(y.dtype, copy=False)  # padded steps output 0
    cache = {
        "layers": layers,
        "norms": norms,
        "conv": conv_cache,
        "in_drop": in_drop,
        "embedding": emb_cache,
        "out_drop": out_drop,
        "pool": pool_cache,
        "stateT": stateT,
        "top_shape": h.shape,
        "head": head_cache,
        "features": feat,
        "keep": keep,
        "new_state": new_state,  # BatchNorm running statistics after this forward ({} without batch_norm)
        "attention": pool_cache["weights"] if spec.pooling == "attention" else None,  # (B, T)
        "mhsa": sa_cache,
        "self_attention": None if sa_cache is None else sa_cache[0]["weights"],  # (B, heads, T, T)
    }
    return y, cache


def backward(
    spec: ModelSpec, params: dict, dy: np.ndarray, cache, trace: dict | None = None
) -> tuple[dict, np.ndarray]:
    """Gradients for every parameter (same keys as params) and dx (B, T, D).

    dy has y's shape: (B, output_size), or (B, T, output_size) with pooling "none".

    With an embedding, dx is the gradient at the embedded inputs; a frozen embedding
    has no entry in grads (optimizers leave parameters without a gradient alone).

    trace: None, or a dict that backward fills with the total gradient dL/dh_t of every
    recurrent layer's hidden state, time-major (T, B, H) arrays keyed "layer0",
    "layer0_reverse", "layer1", ... (the cells' dh_trace). Costs nothing when None.
    """
    cell = _layer_cell(spec)
    traces = None
    if trace is not None:  # filled bottom layer first, forward direction before reverse
        B, T = cache["top_shape"][:2]
        dtype = params["head.weight"].dtype
        traces = []
        for layer in range(spec.num_layers):
            tr = []
            for rev in (False, True)[: spec.directions]:
                key = f"layer{layer}" + ("_reverse" if rev else "")
                trace[key] = np.empty((T, B, spec.hidden_size), dtype=dtype)
                tr.append(trace[key])
            traces.append(tr)
    grads: dict[str, np.ndarray] = {}
    head = {"weight": params["head.weight"], "bias": params["head.bias"]}
    if cache.get("keep") is not None:  # pooling "none": padded steps pass no gradient back
        dy = np.where(cache["keep"], dy, 0).astype(dy.dtype, copy=False)
    dfeat, hg = dense.backward(head, dy, cache["head"])
    grads["head.weight"], grads["head.bias"] = hg["weight"], hg["bias"]
    dfeat = dropout.backward(dfeat, cache["out_drop"])
    if spec.pooling == "attention":
        dh, ag = attention.pool_backward(_sub(params, ATTN_KEYS), dfeat, cache["pool"])
        dstateT = None
        for k, name in ATTN_KEYS.items():
            grads[name] = ag[k]
    else:
        dh, dstateT = _pool_backward(spec, dfeat, cache["pool"], cache["top_shape"], cache["stateT"])
    if cache.get("mhsa") is not None:  # never with pooling "last", so dh is set
        dh, sg = _self_attention_backward(params, dh, cache["mhsa"])
        grads.update(sg)
    for layer in reversed(range(spec.num_layers)):
        lcache, dcache = cache["layers"][layer]
        if spec.layer_norm:
            if dh is None:  # pooling "last": the top layer's output is not used, its state is
                dh = np.zeros(cache["top_shape"], dtype=params["head.weight"].dtype)
            dh, ng = norm.layer_norm_backward(_sub(params, norm_keys(layer)), dh, cache["norms"][layer])
            for k, name in norm_keys(layer).items():
                grads[name] = ng[k]
        if spec.batch_norm:
            if dh is None:  # pooling "last", as with layer_norm
                dh = np.zeros(cache["top_shape"], dtype=params["head.weight"].dtype)
            dh, ng = norm.batch_norm_backward(_sub(params, bn_keys(layer)), dh, cache["norms"][layer])
            for k, name in bn_keys(layer).items():
                grads[name] = ng[k]
        pf = _sub(params, layer_keys(layer, False, spec.cell))
        tr = None if traces is None else traces[layer]
        if spec.bidirectional:
            pb = _sub(params, layer_keys(layer, True, spec.cell))
            ds = dstateT if dstateT is not None else (None, None)
            dh, _, gf, gb = bidirectional.backward(cell, pf, pb, dh, ds, lcache, dh_trace=tr)
            for k, name in layer_keys(layer, True, spec.cell).items():
                grads[name] = gb[k]
        else:
            ds = dstateT if dstateT is not None else (None,) * cell.NUM_STATES
            dh, _, gf = cell.backward(pf, dh, ds, lcache, dh_trace=None if tr is None else tr[0])
        for k, name in layer_keys(layer, False, spec.cell).items():
            grads[name] = gf[k]
        dstateT = None  # only the top layer's final state feeds the head
        if dcache is not None:
            dh = dropout.backward(dh, dcache)
    if cache.get("conv") is not None:
        dh, cg = conv1d.backward(_sub(params, CONV_KEYS), dh, cache["conv"])
        grads["conv.weight"], grads["conv.bias"] = cg["weight"], cg["bias"]
    dx = dropout.backward(dh, cache["in_drop"])
    if spec.vocab_size is not None and spec.embed_trainable:
        grads["embedding.weight"] = embedding.backward(
            {"weight": params["embedding.weight"]}, dx, cache["embedding"]
        )["weight"]
    return grads, dx


def predict(spec: ModelSpec, params: dict, x: np.ndarray, mask=None, batch_size: int = 1024, state=None):
    """Forward in evaluation mode over batches; returns (N, output_size) (or (N, T, output_size)).
    state: the BatchNorm running statistics (needed with batch_norm)."""
    outs = []
    for i in range(0, len(x), batch_size):
        m = None if mask is None else mask[i : i + batch_size]
        y, _ = forward(spec, params, x[i : i + batch_size], m, train=False, state=state)
        outs.append(y)
    if outs:
        return np.concatenate(outs, axis=0)
    return np.zeros((0, np.shape(x)[1], spec.output_size) if spec.per_step else (0, spec.output_size))
