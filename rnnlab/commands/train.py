"""`rnnlab train`: validate the overrides, run Hydra (single run or multirun), report.

The Hydra task is `task(cfg)`: it takes the config validated before the launch (or
validates a config composed elsewhere, e.g. in a joblib worker), trains into Hydra's output
folder, prints the Rich summary and appends its outcome to the results file the CLI reads back.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from rnnlab.commands import hydra_bridge as hb
from rnnlab.commands.folders import LaunchFolder
from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.record.summary import Summary
from rnnlab.runtime import signals
from rnnlab.runtime.io import StorageError

# A job that failed on bad input (a missing data file, a malformed CSV) exits 2 like a bad config.
EXIT_CODES = {"completed": 0, "diverged": 1, "failed": 1, "interrupted": 130}


def task(cfg, hooks=()) -> str:
    """The body of the @hydra.main app (runs once per job, in-process or in a worker); returns the
    run's status. hooks: fn(fit) -> summary entries (cv's fold), passed to the run's recorder."""
    from hydra.core.hydra_config import HydraConfig

    from rnnlab.config.composition import validated
    from rnnlab.train.recorder import RunFolderError, record_failure

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    console = Console(stderr=True)
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    if multirun:
        console.print(f"[bold]job {hc.job.num}[/]: {escape(' '.join(hc.overrides.task))}")
    if multirun and "joblib" in str(hc.launcher.get("_target_", "")).lower():
        # Parallel jobs share the cores: one BLAS thread per worker, or they oversubscribe.
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    try:
        with signals.unmasked():  # Ctrl-C inside a library's import can come back as its ImportError
            rc = validated(cfg)  # checked before the launch: not again
            from rnnlab import api

            summary = api.train(rc, run_dir, console=console, hooks=hooks, config_files=_hydra_files(cfg, hc),
                                resume=RESUME is not None and Path(RESUME).resolve() == run_dir.resolve())
    except KeyboardInterrupt:  # before the run began (importing, validating): the folder says so
        summary = _interrupted_before_run(run_dir, hooks)
    except RunFolderError as exc:  # another run's folder: left as it is
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        hb.report_result({"run_dir": str(run_dir), "status": "failed", "bad_input": True,
                          "overrides": list(hc.overrides.task), "message": str(exc)})
        return "failed"
    except (ConfigError, DataError) as exc:
        summary = record_failure(run_dir, str(exc), bad_input=True, hooks=hooks)
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
    except StorageError as exc:  # a full or read-only disk: what was computed is shown, then one line
        summary = exc.summary or Summary(status="failed", message=str(exc), run_dir=str(run_dir))
        _show(console, summary, with_message=False)
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
    except Exception as exc:  # a bug: recorded in the run folder, then Hydra shows the traceback
        record_failure(run_dir, repr(exc), hooks=hooks)
        hb.report_result({"run_dir": str(run_dir), "status": "failed",
                          "overrides": list(hc.overrides.task), "message": repr(exc)})
        raise
    else:
        _show(console, summary)
    hb.report_result({"run_dir": str(run_dir), "status": summary.status, "bad_input": summary.bad_input,
                      "overrides": list(hc.overrides.task), "message": summary.message})
    if signals.received() is not None:  # Ctrl-C or SIGTERM stops the sweep too: no further job starts
        raise signals.Interrupted(signals.received())
    return summary.status


def _show(console: Console, summary, with_message: bool = True) -> None:
    from rnnlab.report.tables import summary_table

    console.print(summary_table(summary))
    if with_message and summary.get("message"):
        console.print(escape(summary["message"]))


def _interrupted_before_run(run_dir: Path, hooks):
    from rnnlab.train.recorder import record_failure

    return record_failure(run_dir, "interrupted during start-up: nothing was trained", status="interrupted",
                          hooks=hooks)


def _hydra_files(cfg, hc):
    """The .hydra/ files of the job (config, Hydra's config, overrides), written once the run holds its folder."""
    from rnnlab.config.composition import write_run_config

    return lambda folder: write_run_config(folder, cfg, list(hc.overrides.task), hydra=hc)


def _hydra_main():
    import hydra

    hb.setup()
    return hydra.main(config_path="pkg://rnnlab.conf", config_name="config", version_base="1.3")(task)


def run(args: list[str], console: Console | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    global RESUME
    console = console or Console(stderr=True)
    try:
        RESUME, args = resume_args(args)
        flags, overrides = hb.split_args(args)
        folder = LaunchFolder(multirun=bool(set(flags) & {"-m", "--multirun"}))
        if RESUME is not None and folder.multirun:
            raise ConfigError("--resume continues one run: resume a multirun's jobs one by one")
        if not set(flags) & hb.INFO_FLAGS:
            hb.compose_and_validate(overrides, hb._flag_value(flags, ("--config-dir", "-cd")), on_first=folder.settle)
    except ConfigError as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    with hb.results_file() as results, folder.launching():
        try:
            hb.launch(_hydra_main(), "rnnlab train", flags, [*overrides, *folder.overrides()])
        except SystemExit as exc:  # Hydra exits on its own errors, after printing them
            code = exc.code if isinstance(exc.code, int) else 1
            if code:
                folder.discard_if_unused()
                return code
        except KeyboardInterrupt:  # the jobs recorded their own status; the exit code names the signal
            if not signals.received():
                raise
        records = hb.read_results(results)
    folder.discard_if_unused()  # bad input leaves no run folder
    if signals.received():
        return signals.exit_code()
    if not records:
        return 0  # --cfg, --info and friends run no job
    if len(records) > 1:
        console.print(_multirun_table(records))
    codes = [2 if r.get("bad_input") else EXIT_CODES.get(r["status"], 1) for r in records]
    return max(codes) if len(records) == 1 else (0 if not any(codes) else 1)


RESUME: Path | None = None  # `--resume RUN_DIR`: the job continues that run (exactly) instead of starting one


def resume_args(args: list[str]) -> tuple[Path | None, list[str]]:
    """(RUN_DIR, the arguments to run) for `--resume RUN_DIR` (or --resume=RUN_DIR): the run's own
    overrides, then the given ones (a key given again wins), in the run's own folder."""
    rest, run_dir = [], None
    it = iter(args)
    for a in it:
        if a == "--resume":
            run_dir = next(it, None)
            if run_dir is None:
                raise ConfigError("option --resume needs a run folder")
        elif a.startswith("--resume="):
            run_dir = a.split("=", 1)[1]
        else:
            rest.append(a)
    if run_dir is None:
        return None, args
    folder = Path(run_dir)
    saved = folder / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(f"--resume {run_dir}: not a run folder (no .hydra/overrides.yaml)")
    import yaml

    merged = {_key(o): o for o in (yaml.safe_load(saved.read_text()) or [])}
    flags = [a for a in rest if a.startswith("-")]
    merged.update({_key(o): o for o in rest if not o.startswith("-")})
    merged["hydra.run.dir"] = f"hydra.run.dir={folder}"
    return folder, [*flags, *merged.values()]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _multirun_table(records: list[dict]):
    from rich.table import Table

    table = Table(title="Multirun", title_justify="left")
    for col in ("job", "overrides", "status", "run folder"):
        table.add_column(col)
    for i, r in enumerate(records):
        table.add_row(str(i), escape(" ".join(r["overrides"])), r["status"], escape(r["run_dir"]))
    return table


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
