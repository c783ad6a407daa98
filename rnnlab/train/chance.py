"""Did the run learn anything? The best epoch's validation score against the baseline's, on the same split.

    verdict = chance.check(task, fit)   # None when the task has no baseline to compare with
    verdict.chance, verdict.finding(), verdict.entry()   # warning(finding): the text summary.json keeps

A run whose best validation score is no better than the baseline's ended at chance level; it says
"completed" all the same, so the run warns (and with train.restarts retrains, `train.attempts`).

- Sequence classification: the best epoch's val_accuracy (metrics.csv, threshold 0.5 for binary) against
  the majority class of the training labels, scored on the validation split; at chance when it is not
  above it by more than half a percentage point or one sample, whichever is more.
- Regression and forecasting: the best epoch's weights' validation MAE in original units (one prediction
  pass) against the first baseline of BASELINES the data has (naive, the
  training mean); at chance when it is not below it. No such baseline: no verdict.
- Seq2seq: tokens, the free-running val_accuracy against the most frequent target token; continuous
  targets, val_mse against predicting the training mean (both as the test report's baselines).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.train.tasks.predict import predict_split, rolled_forecast

# Regression baselines by preference: the naive forecast, then the mean.
BASELINES = ("naive", "train_mean", "predict_mean")
TOLERANCE = 0.005  # accuracy within half a percentage point (or one sample) of the baseline is no better


@dataclass(frozen=True)
class Verdict:
    metric: str  # accuracy (binary: "accuracy (threshold 0.5)") | mae | mse, on the validation split
    higher_is_better: bool
    score: float  # the best epoch's
    baseline: str  # the baseline's name (as in summary.json's baselines)
    baseline_score: float
    epoch: int  # the best epoch
    chance: bool

    def entry(self) -> dict:
        """The attempt record's part (summary.json `attempts`)."""
        return {"val_metric": self.metric, "val_score": self.score, "baseline": self.baseline,
                "baseline_score": self.baseline_score, "chance": self.chance, "finding": self.finding()}

    def finding(self) -> str:
        than = ("not above" if self.chance else "above") if self.higher_is_better else \
            ("not below" if self.chance else "below")
        return (f"validation {self.metric} {self.score:.4g} of the best epoch ({self.epoch}) is {than} the "
                f"{self.baseline} baseline's {self.baseline_score:.4g}")


def warning(finding: str) -> str:
    """The warning of a run at chance level (summary.json `warnings`), from its verdict's finding."""
    return f"the run ended at chance level: {finding}"


def check(task, fit) -> Verdict | None:
    """The verdict on fit's best epoch (its weights are fit.selection's); None without a completed best epoch
    or a baseline."""
    epoch = fit.selection.epoch
    if not 0 < epoch <= len(fit.rows):
        return None
    scorer = _scorer(task)
    got = scorer(task, fit.selection, fit.rows[epoch - 1])
    if got is None:
        return None
    metric, higher, score, name, base, n = got
    chance = score <= base + max(TOLERANCE, 1.0 / max(n, 1)) if higher else score >= base
    return Verdict(metric, higher, float(score), name, float(base), epoch, bool(chance))


def _scorer(task):
    if task.model_kind == "seq2seq":
        return _tokens if task.tokens else _continuous
    return _regression if task.data.kind == "regression" else _classes


def _classes(task, selection, row):
    """Sequence classification: val_accuracy beside the training majority class's on the validation split."""
    data = task.data
    train, val = _labels(data.train), _labels(data.val)
    majority = np.bincount(train.astype(np.int64)).argmax()
    metric = "accuracy (threshold 0.5)" if data.kind == "binary" else "accuracy"  # metrics.csv's, not the tuned one
    return metric, True, row["val_accuracy"], "majority_class", float(np.mean(val == majority)), len(val)


def _labels(split) -> np.ndarray:
    """The labels that count: one per sequence, or those of the target-masked steps."""
    tmask = getattr(split, "target_mask", None)
    return split.y[tmask > 0] if tmask is not None and split.y.ndim == 2 else split.y.ravel()


def _regression(task, selection, row):
    """Validation MAE in original units of the best weights beside the preferred baseline's."""
    data = task.data
    name = next((b for b in BASELINES if b in data.baselines and "val" in data.baselines[b]), None)
    if name is None:
        return None
    bs = task.cfg.train.eval_batch_size
    if data.recursive_horizon:
        pred = rolled_forecast(task.spec, selection.params, data.val.x, data.recursive_horizon, bs, selection.state)
    else:
        pred = predict_split(task.spec, selection.params, data.val, bs, selection.state)
    truth = data.targets_original("val")
    mae = float(np.mean(np.abs(data.to_original(pred, "val") - truth)))
    base = float(np.mean(np.abs(np.asarray(data.baselines[name]["val"], dtype=np.float64) - truth)))
    return "mae", False, mae, name, base, len(truth)


def _tokens(task, selection, row):
    from rnnlab.train.tasks.seq2seq_report import baselines

    base = baselines(task.data)["most_frequent_token"]["val_metrics"]["accuracy"]
    tokens = int((task.data.val.tgt_mask > 0).sum())  # one token is the smallest step of token accuracy
    return "accuracy", True, row["val_accuracy"], "most_frequent_token", base, tokens


def _continuous(task, selection, row):
    from rnnlab.train.tasks.seq2seq_report import baselines

    base = baselines(task.data)["train_mean"]["val_metrics"]["mse"]
    return "mse", False, row["val_mse"], "train_mean", base, len(task.data.val)
