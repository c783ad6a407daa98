"""Encoder-decoder (seq2seq) with any registered cell (``rnnlab.engine.cells``), optional attention, scheduled sampling,
greedy / beam-search decoding for tokens and free-running generation for continuous outputs.

Architecture (one layer each side, one direction)
-------------------------------------------------
* source: token ids ``src`` (B, Ts) through an embedding (``spec.src_vocab`` set), or vectors
  ``src`` (B, Ts, src_dim); ``src_mask`` (B, Ts) of 0/1 (1 = real step) or None. Padding
  should be post-padding: the encoder carries its state over padded steps, so its final state
  is the state after the last real step.
* encoder: the cell (``spec.cell``, options ``spec.cell_options``) over the source -> outputs
  ``enc_hs`` (B, Ts, H) and the final state, which is the decoder's initial state.
* decoder, one explicit step at a time (its input may be its own previous output):
  ``x_t`` = embedding of the previous token (token targets) or the previous value (continuous
  targets, ``tgt_dim`` wide); ``h_t`` = cell(x_t, h_{t-1}).
* attention (``spec.attention``): "luong" (general score h_t^T W k_j) or "bahdanau" (additive
  score v^T tanh(W_q h_t + W_k k_j + b)), both computed *after* the decoder step with the query
  h_t (Luong's global-attention placement, also used for the additive score), over ``enc_hs``
  with the source mask -> context c_t (B, H) and weights a_t (B, Ts) (0 at padded positions).
  Layers from ``rnnlab.engine.attention`` (``luong_*`` / ``additive_*``).
* head: Dense over [h_t; c_t] (attention) or h_t -> logits (B, V) or values (B, tgt_dim).

Parameters: one flat dict (so optimizers and checkpoints take it as is), names prefixed by the
part: ``enc.*`` and ``dec.*`` (PyTorch LSTM/GRU names: weight_ih, weight_hh, bias_ih, bias_hh),
``attn.*`` (``attn.W`` for Luong general; ``attn.W_q``, ``attn.W_k``, ``attn.v``, ``attn.bias``
for Bahdanau), ``head.weight``, ``head.bias``, ``src_emb.weight`` / ``tgt_emb.weight`` (token
sides only).

Teacher forcing / scheduled sampling
------------------------------------
``forward(spec, params, src, src_mask, tgt_in, teacher_forcing=p, rng=rng)``: step 0 always
reads ``tgt_in[:, 0]`` (BOS / start value). At every later step t each sequence independently
reads the gold ``tgt_in[:, t]`` with probability p (one ``rng.random(B)`` draw per step;
no draw at all when p >= 1, so p = 1 is deterministic without an rng), else the model's own
previous prediction: the argmax token of step t-1 (tokens; the choice carries no gradient, but
the embedding row of the token fed in does get its gradient) or the output value of step t-1
(continuous: the fed-back value is *not* detached, backward differentiates through it, so the
gradient is the exact gradient of the unrolled computation and gradient checks hold for any p).
The decoder runs all T_out steps; mask padded target steps in the loss.

``backward(spec, params, dout, cache)`` -> grads (same keys as params); dout (B, T_out, V or D)
is dL/d(outputs), e.g. the dpred of ``losses.softmax_cross_entropy(out, tgt_out, tgt_mask)``.

Decoding
--------
``greedy_decode`` and ``beam_search`` (tokens) and ``generate`` (continuous, free running) return
a ``Decoded`` named tuple: ``tokens`` (B, L) int64 (None for ``generate``), ``outputs`` (B, L, D)
(``generate`` only, else None), ``log_prob`` (B,) sum of log-softmax of the emitted tokens up to
and including EOS (None for ``generate``), ``lengths`` (B,) (emitted tokens including EOS),
``attention`` (B, L, Ts) or None without attention (rows after the end are 0). After EOS the
token rows are filled with EOS.

The decoding loops run on a `Steps` object (``encode`` the source, ``step`` the decoder once):
``greedy_decode(spec, params, ...)`` is ``decode_greedy(Steps(spec, params), ...)``, and the ONNX export
hands the same loops its own step source (the exported encoder and decoder in onnxruntime), so both
decode by one set of rules.

Beam search keeps ``beam_size`` live hypotheses per sequence; of the 2K best extensions, an EOS
extension ranked among the first K closes a hypothesis, the others fill the live beam (so K = 1
is exactly greedy decoding). It stops when K hypotheses are closed or after ``max_len`` steps
(live hypotheses then count as candidates) and returns the candidate with the best
``log_prob / lengths ** length_penalty`` (length_penalty 0: the raw log-probability).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from rnnlab.engine import attention as A
from rnnlab.engine import cells, dense, embedding, losses

ATTENTIONS = (None, "luong", "bahdanau")


@dataclass(frozen=True)
class Seq2SeqSpec:
    """Sizes and options. Token side when ``src_vocab`` / ``tgt_vocab`` is set, else vectors of
    ``src_dim`` / ``tgt_dim``. ``pad_id``: embedding padding_idx on the token sides (None: none)."""

    cell: str = "gru"
    hidden_size: int = 32
    src_vocab: int | None = None
    tgt_vocab: int | None = None
    src_dim: int = 1
    tgt_dim: int = 1
    embed_dim: int = 16
    attention: str | None = None
    attn_size: int | None = None  # Bahdanau only; default hidden_size
    pad_id: int | None = None
    cell_options: dict = field(default_factory=dict)  # the cell's options, e.g. {"nonlinearity": "relu"}

    def __post_init__(self):
        self.cell_kwargs  # noqa: B018 - ValueError for an unknown cell or option
        if self.attention not in ATTENTIONS:
            raise ValueError(f"seq2seq attention must be None, 'luong' or 'bahdanau' (got {self.attention!r})")
        for name in ("hidden_size", "src_dim", "tgt_dim", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"seq2seq {name} must be >= 1 (got {getattr(self, name)})")

    @functools.cached_property
    def cell_kwargs(self) -> dict:
        """The cell's resolved options, once (every decoder step passes them)."""
        return cells.get(self.cell).resolve(self.cell_options)

    @property
    def tokens_in(self) -> bool:
        return self.src_vocab is not None

    @property
    def tokens_out(self) -> bool:
        return self.tgt_vocab is not None

    @property
    def out_size(self) -> int:
        return self.tgt_vocab if self.tokens_out else self.tgt_dim


