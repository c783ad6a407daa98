"""Per-step classification of one long stream (language models, data=echo): windows, or stateful truncated BPTT.

The data's rows are consecutive pieces of a stream (`TaskData.contiguous`). Two ways to train on them:

* windows (the default): every row is a sample with a fresh zero state, batches shuffled (`SequenceTask`'s
  step). Backpropagation is truncated at the window (data.seq_len), and so is the model's memory.
* stateful (`train.stateful=true`, Keras' stateful=True, PyTorch's word_language_model): the stream is
  cut into B = train.batch_size parallel lanes of equal length (lane b = the b-th 1/B of the stream), read
  in order in chunks of train.bptt steps (null: data.seq_len). Chunk k of every lane forms batch k; each
  chunk starts from the state the lanes' previous chunk ended in, with the gradient stopped there (the
  carried state is a constant of the step: truncated BPTT), and the state is zero at every epoch start.
  The carried state is part of the training state (`state_dict`), so a resume mid-epoch goes on with it.

Evaluation matches: windows score every row afresh; stateful runs score each split as lanes carried from
start to end, at most batch_size of them and each at least MIN_EVAL_LANE steps long (only a lane's first
steps start cold). Metrics are summed over tokens in one pass, never
holding a split's logits (a word-level softmax over a test split would not fit in memory): cross-entropy
(nats), accuracy, top-5 accuracy, perplexity and bits per token, and bits per character where the data
knows its characters per token (`data=textlm`; its unigram and bigram baselines sit beside the model).

Weight tying (`arch.tie_weights=true`; Press & Wolf 2017, Inan et al. 2017): the head's weight is the
embedding's matrix itself (one array under both names, so the checkpoint and every export still find
head.weight), and the step adds the head's gradient to the embedding's and drops the head's entry, so the
optimizer updates the shared matrix once.

Shapes: lanes x (B, L[, D]), y (B, L); a chunk x (B, bptt[, D]); logits (B, bptt, V).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnlab.config.validate import ConfigError
from rnnlab.engine import model as M
from rnnlab.train import generation
from rnnlab.train.tasks import cells
from rnnlab.train.tasks.base import StepOut, TestReport
from rnnlab.train.tasks.sequence import SequenceTask

LOGIT_BUDGET = 1 << 23  # logits held at once in evaluation (elements): 64 MB of float64 log-probabilities
# Evaluation lanes are at least this long: each lane's first steps start from a zero state, which must not
# weigh on the score (with 125-step lanes the echo task's 8 cold steps per lane cost 5 points of accuracy)
MIN_EVAL_LANE = 1000


@dataclass
class Lanes:
    """A split's stream as B parallel lanes of L steps (the remainder after B * L steps is dropped)."""

    x: np.ndarray  # (B, L) token ids or (B, L, D)
    y: np.ndarray  # (B, L) labels, or (B, L, 1) a stream forecast's next values

    @classmethod
    def of(cls, split, lanes: int) -> Lanes:
        n, t = split.y.shape[:2]
        total = n * t
        b = max(1, min(lanes, total))
        length = total // b
        x = split.x.reshape(total, *split.x.shape[2:])[: b * length]
        y = split.y.reshape(total, *split.y.shape[2:])[: b * length]
        return cls(x.reshape(b, length, *split.x.shape[2:]), y.reshape(b, length, *split.y.shape[2:]))

    @property
    def length(self) -> int:
        return self.y.shape[1]

    def chunks(self, size: int) -> list[slice]:
        return [slice(t, min(t + size, self.length)) for t in range(0, self.length, size)]


