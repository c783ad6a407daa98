"""`rnnlab compare RUN_DIR|SWEEP_DIR|GLOB ...`: rank runs, overlay their loss curves, test groups, ensemble.

Inputs: run folders (a folder with summary.json or .hydra/config.yaml), multirun folders
(0/, 1/, ...) and any folder holding runs (searched up to 3 levels down, not inside runs),
or glob patterns (expanded here too, so they work quoted). Runs that did not complete
(failed, diverged, interrupted, still running, no summary) are listed with their status
and left out of the ranking, the group statistics and the ensemble.

Written into --output (default ``./comparison/``, created):

* ``comparison.csv``: one row per run, ranked by the metric (completed runs first);
* ``loss_curves.png``: train and validation loss of every run, labelled by the overrides
  that tell the runs apart;
* ``comparison_groups.csv`` (``--by KEY``): per value of a config key, n, mean and std
  (n-1) of the metric, and Welch's t-test and the Mann-Whitney U test (two-sided, from
  scipy.stats) of the best group against each other group; n < 2 gives no test;
* ``ensemble.json`` (``--ensemble``): the test metrics of the averaged predictions.

``--baselines`` adds the runs' baselines (forecasting: naive, seasonal naive, drift, mean,
ETS) as rows "baseline: NAME", ranked among the runs (rnnlab/commands/compare_baselines.py).

Bad input gives one line ``Error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.analysis.main_metric import HIGHER_IS_BETTER, LOWER_IS_BETTER
from rnnlab.analysis.main_metric import MAIN_METRIC as DEFAULT_METRIC
from rnnlab.analysis.main_metric import higher_is_better as direction
from rnnlab.runtime.io import write_csv, write_json

MAX_DEPTH = 3
DEFAULT_OUTPUT = "comparison"
CONFIG_KEYS = ("arch.cell", "arch.hidden_size", "optim.name", "optim.lr", "reg.name", "seed")
SHOWN_METRICS = {"regression": ("mse", "rmse", "mae", "mase", "smape", "mape", "r2"),
                 "classification": ("accuracy", "f1", "roc_auc")}
RUN_COLUMNS = ("best_epoch", "epochs_run", "runtime_s", "n_params")
BASELINE = "baseline"  # the status of --baselines rows (rnnlab/commands/compare_baselines.py)
_MISSING = object()


class CompareError(ValueError):
    """Bad input: reported as one line and exit code 2."""


@dataclass
class Run:
    path: Path
    summary: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    # Hydra's group choices (arch: bilstm, optim: adam, ...) from .hydra/hydra.yaml, when present
    choices: dict = field(default_factory=dict)
    status: str = "no summary"
    label: str = ""

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def family(self) -> str | None:
        task = self.summary.get("task")
        if task is None:
            return None
        return "regression" if task == "regression" else "classification"

    def metric(self, name: str) -> float:
        split, metric = name.split("_", 1)
        value = (self.summary.get(f"{split}_metrics") or {}).get(metric)
        return float(value) if isinstance(value, int | float) else math.nan


# ----------------------------------------------------------------------------- collecting runs


def is_run_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / ".hydra" / "config.yaml").is_file()


def _runs_below(folder: Path, depth: int = 0) -> list[Path]:
    """Run folders in folder (not below a run), up to MAX_DEPTH levels; numeric names in numeric order."""
    if is_run_dir(folder):
        return [folder]
    if depth >= MAX_DEPTH:
        return []
    try:
        children = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []
    children.sort(key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name))
    return [r for c in children for r in _runs_below(c, depth + 1)]


def collect_runs(inputs: list[str]) -> list[Path]:
    """The run folders named by the inputs (folders or glob patterns), each once, in the order found."""
    if not inputs:
        raise CompareError("give at least one run folder, sweep folder or glob")
    found: list[Path] = []
    for item in inputs:
        if glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            runs = [r for m in matches if Path(m).is_dir() for r in _runs_below(Path(m))]
            if not runs:
                raise CompareError(f"no run folders matching {item}")
        else:
            path = Path(item)
            if not path.exists():
                raise CompareError(f"{item} does not exist")
            if not path.is_dir():
                raise CompareError(f"{item} is not a folder (give a run folder, a sweep folder or a glob)")
            runs = _runs_below(path)
            if not runs:
                raise CompareError(f"no run folders in {item} (looked {MAX_DEPTH} levels down for summary.json)")
        found += runs
    unique: dict[Path, Path] = {}
    for r in found:
        unique.setdefault(r.resolve(), r)
    return list(unique.values())


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def load_run(path: Path) -> Run:
    run = Run(path=path)
    from rnnlab.record import summary as summary_file

    try:
        run.summary = summary_file.read(path)
        run.status = str(run.summary.get("status", "unknown"))
    except FileNotFoundError:
        run.summary, run.status = {}, "no summary"
    except (OSError, ValueError, TypeError) as exc:  # the reason names the file (and the key of a wrong type)
        file = str(path / "summary.json")
        reason = str(exc) if str(exc).startswith(file) else f"{file}: {exc}"
        run.summary, run.status = {"message": reason}, "unreadable summary"
    cfg = _load_yaml(path / ".hydra" / "config.yaml")
    run.config = cfg if isinstance(cfg, dict) else {}
    ovr = _load_yaml(path / ".hydra" / "overrides.yaml")
    run.overrides = [str(o) for o in ovr] if isinstance(ovr, list) else []
    hyd = _load_yaml(path / ".hydra" / "hydra.yaml")
    choices = config_value(hyd, "hydra.runtime.choices") if isinstance(hyd, dict) else _MISSING
    run.choices = {str(k): v for k, v in choices.items()} if isinstance(choices, dict) else {}
    if "task" not in run.summary and "task" in run.config:
        run.summary["task"] = run.config["task"]
    return run


def config_value(cfg: dict, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def group_value(run: Run, key: str) -> Any:
    """The run's value of a --by key; a config group (--by arch) is the option it chose (bilstm)."""
    if key in run.choices and run.choices[key] is not None:
        return run.choices[key]
    return config_value(run.config, key)


