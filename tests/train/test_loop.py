"""The fit loop: one loop for every task (its size is part of the contract), the callback interface
(hooks in order, a Stop from a step or an epoch), and seq2seq getting what the sequence model has:
the run monitor, length bucketing with trimmed batches, and the gradient traces."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.engine import seq2seq as Q
from rnnlab.train import loop
from rnnlab.train.callbacks import Callback, Stop
from tests.conftest import TINY

S2S_TINY = ["data=reverse_digits", "data.n_train=64", "data.n_val=16", "data.n_test=16", "arch.hidden_size=8",
            "train.epochs=2", "train.batch_size=16", "train.progress=false", "train.plots=false", "monitor=none"]


def test_the_loop_is_short():
    """The epoch loop and the step (run + _epoch) fit on a screen: at most 100 lines together."""
    tree = ast.parse(Path(inspect.getsourcefile(loop)).read_text())
    lines = {f.name: f.end_lineno - f.lineno + 1 for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    assert lines["run"] + lines["_epoch"] <= 100, lines


class Recording(Callback):
    def __init__(self, stop_at_step=None):
        self.events, self.stop_at_step = [], stop_at_step

    def on_fit_start(self, fit):
        self.events.append("start")

    def on_step(self, fit, info):
        assert info.lr is None and np.isfinite(info.grad_norm)
        self.events.append(("step", info.step))

    def on_step_end(self, fit, info):
        assert info.lr == fit.lr_trace[-1]
        if info.step == self.stop_at_step:
            return Stop("completed", f"stopped at step {info.step}")
        return None

    def epoch_columns(self, fit, row):
        return {"my_column": row["epoch"] * 10}

    def on_epoch_end(self, fit, row):
        self.events.append(("epoch", row["epoch"]))

    def on_fit_end(self, fit):
        self.events.append("end")


def test_callbacks_see_every_step_and_epoch_in_order(tmp_path):
    cb = Recording()
    s = api.train([*TINY, "train.epochs=2", "train.limit_batches=3"], tmp_path / "run", callbacks=[cb])
    assert s.status == "completed"
    steps = [e for e in cb.events if isinstance(e, tuple) and e[0] == "step"]
    assert cb.events[0] == "start" and cb.events[-1] == "end" and len(steps) == 6
    assert cb.events.index(("epoch", 1)) == 4 and cb.events.index(("epoch", 2)) == 8
    assert pd.read_csv(tmp_path / "run" / "metrics.csv")["my_column"].tolist() == [10, 20]


def test_a_stop_from_a_step_ends_the_run_without_recording_the_partial_epoch(tmp_path):
    cb = Recording(stop_at_step=4)
    s = api.train([*TINY, "train.epochs=3", "train.limit_batches=3"], tmp_path / "run", callbacks=[cb])
    assert (s.status, s.message, s.epochs_run) == ("completed", "stopped at step 4", 1)
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 1


def test_seq2seq_gets_the_run_monitor(tmp_path):
    """`rnnlab train data=reverse_digits arch.attention=luong`: gradients, time gradients, weights and
    the encoder's and decoder's states (the files; the plots are the slow twin's)."""
    d = tmp_path / "run"
    s = api.train([*S2S_TINY, "arch.attention=luong", "monitor=default"], d)
    assert s.status == "completed"
    for name in ("gradients.csv", "time_gradients.csv", "weights.csv", "states_summary.csv", "attention_mean.csv"):
        assert (d / name).stat().st_size > 0, name
    tg = pd.read_csv(d / "time_gradients.csv")
    assert set(tg["layer"]) == {"encoder", "decoder"} and tg["norm"].notna().any()
    assert set(pd.read_csv(d / "states_summary.csv")["layer"]) == {"encoder", "decoder"}
    weights = pd.read_csv(d / "weights.csv")
    assert {"enc.weight_hh", "dec.weight_hh"} <= set(weights["param"])
    m = pd.read_csv(d / "metrics.csv")
    assert m["spectral_radius_encoder"].notna().all() and m["grad_t_first_over_last"].notna().all()
    assert set(s["monitor"]["saturation"]) == {"encoder", "decoder"}


@pytest.mark.slow
def test_seq2seq_monitor_plots_and_the_attention_maps(tmp_path):
    d = tmp_path / "run"
    s = api.train([*S2S_TINY, "arch.attention=luong", "monitor=default", "train.plots=true"], d)
    assert s.status == "completed"
    for name in ("plots/gradient_flow.png", "plots/states_heatmap.png", "plots/states_pca.png", "plots/gates.png",
                 "plots/spectral.png", "plots/attention.png", "plots/attention_example.png", "report.html"):
        assert (d / name).stat().st_size > 0, name
    assert {"plots/states_heatmap.png", "plots/gradient_flow.png"} <= set(s["monitor"]["files"])


def test_seq2seq_batches_are_bucketed_and_trimmed_without_changing_the_loss():
    from rnnlab.data import seq2seq_tasks as S
    from rnnlab.train.tasks.seq2seq import trimmed

    data = S.reverse_digits(32, 4, 4, np.random.default_rng(0), min_len=2, max_len=8)
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=6, src_vocab=13, tgt_vocab=13, pad_id=0, attention="bahdanau")
    params = Q.init_params(spec, np.random.default_rng(1), dtype=np.float64)
    lengths = S.src_lengths(data.train)
    idx = np.flatnonzero(lengths <= 4)[:5]  # short sequences: padding to cut
    full, cut = data.train.batch(idx), trimmed(data.train, idx)
    assert cut.src.shape[1] == 4 < full.src.shape[1] and cut.tgt_in.shape[1] == 5 < full.tgt_in.shape[1]
    losses = [Q.loss(spec, Q.forward(spec, params, b.src, b.src_mask, b.tgt_in)[0], b.tgt_out, b.tgt_mask)[0]
              for b in (full, cut)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-12)