@dataclass
class TokenScore:
    """Sums over scored tokens: cross-entropy (nats), right at top 1 and top 5, count."""

    nats: float = 0.0
    right: int = 0
    right5: int = 0
    count: int = 0

    def add(self, logits: np.ndarray, y: np.ndarray) -> None:
        z = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
        y = y.reshape(-1)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        true = logp[np.arange(len(y)), y]
        self.nats -= float(true.sum())
        self.right += int(np.sum(logp.argmax(axis=1) == y))
        above = (logp > true[:, None]).sum(axis=1)  # classes scored above the true one
        self.right5 += int(np.sum(above < 5))
        self.count += len(y)

    def metrics(self, chars_per_token: float | None = None) -> dict[str, float]:
        nats = self.nats / max(self.count, 1)
        out = {"cross_entropy": nats, "accuracy": self.right / max(self.count, 1),
               "top5_accuracy": self.right5 / max(self.count, 1), "perplexity": math.exp(min(nats, 700.0)),
               "bits_per_token": nats / math.log(2)}
        if chars_per_token:
            out["bits_per_char"] = out["bits_per_token"] / chars_per_token
        return out


class SeriesScore:
    """A stream forecast's one-step predictions and targets (scaled), kept: a series is short."""

    def __init__(self):
        self.pred: list[np.ndarray] = []
        self.true: list[np.ndarray] = []

    def add(self, out: np.ndarray, y: np.ndarray) -> None:
        self.pred.append(out.reshape(-1))
        self.true.append(y.reshape(-1))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.pred), np.concatenate(self.true)