class Decoded(NamedTuple):
    tokens: np.ndarray | None
    outputs: np.ndarray | None
    log_prob: np.ndarray | None
    lengths: np.ndarray
    attention: np.ndarray | None


def _cell(spec):
    return cells.get(spec.cell)


def _opts(spec) -> dict:
    return spec.cell_kwargs


def _sub(params, prefix: str) -> dict[str, np.ndarray]:
    """The part's parameters without the prefix (the same arrays, not copies)."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in params.items() if k.startswith(prefix + ".")}


def _put(grads, prefix: str, part: dict[str, np.ndarray]):
    for k, v in part.items():
        key = f"{prefix}.{k}"
        grads[key] = grads[key] + v if key in grads else v


def init_params(spec: Seq2SeqSpec, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """PyTorch default inits of every part (see the module docstring for the names)."""
    H, E = spec.hidden_size, spec.embed_dim
    cell = _cell(spec)
    p: dict[str, np.ndarray] = {}
    if spec.tokens_in:
        p.update({f"src_emb.{k}": v for k, v in
                  embedding.init_params(rng, spec.src_vocab, E, spec.pad_id, dtype).items()})
    if spec.tokens_out:
        p.update({f"tgt_emb.{k}": v for k, v in
                  embedding.init_params(rng, spec.tgt_vocab, E, spec.pad_id, dtype).items()})
    d_enc = E if spec.tokens_in else spec.src_dim
    d_dec = E if spec.tokens_out else spec.tgt_dim
    p.update({f"enc.{k}": v for k, v in cell.init_params(rng, d_enc, H, dtype, **_opts(spec)).items()})
    p.update({f"dec.{k}": v for k, v in cell.init_params(rng, d_dec, H, dtype, **_opts(spec)).items()})
    if spec.attention == "luong":
        p.update({f"attn.{k}": v for k, v in A.luong_init(rng, H, H, "general", dtype).items()})
    elif spec.attention == "bahdanau":
        a = spec.attn_size or H
        p.update({f"attn.{k}": v for k, v in A.additive_init(rng, H, H, a, True, dtype).items()})
    feat = 2 * H if spec.attention else H
    p.update({f"head.{k}": v for k, v in dense.init_params(rng, feat, spec.out_size, dtype).items()})
    return p


# ----------------------------------------------------------------------------------------
# encoder and one decoder step
# ----------------------------------------------------------------------------------------


def _encode(spec, params, src, src_mask):
    dtype = params["head.weight"].dtype
    if spec.tokens_in:
        x, emb_cache = embedding.forward(_sub(params, "src_emb"), np.asarray(src), spec.pad_id)
    else:
        x, emb_cache = np.asarray(src, dtype=dtype), None
        if x.ndim != 3 or x.shape[2] != spec.src_dim:
            raise ValueError(f"continuous src must be (B, Ts, {spec.src_dim}), got {x.shape}")
    mask = None if src_mask is None else np.asarray(src_mask)
    (hs, state), cache = _cell(spec).forward(_sub(params, "enc"), x, None, mask, **_opts(spec))
    return {"hs": hs, "state": tuple(state), "mask": mask, "cache": cache, "emb_cache": emb_cache}


def _attn_fns(spec):
    if spec.attention == "luong":
        return A.luong_forward, A.luong_backward
    return A.additive_forward, A.additive_backward


def _dec_input(spec, params, prev):
    """Decoder input (B, d) from previous token ids (B,) or values (B, tgt_dim)."""
    if spec.tokens_out:
        prev = np.asarray(prev)
        x = params["tgt_emb.weight"][prev]
        if spec.pad_id is not None:  # the padding row reads as zeros even if it was changed
            x[prev == _pad(spec)] = 0
        return x
    return np.asarray(prev, dtype=params["head.weight"].dtype)


def _step(spec, params, enc, state, x_in):
    """One decoder step. Returns out (B, O), new state, feat, attention weights or None, caches."""
    (_, st), c_cell = _cell(spec).forward(_sub(params, "dec"), x_in[:, None, :], state, **_opts(spec))
    h = st[0]
    c_att, w = None, None
    if spec.attention:
        fwd, _ = _attn_fns(spec)
        ctx, c_att = fwd(_sub(params, "attn"), h, enc["hs"], mask=enc["mask"])
        feat = np.concatenate([h, ctx], axis=1)
        w = c_att["weights"]
    else:
        feat = h
    out, _ = dense.forward(_sub(params, "head"), feat)
    return out, tuple(st), feat, w, (c_cell, c_att)


# ----------------------------------------------------------------------------------------
# graph forms (rnnlab.engine.lowering): the encoder and one decoder step, for the ONNX export
# ----------------------------------------------------------------------------------------

_ATTN_PARAMS = {"luong": ("W",), "bahdanau": ("W_q", "W_k", "v", "bias")}


def _part_keys(spec, prefix: str) -> dict[str, str]:
    return {k: f"{prefix}.{k}" for k in _cell(spec).param_names}


def lower_encode(spec: Seq2SeqSpec, g, src: str):
    """_encode in graph ops on src (B, Ts) ids or (B, Ts, src_dim) values, with g's sequence (the source
    mask): (enc_hs (B, Ts, H), the final state tuple)."""
    x = embedding.lower(g, {"weight": "src_emb.weight"}, src) if spec.tokens_in else src
    ys, finals = _cell(spec).lower_sequence(g, [_part_keys(spec, "enc")], x, **_opts(spec))
    return ys[0], finals[0]


def lower_step(spec: Seq2SeqSpec, g, prev: str, state: tuple, memory: str, keep: str):
    """_step in graph ops from the previous token ids (B,) int64 or values (B, tgt_dim), the state tuple,
    enc_hs (B, Ts, H) and the source's bool mask (B, Ts): (outputs (B, O), new state, weights (B, Ts) or None)."""
    if spec.tokens_out:
        table = g.value("tgt_emb.weight").copy()
        if spec.pad_id is not None:
            table[_pad(spec)] = 0  # the padding row reads as zeros (_dec_input)
        prev = g.op("Gather", [g.const(table, "tgt_emb.weight"), prev], axis=0)
    new = tuple(_cell(spec).lower_step(g, _part_keys(spec, "dec"), prev, state, **_opts(spec)))
    feat, weights = new[0], None
    if spec.attention:
        lower = A.luong_lower if spec.attention == "luong" else A.additive_lower
        p = {k: f"attn.{k}" for k in _ATTN_PARAMS[spec.attention]}
        ctx, weights = lower(g, p, new[0], memory, keep)
        feat = g.op("Concat", [new[0], ctx], axis=1)
    return dense.lower(g, {"weight": "head.weight", "bias": "head.bias"}, feat), new, weights


