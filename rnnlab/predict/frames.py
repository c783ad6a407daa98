"""Model outputs on new inputs as a table (what `rnnlab predict` writes), one layout per kind of output:

* forecasts: sample, horizon, date (dated series), prediction in the series' units;
* regression: sample, prediction (or horizon and prediction for several outputs);
* binary: sample, the inputs' description, prediction (class index), label (class name), prob (of class 1),
  at the run's decision threshold (chosen on validation, as its predictions.csv);
* multiclass: sample, description, prediction, label, prob_<class> for every class;
* per-step outputs: one row per real step (sample, step, prediction[, label]);
* seq2seq (`decoded_frame`): tokens: sample, input, prediction (the decoded digits, <eos> when the model
  ended the sequence), log_prob (of the decoded tokens, EOS included); continuous: one row per output
  step (sample, input, step, prediction).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def outputs_frame(kind: str, y: np.ndarray, inputs, classes: list[str] | None = None, threshold: float = 0.5):
    """The table of outputs `y` (regression in original units already; logits for classification)."""
    if y.ndim == 3:
        return _per_step(kind, y, inputs, classes)
    if kind == "regression":
        return _regression(y, inputs)
    frame = _described(len(y), inputs.rows)
    names = classes or [str(i) for i in range(max(2, y.shape[1]))]
    if kind == "binary":
        prob = _sigmoid(y[:, 0])
        pred = (prob >= threshold).astype(np.int64)
        frame["prediction"], frame["label"], frame["prob"] = pred, np.asarray(names, dtype=object)[pred], prob
        return frame
    probs = _softmax(y)
    pred = probs.argmax(axis=1)
    frame["prediction"], frame["label"] = pred, np.asarray(names, dtype=object)[pred]
    for k, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, k]
    return frame


def decoded_frame(dec, inputs):
    """The table of a seq2seq decoding `dec` (`rnnlab.engine.seq2seq.Decoded`) of `inputs`."""
    from rnnlab.data.seq2seq_tasks import digits_text

    if dec.tokens is not None:
        frame = _described(len(dec.tokens), inputs.rows)
        frame["prediction"] = [digits_text(row[:n]) for row, n in zip(dec.tokens, dec.lengths, strict=True)]
        frame["log_prob"] = np.asarray(dec.log_prob, dtype=np.float64)
        return frame
    n, t, d = dec.outputs.shape
    frame = _described(n, inputs.rows).loc[np.repeat(np.arange(n), t)].reset_index(drop=True)
    frame["step"] = np.tile(np.arange(t), n)
    out = dec.outputs.reshape(n * t, d).astype(np.float64)
    frame["prediction"] = out[:, 0] if d == 1 else list(out)
    return frame


def _described(n: int, rows: Any):
    import pandas as pd

    frame = pd.DataFrame({"sample": np.arange(n)})
    if rows is not None and len(rows) == n:
        frame = pd.concat([frame, rows.reset_index(drop=True)], axis=1)
    return frame


def _regression(y: np.ndarray, inputs):
    import pandas as pd

    n, h = y.shape
    frame = pd.DataFrame({"sample": np.repeat(np.arange(n), h), "horizon": np.tile(np.arange(1, h + 1), n)})
    if inputs.dates is not None and n == 1:
        frame["date"] = inputs.dates
    frame["prediction"] = y.ravel()
    return frame


def _per_step(kind: str, y: np.ndarray, inputs, classes):
    import pandas as pd

    n, t = y.shape[:2]
    real = np.ones((n, t), dtype=bool) if inputs.mask is None else inputs.mask > 0
    sample, step = np.nonzero(real)
    frame = pd.DataFrame({"sample": sample, "step": step})
    out = y[real]
    if kind == "regression":
        frame["prediction"] = out[:, 0] if out.shape[1] == 1 else list(out)
        return frame
    pred = out.argmax(axis=1) if kind == "multiclass" else (out[:, 0] >= 0).astype(np.int64)
    frame["prediction"] = pred
    if classes:
        frame["label"] = np.asarray(classes, dtype=object)[pred]
    return frame


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=np.float64)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
