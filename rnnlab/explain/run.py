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
from rnnlab.explain.layers import layer_attributions
from rnnlab.explain.methods import DEFAULT, METHODS, Attribution, Options
from rnnlab.explain.overview import feature_names, overview

SPLITS = ("test", "val", "train")
BASELINES = ("zero", "mean", "pad")
RANDOMISATION_STAGES = 3


@dataclass
class Request:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT))
    split: str = "test"
    samples: str | None = None  # None: the first 20 (or fewer) samples
    target: str = "pred"
    baseline: str = "zero"
    options: Options = field(default_factory=Options)
    randomisation: bool = True
    layers: bool = True  # layer integrated gradients of every recurrent layer
    overview: int = 500  # samples of the split for the global view (0: none)
    overview_method: str = "gxi"
    input: str | None = None  # a file of new inputs (read as `rnnlab predict --input` reads it) instead of a split


@dataclass
class Explained:
    rows: np.ndarray  # the samples' indices in the split
    x: np.ndarray  # the inputs as the model reads them (token ids or floats)
    mask: np.ndarray | None
    selection: Selection
    attributions: dict[str, Attribution]
    summary: dict
    layers: dict = field(default_factory=dict)  # recurrent block name -> layers.LayerAttribution
    overview: dict | None = None  # overview.overview's global view
    outputs: np.ndarray | None = None  # the model's outputs on x (logits; regression in model units)
    feature_names: list[str] = field(default_factory=list)


def explain(run, req: Request) -> Explained:
    """Attributions of run's predictions on req's samples, and the summary of methods and checks (BLAS on
    one thread: `runtime.cpu.one_blas_thread`)."""
    from rnnlab.runtime.cpu import one_blas_thread

    with one_blas_thread():
        return _explain(run, req)


def _explain(run, req: Request) -> Explained:
    if run.kind.startswith("seq2seq"):
        raise ConfigError("explain: a seq2seq run is not supported (its output is a decoded sequence); "
                          "explain a sequence model")
    if req.overview and (req.overview_method not in METHODS or req.overview_method == "attention"):
        raise ConfigError(f"--overview-method {req.overview_method}: unknown "
                          f"(choose from {', '.join(m for m in METHODS if m != 'attention')})")
    data = run.data()
    split = _split(data, req.split) if req.input is None else _input_split(run, req.input)
    rows = parse_samples(req.samples or f"0:{min(20, len(split))}", len(split))
    x, mask = split.x[rows], None if split.mask is None else np.asarray(split.mask[rows], dtype=np.float32)
    f = ModelFunction(run.spec, run.params, run.state)
    target = parse_target(req.target, data.kind, run.spec.per_step, run.spec.output_size)
    z = f.embed(x)
    outputs = f.outputs(z, mask)
    sel = target.select(outputs, mask)
    base = baseline(req.baseline, f, z, mask, data)
    attributions, seconds = {}, {}
    for name in req.methods:
        t0 = time.perf_counter()
        attributions[name] = METHODS[name](f, z, mask, sel, base, req.options)
        seconds[name] = time.perf_counter() - t0
    checks = _checks(run, f, z, mask, sel, base, attributions, req, data.meta, x)
    summary = _summary(run, req, rows, data, sel, attributions, seconds, checks)
    layers = layer_attributions(f, z, mask, sel, base, req.options) if req.layers else {}
    summary["layers"] = {name: _layer_summary(a) for name, a in layers.items()}
    summary["warnings"] += [f"layer {name}: the attributions' sum misses F(x) - F(baseline) by up to "
                            f"{m['completeness_gap_rel_max']:.2%} (over {sanity.COMPLETENESS_LIMIT:.0%}): raise --steps"
                            for name, m in summary["layers"].items() if not m["completeness_ok"]]
    glance = _overview(run, f, split, data, req, target) if req.input is None else None
    if glance is not None:
        summary["overview"] = glance
    names = [] if f.tokens else feature_names(data.meta or {}, z.shape[2])
    return Explained(rows, x, mask, sel, attributions, summary, layers, glance, outputs, names)


def _overview(run, f, split, data, req: Request, target) -> dict | None:
    """The global view over req.overview samples spread evenly over the split (binary models: towards class 1, so
    that positive and negative tokens mean the two classes)."""
    if req.overview <= 0:
        return None
    if target.kind == "binary":
        target = parse_target("class:1", target.kind, target.per_step, target.n_out)
    rows = np.unique(np.linspace(0, len(split) - 1, min(req.overview, len(split))).astype(int))  # splits may be sorted
    vocab = (run.info.get("data") or {}).get("vocab")
    return overview(f, split, data.kind, rows, req.overview_method, target,
                    lambda z, m: baseline(req.baseline, f, z, m, data), req.options, vocab, data.meta)