def _label_runs(runs: list[Run]) -> None:
    """run.label: the path below the runs' common parent (the folder name for a single run)."""
    paths = [r.path.resolve() for r in runs]
    parent = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0].parent
    if len(paths) > 1 and parent in paths:  # one run folder inside another: keep its name visible
        parent = parent.parent
    for r, p in zip(runs, paths, strict=True):
        r.label = p.relative_to(parent).as_posix() or p.name


def distinguishing_overrides(runs: list[Run]) -> dict[int, str]:
    """The overrides of each run that not every run shares, joined by spaces."""
    common = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    return {id(r): " ".join(o for o in r.overrides if o not in common) for r in runs}


# ----------------------------------------------------------------------------- metrics


def parse_metric(name: str | None, family: str) -> str:
    """'mse' / 'test_mse' / 'test.mse' / 'val_mse' -> 'test_mse' / 'val_mse'."""
    if not name:
        return DEFAULT_METRIC[family]
    name = name.strip().replace(".", "_", 1) if name.startswith(("test.", "val.")) else name.strip()
    if not name.startswith(("test_", "val_")):
        name = f"test_{name}"
    return name


def higher_is_better(metric: str) -> bool:
    found = direction(metric.split("_", 1)[1])
    if found is None:
        raise CompareError(f"do not know whether a higher {metric} is better "
                           f"(known: {', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))})")
    return found


def _metric_names(run: Run) -> set[str]:
    return {f"{split}_{k}" for split in ("test", "val")
            for k, v in (run.summary.get(f"{split}_metrics") or {}).items() if isinstance(v, int | float)}


def _sort_key(value: float, higher: bool) -> tuple[int, float]:
    if not math.isfinite(value):
        return (1, 0.0)
    return (0, -value if higher else value)


# ----------------------------------------------------------------------------- groups (--by)


