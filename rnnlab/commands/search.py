"""`rnnlab search [SPACE] [--param KEY=SPEC ...] [options] [KEY=VALUE ...]`: Optuna over `rnnlab train`.

Order of work: read the space (file, then --param), the overrides and the options; check
all of it, composing every choice and both ends of every range once (one line and exit
code 2 for anything wrong, before any trial); open or resume the study in its RDB
storage; run the trials here or in --n-jobs worker processes; then write the outputs
from the study (also after Ctrl-C, which exits 130). Exit code 1 when no trial completed.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from rnnlab.report.console import make_console
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
    heartbeat: int | None = None


def _check_options(o: SearchOptions) -> None:
    from rnnlab.config.validate import ConfigError, check_folder_name
    from rnnlab.search.study import PRUNERS, SAMPLERS

    if o.sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler '{o.sampler}' (choose from: {', '.join(SAMPLERS)})")
    if o.pruner not in PRUNERS:
        raise SearchError(f"unknown pruner '{o.pruner}' (choose from: {', '.join(PRUNERS)})")
    for name, value, low in (("--n-trials", o.n_trials, 0), ("--n-jobs", o.n_jobs, 1),
                             ("--pruner-startup", o.pruner_startup, 0), ("--pruner-warmup", o.pruner_warmup, 0),
                             ("--seed", o.seed, 0), ("--heartbeat", o.heartbeat, 1)):
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


@dataclass
class _Space:
    """The search's inputs as read from the space file, --param and the overrides (not composed yet)."""
    params: dict
    base: list[str]
    metric: str
    direction: str
    name: str
    grid: dict | None
    notes: list[str]


def _read(o: SearchOptions) -> _Space:
    from rnnlab.search.compose import check_overrides, override_key, replaced

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
    notes = [f"{o} is replaced by the search space's {override_key(o)} in every trial"
             for o in replaced(base[len(SEARCH_DEFAULTS):], params)]
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
    name = o.study_name or (file.path.stem if file else "search")
    return _Space(params=params, base=base, metric=metric, direction=direction, name=name, grid=grid, notes=notes)


def plan(o: SearchOptions) -> Plan:
    """Check everything and open the study; SearchError (one line) on any bad input, and nothing left behind."""
    from rnnlab.search.study import mask_url, study_exists

    sp = _read(o)
    folder = Path(o.output or Path("outputs") / "search" / sp.name)
    storage = o.storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    if o.n_trials == 0 and not study_exists(storage, sp.name):
        raise SearchError(f"--n-trials 0 writes the outputs of an existing study, and there is no study "
                          f"'{sp.name}' in {mask_url(storage)}: nothing was created (give --n-trials N to start it)")
    made = _make_folder(folder)
    try:
        return _plan_study(o, sp, folder, storage)
    except (SearchError, KeyboardInterrupt):
        if made is not None:  # this call made the folder: bad input leaves nothing behind
            shutil.rmtree(made, ignore_errors=True)
        raise


def _plan_study(o: SearchOptions, sp: _Space, folder: Path, storage: str) -> Plan:
    """Compose the space, then open (or create) the study and check it is this search's."""
    from rnnlab.search.compose import check_space
    from rnnlab.search.objective import TrialSetup
    from rnnlab.search.study import StudySpec

    rc = check_space(sp.params, sp.base)
    epochs = int(sp.params["train.epochs"].high) if "train.epochs" in sp.params else rc.train.epochs
    spec = StudySpec(name=sp.name, storage=storage, sampler=o.sampler, pruner=o.pruner,
                     pruner_startup=o.pruner_startup, pruner_warmup=o.pruner_warmup, max_epochs=epochs,
                     seed=o.seed if o.seed is not None else rc.seed, grid=sp.grid)
    study = _open_study(spec, o, folder, sp.direction, sp.metric, sp.params, sp.notes)
    n_trials = o.n_trials
    if n_trials is None and sp.grid is not None:
        n_trials = _grid_left(study, sp.grid)
        if n_trials == 0:
            sp.notes.append("the grid is covered already: no new trials")
    elif n_trials is None and o.timeout is None:
        n_trials = DEFAULT_N_TRIALS
    setup = TrialSetup(params=sp.params, base=sp.base, metric=sp.metric, direction=sp.direction, output=str(folder))
    return Plan(spec=spec, setup=setup, direction=sp.direction, metric=sp.metric, n_trials=n_trials, notes=sp.notes)


