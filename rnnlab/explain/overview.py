"""A global view over many samples of a split, beside the per-sample attributions:

* text models: the tokens that push the prediction most, towards and against the target, over the samples
  (mean attribution per occurrence, tokens seen at least `min_count` times), as the top tokens of
  Captum's and SHAP's text summaries;
* series: a ranking of the input features (covariates) and of the time lags (lag 1 = the last real step)
  by mean |attribution|, and by permutation importance (Breiman 2001; sklearn's
  `permutation_importance`): the score's drop when one feature's whole series, or every feature at one
  lag, is shuffled across the samples, `repeats` times (mean and standard deviation).

The score is the run's own: accuracy for classification, minus the MSE (in the scaled units the model was
trained in) for regression, so that a drop is always a loss. Permutation needs no gradient: one forward
per shuffled copy. The attributions come from one method (default gradient x input: one backward per
sample, so a few hundred reviews take seconds; integrated gradients on request).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnlab.explain.methods import METHODS, Options

TOP = 20
REPEATS = 5
MAX_LAGS = 64


def overview(f, split, kind: str, rows: np.ndarray, method: str, target, base_fn, opt: Options,
             vocab: list[str] | None = None, meta: dict | None = None) -> dict:
    """The global view over `rows` of `split`; base_fn(z, mask) gives the baseline of the inputs z."""
    x, mask = split.x[rows], None if split.mask is None else np.asarray(split.mask[rows], dtype=np.float32)
    z = f.embed(x)
    sel = target.select(f.outputs(z, mask), mask)
    attr = METHODS[method](f, z, mask, sel, base_fn(z, mask), opt)
    out = {"method": method, "target": target.text, "samples": len(rows)}
    if f.tokens:
        out["tokens"] = top_tokens(np.asarray(x), mask, attr.per_step(), vocab)
        return out
    names = feature_names(meta or {}, z.shape[2])
    sub = dataclasses.replace(split, x=x, y=split.y[rows], mask=mask, info=None,
                              target_mask=None if split.target_mask is None else split.target_mask[rows])
    perm = permutation_importance(f, sub, kind, opt.seed)
    out["features"] = _ranked(names, np.abs(attr.values).sum(axis=1).mean(axis=0), perm["features"])
    by_lag = _by_lag(np.abs(attr.values).sum(axis=2), mask)
    out["lags"] = _ranked([f"lag {k + 1}" for k in range(len(perm["lags"]))], by_lag[: len(perm["lags"])],
                          perm["lags"])
    out["score"] = perm["score"]
    return out


def feature_names(meta: dict, D: int) -> list[str]:
    """The inputs' column names: a forecast's target and covariates, a sequence file's features, else x0..."""
    names = [meta["target"], *meta.get("covariates", [])] if "target" in meta else meta.get("features") or []
    names = [str(n) for n in names]
    return names if len(names) == D else [f"x{d}" for d in range(D)]