def group_stats(runs: list[Run], key: str, metric: str, higher: bool) -> list[dict]:
    """Per value of the config key: n, mean, std (n-1); Welch's t and Mann-Whitney U of the best group vs each."""
    import numpy as np
    from scipy import stats

    groups: dict[str, list[float]] = {}
    for r in runs:
        v = group_value(r, key)
        label = "(missing)" if v is _MISSING else (json.dumps(v) if isinstance(v, list | dict) else str(v))
        value = r.metric(metric)
        if math.isfinite(value):
            groups.setdefault(label, []).append(value)
    if not groups:
        raise CompareError(f"no completed run has a finite {metric} to group by {key}")
    rows = []
    for label, values in groups.items():
        a = np.asarray(values, dtype=np.float64)
        rows.append({"key": key, "value": label, "n": len(a), "mean": float(a.mean()),
                     "std": float(a.std(ddof=1)) if len(a) > 1 else math.nan, "values": a})
    rows.sort(key=lambda g: _sort_key(g["mean"], higher))
    best = rows[0]
    for g in rows:
        g.update(best=g is best, welch_t=math.nan, welch_p=math.nan, mannwhitney_u=math.nan,
                 mannwhitney_p=math.nan, note="")
        if g is best:
            g["note"] = "best group" + (" (n < 2: no tests)" if g["n"] < 2 else "")
            continue
        if g["n"] < 2 or best["n"] < 2:
            g["note"] = "n < 2: no tests"
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # constant groups: scipy warns and returns nan
            t = stats.ttest_ind(best["values"], g["values"], equal_var=False)
            u = stats.mannwhitneyu(best["values"], g["values"], alternative="two-sided")
        g.update(welch_t=float(t.statistic), welch_p=float(t.pvalue),
                 mannwhitney_u=float(u.statistic), mannwhitney_p=float(u.pvalue), note=f"vs {best['value']}")
    for g in rows:
        g.pop("values")
    return rows


# ----------------------------------------------------------------------------- ensemble


def ensemble(runs: list[Run]) -> dict:
    """Average the runs' test predictions (predictions.csv): mean prediction, or soft vote on probabilities."""
    import numpy as np
    import pandas as pd

    from rnnlab.analysis import metrics as mt

    if len(runs) < 2:
        raise CompareError(f"--ensemble needs at least 2 completed runs ({len(runs)} completed)")
    frames = []
    for r in runs:
        p = r.path / "predictions.csv"
        try:
            frames.append(pd.read_csv(p))
        except FileNotFoundError:
            raise CompareError(f"--ensemble: {r.label} has no predictions.csv") from None
        except (OSError, ValueError) as exc:
            raise CompareError(f"--ensemble: cannot read {p}: {exc.__class__.__name__}") from None
    first, ref = frames[0], runs[0].label
    for r, f in zip(runs[1:], frames[1:], strict=True):
        if len(f) != len(first):
            raise CompareError(f"--ensemble: the runs' test sets differ ({ref}: {len(first)} rows, "
                               f"{r.label}: {len(f)} rows)")
        if "target" not in f or not np.allclose(f["target"].to_numpy(np.float64),
                                                first["target"].to_numpy(np.float64), rtol=1e-9, atol=1e-12):
            raise CompareError(f"--ensemble: the runs' test sets differ (the targets of {ref} and {r.label})")
    target = first["target"].to_numpy()
    family = runs[0].family
    if family == "regression":
        if not all("prediction" in f for f in frames):
            raise CompareError("--ensemble: a predictions.csv has no prediction column")
        pred = np.mean([f["prediction"].to_numpy(np.float64) for f in frames], axis=0)
        metrics = mt.regression_metrics(target, pred, mase_scale=runs[0].summary.get("mase_scale"))
        how = "mean prediction per (sample, horizon)"
    elif all("prob" in f for f in frames):
        prob = np.mean([f["prob"].to_numpy(np.float64) for f in frames], axis=0)
        metrics = mt.binary_metrics(target, prob, 0.5)
        how = "soft vote: mean probability, threshold 0.5"
    else:
        cols = [c for c in first.columns if c.startswith("prob_")]
        if not cols or any([c for c in f.columns if c.startswith("prob_")] != cols for f in frames):
            raise CompareError("--ensemble: the runs' predictions.csv have different probability columns")
        probs = np.mean([f[cols].to_numpy(np.float64) for f in frames], axis=0)
        metrics = mt.multiclass_metrics(target, probs)
        how = "soft vote: mean class probabilities, argmax"
    return {"members": [r.label for r in runs], "paths": [str(r.path) for r in runs], "method": how,
            "n": len(runs), "test_metrics": metrics}


