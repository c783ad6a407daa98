"""Evaluation metrics computed in float64 on (N, ...) arrays of targets and predictions."""

from __future__ import annotations

import numpy as np


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, huber_delta: float = 1.0,
                       mase_scale: float | None = None) -> dict[str, float]:
    """MSE, RMSE, MAE, R2, MAPE, sMAPE, Huber, and MASE when `mase_scale` is given.

    MAPE (in %) counts targets whose |y| > 1e-8, so zeros cannot blow it up. sMAPE is the M4
    competition's, in %: 200/n * sum |y - f| / (|y| + |f|), a term with |y| + |f| = 0 counting 0.
    MASE = MAE / mase_scale, the scale being the in-sample MAE of the (seasonal) naive forecast
    (Hyndman & Koehler 2006; rnnlab.data.baselines.mase_scale); NaN when the scale is not positive.
    Huber (delta 1.0 by default): 0.5 e^2 where |e| <= delta, else delta (|e| - delta / 2), averaged.
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    err = p - t
    mse = float(np.mean(err**2))
    var = float(np.var(t))
    nz = np.abs(t) > 1e-8
    mape = float(np.mean(np.abs(err[nz] / t[nz])) * 100) if nz.any() else float("nan")
    abs_err = np.abs(err)
    denom = np.abs(t) + np.abs(p)
    terms = np.divide(abs_err, denom, out=np.zeros_like(abs_err), where=denom > 0)
    huber = np.where(abs_err <= huber_delta, 0.5 * err**2, huber_delta * (abs_err - 0.5 * huber_delta))
    mae = float(np.mean(abs_err))
    out = {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": mae,
        "r2": 1.0 - mse / var if var > 0 else float("nan"),
        "mape": mape,
        "smape": float(200.0 * np.mean(terms)) if len(err) else float("nan"),
        "huber": float(np.mean(huber)) if len(err) else float("nan"),
    }
    if mase_scale is not None:
        out["mase"] = mae / mase_scale if mase_scale > 0 else float("nan")
    return out


# The metric that picks the best row of a model-beside-baselines table, per task: (key, higher is
# better). Regression: MAE, which orders the rows as MASE does (one scale for all of them).
TOKEN_BEST = ("bits_per_token", False)
BEST_BY = {"regression": ("mae", False), "binary": ("accuracy", True), "multiclass": ("accuracy", True)}


def best_row(rows: list[dict | None], task: str | None) -> int | None:
    """Index of the best metric dict among `rows` by BEST_BY[task] (missing or NaN never best; ties: the
    first); None when no row has a finite value or the task has no rule."""
    if task not in BEST_BY:
        return None
    key, higher = BEST_BY[task]
    if rows and "bits_per_token" in (rows[0] or {}):  # a language model: its n-gram baselines have no accuracy
        key, higher = TOKEN_BEST
    scores = [(r or {}).get(key) for r in rows]
    finite = [(v if higher else -v, -i) for i, v in enumerate(scores)
              if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)]
    return -max(finite)[1] if finite else None


# ---------------------------------------------------------------------------- classification


def _binary_counts(y: np.ndarray, score: np.ndarray):
    """Cumulative true/false positives at each distinct score, highest first."""
    y = np.asarray(y).ravel().astype(np.int64)
    s = np.asarray(score, dtype=np.float64).ravel()
    if len(s) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each run of equal scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64), s[last]


def roc_curve(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0) with threshold +inf; ties are one point."""
    tp, fp, thr = _binary_counts(y, score)
    pos, neg = tp[-1] if len(tp) else 0.0, fp[-1] if len(fp) else 0.0
    tpr = np.r_[0.0, tp / pos] if pos else np.full(len(tp) + 1, np.nan)
    fpr = np.r_[0.0, fp / neg] if neg else np.full(len(fp) + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, thr]


def roc_auc(y, score) -> float:
    """Area under the ROC curve (trapezoids, so tied scores count one half); NaN with one class."""
    fpr, tpr, _ = roc_curve(y, score)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def pr_curve(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at each distinct score, highest first."""
    tp, fp, thr = _binary_counts(y, score)
    pos = tp[-1] if len(tp) else 0.0
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / pos if pos else np.full(len(tp), np.nan)
    return precision, recall, thr


def average_precision(y, score) -> float:
    """Sum over thresholds of precision x recall increase (scikit-learn's definition)."""
    precision, recall, _ = pr_curve(y, score)
    if len(recall) == 0 or np.isnan(recall).any():
        return float("nan")
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_threshold(y, prob) -> float:
    """The probability threshold with the highest accuracy (ties: the one nearest 0.5).

    Candidates are midpoints between consecutive distinct probabilities, so the choice
    does not sit on a validation sample.
    """
    y = np.asarray(y).ravel().astype(np.int64)
    p = np.asarray(prob, dtype=np.float64).ravel()
    if len(p) == 0:
        return 0.5
    tp, fp, thr = _binary_counts(y, p)
    pos, n = tp[-1], len(y)
    # predicting positive for score >= thr[k]: correct = tp + (negatives below)
    correct = tp + (n - pos) - fp
    correct = np.r_[n - pos, correct]  # threshold above every score: all negative
    cand = np.r_[thr[0] + 1e-6, thr]
    mids = np.r_[cand[0], (thr + np.r_[thr[1:], thr[-1] - 1e-6]) / 2]
    best = np.flatnonzero(correct == correct.max())
    k = best[np.argmin(np.abs(mids[best] - 0.5))]
    # Not capped at 1: with probabilities of exactly 1.0, "all negative" needs a threshold above 1.
    return float(max(mids[k], 0.0))


def binary_metrics(y, prob, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1 at the threshold; ROC-AUC, average precision; confusion [[tn, fp], [fn, tp]]."""
    y = np.asarray(y).ravel().astype(np.int64)
    p = np.asarray(prob, dtype=np.float64).ravel()
    pred = (p >= threshold).astype(np.int64)
    tp = int(np.sum((pred == 1) & (y == 1)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / len(y) if len(y) else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, p),
        "average_precision": average_precision(y, p),
        "threshold": float(threshold),
        "confusion": [[tn, fp], [fn, tp]],
    }


def multiclass_metrics(y, probs) -> dict:
    """Accuracy, macro precision/recall/F1 and the confusion matrix (rows: true class)."""
    y = np.asarray(y).ravel().astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs.reshape(len(y), -1 if len(y) else probs.shape[-1])
    n_cls = probs.shape[1]
    pred = probs.argmax(axis=1)
    cm = np.zeros((n_cls, n_cls), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(cm.sum(0) > 0, tp / cm.sum(0), 0.0)
        recall = np.where(cm.sum(1) > 0, tp / cm.sum(1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = cm.sum(1) > 0  # macro averages over the classes that occur
    return {
        "accuracy": float(tp.sum() / len(y)) if len(y) else float("nan"),
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
        "confusion": cm.tolist(),
    }
