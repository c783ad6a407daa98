"""Adversarial examples (`rnnlab attack`): FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) against
a trained run's loss, and the model's accuracy (or error) as the budget eps grows.

    result = sweep(load_run(path), "test", "0:500", ["fgsm", "pgd"], [0, 0.01, 0.05, 0.1])
    result.summary["results"]     # per (method, eps): accuracy (classification) or mse and mae (regression)

The attacks work on z, what the recurrent layers read (`function.ModelFunction`): the series themselves, or a
text model's embedding vectors (tokens are discrete; Miyato et al. 2016 perturb their embeddings instead).

The ball, and what eps means (eps is relative to the input's scale, so one list suits every run):

* series inputs: an L-infinity ball, |delta[t, d]| <= eps * std_d, std_d the standard deviation of feature d
  over the real steps of the run's train split (eps = 0.1: every value may move by a tenth of its feature's
  spread). FGSM is delta = eps * std * sign(g).
* text (embedding vectors): an L2 ball per sample over all its real steps' embeddings (Miyato's
  r = eps * g / ||g||_2), of radius eps * mean_norm * sqrt(n), mean_norm the mean L2 norm of the embedding
  vectors of the train split's tokens and n the sample's number of real steps: eps = 0.1 is the budget of
  moving every token by a tenth of a typical embedding's length, spent where the gradient points.

PGD starts at a uniformly random point of the ball (seeded), takes `steps` steps of size
2.5 * eps / steps (in the same relative units: the step moves each value by that times std_d under
L-infinity, the sample by that times its radius unit under L2) along sign(g) or g / ||g||_2, projects back into
the ball after each step, and keeps each sample's point of highest loss among its iterates (the last one
included) and FGSM's point: never weaker than FGSM on the loss. (Where the loss is nearly linear over the ball,
FGSM's step is the optimum, and 10 steps from a random start reach about 98 % of its gain under L2.)

The loss is the run's own evaluation loss (train.loss or the data set's default, with its options, without
label smoothing: `train.tasks.sequence.loss_setup`), one value per sample; a per-step model (pooling
"none") takes the mean over the sample's real steps that its loss counts (the split's target mask). Padded
steps are never perturbed. Accuracy is the run's validation accuracy (`train.tasks.predict.accuracy`: a
binary logit >= 0, the argmax of classes, over the counted steps of a per-step model); regression error is
MSE and MAE in the model's scaled units (the units it was trained in).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rnnlab.config.validate import ConfigError
from rnnlab.explain.function import ModelFunction, feature_std

METHOD_NAMES = ("fgsm", "pgd")
DEFAULT_EPS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
DEFAULT_SAMPLES = 500  # the first 500 samples of the split (all of a smaller one) unless --samples says
DEFAULT_LOSS = {"binary": "bce", "multiclass": "cross_entropy", "regression": "mse"}
TOP_TOKENS = 20  # tokens listed in attack.json and the table (tokens.csv has every token seen)
TOKEN_MIN_COUNT = 3  # a token is listed there when it occurs at least this often in the samples


@dataclass(frozen=True)
class Ball:
    """The threat model for eps = 1: norm "linf" with unit (1, 1, D) (each feature's std), or "l2" with
    unit (B, 1, 1) (each sample's radius: mean embedding norm * sqrt(real steps)). eps scales it."""

    norm: str
    unit: np.ndarray

    def fgsm_step(self, g: np.ndarray, size: float, real: np.ndarray) -> np.ndarray:
        """size * unit times the steepest-ascent direction of g (sign, or g / ||g||_2), zero on padding."""
        g = g * real
        if self.norm == "linf":
            return size * self.unit * np.sign(g)
        n = np.sqrt((g * g).sum(axis=(1, 2), keepdims=True))
        return size * self.unit * np.divide(g, n, out=np.zeros_like(g), where=n > 0)

    def project(self, delta: np.ndarray, eps: float, real: np.ndarray) -> np.ndarray:
        r = eps * self.unit
        if self.norm == "linf":
            return np.clip(delta, -r, r) * real
        n = np.sqrt((delta * delta).sum(axis=(1, 2), keepdims=True))
        return delta * np.minimum(1.0, np.divide(r, n, out=np.ones_like(n), where=n > 0)) * real

    def random(self, shape, eps: float, real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniform point of the ball (of each sample's ball under L2, over its real entries)."""
        r = eps * self.unit
        if self.norm == "linf":
            return rng.uniform(-1.0, 1.0, shape) * r * real
        d = rng.standard_normal(shape) * real
        n = np.sqrt((d * d).sum(axis=(1, 2), keepdims=True))
        dims = np.maximum(real.sum(axis=(1, 2), keepdims=True) * shape[2], 1)
        radius = r * rng.uniform(0.0, 1.0, n.shape) ** (1.0 / dims)
        return np.divide(d, n, out=np.zeros_like(d), where=n > 0) * radius

    def norms(self, delta: np.ndarray) -> np.ndarray:
        """Each sample's perturbation in the ball's own measure, per unit: max |delta| / std (linf), or
        ||delta||_2 / unit (l2): at most eps."""
        if self.norm == "linf":
            u = np.where(self.unit > 0, self.unit, np.inf)
            return np.abs(delta / u).max(axis=(1, 2))
        return np.sqrt((delta * delta).sum(axis=(1, 2))) / self.unit[:, 0, 0]


# ------------------------------------------------------------------------------ loss and gradient


def loss_fn(kind: str, loss=None):
    """fn(pred, target, mask=None) -> (value, dpred): `loss` (a function, or an engine loss's name) or the
    default loss of the task kind (bce, cross_entropy, mse)."""
    from rnnlab.engine import losses

    if callable(loss):
        return loss
    return losses.get_loss(loss or DEFAULT_LOSS[kind])


def _targets(kind: str, y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """y as the loss takes it for outputs `like`: integer labels for multiclass, floats shaped as the
    outputs otherwise (binary: one logit per sequence or step)."""
    if kind == "multiclass":
        return np.asarray(y)
    return np.asarray(y).reshape(like.shape).astype(like.dtype)


def _real(z: np.ndarray, mask) -> np.ndarray:
    """(B, T, 1) float: 1 on real steps, 0 on padding."""
    if mask is None:
        return np.ones((*z.shape[:2], 1))
    return (np.asarray(mask) != 0).astype(np.float64)[:, :, None]


def _per_sample(out, target, loss, lmask, dout: np.ndarray | None = None) -> np.ndarray:
    """Each row's loss (the engine loss on that row alone); its gradient into dout's row when given."""
    values = np.empty(len(out))
    for i in range(len(out)):
        m = None if lmask is None else lmask[i : i + 1]
        values[i], g = loss(out[i : i + 1], target[i : i + 1], mask=m)
        if dout is not None:
            dout[i] = g[0]
    return values


def _loss_mask(f: ModelFunction, mask, loss_mask):
    """Per-step models: the steps the loss counts (given, else every real step); None for one output."""
    if not f.spec.per_step:
        return None
    if loss_mask is not None:
        return np.asarray(loss_mask)
    return None if mask is None else (np.asarray(mask) != 0).astype(np.float64)


def _pieces(f: ModelFunction, z: np.ndarray, mask) -> list[tuple[np.ndarray, slice]]:
    """(rows, columns) of each forward/backward: rows sorted by length in chunks of `f.chunks`, each cut to the
    columns where one of its rows has a real step (outputs do not depend on the padding around a row)."""
    from rnnlab.train.batches import real_columns

    T = z.shape[1]
    if mask is None:
        return [(np.arange(len(z))[s], slice(0, T)) for s in f.chunks(z.shape)]
    m = np.asarray(mask) != 0
    order = np.argsort(-m.sum(axis=1), kind="stable")
    return [(order[s], real_columns(m[order[s]], T)) for s in f.chunks(z.shape)]


def loss_and_grad(f: ModelFunction, z: np.ndarray, mask, y_true: np.ndarray, kind: str, loss=None,
                  loss_mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's loss L (B,) and its gradient dL/dz (B, T, D) float64 (zero on padded steps), by the
    engine's forward and backward in chunks. kind: regression, binary or multiclass; loss: see `loss_fn`;
    loss_mask (B, T): the steps a per-step model's loss counts (default: its real steps)."""
    from rnnlab.engine import model as M

    fn = loss_fn(kind, loss)
    lmask = _loss_mask(f, mask, loss_mask)
    L = np.empty(len(z))
    G = np.zeros(z.shape, dtype=np.float64)
    for rows, cols in _pieces(f, z, mask):
        m = None if mask is None else np.asarray(mask)[rows, cols]
        y, cache = M.forward(f.spec_z, f.params_z, np.asarray(z)[rows, cols], m, train=False, state=f.state)
        yt = y_true[rows, cols] if f.spec.per_step else y_true[rows]
        dy = np.empty_like(y)
        L[rows] = _per_sample(y, _targets(kind, yt, y), fn, None if lmask is None else lmask[rows, cols], dy)
        G[rows, cols] = M.backward(f.spec_z, f.params_z, dy, cache)[1]
    return L, G * _real(z, mask)


def loss_values(f: ModelFunction, z: np.ndarray, mask, y_true: np.ndarray, kind: str, loss=None,
                loss_mask=None, out: np.ndarray | None = None) -> np.ndarray:
    """Each sample's loss (B,) without the gradient (from the outputs `out` when given)."""
    out = f.outputs(z, mask) if out is None else out
    return _per_sample(out, _targets(kind, y_true, out), loss_fn(kind, loss), _loss_mask(f, mask, loss_mask))


# ------------------------------------------------------------------------------ the attacks


def _at(f: ModelFunction, z: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return (z + delta).astype(f.dtype, copy=False)


def fgsm(f: ModelFunction, z, mask, y_true, kind: str, eps: float, ball: Ball, loss=None, loss_mask=None,
         grad: np.ndarray | None = None) -> np.ndarray:
    """The fast gradient sign method: one step of the full budget along the loss gradient's steepest-ascent
    direction of the ball's norm (sign(g) under L-infinity, g / ||g||_2 under L2). grad: the loss gradient
    at z when already known (it does not depend on eps). Returns delta (B, T, D)."""
    real = _real(z, mask)
    if eps == 0:
        return np.zeros(z.shape)
    g = loss_and_grad(f, z, mask, y_true, kind, loss, loss_mask)[1] if grad is None else grad
    return ball.project(ball.fgsm_step(g, eps, real), eps, real)


def pgd(f: ModelFunction, z, mask, y_true, kind: str, eps: float, ball: Ball, steps: int = 10,
        step_size: float | None = None, seed: int = 0, random_start: bool = True, loss=None,
        loss_mask=None, grad: np.ndarray | None = None) -> np.ndarray:
    """Projected gradient ascent on the loss inside the ball: a random start (uniform in the ball), `steps`
    steps of step_size (default 2.5 * eps / steps, relative like eps), each projected back. Per sample it
    returns the point of highest loss among its iterates and FGSM's point (so it is never weaker than FGSM
    on the loss: where the loss is nearly linear in the ball, FGSM's corner is the optimum, which 10 steps from
    a random start only approach). grad: the loss gradient at z, as for `fgsm`. Returns delta (B, T, D)."""
    if steps < 1:
        raise ConfigError(f"--pgd-steps {steps}: PGD needs at least 1 step")
    real = _real(z, mask)
    if eps == 0:
        return np.zeros(z.shape)
    size = 2.5 * eps / steps if step_size is None else step_size
    best = fgsm(f, z, mask, y_true, kind, eps, ball, loss, loss_mask, grad)
    best_loss = loss_values(f, _at(f, z, best), mask, y_true, kind, loss, loss_mask)
    rng = np.random.default_rng(seed)
    delta = ball.random(z.shape, eps, real, rng) if random_start else np.zeros(z.shape)
    for k in range(steps + 1):
        if k < steps:
            L, g = loss_and_grad(f, _at(f, z, delta), mask, y_true, kind, loss, loss_mask)
        else:
            L = loss_values(f, _at(f, z, delta), mask, y_true, kind, loss, loss_mask)
        better = L > best_loss
        best[better], best_loss[better] = delta[better], L[better]
        if k < steps:
            delta = ball.project(delta + ball.fgsm_step(g, size, real), eps, real)
    return best


ATTACKS = {"fgsm": fgsm, "pgd": pgd}


# ------------------------------------------------------------------------------ the sweep


@dataclass
class Attacked:
    summary: dict  # what attack.json holds
    results: list[dict]  # one row per (method, eps): attack.csv
    tokens: list[dict] | None  # text: every token perturbed at the largest eps (tokens.csv), most moved first


def parse_methods(text: str) -> list[str]:
    from rnnlab.explain import methods

    return methods.parse_methods(text, METHOD_NAMES)


def parse_eps(text: str) -> list[float]:
    """Budgets, comma-separated, each a number >= 0 (relative to the input scale: see the module); sorted."""
    out = []
    for part in text.split(","):
        try:
            v = float(part)
        except ValueError:
            raise ConfigError(f"--eps {text}: {part.strip() or '(empty)'} is not a number "
                              "(use e.g. 0,0.01,0.05,0.1)") from None
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"--eps {text}: {part.strip()} must be a finite number >= 0")
        out.append(v)
    return sorted(set(out))


def input_ball(f: ModelFunction, data, z: np.ndarray, mask) -> tuple[Ball, dict]:
    """The ball of eps = 1 for inputs z (see the module) and what it was measured as (for attack.json)."""
    train = data.train
    real_train = None if train.mask is None else np.asarray(train.mask) != 0
    if f.tokens:
        table = np.asarray(f.params["embedding.weight"], dtype=np.float64)
        ids = train.x if real_train is None else train.x[real_train]
        mean_norm = float(np.linalg.norm(table, axis=1)[np.asarray(ids).ravel()].mean())
        n_real = _real(z, mask).sum(axis=1, keepdims=True)  # (B, 1, 1)
        return Ball("l2", mean_norm * np.sqrt(n_real)), {"norm": "l2", "mean_embedding_norm": mean_norm}
    std = feature_std(train.x, train.mask)
    return Ball("linf", std.reshape(1, 1, -1)), {"norm": "linf", "feature_std": [float(s) for s in std]}


def metrics(kind: str, out: np.ndarray, y: np.ndarray, tmask) -> dict[str, float]:
    """accuracy (binary, multiclass) as the run's validation accuracy, or mse and mae (regression)."""
    from rnnlab.engine import losses
    from rnnlab.train.tasks.predict import accuracy

    if kind == "regression":
        t = _targets(kind, y, out)
        return {"mse": losses.mse(out, t, mask=tmask)[0], "mae": losses.mae(out, t, mask=tmask)[0]}
    return {"accuracy": accuracy(kind, SimpleNamespace(y=y, target_mask=tmask), out)}


def _decisions(kind: str, out: np.ndarray) -> np.ndarray | None:
    if kind == "binary":
        return out[..., 0] >= 0
    return out.argmax(axis=-1) if kind == "multiclass" else None


def _flipped(kind: str, out, clean, tmask) -> float | None:
    """The share of decisions (counted steps for a per-step model) that differ from the clean ones."""
    a, b = _decisions(kind, out), _decisions(kind, clean)
    if a is None:
        return None
    changed = a != b
    return float(changed[tmask > 0].mean() if tmask is not None else changed.mean())


def sweep(run, split: str = "test", samples: str | None = None, methods=METHOD_NAMES, epsilons=DEFAULT_EPS,
          steps: int = 10, seed: int = 0, vocab: list[str] | None = None) -> Attacked:
    """Every method at every eps on the split's samples (default: its first 500): the metric, the mean
    attack loss and the share of flipped decisions, with the clean values (eps = 0); for text, the tokens
    whose embeddings moved most under the strongest attack (PGD, else FGSM, at the largest eps), with BLAS
    on one thread (`runtime.cpu.one_blas_thread`)."""
    from rnnlab.runtime.cpu import one_blas_thread

    with one_blas_thread():
        return _sweep(run, split, samples, methods, epsilons, steps, seed, vocab)


def _sweep(run, split, samples, methods, epsilons, steps, seed, vocab) -> Attacked:
    from rnnlab.explain.run import _split, parse_samples
    from rnnlab.train.tasks.sequence import loss_setup

    if run.kind.startswith("seq2seq"):
        raise ConfigError("attack: a seq2seq run is not supported (its output is a decoded sequence); "
                          "attack a sequence model")
    if steps < 1:
        raise ConfigError(f"--pgd-steps {steps}: PGD needs at least 1 step")
    t0 = time.perf_counter()
    data = run.data()
    part = _split(data, split)
    samples = samples or f"0:{min(DEFAULT_SAMPLES, len(part))}"
    rows = parse_samples(samples, len(part))
    kind = data.kind
    x, y = part.x[rows], part.y[rows]
    mask = None if part.mask is None else np.asarray(part.mask[rows], dtype=np.float32)
    tmask = None if part.target_mask is None else np.asarray(part.target_mask[rows])
    f = ModelFunction(run.spec, run.params, run.state)
    lmask = _counted(f, mask, tmask)
    name, opts = loss_setup(run.config, data)
    loss = _engine_loss(name, opts)
    z = f.embed(x)
    ball, scale = input_ball(f, data, z, mask)
    clean_out = f.outputs(z, mask)
    clean_loss = loss_values(f, z, mask, y, kind, loss, lmask, out=clean_out)
    clean = {**metrics(kind, clean_out, y, tmask), "loss": float(clean_loss.mean())}
    results, strongest, grad = [], None, None
    for method in methods:
        for eps in epsilons:
            t1 = time.perf_counter()
            if eps == 0:
                row = {"method": method, "eps": 0.0, **clean, "max_norm": 0.0}
            else:
                kw = {"steps": steps, "seed": seed} if method == "pgd" else {}
                if grad is None:  # the loss gradient at the clean inputs: FGSM's direction at every eps
                    grad = loss_and_grad(f, z, mask, y, kind, loss, lmask)[1]
                delta = ATTACKS[method](f, z, mask, y, kind, eps, ball, loss=loss, loss_mask=lmask, grad=grad,
                                        **kw)
                out = f.outputs(_at(f, z, delta), mask)
                adv_loss = loss_values(f, _at(f, z, delta), mask, y, kind, loss, lmask, out=out)
                row = {"method": method, "eps": float(eps), **metrics(kind, out, y, tmask),
                       "loss": float(adv_loss.mean()), "max_norm": float(ball.norms(delta).max())}
                if strongest is None or (eps, method == "pgd") >= (strongest[0], strongest[1] == "pgd"):
                    strongest = (eps, method, delta)
            flipped = _flipped(kind, out if eps else clean_out, clean_out, tmask)
            if flipped is not None:
                row["flipped"] = flipped
            row["seconds"] = round(time.perf_counter() - t1, 3)
            results.append(row)
    tokens = None
    if f.tokens and strongest is not None:
        tokens = token_moves(x, mask, strongest[2], vocab, strongest[0] * scale["mean_embedding_norm"])
    summary = {
        "run": str(run.path), "task": kind, "data": (data.meta or {}).get("task"), "split": split,
        "samples": samples, "n_samples": int(len(rows)), "inputs": "embeddings" if f.tokens else "series",
        "ball": scale, "eps_relative_to": ("mean embedding norm * sqrt(real steps) per sample (L2)" if f.tokens
                                           else "each feature's std over the train split (L-infinity)"),
        "loss": name, "metrics": [k for k in clean if k != "loss"], "methods": list(methods),
        "epsilons": [float(e) for e in epsilons],
        "pgd": {"steps": steps, "step_size": "2.5 * eps / steps", "random_start": True, "seed": seed,
                "keeps": "each sample's point of highest loss: its iterates and FGSM's point"},
        "clean": clean, "results": results, "seconds": round(time.perf_counter() - t0, 2),
    }
    if tokens is not None:
        summary["tokens_at"] = {"method": strongest[1], "eps": float(strongest[0])}
        summary["tokens"] = [t for t in tokens if t["count"] >= TOKEN_MIN_COUNT][:TOP_TOKENS]
        summary["tokens_min_count"] = TOKEN_MIN_COUNT
    return Attacked(summary, results, tokens)


def _counted(f: ModelFunction, mask, tmask):
    """A per-step model's loss steps: real and counted by the split's target mask."""
    if not f.spec.per_step:
        return None
    real = None if mask is None else (np.asarray(mask) != 0).astype(np.float64)
    if tmask is None:
        return real
    return np.asarray(tmask, dtype=np.float64) * (1.0 if real is None else real)


def _engine_loss(name: str, opts: dict):
    from rnnlab.engine.parallel import make_loss

    return make_loss(name, opts)


def token_moves(x: np.ndarray, mask, delta: np.ndarray, vocab: list[str] | None, even: float) -> list[dict]:
    """Per token id: how often it occurs on the samples' real steps and the mean L2 norm of its embedding's
    perturbation there (`vs_even`: that over eps * mean embedding norm, the norm of an even spread of the
    budget), most moved first."""
    real = np.ones(x.shape, bool) if mask is None else np.asarray(mask) != 0
    ids = np.asarray(x)[real]
    norms = np.sqrt((delta * delta).sum(axis=2))[real]
    size = int(ids.max()) + 1 if len(ids) else 0
    count = np.bincount(ids, minlength=size)
    total = np.bincount(ids, weights=norms, minlength=size)
    seen = np.flatnonzero(count)
    mean = total[seen] / count[seen]
    out = []
    for i in np.argsort(-mean, kind="stable"):
        t = int(seen[i])
        word = vocab[t] if vocab is not None and 0 <= t < len(vocab) else str(t)
        out.append({"token": word, "id": t, "count": int(count[t]), "mean_norm": float(mean[i]),
                    "vs_even": float(mean[i] / even) if even > 0 else None})
    return out


# ------------------------------------------------------------------------------ the attack/ folder


def write(result: Attacked, out: Path) -> Path:
    """attack.json, attack.csv, attack.png (and tokens.csv for text) into folder out, whole or not at all."""
    import pandas as pd

    from rnnlab.runtime.io import folder_in_place, write_csv, write_json

    with folder_in_place(out) as tmp:
        write_json(tmp / "attack.json", result.summary)
        write_csv(tmp / "attack.csv", pd.DataFrame(result.results))
        plot(result.summary, tmp / "attack.png")
        if result.tokens is not None:
            write_csv(tmp / "tokens.csv", pd.DataFrame(result.tokens, columns=["token", "id", "count", "mean_norm",
                                                                               "vs_even"]))
    return out


def plot(summary: dict, path: Path) -> Path:
    """The metric (each of them, for regression) against eps, one line per method; the clean value dashed."""
    from rnnlab.report.plots import plt, save_figure

    names = summary["metrics"]
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], names, strict=True):
        for method in summary["methods"]:
            rows = [r for r in summary["results"] if r["method"] == method]
            ax.plot([r["eps"] for r in rows], [r[metric] for r in rows], marker="o", label=method.upper())
        ax.axhline(summary["clean"][metric], color="grey", ls="--", lw=1, label="clean")
        unit = "embedding norm (L2)" if summary["inputs"] == "embeddings" else "feature std (L-inf)"
        ax.set(xlabel=f"eps (fraction of the {unit})", ylabel=metric,
               title=f"{metric} under attack ({summary['n_samples']} {summary['split']} samples)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
