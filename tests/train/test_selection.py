"""The best-epoch choice and early stopping shared by both training loops."""

from __future__ import annotations

import numpy as np

from rnnlab.train.selection import ModelSelection


def _run(values, monitor="val_loss", patience=None, min_delta=0.0):
    sel = ModelSelection(monitor, patience, min_delta, {"w": np.zeros(1)})
    stopped = None
    for epoch, v in enumerate(values, 1):
        row = {"epoch": epoch, "val_loss": v, "val_accuracy": v}
        sel.update(row, {"w": np.full(1, float(epoch))})
        stopped = sel.stop_message(epoch)
        if stopped:
            break
    return sel, stopped


def test_best_epoch_and_its_weights_are_kept():
    sel, _ = _run([0.9, 0.5, 0.7, 0.6])
    assert sel.epoch == 2 and sel.params["w"][0] == 2.0


def test_accuracy_is_maximised():
    sel, _ = _run([0.6, 0.8, 0.7], monitor="val_accuracy")
    assert sel.epoch == 2


def test_patience_counts_from_the_last_improvement():
    sel, msg = _run([0.9, 0.8, 0.81, 0.82, 0.7], patience=2)
    assert msg == "early stopping at epoch 4 (best epoch 2)"


def test_min_delta_decides_when_to_stop_not_which_epoch_is_best():
    sel, msg = _run([0.8, 0.79, 0.78, 0.9], patience=2, min_delta=0.05)
    assert msg == "early stopping at epoch 3 (best epoch 3)"
    assert sel.epoch == 3


def test_last_weights_only_when_asked_and_never_after_divergence():
    sel, _ = _run([0.5, 0.6])
    assert sel.tests_last(False, "completed", 2) and sel.tests_last(False, "interrupted", 2)
    assert not sel.tests_last(True, "completed", 2)
    assert not sel.tests_last(False, "diverged", 2) and not sel.tests_last(False, "completed", 0)


def test_record_stop_writes_status_only_for_stopped_runs(tmp_path):
    import json

    from rnnlab.train.selection import record_stop

    record_stop(tmp_path, {"status": "running", "seed": 0}, "completed", None, 3)
    assert not (tmp_path / "summary.json").exists()
    record_stop(tmp_path, {"status": "running", "seed": 0}, "interrupted", "interrupted after 3", 3)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert (s["status"], s["epochs_run"], s["seed"]) == ("interrupted", 3, 0)


def test_after_epoch_pruning_wins_over_early_stopping():
    sel = ModelSelection("val_loss", 1, 0.0, {"w": np.zeros(1)})
    calls = []

    def hook(epoch, row):
        calls.append((epoch, row["val_loss"]))
        return "pruned after epoch 2" if epoch == 2 else None

    row1, row2 = {"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.9}
    sel.update(row1, {"w": np.zeros(1)})
    assert sel.after_epoch(1, row1, hook) is None
    sel.update(row2, {"w": np.zeros(1)})  # no improvement: patience 1 would stop here too
    assert sel.after_epoch(2, row2, hook) == ("pruned", "pruned after epoch 2")
    assert sel.after_epoch(2, row2) == ("completed", "early stopping at epoch 2 (best epoch 1)")
    assert calls == [(1, 0.5), (2, 0.9)]  # once per call with a hook
