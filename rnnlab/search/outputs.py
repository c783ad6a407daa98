"""What a search leaves in its folder, rebuilt from the study after every run (and after Ctrl-C).

* the ranked Rich table, and ``trials.csv`` with every trial (complete, pruned, failed, running);
* ``best_config.yaml``: the full composed config of the best trial;
* ``experiment/best.yaml``: the same as a ``# @package _global_`` delta, so
  ``rnnlab train -cd <folder> experiment=best`` trains the best trial again;
* ``search_summary.json``: counts, the best value and parameters, seconds spent, pruning savings;
* ``optimization_history.png`` and ``param_importances.png`` (Optuna's matplotlib plots).

Everything is read back from the study (the storage), not from this process's memory,
so the trials of other workers and machines are included.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from rnnlab.report.tables import fmt_cell
from rnnlab.runtime.io import atomic_write, write_csv, write_text
from rnnlab.search import retry
from rnnlab.search.retry import INTERRUPTED
from rnnlab.search.space import format_value

STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
               "WAITING": "waiting"}
STATES = ("complete", "pruned", "failed", "interrupted", "lost", "running", "waiting")  # counted in the summary
MAX_TABLE_ROWS = 30


def _attr(t, key: str, default: Any = None) -> Any:
    return t.user_attrs.get(key, default)


def _state(t) -> tuple[str, str | None]:
    """(state, reason): Optuna's FAIL is told apart as failed, interrupted (a signal) or lost (no heartbeat)."""
    state = STATE_NAMES.get(t.state.name, t.state.name.lower())
    reason = _attr(t, "reason") or (_attr(t, "message") if state == "pruned" else None)
    if state == "failed" and _attr(t, "status") == INTERRUPTED:
        return "interrupted", reason
    if state == "failed" and "reason" not in t.user_attrs:  # failed by a worker's heartbeat check: no words of its own
        return "lost", "its worker stopped sending heartbeats (killed, or its machine lost)"
    return state, reason