# ----------------------------------------------------------------------------- the comparison


def compare(inputs: list[str], by: str | None = None, metric: str | None = None,
            output: str | Path | None = None, use_ensemble: bool = False, use_baselines: bool = False) -> dict:
    """Collect, rank, write the files; returns what was computed (frames, groups, ensemble, paths)."""
    import pandas as pd

    runs = [load_run(p) for p in collect_runs(inputs)]
    _label_runs(runs)
    family = _family(runs)
    done = [r for r in runs if r.completed]
    metric = parse_metric(metric, family)
    higher = higher_is_better(metric)
    _check_metric_and_key(done, metric, by)

    done.sort(key=lambda r: _sort_key(r.metric(metric), higher))
    ordered = done + [r for r in runs if not r.completed]
    metric_cols = [f"{s}_{m}" for s in ("test", "val") for m in SHOWN_METRICS[family]]
    if metric not in metric_cols:
        metric_cols.insert(0, metric)
    rows = [_row(rank, r, metric_cols) for rank, r in enumerate(ordered, 1)]
    columns = list(rows[0])
    if use_baselines:
        from rnnlab.commands.compare_baselines import baseline_rows, rerank

        rows = rerank([*rows, *baseline_rows(done, metric_cols)], metric, lambda v: _sort_key(v, higher))
    table = pd.DataFrame(rows, columns=columns)
    table["rank"] = table["rank"].astype("Int64")

    out_dir = Path(output) if output is not None else Path(DEFAULT_OUTPUT)
    result: dict[str, Any] = {"runs": ordered, "table": table, "metric": metric, "higher_is_better": higher,
                              "family": family, "output": out_dir, "distinct": distinguishing_overrides(runs)}
    if by:
        result["groups"] = pd.DataFrame(group_stats(done, by, metric, higher))
    if use_ensemble:
        result["ensemble"] = ensemble(done)
    result["files"] = _write_files(result, runs, out_dir)
    return result


def _family(runs: list[Run]) -> str:
    """The task family every run shares (regression, binary, ...); runs of different tasks are refused."""
    families: dict[str, list[Run]] = {}
    for r in runs:
        if r.family:
            families.setdefault(r.family, []).append(r)
    if len(families) > 1:
        parts = [f"{len(rs)} {fam} ({rs[0].label}{', ...' if len(rs) > 1 else ''})" for fam, rs in families.items()]
        raise CompareError(f"runs of different tasks: {' vs '.join(parts)}; compare runs of one task")
    return next(iter(families), "regression")


def _check_metric_and_key(done: list[Run], metric: str, by: str | None) -> None:
    if done:
        common = set.intersection(*(_metric_names(r) for r in done))
        if not common:
            raise CompareError("no common metric: the completed runs share no test or val metric")
        if metric not in common:
            raise CompareError(f"metric {metric} is not in every completed run (common: {', '.join(sorted(common))})")
    if by and not done:
        raise CompareError(f"--by {by}: no completed runs to group")
    if by and all(group_value(r, by) is _MISSING for r in done):
        raise CompareError(f"--by {by}: no run has the config key {by}")


def _row(rank: int, r: Run, metric_cols: list[str]) -> dict[str, Any]:
    """One run's row of comparison.csv: rank (completed runs), config keys, metrics, run columns."""
    row: dict[str, Any] = {"rank": rank if r.completed else None, "run": r.label, "status": r.status,
                           "included": r.completed, "overrides": " ".join(r.overrides)}
    for k in CONFIG_KEYS:
        v = config_value(r.config, k)
        row[k] = None if v is _MISSING else v
    row.update({c: r.metric(c) for c in metric_cols})
    row.update({c: r.summary.get(c) for c in RUN_COLUMNS})
    row["message"] = r.summary.get("message")
    row["path"] = str(r.path)
    return row


