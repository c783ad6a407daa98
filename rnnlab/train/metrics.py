"""Evaluation metrics computed in float64 on (N, ...) arrays of targets and predictions."""

from __future__ import annotations

import numpy as np


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE, R2 and MAPE (in %, over targets whose |y| > 1e-8 so zeros cannot blow it up)."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    err = p - t
    mse = float(np.mean(err**2))
    var = float(np.var(t))
    nz = np.abs(t) > 1e-8
    mape = float(np.mean(np.abs(err[nz] / t[nz])) * 100) if nz.any() else float("nan")
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - mse / var if var > 0 else float("nan"),
        "mape": mape,
    }
