"""Explain a trained run's predictions: attributions by every asked method, with their sanity checks.

    result = explain(load_run(path), Request(methods=["ig", "saliency"], samples="0:20"))
    result.attributions["ig"].per_step()     # (B, T)
    result.summary                           # what explain.json holds

`Request` says what (split, samples, methods, target, baseline, options); `explain` loads the split as the
run loaded its data, runs the methods (`methods.METHODS`) and the checks (`sanity`), and `write` puts the
files into the output folder (files.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rnnlab.config.validate import ConfigError
from rnnlab.explain import sanity
from rnnlab.explain.function import ModelFunction, Selection, parse_target
from rnnlab.explain.methods import DEFAULT, METHODS, Attribution, Options

SPLITS = ("test", "val", "train")
BASELINES = ("zero", "mean", "pad")
RANDOMISATION_STAGES = 3


@dataclass
class Request:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT))
    split: str = "test"
    samples: str = "0:20"
    target: str = "pred"
    baseline: str = "zero"
    options: Options = field(default_factory=Options)
    randomisation: bool = True


@dataclass
class Explained:
    rows: np.ndarray  # the samples' indices in the split
    x: np.ndarray  # the inputs as the model reads them (token ids or floats)
    mask: np.ndarray | None
    selection: Selection
    attributions: dict[str, Attribution]
    summary: dict


def explain(run, req: Request) -> Explained:
    """Attributions of run's predictions on req's samples, and the summary of methods and checks."""
    if run.kind.startswith("seq2seq"):
        raise ConfigError("explain: a seq2seq run is not supported (its output is a decoded sequence); "
                          "explain a sequence model")
    data = run.data()
    split = _split(data, req.split)
    rows = parse_samples(req.samples, len(split))
    x, mask = split.x[rows], None if split.mask is None else np.asarray(split.mask[rows], dtype=np.float32)
    f = ModelFunction(run.spec, run.params, run.state)
    target = parse_target(req.target, data.kind, run.spec.per_step, run.spec.output_size)
    z = f.embed(x)
    sel = target.select(f.outputs(z, mask), mask)
    base = baseline(req.baseline, f, z, mask, data)
    attributions, seconds = {}, {}
    for name in req.methods:
        t0 = time.perf_counter()
        attributions[name] = METHODS[name](f, z, mask, sel, base, req.options)
        seconds[name] = time.perf_counter() - t0
    checks = _checks(run, f, z, mask, sel, base, attributions, req, data.meta, x)
    summary = _summary(run, req, rows, data, sel, attributions, seconds, checks)
    return Explained(rows, x, mask, sel, attributions, summary)


def parse_samples(text: str, n: int) -> np.ndarray:
    """"A:B" (a slice, B may be left out), "K" (one sample) or "I,J,K" of the split's n samples."""
    try:
        if ":" in text:
            a, _, b = text.partition(":")
            lo, hi = int(a or 0), int(b) if b else n
            if not 0 <= lo < hi <= n:
                raise IndexError
            return np.arange(lo, hi)
        rows = np.array([int(s) for s in text.split(",")])
    except ValueError:
        raise ConfigError(f"--samples {text}: use A:B, K or I,J,K (sample numbers of the split)") from None
    except IndexError:
        raise ConfigError(f"--samples {text}: out of range (the split has {n} samples: 0:{n})") from None
    if len(rows) == 0 or rows.min() < 0 or rows.max() >= n:
        raise ConfigError(f"--samples {text}: out of range (the split has {n} samples: 0:{n})")
    return rows


def baseline(name: str, f: ModelFunction, z: np.ndarray, mask, data) -> np.ndarray:
    """(B, T, D) float64 reference inputs: zeros; the training split's mean input vector over its real
    steps; or (text models) the padding token's vector at every step."""
    if name == "zero":
        return np.zeros(z.shape)
    if name == "mean":
        train = f.embed(data.train.x[:2000])
        real = np.ones(train.shape[:2], bool) if data.train.mask is None else data.train.mask[:2000] != 0
        return np.broadcast_to(train[real].mean(axis=0), z.shape).astype(np.float64)
    if name == "pad":
        if not f.tokens:
            raise ConfigError("--baseline pad: the model reads no tokens (use zero or mean)")
        return np.broadcast_to(f.pad_vector(), z.shape).astype(np.float64)
    raise ConfigError(f"--baseline {name}: unknown (use {', '.join(BASELINES)})")


