"""A trained sequence model as a differentiable function of its continuous inputs, for attributions.

    f = ModelFunction(spec, params, state)
    z = f.embed(x)                              # (B, T, D): x itself, or a text model's embedding vectors
    sel = f.target("pred").select(f.outputs(z, mask), mask)   # one output per sample (fixed from now on)
    F, dF = f.value_and_grad(z, mask, sel)      # F (B,), dF/dz (B, T, D): the engine's exact backward

Attributions work on z: for token inputs the gradient is taken at the embedding vectors (the engine's
backward already ends there), and the model runs from vectors by swapping its embedding block for the
input block (`embedded`), so points between a review and its baseline (integrated gradients) exist.

Rows are run in chunks that keep the caches of a forward/backward to about CHUNK_BYTES, so integrated
gradients stacks (sample, interpolation step) rows into one call per chunk, not one call per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rnnlab.config.validate import ConfigError

CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Selection:
    """One scalar per sample: F = sign * y[row, step, output] (step None: the model has one output vector)."""

    output: np.ndarray  # (B,) int
    sign: np.ndarray  # (B,) +1 / -1
    step: np.ndarray | None = None  # (B,) int, per-step models only

    def value(self, y: np.ndarray) -> np.ndarray:
        rows = np.arange(len(y))
        picked = y[rows, self.output] if self.step is None else y[rows, self.step, self.output]
        return self.sign * picked

    def dy(self, y: np.ndarray) -> np.ndarray:
        d = np.zeros_like(y)
        rows = np.arange(len(y))
        if self.step is None:
            d[rows, self.output] = self.sign
        else:
            d[rows, self.step, self.output] = self.sign
        return d

    def repeat(self, k: int) -> Selection:
        """Each sample's selection k times in a row (the rows of k interpolation points per sample)."""
        return Selection(np.repeat(self.output, k), np.repeat(self.sign, k),
                         None if self.step is None else np.repeat(self.step, k))

    def take(self, rows) -> Selection:
        return Selection(self.output[rows], self.sign[rows], None if self.step is None else self.step[rows])


@dataclass(frozen=True)
class Target:
    """What is explained: "pred" (the predicted class, or the first forecast step), "class:K" (the logit of
    class K; binary: class 0 is the negated logit) or "step:H" (forecast horizon H, or a per-step model's
    output at step H, counted from 1). Classes are explained on their logits, so attributions add up to
    differences of logits (integrated gradients' completeness is exact on them)."""

    kind: str  # regression, binary, multiclass
    per_step: bool
    n_out: int
    text: str = "pred"

    def select(self, y: np.ndarray, mask: np.ndarray | None) -> Selection:
        """The selection for outputs y of the explained inputs (kept for every interpolation of them)."""
        name, _, arg = self.text.partition(":")
        B = len(y)
        step = None
        if self.per_step:
            last = np.full(B, y.shape[1] - 1) if mask is None else np.maximum(mask.sum(axis=1).astype(int) - 1, 0)
            step = np.full(B, self._index(arg, y.shape[1], "step")) if name == "step" else last
            y = y[np.arange(B), step]
        if name == "class":
            return self._class(int(self._index(arg, self._classes(), "class", base=0)), B, step)
        if name == "step" and not self.per_step:
            return Selection(np.full(B, self._index(arg, self.n_out, "step")), np.ones(B), None)
        if self.kind == "binary":
            positive = y[:, 0] >= 0
            return Selection(np.zeros(B, int), np.where(positive, 1.0, -1.0), step)
        if self.kind == "multiclass":
            return Selection(y.argmax(axis=1), np.ones(B), step)
        return Selection(np.zeros(B, int), np.ones(B), step)

    def _classes(self) -> int:
        if self.kind == "regression":
            raise ConfigError(f"--target {self.text}: a regression model has no classes (use pred or step:H)")
        return 2 if self.kind == "binary" else self.n_out

    def _class(self, k: int, B: int, step) -> Selection:
        if self.kind == "binary":
            return Selection(np.zeros(B, int), np.full(B, 1.0 if k == 1 else -1.0), step)
        return Selection(np.full(B, k), np.ones(B), step)

    def _index(self, arg: str, n: int, what: str, base: int = 1) -> int:
        try:
            k = int(arg)
        except ValueError:
            raise ConfigError(f"--target {self.text}: {what} needs a number ({what}:K)") from None
        if not base <= k < n + base:
            raise ConfigError(f"--target {self.text}: {what} {k} out of range {base}..{n + base - 1}")
        return k - base


