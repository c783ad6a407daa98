"""The model beside its baselines where a reader looks: the summary table, report.html and
`rnnlab compare --baselines` (summaries written by hand: no training)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from rich.console import Console

from rnnlab.commands.compare import compare, run
from rnnlab.report.html import render_report
from rnnlab.report.tables import summary_table


def _m(mae, mase=None):
    m = {"mse": mae**2, "rmse": mae, "mae": mae, "r2": 0.5, "mape": 10 * mae, "smape": 9 * mae}
    return {**m, "mase": mae / 2 if mase is None else mase}


BASELINES = {
    "naive": {"val_metrics": _m(0.30), "test_metrics": _m(0.40)},
    "drift": {"val_metrics": _m(0.25), "test_metrics": _m(0.45)},
    "ets": {"val_metrics": _m(0.28), "test_metrics": _m(0.20), "model": "ETS(A,Ad,N)"},
}


def _summary(run_dir: Path, model_mae: float, baselines=BASELINES) -> dict:
    s = {"format_version": 2, "status": "completed", "run_dir": str(run_dir), "task": "regression", "seed": 0,
         "val_metrics": _m(model_mae), "test_metrics": _m(model_mae), "baselines": baselines, "mase_scale": 2.0}
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(s))
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\narch:\n  cell: gru\n")
    return s


def test_summary_table_one_block_per_split_best_marked(tmp_path):
    console = Console(record=True, width=220)
    console.print(summary_table(_summary(tmp_path / "r", 0.26)))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "MAE" in line)
    assert re.search(r"MAE\s.*RMSE\s.*MASE\s.*sMAPE %\s.*MAPE %", header)
    rows = [re.split(r"\s*[│┃]\s*", line.strip("│ ")) for line in text.splitlines() if " val " in line
            or " test " in line]
    assert [(r[0], r[1]) for r in rows] == [
        ("model", "val"), ("naive", "val"), ("drift (best)", "val"), ("ets ETS(A,Ad,N)", "val"),
        ("model", "test"), ("naive", "test"), ("drift", "test"), ("ets ETS(A,Ad,N) (best)", "test")]
    assert rows[-1][2:5] == ["0.2", "0.2", "0.1"]  # MAE, RMSE, MASE of ETS on test


def test_report_key_metrics_mark_the_best_row(tmp_path):
    _summary(tmp_path / "r", 0.1)
    html, _ = render_report(tmp_path / "r")
    table = html[html.index("Key metrics"):]
    table = table[: table.index("</table>")]
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert heads[:7] == ["model / baseline", "split", "MAE", "RMSE", "MASE", "sMAPE %", "MAPE %"]
    best = re.findall(r'<tr class="([^"]*best[^"]*)"><td class="l">([^<]*)</td><td class="l">(\w+)', table)
    assert best == [("model best", "model (best)", "val"), ("model best", "model (best)", "test")]
    assert "ets ETS(A,Ad,N)" in table


def test_compare_ranks_the_baselines_among_the_runs(tmp_path, capsys):
    for i, mae in enumerate((0.3, 0.1, 0.5)):
        _summary(tmp_path / "sweep" / str(i), mae)
    plain = compare([str(tmp_path / "sweep")], output=tmp_path / "c0")["table"]
    assert list(plain["status"]) == ["completed"] * 3  # no baselines unless asked
    assert run([str(tmp_path / "sweep")], metric="test_mase", output=tmp_path / "c", use_baselines=True) == 0
    table = pd.read_csv(tmp_path / "c" / "comparison.csv")
    # the runs share their baselines: each shows once, ranked among the runs
    assert list(zip(table["rank"], table["run"].astype(str), strict=True)) == [
        (1, "1"), (2, "baseline: ets ETS(A,Ad,N)"), (3, "0"), (4, "baseline: naive"), (5, "baseline: drift"),
        (6, "2")]
    assert list(table["status"]) == ["completed", "baseline", "completed", "baseline", "baseline", "completed"]
    assert table.loc[1, "test_mase"] == 0.1 and table.loc[1, "val_mae"] == 0.28
    assert list(table.columns[:5]) == ["rank", "run", "status", "included", "overrides"]
    out = capsys.readouterr().out
    assert "Best baseline on test_mase: ets ETS(A,Ad,N) (0.1); 1 of 3 completed runs beat it." in out
    # the runs' constant config is the caption, not a column the baselines' blanks would make "vary"
    assert "all runs: arch.cell=gru" in out and "seed=0" in out


def test_compare_shows_differing_baselines_per_run(tmp_path):
    _summary(tmp_path / "a", 0.3)
    _summary(tmp_path / "b", 0.3, baselines={"naive": {"val_metrics": _m(0.9), "test_metrics": _m(0.9)}})
    table = compare([str(tmp_path / "a"), str(tmp_path / "b")], output=tmp_path / "c", use_baselines=True)["table"]
    names = list(table["run"])
    assert "baseline: naive (a)" in names and "baseline: naive (b)" in names
    assert "baseline: drift" in names  # only one run has it: no run label