def _log_softmax(z):
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------------------
# training forward / backward
# ----------------------------------------------------------------------------------------


def forward(spec: Seq2SeqSpec, params, src, src_mask, tgt_in, teacher_forcing: float = 1.0,
            rng: np.random.Generator | None = None):
    """Outputs (B, T_out, V or tgt_dim) and the cache (``cache["attention"]`` (B, T_out, Ts) or
    None, ``cache["gold"]`` (B, T_out) bool: which steps read the gold input)."""
    p = float(teacher_forcing)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"teacher_forcing must be in [0, 1] (got {teacher_forcing})")
    if p < 1.0 and rng is None:
        rng = np.random.default_rng()
    tgt_in = np.asarray(tgt_in)
    B, T = tgt_in.shape[:2]
    if spec.tokens_out and tgt_in.ndim != 2:
        raise ValueError(f"token tgt_in must be (B, T_out) ids, got {tgt_in.shape}")
    if not spec.tokens_out and (tgt_in.ndim != 3 or tgt_in.shape[2] != spec.tgt_dim):
        raise ValueError(f"continuous tgt_in must be (B, T_out, {spec.tgt_dim}), got {tgt_in.shape}")
    enc = _encode(spec, params, src, src_mask)
    state = enc["state"]
    gold = np.ones((B, T), dtype=bool)
    fed = tgt_in.copy()  # what the decoder actually read (ids or values)
    outs, feats, steps, weights = [], [], [], []
    for t in range(T):
        if t > 0 and p < 1.0:
            g = rng.random(B) < p
            gold[:, t] = g
            prev = outs[-1].argmax(axis=-1) if spec.tokens_out else outs[-1]
            fed[:, t] = np.where(g if spec.tokens_out else g[:, None], tgt_in[:, t], prev)
        out, state, feat, w, caches = _step(spec, params, enc, state, _dec_input(spec, params, fed[:, t]))
        outs.append(out)
        feats.append(feat)
        steps.append(caches)
        weights.append(w)
    out = np.stack(outs, axis=1)
    attn = np.stack(weights, axis=1) if spec.attention else None
    cache = {"enc": enc, "feats": feats, "steps": steps, "fed": fed, "gold": gold, "attention": attn,
             "B": B, "T": T}
    return out, cache


