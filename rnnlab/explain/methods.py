"""Attribution methods, one registry: each maps (model function, inputs z, mask, selection, baseline) to an
`Attribution` with values (B, T, D) over the inputs (a text model's embedding vectors).

    saliency    |dF/dz| (Simonyan et al. 2014)
    smoothgrad  the mean gradient over noisy copies of z (Smilkov et al. 2017), times the input
    gxi         gradient x input
    ig          integrated gradients from the baseline (Sundararajan et al. 2017), with a quadrature rule
    occlusion   F(z) - F(z with a window of steps, per feature for series, set to the baseline)
    attention   the attention pooling's weights (models that have it), per step
    shap        Shapley values of groups of consecutive steps (TimeSHAP's grouping), by shap's
                PermutationExplainer over coalitions: a group left out is set to the baseline

Per step (`per_step`): signed methods sum over the features (a token's attribution is the sum over its
embedding dimensions), unsigned ones (saliency) sum the magnitudes. Padded steps get exactly 0.
Adding a method is a function and a line in METHODS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rnnlab.config.validate import ConfigError


@dataclass
class Options:
    steps: int = 64  # integrated gradients' quadrature points
    rule: str = "gauss-legendre"  # or "midpoint"
    noise_samples: int = 25  # smoothgrad
    noise_level: float = 0.15  # smoothgrad: sigma as a fraction of each sample's input range
    window: int = 0  # occlusion's steps per window (0: the length / 64, at least 1)
    shap_groups: int = 16  # shap: players per sample, consecutive groups of real steps
    shap_evals: int = 0  # shap: model evaluations per sample (0: 10 permutations, 10 (2 groups + 1))
    seed: int = 0


@dataclass
class Attribution:
    values: np.ndarray  # (B, T, D)
    signed: bool
    extras: dict = field(default_factory=dict)  # per-sample arrays, e.g. ig's completeness gap

    def per_step(self) -> np.ndarray:
        """(B, T): the sum over the features (of magnitudes, for an unsigned method)."""
        v = self.values if self.signed else np.abs(self.values)
        return v.sum(axis=2)


def _masked(values: np.ndarray, mask) -> np.ndarray:
    return values if mask is None else values * (np.asarray(mask) != 0)[:, :, None]


def saliency(f, z, mask, sel, base, opt: Options) -> Attribution:
    _, g = f.value_and_grad(z, mask, sel)
    return Attribution(_masked(np.abs(g), mask), signed=False)


def gradient_x_input(f, z, mask, sel, base, opt: Options) -> Attribution:
    _, g = f.value_and_grad(z, mask, sel)
    return Attribution(_masked(g * z, mask), signed=True)


def smoothgrad(f, z, mask, sel, base, opt: Options) -> Attribution:
    """The mean gradient over opt.noise_samples copies with Gaussian noise, times the input; the copies of all
    samples run as rows of one batch."""
    k, B = opt.noise_samples, len(z)
    rng = np.random.default_rng(opt.seed)
    span = (z.max(axis=(1, 2)) - z.min(axis=(1, 2))).reshape(B, 1, 1, 1)
    noisy = z[:, None] + rng.standard_normal((B, k, *z.shape[1:])) * (opt.noise_level * span)
    rows = noisy.reshape(B * k, *z.shape[1:]).astype(z.dtype)
    m = None if mask is None else np.repeat(mask, k, axis=0)
    _, g = f.value_and_grad(rows, m, sel.repeat(k))
    return Attribution(_masked(g.reshape(B, k, *z.shape[1:]).mean(axis=1) * z, mask), signed=True)


def quadrature(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Points alpha in (0, 1) and weights summing to 1 for the integral over [0, 1]."""
    if rule == "gauss-legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if rule == "midpoint":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    raise ConfigError(f"--rule {rule}: unknown (use gauss-legendre or midpoint)")


def integrated_gradients(f, z, mask, sel, base, opt: Options) -> Attribution:
    """(z - base) times the integral of dF/dz along the straight path, every (sample, point) pair a row of
    one batch. extras: F(z), F(base), the sum of the attributions and the completeness gap
    |sum - (F(z) - F(base))|, absolute and relative to |F(z) - F(base)|."""
    alphas, weights = quadrature(opt.steps, opt.rule)
    B, k = len(z), len(alphas)
    diff = z.astype(np.float64) - base
    path = base[:, None] + alphas[None, :, None, None] * diff[:, None]
    m = None if mask is None else np.repeat(mask, k, axis=0)
    _, g = f.value_and_grad(path.reshape(B * k, *z.shape[1:]).astype(z.dtype), m, sel.repeat(k))
    avg = np.tensordot(g.reshape(B, k, *z.shape[1:]), weights, axes=([1], [0]))
    values = _masked(diff * avg, mask)
    return Attribution(values, signed=True, extras=_completeness(f, z, mask, sel, base, values))


