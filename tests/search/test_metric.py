"""The objective read from summary.json, its direction, and the per-epoch value the pruner sees."""

from __future__ import annotations

import pytest

from rnnlab.search import SearchError
from rnnlab.search.metric import check_metric, choose_direction, epoch_column, epoch_value, read_metric

SUMMARY = {"best_val_loss": 0.2, "test_loss": 0.3, "runtime_s": 4.0,
           "val_metrics": {"mse": 0.5, "r2": 0.9}, "test_metrics": {"mae": 0.7, "accuracy": 0.8}}


def test_read_metric():
    assert read_metric(SUMMARY, "val_loss") == 0.2  # the best epoch's validation loss
    assert read_metric(SUMMARY, "test_loss") == 0.3
    assert read_metric(SUMMARY, "runtime_s") == 4.0
    assert read_metric(SUMMARY, "val_r2") == 0.9
    assert read_metric(SUMMARY, "test_mae") == 0.7
    assert read_metric(SUMMARY, "test_f1") is None


def test_directions():
    assert choose_direction("val_loss", None) == "minimize"
    assert choose_direction("test_mse", None) == "minimize"
    assert choose_direction("val_accuracy", None) == "maximize"
    assert choose_direction("test_r2", None) == "maximize"
    assert choose_direction("test_r2", "minimize") == "minimize"
    with pytest.raises(SearchError, match=r"^cannot tell whether a higher or lower val_foo is better: give "
                                          r"--direction$"):
        choose_direction("val_foo", None)
    with pytest.raises(SearchError, match=r"^--direction must be minimize or maximize \(got 'up'\)$"):
        choose_direction("val_loss", "up")
    with pytest.raises(SearchError, match=r"^unknown metric 'loss'"):
        check_metric("loss")


def test_epoch_value_follows_the_study_direction():
    row = {"val_loss": 0.4, "val_accuracy": 0.9}
    assert epoch_column("val_loss", row) == "val_loss"
    assert epoch_column("test_accuracy", row) == "val_accuracy"
    assert epoch_column("test_mse", row) == "val_loss"  # no per-epoch mse: the loss stands in
    assert epoch_value(row, "val_loss", "minimize") == 0.4
    assert epoch_value(row, "val_loss", "maximize") == -0.4  # e.g. maximising test_r2
    assert epoch_value(row, "val_accuracy", "maximize") == 0.9