def loss(spec: Seq2SeqSpec, out, tgt_out, tgt_mask):
    """(value, dL/dout): masked cross entropy over the real target steps (tokens) or MSE (continuous)."""

    if spec.tokens_out:
        return losses.softmax_cross_entropy(out, tgt_out, tgt_mask)
    return losses.mse(out, tgt_out)


def backward(spec: Seq2SeqSpec, params, dout, cache, trace: dict | None = None):
    """Gradients of every parameter (same keys as params) from dL/d(outputs) (B, T_out, O).
    trace: None, or a dict that backward fills with the total gradient dL/dh_t of the encoder's
    states ("encoder", (Ts, B, H)) and of the decoder's ("decoder", (T_out, B, H)), as model.backward."""
    cell = _cell(spec)
    enc = cache["enc"]
    B, T = cache["B"], cache["T"]
    H = spec.hidden_size
    dout = np.asarray(dout)
    dtype = params["head.weight"].dtype
    P_dec, P_head, P_attn = _sub(params, "dec"), _sub(params, "head"), _sub(params, "attn")
    grads: dict[str, np.ndarray] = {}
    d_enc_hs = np.zeros(enc["hs"].shape, dtype=dtype)
    dstate = [np.zeros((B, H), dtype=dtype) for _ in range(cell.num_states)]
    dx_in = np.zeros((B, T, params["dec.weight_ih"].shape[1]), dtype=dtype)
    dfeed = None  # continuous: gradient reaching the output of step t through step t+1's input
    if spec.attention:
        _, bwd = _attn_fns(spec)
    for t in range(T - 1, -1, -1):
        do = dout[:, t]
        if dfeed is not None:
            do = do + dfeed
        dfeat, gh = dense.backward(P_head, do, cache["feats"][t])
        _put(grads, "head", gh)
        c_cell, c_att = cache["steps"][t]
        if spec.attention:
            dq, dk, _, ga = bwd(P_attn, dfeat[:, H:], c_att)
            _put(grads, "attn", ga)
            d_enc_hs += dk
            dh = dfeat[:, :H] + dq
        else:
            dh = dfeat
        dstate[0] = dstate[0] + dh
        if trace is not None:
            trace.setdefault("decoder", np.zeros((T, B, H), dtype=dtype))[t] = dstate[0]
        dx, ds0, gc = cell.backward(P_dec, None, tuple(dstate), c_cell)
        _put(grads, "dec", gc)
        dstate = list(ds0)
        dx_in[:, t] = dx[:, 0]
        if not spec.tokens_out and t > 0:
            dfeed = dx[:, 0] * (~cache["gold"][:, t])[:, None]  # only sampled rows fed back a value
    if spec.tokens_out:
        _put(grads, "tgt_emb", embedding.backward(_sub(params, "tgt_emb"), dx_in,
                                                  (cache["fed"], spec.tgt_vocab, _pad(spec))))
    tr = None if trace is None else np.empty((enc["hs"].shape[1], B, H), dtype=dtype)
    dx_src, _, ge = cell.backward(_sub(params, "enc"), d_enc_hs, tuple(dstate), enc["cache"], dh_trace=tr)
    if trace is not None:  # encoder first, as the sequence model lists its bottom layer first
        decoder = trace.pop("decoder", None)
        trace["encoder"] = tr
        if decoder is not None:
            trace["decoder"] = decoder
    _put(grads, "enc", ge)
    if spec.tokens_in:
        _put(grads, "src_emb", embedding.backward(_sub(params, "src_emb"), dx_src, enc["emb_cache"]))
    return {k: grads[k] for k in params}


