"""The best-epoch choice (selection) and the stopping callbacks (early stopping, pruning)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from rnnlab.train.callbacks import EarlyStopping, Pruning, Stop
from rnnlab.train.loop import _first_stop
from rnnlab.train.selection import ModelSelection


def _run(values, monitor="val_loss", patience=None, min_delta=0.0):
    sel = ModelSelection(monitor, {"w": np.zeros(1)})
    early = EarlyStopping(monitor, patience, min_delta)
    fit = SimpleNamespace(selection=sel)
    stopped = None
    for epoch, v in enumerate(values, 1):
        row = {"epoch": epoch, "val_loss": v, "val_accuracy": v}
        sel.update(row, {"w": np.full(1, float(epoch))})
        stopped = early.on_epoch_end(fit, row)
        if stopped:
            break
    return sel, stopped and stopped.message


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


def test_early_stopping_state_round_trips():
    early = EarlyStopping("val_loss", 3, 0.0)
    fit = SimpleNamespace(selection=ModelSelection("val_loss", {"w": np.zeros(1)}))
    early.on_epoch_end(fit, {"epoch": 1, "val_loss": 0.5})
    again = EarlyStopping("val_loss", 3, 0.0)
    again.load_state_dict(early.state_dict())
    assert (again.ref_value, again.ref_epoch) == (0.5, 1)


def test_pruning_wins_over_early_stopping():
    sel = ModelSelection("val_loss", {"w": np.zeros(1)})
    fit = SimpleNamespace(selection=sel)
    calls = []

    def hook(epoch, row):
        calls.append((epoch, row["val_loss"]))
        return "pruned after epoch 2" if epoch == 2 else None

    cbs = [Pruning(hook), EarlyStopping("val_loss", 1, 0.0)]
    row1, row2 = {"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.9}
    sel.update(row1, {"w": np.zeros(1)})
    assert _first_stop(cb.on_epoch_end(fit, row1) for cb in cbs) is None
    sel.update(row2, {"w": np.zeros(1)})  # no improvement: patience 1 would stop here too
    assert _first_stop(cb.on_epoch_end(fit, row2) for cb in cbs) == Stop("pruned", "pruned after epoch 2")
    assert cbs[1].on_epoch_end(fit, row2) == Stop("completed", "early stopping at epoch 2 (best epoch 1)")
    assert calls == [(1, 0.5), (2, 0.9)]
