"""Centred finite differences in float64, for checking hand-written backward passes.

Typical use in a test::

    def loss(p):                      # p: dict name -> float64 array (perturbed in place)
        (hs, st), _ = lstm.forward(p, p["x"], ...)
        return float(np.sum(hs * w))   # w: fixed random weights, so every output matters

    num = numeric_grads(loss, arrays)  # same keys as arrays
    assert max_rel_error(analytic, num) < 1e-6

The relative error of a tensor is ||a - n|| / (||a|| + ||n||) (Frobenius norms). An
entrywise ratio would be dominated by round-off (about 1e-10 absolute) on entries near
zero; a real bug in any entry still shows as an error many orders above 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def numeric_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """d f() / d x by centred differences, perturbing x in place (restored afterwards)."""
    if x.dtype != np.float64:
        raise TypeError(f"gradcheck needs float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad


def numeric_grads(
    f: Callable[[Mapping[str, np.ndarray]], float],
    arrays: Mapping[str, np.ndarray],
    eps: float = 1e-5,
) -> dict[str, np.ndarray]:
    """Numeric gradient of f(arrays) for every array in `arrays` (all float64)."""
    return {k: numeric_grad(lambda: f(arrays), v, eps) for k, v in arrays.items()}


def rel_error(a: np.ndarray, b: np.ndarray, atol: float = 1e-12) -> float:
    """||a - b|| / (||a|| + ||b||); 0 when both are (numerically) zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    if scale < atol:
        return 0.0
    return float(np.linalg.norm(a - b) / scale)


def max_rel_error(
    analytic: Mapping[str, np.ndarray], numeric: Mapping[str, np.ndarray], atol: float = 1e-12
) -> dict[str, float]:
    """Per-key relative error; raises if the key sets differ (a missing gradient is a bug)."""
    if set(analytic) != set(numeric):
        raise KeyError(f"gradient keys differ: {sorted(analytic)} vs {sorted(numeric)}")
    return {k: rel_error(analytic[k], numeric[k], atol) for k in analytic}


def sparse_rel_errors(
    f: Callable[[Mapping[str, np.ndarray]], float],
    arrays: Mapping[str, np.ndarray],
    analytic: Mapping[str, np.ndarray],
    k: int = 6,
    seed: int = 0,
    eps: float = 3e-5,
) -> dict[str, float]:
    """cs231n's grad_check_sparse: centred differences at k random entries of every array (all of
    them when it has at most k), compared with the analytic gradient there. For large combinatorial
    models, where a full check costs seconds; the cells and layers get full checks in their own tests.
The difference is the fourth-order centred stencil (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h: its
truncation error (~h^4) stays far below 1e-6 at h = 3e-5, where round-off is ~1e-11, so neither
strongly curved blocks (LayerNorm over a few units) nor vanishingly small gradients need a tuned step.

    Returns per array ||a_s - n_s|| / max(||a_s|| + ||n_s||, ||a|| sqrt(k / size)): the sampled
    entries' error, relative to their size or, when the sample happens to hold only entries far
    below the tensor's typical size (where round-off alone would fail it), to that typical size."""
    if set(analytic) != set(arrays):
        raise KeyError(f"gradient keys differ: {sorted(analytic)} vs {sorted(arrays)}")
    rng = np.random.default_rng(seed)
    errs = {}
    for name, x in arrays.items():
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 arrays, got {x.dtype} for {name}")
        idx = np.arange(x.size) if x.size <= k else rng.choice(x.size, size=k, replace=False)
        num = np.empty(len(idx))
        for j, i in enumerate(idx):
            at = np.unravel_index(i, x.shape)
            old = x[at]
            vals = []
            for step in (-2, -1, 1, 2):
                x[at] = old + step * eps
                vals.append(f(arrays))
            x[at] = old
            num[j] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * eps)
        full = np.asarray(analytic[name], dtype=np.float64).reshape(-1)
        a = full[idx]
        scale = max(np.linalg.norm(a) + np.linalg.norm(num), np.linalg.norm(full) * np.sqrt(len(idx) / full.size))
        # both ~0 (a parameter whose output is unused, e.g. the top LayerNorm under pooling "last"): no error
        errs[name] = 0.0 if scale < 1e-9 else float(np.linalg.norm(a - num) / scale)
    return errs
