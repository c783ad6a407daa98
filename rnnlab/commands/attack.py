"""`rnnlab attack RUN_DIR`: FGSM and PGD adversarial examples against a trained run, its accuracy (or error)
against the budget eps on samples of a split, written into RUN_DIR/attack (or -o DIR) and shown in a table.

Bad input (not a run, an unknown method or split, a negative or non-numeric eps, samples out of range,
--pgd-steps below 1, a seq2seq run) gives one line `Error: ...` on stderr and exit code 2, and writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.record.checkpoint import CheckpointError


def run(target: str, methods: str = "fgsm,pgd", split: str = "test", samples: str | None = None,
        eps: str = "0,0.01,0.02,0.05,0.1,0.2", pgd_steps: int = 10, seed: int = 0, output: str | None = None,
        checkpoint: str = "checkpoint", console=None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.runtime.io import StorageError

    try:
        result, out = _attack(target, methods, split, samples, eps, pgd_steps, seed, output, checkpoint)
    except (ConfigError, DataError, CheckpointError, StorageError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    _show(result, out, console)
    return 0


def _attack(target, methods, split, samples, eps, pgd_steps, seed, output, checkpoint):
    from rnnlab.explain import attack
    from rnnlab.explain.run import SPLITS
    from rnnlab.predict.run import load_run

    names = attack.parse_methods(methods)  # every option is checked before the run is loaded
    epsilons = attack.parse_eps(eps)
    if pgd_steps < 1:
        raise ConfigError(f"--pgd-steps {pgd_steps}: PGD needs at least 1 step")
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: unknown (use {', '.join(SPLITS)})")
    run = load_run(target, checkpoint)
    result = attack.sweep(run, split, samples, names, epsilons, pgd_steps, seed,
                          vocab=(run.info.get("data") or {}).get("vocab"))
    out = Path(output) if output else run.path / "attack"
    attack.write(result, out)
    if out.resolve() == (run.path / "attack").resolve():  # the run's report gets its Adversarial section
        from rnnlab.report.html import write_report

        write_report(run.path)
    return result, out


def _show(result, out: Path, console) -> None:
    from rich.table import Table

    from rnnlab.report.console import make_console
    from rnnlab.report.tables import fmt_cell as fmt

    console = console or make_console()
    s = result.summary
    ball = ("L2 ball on the embeddings, radius eps x mean embedding norm x sqrt(steps)"
            if s["inputs"] == "embeddings" else "L-inf ball on the inputs, eps x each feature's std")
    table = Table(title=f"attack: {s['n_samples']} {s['split']} samples, {ball}")
    cols = ["method", "eps", *s["metrics"], "loss", *(["flipped"] if "flipped" in s["results"][0] else []),
            "seconds"]
    for col in cols:
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in s["results"]:
        table.add_row(*(str(r[c]) if c == "method" else fmt(r.get(c)) for c in cols))
    console.print(table)
    if s.get("tokens"):
        at = s["tokens_at"]
        words = ", ".join(f"{t['token']} ({t['count']}x, {t['vs_even']:.1f})" for t in s["tokens"][:10])
        console.print(f"tokens moved most ({at['method']}, eps {fmt(at['eps'])}; occurrences, mean norm over an "
                      f"even spread): {words}", soft_wrap=True)
    console.print(f"wrote {out}", soft_wrap=True)