def top_tokens(x: np.ndarray, mask, per_step: np.ndarray, vocab: list[str] | None, min_count: int = 0) -> dict:
    """Per token: occurrences and mean attribution; the TOP most positive and most negative among tokens seen
    at least min_count times (0: 1 % of the samples, at least 3)."""
    real = np.ones(x.shape, bool) if mask is None else np.asarray(mask) != 0
    ids, vals = x[real].astype(int), per_step[real]
    V = max(int(ids.max(initial=0)) + 1, len(vocab or []))
    count = np.bincount(ids, minlength=V)
    mean = np.bincount(ids, weights=vals, minlength=V) / np.maximum(count, 1)
    floor = min_count or max(3, len(x) // 100)
    seen = np.flatnonzero(count >= floor)
    order = seen[np.argsort(-mean[seen], kind="stable")]

    def rows(idx):
        return [{"token": _word(vocab, i), "count": int(count[i]), "mean": float(mean[i])} for i in idx]

    return {"min_count": int(floor), "positive": rows(order[:TOP]),
            "negative": rows(order[::-1][:TOP])}


def permutation_importance(f, split, kind: str, seed: int, repeats: int = REPEATS) -> dict:
    """The score's drop (mean, std over repeats) per feature and per lag (up to MAX_LAGS) when that input is
    shuffled across samples; 'score' is the unshuffled score."""
    rng = np.random.default_rng(seed)
    x = np.asarray(split.x)
    mask = split.mask
    base = score(kind, f.outputs(f.embed(x), mask), split)
    B, T, D = x.shape
    real = np.ones((B, T), bool) if mask is None else np.asarray(mask) != 0
    lag_index = _lag_index(real)  # (B, MAX_LAGS): the step of lag k + 1 per sample, -1 where none
    n_lags = int(min(MAX_LAGS, real.sum(axis=1).max(initial=0)))

    def drops(shuffle) -> list[float]:
        out = []
        for _ in range(repeats):
            perm = rng.permutation(B)
            y = f.outputs(f.embed(shuffle(perm)), mask)
            out.append(base - score(kind, y, split))
        return out

    def feature(d):
        def shuffle(perm):
            c = x.copy()
            c[:, :, d] = np.where(real, x[perm, :, d], x[:, :, d])
            return c
        return shuffle

    def lag(k):
        def shuffle(perm):
            c, rows = x.copy(), np.flatnonzero((lag_index[:, k] >= 0) & (lag_index[perm, k] >= 0))
            c[rows, lag_index[rows, k]] = x[perm[rows], lag_index[perm[rows], k]]
            return c
        return shuffle

    feats = [drops(feature(d)) for d in range(D)]
    lags = [drops(lag(k)) for k in range(n_lags)]
    return {"score": float(base), "features": [_stats(v) for v in feats], "lags": [_stats(v) for v in lags]}


def score(kind: str, y: np.ndarray, split) -> float:
    """Accuracy (classification) or minus the MSE over the counted targets (regression): `attack.metrics`."""
    from rnnlab.explain.attack import metrics

    m = metrics(kind, y, np.asarray(split.y), split.target_mask)
    return float(m["accuracy"]) if "accuracy" in m else -float(m["mse"])


def _lag_index(real: np.ndarray) -> np.ndarray:
    B, T = real.shape
    out = np.full((B, MAX_LAGS), -1)
    for i in range(B):
        steps = np.flatnonzero(real[i])[::-1][:MAX_LAGS]
        out[i, : len(steps)] = steps
    return out


def _by_lag(per_step_abs: np.ndarray, mask) -> np.ndarray:
    """(MAX_LAGS,): the mean over samples of per_step_abs at each lag (lag 1 = each sample's last real step)."""
    real = np.ones(per_step_abs.shape, bool) if mask is None else np.asarray(mask) != 0
    idx = _lag_index(real)
    has = idx >= 0
    vals = np.where(has, np.take_along_axis(per_step_abs, np.maximum(idx, 0), axis=1), 0.0)
    return vals.sum(axis=0) / np.maximum(has.sum(axis=0), 1)


def _stats(v: list[float]) -> dict:
    return {"mean": float(np.mean(v)), "std": float(np.std(v))}


def _ranked(names: list[str], mean_abs: np.ndarray, perm: list[dict]) -> list[dict]:
    """Rows sorted by mean |attribution| (share of the total), with the permutation importance beside."""
    total = float(np.sum(mean_abs)) or 1.0
    rows = [{"name": n, "mean_abs_attribution": float(a), "share": float(a) / total,
             "permutation_drop": p["mean"], "permutation_std": p["std"]}
            for n, a, p in zip(names, mean_abs, perm, strict=True)]
    return sorted(rows, key=lambda r: -r["mean_abs_attribution"])


def _word(vocab, i: int) -> str:
    return vocab[i] if vocab is not None and 0 <= i < len(vocab) else str(i)
