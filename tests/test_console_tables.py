"""Rich output piped into a file or a CI log: wide enough not to cut the tables (rnnlab.report.console), and the
multirun table with every job's main metric (rnnlab.analysis.main_metric)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rnnlab.analysis.main_metric import main_metric
from rnnlab.commands import train as train_cmd
from rnnlab.commands.sweeper import Job, Plan
from rnnlab.record.summary import Summary
from rnnlab.report.console import WIDTH, make_console

ROOT = Path(__file__).resolve().parents[1]


def test_a_piped_console_is_wide_unless_columns_says_otherwise(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert make_console(file=io.StringIO()).width == WIDTH == 160
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console(file=io.StringIO()).width == 100
    assert make_console(file=io.StringIO(), width=70).width == 70


def test_every_console_comes_from_the_factory():
    made = [str(p.relative_to(ROOT)) for p in (ROOT / "rnnlab").rglob("*.py")
            if re.search(r"\bConsole\(", p.read_text()) and p.name != "console.py"]
    assert made == []


def _job(sweep: Path, num: int, overrides: list[str], **summary) -> Job:
    run_dir = sweep / str(num)
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(Summary(run_dir=str(run_dir), **summary).to_json())
    return Job(num, overrides, run_dir)


def test_the_multirun_table_shows_each_jobs_main_metric_uncut(tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)
    sweep = Path("outputs/train/multirun/2026-12-06_10-00-00")  # rows of 150 characters
    long = ["data.length=400", "data.n_in=12", "arch.hidden_size=8", "train.epochs=3"]
    mse = {"mse": 0.25, "rmse": 0.5, "mae": 0.4, "r2": 0.7}
    jobs = [_job(sweep, 0, [*long, "arch=rnn"], status="completed", task="regression", test_metrics=mse),
            _job(sweep, 1, [*long, "arch=lstm"], status="completed", task="regression",
                 test_metrics={**mse, "mse": 0.012345678}),
            _job(sweep, 2, [*long, "arch=gru"], status="diverged", task="regression", message="loss became nan")]
    buf = io.StringIO()
    assert train_cmd._multirun_result(Plan(sweep, resume=False, jobs=jobs), 0, make_console(file=buf)) == 1
    out = buf.getvalue()
    assert "…" not in out
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in out.splitlines() if ln.startswith("│")]
    header = next(ln for ln in out.splitlines() if ln.startswith("┃"))
    assert [c.strip() for c in header.split("┃")[1:-1]] == ["job", "overrides", "status", "test_mse", "run folder"]
    assert rows == [["0", " ".join([*long, "arch=rnn"]), "completed", "0.25", str(sweep / "0")],
                    ["1", " ".join([*long, "arch=lstm"]), "completed", "0.01235", str(sweep / "1")],
                    ["2", " ".join([*long, "arch=gru"]), "diverged", "-", str(sweep / "2")]]
    assert "bold: the best test_mse (lower is better)" in out


def test_the_main_metric_is_compares_default():
    from rnnlab.commands.compare import parse_metric

    assert main_metric({"task": "binary", "test_metrics": {"accuracy": 0.75, "f1": 0.5}}) == ("test_accuracy", 0.75)
    assert main_metric({"task": "multiclass", "test_metrics": None}) == ("test_accuracy", None)
    assert main_metric({"task": "regression", "test_metrics": {"mse": float("nan")}}) == ("test_mse", None)
    assert main_metric({"status": "failed"}) is None
    assert parse_metric(None, "regression") == "test_mse" and parse_metric(None, "classification") == "test_accuracy"