def _split(data, name: str):
    if name not in SPLITS:
        raise ConfigError(f"--split {name}: unknown (use {', '.join(SPLITS)})")
    split = getattr(data, name)
    if len(split) == 0:
        raise ConfigError(f"--split {name}: the run's {name} split is empty")
    return split


def _checks(run, f, z, mask, sel, base, attributions, req, meta, x) -> dict:
    """Deletion curves, model randomisation and the known answer, per method."""
    out: dict = {name: {} for name in attributions}
    for name, a in attributions.items():
        ranking = a.per_step() if a.signed else np.abs(a.per_step())
        out[name]["deletion"] = sanity.deletion_curve(f, z, mask, sel, base, ranking, req.options.seed)
    if req.randomisation:
        _randomisation(run, f, z, mask, sel, base, attributions, req, out)
    truth = sanity.truth_mask(meta, x, sel, mask)
    if truth is not None:
        for name, a in attributions.items():
            share = sanity.truth_share(np.abs(a.per_step()), truth)
            out[name]["truth_share"] = _mean(share)
    return out


def _randomisation(run, f, z, mask, sel, base, attributions, req, out) -> None:
    stages = sanity.randomised_params(run.spec, run.params, RANDOMISATION_STAGES, req.options.seed)
    for name, a in attributions.items():
        trained = np.abs(a.per_step())
        rows = []
        for block, params in stages:
            g = ModelFunction(run.spec, params, run.state)
            other = METHODS[name](g, z, mask, sel, base, req.options)
            rho = sanity.spearman_rows(trained, np.abs(other.per_step()), mask)
            rows.append({"randomised_down_to": block, "spearman": _mean(rho)})
        last = rows[-1]["spearman"] if rows else None
        out[name]["randomisation"] = {"stages": rows, "flagged": last is not None and last > sanity.RANDOMISATION_LIMIT}


def _mean(a: np.ndarray) -> float | None:
    a = np.asarray(a, dtype=np.float64)
    return float(np.nanmean(a)) if np.isfinite(a).any() else None


def _summary(run, req, rows, data, sel, attributions, seconds, checks) -> dict:
    methods = {}
    for name, a in attributions.items():
        entry = {"signed": a.signed, "seconds": round(seconds[name], 4), **checks[name]}
        if "completeness_gap_rel" in a.extras:
            rel = a.extras["completeness_gap_rel"]
            entry["completeness_gap_rel_max"] = float(np.max(rel))
            entry["completeness_gap_rel_mean"] = float(np.mean(rel))
            entry["completeness_ok"] = bool(np.max(rel) <= sanity.COMPLETENESS_LIMIT)
        if "window" in a.extras:
            entry["window"] = int(a.extras["window"])
        methods[name] = entry
    return {"run": str(run.path), "task": data.kind, "data": (data.meta or {}).get("task"), "split": req.split,
            "samples": [int(r) for r in rows], "target": req.target, "baseline": req.baseline,
            "ig_steps": req.options.steps, "ig_rule": req.options.rule, "methods": methods,
            "warnings": _warnings(methods)}


def _warnings(methods: dict) -> list[str]:
    out = []
    for name, m in methods.items():
        if m.get("completeness_ok") is False:
            out.append(f"{name}: the attributions' sum misses F(x) - F(baseline) by up to "
                       f"{m['completeness_gap_rel_max']:.2%} (over {sanity.COMPLETENESS_LIMIT:.0%}): "
                       f"{'raise --steps' if name == 'ig' else 'more evaluations needed'}")
    for name, m in methods.items():
        if m.get("randomisation", {}).get("flagged"):
            rho = m["randomisation"]["stages"][-1]["spearman"]
            out.append(f"{name}: Spearman {rho:.2f} between the trained and the randomised model (over "
                       f"{sanity.RANDOMISATION_LIMIT}): the attributions barely depend on the learned weights")
    return out
