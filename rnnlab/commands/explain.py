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


def run(target: str, methods: str, split: str, samples: str | None, explained: str, baseline: str, steps: int,
        rule: str, output: str | None, randomisation: bool = True, checkpoint: str = "checkpoint",
        console=None, groups: int = 16, layers: bool = True, overview: int = 500, overview_method: str = "gxi",
        input_file: str | None = None, maximize: str | None = None, length: int = 0, iterations: int = 300) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.explain.methods import Options
    from rnnlab.runtime.io import StorageError

    try:
        if maximize is not None:
            result, out = _maximize(target, maximize, length, iterations, output, checkpoint)
            _show_maximized(result, out, console)
            return 0
        if steps < 1:
            raise ConfigError(f"--steps {steps}: integrated gradients needs at least 1 step")
        if groups < 1:
            raise ConfigError(f"--groups {groups}: shap needs at least 1 group")
        if overview < 0:
            raise ConfigError(f"--overview {overview}: a number of samples, 0 for none")
        options = Options(steps=steps, rule=rule, shap_groups=groups)
        result, out = _explain(target, methods, split, samples, explained, baseline, options, output, randomisation,
                               checkpoint, layers, overview, overview_method, input_file)
    except (ConfigError, DataError, CheckpointError, StorageError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    _show(result, out, console)
    return 0


def _explain(target, methods, split, samples, explained, baseline, options, output, randomisation, checkpoint,
             layers, overview, overview_method, input_file):
    from rnnlab.explain import files
    from rnnlab.explain.methods import parse_methods, quadrature
    from rnnlab.explain.run import Request, explain
    from rnnlab.predict.run import load_run

    quadrature(1, options.rule)  # an unknown rule is refused before any work
    req = Request(parse_methods(methods), split, samples, explained, baseline, options, randomisation, layers,
                  overview, overview_method, input=input_file)
    run = load_run(target, checkpoint)
    result = explain(run, req)
    out = Path(output) if output else run.path / "explain"
    files.write(result, out, (run.info.get("data") or {}).get("vocab"))
    _refresh_report(run.path, out, "explain")
    return result, out


def _maximize(target, goal, length, iterations, output, checkpoint):
    from rnnlab.explain import files
    from rnnlab.explain.run import maximize_inputs
    from rnnlab.predict.run import load_run

    run = load_run(target, checkpoint)
    result = maximize_inputs(run, goal, length, iterations)
    out = Path(output) if output else run.path / "maximize"
    files.write_maximized(result, out)
    _refresh_report(run.path, out, "maximize")
    return result, out


def _refresh_report(run_dir: Path, out: Path, folder: str) -> None:
    """Rewrite the run's report.html when the run's own explain/ or maximize/ was written (its sections)."""
    if out.resolve() == (run_dir / folder).resolve():
        from rnnlab.report.html import write_report

        write_report(run_dir)


def _show_maximized(result, out: Path, console) -> None:
    from rnnlab.report.console import make_console
    from rnnlab.report.tables import fmt_cell as fmt

    console = console or make_console()
    s = result.summary
    ref = s["training_samples"]
    console.print(f"maximize {s['goal']}: {fmt(s['activation'])} after {s['iterations']} iterations over "
                  f"{s['length']} steps (training samples: mean {fmt(ref['mean'])}, 99th percentile "
                  f"{fmt(ref['p99'])}, max {fmt(ref['max'])})", soft_wrap=True)
    if result.tokens is not None:
        console.print("nearest tokens: " + " ".join(result.tokens), soft_wrap=True)
    console.print(f"wrote {out}", soft_wrap=True)


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
    for name, layer in s.get("layers", {}).items():
        by_step = layer["mean_abs_by_step"]
        top = sorted(range(len(by_step)), key=lambda t: -by_step[t])[:5]
        console.print(f"layer {name}: completeness gap {fmt(layer['completeness_gap_rel_max'])}; the steps whose "
                      f"states carry most: {', '.join(str(t) for t in top)}", soft_wrap=True)
    _show_overview(s.get("overview"), console)
    for w in s["warnings"]:
        console.print(f"warning: {w}", soft_wrap=True)
    console.print(f"wrote {out}", soft_wrap=True)


def _show_overview(view: dict | None, console) -> None:
    """The global view in a line or two: top tokens, or the features and lags ranked first."""
    if not view:
        return
    head = f"over {view['samples']} samples ({view['method']}, target {view['target']})"
    if "tokens" in view:
        for side in ("positive", "negative"):
            words = ", ".join(r["token"] for r in view["tokens"][side][:10])
            console.print(f"top {side} tokens {head}: {words}", soft_wrap=True)
        return
    for part in ("features", "lags"):
        rows = sorted(view[part], key=lambda r: -r["permutation_drop"])[:5]
        ranked = ", ".join(f"{r['name']} ({r['share']:.0%}; drop {r['permutation_drop']:.3g})" for r in rows)
        console.print(f"{part} by permutation importance {head}: {ranked}", soft_wrap=True)