def _make_folder(folder: Path) -> Path | None:
    """Create the study folder and check that it takes files; returns the topmost folder this call created
    (None: it existed). SearchError (one line) for a file in the way, a read-only or missing place."""
    if folder.exists() and not folder.is_dir():
        raise SearchError(f"study folder {folder} is a file, not a folder: give another --output")
    top = next((q for q in [*reversed(folder.absolute().parents), folder.absolute()] if not q.exists()), None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if top is not None and top.is_dir():
            shutil.rmtree(top, ignore_errors=True)
        raise SearchError(f"study folder {folder}: cannot write there ({exc.strerror or exc})") from None
    return top


def _open_study(spec, o: SearchOptions, folder: Path, direction: str, metric: str, params: dict, notes: list):
    """Create or load the study, check that it is this search's, and put its interrupted trials first."""
    from rnnlab.search import retry
    from rnnlab.search.study import check_study, load_study, settle_heartbeat

    study = load_study(spec, direction=direction)
    check_study(study, metric, direction, params)
    spec.heartbeat = settle_heartbeat(study, o.heartbeat)
    # A trial is in the storage before its folder exists, so re-reading the study makes this race-free.
    if any(folder.glob("trial_*")) and not study.get_trials(deepcopy=False):
        raise SearchError(f"{folder} holds trial folders of another study (was its study.db removed?): "
                          "use another --output or --study-name")
    if o.n_trials != 0:
        retry.requeue_orphans(study)
    trials = study.get_trials(deepcopy=False)
    spec.n_existing = len(trials)
    retries = sorted(n for t in trials if t.state.name == "WAITING" and (n := retry.retried_trial(t)) is not None)
    if retries and o.n_trials != 0:
        notes.append(f"trial{'s' if len(retries) > 1 else ''} {', '.join(map(str, retries))} stopped before the end "
                     "(interrupted, or their worker lost): retried first, from their last completed epoch")
    return study


def _grid_left(study, grid: dict) -> int:
    import itertools

    trials = study.get_trials(deepcopy=False)
    done = {tuple(repr(t.params.get(k)) for k in grid) for t in trials}
    waiting = sum(t.state.name == "WAITING" for t in trials)  # retries: they run first, and count as trials
    return waiting + sum(tuple(map(repr, combo)) not in done for combo in itertools.product(*grid.values()))


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
    from rnnlab.search.study import load_study, mask_url

    study = load_study(p.spec)
    folder = Path(p.setup.output)
    rows = out.trial_rows(study, p.metric)
    console.print(out.ranked_table(rows, p.metric, p.spec.name))
    out.write_trials_csv(folder / "trials.csv", rows)
    command = out.write_best(folder, study, console)
    plots = out.write_plots(folder, study, rows, p.metric, console)
    info = {
        "study_name": p.spec.name, "storage": mask_url(p.spec.storage), "output": str(folder),
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
    if result["waiting"]:
        console.print(f"[yellow]{result['waiting']} trials wait[/] (retries of trials interrupted or lost with their "
                      "worker): they run first when the search goes on, from their last completed epoch")
    if result["reproduce_best"]:
        console.print(f"train the best again: {escape(result['reproduce_best'])}")
    console.print(f"study folder: {escape(result['output'])} (trials.csv, search_summary.json, best_config.yaml)")


def run(o: SearchOptions, console: Console | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    console = console or make_console()
    try:
        p = plan(o)
    except SearchError as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    for note in p.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")
    from rnnlab.search.study import load_study, mask_url

    n = "until the timeout" if p.n_trials is None else f"{p.n_trials} trials"
    workers = o.n_jobs if p.n_trials is None else max(1, min(o.n_jobs, p.n_trials))
    console.print(f"[bold]study {escape(p.spec.name)}[/]: {n}, {p.spec.sampler} sampler, {p.spec.pruner} pruner, "
                  f"{p.direction} {p.metric}, {workers} worker{'s' if workers > 1 else ''}, "
                  f"storage {escape(mask_url(p.spec.storage))}", soft_wrap=True)
    t0 = time.perf_counter()
    interrupted, codes = False, []
    if p.n_trials != 0:
        try:
            codes = _run_workers(p, o, console)
        except KeyboardInterrupt:
            interrupted = True
    interrupted = interrupted or any(c in (130, 143) for c in codes)  # 128 + SIGINT or SIGTERM
    try:
        new_trials = len(load_study(p.spec).get_trials(deepcopy=False)) - p.spec.n_existing
        result = write_outputs(p, o, console, time.perf_counter() - t0, new_trials, interrupted)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/] while writing the outputs: the study is kept; run the same command "
                      "again with --n-trials 0 to write them")
        return 130
    _report(result, console)
    if interrupted:
        console.print("[yellow]interrupted[/]: the study is kept; run the same command again to go on (an "
                      "interrupted trial resumes from its last completed epoch)")
        return 130
    if 2 in codes:
        return 2
    if any(codes):
        return 1
    return 0 if result["complete"] else 1
