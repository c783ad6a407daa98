"""Sampling from a next-token model (a `model.ModelSpec` with an embedding and pooling "none"): greedy,
temperature, top-k and nucleus (top-p) sampling, n samples at once.

    ids = sample(spec, params, prompt, length=200, rng=rng, temperature=0.8, top_k=None, top_p=0.95, n=5)

The prompt (P,) token ids is read once (its state carried, as in stateful training), then each step feeds
the token just drawn with the state the step before ended in: one step of the recurrent stack per token,
never re-reading the prefix. Filters apply in the usual order (Hugging Face's `generate`): logits / T, keep
the top k, keep the smallest set whose probability reaches p (the most likely token always stays), then draw.
`temperature=0` is greedy (argmax). Tokens in `banned` (the padding id) are never drawn.

Shapes: prompt (P,) int; returns (n, length) int64, the drawn tokens only.
"""

from __future__ import annotations

import numpy as np

from rnnlab.engine import model as M


def probabilities(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, banned=()) -> np.ndarray:
    """(n, V) logits -> (n, V) sampling probabilities after temperature, top-k and top-p (rows sum to 1)."""
    z = np.asarray(logits, dtype=np.float64).copy()
    if len(banned):
        z[:, list(banned)] = -np.inf
    if temperature == 0:  # greedy: all mass on the argmax
        out = np.zeros_like(z)
        out[np.arange(len(z)), z.argmax(axis=1)] = 1.0
        return out
    z /= temperature
    if top_k is not None and top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the tokens ranked above each one
        drop = np.zeros_like(p, dtype=bool)
        np.put_along_axis(drop, order, before >= top_p, axis=1)
        p[drop] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    return p


def draw(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row of p (n, V) by inverse CDF with one uniform per row (reproducible for a seed)."""
    u = rng.random(len(p))[:, None]
    idx = (np.cumsum(p, axis=1) < u * p.sum(axis=1, keepdims=True)).sum(axis=1)
    return np.minimum(idx, p.shape[1] - 1).astype(np.int64)


def sample(spec, params: dict, prompt: np.ndarray, length: int, rng: np.random.Generator, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, n: int = 1, state: dict | None = None,
           banned=(0,)) -> np.ndarray:
    """n continuations of `length` tokens after `prompt` (see the module docstring)."""
    prompt = np.asarray(prompt, dtype=np.int64).reshape(1, -1).repeat(n, axis=0)
    logits, cache = M.forward(spec, params, prompt, None, train=False, state=state)
    carry, last = cache["final_states"], logits[:, -1]
    out = np.zeros((n, length), dtype=np.int64)
    for t in range(length):
        out[:, t] = draw(probabilities(last, temperature, top_k, top_p, banned), rng)
        if t + 1 < length:  # the last token needs no step of its own
            step, cache = M.forward(spec, params, out[:, t : t + 1], None, train=False, state=state,
                                    initial_states=carry)
            carry, last = cache["final_states"], step[:, -1]
    return out