def shows(spec: Seq2SeqSpec, cache) -> dict:
    """What the monitors see, as model.shows: "states" of the encoder (layer 0, key "encoder") and the
    decoder (layer 1, key "decoder"), each with hs (B, T, H), the cell's named activations and its
    real steps "valid" (B, T); "cross_attention" (B, T_out, Ts) with attention."""
    cell = _cell(spec)
    enc = cache["enc"]
    B, Ts = enc["hs"].shape[:2]
    src_valid = np.ones((B, Ts), dtype=bool) if enc["mask"] is None else enc["mask"] > 0
    steps = [c_cell for c_cell, _ in cache["steps"]]
    dec_hs = np.concatenate([c["hs"] for c in steps], axis=1)  # each step's (B, 1, H) outputs
    acts = [cell.activations(c) for c in steps]
    dec_acts = {k: (kind, np.concatenate([a[k][1] for a in acts], axis=1)) for k, (kind, _) in acts[0].items()}
    views = [{"layer": 0, "direction": "forward", "key": "encoder", "hs": enc["hs"], "valid": src_valid,
              "activations": cell.activations(enc["cache"])}]
    views.append({"layer": 1, "direction": "forward", "key": "decoder", "hs": dec_hs,
                  "valid": np.ones(dec_hs.shape[:2], dtype=bool), "activations": dec_acts})
    out = {"states": views}
    if cache["attention"] is not None:
        out["cross_attention"] = cache["attention"]
    return out


def recurrent_weights(spec: Seq2SeqSpec) -> list[tuple[str, str, cells.Recurrent]]:
    """("encoder" / "decoder", parameter name, the cell's `cells.Recurrent`), as model.recurrent_weights."""
    rec = _cell(spec).recurrent
    if rec is None:
        return []
    return [(part, f"{prefix}.{rec.param}", rec) for part, prefix in (("encoder", "enc"), ("decoder", "dec"))]