def _write_files(result: dict, runs: list[Run], out_dir: Path) -> list[Path]:
    files = [write_csv(out_dir / "comparison.csv", result["table"])]
    if "groups" in result:
        files.append(write_csv(out_dir / "comparison_groups.csv", result["groups"]))
    if "ensemble" in result:
        files.append(write_json(out_dir / "ensemble.json", result["ensemble"]))
    curves = loss_curves(runs, result["distinct"], out_dir / "loss_curves.png")
    if curves is not None:
        files.append(curves)
    return files


def loss_curves(runs: list[Run], distinct: dict[int, str], path: Path) -> Path | None:
    """Train and validation loss per epoch of every run with a metrics.csv (dashed: runs left out)."""
    import pandas as pd

    from rnnlab.record import metrics_log

    curves = []
    for r in runs:
        try:
            m = metrics_log.read(r.path)
        except (OSError, ValueError):
            continue
        if {"epoch", "train_loss", "val_loss"} <= set(m.columns) and len(m):
            curves.append((r, m))
    if not curves:
        return None
    labels = [distinct[id(r)] or r.label for r, _ in curves]
    if len(set(labels)) < len(labels):
        labels = [f"{r.label}: {lab}" if lab != r.label else lab for (r, _), lab in zip(curves, labels, strict=True)]

    from matplotlib.ticker import MaxNLocator

    from rnnlab.report.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for (r, m), lab in zip(curves, labels, strict=True):
        style = "-" if r.completed else "--"
        extra = "" if r.completed else f" [{r.status}]"
        line = axes[0].plot(m["epoch"], m["train_loss"], style, marker=".", label=lab + extra)[0]
        axes[1].plot(m["epoch"], m["val_loss"], style, marker=".", color=line.get_color(), label=lab + extra)
    values = pd.concat([m[c] for _, m in curves for c in ("train_loss", "val_loss")])
    for ax, title in zip(axes, ("Train loss", "Validation loss"), strict=True):
        if (values > 0).all():
            ax.set_yscale("log")
        ax.set(xlabel="epoch", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- printing


def _fmt(v: Any) -> str:
    import pandas as pd

    if v is None or (not isinstance(v, list | dict | tuple) and pd.isna(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_result(result: dict, console=None) -> None:
    from rnnlab.report.console import make_console

    console = console or make_console(stderr=False)
    tbl = result["table"]
    console.print(_ranking_table(result))
    _print_notes(console, result, tbl)
    groups = result.get("groups")
    if groups is not None:
        console.print(_groups_table(groups, result["metric"]))
        if (groups["n"] < 2).any():
            console.print("Groups with n < 2 have no std and no tests ('-').")
    for f in result["files"]:
        console.print(str(f), highlight=False, soft_wrap=True)


def _ranking_table(result: dict):
    """Runs (and baselines) ranked by the metric; config keys that vary get columns, the rest the caption."""
    from rich.markup import escape
    from rich.table import Table

    metric, tbl = result["metric"], result["table"]
    arrow = "higher is better" if result["higher_is_better"] else "lower is better"
    shown = [c for c in tbl.columns if c.startswith("test_") or c == metric]
    # config keys with one value in every run go into the caption, not into columns (baseline rows have none)
    runs_tbl = tbl[tbl["status"] != BASELINE]
    varying = [k for k in CONFIG_KEYS if runs_tbl[k].astype(str).nunique() > 1]
    constant = [f"{k}={_fmt(runs_tbl[k].iloc[0])}" for k in CONFIG_KEYS
                if k not in varying and runs_tbl[k].notna().any()]
    n_base = int((tbl["status"] == BASELINE).sum())
    t = Table(title=f"{len(tbl) - n_base} runs{f' and {n_base} baselines' if n_base else ''} ({result['family']}), "
                    f"ranked by {metric} ({arrow})",
              caption=("all runs: " + ", ".join(constant)) if constant else None)
    for c in ["#", "run", "status", "overrides", *varying, *shown, *RUN_COLUMNS]:
        t.add_column(c, justify="right" if c in ("#", *shown, *RUN_COLUMNS, "seed") else "left",
                     overflow="fold", min_width=9 if c == "status" else None)
    by_label = {r.label: r for r in result["runs"]}
    ens = result.get("ensemble")
    for i, row in tbl.iterrows():
        r = by_label.get(row["run"])  # None: a baseline row
        status = row["status"] if row["included"] else f"[red]{row['status']}[/red] (excluded)"
        style = "bold" if i == 0 and row["included"] else None
        if r is None:
            style = "bold italic" if style else "italic"
        t.add_row(_fmt(row["rank"]), escape(row["run"]), status, (result["distinct"][id(r)] if r else "") or "-",
                  *(_fmt(row[k]) for k in varying), *(_fmt(row[c]) for c in shown),
                  *(_fmt(row[c]) for c in RUN_COLUMNS), style=style)
        if ens is not None and i == 0:
            t.add_row("E", f"ensemble of {ens['n']}", "ensemble", "-", *("-" for _ in varying),
                      *(_fmt(ens["test_metrics"].get(c[5:])) if c.startswith("test_") else "-" for c in shown),
                      *("-" for _ in RUN_COLUMNS), style="cyan")
    return t


def _print_notes(console, result: dict, tbl) -> None:
    """The lines under the ranking: the baselines' verdict, the ensemble, what was excluded and why."""
    from rich.markup import escape

    if (tbl["status"] == BASELINE).any():
        from rnnlab.commands.compare_baselines import verdict

        line = verdict(tbl, result["metric"], result["higher_is_better"])
        if line:
            console.print(line, highlight=False, soft_wrap=True)
    ens = result.get("ensemble")
    if ens is not None:
        console.print(f"Ensemble (row E, beside the best run): {ens['method']} over {ens['n']} completed runs.")
    excluded = tbl[~tbl["included"]]
    if len(excluded):
        listing = ", ".join(f"{r} ({s})" for r, s in zip(excluded["run"], excluded["status"], strict=True))
        console.print(f"Excluded from the ranking and the statistics: {listing}")
        for message in excluded.loc[excluded["status"] == "unreadable summary", "message"]:
            console.print(f"unreadable summary: {escape(str(message))}", soft_wrap=True, highlight=False)
    if not tbl["included"].any():
        console.print("No completed runs: nothing to rank.")


def _groups_table(groups, metric: str):
    from rich.table import Table

    g = Table(title=f"{metric} by {groups['key'].iloc[0]} (best group first)",
              caption="tests of the best group vs each: Welch's t-test and Mann-Whitney U, two-sided")
    for c in ("value", "n", "mean", "std", "Welch t", "Welch p", "MWU U", "MWU p", "note"):
        g.add_column(c, justify="left" if c in ("value", "note") else "right", overflow="fold")
    for _, row in groups.iterrows():
        g.add_row(str(row["value"]), str(row["n"]), _fmt(row["mean"]), _fmt(row["std"]),
                  *(_fmt(row[c]) for c in ("welch_t", "welch_p", "mannwhitney_u", "mannwhitney_p")),
                  row["note"], style="bold" if row["best"] else None)
    return g


def run(inputs: list[str], by: str | None = None, metric: str | None = None,
        output: str | Path | None = None, use_ensemble: bool = False, use_baselines: bool = False) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    try:
        result = compare(inputs, by=by, metric=metric, output=output, use_ensemble=use_ensemble,
                         use_baselines=use_baselines)
    except CompareError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"Error: cannot write {output or DEFAULT_OUTPUT}: {exc.strerror or exc.__class__.__name__}",
              file=sys.stderr)
        return 2
    print_result(result)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
