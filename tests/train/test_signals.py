"""Ctrl-C and SIGTERM in every phase of a run: a truthful status (`interrupted`, and in which phase),
what was computed so far kept, no temporary file left; a second signal within a second exits at once.

The phases are hit with real signals sent by the process to itself at the start of each phase (the
handler raises where the main thread is, as for a signal from outside). Signals at random moments
from outside, with exit codes and resume: the slow fault-injection test (test_fault_injection.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from rnnlab import api
from rnnlab.record.summary import read as read_summary
from rnnlab.runtime import signals
from rnnlab.train.callbacks import Callback
from tests.conftest import TINY

RUN = [*TINY, "train.epochs=2", "train.limit_batches=2"]


def _leftovers(run_dir):
    return [p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


def _signal_on_entry(monkeypatch, owner, name, signum=signal.SIGTERM):
    """owner.name sends the process `signum` as it starts (then goes on: the handler raises at once)."""
    original = getattr(owner, name)

    def hit(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, hit)


def _phase_targets():
    from rnnlab.data import registry
    from rnnlab.monitor import RunMonitor
    from rnnlab.report import plots
    from rnnlab.train import recorder
    from rnnlab.train.tasks.sequence import SequenceTask

    return {"start-up": (registry, "load"), "test": (SequenceTask, "test_report"),
            "monitor": (RunMonitor, "finish"), "plots": (plots, "save_run_plots"),
            "report": (recorder, "write_report")}


@pytest.mark.parametrize("phase", ["start-up", "test", "plots", pytest.param("monitor", marks=pytest.mark.slow),
                                   pytest.param("report", marks=pytest.mark.slow)])
def test_a_signal_in_each_phase_gives_a_truthful_folder(phase, tmp_path, monkeypatch):
    owner, name = _phase_targets()[phase]
    _signal_on_entry(monkeypatch, owner, name)
    d = tmp_path / "run"
    s = api.train([*RUN, "train.plots=true"], d)
    assert s.status == "interrupted" and s.interrupted_in == phase
    on_disk = read_summary(d)
    assert on_disk.status == "interrupted" and on_disk.interrupted_in == phase
    assert _leftovers(d) == []
    if phase == "start-up":
        assert "nothing was trained" in s.message and not (d / "checkpoint_last").exists()
        return
    assert s.epochs_run == 2 and (d / "checkpoint" / "model.npz").is_file()  # the trained model is kept
    assert (s.test_metrics is None) == (phase == "test")  # a test cut short records no half metrics
    assert (d / "report.html").is_file() == (phase != "report")
    if phase != "report":
        assert "Partial report" in (d / "report.html").read_text()
    if phase in ("test", "monitor"):
        monkeypatch.undo()
        again = api.train(RUN, d, resume=True)  # and the run finishes where it stopped
        assert again.status == "completed" and again.interrupted_in is None and again.test_metrics
        assert again.epochs_run == 2  # nothing trained twice


def test_sigterm_in_training_is_interrupted_in_training(tmp_path):
    class SigtermAtStep(Callback):
        def on_step_end(self, fit, info):
            if info.step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    s = api.train(RUN, tmp_path / "r", callbacks=[SigtermAtStep()])
    assert s.status == "interrupted" and s.interrupted_in == "training" and s.epochs_run == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the caller's handler is back


def test_deferred_holds_a_signal_until_the_block_ends():
    with signals.handling():
        with pytest.raises(signals.Interrupted) as caught:
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                done = True  # reached: the signal waited
        assert done and caught.value.signum == signal.SIGTERM
    assert signals.received() is None  # forgotten with the call that saw it


FAST_EXIT = textwrap.dedent("""
    import os, signal, sys, time
    from rnnlab.runtime import signals
    signals.install()
    tmp = sys.argv[1] + "/.x.tmp"
    open(tmp, "w").close()
    with signals.temp_file(tmp), signals.last_words(lambda: open(sys.argv[1] + "/words", "w").write("said")):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second within a second: exit when the block ends
            open(sys.argv[1] + "/whole", "w").write("done")
        time.sleep(5)
    """)


def test_a_second_signal_within_a_second_exits_at_once_leaving_no_temp_file(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FAST_EXIT, str(tmp_path)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 130
    assert "interrupted twice: stopped at once (exit 130)" in proc.stderr
    assert (tmp_path / "whole").read_text() == "done"  # the deferred block finished its write
    assert (tmp_path / "words").read_text() == "said"
    assert not (tmp_path / ".x.tmp").exists()


def test_exit_codes_are_128_plus_the_signal():
    signals.reset()
    assert signals.exit_code(default=1) == 1
    signals._S.first = signal.SIGTERM
    try:
        assert signals.exit_code() == 143
    finally:
        signals.reset()


def test_an_interrupt_a_library_turned_into_another_error_is_still_an_interrupt():
    """Ctrl-C inside a C extension's initialisation comes back as "ImportError: initialization failed"."""
    def cut_import():
        try:
            raise signals.Interrupted(signal.SIGINT)
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    with pytest.raises(signals.Interrupted):
        with signals.unmasked():
            cut_import()
    with pytest.raises(ValueError):  # a plain error stays what it is
        with signals.unmasked():
            raise ValueError("a bug")


@pytest.mark.slow
def test_a_later_signal_keeps_the_phase_the_first_one_stopped(tmp_path, monkeypatch):
    """SIGTERM in the plots, another (over a second later) in the partial report that follows: the run
    still says it was interrupted in the plots."""
    targets = _phase_targets()
    _signal_on_entry(monkeypatch, *targets["plots"])
    _signal_on_entry(monkeypatch, *targets["report"])
    monkeypatch.setattr(signals, "FAST_EXIT_S", 0.0)  # the second signal is a late one, not a fast exit
    s = api.train([*RUN, "train.plots=true"], tmp_path / "run")
    assert s.status == "interrupted" and s.interrupted_in == "plots"
    assert read_summary(tmp_path / "run").interrupted_in == "plots"
