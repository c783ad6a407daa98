"""The sequence model's test reports: regression beside its baselines (and the forecast past the
data), and classification (threshold, metrics, predictions, the worst mistakes).

Binary: the decision threshold is chosen on the validation split (best accuracy) unless
`train.threshold` fixes it, and then applied once to the test split. Files go through the
run folder: predictions.csv (one row per test sample), forecast.csv, and for binary tasks
most_wrong.csv (the confident mistakes, text included when the data has it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnlab.analysis import metrics as mt
from rnnlab.data import calendar
from rnnlab.engine import model as M
from rnnlab.train.tasks.base import TestReport
from rnnlab.train.tasks.predict import evaluate, predict_split, rolled_forecast

MOST_WRONG = 25


def regression_report(task, params, state) -> TestReport:
    """Test metrics in original units beside the baselines; predictions.csv (and forecast.csv)."""
    spec, data, bs = task.spec, task.data, task.cfg.train.eval_batch_size
    test_loss, pred = evaluate(spec, params, data.test, task.loss_fn, bs, state=state)
    val_pred = predict_split(spec, params, data.val, bs, state)
    if data.recursive_horizon:
        pred = rolled_forecast(spec, params, data.test.x, data.recursive_horizon, bs, state)
        val_pred = rolled_forecast(spec, params, data.val.x, data.recursive_horizon, bs, state)
    out: dict[str, Any] = {"test_loss": test_loss}
    y_true, y_pred = data.targets_original("test"), data.to_original(pred, "test")
    out.update(regression_scores(data, data.to_original(val_pred, "val"), y_pred))
    frame = predictions_frame(data, y_true, y_pred)
    files = {"predictions.csv": frame}
    tables: dict[str, Any] = {"predictions": frame}
    if data.future is not None:
        tables.update(future=data.future, forecast=forecast(task, params, state))
        files["forecast.csv"] = tables["forecast"]
        out["forecast"] = tables["forecast"]["forecast"].tolist()
    return TestReport(out, tables, files)


def regression_scores(data, val_pred, test_pred) -> dict[str, Any]:
    """Val and test metrics of the model (original units) and of every baseline, MASE on one scale
    (data.mase_scale, from the data before the first test origin); a baseline's fitted model by name."""
    scale = data.mase_scale
    val_true, test_true = data.targets_original("val"), data.targets_original("test")
    models = data.meta.get("baseline_models", {})
    out: dict[str, Any] = {"val_metrics": mt.regression_metrics(val_true, val_pred, mase_scale=scale),
                           "test_metrics": mt.regression_metrics(test_true, test_pred, mase_scale=scale),
                           "baselines": {}}
    for name, b in data.baselines.items():
        out["baselines"][name] = {"val_metrics": mt.regression_metrics(val_true, b["val"], mase_scale=scale),
                                  "test_metrics": mt.regression_metrics(test_true, b["test"], mase_scale=scale)}
        if name in models:
            out["baselines"][name]["model"] = models[name]
    if scale is not None:
        out["mase_scale"] = scale
    return out


def predictions_frame(data, y_true: np.ndarray, y_pred: np.ndarray):
    """predictions.csv: sample (test window, time order), horizon (1..h), the target's date (dated series) or
    step (its row in the series as loaded) when the data labels its windows, target, prediction, baselines."""
    import pandas as pd

    n, h = y_true.shape
    frame = pd.DataFrame({"sample": np.repeat(np.arange(n), h), "horizon": np.tile(np.arange(1, h + 1), n)})
    if data.sample_unit == "windows" and data.test.info is not None:
        steps = (np.asarray(data.test.info)[:, None] + np.arange(h)).ravel()
        future = data.future or {}
        if future.get("dates") is not None:
            frame["date"] = calendar.iso(future["dates"].iloc[steps], future.get("freq"))
        else:
            frame["step"] = steps
    frame["target"], frame["prediction"] = y_true.ravel(), y_pred.ravel()
    for name, b in data.baselines.items():
        frame[name] = np.asarray(b["test"], dtype=np.float64).ravel()
    return frame


def forecast(task, params, state):
    """The next n_out values past the end of the data (forecast.csv)."""
    import pandas as pd

    spec, data = task.spec, task.data
    if data.recursive_horizon:
        y_scaled = rolled_forecast(spec, params, data.future["x"], data.recursive_horizon, state=state)
    else:
        y_scaled = M.predict(spec, params, data.future["x"], state=state)
    y = data.to_original(y_scaled, "future")[0]
    dates, freq = data.future.get("dates"), data.future.get("freq")
    frame = pd.DataFrame({"horizon": np.arange(1, len(y) + 1), "forecast": y})
    if dates is not None and len(dates) and freq:
        # the steps after the last date on the series' own calendar (rnnlab.data.calendar)
        frame.insert(1, "date", calendar.iso(calendar.future_dates(dates.iloc[-1], len(y), freq), freq))
    return frame


def _sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _counted(split) -> np.ndarray | None:
    """Per-step targets: (N, T) bool of the steps that count (all of them without a target mask); else None."""
    if split.y.ndim != 2:
        return None
    tmask = getattr(split, "target_mask", None)
    return np.ones(split.y.shape, bool) if tmask is None else tmask > 0


def _labels(split) -> np.ndarray:
    """The labels that count: one per sample, or those of the counted steps."""
    counted = _counted(split)
    return split.y.ravel() if counted is None else split.y[counted]


def _selected(split, probs):
    """(labels, probabilities) of the counted positions."""
    counted = _counted(split)
    return (split.y.ravel(), probs) if counted is None else (split.y[counted], probs[counted])


def classification_report(task, params, state) -> TestReport:
    import pandas as pd

    spec, data, cfg = task.spec, task.data, task.cfg
    bs = cfg.train.eval_batch_size
    val_loss, val_out = evaluate(spec, params, data.val, task.loss_fn, bs, data.kind, state)
    test_loss, test_out = evaluate(spec, params, data.test, task.loss_fn, bs, data.kind, state)
    out: dict[str, Any] = {"test_loss": test_loss, "val_loss_best": val_loss, "classes": data.classes}
    majority = int(np.bincount(_labels(data.train).astype(np.int64)).argmax())
    tables: dict[str, Any] = {}
    files: dict[str, Any] = {}

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
            tmask = _counted(data.test)
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
        files["predictions.csv"] = frame
        if data.kind == "binary":
            files["most_wrong.csv"] = _most_wrong(frame, data.test.info)
    return TestReport(out, tables, files)


def _most_wrong(frame, info):
    """The wrong test predictions with the highest probability on the wrong class."""
    wrong = frame[frame["prediction"] != frame["target"]].copy()
    wrong["confidence"] = np.where(wrong["prediction"] == 1, wrong["prob"], 1 - wrong["prob"])
    wrong = wrong.sort_values("confidence", ascending=False, kind="mergesort").head(MOST_WRONG)
    if info is not None and "text" in info.columns:
        wrong["text"] = info["text"].to_numpy()[wrong["sample"].to_numpy()]
    return wrong
