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
from rnnlab.config.validate import ConfigError

# A job that failed on bad input (a missing data file, a malformed CSV) exits 2 like a bad config.
EXIT_CODES = {"completed": 0, "diverged": 1, "failed": 1, "interrupted": 130}


def task(cfg, hooks=()) -> str:
    """The body of the @hydra.main app (runs once per job, in-process or in a worker); returns the
    run's status. hooks: fn(fit) -> summary entries (cv's fold), passed to the run's recorder."""
    from hydra.core.hydra_config import HydraConfig

    from rnnlab.config.composition import validated
    from rnnlab.data.base import DataError
    from rnnlab.train.recorder import record_failure

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
        rc = validated(cfg)  # checked before the launch: not again
        from rnnlab import api

        summary = api.train(rc, run_dir, console=console, hooks=hooks, write_config=False)  # Hydra wrote .hydra/
    except (ConfigError, DataError) as exc:
        summary = record_failure(run_dir, str(exc), bad_input=True, hooks=hooks)
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
    except Exception as exc:  # a bug: recorded in the run folder, then Hydra shows the traceback
        record_failure(run_dir, repr(exc), hooks=hooks)
        hb.report_result({"run_dir": str(run_dir), "status": "failed",
                          "overrides": list(hc.overrides.task), "message": repr(exc)})
        raise
    else:
        from rnnlab.report.tables import summary_table

        console.print(summary_table(summary))
        if summary.get("message"):
            console.print(escape(summary["message"]))
    hb.report_result({"run_dir": str(run_dir), "status": summary.status, "bad_input": summary.bad_input,
                      "overrides": list(hc.overrides.task), "message": summary.message})
    return summary.status


def _hydra_main():
    import hydra

    hb.setup()
    return hydra.main(config_path="pkg://rnnlab.conf", config_name="config", version_base="1.3")(task)


def run(args: list[str], console: Console | None = None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    console = console or Console(stderr=True)
    try:
        flags, overrides = hb.split_args(args)
        if not set(flags) & hb.INFO_FLAGS:
            hb.compose_and_validate(overrides, hb._flag_value(flags, ("--config-dir", "-cd")))
    except ConfigError as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    with hb.results_file() as results:
        try:
            hb.launch(_hydra_main(), "rnnlab train", flags, overrides)
        except SystemExit as exc:  # Hydra exits on its own errors, after printing them
            code = exc.code if isinstance(exc.code, int) else 1
            if code:
                return code
        records = hb.read_results(results)
    if not records:
        return 0  # --cfg, --info and friends run no job
    if len(records) > 1:
        console.print(_multirun_table(records))
    codes = [2 if r.get("bad_input") else EXIT_CODES.get(r["status"], 1) for r in records]
    return max(codes) if len(records) == 1 else (0 if not any(codes) else 1)


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
