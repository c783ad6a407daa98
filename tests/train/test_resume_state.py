"""Exact resume, the parts beyond the loop's own state: the monitor's accumulators (its files and summary
entries end as the uninterrupted run's), and mid-epoch checkpoints (train.checkpoint_every_steps: a resume
goes on from the saved step, and the epoch's row equals the uninterrupted one). In-process; killed
processes are in test_resume_equality.py (slow)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rnnlab import api
from rnnlab.config.schema import MonitorConf
from rnnlab.config.validate import ConfigError
from rnnlab.engine import model as M
from rnnlab.monitor import saved
from rnnlab.monitor.gradients import GRAD_COLUMNS, GradientTracker
from rnnlab.monitor.inspect import of
from rnnlab.monitor.weights import WeightTracker
from rnnlab.record import checkpoint
from rnnlab.train.callbacks import Callback
from tests.conftest import TINY
from tests.train import faults

TINY = [*TINY, "train.limit_batches=3", "train.epochs=3"]  # 3 steps an epoch


class InterruptAt(Callback):
    """Ctrl-C after optimizer step `step` (0-based over the run) and the mid-epoch checkpoint it is due."""

    def __init__(self, step: int):
        self.step, self.armed = step, False

    def on_step_end(self, fit, info):
        self.armed = info.step == self.step  # the loop saves the step's checkpoint after this hook

    def on_step(self, fit, info):
        if self.armed:  # the next step, before its update
            raise KeyboardInterrupt


def _roundtrip(state: dict, tmp_path, name: str = "mon") -> dict:
    """A callback state dict through the checkpoint's files (JSON part and npz), as the recorder writes it."""
    from rnnlab.runtime.io import strict_json

    values, arrays = checkpoint.split_arrays(state, checkpoint.callback_prefix(name))
    (tmp_path / "s.json").write_text(strict_json(values))
    np.savez(tmp_path / "s.npz", **arrays)
    import json

    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        loaded = {k: z[k] for k in z.files}
    return checkpoint.join_arrays(json.loads((tmp_path / "s.json").read_text()), loaded,
                                  checkpoint.callback_prefix(name))


