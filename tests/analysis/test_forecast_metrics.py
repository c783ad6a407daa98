"""MASE and sMAPE against hand computations, and the best row of a model-beside-baselines table."""

from __future__ import annotations

import math

import pytest

from rnnlab.analysis.metrics import best_row, regression_metrics


def test_mase_is_the_mae_over_the_scale():
    m = regression_metrics([1.0, 2.0, 4.0], [2.0, 2.0, 1.0], mase_scale=0.5)
    assert m["mae"] == pytest.approx(4 / 3)  # |1|, 0, |-3|
    assert m["mase"] == pytest.approx((4 / 3) / 0.5)
    assert "mase" not in regression_metrics([1.0], [2.0])  # no scale, no MASE
    assert math.isnan(regression_metrics([1.0], [2.0], mase_scale=0.0)["mase"])  # a flat history


def test_smape_is_the_m4_definition():
    # 200/n * sum |y - f| / (|y| + |f|): |1-2|/3, 0/4, |4-1|/5
    m = regression_metrics([1.0, 2.0, 4.0], [2.0, 2.0, 1.0])
    assert m["smape"] == pytest.approx(200 / 3 * (1 / 3 + 0 + 3 / 5))
    # a term with y = f = 0 counts 0 (not NaN); y = 0 with f != 0 counts the maximum, 2
    assert regression_metrics([0.0, 0.0], [0.0, 1.0])["smape"] == pytest.approx(100.0)
    assert regression_metrics([-2.0], [2.0])["smape"] == pytest.approx(200.0)  # signs: absolute values


def test_best_row_lowest_mae_or_highest_accuracy():
    rows = [{"mae": 0.5}, None, {"mae": float("nan")}, {"mae": 0.2}, {"mae": 0.2}]
    assert best_row(rows, "regression") == 3  # ties: the first; NaN and missing never best
    assert best_row([{"accuracy": 0.6}, {"accuracy": 0.9}], "binary") == 1
    assert best_row([{"mse": 1.0}], "regression") is None  # no MAE
    assert best_row([{"mae": 1.0}], "seq2seq") is None  # no rule for the task
