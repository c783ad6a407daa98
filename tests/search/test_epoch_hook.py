"""The trainer's epoch hook: a returned message stops the run cleanly as "pruned"."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.train.run import train
from tests.conftest import TINY

SEQ2SEQ = ["data=sine2cosine", "data.n_train=64", "data.n_val=16", "data.n_test=16", "data.t_in=8", "arch=gru",
           "arch.hidden_size=8", "train.epochs=4", "train.progress=false", "monitor=none"]


@pytest.mark.parametrize("overrides", [[*TINY, "train.epochs=4", "monitor=none"], SEQ2SEQ], ids=["rnn", "seq2seq"])
def test_hook_prunes_a_run(tmp_path, overrides):
    rc = compose_and_validate([*overrides, "train.plots=false"])
    seen = []

    def hook(epoch, row):
        seen.append((epoch, row["val_loss"]))
        return "pruned after epoch 2" if epoch == 2 else None

    summary = train(rc, tmp_path, epoch_hook=hook)
    assert [e for e, _ in seen] == [1, 2]
    assert (summary["status"], summary["message"], summary["epochs_run"]) == ("pruned", "pruned after epoch 2", 2)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "pruned" and "test_metrics" in on_disk  # tested like an interrupted run
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert list(metrics["val_loss"]) == pytest.approx([v for _, v in seen])
    assert (tmp_path / "checkpoint" / "model.npz").is_file()


def test_no_hook_no_change(tmp_path):
    rc = compose_and_validate([*TINY, "monitor=none", "train.plots=false"])
    summary = train(rc, tmp_path, epoch_hook=lambda epoch, row: None)
    assert summary["status"] == "completed" and summary["epochs_run"] == 3