def eval_steps(outputs: int, lanes: int) -> int:
    """Steps per evaluation chunk so that lanes x steps x outputs logits stay within LOGIT_BUDGET."""
    return max(1, LOGIT_BUDGET // max(1, lanes * outputs))


class StreamTask(SequenceTask):
    """`SequenceTask` on a contiguous stream: token-level metrics, and stateful training when asked."""

    def __init__(self, cfg, data, streams):
        super().__init__(cfg, data, streams)
        t = cfg.train
        self.stateful = bool(t.stateful)
        self.bptt = t.bptt or data.train.y.shape[1]
        self.carry: dict | None = None  # the lanes' recurrent state after the last chunk
        self.tied = bool(cfg.arch.tie_weights)
        if self.tied:
            check_tied(cfg, data, self.spec)
        if self.stateful:
            check_stateful(cfg, data, self.spec)
            self.lanes = Lanes.of(data.train, t.batch_size)
            self.slices = self.lanes.chunks(self.bptt)
            limit = len(self.slices) if t.limit_batches is None else min(len(self.slices), t.limit_batches)
            self.steps_per_epoch = limit

    # ---------------------------------------------------------------- training
    def summary_entries(self) -> dict[str, Any]:
        out = super().summary_entries()
        out.update(stateful=self.stateful, tokens_per_sample=self.tokens_per_sample)
        if self.stateful:
            out.update(bptt=self.bptt, lanes=self.lanes.y.shape[0], lane_length=self.lanes.length)
        return out

    @property
    def tokens_per_sample(self) -> int:
        """Tokens in one sample of a step (samples_per_s x this = tokens per second)."""
        return self.bptt if self.stateful else self.data.train.y.shape[1]

    def init_model(self, dtype):
        params, state = super().init_model(dtype)
        if self.tied:  # one matrix under both names: the update of embedding.weight moves the head too
            params["head.weight"] = params["embedding.weight"]
        return params, state

    def epoch_batches(self, epoch: int) -> list:
        if not self.stateful:
            return super().epoch_batches(epoch)
        self.carry = None  # a new epoch starts from zero states (a resume mid-epoch restores its carry instead)
        return [np.array([k]) for k in range(self.steps_per_epoch)]

    def train_step(self, params, state, idx) -> StepOut:
        out = self._stateful_step(params, state, idx) if self.stateful else super().train_step(params, state, idx)
        if not self.tied:
            return out
        grads = dict(out.grads)  # the shared matrix's gradient: its use as embedding plus its use as head
        grads["embedding.weight"] = grads["embedding.weight"] + grads.pop("head.weight")
        return out._replace(grads=grads)

    def _stateful_step(self, params, state, idx) -> StepOut:
        cols = self.slices[int(idx[0])]
        # contiguous copies: strided views of the lanes cost the step ~5 % (the engine reads them row by row)
        xb, yb = np.ascontiguousarray(self.lanes.x[:, cols]), np.ascontiguousarray(self.lanes.y[:, cols])
        out, cache = M.forward(self.spec, params, xb, None, train=True, rng=self.streams.dropout, state=state,
                               initial_states=self.carry)
        loss, dout = self.train_loss_fn(out, yb)
        grads, _ = M.backward(self.spec, params, dout, cache)  # no dstates: the gradient stops at the carry
        self.carry = cache["final_states"]
        return StepOut(loss, grads, cache["new_state"], len(yb))

    def state_dict(self) -> dict[str, np.ndarray]:
        """The carried state, flat: "{block}:{direction}:{k}" -> (B, H) arrays (resume mid-epoch)."""
        if not self.carry:
            return {}
        return {f"{name}:{d}:{k}": np.asarray(a) for name, dirs in self.carry.items()
                for d, tup in enumerate(dirs) for k, a in enumerate(tup)}

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        carry: dict[str, list[list]] = {}
        for key in sorted(flat, key=lambda k: (k.split(":")[0], int(k.split(":")[1]), int(k.split(":")[2]))):
            name, d, _ = key.split(":")
            dirs = carry.setdefault(name, [])
            while len(dirs) <= int(d):
                dirs.append([])
            dirs[int(d)].append(np.asarray(flat[key], dtype=self.dtype))
        self.carry = {name: [tuple(t) for t in dirs] for name, dirs in carry.items()} or None

    # ---------------------------------------------------------------- evaluation
    def score(self, params, state, split):
        """The model on a split, lanes carried through (stateful) or every window afresh: token sums
        (`TokenScore`), or a forecast stream's predictions (`SeriesScore`)."""
        return self._score_lanes(params, state, split) if self.stateful else self._score_windows(params, state, split)

    def _new_score(self):
        return SeriesScore() if self.data.kind == "regression" else TokenScore()

    def _score_windows(self, params, state, split):
        score = self._new_score()
        n, t = split.y.shape[:2]
        rows = max(1, min(self.cfg.train.eval_batch_size, LOGIT_BUDGET // max(1, t * self.spec.output_size)))
        for i in range(0, n, rows):
            score.add(M.infer(self.spec, params, split.x[i : i + rows], None, state=state), split.y[i : i + rows])
        return score

    def _score_lanes(self, params, state, split):
        score = self._new_score()
        steps = split.y.shape[0] * split.y.shape[1]
        lanes = Lanes.of(split, min(self.lanes.y.shape[0], max(1, steps // MIN_EVAL_LANE)))
        carry = None
        for cols in lanes.chunks(eval_steps(self.spec.output_size, lanes.y.shape[0])):
            out, cache = M.forward(self.spec, params, lanes.x[:, cols], None, train=False, state=state,
                                   initial_states=carry)
            carry = cache["final_states"]
            score.add(out, lanes.y[:, cols])
        return score

    def validate(self, params, state) -> dict[str, float]:
        if self.data.kind == "regression":
            pred, true = self.score(params, state, self.data.val).arrays()
            return {"val_loss": float(self.loss_fn(pred, true)[0])}
        m = self.score(params, state, self.data.val).metrics()
        return {"val_loss": m["cross_entropy"], "val_accuracy": m["accuracy"]}

    def test_report(self, params, state) -> TestReport:
        if self.data.kind == "regression":
            return self._series_report(params, state)
        per_char = self.data.meta.get("chars_per_token")
        val = self.score(params, state, self.data.val).metrics(per_char.get("val") if per_char else None)
        test = self.score(params, state, self.data.test).metrics(per_char.get("test") if per_char else None)
        out: dict[str, Any] = {"test_loss": test["cross_entropy"], "val_loss_best": val["cross_entropy"],
                               "val_metrics": val, "test_metrics": test, "baselines": self._baselines(),
                               "language_model": generation.is_language_model(self.data.meta)}
        files, tables = {}, {}
        if out["language_model"]:
            out["samples"] = generation.report_samples(self.spec, params, state, self.data.meta, self.cfg.seed)
            files, tables = cells.readable_cells(self.spec, params, state, self.data)
        return TestReport(out, tables, files)

    def _series_report(self, params, state) -> TestReport:
        """A forecast stream: one-step-ahead errors in the target's units (the scaler undone) beside the naive
        forecast (the current value) and the training mean, on the same split."""
        from rnnlab.analysis import metrics as mt

        out: dict[str, Any] = {"baselines": {"naive": {}, "train_mean": {}}}
        mean = float(np.mean(self.data.train.y, dtype=np.float64))  # in the scaled units, as the splits' y
        inv = self.data.scaler.inverse
        for name in ("val", "test"):
            split = getattr(self.data, name)
            pred, true = self.score(params, state, split).arrays()
            out["test_loss" if name == "test" else "val_loss_best"] = float(self.loss_fn(pred, true)[0])
            out[f"{name}_metrics"] = mt.regression_metrics(inv(true), inv(pred))
            truth = inv(split.y.reshape(-1).astype(np.float64))
            naive = inv(split.x[..., 0].reshape(-1).astype(np.float64))
            out["baselines"]["naive"][f"{name}_metrics"] = mt.regression_metrics(truth, naive)
            flat = inv(np.full(truth.shape, mean))
            out["baselines"]["train_mean"][f"{name}_metrics"] = mt.regression_metrics(truth, flat)
        return TestReport(out, {}, {})

    def _baselines(self) -> dict[str, Any]:
        """The data's baselines as rows beside the model: textlm's n-gram models, echo's guess and ceiling."""
        meta = self.data.meta
        rows: dict[str, Any] = {}
        for name, b in (meta.get("baselines") or {}).items():
            if isinstance(b, dict):
                m = {"cross_entropy": b["nats_per_token"], "perplexity": math.exp(b["nats_per_token"]),
                     "bits_per_token": b["bits_per_token"], "bits_per_char": b["bits_per_char"]}
                rows[name] = {"test_metrics": m}
        for name, key in (("chance", "chance"), ("stateless ceiling", "stateless_ceiling")):
            if key in meta:
                rows[name] = {s: {"accuracy": meta[key]} for s in ("val_metrics", "test_metrics")}
        return rows


def check_tied(cfg, data, spec) -> None:
    """Weight tying needs a trainable embedding as wide as the head's input; one line if not."""
    emb = data.embedding or {}
    if spec.vocab_size is None or spec.output_size != spec.vocab_size:
        raise ConfigError("arch.tie_weights=true needs token inputs and one output per token (data=textlm)")
    if spec.feature_size != emb.get("dim"):
        raise ConfigError(f"arch.tie_weights=true: the head reads {spec.feature_size} features and the embedding has "
                          f"{emb.get('dim')}; make arch.hidden_size equal to data.embed_dim")
    if not emb.get("trainable", True):
        raise ConfigError("arch.tie_weights=true trains the shared matrix: the embedding cannot be frozen")
    if cfg.reg.l1 > 0 or cfg.reg.l2 > 0:
        raise ConfigError("arch.tie_weights=true with reg.l1/l2 would penalise the shared matrix under both names: "
                          "use optim=adamw's weight_decay instead")


def check_stateful(cfg, data, spec) -> None:
    """Stateful training needs a stream and a model whose whole memory is its recurrent state; one line if not."""
    name = cfg.data.name
    if not data.contiguous:
        raise ConfigError(f"train.stateful=true needs data whose samples continue each other (data=textlm, data=echo, "
                          f"or a series with data.strategy=stream); data '{name}' has independent samples" +
                          (" (cv folds are not one stream)" if getattr(cfg.cv, "fold", None) is not None else ""))
    if spec.bidirectional:
        raise ConfigError("train.stateful=true carries the state forward in time: a bidirectional layer's backward "
                          "half would need the future of the stream (use arch.bidirectional=false)")
    if cfg.train.workers > 1:
        raise ConfigError("train.stateful=true keeps every lane's state in this process: use train.workers=1")
    if spec.self_attention_heads or spec.conv_channels:
        raise ConfigError("train.stateful=true carries only the recurrent state: self-attention and convolution see "
                          "one chunk at a time (set arch.self_attention_heads=0 and arch.conv_channels=0)")
    if cfg.reg.mixup_alpha > 0 or getattr(cfg.data, "augment", None):
        raise ConfigError("train.stateful=true reads the stream as it is: no mixup or augmentation")
