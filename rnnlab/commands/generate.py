"""`rnnlab generate RUN_DIR`: text sampled from a trained language model (`data=textlm`), or a seq2seq run's
decoding of the prompt as its source (the run's own greedy or beam search; sampling options apply to language
models only).

Greedy (--greedy), temperature, top-k and nucleus (top-p) sampling (`rnnlab.engine.sampling`), --n samples
of --length tokens after --prompt, reproducible with --seed; printed, and with -o FILE also written as JSON.
Bad input (not a run, a run that is not a language model, a temperature <= 0, top-p outside (0, 1],
characters the vocabulary lacks) gives one line `Error: ...` on stderr and exit code 2, and writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.config.validate import ConfigError
from rnnlab.data.base import DataError
from rnnlab.record.checkpoint import CheckpointError


def run(target: str, prompt: str = "", length: int = 200, temperature: float = 1.0, top_k: int | None = None,
        top_p: float | None = None, seed: int = 0, n: int = 1, greedy: bool = False, output: str | None = None,
        checkpoint: str = "checkpoint", console=None) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    from rnnlab.runtime.io import StorageError

    try:
        texts, unknown = _generate(target, prompt, length, temperature, top_k, top_p, seed, n, greedy, output,
                                   checkpoint)
    except (ConfigError, DataError, CheckpointError, StorageError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    _show(texts, unknown, output, console)
    return 0


def _generate(target, prompt, length, temperature, top_k, top_p, seed, n, greedy, output, checkpoint):
    from rnnlab.predict.run import load_run
    from rnnlab.train import generation

    settings = generation.Settings(length, temperature, top_k, top_p, n, seed)
    settings.check()  # every option is checked before the run is loaded
    run = load_run(target, checkpoint)
    meta = run.info.get("data") or {}
    if str(run.info.get("task", "")).startswith("seq2seq"):
        texts, unknown = _decoded(run, prompt), []
    elif not generation.is_language_model(meta):
        kind = run.info.get("task") or "this"
        raise DataError(f"{run.path}: not a language model or a seq2seq model (a {kind} run; train one with "
                        "data=textlm; `rnnlab predict` forecasts past a series)")
    else:
        # unknown characters are refused in one line; unknown words come back to be listed
        texts, unknown = generation.generate(run.spec, run.params, run.state, meta, prompt, settings, greedy)
        texts = [generation.after_prompt(prompt, t, meta) for t in texts]
    if output:
        from rnnlab.runtime.io import write_json

        write_json(Path(output), {"run": str(run.path), "prompt": prompt, "greedy": greedy, "length": length,
                                  "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
                                  "oov_words": unknown, "samples": texts})
    return texts, unknown


def _decoded(run, prompt: str) -> list[str]:
    """A seq2seq run's free-running decoding of the prompt as its source (the run's greedy or beam search)."""
    if not run.spec.tokens_in:
        raise DataError(f"{run.path}: a seq2seq model of series sources: give them to `rnnlab predict RUN_DIR "
                        "--input FILE` (a prompt is text)")
    if not prompt.strip():
        raise DataError("--prompt: give the source sequence to decode, e.g. --prompt '3 1 4'")
    frame = run.predict([prompt], backend="engine")
    return [f"{row['input']} -> {row['prediction']}" for _, row in frame.iterrows()]


def _show(texts: list[str], unknown: list[str], output, console) -> None:
    from rich.markup import escape

    from rnnlab.report.console import make_console

    console = console or make_console(stderr=False)  # the samples are the output: stdout, for a pipe
    if unknown:
        console.print(f"[yellow]words not in the vocabulary, read as <oov>: {escape(', '.join(unknown[:20]))}[/]",
                      soft_wrap=True)
    for k, text in enumerate(texts):
        console.rule(f"sample {k + 1}")
        console.print(escape(text), soft_wrap=True, highlight=False)
    if output:
        console.print(f"wrote {output}", soft_wrap=True)
