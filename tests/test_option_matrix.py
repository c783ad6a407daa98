"""Every option trains, or is refused in one line; and nothing outside the cells names a cell.

1. Every option of every config group (the YAML files, found on disk: a new option is picked up
   without editing this file), with the other groups at their defaults, trains one tiny epoch
   (``debug=tiny``) with the default monitor's computations on (``monitor=default``; plots off),
   or is refused with a one-line ConfigError / DataError (what the CLI turns into exit code 2).
2. Every regularizer with every registered cell, one layer, bidirectional and stacked: the
   recurrent regularizers used to crash the monitor for some cells, after the whole run.
3. No module outside ``rnnlab/engine/cells/`` compares a value with a cell name or keys a dict or
   tuple by cell names: what a cell is lives in its module and the registry, nowhere else.

Data options that read files get small generated ones ($RNNLAB_DATA, or data.path).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.config.validate import ConfigError, group_options
from rnnlab.data.base import DataError
from rnnlab.engine import cells
from tests.data import imdb_tree

GROUPS = ("arch", "optim", "sched", "reg", "data", "monitor", "logger", "experiment", "debug")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """$RNNLAB_DATA with a small IMDB archive and S&P 500 file, and the files data=csv / seqfile read."""
    d = tmp_path_factory.mktemp("data")
    imdb_tree.write_tar(d / "aclImdb_v1_labeled.tar.gz", n_per=24)
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-01-01", periods=700)
    close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(len(dates))))
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Open": close, "High": close * 1.01,
                          "Low": close * 0.99, "Close": close, "Volume": rng.integers(1000, 5000, len(dates))})
    frame.to_csv(d / "sp500_daily_1990-2023.csv", index=False)
    frame.to_csv(d / "prices.csv", index=False)
    rows = [{"id": f"s{i}", "time": t, "label": f"c{i % 2}", "f1": np.sin(i + t), "f2": float(i % 2) - t / 9}
            for i in range(60) for t in range(3 + i % 5)]
    pd.DataFrame(rows).to_csv(d / "sequences.csv", index=False)
    return d


# what a data option needs beyond the defaults: the files it reads
DATA_PATHS = {"csv": "prices.csv", "seqfile": "sequences.csv"}
# options that need another option beside them, and the words their one-line refusal must say
NEEDS_ANOTHER = {("data", "copy"): "use arch.pooling=none", ("data", "textlm"): "use arch.pooling=none",
                 ("data", "echo"): "use arch.pooling=none"}


_COMPOSED: dict[tuple[str, ...], object] = {}


def _compose(overrides):
    """api.compose, once per list of overrides in this module (the cell matrix shares one per regularizer)."""
    key = tuple(overrides)
    if key not in _COMPOSED:
        _COMPOSED[key] = api.compose(overrides)
    return copy.deepcopy(_COMPOSED[key])


def _train(overrides, tmp_path, monkeypatch, data_dir, adjust=None):
    """Compose, optionally adjust in Python, train; returns the summary or the one-line refusal."""
    monkeypatch.setenv("RNNLAB_DATA", str(data_dir))
    try:
        rc = _compose(overrides)
        if adjust is not None:
            adjust(rc)
        summary = api.train(rc, tmp_path / "run")
    except (ConfigError, DataError) as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg, msg
        return msg
    assert summary.status == "completed", summary.message
    assert (tmp_path / "run" / "checkpoint").is_dir() and (tmp_path / "run" / "metrics.csv").is_file()
    if rc.monitor.enabled:  # seq2seq runs too
        mon = summary["monitor"]
        assert mon["enabled"] and "files" in mon, mon
    return summary


OPTIONS = [(g, o) for g in GROUPS for o in group_options(g)]
# Options whose run costs seconds of imports (tensorboardX) and that have a fast test file of their own.
SLOW_OPTIONS = {("logger", "tensorboard")}


@pytest.mark.parametrize("group, option", [
    pytest.param(g, o, id=f"{g}={o}", marks=[pytest.mark.slow] if (g, o) in SLOW_OPTIONS else [])
    for g, o in OPTIONS])
def test_every_option_trains_or_is_refused_in_one_line(group, option, tmp_path, monkeypatch, data_dir):
    overrides = ["debug=tiny", f"{group}={option}"]
    if group != "monitor":
        overrides.append("monitor=default")  # the monitor's computations on (plots stay off)
    if group == "data" and option in DATA_PATHS:
        overrides.append(f"data.path={data_dir / DATA_PATHS[option]}")
    out = _train(overrides, tmp_path, monkeypatch, data_dir)
    needs = NEEDS_ANOTHER.get((group, option))
    if needs is None:
        assert not isinstance(out, str), f"{group}={option} was refused: {out}"
    else:
        assert isinstance(out, str) and needs in out, out


LAYOUTS = {"uni": {}, "bi": {"bidirectional": True}, "stacked": {"num_layers": 2, "dropout": 0.2}}
REG_CELL = [(r, c, lay) for r in group_options("reg") for c in cells.names() for lay in LAYOUTS]


def _reg_cell_param(r, c, lay):
    """The fast suite runs every (regularizer, cell) pair once, its layout rotating so that every
    (regularizer, layout) and (cell, layout) pair is covered too; the whole product is slow-suite."""
    regs, names, lays = list(group_options("reg")), list(cells.names()), list(LAYOUTS)
    slow = (regs.index(r) + names.index(c)) % len(lays) != lays.index(lay)
    return pytest.param(r, c, lay, id=f"{r}-{c}-{lay}", marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("reg, cell, layout", [_reg_cell_param(*p) for p in REG_CELL])
def test_every_regularizer_with_every_cell(reg, cell, layout, tmp_path, monkeypatch, data_dir):
    def adjust(rc):  # dataclasses.replace re-runs the schema's checks
        rc.arch = dataclasses.replace(rc.arch, cell=cell, **LAYOUTS[layout])

    tiny_data = ["data.length=400", "data.n_in=12"]  # the default sine task, short windows
    out = _train(["debug=tiny", "monitor=default", f"reg={reg}", *tiny_data], tmp_path, monkeypatch, data_dir, adjust)
    assert not isinstance(out, str), out
    states = out["monitor"]["saturation"]
    assert set(states) == {f"l{k}{d}" for k in range(1 + (layout == "stacked"))
                           for d in ("", "_reverse")[: 1 + (layout == "bi")]}


# ---------------------------------------------------------------------------------------------
# nothing outside the cells names a cell
# ---------------------------------------------------------------------------------------------


def _cell_literal_uses(tree: ast.AST, names: set[str]):
    """(line, what) of every comparison with a cell name, dict keyed by one, tuple/list/set of them, or
    lookup by one (a line may come more than once: the caller keeps one per line)."""
    def is_name(node):
        return isinstance(node, ast.Constant) and node.value in names

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if is_name(side) or (isinstance(side, (ast.Tuple, ast.List, ast.Set))
                                     and any(is_name(e) for e in side.elts)):
                    yield node.lineno, "compares with a cell name"
        elif isinstance(node, ast.Dict) and any(k is not None and is_name(k) for k in node.keys):
            yield node.lineno, "a dict keyed by cell names"
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and sum(is_name(e) for e in node.elts) >= 2:
            yield node.lineno, "a list of cell names"
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("get", "setdefault", "pop") \
                and node.args and is_name(node.args[0]):
            yield node.lineno, "looks a cell name up"


def _first_per_line(hits) -> dict[int, str]:
    out: dict[int, str] = {}
    for line, what in hits:
        out.setdefault(line, what)
    return out


def test_no_module_outside_the_cells_names_a_cell():
    names = set(cells.names())
    found = []
    for path in sorted((ROOT / "rnnlab").rglob("*.py")):
        if (ROOT / "rnnlab" / "engine" / "cells") in path.parents:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        hits = _first_per_line(_cell_literal_uses(tree, names))
        found += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in sorted(hits.items())]
    assert not found, "\n".join(found)


def test_the_scan_finds_what_it_looks_for():
    names = {"lstm", "gru"}
    code = '''
if spec.cell == "lstm": pass
if cell in ("lstm", "gru"): pass
GATES = {"lstm": 4}
CELLS = ["lstm", "gru"]
x = table.get("gru")
default = "lstm"  # a default value is not a branch
'''
    hits = [what for _, what in sorted(_first_per_line(_cell_literal_uses(ast.parse(code), names)).items())]
    assert hits == ["compares with a cell name", "compares with a cell name", "a dict keyed by cell names",
                    "a list of cell names", "looks a cell name up"]


def test_cell_options_from_the_command_line():
    """arch.cell_options.K=V adds a key Hydra's YAML does not have (the cell owns its options); a
    misspelt one is one line naming the cell's options."""
    rc = api.compose(["arch=ln_lstm", "arch.cell_options.per_gate=false"])
    assert rc.arch.cell_options == {"per_gate": False}
    with pytest.raises(ConfigError) as exc:
        api.compose(["arch=ln_lstm", "arch.cell_options.per_gat=false"])
    assert str(exc.value) == ("arch.cell_options.per_gat: cell ln_lstm has no option 'per_gat' "
                              "(its options: per_gate; did you mean per_gate?)")
    with pytest.raises(ConfigError, match="arch.nonlinearity: cell gru has no nonlinearity option"):
        api.compose(["arch=gru", "arch.nonlinearity=relu"])
