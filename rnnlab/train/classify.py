"""End-of-run report for classification: metrics, threshold, predictions and the worst mistakes.

Binary: the decision threshold is chosen on the validation split (best accuracy) unless
`train.threshold` fixes it, and then applied once to the test split. Files written:
``predictions.csv`` (one row per test sample: target, predicted class, probabilities and
the data set's info columns) and, for binary tasks with text, ``most_wrong.csv`` (the
test samples the model got wrong with the most confidence, text included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.runtime.io import write_csv
from rnnlab.train import metrics as mt

MOST_WRONG = 25


def _sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _labels(split) -> np.ndarray:
    """The labels that count: one per sample, or those of the target-masked steps."""
    tmask = getattr(split, "target_mask", None)
    if tmask is not None and split.y.ndim == 2:
        return split.y[tmask > 0]
    return split.y.ravel()


def _selected(split, probs):
    """(labels, probabilities) of the counted positions."""
    tmask = getattr(split, "target_mask", None)
    if tmask is not None and split.y.ndim == 2:
        return split.y[tmask > 0], probs[tmask > 0]
    return split.y.ravel(), probs


def classification_report(spec, params, data, loss_fn, cfg, run_dir: Path, state=None) -> tuple[dict[str, Any], dict]:
    import pandas as pd

    from rnnlab.train.trainer import evaluate

    bs = cfg.train.eval_batch_size
    val_loss, val_out = evaluate(spec, params, data.val, loss_fn, bs, data.kind, state)  # state: BatchNorm's
    test_loss, test_out = evaluate(spec, params, data.test, loss_fn, bs, data.kind, state)
    out: dict[str, Any] = {"test_loss": test_loss, "val_loss_best": val_loss, "classes": data.classes}
    majority = int(np.bincount(_labels(data.train).astype(np.int64)).argmax())
    tables: dict[str, Any] = {}

    if data.kind == "binary":
        val_p, test_p = _sigmoid(val_out[:, 0]), _sigmoid(test_out[:, 0])
        yv, yt = data.val.y.ravel(), data.test.y.ravel()
        thr = cfg.train.threshold if cfg.train.threshold is not None else mt.best_threshold(yv, val_p)
        out["threshold"] = thr
        out["threshold_source"] = "config" if cfg.train.threshold is not None else "validation accuracy"
        out["val_metrics"] = mt.binary_metrics(yv, val_p, thr)
        out["test_metrics"] = mt.binary_metrics(yt, test_p, thr)
        out["test_metrics"]["accuracy_at_0.5"] = mt.binary_metrics(yt, test_p, 0.5)["accuracy"]
        pred = (test_p >= thr).astype(np.int64)
        frame = pd.DataFrame({"sample": np.arange(len(yt)), "target": yt, "prediction": pred, "prob": test_p})
        fpr, tpr, _ = mt.roc_curve(yt, test_p)
        prec, rec, _ = mt.pr_curve(yt, test_p)
        tables["curves"] = {
            "roc": (fpr, tpr, out["test_metrics"]["roc_auc"]),
            "pr": (rec, prec, out["test_metrics"]["average_precision"]),
            "confusion": (np.array(out["test_metrics"]["confusion"]), data.classes or ["0", "1"]),
        }
    else:
        val_probs, test_probs = _softmax(val_out), _softmax(test_out)
        yv, pv = _selected(data.val, val_probs)
        yt, pt = _selected(data.test, test_probs)
        out["val_metrics"] = mt.multiclass_metrics(yv, pv)
        out["test_metrics"] = mt.multiclass_metrics(yt, pt)
        tables["curves"] = {"confusion": (np.array(out["test_metrics"]["confusion"]),
                                          data.classes or [str(i) for i in range(pt.shape[-1])])}
        if data.test.y.ndim == 2:  # per-step targets: also whole sequences right
            tmask = data.test.target_mask > 0
            right = (test_probs.argmax(-1) == data.test.y) | ~tmask
            out["test_metrics"]["sequence_accuracy"] = float(np.mean(right.all(axis=1)))
            frame = None
        else:
            names = data.classes or [str(i) for i in range(pt.shape[1])]
            frame = pd.DataFrame({"sample": np.arange(len(yt)), "target": yt, "prediction": pt.argmax(1)})
            for k, name in enumerate(names):
                frame[f"prob_{name}"] = pt[:, k]

    out["baselines"] = {"majority_class": {
        f"{name}_metrics": {"accuracy": float(np.mean(_labels(getattr(data, name)) == majority))}
        for name in ("val", "test")
    }}

    if frame is not None:
        info = data.test.info
        if info is not None:
            keep = [c for c in info.columns if c != "text"]
            frame = pd.concat([frame, info[keep].reset_index(drop=True)], axis=1)
        write_csv(run_dir / "predictions.csv", frame)
        tables["predictions"] = None  # the regression plot does not apply
        if data.kind == "binary":
            _most_wrong(frame, data.test.info, run_dir)
    return out, tables


def _most_wrong(frame, info, run_dir: Path) -> None:
    """The wrong test predictions with the highest probability on the wrong class."""
    wrong = frame[frame["prediction"] != frame["target"]].copy()
    wrong["confidence"] = np.where(wrong["prediction"] == 1, wrong["prob"], 1 - wrong["prob"])
    wrong = wrong.sort_values("confidence", ascending=False, kind="mergesort").head(MOST_WRONG)
    if info is not None and "text" in info.columns:
        wrong["text"] = info["text"].to_numpy()[wrong["sample"].to_numpy()]
    write_csv(run_dir / "most_wrong.csv", wrong)
