"""The monitors compute numbers and write through a run folder; all drawing lives in rnnlab.report
(`rnnlab.report.monitor_plots`), and with plots off the plotting library is never imported."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from rnnlab.config.schema import MonitorConf
from rnnlab.data.base import Split, TaskData
from rnnlab.engine import losses
from rnnlab.engine import model as M
from rnnlab.monitor import RunMonitor
from rnnlab.monitor.inspect import SequenceInspector
from rnnlab.record.folder import RunFolder

MONITOR = Path(__file__).resolve().parents[2] / "rnnlab" / "monitor"
CSV_FILES = ["gradients.csv", "time_gradients.csv", "weights.csv", "states_summary.csv"]
FIGURES = ["gradient_flow.png", "grad_norms.png", "grad_hist.png", "weight_hist.png", "weight_hist.gif",
           "spectral.png", "weight_heatmaps.png", "states_heatmap.png", "states_pca.png", "states_kmeans.png",
           "gates.png"]


def test_monitor_source_has_no_drawing_code():
    files = sorted(MONITOR.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "gradients.py", "weights.py", "states.py"}
    for f in files:
        text = f.read_text()
        assert "matplotlib" not in text, f.name
        assert not re.search(r"\bplt\b", text), f.name
        assert "write_csv" not in text and "save_figure" not in text, f.name  # through the folder, never by path


# A tiny LSTM watched by the full monitor (every analysis on) for two epochs of two steps.
SCENARIO = """
import numpy as np

from rnnlab.config.schema import MonitorConf
from rnnlab.data.base import Split, TaskData
from rnnlab.engine import losses
from rnnlab.engine import model as M
from rnnlab.monitor import RunMonitor
from rnnlab.monitor.inspect import SequenceInspector


def watch(folder):
    rng = np.random.default_rng(0)
    spec = M.ModelSpec(cell="lstm", input_size=2, hidden_size=3, output_size=1)
    params = M.init_params(spec, rng)
    x = rng.standard_normal((4, 5, 2)).astype(np.float32)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    split = Split(x=x, y=y, mask=None)
    data = TaskData(kind="regression", train=split, val=split, test=split, input_size=2, output_size=1,
                    default_loss="mse")
    cfg = MonitorConf(every_n_steps=1, gif=True, clusters=2)
    mon = RunMonitor(cfg, SequenceInspector(spec, data, losses.mse), folder)
    rows = []
    for epoch in range(2):
        for step in range(2):
            out, cache = M.forward(spec, params, x)
            _, dout = losses.mse(out, y)
            grads, _ = M.backward(spec, params, dout, cache)
            mon.on_step(2 * epoch + step, epoch, params, grads, 1.0)
            for k in params:
                params[k] -= np.float32(0.1) * grads[k]
        rows.append({"epoch": epoch + 1, **mon.on_epoch_end(epoch, params)})
    return mon.finish(params, rows)["monitor"]
"""


def _watch(folder):
    scope: dict = {}
    exec(SCENARIO, scope)  # the same scenario the subprocess runs
    return scope["watch"](folder)


def test_monitor_with_plots_off_never_imports_matplotlib(tmp_path):
    code = SCENARIO + textwrap.dedent(f"""
        import importlib, pkgutil, sys

        import rnnlab.monitor
        from rnnlab.record.folder import RunFolder

        for m in pkgutil.iter_modules(rnnlab.monitor.__path__):
            importlib.import_module("rnnlab.monitor." + m.name)
        files = watch(RunFolder({str(tmp_path)!r}, plots=False))["files"]
        assert files == {CSV_FILES!r}, files
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "PIL"))
        assert not loaded, loaded[:5]
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


class _Recording(RunFolder):
    """A run folder that remembers what it was asked to write."""

    def __init__(self, run_dir, plots):
        super().__init__(run_dir, plots)
        self.tables: list[str] = []
        self.figures: list[str] = []

    def table(self, name, frame):
        self.tables.append(name)
        return super().table(name, frame)

    def figure(self, name, draw):
        self.figures.append(name)
        return super().figure(name, draw)


def test_plots_off_writes_the_csv_files_and_no_picture(tmp_path):
    folder = _Recording(tmp_path, plots=False)
    summary = _watch(folder)
    assert summary["files"] == CSV_FILES
    assert folder.tables == CSV_FILES and folder.figures == FIGURES  # asked for, skipped by the folder
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == sorted(CSV_FILES)  # no plots/ folder, no PNG or GIF, nothing beside the folder's writes
    for name in CSV_FILES:
        assert (tmp_path / name).stat().st_size > 0
    assert summary["gradient_warnings"] == {"vanishing": 0, "exploding": 0}
    assert set(summary["spectral_radius"]) == {"l0"} and "saturation" in summary


def test_a_plain_path_is_a_folder_with_plots_on(tmp_path):
    spec = M.ModelSpec(cell="rnn", input_size=1, hidden_size=2, output_size=1)
    split = Split(x=np.zeros((2, 3, 1), np.float32), y=np.zeros((2, 1), np.float32), mask=None)
    data = TaskData(kind="regression", train=split, val=split, test=split, input_size=1, output_size=1,
                    default_loss="mse")
    mon = RunMonitor(MonitorConf(), SequenceInspector(spec, data, losses.mse), tmp_path)
    assert isinstance(mon.folder, RunFolder) and mon.folder.plots and mon.folder.run_dir == tmp_path
    recorder = _Recording(tmp_path, plots=False)
    assert RunMonitor(MonitorConf(), SequenceInspector(spec, data, losses.mse), recorder).folder is recorder
