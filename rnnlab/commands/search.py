"""`rnnlab search [SPACE] [--param KEY=SPEC ...] [options] [KEY=VALUE ...]`: Optuna over `rnnlab train`.

Order of work: read the space (file, then --param), the overrides and the options; check
all of it, composing every choice and both ends of every range once (one line and exit
code 2 for anything wrong, before any trial); open or resume the study in its RDB
storage; run the trials here or in --n-jobs worker processes; then write the outputs
from the study (also after Ctrl-C, which exits 130). Exit code 1 when no trial completed.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from rnnlab.runtime.io import write_json
from rnnlab.search import SearchError
from rnnlab.search.metric import check_metric, choose_direction
from rnnlab.search.space import grid_values, load_space_file, parse_cli

if TYPE_CHECKING:
    from rnnlab.search.objective import TrialSetup
    from rnnlab.search.study import StudySpec

DEFAULT_N_TRIALS = 20
SEARCH_DEFAULTS = ["train.progress=false", "train.plots=false"]  # trials run unattended; overrides may change it


@dataclass
class SearchOptions:
    space: str | None = None
    params: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    sampler: str = "tpe"
    n_trials: int | None = None
    timeout: float | None = None
    metric: str | None = None
    direction: str | None = None
    pruner: str = "median"
    pruner_startup: int = 5
    pruner_warmup: int = 2
    n_jobs: int = 1
    storage: str | None = None
    study_name: str | None = None
    output: str | None = None
    seed: int | None = None


def _check_options(o: SearchOptions) -> None:
    from rnnlab.config.validate import ConfigError, check_folder_name
    from rnnlab.search.study import PRUNERS, SAMPLERS

    if o.sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler '{o.sampler}' (choose from: {', '.join(SAMPLERS)})")
    if o.pruner not in PRUNERS:
        raise SearchError(f"unknown pruner '{o.pruner}' (choose from: {', '.join(PRUNERS)})")
    for name, value, low in (("--n-trials", o.n_trials, 0), ("--n-jobs", o.n_jobs, 1),
                             ("--pruner-startup", o.pruner_startup, 0), ("--pruner-warmup", o.pruner_warmup, 0),
                             ("--seed", o.seed, 0)):
        if value is not None and value < low:
            raise SearchError(f"{name} must be >= {low} (got {value})")
    if o.timeout is not None and not o.timeout > 0:
        raise SearchError(f"--timeout must be > 0 seconds (got {o.timeout})")
    if o.study_name is not None:
        try:
            check_folder_name(o.study_name, "--study-name")
        except ConfigError as exc:
            raise SearchError(str(exc)) from None


def _split_args(o: SearchOptions) -> tuple[str | None, list[str]]:
    """(space file or None, overrides): Typer hands a first KEY=VALUE to the SPACE argument."""
    space, args = o.space, list(o.args)
    if space is not None and "=" in space:
        space, args = None, [o.space, *args]
    for a in args:
        if a.startswith("-"):
            raise SearchError(f"unknown option '{a}' (see rnnlab search --help)")
    return space, args


@dataclass
class Plan:
    """The checked search: what the workers need, and what the outputs report."""
    spec: StudySpec
    setup: TrialSetup
    direction: str
    metric: str
    n_trials: int | None
    notes: list[str]


def plan(o: SearchOptions) -> Plan:
    """Check everything and open the study; SearchError (one line) on any bad input."""
    from rnnlab.search.compose import check_overrides, check_space
    from rnnlab.search.objective import TrialSetup
    from rnnlab.search.study import StudySpec, check_study, load_study

    _check_options(o)
    space_name, cli_overrides = _split_args(o)
    file = load_space_file(space_name) if space_name else None
    params = dict(file.params) if file else {}
    for text in o.params:
        p = parse_cli(text)
        params[p.key] = p  # the command line wins over the file
    if not params:
        raise SearchError("the search space is empty: give a SPACE file (e.g. sine_small) or --param KEY=SPEC")
    base = SEARCH_DEFAULTS + (file.overrides if file else []) + cli_overrides
    check_overrides(base)
    metric = o.metric or (file.metric if file else None) or "val_loss"
    check_metric(metric)
    direction = choose_direction(metric, o.direction or (file.direction if file else None))
    notes = []
    grid = None
    if o.sampler == "grid":
        grid = {k: grid_values(p) for k, p in params.items()}
    if o.sampler == "cmaes":
        ranges = [k for k, p in params.items() if p.type != "choice"]
        if len(ranges) < 2:
            raise SearchError(f"--sampler cmaes needs at least two int or float ranges (got {len(ranges)}); "
                              "use tpe or random")
        choices = [k for k, p in params.items() if p.type == "choice"]
        if choices:
            notes.append(f"cmaes: the choices {', '.join(choices)} are drawn at random (CMA-ES moves the ranges)")
    rc = check_space(params, base)
    epochs = int(params["train.epochs"].high) if "train.epochs" in params else rc.train.epochs

    study_name = o.study_name or (file.path.stem if file else "search")
    folder = Path(o.output or Path("outputs") / "search" / study_name)
    folder.mkdir(parents=True, exist_ok=True)
    storage = o.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    spec = StudySpec(name=study_name, storage=storage, sampler=o.sampler, pruner=o.pruner,
                     pruner_startup=o.pruner_startup, pruner_warmup=o.pruner_warmup, max_epochs=epochs,
                     seed=o.seed if o.seed is not None else rc.seed, grid=grid)
    study = load_study(spec, direction=direction)
    check_study(study, metric, direction, params)
    spec.n_existing = len(study.get_trials(deepcopy=False))
    # A trial is in the storage before its folder exists, so re-reading the study makes this race-free.
    if any(folder.glob("trial_*")) and not study.get_trials(deepcopy=False):
        raise SearchError(f"{folder} holds trial folders of another study (was its study.db removed?): "
                          "use another --output or --study-name")
    n_trials = o.n_trials
    if n_trials is None and grid is not None:
        n_trials = _grid_left(study, grid)
        if n_trials == 0:
            notes.append("the grid is covered already: no new trials")
    elif n_trials is None and o.timeout is None:
        n_trials = DEFAULT_N_TRIALS
    setup = TrialSetup(params=params, base=base, metric=metric, direction=direction, output=str(folder))
    return Plan(spec=spec, setup=setup, direction=direction, metric=metric, n_trials=n_trials, notes=notes)


def _grid_left(study, grid: dict) -> int:
    import itertools

    done = {tuple(repr(t.params.get(k)) for k in grid) for t in study.get_trials(deepcopy=False)}
    return sum(tuple(map(repr, combo)) not in done for combo in itertools.product(*grid.values()))


def _run_workers(p: Plan, o: SearchOptions, console: Console) -> list[int]:
    """Exit codes of the workers: this process alone, or --n-jobs spawned processes."""
    from rnnlab.search.study import sigterm_as_interrupt, work, work_in_process

    if o.n_jobs == 1:
        return [work(p.spec, p.setup, p.n_trials, o.timeout)]
    # Processes, not threads: training holds the GIL. Spawned (not forked): no inherited sqlite
    # connections or BLAS thread pools. The trials are split so the total is --n-trials.
    ctx = multiprocessing.get_context("spawn")
    shares = [None] * o.n_jobs if p.n_trials is None else \
        [p.n_trials // o.n_jobs + (i < p.n_trials % o.n_jobs) for i in range(o.n_jobs)]
    procs = [ctx.Process(target=work_in_process, args=(p.spec, p.setup, n, o.timeout, i), daemon=False)
             for i, n in enumerate(shares) if n != 0]
    for proc in procs:
        proc.start()
    try:
        with sigterm_as_interrupt():
            for proc in procs:
                proc.join()
    except KeyboardInterrupt:
        # Ctrl-C reaches the workers too (one process group), SIGTERM only this one: pass it on. Each
        # worker stops its trial cleanly (the run as interrupted, the trial as failed) and exits.
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
        raise
    return [proc.exitcode if proc.exitcode is not None else 1 for proc in procs]


def write_outputs(p: Plan, o: SearchOptions, console: Console, wall: float, new_trials: int,
                  interrupted: bool) -> dict:
    from rnnlab.search import outputs as out
    from rnnlab.search.study import load_study

    study = load_study(p.spec)
    folder = Path(p.setup.output)
    rows = out.trial_rows(study, p.metric)
    console.print(out.ranked_table(rows, p.metric, p.spec.name))
    out.write_trials_csv(folder / "trials.csv", rows)
    command = out.write_best(folder, study, console)
    plots = out.write_plots(folder, study, rows, p.metric, console)
    info = {
        "study_name": p.spec.name, "storage": out.mask_url(p.spec.storage), "output": str(folder),
        "metric": p.metric, "direction": p.direction, "sampler": p.spec.sampler, "pruner": p.spec.pruner,
        "pruner_settings": ({"n_startup_trials": p.spec.pruner_startup, "n_warmup_steps": p.spec.pruner_warmup}
                            if p.spec.pruner == "median" else
                            {"min_resource": 1, "max_resource": p.spec.max_epochs, "reduction_factor": 3}
                            if p.spec.pruner == "hyperband" else {}),
        "seed": p.spec.seed,
        "space": {k: v.describe() for k, v in p.setup.params.items()},
        "overrides": p.setup.base,
        "this_run": {"new_trials": new_trials, "n_jobs": o.n_jobs, "wall_seconds": wall, "interrupted": interrupted},
        "reproduce_best": command,
        "plots": plots,
    }
    result = out.summary(study, rows, info)

    write_json(folder / "search_summary.json", result)
    return result


def _report(result: dict, console: Console) -> None:
    best = result["best"]
    if best:
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
        console.print(f"best: trial {best['trial']} {result['metric']}={best['value']:.6g}  {escape(params)}")
    if result["pruned"]:
        console.print(f"pruning: {result['pruned']} of {result['n_trials']} trials pruned, "
                      f"{result['epochs_saved_by_pruning']} epochs not run "
                      f"(~{result['estimated_seconds_saved_by_pruning']:.1f} s saved, estimated from each pruned "
                      f"trial's own pace; pruned trials took {result['pruned_trial_seconds']:.1f} s)")
    if result["failed"]:
        console.print(f"[red]{result['failed']} trials failed[/] (reasons in trials.csv)")
    if result["reproduce_best"]:
        console.print(f"train the best again: {escape(result['reproduce_best'])}")
    console.print(f"study folder: {escape(result['output'])} (trials.csv, search_summary.json, best_config.yaml)")


def run(o: SearchOptions, console: Console | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    console = console or Console(stderr=True)
    try:
        p = plan(o)
    except SearchError as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    for note in p.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")
    n = "until the timeout" if p.n_trials is None else f"{p.n_trials} trials"
    workers = o.n_jobs if p.n_trials is None else max(1, min(o.n_jobs, p.n_trials))
    console.print(f"[bold]study {escape(p.spec.name)}[/]: {n}, {p.spec.sampler} sampler, {p.spec.pruner} pruner, "
                  f"{p.direction} {p.metric}, {workers} worker{'s' if workers > 1 else ''}, "
                  f"storage {escape(p.spec.storage)}", soft_wrap=True)
    t0 = time.perf_counter()
    interrupted, codes = False, []
    if p.n_trials != 0:
        try:
            codes = _run_workers(p, o, console)
        except KeyboardInterrupt:
            interrupted = True
    interrupted = interrupted or 130 in codes
    from rnnlab.search.study import load_study

    try:
        new_trials = len(load_study(p.spec).get_trials(deepcopy=False)) - p.spec.n_existing
        result = write_outputs(p, o, console, time.perf_counter() - t0, new_trials, interrupted)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/] while writing the outputs: the study is kept; run the same command "
                      "again with --n-trials 0 to write them")
        return 130
    _report(result, console)
    if interrupted:
        console.print("[yellow]interrupted[/]: the study is kept; run the same command again to go on")
        return 130
    if 2 in codes:
        return 2
    if any(codes):
        return 1
    return 0 if result["complete"] else 1
