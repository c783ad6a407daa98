"""`rnnlab cv`: cross-validate one config: a real Hydra multirun over cv.fold=0..k-1, then the fold table.

Before anything runs the overrides are validated as for `rnnlab train`, and the data set is
loaded once here to cut the folds (rnnlab/data/folds.py), so a fold count the data cannot hold
or a strategy that does not fit it is one line and exit code 2. Each fold is then an ordinary
training run (the train command's Hydra task) in <sweep>/<fold>/, whose data loader re-splits
train + val into that fold. Afterwards the folds' summary.json files give the table
(Rich and cv_results.csv, with mean and std over the completed folds), cv_summary.json and,
with train.plots, cv_folds.png, cv_loss.png and cv_predictions.png in the sweep folder.
`rnnlab cv --resume CV_DIR` runs the cv in that folder again: finished folds kept, interrupted
ones resumed, the others run (commands/sweep_resume.py), then the same table over every fold.

Folds whose run ended at chance level (summary.json `chance_check`, `warnings`) are counted and named under the
table (`chance_folds` in cv_summary.json).

Exit codes: 0 every fold completed, 1 a fold failed or diverged, 2 bad input, 130 (143) interrupted by
Ctrl-C (SIGTERM), after which no further fold starts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from rnnlab.commands import hydra_bridge as hb
from rnnlab.config.validate import ConfigError
from rnnlab.data import folds as F
from rnnlab.data import registry
from rnnlab.data.base import DataError
from rnnlab.report.console import make_console
from rnnlab.runtime import signals
from rnnlab.runtime.folders import check_dir, claim_new_dir, describe
from rnnlab.runtime.io import write_csv, write_json

SWEEP_ROOT = Path("outputs/cv")


# ----------------------------------------------------------------------------- the Hydra task (one fold)


def task(cfg):
    """Train one fold (the train command's task: after a Ctrl-C or SIGTERM no further fold starts); its
    summary.json gets the fold's `cv` entry. Returns its outcome."""
    from rnnlab.commands import train as train_cmd

    return train_cmd.task(cfg, hooks=[cv_entry(cfg)])


def cv_entry(cfg):
    """The recorder hook giving summary.json its `cv` entry: the fold as the data cut it (its sizes
    and ranges, from the loaded data's meta), or the config's fold for a run that never started."""
    fallback = {"fold": cfg.cv.fold, "k": cfg.cv.k, "strategy": cfg.cv.strategy}

    def hook(fit) -> dict:
        meta = getattr(getattr(fit, "task", None), "data", None)
        meta = getattr(meta, "meta", None) or {}
        return {"cv": meta.get("cv", fallback)}

    return hook


def _hydra_main():
    import hydra

    hb.setup()
    return hydra.main(config_path="pkg://rnnlab.conf", config_name="config", version_base="1.3")(task)


# ----------------------------------------------------------------------------- before launching


def _check_overrides(overrides: list[str]) -> None:
    """cv.fold is ours to sweep; other sweeps are refused (one config per cross-validation)."""
    from rnnlab.config.composition import parse

    for o in parse(overrides):
        key = o.get_key_element()
        if key == "cv.fold":
            raise ConfigError("rnnlab cv runs every fold itself: drop cv.fold (train one fold with "
                              "rnnlab train cv.fold=N)")
        if o.is_sweep_override() and not key.startswith(("hydra.", "hydra/")):
            raise ConfigError(f"rnnlab cv cross-validates one config, but {o.input_line} is a sweep: run "
                              f"rnnlab cv once per value, then rnnlab compare outputs/cv --by {key}")


def plan_folds(rc):
    """(data, resolved strategy, folds) of a validated RunConfig; the data is loaded as a fold's trainer does."""
    import numpy as np

    # The trainer's data stream is child 0 of SeedSequence(seed): the same series and splits as every fold.
    data_rng = np.random.default_rng(np.random.SeedSequence(rc.seed).spawn(1)[0])
    data = registry.load(rc.data, data_rng, np.dtype(rc.train.dtype))
    strategy, folds = F.plan(data, rc.cv, rc.seed, rc.data.name)
    return data, strategy, folds


def _sweep_dir(overrides: list[str], name: str | None) -> tuple[Path, list[str]]:
    """The sweep folder, and the override that sets it unless the user gave hydra.sweep.dir: a new one
    claimed (-2, -3, ... when a cv started in the same second has the name), or the given one checked.
    ConfigError naming the folder and the cause when it cannot be written."""
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.dir=")]
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S") + (f"_{name}" if name else "")
    sweep = Path(given[-1]) if given else SWEEP_ROOT / stamp
    try:
        if given:
            check_dir(sweep)
            return sweep, []
        sweep = claim_new_dir(sweep)
    except OSError as exc:
        raise ConfigError(f"sweep folder {describe(exc, sweep)}") from None
    return sweep, [f"hydra.sweep.dir='{sweep}'"]


# ----------------------------------------------------------------------------- the command


def run(args: list[str], console: Console | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.commands import sweep_resume, sweeper

    console = console or make_console()
    try:
        resume, args = sweep_resume.take_flag(args)
        if resume is not None:  # the cv in that folder again: finished folds kept, the others resumed or run
            if not sweep_resume.is_sweep(resume):
                raise ConfigError(f"--resume {resume}: not a cv folder (no multirun.yaml)")
            args = sweep_resume.resume_args(resume, args, command="cv", drop=("cv.fold",))
        flags, overrides = hb.split_args(args)
        if set(flags) & hb.INFO_FLAGS:  # --cfg, --info: print, run nothing
            from rnnlab.commands.train import run as train_run

            return train_run(args, console)
        _check_overrides(overrides)
        rc = hb.compose_and_validate(overrides, hb._flag_value(flags, ("--config-dir", "-cd")))
        data, strategy, folds = plan_folds(rc)
        launch = sweeper.launch_overrides(overrides, resume=resume is not None)
        sweep, extra = _sweep_dir(overrides, rc.name)  # last: it may create the folder
    except (ConfigError, DataError) as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    flags = ["-m", *(f for f in flags if f not in ("-m", "--multirun"))]
    fold_sweep = "cv.fold=" + ",".join(str(f.index) for f in folds)
    console.print(f"[bold]rnnlab cv[/]: {len(folds)} folds ({strategy}) of data '{escape(rc.data.name)}' "
                  f"into {escape(str(sweep))}/")
    hydra_code = 0
    try:
        hb.launch(_hydra_main(), "rnnlab cv", flags, [*overrides, fold_sweep, *extra, *launch])
    except SystemExit as exc:  # Hydra's own error (printed), or a job's bug re-raised after its batch ran
        hydra_code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM stopped a fold and the sweep: the folds so far are reported
        if not signals.received():
            raise
    plan = sweeper.last_plan()
    if plan is None and hydra_code:
        return hydra_code
    if plan is not None and plan.error:
        console.print(f"[red]Error:[/] {escape(plan.error)}", soft_wrap=True)
        return 2
    jobs = plan.jobs if plan else []
    sweep = plan.sweep_dir if plan else sweep
    bad_input = any(job.outcome().bad_input for job in jobs)
    code = _report(rc, data, strategy, folds, _fold_dirs(jobs, sweep, len(folds)), bad_input, sweep, overrides,
                   console)
    return signals.exit_code() if signals.received() else code


def _fold_dirs(jobs, sweep: Path, k: int) -> dict[int, str]:
    """Fold index -> run folder, from the sweep's jobs (their cv.fold override); else <sweep>/<fold>."""
    out: dict[int, str] = {}
    for job in jobs:
        for o in job.overrides:
            if o.startswith("cv.fold="):
                out[int(o.split("=", 1)[1])] = str(job.run_dir)
    for i in range(k):
        out.setdefault(i, str(sweep / str(i)))
    return dict(sorted(out.items()))


def _read_summary(run_dir: str) -> dict:
    from rnnlab.record import summary as summary_file

    try:
        return summary_file.read(run_dir).to_dict()
    except FileNotFoundError:
        return {"status": "missing"}
    except (OSError, ValueError, TypeError):
        return {"status": "unreadable summary"}


def _report(rc, data, strategy, folds, run_dirs, bad_input: bool, sweep: Path, overrides, console) -> int:
    from rnnlab.report import cv_results as R

    k = len(folds)
    summaries = {i: _read_summary(d) for i, d in run_dirs.items()}
    plan = {f.index: F.describe(f, k, strategy) for f in folds}
    rows = [R.fold_row(i, summaries[i], plan[i]) for i in range(k)]
    mean, std = R.aggregate(rows)
    write_csv(sweep / "cv_results.csv", R.results_frame(rows, mean, std))
    failed = [r["fold"] for r in rows if r["status"] != "completed"]
    out: dict[str, Any] = {
        "k": k, "strategy": strategy, "gap": F.resolve_gap(rc.cv, data, strategy), "seed": rc.seed,
        "preprocessing": R.preprocessing(list(summaries.values())),
        "data": rc.data.name, "overrides": overrides, "sweep_dir": str(sweep),
        "n_completed": k - len(failed), "failed_folds": failed,
        "n_dev": len(data.train) + len(data.val), "n_test": len(data.test),
        "mean": mean, "std": std,
        "folds": [{**r, "run_dir": run_dirs[r["fold"]], "cv": summaries[r["fold"]].get("cv") or plan[r["fold"]],
                   "message": summaries[r["fold"]].get("message"),
                   "warnings": summaries[r["fold"]].get("warnings") or []} for r in rows],
    }
    out["chance_folds"] = [r["fold"] for r in rows if r["status"] == "completed" and
                           (summaries[r["fold"]].get("chance_check") or {}).get("chance")]
    plots = _plots(rc, data, strategy, folds, out["folds"], sweep) if rc.train.plots else []
    out["plots"] = [p.name for p in plots]
    write_json(sweep / "cv_summary.json", out)
    title = f"Cross-validation: {k} folds ({strategy}) of data '{rc.data.name}'"
    console.print(R.results_table(rows, mean, std, escape(title)))
    if out["preprocessing"]:  # said once: every fold fits its scalers or vocabulary on its own training rows
        console.print(f"preprocessing: {escape(out['preprocessing'])}", soft_wrap=True)
    for r in out["folds"]:
        if r["status"] != "completed" and r.get("message"):
            console.print(f"fold {r['fold']} {r['status']}: {escape(str(r['message']))}", soft_wrap=True)
    _print_warnings(out["folds"], out["chance_folds"], console)
    console.print(f"written: {escape(str(sweep))}/cv_results.csv, cv_summary.json"
                  + "".join(f", {p.name}" for p in plots))
    return _exit_code(bad_input, rows)


def _print_warnings(fold_rows: list[dict], chance_folds: list[int], console) -> None:
    """Each fold's warnings (a fold at chance level says "completed" all the same), then the folds at chance level."""
    for r in fold_rows:
        for w in r["warnings"]:
            console.print(f"[yellow]fold {r['fold']} warning: {escape(str(w))}[/]", soft_wrap=True)
    if chance_folds:
        console.print(f"[yellow]{len(chance_folds)} of {len(fold_rows)} folds ended at chance level (fold "
                      f"{', '.join(map(str, chance_folds))}): their scores enter the mean as they are[/]",
                      soft_wrap=True)


def _plots(rc, data, strategy, folds, fold_rows, sweep: Path) -> list[Path]:
    from rnnlab.report import cv_plots

    made = [cv_plots.folds_plot(folds, len(data.train) + len(data.val), len(data.test), strategy,
                                sweep / "cv_folds.png")]
    for fn, name in ((cv_plots.loss_grid, "cv_loss.png"), (cv_plots.predictions_grid, "cv_predictions.png")):
        path = fn(fold_rows, sweep / name)
        if path is not None:
            made.append(path)
    return made


def _exit_code(bad_input: bool, rows: list[dict]) -> int:
    if bad_input:
        return 2
    statuses = {r["status"] for r in rows}
    if "interrupted" in statuses:
        return 130
    return 0 if statuses == {"completed"} else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
