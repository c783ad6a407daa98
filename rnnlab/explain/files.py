"""The explain/ folder, written whole or not at all (`runtime.io.folder_in_place`):

    explain.json      what was explained and how, per method its timing and sanity checks, warnings
    sanity.json       the checks alone: completeness, randomisation, deletion, the known answer
    attributions.npz  rows, the inputs (x or tokens), mask, and per method <name> (B, T, D) and <name>_steps (B, T)
    steps.csv         one row per (sample, real step): the input (its token for text) and each method's
                      per-step attribution
    tokens.html       text models: each review with its tokens coloured by attribution, per method
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from rnnlab.runtime.io import folder_in_place, write_csv, write_json, write_text

SANITY_KEYS = ("completeness_gap_rel_max", "completeness_gap_rel_mean", "completeness_ok", "randomisation",
               "deletion", "truth_share")


def write(result, out: Path, vocab: list[str] | None = None) -> Path:
    """Write `result` (`run.Explained`) into folder out (replacing an earlier explain/ there)."""
    with folder_in_place(out) as tmp:
        write_json(tmp / "explain.json", result.summary)
        write_json(tmp / "sanity.json", {name: {k: v for k, v in m.items() if k in SANITY_KEYS}
                                         for name, m in result.summary["methods"].items()})
        _arrays(tmp / "attributions.npz", result)
        write_csv(tmp / "steps.csv", steps_frame(result, vocab))
        if vocab is not None:
            write_text(tmp / "tokens.html", tokens_html(result, vocab))
    return out


def _arrays(path: Path, result) -> None:
    from rnnlab.runtime.io import atomic_write

    arrays = {"rows": result.rows, "tokens" if result.x.dtype.kind in "iu" else "x": result.x}
    if result.mask is not None:
        arrays["mask"] = result.mask
    for name, a in result.attributions.items():
        arrays[name] = a.values.astype(np.float32)
        arrays[f"{name}_steps"] = a.per_step().astype(np.float32)
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays), mode="wb")


def steps_frame(result, vocab: list[str] | None):
    """Long table: sample, step, input, then one column per method (real steps only)."""
    import pandas as pd

    B, T = result.x.shape[:2]
    real = np.ones((B, T), bool) if result.mask is None else result.mask != 0
    b, t = np.nonzero(real)
    frame = {"sample": result.rows[b], "step": t}
    if vocab is not None:
        frame["token"] = [vocab[i] if 0 <= i < len(vocab) else "?" for i in result.x[b, t]]
    elif result.x.ndim == 3 and result.x.shape[2] <= 8:
        for d in range(result.x.shape[2]):
            frame[f"x{d}"] = result.x[b, t, d]
    for name, a in result.attributions.items():
        frame[name] = a.per_step()[b, t]
    return pd.DataFrame(frame)


def tokens_html(result, vocab: list[str]) -> str:
    """A self-contained page: per method, each review's tokens on a red (against the target) to green
    (towards it) background scaled by the review's largest |attribution|."""
    parts = ["<!doctype html><meta charset='utf-8'><title>rnnlab explain</title>",
             "<style>body{font:14px/1.7 sans-serif;max-width:70em;margin:2em auto}"
             "span{padding:1px 2px;border-radius:3px}</style>",
             f"<h1>Token attributions</h1><p>target {html.escape(result.summary['target'])}, baseline "
             f"{html.escape(result.summary['baseline'])}; green: towards the target, red: against it.</p>"]
    for name, a in result.attributions.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        steps = a.per_step()
        for i, row in enumerate(result.rows):
            parts.append(f"<p><b>sample {int(row)}</b>: {_row_html(result, i, steps[i], vocab, a.signed)}</p>")
    return "\n".join(parts) + "\n"


def _row_html(result, i: int, steps: np.ndarray, vocab: list[str], signed: bool) -> str:
    real = np.ones(len(steps), bool) if result.mask is None else result.mask[i] != 0
    scale = float(np.abs(steps[real]).max()) if real.any() else 0.0
    out = []
    for t in np.flatnonzero(real):
        v = steps[t] / scale if scale > 0 else 0.0
        rgb = "40,160,60" if v >= 0 or not signed else "210,50,50"
        word = vocab[result.x[i, t]] if 0 <= result.x[i, t] < len(vocab) else "?"
        out.append(f"<span style='background:rgba({rgb},{abs(v):.2f})' title='{steps[t]:.4g}'>"
                   f"{html.escape(word)}</span>")
    return " ".join(out)
