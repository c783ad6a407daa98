"""Resumed equals uninterrupted, for real processes: `rnnlab train` is signalled (SIGKILL, SIGINT, SIGTERM) at
a random moment drawn from a seeded generator, resumed with `rnnlab train --resume`, and compared with its
uninterrupted twin of the same seed: the same metrics.csv apart from the timing columns, bitwise the same
weights in checkpoint/ and checkpoint_last/, the same test metrics and monitor entries in summary.json and
the same monitor files. Cases cover float64 and float32, dropout (between layers and before the head),
recurrent dropout and zoneout, train.workers=2, seq2seq, the monitor, and runs with and without
train.checkpoint_every_steps (then the kill usually lands after a mid-epoch checkpoint, and the resume goes on
from that step), and runs that restart (train.restarts) signalled in a later attempt. Some cases are signalled
twice: once in the first run, once in the resumed one."""

from __future__ import annotations

import numpy as np
import pytest

from tests.train import faults

SMALL, SEQ2SEQ = faults.SMALL, faults.SEQ2SEQ
RESTARTS = [*(a for a in SMALL if not a.startswith("train.epochs=")), "train.epochs=3", "optim.lr=1e-9",
            "train.restarts=2"]

# name: (signal, arguments, interrupts before the final resume)
CASES = {
    "sigkill-float64-dropout-every-5-steps": (
        "SIGKILL", [*SMALL, "train.dtype=float64", "arch.num_layers=2", "arch.dropout=0.2", "reg=dropout",
                    "train.checkpoint_every_steps=5"], 2),
    "sigint-float32-zoneout-monitor": ("SIGINT", [*SMALL, "reg=zoneout", "monitor=full"], 1),
    "sigterm-float32-recurrent-dropout-workers-2-every-7-steps": (
        "SIGTERM", [*SMALL, "reg=recurrent_dropout", "train.workers=2", "train.checkpoint_every_steps=7"], 1),
    "sigkill-float32-dropout-workers-2": ("SIGKILL", [*SMALL, "reg=dropout", "train.workers=2"], 1),
    "sigterm-float64-monitor-every-4-steps": (
        "SIGTERM", [*SMALL, "train.dtype=float64", "monitor=default", "reg=l2", "train.checkpoint_every_steps=4"], 2),
    "sigkill-seq2seq-monitor-every-3-steps": (
        "SIGKILL", [*SEQ2SEQ, "monitor=default", "train.checkpoint_every_steps=3"], 1),
    "sigint-seq2seq-float64": ("SIGINT", [*SEQ2SEQ, "train.dtype=float64"], 1),
    # stateful truncated BPTT: the carried state is in every mid-epoch checkpoint
    "sigkill-stateful-echo-every-5-steps": (
        "SIGKILL", ["data=echo", "data.n_train=300", "data.n_val=40", "data.n_test=40", "arch=gru",
                    "arch.pooling=none", "arch.hidden_size=16", "arch.num_layers=2", "train.stateful=true",
                    "train.bptt=5", "train.batch_size=8", "train.epochs=6", "train.checkpoint_every_steps=5",
                    "train.progress=false", "train.plots=false", "monitor=none"], 2),
    # train.restarts: a run that cannot learn (lr 1e-9) restarts twice; signalled once attempt 1 has begun (its
    # first row or later, so in attempt 1 or 2 or between them), resumed into that attempt with the records
    # and rows of the ones before
    "sigkill-restarts-every-10-steps": ("SIGKILL", [*RESTARTS, "train.checkpoint_every_steps=10"], 2, (4, 7)),
    "sigterm-restarts-early-stopping": ("SIGTERM", [*RESTARTS, "train.early_stopping_patience=1"], 1, (3, 6)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_signalled_and_resumed_run_equals_its_uninterrupted_twin(case, tmp_path):
    sig, args, kills, *rows = CASES[case]
    rng = np.random.default_rng(list(CASES).index(case))
    epochs = int(next(a for a in reversed(args) if a.startswith("train.epochs=")).split("=")[1])
    after_rows = rows[0] if rows else (0, epochs - 3)  # metrics.csv rows (of every attempt) before the signal
    twin = faults.start(args, tmp_path / "whole")  # beside the interrupted run: two cores
    d = tmp_path / "run"
    hits = []
    for k in range(kills):
        hit = faults.interrupt(args if k == 0 else [], d, faults.SIGNALS[sig], rng=rng, resume=k > 0,
                               after_rows=_kth_range(after_rows, k, kills), delay=(0.0, 0.15))
        hits.append(hit)
        assert hit.code != 0, f"the signal came after the run ended: {hit}"  # a real interruption
        signum = int(faults.SIGNALS[sig])  # Ctrl-C and SIGTERM: stopped as interrupted (or killed outside the loop)
        assert hit.code == -9 if sig == "SIGKILL" else hit.code in (130, 128 + signum, -signum), hit.stderr[-2000:]
    out, err = twin.communicate(timeout=300)
    assert twin.returncode == 0, err[-2000:]
    done = faults.resume(d)
    assert done.returncode == 0, done.stderr[-2000:]
    print(case, [(h.code, h.rows, h.checkpoint, round(h.seconds, 2)) for h in hits])
    faults.assert_same_run(tmp_path / "whole", d)
    faults.assert_whole(d)


def _kth_range(rows: tuple[int, int], k: int, kills: int) -> tuple[int, int]:
    """The k-th of `kills` consecutive parts of the row range: each kill lands after the one before, so a
    resumed run still has rows to go when its signal is due (one range for all once let the first kill land
    on the last row and the resumed run finish before the second)."""
    lo, hi = rows
    span = max(1, (hi - lo + 1) // kills)
    start = min(lo + k * span, hi)
    return start, hi if k == kills - 1 else min(start + span - 1, hi)
