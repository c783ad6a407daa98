"""Attributions to each recurrent layer's hidden states per time step: which steps' states carry the
prediction, layer by layer (layer integrated gradients, as Captum's `LayerIntegratedGradients`).

The model is split after recurrent block rnnL (`engine.model.forward_part`). What that block passes on, its
output sequence h (B, T, F) (both directions merged) and its final states, is interpolated between its values
on the baseline and on the input; the blocks above run on every point of the path and the gradient there is
integrated with the same quadrature as input integrated gradients. The attribution of h_t is
(h_t(x) - h_t(baseline)) * the mean gradient; a final state's attribution goes to the step it was read at
(the last real step forward, the first real step for the reverse direction): pooling "last" reads only
those, so a last-pooled top layer puts everything on its final steps. As for inputs, the attributions add
up to F(x) - F(baseline) (completeness), because the interpolated quantities are everything the blocks
above read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.explain.methods import Options, _masked, completeness, quadrature


@dataclass
class LayerAttribution:
    values: np.ndarray  # (B, T, F) on the layer's output sequence
    finals: np.ndarray  # (B, T): the final states' attributions at the steps they were read at
    extras: dict

    def per_step(self) -> np.ndarray:
        """(B, T): the sum over the features, with the final states' share."""
        return self.values.sum(axis=2) + self.finals


def recurrent_layers(spec) -> list[str]:
    from rnnlab.engine import model as M

    return [b.name for b in M.blocks_of(spec) if b.trace_keys()]


def layer_attributions(f, z, mask, sel, base, opt: Options) -> dict[str, LayerAttribution]:
    """Layer integrated gradients of every recurrent layer ("rnn0", "rnn1", ...)."""
    return {name: layer_integrated_gradients(f, z, mask, sel, base, opt, name) for name in recurrent_layers(f.spec_z)}


def layer_integrated_gradients(f, z, mask, sel, base, opt: Options, layer: str) -> LayerAttribution:
    from rnnlab.engine import model as M
    from rnnlab.engine.blocks import Flow

    k = M.block_index(f.spec_z, layer)
    below, above = slice(0, k + 1), slice(k + 1, None)
    at_x = M.forward_part(f.spec_z, f.params_z, Flow(z), below, mask, f.state)[0]
    at_b = M.forward_part(f.spec_z, f.params_z, Flow(base.astype(z.dtype)), below, mask, f.state)[0]
    alphas, weights = quadrature(opt.steps, opt.rule)
    dh = np.zeros(at_x.h.shape)
    dfinal = [[np.zeros(s.shape) if s is not None else None for s in d] for d in at_x.final]
    first = f.chunks((len(z) * len(alphas), *z.shape[1:]))[0]
    per = max(1, (first.stop - first.start) // len(alphas))  # whole samples per chunk
    for i in range(0, len(z), per):
        rows = slice(i, min(i + per, len(z)))
        _integrate(f, at_x, at_b, rows, mask, sel, alphas, weights, above, dh, dfinal)
    values = _masked((at_x.h - at_b.h).astype(np.float64) * dh, mask)
    finals = _final_steps(at_x, at_b, dfinal, mask, z.shape[:2])
    extras = completeness(f, z, mask, sel, base, values.sum(axis=(1, 2)) + finals.sum(axis=1))
    return LayerAttribution(values, finals, extras)


def _integrate(f, at_x, at_b, rows, mask, sel, alphas, weights, above, dh, dfinal) -> None:
    """Add the weighted gradients at the path points of samples `rows` into dh and dfinal."""
    from rnnlab.engine import model as M
    from rnnlab.engine.blocks import Flow

    n, k = rows.stop - rows.start, len(alphas)

    def path(a, b):  # (n * k, ...) rows: sample-major, point-minor
        a, b = a[rows].astype(np.float64), b[rows].astype(np.float64)
        pts = b[:, None] + alphas.reshape(1, k, *([1] * (a.ndim - 1))) * (a - b)[:, None]
        return pts.reshape(n * k, *a.shape[1:]).astype(at_x.h.dtype)

    finals = tuple(tuple(None if s is None else path(s, sb) for s, sb in zip(d, db, strict=True))
                   for d, db in zip(at_x.final, at_b.final, strict=True)) if at_x.final is not None else None
    m = None if mask is None else np.repeat(mask[rows], k, axis=0)
    part = sel.take(np.arange(rows.start, rows.stop)).repeat(k)
    out, cache = M.forward_part(f.spec_z, f.params_z, Flow(path(at_x.h, at_b.h), finals), above, m, f.state)
    _, back = M.backward_part(f.spec_z, f.params_z, Flow(part.dy(out.h)), cache)

    def mean(g):  # (n * k, ...) -> (n, ...), the quadrature's weighted sum over the points
        return np.tensordot(g.reshape(n, k, *g.shape[1:]).astype(np.float64), weights, axes=([1], [0]))

    if back.h is not None:
        dh[rows] += mean(back.h)
    for d, dd in enumerate(back.final or ()):
        for s, g in enumerate(dd or ()):
            if g is not None and dfinal[d][s] is not None:
                dfinal[d][s][rows] += mean(g)


def _final_steps(at_x, at_b, dfinal, mask, shape) -> np.ndarray:
    """(B, T): each direction's final-state attribution at the step it was read at."""
    B, T = shape
    out = np.zeros((B, T))
    if at_x.final is None:
        return out
    real = np.ones((B, T), bool) if mask is None else np.asarray(mask) != 0
    last = T - 1 - np.argmax(real[:, ::-1], axis=1)
    first = np.argmax(real, axis=1)
    for d, (sx, sb, g) in enumerate(zip(at_x.final, at_b.final, dfinal, strict=True)):
        total = sum(((a - b).astype(np.float64) * gs).sum(axis=1)
                    for a, b, gs in zip(sx, sb, g, strict=True) if gs is not None and a is not None)
        step = last if d == 0 else first
        np.add.at(out, (np.arange(B), step), total * real.any(axis=1))
    return out
