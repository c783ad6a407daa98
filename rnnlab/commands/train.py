"""`rnnlab train`: validate the overrides, run Hydra (single run or multirun), report.

The Hydra task is `task(cfg)`: it takes the config validated before the launch (or
validates a config composed elsewhere, e.g. in a joblib worker or a submitit job), trains into
Hydra's output folder and prints the Rich summary. A multirun sweeps with `commands/sweeper.py`,
whose plan lists every job; the CLI then reads each job's outcome from its folder (`outcome.read`).
`--resume RUN_DIR` continues one run; `--resume SWEEP_DIR` a multirun (`sweep_resume`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from rnnlab.commands import hydra_bridge as hb
from rnnlab.commands import sweep_resume
from rnnlab.commands.folders import LaunchFolder
from rnnlab.commands.outcome import Outcome
from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.record.summary import Summary
from rnnlab.report.console import make_console
from rnnlab.runtime import signals
from rnnlab.runtime.io import StorageError

LAST: Outcome | None = None  # the outcome of the latest job that ran in this process (a single run's)


def task(cfg, hooks=()) -> Outcome:
    """The body of the @hydra.main app (runs once per job, in-process or in a worker); returns the
    run's outcome (Hydra hands it back to the sweeper, from any launcher). hooks: fn(fit) -> summary
    entries (cv's fold), passed to the run's recorder."""
    global LAST
    from hydra.core.hydra_config import HydraConfig

    from rnnlab.config.composition import validated
    from rnnlab.train.recorder import RunFolderError, record_failure

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    console = make_console()
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    if multirun:
        console.print(f"[bold]job {hc.job.num}[/]: {escape(' '.join(hc.overrides.task))}")
        _limit_blas(hc.launcher)
    resume = (multirun and sweep_resume.resumes(run_dir, hc.sweeper)) or (
        RESUME is not None and Path(RESUME).resolve() == run_dir.resolve())
    try:
        with signals.unmasked():  # Ctrl-C inside a library's import can come back as its ImportError
            rc = validated(cfg)  # checked before the launch: not again
            from rnnlab import api

            summary = api.train(rc, run_dir, console=console, hooks=hooks, config_files=_hydra_files(cfg, hc),
                                resume=resume)
    except KeyboardInterrupt:  # before the run began (importing, validating): the folder says so
        summary = _interrupted_before_run(run_dir, hooks, _hydra_files(cfg, hc))
    except RunFolderError as exc:  # another run's folder, or one it cannot resume: left as it is
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        LAST = Outcome("failed", bad_input=True, message=str(exc), unrecorded=True)
        return LAST
    except (ConfigError, DataError) as exc:
        summary = record_failure(run_dir, str(exc), bad_input=True, hooks=hooks)
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
    except StorageError as exc:  # a full or read-only disk: what was computed is shown, then one line
        summary = exc.summary or Summary(status="failed", message=str(exc), run_dir=str(run_dir))
        _show(console, summary, with_message=False)
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
    except Exception as exc:  # a bug: recorded in the run folder, then Hydra shows the traceback
        record_failure(run_dir, repr(exc), hooks=hooks)
        raise
    else:
        _show(console, summary)
    LAST = Outcome(summary.status, bool(summary.bad_input), summary.message)
    if signals.received() is not None:  # Ctrl-C or SIGTERM stops the sweep too: no further job starts
        raise signals.Interrupted(signals.received())
    return LAST


def _show(console: Console, summary, with_message: bool = True) -> None:
    from rnnlab.report.tables import summary_table

    console.print(summary_table(summary))
    if with_message and summary.get("message"):
        console.print(escape(summary["message"]))


def _interrupted_before_run(run_dir: Path, hooks, config_files):
    """A signal the run did not catch: before it began, or as it returned (then its own words stand)."""
    import os

    from rnnlab.record.summary import read
    from rnnlab.train.recorder import record_failure

    try:
        earlier = read(run_dir)
    except (OSError, ValueError, TypeError):
        earlier = None
    if earlier is not None and earlier.pid == os.getpid() and earlier.status != "running":
        return earlier
    return record_failure(run_dir, "interrupted during start-up: nothing was trained", status="interrupted",
                          hooks=hooks, config_files=config_files, interrupted_in="start-up")


def _hydra_files(cfg, hc):
    """The .hydra/ files of the job (config, Hydra's config, overrides), written once the run holds its folder."""
    from rnnlab.config.composition import write_run_config

    return lambda folder: write_run_config(folder, cfg, list(hc.overrides.task), hydra=hc)


def _limit_blas(launcher) -> None:
    """BLAS threads of a job beside others: a joblib worker shares the machine's cores (one thread each, or
    they oversubscribe); a submitit job gets its cpus_per_task (one when not set). In-process jobs: as set."""
    target = str(launcher.get("_target_", "")).lower()
    threads = 1 if "joblib" in target else int(launcher.get("cpus_per_task") or 1) if "submitit" in target else None
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)


def _hydra_main():
    import hydra

    hb.setup()
    return hydra.main(config_path="pkg://rnnlab.conf", config_name="config", version_base="1.3")(task)


def run(args: list[str], console: Console | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    global RESUME, LAST
    console = console or make_console()
    try:
        RESUME, args = resume_args(args)
        flags, overrides = hb.split_args(args)
        folder = LaunchFolder(multirun=bool(set(flags) & {"-m", "--multirun"}))
        resume_sweep = RESUME is not None and sweep_resume.is_sweep(RESUME)
        if RESUME is not None and folder.multirun and not resume_sweep:
            raise ConfigError(f"--resume continues one run here: {RESUME} is a run folder, not a sweep folder "
                              "(no multirun.yaml); drop -m")
        launch = []
        if folder.multirun:
            from rnnlab.commands import sweeper

            launch = sweeper.launch_overrides(overrides, resume=resume_sweep)
            RESUME = None  # a sweep's jobs resume by their folders (sweep_resume)
        one_run = None  # a plain single run: launched on the config validated here (composed once)
        if not set(flags) & hb.INFO_FLAGS:
            one_run = hb.prepare(task, flags, overrides, on_first=folder.settle)
    except ConfigError as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    LAST, code = None, 0
    with folder.launching():
        try:
            if one_run is not None:
                one_run.launch("rnnlab train", flags, folder.overrides())
            else:
                hb.launch(_hydra_main(), "rnnlab train", flags, [*overrides, *folder.overrides(), *launch])
        except SystemExit as exc:  # Hydra exits on its own errors (after printing them), and on a job's bug
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:  # the jobs recorded their own status; the exit code names the signal
            if not signals.received():
                raise
    folder.discard_if_unused()  # bad input leaves no run folder
    if folder.multirun:
        code = _multirun_result(sweeper.last_plan(), code, console)
    elif not code and LAST is not None:  # --cfg, --info and friends run no job
        code = LAST.exit_code
    return signals.exit_code() if signals.received() else code


def _multirun_result(plan, code: int, console: Console) -> int:
    """The table of every job of the sweep (outcomes read from their folders) and the exit code."""
    if plan is None:  # Hydra refused before sweeping (and said why)
        return code
    if plan.error:
        console.print(f"[red]Error:[/] {escape(plan.error)}", soft_wrap=True)
        return 2
    outcomes = [job.outcome() for job in plan.jobs]
    if len(plan.jobs) > 1 or plan.resume:
        console.print(_multirun_table(plan, outcomes))
        for job, o in zip(plan.jobs, outcomes, strict=True):
            if o.status != "completed" and o.message:
                console.print(f"job {job.num} {o.status}: {escape(o.message)}", soft_wrap=True)
    codes = [o.exit_code for o in outcomes]
    return max(code, codes[0] if len(codes) == 1 else int(any(codes)))


RESUME: Path | None = None  # `--resume RUN_DIR`: the job continues that run (exactly) instead of starting one


def resume_args(args: list[str]) -> tuple[Path | None, list[str]]:
    """(RUN_DIR, the arguments to run) for `--resume RUN_DIR` (or --resume=RUN_DIR): the run's own
    overrides, then the given ones (a key given again wins), in the run's own folder."""
    folder, rest = sweep_resume.take_flag(args)
    if folder is None:
        return None, args
    if sweep_resume.is_sweep(folder):  # a multirun's folder: its sweep again, each job skipped, resumed or started
        return folder, sweep_resume.resume_args(folder, rest)
    saved = folder / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(f"--resume {folder}: not a run folder (no .hydra/overrides.yaml)")
    import yaml

    merged = {_key(o): o for o in (yaml.safe_load(saved.read_text()) or [])}
    flags = [a for a in rest if a.startswith("-")]
    merged.update({_key(o): o for o in rest if not o.startswith("-")})
    merged["hydra.run.dir"] = f"hydra.run.dir={folder}"
    return folder, [*flags, *merged.values()]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _multirun_table(plan, outcomes):
    """One row per job: its overrides, status, main metric (rnnlab.analysis.main_metric; the best job's row in
    bold) and folder. Overrides and folders fold onto more lines rather than being cut."""
    from rich.table import Table

    from rnnlab.analysis.main_metric import higher_is_better
    from rnnlab.report.tables import fmt_cell

    actions = {"skip": "kept", "resume": "resumed", "start": "run"}
    names = {o.metric for o in outcomes if o.metric}
    metric = next(iter(names)) if len(names) == 1 else None  # mixed tasks: each cell names its metric
    higher = higher_is_better(metric.split("_", 1)[1]) if metric else None
    best = _best_job(outcomes, metric, higher)
    table = Table(title="Multirun", title_justify="left",
                  caption=f"bold: the best {metric} ({'higher' if higher else 'lower'} is better)"
                  if best is not None else None)
    table.add_column("job")
    table.add_column("overrides", overflow="fold")
    table.add_column("status")
    if plan.resume:
        table.add_column("this time")
    if names:
        table.add_column(metric or "main metric", justify="right")
    table.add_column("run folder", overflow="fold")
    for i, (job, o) in enumerate(zip(plan.jobs, outcomes, strict=True)):
        score = [(fmt_cell(o.value) if metric else f"{o.metric} {fmt_cell(o.value)}") if o.metric else "-"]
        table.add_row(str(job.num), escape(" ".join(job.overrides)), o.status,
                      *([actions[job.action]] if plan.resume else []), *(score if names else []),
                      escape(str(job.run_dir)), style="bold" if i == best else None)
    return table


def _best_job(outcomes, metric: str | None, higher: bool | None) -> int | None:
    """Index of the completed job with the best main metric (None: mixed metrics, or fewer than two scored)."""
    scored = [(o.value, i) for i, o in enumerate(outcomes)
              if metric and o.status == "completed" and o.value is not None]
    if len(scored) < 2:
        return None
    return (max(scored) if higher else min(scored))[1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