def after_step(spec: Seq2SeqSpec, params) -> None:
    """The cell's projection (if any) on the encoder's and decoder's weights, in place."""
    for part in ("enc", "dec"):
        _cell(spec).after_step(_sub(params, part), **_opts(spec))


def _pad(spec):
    return None if spec.pad_id is None else spec.pad_id % spec.tgt_vocab


# ----------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------


class Steps:
    """The encoder and one decoder step, for the decoding loops (NumPy; see the module docstring).

    ``encode(src, src_mask)`` -> {"hs": (B, Ts, H), "mask": (B, Ts) or None, "state": tuple of (B, H)};
    ``step(enc, state, prev)`` -> (outputs (B, O), new state, attention weights (B, Ts) or None) from the
    previous token ids (B,) or values (B, tgt_dim), over ``enc["hs"]`` / ``enc["mask"]`` (the loops may
    hand it rows of the encoding, e.g. repeated per beam). ``spec`` and ``dtype`` (of the outputs) too."""

    def __init__(self, spec: Seq2SeqSpec, params):
        self.spec, self.params = spec, params
        self.dtype = params["head.weight"].dtype

    def encode(self, src, src_mask) -> dict:
        return _encode(self.spec, self.params, src, src_mask)

    def step(self, enc, state, prev):
        out, state, _, w, _ = _step(self.spec, self.params, enc, state, _dec_input(self.spec, self.params, prev))
        return out, state, w


def greedy_decode(spec: Seq2SeqSpec, params, src, src_mask, max_len: int, bos_id: int,
                  eos_id: int | None = None) -> Decoded:
    """Argmax decoding of up to max_len tokens (see the module docstring for the result)."""
    return decode_greedy(Steps(spec, params), src, src_mask, max_len, bos_id, eos_id)


def decode_greedy(steps: Steps, src, src_mask, max_len: int, bos_id: int, eos_id: int | None = None) -> Decoded:
    """greedy_decode on any step source (`Steps`)."""
    spec = steps.spec
    if not spec.tokens_out:
        raise ValueError("greedy_decode needs token targets (spec.tgt_vocab); use generate")
    enc = steps.encode(src, src_mask)
    B = enc["hs"].shape[0]
    Ts = enc["hs"].shape[1]
    state = enc["state"]
    prev = np.full(B, bos_id, dtype=np.int64)
    tokens = np.full((B, max_len), eos_id if eos_id is not None else 0, dtype=np.int64)
    logp_sum = np.zeros(B)
    lengths = np.zeros(B, dtype=np.int64)
    attn = np.zeros((B, max_len, Ts)) if spec.attention else None
    alive = np.ones(B, dtype=bool)
    for t in range(max_len):
        out, state, w = steps.step(enc, state, prev)
        logp = _log_softmax(out.astype(np.float64))
        tok = logp.argmax(axis=-1)
        tokens[alive, t] = tok[alive]
        logp_sum[alive] += logp[alive, tok[alive]]
        lengths[alive] += 1
        if attn is not None:
            attn[alive, t] = w[alive]
        if eos_id is not None:
            alive &= tok != eos_id
            if not alive.any():
                break
        prev = tok
    return Decoded(tokens, None, logp_sum, lengths, attn)


def _tile(state, idx):
    return tuple(s[idx] for s in state)


def beam_search(spec: Seq2SeqSpec, params, src, src_mask, beam_size: int, max_len: int, bos_id: int,
                eos_id: int | None = None, length_penalty: float = 0.0) -> Decoded:
    """Beam search per sequence (see the module docstring for the rules and the result)."""
    return decode_beam(Steps(spec, params), src, src_mask, beam_size, max_len, bos_id, eos_id, length_penalty)


