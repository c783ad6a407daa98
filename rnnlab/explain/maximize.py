"""Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014 for classes): an input sequence that
drives one hidden unit or one output as high as it goes, found by gradient ascent (Adam) from noise.

    objective(z) = a(z) - l2 * mean((z / s)^2) - smooth * mean(((z[t+1] - z[t]) / s)^2)

z is the input (a text model's embedding vectors), s the training inputs' standard deviation per feature
(text: of the embedding table), so that both penalties are free of the data's scale and the optimised
input stays where the data live. What is maximised (`parse_goal`):

    unit:L:K    unit K of recurrent layer L's final hidden state h (layers from 0; in a bidirectional layer
                K >= H is the reverse direction's unit K - H)
    class:K     the logit of class K (binary: class 0 is the negated logit)
    output:K    a regression model's output K (counted from 1, as forecast steps)

For a text model the result is also read back as words: per step the token whose embedding is nearest by
cosine. The optimised activation is compared with the same quantity over training samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.config.validate import ConfigError

ITERATIONS = 300
LR = 0.05  # Adam's step, in units of s
L2 = 0.01
SMOOTH = 0.1
REFERENCE_SAMPLES = 512


@dataclass(frozen=True)
class Goal:
    kind: str  # unit, class, output
    index: int
    layer: int = 0
    text: str = ""


def parse_goal(text: str, spec, task_kind: str) -> Goal:
    parts = text.split(":")
    try:
        numbers = [int(p) for p in parts[1:]]
    except ValueError:
        numbers = None
    if parts[0] == "unit" and numbers is not None and len(numbers) == 2:
        layer, k = numbers
        if not 0 <= layer < spec.num_layers:
            raise ConfigError(f"--maximize {text}: layer {layer} out of range 0..{spec.num_layers - 1}")
        units = spec.hidden_size * spec.directions
        if not 0 <= k < units:
            raise ConfigError(f"--maximize {text}: unit {k} out of range 0..{units - 1}")
        return Goal("unit", k, layer, text)
    if parts[0] in ("class", "output") and numbers is not None and len(numbers) == 1:
        return _output_goal(parts[0], numbers[0], spec, task_kind, text)
    raise ConfigError(f"--maximize {text}: use unit:L:K, class:K or output:K")


def _output_goal(kind: str, k: int, spec, task_kind: str, text: str) -> Goal:
    if (kind == "class") != (task_kind in ("binary", "multiclass")):
        raise ConfigError(f"--maximize {text}: a {task_kind} model has "
                          f"{'classes (class:K)' if kind == 'output' else 'outputs (output:K)'}")
    n = (2 if task_kind == "binary" else spec.output_size) if kind == "class" else spec.output_size
    base = 0 if kind == "class" else 1
    if not base <= k < n + base:
        raise ConfigError(f"--maximize {text}: {kind} {k} out of range {base}..{n + base - 1}")
    return Goal(kind, k - base, 0, text)


def activation_and_grad(f, z: np.ndarray, goal: Goal) -> tuple[np.ndarray, np.ndarray]:
    """a (B,) and da/dz (B, T, D) on inputs z without padding (the engine's exact backward)."""
    if goal.kind == "unit":
        return _unit_and_grad(f, z, goal)
    return f.value_and_grad(z, None, _selection(f, goal, len(z), np.full(len(z), z.shape[1] - 1)))


def _selection(f, goal: Goal, B: int, last: np.ndarray):
    """The output maximised (binary: class 0 is the negated logit; per-step models: at the last step)."""
    from rnnlab.explain.function import Selection

    single = f.spec.output_size == 1
    sign = -1.0 if goal.kind == "class" and single and goal.index == 0 else 1.0
    return Selection(np.full(B, 0 if single else goal.index), np.full(B, sign), last if f.spec.per_step else None)


def _unit(f, z, mask, goal: Goal):
    """Unit goal.index of layer goal.layer's final hidden state on z: (values (B,), direction, unit, forward
    Flow, cache of the blocks up to that layer)."""
    from rnnlab.engine import model as M
    from rnnlab.engine.blocks import Flow

    k = M.block_index(f.spec_z, f"rnn{goal.layer}")
    out, cache = M.forward_part(f.spec_z, f.params_z, Flow(z), slice(0, k + 1), mask, f.state)
    direction, unit = divmod(goal.index, f.spec.hidden_size)
    return out.final[direction][0][:, unit].astype(np.float64), direction, unit, out, cache


def _unit_and_grad(f, z, goal: Goal):
    from rnnlab.engine import model as M
    from rnnlab.engine.blocks import Flow

    a, direction, unit, out, cache = _unit(f, z, None, goal)
    dfinal = []
    for d, states in enumerate(out.final):
        dh = np.zeros_like(states[0])
        if d == direction:
            dh[:, unit] = 1.0
        dfinal.append((dh,) + (None,) * (len(states) - 1))
    _, back = M.backward_part(f.spec_z, f.params_z, Flow(None, tuple(dfinal)), cache)
    return a, back.h.astype(np.float64)


def maximize(f, goal: Goal, length: int, scale: np.ndarray, seed: int, iterations: int = ITERATIONS,
             restarts: int = 4) -> dict:
    """`restarts` inputs (length, D) optimised together from noise; returns them, the best one's index, the
    final activations and a trace of the best activation and objective every 10 iterations. Adam works on
    u = z / s, so its step is LR in units of each feature's spread."""
    from rnnlab.engine.optim import Adam

    rng = np.random.default_rng(seed)
    u = {"u": rng.standard_normal((restarts, length, len(scale))) * 0.1}
    opt, trace = Adam(lr=LR), []
    for it in range(iterations + 1):
        z = u["u"] * scale
        a, g = activation_and_grad(f, z.astype(f.dtype), goal)
        pen, dpen = _penalty(z, scale)
        if it % 10 == 0 or it == iterations:
            trace.append({"iteration": it, "activation": float(a.max()), "objective": float((a - pen).max())})
        if it < iterations:
            opt.step(u, {"u": -(g - dpen) * scale})  # Adam minimises: the objective's negated gradient
    return {"inputs": z, "activations": a, "best": int(np.argmax(a - pen)), "trace": trace}


def _penalty(z: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, L2 * mean((z/s)^2) + SMOOTH * mean(((dz)/s)^2) and its gradient."""
    u = z / scale
    n = u[0].size
    diff = np.diff(u, axis=1)
    value = L2 * (u**2).sum(axis=(1, 2)) / n + SMOOTH * (diff**2).sum(axis=(1, 2)) / max(diff[0].size, 1)
    dd = np.zeros_like(u)
    if diff.shape[1]:
        dd[:, 1:] += diff
        dd[:, :-1] -= diff
    grad = (2 * L2 * u / n + 2 * SMOOTH * dd / max(diff[0].size, 1)) / scale
    return value, grad


def reference(f, goal: Goal, z_train: np.ndarray, mask) -> dict:
    """The same activation over training samples: mean, max and the 99th percentile."""
    if goal.kind == "unit":
        a = _unit(f, z_train, mask, goal)[0]
    else:
        y = f.outputs(z_train, mask)
        last = np.maximum((np.ones(z_train.shape[:2]) if mask is None else mask).sum(axis=1).astype(int) - 1, 0)
        a = _selection(f, goal, len(y), last).value(y)
    a = np.asarray(a, dtype=np.float64)
    return {"mean": float(a.mean()), "max": float(a.max()), "p99": float(np.percentile(a, 99))}


def nearest_tokens(z: np.ndarray, table: np.ndarray, vocab: list[str], skip: set[int]) -> list[str]:
    """Per step of z (T, D), the token whose embedding is nearest by cosine (special tokens skipped)."""
    t = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
    u = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    sim = u @ t.T
    if skip:
        sim[:, sorted(skip)] = -np.inf
    return [vocab[i] if i < len(vocab) else str(i) for i in sim.argmax(axis=1)]
