"""Sanity checks reported with every explanation, and the known answers of the synthetic tasks.

* Completeness (integrated gradients): in `methods.integrated_gradients`' extras; a relative gap above
  COMPLETENESS_LIMIT warns.
* Model randomisation (Adebayo et al. 2018): the blocks' weights re-initialised from the head down
  (cascading); per stage, the Spearman rank correlation between each sample's per-step |attribution| of
  the trained and of the randomised model, averaged over samples. A method whose correlation after the
  whole cascade is above RANDOMISATION_LIMIT does not depend on what the model learned: flagged.
* Deletion: the steps ranked by attribution (towards the target) are set to the baseline, the top 0, 10,
  ..., 100 % of each sample's real steps; F falls faster for a faithful method than for a random order
  (the mean over DELETION_RANDOM orders). Areas under both curves (F normalised by F(x) - F(baseline)).
* Known answers: the adding problem depends only on its two marked steps, the copy task's answer at an
  answer step only on the symbol it copies: the share of |attribution| there.
"""

from __future__ import annotations

import numpy as np

COMPLETENESS_LIMIT = 0.01
RANDOMISATION_LIMIT = 0.5
DELETION_FRACTIONS = np.linspace(0.0, 1.0, 11)
DELETION_RANDOM = 5


def spearman_rows(a: np.ndarray, b: np.ndarray, mask) -> np.ndarray:
    """Per row, the Spearman correlation of a and b over the row's real steps (nan where undefined)."""
    from scipy.stats import spearmanr

    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        keep = slice(None) if mask is None else np.asarray(mask[i]) != 0
        x, y = a[i][keep], b[i][keep]
        if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out


def randomised_params(spec, params: dict, stages: int, seed: int) -> list[tuple[str, dict]]:
    """The cascade: (name of the block re-initialised last, params) for the top `stages` blocks with
    weights, from the head down; each stage keeps the earlier stages' new weights."""
    from rnnlab.engine import model as M

    rng = np.random.default_rng(seed)
    out, current = [], dict(params)
    # the embedding stays: attributions are taken at its (trained) vectors
    weighted = [b for b in reversed(M.blocks_of(spec))
                if b.name != "embedding" and b.init_params(np.random.default_rng(0), np.float32)]
    for block in weighted[:stages]:
        fresh = block.init_params(rng, params["head.weight"].dtype)
        current = {**current, **{k: v for k, v in fresh.items() if k in current}}
        out.append((block.name, current))
    return out


def deletion_curve(f, z, mask, sel, base, per_step: np.ndarray, seed: int) -> dict:
    """F after deleting the top fractions of steps by `per_step` (B, T), and after random orders: the mean
    normalised curves and their areas (trapezoid over the fractions)."""
    rng = np.random.default_rng(seed)
    B, T = per_step.shape
    real = np.ones((B, T), bool) if mask is None else np.asarray(mask) != 0
    ranked = np.where(real, per_step, -np.inf)
    orders = [np.argsort(-ranked, axis=1, kind="stable")]
    for _ in range(DELETION_RANDOM):
        orders.append(np.argsort(np.where(real, rng.random((B, T)), np.inf), axis=1))
    f_x, f_base = f.value(z, mask, sel), f.value(base.astype(z.dtype), mask, sel)
    scale = np.where(np.abs(f_x - f_base) > 1e-12, f_x - f_base, 1.0)
    n_real = real.sum(axis=1)
    curves = []
    for order in orders:
        copies = []
        for frac in DELETION_FRACTIONS:
            k = np.ceil(frac * n_real).astype(int)
            drop = np.arange(T)[None, :] < k[:, None]
            gone = np.zeros((B, T), bool)
            np.put_along_axis(gone, order, drop, axis=1)
            copies.append(np.where(gone[:, :, None], base, z))
        rows = np.stack(copies, axis=1).reshape(B * len(DELETION_FRACTIONS), *z.shape[1:]).astype(z.dtype)
        m = None if mask is None else np.repeat(mask, len(DELETION_FRACTIONS), axis=0)
        vals = f.value(rows, m, sel.repeat(len(DELETION_FRACTIONS))).reshape(B, -1)
        curves.append(((vals - f_base[:, None]) / scale[:, None]).mean(axis=0))
    method, random = curves[0], np.mean(curves[1:], axis=0)
    return {"fractions": DELETION_FRACTIONS.tolist(), "method": method.tolist(), "random": random.tolist(),
            "area_method": _area(method), "area_random": _area(random)}


def _area(curve: np.ndarray) -> float:
    """The trapezoid rule over DELETION_FRACTIONS."""
    return float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(DELETION_FRACTIONS)))


def truth_mask(meta: dict, x: np.ndarray, sel, mask) -> np.ndarray | None:
    """(B, T) bool of the steps a synthetic task's answer depends on, or None for other data: the adding
    problem's two marked steps; for the copy task, the input symbol the selected answer step copies (an
    answer step outside the answer part depends on nothing: no row)."""
    task = (meta or {}).get("task")
    if task == "adding":
        return np.asarray(x)[:, :, 1] == 1
    if task == "copy" and sel.step is not None:
        L, D = int(meta["copy_len"]), int(meta["delay"])
        out = np.zeros(np.shape(x)[:2], bool)
        k = sel.step - (L + D)
        rows = np.flatnonzero((k >= 0) & (k < L))
        out[rows, k[rows]] = True
        return out
    return None


def truth_share(per_step_abs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per sample, the share of total |attribution| on the truth steps (nan for a row without any)."""
    total = per_step_abs.sum(axis=1)
    on = (per_step_abs * truth).sum(axis=1)
    ok = truth.any(axis=1) & (total > 0)
    return np.where(ok, on / np.where(total > 0, total, 1.0), np.nan)