def test_the_monitor_trackers_survive_the_checkpoint_files(tmp_path):
    """Records with NaN, inf and None, histograms that coarsened, curves of several lengths, the last gradients:
    all back as they were (the same Python types, so the CSV files come out byte for byte)."""
    cfg = MonitorConf(name="full", every_n_steps=1, gif=True)
    g = GradientTracker(cfg)
    rng = np.random.default_rng(0)
    params = {"a.weight": rng.normal(size=(3, 2)), "b": np.zeros(2)}
    for step in range(4):
        grads = {"a.weight": rng.normal(size=(3, 2)), "b": np.array([math.inf, 1.0]) if step == 2 else np.ones(2)}
        with np.errstate(invalid="ignore"):
            g.on_step(step, step // 2, params, grads, [0.5, 2e3, math.nan, 1e-9][step])
    g.curves = [(1, "layer0", np.array([1.0, math.nan, 2.0])), (1, "layer0_reverse", np.array([3.0]))]
    g.ratio = math.nan
    h = GradientTracker(cfg)
    h.load_state_dict(_roundtrip(g.state_dict(), tmp_path))
    assert repr(h.rows) == repr(g.rows) and [type(v) for v in h.rows[0]] == [type(v) for v in g.rows[0]]
    assert h.counts == g.counts == {"vanishing": 1, "exploding": 2} and h._warned == g._warned
    assert h.last_grads_step == 3 and h.last_grads.keys() == g.last_grads.keys()
    assert math.isnan(h.ratio) and h.time_frame().equals(g.time_frame())
    g.ratio, g.last_grads = None, None
    h.load_state_dict(_roundtrip(g.state_dict(), tmp_path))
    assert h.ratio is None and h.last_grads is None
    h.state_dict()
    h.on_step(4, 2, params, {"a.weight": np.ones((3, 2)), "b": np.ones(2)}, 1.0)  # after a save: only new rows
    assert repr(saved.records(h.state_dict(), GRAD_COLUMNS, "rows.")) == repr(h.rows) and len(h.rows) == 15

    mspec = M.ModelSpec(cell="gru", input_size=1, hidden_size=4, output_size=1)
    w = WeightTracker(cfg, of(mspec))
    p = M.init_params(mspec, rng)
    for epoch in range(3):  # growing weights: the histogram grids widen and coarsen
        w.on_epoch_end(epoch, {k: v * 10.0 ** epoch for k, v in p.items()})
    v = WeightTracker(cfg, of(mspec))
    v.load_state_dict(_roundtrip(w.state_dict(), tmp_path))
    assert v.table().equals(w.table()) and v.radius == w.radius and v.sv_max == w.sv_max
    for name, hist in w.hists.items():
        for a, b in zip(hist.grid(), v.hists[name].grid(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert v.final.keys() == w.final.keys()


def test_a_monitored_run_resumed_at_an_epoch_ends_with_the_same_monitor_files(tmp_path):
    overrides = api.compose([*TINY, "monitor=full", "train.epochs=4"])  # composed once: Hydra takes 0.5 s
    api.train(overrides, tmp_path / "whole")
    d = tmp_path / "r"
    first = api.train(overrides, d, callbacks=[InterruptAt(6)])  # the 7th step: inside epoch 3
    assert first.status == "interrupted" and faults.last_checkpoint(d) == ".checkpoint_last.2"
    assert api.train(overrides, d, resume=True).status == "completed"
    faults.assert_same_run(tmp_path / "whole", d)


@pytest.mark.parametrize("step", [1, 4])  # inside the first epoch (no metrics row yet), inside the second
def test_a_mid_epoch_checkpoint_resumes_at_its_step(step, tmp_path):
    """checkpoint_every_steps=1: Ctrl-C after step `step` resumes from that very step (not from the epoch's
    start): the epoch's row, the weights, the test metrics and the monitor's files equal the uninterrupted run's."""
    overrides = api.compose([*TINY, "train.checkpoint_every_steps=1", "reg=dropout", "reg.grad_noise_eta=0.05",
                             "train.dtype=float64", "monitor=full", "reg.l2=0.001"])
    api.train(overrides, tmp_path / "whole")
    d = tmp_path / "r"
    first = api.train(overrides, d, callbacks=[InterruptAt(step)])
    assert first.status == "interrupted"
    assert faults.last_checkpoint(d) == f".checkpoint_last.{step // 3}.{step + 1}"
    info, _ = checkpoint.load_training_state(d)
    assert info["position"]["taken"] == step % 3 + 1
    again = api.train(overrides, d, resume=True)
    assert again.status == "completed" and again["resumed_from_epochs"] == [step // 3]
    faults.assert_same_run(tmp_path / "whole", d)
    faults.assert_whole(d)


def test_checkpoint_every_steps_saves_only_inside_epochs_and_is_checked(tmp_path):
    rc = api.compose([*TINY, "train.epochs=1", "train.checkpoint_every_steps=3"])
    api.train(rc, tmp_path / "r")  # step 3 ends the epoch: the epoch's own checkpoint, no mid-epoch one
    assert faults.last_checkpoint(tmp_path / "r") == ".checkpoint_last.1"
    assert "batch" not in checkpoint.load(tmp_path / "r" / "checkpoint_last").info
    # stopped inside an epoch whose checkpoint_last is mid-epoch: no completed epoch's weights to test as
    # "last" (restore_best_weights=false), so the best ones are tested, and said so
    t = dataclasses.replace(rc.train, epochs=3, checkpoint_every_steps=1, restore_best_weights=False)
    s = api.train(dataclasses.replace(rc, train=t), tmp_path / "m", callbacks=[InterruptAt(4)])
    assert (s.status, s.test_weights, s.test_weights_epoch) == ("interrupted", "best", 1)
    with pytest.raises(ConfigError, match=r"^train.checkpoint_every_steps must be >= 1 \(got 0\)$"):
        api.compose(["train.checkpoint_every_steps=0"])
    with pytest.raises(ValueError, match=r"train.checkpoint_every_steps must be >= 1 \(got -1\)"):
        dataclasses.replace(rc.train, checkpoint_every_steps=-1)