def trial_rows(study, metric: str) -> list[dict[str, Any]]:
    """One dict per trial, ranked: completed by value, then pruned (furthest first), then the rest."""
    minimize = study.direction.name == "MINIMIZE"
    trials = study.get_trials(deepcopy=False)
    retried_by = retry.retried_by(trials)
    rows = []
    for t in trials:
        state, reason = _state(t)
        if t.number in retried_by:
            reason = f"{reason or state}; retried as trial {retried_by[t.number]}"
        elif reason is None and retry.retried_trial(t) is not None:
            reason = f"retries trial {retry.retried_trial(t)}"
        seconds = _attr(t, "seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        epochs = _attr(t, "epochs_run", len(t.intermediate_values) or None)
        planned = _attr(t, "epochs_planned")
        rows.append({
            "trial": t.number, "state": state, metric: t.value if state == "complete" else None,
            **{f"params.{k}": v for k, v in t.params.items()},
            "epochs_run": epochs, "epochs_planned": planned, "seconds": seconds,
            "seconds_per_epoch": _attr(t, "seconds_per_epoch"),
            "pruner_last_value": t.intermediate_values[t.last_step] if t.last_step is not None else None,
            "reason": reason, "retry_of": retry.retried_trial(t),
            "run_dir": _attr(t, "run_dir"),
        })

    def key(r):
        sign = 1 if minimize else -1
        if r["state"] == "complete":
            return (0, sign * r[metric], r["trial"])
        if r["state"] == "pruned":
            last = r["pruner_last_value"] if r["pruner_last_value"] is not None else math.inf
            return (1, -(r["epochs_run"] or 0), sign * last, r["trial"])
        return (2, 0, r["trial"])

    rows.sort(key=key)
    rank = 0
    for r in rows:
        rank += r["state"] == "complete"
        r["rank"] = rank if r["state"] == "complete" else None
    return rows


def _fmt(v: Any) -> str:
    return fmt_cell(v, format_value)


def ranked_table(rows: list[dict[str, Any]], metric: str, study_name: str) -> Table:
    param_cols = list(dict.fromkeys(k for r in rows for k in r if k.startswith("params.")))
    table = Table(title=f"Study {escape(study_name)}: {len(rows)} trials", title_justify="left")
    for col in ("rank", "trial", "state", metric, *(c[7:] for c in param_cols), "epochs", "seconds", "note"):
        table.add_column(escape(col), overflow="fold", min_width=min(len(col), 12) if col != "note" else 8)
    colours = {"complete": "green", "pruned": "yellow", "failed": "red", "interrupted": "yellow", "lost": "yellow"}
    for r in rows[:MAX_TABLE_ROWS]:
        c = colours.get(r["state"], "white")
        epochs = "-" if r["epochs_run"] is None else f"{r['epochs_run']}/{r['epochs_planned'] or '?'}"
        note = r["reason"] if r["state"] != "complete" else ""
        table.add_row(_fmt(r["rank"]), str(r["trial"]), f"[{c}]{r['state']}[/]", _fmt(r[metric]),
                      *(escape(_fmt(r.get(p))) for p in param_cols), epochs,
                      "-" if r["seconds"] is None else f"{r['seconds']:.1f}", escape(note or ""))
    if len(rows) > MAX_TABLE_ROWS:
        table.caption = f"{len(rows) - MAX_TABLE_ROWS} more trials in trials.csv"
    return table


def summary(study, rows: list[dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    """search_summary.json: the best trial, counts, seconds, and what pruning saved."""
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    secs = {s: sum(r["seconds"] or 0.0 for r in rows if r["state"] == s) for s in ("complete", "pruned", "failed")}
    pruned = [r for r in rows if r["state"] == "pruned" and r["epochs_run"] and r["epochs_planned"]]
    epochs_saved = sum(r["epochs_planned"] - r["epochs_run"] for r in pruned)
    # A pruned trial would have gone on at its own pace per epoch (setup and test time it paid anyway).
    seconds_saved = sum((r["seconds_per_epoch"] or (r["seconds"] or 0.0) / r["epochs_run"])
                        * (r["epochs_planned"] - r["epochs_run"]) for r in pruned)
    best = next((r for r in rows if r["state"] == "complete"), None)
    out = {
        **info,
        "n_trials": len(rows),
        **counts,
        "best": None if best is None else {
            "trial": best["trial"], "value": best[info["metric"]],
            "params": {k[7:]: v for k, v in best.items() if k.startswith("params.")},
            "epochs_run": best["epochs_run"], "run_dir": best["run_dir"],
        },
        "total_trial_seconds": sum(secs.values()),
        "complete_trial_seconds": secs["complete"],
        "pruned_trial_seconds": secs["pruned"],
        "failed_trial_seconds": secs["failed"],
        "epochs_run": sum(r["epochs_run"] or 0 for r in rows),
        "epochs_saved_by_pruning": epochs_saved,
        "estimated_seconds_saved_by_pruning": seconds_saved,
    }
    return out


def write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    whole = ("rank", "epochs_run", "epochs_planned", "retry_of")
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["trial", "state", *whole])  # a study with no trial
    for col in whole:  # whole numbers with gaps, not floats
        frame[col] = frame[col].astype("Int64")
    first = ["rank", "trial", "state"]
    write_csv(path, frame[first + [c for c in frame.columns if c not in first]])


def write_best(folder: Path, study, console) -> str | None:
    """best_config.yaml and experiment/best.yaml of the best trial; returns the command that reproduces it."""
    import yaml
    from omegaconf import OmegaConf

    from rnnlab.config.validate import ConfigError
    from rnnlab.search.compose import DISPLAY_KEYS, compose_experiment, experiment_delta, flatten

    try:
        best = study.best_trial
    except ValueError:  # no completed trial
        return None
    overrides = best.user_attrs.get("overrides")
    if overrides is None:
        return None
    try:
        full, body = experiment_delta(list(overrides))
    except ConfigError as exc:
        console.print(f"[yellow]Note:[/] best config not written: {escape(str(exc))}")
        return None
    metric = study.user_attrs.get("metric", "objective")
    write_text(folder / "best_config.yaml",
               f"# Best trial {best.number} of study {study.study_name}: {metric}={best.value:.6g}\n"
               + OmegaConf.to_yaml(OmegaConf.create(full)))
    command = f"rnnlab train -cd {folder} experiment=best"
    header = (f"# @package _global_\n# Best trial {best.number} of study {study.study_name} "
              f"({metric}={best.value:.6g}), as a delta over conf/config.yaml.\n# Train it again: {command}\n")
    write_text(folder / "experiment" / "best.yaml", header + yaml.safe_dump(body, sort_keys=False))
    # The delta is computed, so check it: composing it must give the trial's config back.
    again = {k: v for k, v in flatten(compose_experiment(str(folder))).items() if k not in DISPLAY_KEYS}
    wanted = {k: v for k, v in flatten(full).items() if k not in DISPLAY_KEYS}
    if again != wanted:
        differ = sorted(k for k in set(again) | set(wanted) if again.get(k) != wanted.get(k))
        console.print(f"[yellow]Note:[/] experiment/best.yaml differs from the best trial at {', '.join(differ)}")
    return command


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"), mode="wb")


def write_plots(folder: Path, study, rows: list[dict[str, Any]], metric: str, console) -> list[str]:
    """optimization_history.png and, with enough completed trials, param_importances.png; notes otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as ovm

    written, notes = [], []
    complete = [r for r in rows if r["state"] == "complete"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        if complete:
            ax = ovm.plot_optimization_history(study, target_name=metric)
            _save(ax.figure, folder / "optimization_history.png")
            plt.close(ax.figure)
            written.append("optimization_history.png")
        else:
            notes.append("no optimization_history.png: no trial has completed")
        varying = [k for k in {k for r in complete for k in r if k.startswith("params.")}
                   if len({repr(r.get(k)) for r in complete}) > 1]
        if len(complete) < 2 or not varying:
            notes.append("no param_importances.png: it needs 2 completed trials whose parameters differ")
        else:
            try:
                # PED-ANOVA needs no scikit-learn (fANOVA, Optuna 4's default, does).
                ax = ovm.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), target_name=metric)
                _save(ax.figure, folder / "param_importances.png")
                plt.close(ax.figure)
                written.append("param_importances.png")
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                notes.append(f"no param_importances.png: {exc}")
    for n in notes:
        console.print(f"[yellow]Note:[/] {escape(n)}")
    return written
