"""The sequence model over whole splits: outputs in the split's order, the loss, accuracy, and
the recursive forecast. Used by the adapter's validation, its test report, and the monitor."""

from __future__ import annotations

import numpy as np

from rnnlab.engine import model as M
from rnnlab.train import batches


def loss_targets(kind: str, y: np.ndarray, dtype) -> np.ndarray:
    """Targets as the loss wants them: (N, 1) floats for binary logits, int labels for multiclass."""
    if kind == "binary":
        return y.reshape(len(y), -1).astype(dtype)
    return y


def predict_split(spec, params, split, batch_size: int, state=None) -> np.ndarray:
    """Model outputs for every row of the split, in its order (length-grouped, trimmed batches).
    state: the model's BatchNorm running statistics (M.init_state; needed with batch_norm)."""
    out = None
    for idx in batches.eval_batches(split, batch_size):
        x, _, mask, _ = batches.take(split, idx, trim=False)
        cols = batches.real_columns(mask, x.shape[1])
        y = M.infer(spec, params, x[:, cols], None if mask is None else mask[:, cols], state=state)
        if out is None:
            shape = (len(split), split.x.shape[1], y.shape[-1]) if y.ndim == 3 else (len(split), y.shape[-1])
            out = np.zeros(shape, dtype=y.dtype)
        if y.ndim == 3:
            out[idx, cols] = y
        else:
            out[idx] = y
    if out is None:
        return np.zeros((0, spec.output_size))
    return out


def evaluate(spec, params, split, loss_fn, batch_size, kind: str = "regression",
             state=None) -> tuple[float, np.ndarray]:
    pred = predict_split(spec, params, split, batch_size, state)
    tmask = getattr(split, "target_mask", None)
    value, _ = loss_fn(pred, loss_targets(kind, split.y, pred.dtype), mask=tmask)
    return float(value), pred


def accuracy(kind: str, split, out: np.ndarray) -> float:
    """Share of correct predictions (at threshold 0.5 for binary; over counted steps for per-step targets)."""
    y = split.y
    if kind == "binary":
        return float(np.mean((out[:, 0] >= 0) == (y.ravel() > 0)))
    pred = out.argmax(axis=-1)
    tmask = getattr(split, "target_mask", None)
    if tmask is not None:
        sel = tmask > 0
        return float(np.mean(pred[sel] == y[sel]))
    return float(np.mean(pred == y))


def rolled_forecast(spec, params, x: np.ndarray, horizon: int, batch_size: int = 1024, state=None) -> np.ndarray:
    """Recursive forecast (N, horizon): predict one step, append it to the window, repeat."""
    return roll(lambda w: M.predict(spec, params, w, None, batch_size, state=state), x, horizon)


def roll(forward, x: np.ndarray, horizon: int) -> np.ndarray:
    """`rolled_forecast` with any forward(window) -> (N, 1) outputs (the engine's, or an exported graph's)."""
    window = np.array(x, copy=True)
    out = np.empty((len(x), horizon), dtype=window.dtype)
    for h in range(horizon):
        step = forward(window)[:, 0]
        out[:, h] = step
        window[:, :-1] = window[:, 1:]
        window[:, -1, 0] = step
    return out
