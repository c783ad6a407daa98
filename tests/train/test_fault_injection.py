"""Fault injection over the whole life of short runs: SIGINT, SIGTERM and SIGKILL at random moments in
every phase (start-up, training, test, monitor/plots/report, exit), then `rnnlab train --resume`.

For every hit: the exit code is 128 + the signal (SIGKILL: killed), the folder is consistent (a
strict-JSON summary whose status says where the run stopped, metrics.csv rows = the epochs recorded,
checkpoint_last at that epoch, no temporary file), and the resumed run equals the uninterrupted twin
of the same seed (metrics.csv apart from timing columns, best and last weights bitwise, test metrics).

Each signal's moment is drawn at random inside a phase, timed from the run's own phase log
(`hydra.verbose=rnnlab.train.recorder` logs "phase X" to stdout as the run enters X), so every phase gets hits;
the phase a hit landed in is read back from the outcome (`interrupted_in`, or completed = exit). The
counts per phase are printed (pytest -s) for the issue's note.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

RUN = ["data.length=400", "data.n_in=12", "arch.hidden_size=8", "train.epochs=4", "train.limit_batches=4",
       "train.batch_size=32", "train.progress=false", "monitor=none", "train.plots=true", "reg=dropout"]
TIMING = ["seconds", "samples_per_s", "monitor_seconds"]
PHASE_OF = {"start-up": "start-up", "training": "training", "test": "test", "monitor": "monitor/plots/report",
            "plots": "monitor/plots/report", "report": "monitor/plots/report"}
TARGETS = ["start-up", "training", "test", "monitor/plots/report", "exit"]
N_HITS = int(os.environ.get("RNNLAB_FAULT_HITS", "55"))
# Until the interpreter runs rnnlab's first line (python's own start-up), the OS default handles a signal.
PRE_PYTHON_S = 0.15


def _cli(args, cwd, **kw):
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.Popen([sys.executable, "-m", "rnnlab", "train", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


class Watched:
    """A run whose phase lines are timed as they appear on stderr."""

    def __init__(self, args, cwd):
        self.t0 = time.monotonic()
        self.proc = _cli([*args, "hydra.verbose=rnnlab.train.recorder"], cwd)
        self.seen: dict[str, float] = {}
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):  # Hydra's log goes to stdout, our messages to stderr
        for line in self.proc.stdout:
            if "[rnnlab.train.recorder][DEBUG] - phase " in line:
                self.seen[line.rsplit("phase ", 1)[1].strip()] = time.monotonic()

    def wait_for(self, phase, timeout=120.0) -> bool:
        end = time.monotonic() + timeout
        while phase not in self.seen and self.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.002)
        return phase in self.seen

    def finish(self, timeout=180):
        self.err = [self.proc.stderr.read()]
        self.proc.wait(timeout)
        self._reader.join(10)
        return self.proc.returncode


def _timeline(cwd, run_dir) -> dict[str, tuple[float, float]]:
    """Each target phase's (start, length) in seconds, from an uninterrupted run."""
    w = Watched([*RUN, f"hydra.run.dir={run_dir}"], cwd)
    assert w.finish() == 0, "".join(w.err)[-2000:]
    s = {k: v - w.t0 for k, v in w.seen.items()}
    end = time.monotonic() - w.t0
    return {"start-up": (0.0, s["training"]), "training": (s["training"], s["test"] - s["training"]),
            "test": (s["test"], s["monitor"] - s["test"]),
            "monitor/plots/report": (s["monitor"], s["done"] - s["monitor"]),
            "exit": (s["done"], max(end - s["done"], 0.01))}


def _hit(target, sig, timeline, rng, cwd, run_dir):
    """Start a run, send `sig` at a random moment of `target`; (exit code, stderr, seconds after the start
    it was sent, or None when the run had ended first)."""
    w = Watched([*RUN, f"hydra.run.dir={run_dir}"], cwd)
    anchor = {"start-up": None, "training": "training", "test": "test", "monitor/plots/report": "monitor",
              "exit": "done"}[target]
    start, length = timeline[target]
    if anchor is None:
        time.sleep(rng.uniform(0.0, length))
    elif w.wait_for(anchor):
        time.sleep(rng.uniform(0.0, length * 0.6))
    sent = None
    if w.proc.poll() is None:
        w.proc.send_signal(sig)
        sent = time.monotonic() - w.t0
    return w.finish(), "".join(w.err), sent