def _layer_summary(a) -> dict:
    """Per recurrent layer: the completeness gap and the mean |attribution| per step over the samples."""
    rel = a.extras["completeness_gap_rel"]
    return {"completeness_gap_rel_max": float(np.max(rel)),
            "completeness_ok": bool(np.max(rel) <= sanity.COMPLETENESS_LIMIT),
            "mean_abs_by_step": np.abs(a.per_step()).mean(axis=0).tolist()}


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


def _input_split(run, source: str):
    """New inputs from a file as a split without targets (read with the run's own preprocessing)."""
    from rnnlab.data import inputs as reader
    from rnnlab.data.base import Split
    from rnnlab.predict.sequence import check_fits

    got = reader.read(source, run.config.data, run.info.get("data", {}), np.dtype(run.config.train.dtype))
    check_fits(run.spec, got.x)
    if len(got) == 0:
        raise ConfigError(f"--input {source}: no samples in the file")
    return Split(got.x, np.zeros(len(got)), got.mask)


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
    split = req.split if req.input is None else "input"
    return {"run": str(run.path), "task": data.kind, "data": (data.meta or {}).get("task"), "split": split,
            **({} if req.input is None else {"input": str(req.input)}),
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


@dataclass
class Maximized:
    goal: str
    inputs: np.ndarray  # (restarts, T, D): the optimised inputs (a text model's embedding vectors)
    best: int
    summary: dict
    tokens: list[str] | None = None  # text: the best input's nearest token per step
    feature_names: list[str] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)


def maximize_inputs(run, goal_text: str, length: int = 0, iterations: int = 300, seed: int = 0) -> Maximized:
    """Activation maximisation (`maximize`) of run's model for goal_text (unit:L:K, class:K, output:K), over
    inputs of `length` steps (0: the training sequences' length), compared with the training samples."""
    from rnnlab.runtime.cpu import one_blas_thread

    with one_blas_thread():
        return _maximize_inputs(run, goal_text, length, iterations, seed)


def _maximize_inputs(run, goal_text, length, iterations, seed) -> Maximized:
    from rnnlab.explain import maximize as mx

    if run.kind.startswith("seq2seq"):
        raise ConfigError("explain --maximize: a seq2seq run is not supported; use a sequence model")
    if iterations < 1:
        raise ConfigError(f"--iterations {iterations}: needs at least 1")
    data = run.data()
    f = ModelFunction(run.spec, run.params, run.state)
    goal = mx.parse_goal(goal_text, run.spec, data.kind)
    train = data.train
    pick = np.unique(np.linspace(0, len(train) - 1, min(mx.REFERENCE_SAMPLES, len(train))).astype(int))
    x = train.x[pick]  # spread over the split: a split may be sorted by class
    mask = None if train.mask is None else np.asarray(train.mask[pick], dtype=np.float32)
    z_train = f.embed(x)
    T = length or int(z_train.shape[1] if mask is None else mask.sum(axis=1).max())
    if T < 1:
        raise ConfigError(f"--length {length}: needs at least 1 step")
    scale = _input_scale(f, z_train, mask)
    found = mx.maximize(f, goal, T, scale, seed, iterations)
    best = found["best"]
    ref = mx.reference(f, goal, z_train, mask)
    summary = {"run": str(run.path), "goal": goal_text, "length": T, "iterations": iterations, "seed": seed,
               "activation": float(found["activations"][best]), "restarts": [float(a) for a in found["activations"]],
               "training_samples": ref, "penalties": {"l2": mx.L2, "smooth": mx.SMOOTH}}
    tokens = None
    if f.tokens:
        vocab = (run.info.get("data") or {}).get("vocab") or []
        skip = {i for i, w in enumerate(vocab) if w.startswith("<")} | {run.spec.padding_idx or 0}
        tokens = mx.nearest_tokens(found["inputs"][best], run.params["embedding.weight"], vocab, skip)
        summary["nearest_tokens"] = tokens
    names = [] if f.tokens else feature_names(data.meta or {}, z_train.shape[2])
    return Maximized(goal_text, found["inputs"], best, summary, tokens, names, found["trace"])


def _input_scale(f, z_train: np.ndarray, mask) -> np.ndarray:
    """Per feature, the spread of the inputs: the training inputs' standard deviation over their real steps
    (text: of the embedding table), never 0."""
    from rnnlab.explain.function import feature_std

    s = f.params["embedding.weight"].astype(np.float64).std(axis=0) if f.tokens else feature_std(z_train, mask)
    return np.where(s > 0, s, 1.0)