def decode_beam(steps: Steps, src, src_mask, beam_size: int, max_len: int, bos_id: int,
                eos_id: int | None = None, length_penalty: float = 0.0) -> Decoded:
    """beam_search on any step source (`Steps`)."""
    spec = steps.spec
    if not spec.tokens_out:
        raise ValueError("beam_search needs token targets (spec.tgt_vocab); use generate")
    K = int(beam_size)
    if K < 1:
        raise ValueError(f"beam_size must be >= 1 (got {beam_size})")
    enc_all = steps.encode(src, src_mask)
    B, Ts = enc_all["hs"].shape[:2]
    V = spec.tgt_vocab
    tokens = np.full((B, max_len), eos_id if eos_id is not None else 0, dtype=np.int64)
    logp_out = np.zeros(B)
    lengths = np.zeros(B, dtype=np.int64)
    attn = np.zeros((B, max_len, Ts)) if spec.attention else None
    for b in range(B):
        hs_b = np.ascontiguousarray(enc_all["hs"][b:b + 1])
        mask_b = None if enc_all["mask"] is None else enc_all["mask"][b:b + 1]
        state = tuple(s[b:b + 1] for s in enc_all["state"])
        seqs = np.zeros((1, 0), dtype=np.int64)
        scores = np.zeros(1)
        hist = np.zeros((1, 0, Ts))
        prev = np.array([bos_id])
        finished: list[tuple[np.ndarray, float, np.ndarray]] = []
        for _ in range(max_len):
            k = len(scores)
            enc = {"hs": np.repeat(hs_b, k, axis=0), "mask": None if mask_b is None else np.repeat(mask_b, k, 0)}
            out, st, w = steps.step(enc, state, prev)
            cand = (scores[:, None] + _log_softmax(out.astype(np.float64))).ravel()
            order = np.argsort(-cand, kind="stable")[: 2 * K]
            keep = []
            for r, idx in enumerate(order):
                beam, tok = divmod(int(idx), V)
                if eos_id is not None and tok == eos_id:
                    if r < K:
                        a = hist[beam] if w is None else np.concatenate([hist[beam], w[beam][None]], 0)
                        finished.append((np.append(seqs[beam], tok), float(cand[idx]), a))
                    continue
                keep.append((beam, tok, idx))
                if len(keep) == K:
                    break
            if len(finished) >= K or not keep:
                break
            beams = np.array([x[0] for x in keep])
            toks = np.array([x[1] for x in keep], dtype=np.int64)
            seqs = np.concatenate([seqs[beams], toks[:, None]], axis=1)
            scores = cand[[x[2] for x in keep]]
            hist = hist[beams] if w is None else np.concatenate([hist[beams], w[beams][:, None]], 1)
            state = _tile(st, beams)
            prev = toks
        else:
            finished.extend((seqs[i], float(scores[i]), hist[i]) for i in range(len(scores)))
        if len(finished) < 1:  # stopped with no live beam (cannot happen with V > 1): keep live ones
            finished.extend((seqs[i], float(scores[i]), hist[i]) for i in range(len(scores)))
        best = max(finished, key=lambda f: f[1] / max(len(f[0]), 1) ** length_penalty)
        n = len(best[0])
        tokens[b, :n] = best[0]
        logp_out[b] = best[1]
        lengths[b] = n
        if attn is not None:
            attn[b, :n] = best[2]
    return Decoded(tokens, None, logp_out, lengths, attn)


def generate(spec: Seq2SeqSpec, params, src, steps: int, start_value, src_mask=None) -> Decoded:
    """Free-running continuous decoding: each step reads the previous output, step 0 reads
    start_value (a number or a (tgt_dim,) / (B, tgt_dim) array). ``outputs`` (B, steps, tgt_dim)."""
    return decode_generate(Steps(spec, params), src, steps, start_value, src_mask)


def decode_generate(source: Steps, src, steps: int, start_value, src_mask=None) -> Decoded:
    """generate on any step source (`Steps`)."""
    spec = source.spec
    if spec.tokens_out:
        raise ValueError("generate is for continuous targets; use greedy_decode or beam_search")
    enc = source.encode(src, src_mask)
    B, Ts = enc["hs"].shape[:2]
    dtype = source.dtype
    prev = np.broadcast_to(np.asarray(start_value, dtype=dtype), (B, spec.tgt_dim)).copy()
    state = enc["state"]
    outs = np.zeros((B, steps, spec.tgt_dim), dtype=dtype)
    attn = np.zeros((B, steps, Ts)) if spec.attention else None
    for t in range(steps):
        out, state, w = source.step(enc, state, prev)
        outs[:, t] = out
        if attn is not None:
            attn[:, t] = w
        prev = out
    return Decoded(None, outs, None, np.full(B, steps, dtype=np.int64), attn)