def _phase_hit(run_dir: Path) -> str:
    """Where the signal landed, from the outcome."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        return "start-up"  # before the run's folder had a summary: nothing was started
    s = json.loads(summary.read_text())
    if s["status"] == "interrupted":
        return PHASE_OF[s["interrupted_in"]]
    if s["status"] == "completed":
        return "exit"
    return f"{s['status']}?"


def _check_folder(run_dir: Path, rc: int, sig: int, err: str) -> list[str]:
    """What is wrong with an interrupted run's folder (empty: nothing)."""
    bad = []
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 128 + sig
    if rc != expected:
        bad.append(f"exit code {rc}, expected {expected}")
    if sig != signal.SIGKILL and "Traceback" in err:
        bad.append(f"a traceback on stderr: ...{err[-1500:]}")
    if sig != signal.SIGKILL:
        left = [p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp") or ".link." in p.name]
        if left:
            bad.append(f"temporary files left: {left}")
    summary = run_dir / "summary.json"
    if not summary.exists():
        return bad
    s = json.loads(summary.read_text(), parse_constant=lambda c: bad.append(f"non-strict JSON {c}"))
    if sig != signal.SIGKILL and s["status"] not in ("interrupted", "completed"):
        bad.append(f"status {s['status']}")
    if (run_dir / "checkpoint_last").exists():
        info = json.loads((run_dir / "checkpoint_last" / "training_state.json").read_text())
        rows = pd.read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else []
        if len(rows) < info["epoch"]:
            bad.append(f"metrics.csv has {len(rows)} rows, checkpoint_last is at epoch {info['epoch']}")
        if sig != signal.SIGKILL and s["status"] == "interrupted" and len(rows) != s["epochs_run"]:
            bad.append(f"epochs_run {s['epochs_run']} but metrics.csv has {len(rows)} rows")
    return bad


def _weights(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _differs(twin: Path, run_dir: Path) -> list[str]:
    out = []
    ma, mb = (pd.read_csv(d / "metrics.csv").drop(columns=TIMING, errors="ignore") for d in (twin, run_dir))
    if not ma.equals(mb):
        out.append("metrics.csv")
    for name in ("checkpoint", "checkpoint_last"):
        wa, wb = _weights(twin / name / "model.npz"), _weights(run_dir / name / "model.npz")
        if wa.keys() != wb.keys() or any(not np.array_equal(wa[k], wb[k]) for k in wa):
            out.append(f"{name}/model.npz")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (twin, run_dir))
    if sa["test_metrics"] != sb["test_metrics"] or sb["status"] != "completed":
        out.append(f"summary ({sb['status']})")
    return out


def test_signals_and_kills_in_every_phase_then_resume(tmp_path):
    rng = random.Random(14)
    twin = tmp_path / "twin"
    timeline = _timeline(tmp_path, twin)
    plan = [(TARGETS[i % len(TARGETS)], rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM,
                                                    signal.SIGKILL])) for i in range(N_HITS)]

    def one(i):
        target, sig = plan[i]
        for attempt in range(8):  # a run that ended before its signal was sent is no hit: again
            run_dir = tmp_path / f"hit{i:02d}-{attempt}"
            rc, err, sent = _hit(target, sig, timeline, random.Random(1000 * attempt + i), tmp_path, run_dir)
            if sent is not None and not (rc == 0 and (run_dir / "summary.json").exists()):
                break  # (exit 0: the signal came as the process was already leaving, no hit)
        else:
            return i, target, sig, "missed", []
        if rc == -sig and sent < PRE_PYTHON_S and not run_dir.exists():
            return i, target, sig, "before python", []  # the OS default, before rnnlab's first line ran
        landed = _phase_hit(run_dir) if sig != signal.SIGKILL else f"kill:{target}"
        problems = _check_folder(run_dir, rc, sig, err)
        if (run_dir / "summary.json").exists():  # resume it (a run with no completed epoch starts over)
            again = _cli(["--resume", str(run_dir), "train.plots=false"], tmp_path)
            out, rerr = again.communicate(timeout=300)
            if again.returncode != 0:
                problems.append(f"resume exit {again.returncode}: {rerr[-500:]}")
            else:
                problems += [f"resumed run differs: {d}" for d in _differs(twin, run_dir)]
        return i, target, sig, landed, problems

    with ThreadPoolExecutor(2) as pool:  # two runs at a time: the machine's two cores
        results = list(pool.map(one, range(N_HITS)))

    counts = Counter(landed for _, _, sig, landed, _ in results if sig != signal.SIGKILL)
    kills = Counter(landed for _, _, sig, landed, _ in results if sig == signal.SIGKILL)
    print(f"\nsignals per phase: {dict(counts)}; kills (aimed at): {dict(kills)}; total {len(results)}")
    failures = [(i, t, signal.Signals(s).name, landed, p) for i, t, s, landed, p in results if p]
    assert not failures, "\n".join(map(str, failures))
    assert sum(counts.values()) + sum(kills.values()) >= 50
    for phase in TARGETS:
        assert counts[phase] >= 5, f"only {counts[phase]} signals landed in {phase}: {dict(counts)}"
