"""`rnnlab explain RUN_DIR`: attributions of a trained run's predictions on samples of a split, with their
sanity checks, written into RUN_DIR/explain (or -o DIR) and summarised in a table.

Bad input (not a run, an unknown method, target, baseline or split, samples out of range, a seq2seq run)
gives one line `Error: ...` on stderr and exit code 2, and writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.record.checkpoint import CheckpointError


def run(target: str, methods: str, split: str, samples: str, explained: str, baseline: str, steps: int,
        rule: str, output: str | None, randomisation: bool = True, checkpoint: str = "checkpoint",
        console=None, groups: int = 16) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.explain.methods import Options
    from rnnlab.runtime.io import StorageError

    try:
        if steps < 1:
            raise ConfigError(f"--steps {steps}: integrated gradients needs at least 1 step")
        if groups < 1:
            raise ConfigError(f"--groups {groups}: shap needs at least 1 group")
        result, out = _explain(target, methods, split, samples, explained, baseline,
                               Options(steps=steps, rule=rule, shap_groups=groups), output, randomisation, checkpoint)
    except (ConfigError, DataError, CheckpointError, StorageError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    _show(result, out, console)
    return 0


def _explain(target, methods, split, samples, explained, baseline, options, output, randomisation, checkpoint):
    from rnnlab.explain import files
    from rnnlab.explain.methods import parse_methods, quadrature
    from rnnlab.explain.run import Request, explain
    from rnnlab.predict.run import load_run

    quadrature(1, options.rule)  # an unknown rule is refused before any work
    req = Request(parse_methods(methods), split, samples, explained, baseline, options, randomisation)
    run = load_run(target, checkpoint)
    result = explain(run, req)
    out = Path(output) if output else run.path / "explain"
    files.write(result, out, (run.info.get("data") or {}).get("vocab"))
    if out.resolve() == (run.path / "explain").resolve():  # the run's report gets its Explanations section
        from rnnlab.report.html import write_report

        write_report(run.path)
    return result, out


def _show(result, out: Path, console) -> None:
    from rich.table import Table

    from rnnlab.report.console import make_console
    from rnnlab.report.tables import fmt_cell as fmt

    console = console or make_console()
    s = result.summary
    table = Table(title=f"explain: {len(s['samples'])} {s['split']} samples, target {s['target']}, "
                        f"baseline {s['baseline']}")
    for col in ("method", "completeness gap", "deletion area (random)", "randomised: Spearman", "known answer",
                "seconds"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, m in s["methods"].items():
        rnd = m.get("randomisation", {}).get("stages") or [{}]
        table.add_row(name, fmt(m.get("completeness_gap_rel_max")),
                      f"{fmt(m['deletion']['area_method'])} ({fmt(m['deletion']['area_random'])})",
                      fmt(rnd[-1].get("spearman")), fmt(m.get("truth_share")), fmt(m["seconds"]))
    console.print(table)
    for w in s["warnings"]:
        console.print(f"warning: {w}", soft_wrap=True)
    console.print(f"wrote {out}", soft_wrap=True)
