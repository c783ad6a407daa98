"""train.log: the run's own log (rnnlab.record.run_log), written by the run whether Hydra launched it or not."""

from __future__ import annotations

import io
import logging
import re
import threading

import pandas as pd
import pytest
from rich.console import Console

from rnnlab import api
from rnnlab.record import run_log
from rnnlab.record.summary import Summary
from rnnlab.train.callbacks import Callback
from tests.conftest import TINY


def _lines(run_dir) -> list[str]:
    """train.log's messages, without the time stamp and the level (a traceback's lines left out)."""
    stamped = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ +(.*)")
    return [m.group(1) for ln in (run_dir / run_log.FILE).read_text().splitlines() if (m := stamped.fullmatch(ln))]


def test_a_run_logs_its_start_config_epochs_status_and_a_failure_and_its_resume_append(tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, fit, row):
            if row["epoch"] == 2:
                raise RuntimeError("boom")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        api.train(TINY, run, callbacks=[Boom()])
    text = (run / run_log.FILE).read_text()
    assert "ERROR   the run failed with this traceback:\nTraceback (most recent call last):" in text
    assert "RuntimeError: boom" in text and "ERROR   failed (RuntimeError('boom'))" in text
    s = api.train(TINY, run, resume=True)  # from epoch 1 (epoch 2's checkpoint_last was never written)
    lines = _lines(run)
    assert lines[0].startswith(f"run started in {run} (rnnlab ")
    assert lines[1] == "overrides: " + " ".join(TINY)
    assert any(ln.startswith("config arch: cell=lstm hidden_size=8 num_layers=1 ") for ln in lines)
    assert sum(ln.startswith("run resumed after epoch 1 in") for ln in lines) == 1
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epochs] == ["1/3", "2/3", "2/3", "3/3"]
    m = pd.read_csv(run / "metrics.csv")
    for ln, (_, row) in zip([epochs[0], *epochs[2:]], m.iterrows(), strict=True):  # the bar's numbers
        assert f"loss {row['train_loss']:.4g}  val {row['val_loss']:.4g}  lr {row['lr']:.3g}" in ln
    assert lines[-1] == (f"completed; best epoch {s.best_epoch} of 3; test "
                         + " ".join(f"{k} {v:.4g}" for k, v in s.test_metrics.items()) + f"; {s.runtime_s:.3g} s")
    assert sum(ln.startswith("completed") for ln in lines) == 1  # the summary is written twice: one status line


def test_show_puts_the_same_words_on_the_console_and_in_the_log(tmp_path):
    buf = io.StringIO()
    log = run_log.RunLog.open(tmp_path)
    try:
        run_log.show(Console(file=buf, width=200), "warning: [x] exploding", logging.WARNING, style="yellow")
        run_log.show(None, "no console: the log only")
        other = threading.Thread(target=run_log.log.info, args=("another thread's run",))
        other.start()
        other.join()
        log.status(Summary(status="running"))
        for _ in range(2):
            log.status(Summary(status="diverged", message="loss became nan"))
        logging.getLogger("rnnlab.train.recorder").warning("report.html not written")
    finally:
        log.close()
    run_log.log.warning("after close: nowhere")
    assert buf.getvalue() == "warning: [x] exploding\n"
    assert _lines(tmp_path) == ["warning: [x] exploding", "no console: the log only",
                                "diverged (loss became nan)", "report.html not written"]
    assert (tmp_path / run_log.FILE).read_text().splitlines()[0].split()[2] == "WARNING"