def test_seq2seq_decoder_trace_is_the_total_state_gradient():
    """The last decoder step's dL/dh has no later step: it is the head's input gradient, W_head^T dout."""
    spec = Q.Seq2SeqSpec(cell="lstm", hidden_size=5, src_dim=2, tgt_dim=1)
    rng = np.random.default_rng(0)
    params = Q.init_params(spec, rng, dtype=np.float64)
    src, tgt = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 6, 1))
    out, cache = Q.forward(spec, params, src, np.ones((3, 4)), tgt)
    dout = rng.standard_normal(out.shape)
    trace: dict = {}
    Q.backward(spec, params, dout, cache, trace=trace)
    assert list(trace) == ["encoder", "decoder"] and trace["encoder"].shape == (4, 3, 5)
    np.testing.assert_allclose(trace["decoder"][-1], dout[:, -1] @ params["head.weight"], rtol=1e-12)
    # the encoder's last state feeds the decoder's first: its trace is the decoder's first-step state gradient
    assert np.abs(trace["encoder"][-1]).sum() > 0


class StopAt(Callback):
    """Ctrl-C at a given step (mid-epoch)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, fit, info):
        if info.step == self.step:
            raise KeyboardInterrupt


def test_interrupted_mid_epoch_tests_the_last_completed_epochs_weights(tmp_path):
    from rnnlab.record import checkpoint

    d = tmp_path / "run"
    s = api.train([*TINY, "train.epochs=4", "train.limit_batches=3", "train.restore_best_weights=false"], d,
                  callbacks=[StopAt(7)])  # step 7 is in epoch 3
    assert (s.status, s.epochs_run, s.test_weights, s.test_weights_epoch) == ("interrupted", 2, "last", 2)
    assert checkpoint.load(d / "checkpoint_last").info["epoch"] == 2
    assert s.test_loss is not None and np.isfinite(s.test_loss)


def test_interrupted_before_the_first_last_checkpoint_falls_back_to_the_best(tmp_path, monkeypatch):
    from rnnlab.train.recorder import RunRecorder

    def interrupted(self, fit):
        raise KeyboardInterrupt  # a signal while checkpoint_last is written

    monkeypatch.setattr(RunRecorder, "epoch_saved", interrupted)
    d = tmp_path / "run"
    s = api.train([*TINY, "train.restore_best_weights=false"], d)
    assert (s.status, s.epochs_run, s.test_weights, s.test_weights_epoch) == ("interrupted", 1, "last", 1)
    assert not (d / "checkpoint_last").exists() and (d / "checkpoint" / "model.npz").exists()


def test_pruning_wins_over_early_stopping_in_a_run(tmp_path):
    """min_delta 100: epoch 1 sets the reference, so patience 1 stops at epoch 2, where the pruner also stops."""
    s = api.train([*TINY, "train.epochs=5", "train.early_stopping_patience=1", "train.early_stopping_min_delta=100"],
                  tmp_path / "a")
    assert (s.status, s.epochs_run) == ("completed", 2) and s.message.startswith("early stopping at epoch 2 ")
    s = api.train([*TINY, "train.epochs=5", "train.early_stopping_patience=1", "train.early_stopping_min_delta=100"],
                  tmp_path / "b", epoch_hook=lambda epoch, row: "pruned by the test" if epoch == 2 else None)
    assert (s.status, s.epochs_run, s.message) == ("pruned", 2, "pruned by the test")


class Session(Callback):
    def __init__(self):
        self.open, self.seen = False, []

    def session(self, fit):
        from contextlib import contextmanager

        @contextmanager
        def opened():
            self.open = True
            yield
            self.open = False

        return opened()

    def on_fit_end(self, fit):
        self.seen.append((self.open, fit.status))


def test_on_fit_end_runs_inside_the_sessions_with_the_final_status(tmp_path):
    cb = Session()
    assert api.train([*TINY, "train.epochs=1"], tmp_path / "run", callbacks=[cb]).status == "completed"
    assert cb.seen == [(True, "completed")] and not cb.open
