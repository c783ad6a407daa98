"""The explain/ folder, written whole or not at all (`runtime.io.folder_in_place`):

    explain.json      what was explained and how, per method its timing and sanity checks, warnings
    sanity.json       the checks alone: completeness, randomisation, deletion, the known answer
    attributions.npz  rows, the inputs (x or tokens), mask, and per method <name> (B, T, D) and <name>_steps (B, T)
    steps.csv         one row per (sample, real step): the input (its token for text), each method's
                      per-step attribution and each recurrent layer's (layer_rnn0, ...)
    overview.json     the global view over many samples (overview.py): top tokens, or features and lags
                      ranked by mean |attribution| and permutation importance; also as top_tokens.csv or
                      features.csv and lags.csv
    tokens.html       text models: each review with its tokens coloured by attribution, per method
    heatmap_<i>.png   series: sample i's input (and forecast) over a time x feature heatmap of the first
                      method's attribution, for the first HEATMAPS samples
    layers.png        the recurrent layers' mean |attribution| per step (layer integrated gradients)
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from rnnlab.runtime.io import folder_in_place, write_csv, write_json, write_text

HEATMAPS = 3  # series samples drawn as time x feature heatmaps
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
        if result.overview is not None:
            _overview(tmp, result.overview)
        _figures(tmp, result, vocab)
    return out


def _figures(folder: Path, result, vocab) -> None:
    """heatmap_<sample>.png for the first HEATMAPS series samples (the first method), layers.png."""
    from rnnlab.report import explain_plots

    if result.layers:
        explain_plots.layers_plot({n: np.abs(a.per_step()).mean(axis=0) for n, a in result.layers.items()},
                                  folder / "layers.png")
    if vocab is not None or not result.attributions:
        return
    method, a = next(iter(result.attributions.items()))
    forecast = result.outputs if result.summary["task"] == "regression" and result.outputs.ndim == 2 else None
    for i, row in enumerate(result.rows[:HEATMAPS]):
        real = slice(None) if result.mask is None else np.asarray(result.mask[i]) != 0
        explain_plots.series_heatmap(result.x[i][real], a.values[i][real], result.feature_names, method,
                                     f"sample {int(row)}, target {result.summary['target']}",
                                     folder / f"heatmap_{int(row)}.png",
                                     None if forecast is None else forecast[i])


def _overview(folder: Path, view: dict) -> None:
    import pandas as pd

    write_json(folder / "overview.json", view)
    if "tokens" in view:
        rows = [{"direction": d, **r} for d in ("positive", "negative") for r in view["tokens"][d]]
        write_csv(folder / "top_tokens.csv", pd.DataFrame(rows, columns=["direction", "token", "count", "mean"]))
    for part in ("features", "lags"):
        if part in view:
            write_csv(folder / f"{part}.csv", pd.DataFrame(view[part]))


def _arrays(path: Path, result) -> None:
    from rnnlab.runtime.io import atomic_write

    arrays = {"rows": result.rows, "tokens" if result.x.dtype.kind in "iu" else "x": result.x}
    if result.mask is not None:
        arrays["mask"] = result.mask
    for name, a in result.attributions.items():
        arrays[name] = a.values.astype(np.float32)
        arrays[f"{name}_steps"] = a.per_step().astype(np.float32)
    for name, a in result.layers.items():
        arrays[f"layer_{name}"] = a.values.astype(np.float32)
        arrays[f"layer_{name}_steps"] = a.per_step().astype(np.float32)
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
    for name, a in result.layers.items():
        frame[f"layer_{name}"] = a.per_step()[b, t]
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


def write_maximized(result, out: Path) -> Path:
    """maximize/: maximize.json (goal, activation against the training samples', nearest tokens), inputs.npz
    (every restart), best.csv (the best input per step and feature, or its tokens) and maximize.png."""
    import pandas as pd

    from rnnlab.report import explain_plots
    from rnnlab.runtime.io import atomic_write

    best = result.inputs[result.best]
    with folder_in_place(out) as tmp:
        write_json(tmp / "maximize.json", {**result.summary, "trace": result.trace})
        atomic_write(tmp / "inputs.npz", lambda fh: np.savez_compressed(fh, inputs=result.inputs,
                                                                        best=np.array(result.best)), mode="wb")
        frame = {"step": np.arange(len(best))}
        if result.tokens is not None:
            frame["token"] = result.tokens
        else:
            frame.update({n: best[:, d] for d, n in enumerate(result.feature_names)})
        write_csv(tmp / "best.csv", pd.DataFrame(frame))
        explain_plots.maximize_plot(best, result.feature_names, result.trace, result.goal, tmp / "maximize.png",
                                    result.tokens)
    return out