TARGET_NAMES = ("pred", "class", "step")


def parse_target(text: str, kind: str, per_step: bool, n_out: int) -> Target:
    name = text.partition(":")[0]
    if name not in TARGET_NAMES or (name == "pred" and text != "pred"):
        raise ConfigError(f"--target {text}: unknown (use pred, class:K or step:H)")
    target = Target(kind, per_step, n_out, text)
    if name == "class":
        target._index(text.partition(":")[2], target._classes(), "class", base=0)
    return target


class ModelFunction:
    """The model of (spec, params, state) on continuous inputs z, in evaluation mode."""

    def __init__(self, spec, params: dict, state: dict | None = None):
        self.spec, self.params, self.state = spec, params, state or {}
        self.tokens = spec.vocab_size is not None
        self.spec_z, self.params_z = embedded(spec, params)
        self.dtype = params["head.weight"].dtype

    def embed(self, x: np.ndarray) -> np.ndarray:
        """z (B, T, D) of inputs x: token ids through the embedding table, floats as they are."""
        if not self.tokens:
            return np.asarray(x, dtype=self.dtype)
        from rnnlab.engine import embedding

        return embedding.forward({"weight": self.params["embedding.weight"]}, x, self.spec.padding_idx)[0]

    def pad_vector(self) -> np.ndarray:
        """The embedding of the padding token (a text model's "pad" baseline), or zeros."""
        pad = self.spec.padding_idx
        if not self.tokens or pad is None:
            return np.zeros(self.spec.input_size, self.dtype)
        return self.params["embedding.weight"][pad]

    def outputs(self, z: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        from rnnlab.engine import model as M

        return M.predict(self.spec_z, self.params_z, z, mask, state=self.state)

    def value(self, z, mask, sel: Selection) -> np.ndarray:
        return sel.value(self.outputs(z, mask))

    def value_and_grad(self, z: np.ndarray, mask: np.ndarray | None, sel: Selection):
        """F (B,) and dF/dz (B, T, D), in chunks of rows (one forward and backward each)."""
        from rnnlab.engine import model as M

        F = np.empty(len(z))
        G = np.empty(z.shape, dtype=np.float64)
        for rows in self.chunks(z.shape):
            m = None if mask is None else mask[rows]
            y, cache = M.forward(self.spec_z, self.params_z, z[rows], m, train=False, state=self.state)
            part = sel.take(rows)
            F[rows] = part.value(y)
            G[rows] = M.backward(self.spec_z, self.params_z, part.dy(y), cache)[1]
        return F, G

    def chunks(self, shape) -> list[slice]:
        """Row slices whose forward caches stay near CHUNK_BYTES (gates and states of every layer)."""
        n, T = shape[0], shape[1]
        s = self.spec
        per_row = T * (shape[2] + 12 * s.hidden_size * s.directions * s.num_layers) * self.dtype.itemsize
        size = max(1, int(CHUNK_BYTES // max(per_row, 1)))
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def embedded(spec, params: dict):
    """(spec, params) of the same model taking embedding vectors instead of token ids (itself without an
    embedding): the embedding block becomes the input block, every other block and weight is shared."""
    if spec.vocab_size is None:
        return spec, params
    spec_z = dataclasses.replace(spec, vocab_size=None)
    return spec_z, {k: v for k, v in params.items() if not k.startswith("embedding.")}


def feature_std(x: np.ndarray, mask) -> np.ndarray:
    """(D,) float64: each feature's standard deviation over the real steps of inputs x (B, T, D)."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1]).std(axis=0) if mask is None else x[np.asarray(mask) != 0].std(axis=0)
