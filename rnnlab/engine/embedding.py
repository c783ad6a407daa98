"""Embedding lookup: y[b, t] = weight[ids[b, t]].

Shapes: weight (V, E), ids integer (B, T) (any shape works), y (*ids.shape, E).
With padding_idx set, that row starts at zero and never receives gradient, so it stays
zero under any optimizer whose update is zero for a zero gradient (decoupled weight decay
keeps a zero row at zero too).
"""

from __future__ import annotations

import numpy as np


def _check_padding(padding_idx, num_embeddings: int):
    """PyTorch convention: a negative padding_idx counts from the end."""
    if padding_idx is None:
        return None
    p = int(padding_idx)
    if not -num_embeddings <= p < num_embeddings:
        raise ValueError(f"embedding padding_idx must be in [-{num_embeddings}, "
                         f"{num_embeddings}) (got {padding_idx})")
    return p % num_embeddings


def init_params(rng: np.random.Generator, num_embeddings: int, embedding_dim: int,
                padding_idx=None, dtype=np.float32) -> dict[str, np.ndarray]:
    """PyTorch nn.Embedding default: N(0, 1) entries, padding row zeroed."""
    if num_embeddings < 1 or embedding_dim < 1:
        raise ValueError(f"embedding sizes must be >= 1 (got V={num_embeddings}, "
                         f"E={embedding_dim})")
    pad = _check_padding(padding_idx, num_embeddings)
    weight = rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype)
    if pad is not None:
        weight[pad] = 0
    return {"weight": weight}


def forward(params: dict[str, np.ndarray], ids: np.ndarray, padding_idx=None):
    """Returns (y, cache). Raises ValueError for non-integer or out-of-range ids."""
    weight = params["weight"]
    num = weight.shape[0]
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"embedding ids must be integers (got dtype {ids.dtype})")
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= num:
            bad = lo if lo < 0 else hi
            raise ValueError(f"embedding id {bad} out of range [0, {num}) "
                             f"(vocabulary size {num})")
    pad = _check_padding(padding_idx, num)
    y = weight[ids]  # fancy indexing copies, so y never aliases the weight
    return y, (ids, num, pad)


def backward(params: dict[str, np.ndarray], dy: np.ndarray, cache) -> dict[str, np.ndarray]:
    """Returns grads {"weight"}; rows hit by repeated ids accumulate their gradients."""
    ids, num, pad = cache
    emb = dy.shape[-1]
    flat = ids.reshape(-1)
    dy2 = dy.reshape(-1, emb)
    grad = np.zeros((num, emb), dtype=dy.dtype)
    if flat.size:
        # Sort once, then sum each run of equal ids with reduceat: far faster than
        # np.add.at's unbuffered scatter for long sequences with repeated tokens.
        order = np.argsort(flat, kind="stable")
        sorted_ids = flat[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        grad[sorted_ids[starts]] = np.add.reduceat(dy2[order], starts, axis=0)
    if pad is not None:
        grad[pad] = 0
    return {"weight": grad}


def lower(g, keys: dict[str, str], ids: str) -> str:
    """The graph form (rnnlab.engine.lowering): Gather of the rows. keys: "weight" -> the model's name."""
    return g.op("Gather", [g.param(keys["weight"]), ids], axis=0)