def occlusion(f, z, mask, sel, base, opt: Options) -> Attribution:
    """Each window of steps (per feature as well, for a series with up to 16 features; a token's vector is
    one feature) set to the baseline; every step of the window gets F(z) - F(occluded), as Captum's
    Occlusion with stride = window. All occluded copies of a sample run as rows of one batch."""
    B, T, D = z.shape
    w = opt.window or max(1, math.ceil(T / 64))
    groups = [None] if f.tokens or D > 16 else list(range(D))
    cuts = [(t, min(t + w, T), d) for t in range(0, T, w) for d in groups]
    copies = np.repeat(z[:, None], len(cuts), axis=1)
    for i, (a, b, d) in enumerate(cuts):
        feats = slice(None) if d is None else slice(d, d + 1)
        copies[:, i, a:b, feats] = base[:, a:b, feats]
    m = None if mask is None else np.repeat(mask, len(cuts), axis=0)
    occluded = f.value(copies.reshape(B * len(cuts), T, D), m, sel.repeat(len(cuts))).reshape(B, len(cuts))
    drop = f.value(z, mask, sel)[:, None] - occluded
    values = np.zeros((B, T, D))
    for i, (a, b, d) in enumerate(cuts):
        feats = slice(None) if d is None else slice(d, d + 1)
        values[:, a:b, feats] = drop[:, i, None, None] / (D if d is None else 1)
    return Attribution(_masked(values, mask), signed=True, extras={"window": w})


def attention(f, z, mask, sel, base, opt: Options) -> Attribution:
    """The attention pooling's weights over the steps (B, T), as one feature."""
    from rnnlab.engine import model as M

    if f.spec.pooling != "attention":
        raise ConfigError("--method attention: the model has no attention pooling (arch.pooling=attention)")
    _, cache = M.forward(f.spec_z, f.params_z, z, mask, train=False, state=f.state)
    weights = np.asarray(M.shows(f.spec_z, cache)["attention"], dtype=np.float64)
    return Attribution(_masked(weights[:, :, None], mask), signed=False)


def shapley(f, z, mask, sel, base, opt: Options) -> Attribution:
    """Shapley values of each sample's real steps in up to opt.shap_groups consecutive groups (the players),
    computed by shap's PermutationExplainer on coalitions: a coalition keeps its groups' steps and sets the
    others to the baseline. Exact in sum (F(z) - F(baseline), as the permutation estimator is), so the
    completeness extras hold to rounding. A group's value is spread evenly over its steps and features."""
    import shap

    B, T, D = z.shape
    values = np.zeros((B, T, D))
    for i in range(B):
        real = np.arange(T) if mask is None else np.flatnonzero(np.asarray(mask[i]) != 0)
        groups = np.array_split(real, min(opt.shap_groups, len(real)))
        owner = np.zeros(T, dtype=int)  # padded steps follow group 0: the mask hides them anyway
        for g, steps in enumerate(groups):
            owner[steps] = g
        game = _coalitions(f, z[i], base[i], None if mask is None else mask[i : i + 1], sel.take([i]), owner)
        n = len(groups)
        evals = opt.shap_evals or 10 * (2 * n + 1)
        explainer = shap.PermutationExplainer(game, np.zeros((1, n)), seed=opt.seed)
        phi = explainer(np.ones((1, n)), max_evals=max(evals, 2 * n + 1), silent=True).values[0]
        for g, steps in enumerate(groups):
            values[i, steps, :] = phi[g] / (len(steps) * D)
    return Attribution(_masked(values, mask), signed=True, extras=_completeness(f, z, mask, sel, base, values))


def _coalitions(f, z_i, base_i, mask_i, sel_i, owner):
    """The model's F on coalition rows (n, groups) of 0/1: kept groups from z_i, the others from the baseline."""
    def game(coalitions: np.ndarray) -> np.ndarray:
        keep = np.asarray(coalitions)[:, owner] > 0.5  # (n, T)
        rows = np.where(keep[:, :, None], z_i, base_i).astype(z_i.dtype)
        m = None if mask_i is None else np.repeat(mask_i, len(rows), axis=0)
        return f.value(rows, m, sel_i.repeat(len(rows)))
    return game


def _completeness(f, z, mask, sel, base, values) -> dict:
    return completeness(f, z, mask, sel, base, _masked(values, mask).sum(axis=(1, 2)))


def completeness(f, z, mask, sel, base, total: np.ndarray) -> dict:
    """F(z), F(base), the attributions' sum per sample (total) and its gap to F(z) - F(base), absolute and
    relative."""
    f_x, f_base = f.value(z, mask, sel), f.value(base.astype(z.dtype), mask, sel)
    gap = np.abs(total - (f_x - f_base))
    rel = gap / np.maximum(np.abs(f_x - f_base), 1e-12)
    return {"f_input": f_x, "f_baseline": f_base, "attribution_sum": total, "completeness_gap": gap,
            "completeness_gap_rel": rel}


Method = Callable[..., Attribution]
METHODS: dict[str, Method] = {
    "ig": integrated_gradients,
    "saliency": saliency,
    "smoothgrad": smoothgrad,
    "gxi": gradient_x_input,
    "occlusion": occlusion,
    "attention": attention,
    "shap": shapley,
}
DEFAULT = ("ig", "saliency", "gxi", "occlusion")


def parse_methods(text: str, choices=METHODS) -> list[str]:
    """--method's comma-separated names, each one of `choices`, in order and without repeats."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in choices]
    if unknown or not names:
        raise ConfigError(f"--method {text}: unknown {', '.join(unknown) or '(none given)'} "
                          f"(choose from {', '.join(choices)})")
    return list(dict.fromkeys(names))
