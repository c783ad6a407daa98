"""Sequence regression and classification: one target per sequence (pooled) or per step.

The model is `rnnlab.engine.model` (the block list of `ModelSpec`). A training step here is
[augment] -> [mixup] -> forward -> loss -> backward, or the data-parallel step of
`rnnlab.engine.parallel` (train.workers > 1) for batches that are not mixed. The test report
(regression against the baselines, or the classification report) is in `reports`.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np

from rnnlab.config.validate import ConfigError, RunConfig
from rnnlab.data import augment
from rnnlab.data.base import DataError, TaskData
from rnnlab.engine import model as M
from rnnlab.engine.parallel import DataParallel, make_loss
from rnnlab.monitor.inspect import SequenceInspector
from rnnlab.train import batches
from rnnlab.train.tasks import reports
from rnnlab.train.tasks.base import StepOut, Streams, TestReport, limited_steps
from rnnlab.train.tasks.predict import accuracy, evaluate, loss_targets

SMOOTHABLE = ("bce", "cross_entropy", "focal")
# The targets each classification loss takes (bce: one logit per sequence; cross_entropy: one per class).
# A regression loss on class labels still trains (a deliberate choice some make); these would not.
LOSS_TARGETS = {"bce": ("binary",), "cross_entropy": ("multiclass",), "focal": ("binary", "multiclass"),
                "mse": ("regression", "binary", "multiclass"), "mae": ("regression", "binary", "multiclass"),
                "huber": ("regression", "binary", "multiclass")}
LOSS_FITS = {"regression": "mse, mae or huber", "binary": "bce or focal", "multiclass": "cross_entropy or focal"}
LOSS_NEEDS = {"bce": "two classes", "cross_entropy": "three or more classes", "focal": "a classification data set"}


def build_spec(cfg: RunConfig, data: TaskData) -> M.ModelSpec:
    a = cfg.arch
    emb = data.embedding or {}
    return M.ModelSpec(
        cell=a.cell, input_size=data.input_size, hidden_size=a.hidden_size, output_size=data.output_size,
        num_layers=a.num_layers, bidirectional=a.bidirectional, merge_mode=a.merge_mode, dropout=a.dropout,
        nonlinearity=a.nonlinearity, cell_options=dict(a.cell_options), pooling=a.pooling,
        conv_channels=a.conv_channels, conv_kernel=a.conv_kernel, conv_dilation=a.conv_dilation,
        layer_norm=a.layer_norm, batch_norm=a.batch_norm, self_attention_heads=a.self_attention_heads,
        self_attention_causal=a.self_attention_causal, input_dropout=cfg.reg.input_dropout,
        output_dropout=cfg.reg.dropout, recurrent_dropout=cfg.reg.recurrent_dropout, zoneout=cfg.reg.zoneout,
        vocab_size=emb.get("vocab_size"), padding_idx=emb.get("padding_idx", 0),
        embed_trainable=emb.get("trainable", True),
    )


def check_task(cfg: RunConfig, data: TaskData, spec: M.ModelSpec) -> None:
    """Model, data and loss must agree; one line when they do not."""
    per_step = data.train.y.ndim == (3 if data.kind == "regression" else 2)  # a stream forecast: (N, T, 1)
    if per_step and spec.pooling != "none":
        raise DataError(f"data '{cfg.data.name}' has a target at every step: use arch.pooling=none "
                        f"(got arch.pooling={spec.pooling})")
    if spec.pooling == "none" and not per_step:
        raise DataError(f"arch.pooling=none gives an output at every step, but data '{cfg.data.name}' "
                        "has one target per sequence (use last, mean, max or attention)")
    if cfg.arch.tie_weights and not data.contiguous:
        raise DataError(f"arch.tie_weights=true shares a language model's input embedding with its output layer: "
                        f"it needs data=textlm (data '{cfg.data.name}' predicts no tokens)")
    if cfg.train.monitor == "val_accuracy" and data.kind == "regression":
        raise DataError("train.monitor=val_accuracy needs a classification data set (use val_loss)")
    if cfg.reg.mixup_alpha > 0 and (data.embedding or np.issubdtype(data.train.x.dtype, np.integer)):
        raise DataError(f"reg.mixup_alpha needs float inputs, but data '{cfg.data.name}' feeds token ids "
                        "to an embedding (set reg.mixup_alpha=0)")
    name = cfg.train.loss or data.default_loss
    if data.kind not in LOSS_TARGETS.get(name, (data.kind,)):
        raise DataError(f"train.loss={name} needs {LOSS_NEEDS[name]}, but data '{cfg.data.name}' is "
                        f"{data.kind} (use {LOSS_FITS[data.kind]}, or leave train.loss unset for {data.default_loss})")
    if cfg.train.label_smoothing > 0 and name not in SMOOTHABLE:
        raise DataError(f"train.label_smoothing needs loss bce, cross_entropy or focal (got {name})")
    alpha = cfg.train.focal_alpha
    if name == "focal" and alpha is not None:
        if data.kind == "binary" and isinstance(alpha, list):
            raise DataError(f"train.focal_alpha for binary data is one number in [0, 1] (got {alpha})")
        if data.kind == "multiclass" and (not isinstance(alpha, list) or len(alpha) != spec.output_size):
            raise DataError(f"train.focal_alpha for data '{cfg.data.name}' is a list of {spec.output_size} "
                            f"class weights (got {alpha})")


def loss_setup(cfg: RunConfig, data: TaskData, smoothing: bool = False) -> tuple[str, dict[str, Any]]:
    """The loss's name and keyword options (what a data-parallel worker rebuilds it from);
    smoothing=True adds train.label_smoothing (the training loss only)."""
    name = cfg.train.loss or data.default_loss
    opts: dict[str, Any] = {}
    if name == "huber":
        opts["delta"] = cfg.train.huber_delta
    if name == "focal":
        opts.update(gamma=cfg.train.focal_gamma, alpha=cfg.train.focal_alpha)
    if smoothing and name in SMOOTHABLE and cfg.train.label_smoothing > 0:
        opts["label_smoothing"] = cfg.train.label_smoothing
    return name, opts


def loss_fn(cfg: RunConfig, data: TaskData, smoothing: bool = False):
    """(name, fn(pred, target, mask=None) -> (value, dpred))."""
    name, opts = loss_setup(cfg, data, smoothing)
    return name, make_loss(name, opts)


def mixup(x, mask, lam: float, perm: np.ndarray):
    """Inputs lam x + (1 - lam) x[perm]; the mask of a pair is the union of both masks."""
    x = lam * x + (1.0 - lam) * x[perm]
    if mask is not None:
        mask = np.maximum(mask, mask[perm])
    return x.astype(x.dtype, copy=False), mask


def mixed_loss(fn, out, y, tmask, lam: float, perm: np.ndarray):
    """Loss of a mixed batch. Float targets (regression, binary) are mixed themselves, which is exact for
    the losses linear in the target (bce, focal) and the usual mixup for regression; integer labels mix
    the losses: lam L(y) + (1 - lam) L(y[perm])."""
    if np.issubdtype(y.dtype, np.floating) and tmask is None:
        return fn(out, (lam * y + (1.0 - lam) * y[perm]).astype(y.dtype, copy=False))
    la, ga = fn(out, y, mask=tmask)
    lb, gb = fn(out, y[perm], mask=None if tmask is None else tmask[perm])
    return lam * la + (1.0 - lam) * lb, (lam * ga + (1.0 - lam) * gb).astype(ga.dtype, copy=False)


class SequenceTask:
    """The adapter of `rnnlab.engine.model` on a `TaskData` (see `base.TaskAdapter`)."""

    model_kind = "sequence"

    def __init__(self, cfg: RunConfig, data: TaskData, streams: Streams):
        self.cfg, self.data, self.streams = cfg, data, streams
        self.dtype = np.dtype(cfg.train.dtype)
        self.spec = build_spec(cfg, data)
        self.steps_per_epoch = limited_steps(len(data.train), cfg.train.batch_size, cfg.train.limit_batches)
        check_task(cfg, data, self.spec)
        self.loss_name, self.loss_fn = loss_fn(cfg, data)  # validation, test and monitor: no smoothing
        _, self.train_loss_fn = loss_fn(cfg, data, smoothing=True)
        self._dp_context = self._data_parallel()  # refuses batch_norm now; starts the workers in session()
        self.augmenter = augment.for_training(cfg, data)  # data.augment: train batches only, own stream
        self.dp = None

    def _data_parallel(self):
        if self.cfg.train.workers == 1:
            return nullcontext(None)

        name, opts = loss_setup(self.cfg, self.data, smoothing=True)
        try:
            return DataParallel(self.spec, name, self.cfg.train.workers, opts,
                                blas_threads=self.cfg.train.blas_threads or 1)
        except ValueError as exc:  # a model it cannot split (batch_norm)
            raise ConfigError(f"train.workers > 1: {exc}; use train.workers=1") from exc

    def init_model(self, dtype):
        params = M.init_params(self.spec, self.streams.init, dtype=dtype)
        emb = self.data.embedding
        if emb and emb.get("weights") is not None:
            params["embedding.weight"] = np.asarray(emb["weights"], dtype=dtype)
        return params, M.init_state(self.spec, dtype)

    def session(self):
        adapter = self

        class _Session:
            def __enter__(self):
                adapter.dp = adapter._dp_context.__enter__()
                return adapter

            def __exit__(self, *exc):
                adapter.dp = None
                return adapter._dp_context.__exit__(*exc)

        return _Session()

    def summary_entries(self) -> dict[str, Any]:
        d = self.data
        return {"task": d.kind, "model": "sequence", "loss": self.loss_name, "n_train": len(d.train),
                "n_val": len(d.val), "n_test": len(d.test), "workers": self.cfg.train.workers}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"data": self.data.meta, "task": self.data.kind, "loss": self.loss_name, "dtype": str(self.dtype),
                "classes": self.data.classes}

    def epoch_batches(self, epoch: int) -> list:
        t = self.cfg.train
        return batches.train_batches(self.data.train, t.batch_size, self.streams.shuffle,
                                     bucket=t.bucket_by_length, shuffle=t.shuffle is not False)[: t.limit_batches]

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        return {}

    def train_step(self, params, state, idx) -> StepOut:
        xb, yb, mb, tmb = batches.take(self.data.train, idx)
        xb, mb, mix = self.augmenter(xb, mb) if self.augmenter else (xb, mb, None)
        alpha = self.cfg.reg.mixup_alpha
        if alpha > 0:  # reg.mixup_alpha; data.augment's mixup comes as `mix`
            rng = self.streams.mixup
            mix = augment.Mix(lam=float(rng.beta(alpha, alpha)), perm=rng.permutation(len(idx)))
            xb, mb = mixup(xb, mb, mix.lam, mix.perm)
        targets = loss_targets(self.data.kind, yb, self.dtype)
        if self.dp is not None and mix is None:  # train.workers > 1
            loss, grads = self.dp.loss_and_grads(params, xb, mb, targets, tmb, rng=self.streams.dropout)
            return StepOut(loss, grads, state, len(idx))  # no batch_norm here: no state to update
        # one process (also for a mixed batch, whose loss pairs rows across parts)
        out, cache = M.forward(self.spec, params, xb, mb, train=True, rng=self.streams.dropout, state=state)
        if mix is not None:
            loss, dout = mixed_loss(self.train_loss_fn, out, targets, tmb, mix.lam, mix.perm)
        else:
            loss, dout = self.train_loss_fn(out, targets, mask=tmb)
        grads, _ = M.backward(self.spec, params, dout, cache)
        return StepOut(loss, grads, cache["new_state"], len(idx))

    def after_step(self, params) -> None:
        M.after_step(self.spec, params)  # the cells' projections (IndRNN's recurrent bound)

    def validate(self, params, state) -> dict[str, float]:
        d = self.data
        val_loss, out = evaluate(self.spec, params, d.val, self.loss_fn, self.cfg.train.eval_batch_size, d.kind,
                                 state=state)
        row = {"val_loss": val_loss}
        if d.kind != "regression":
            row["val_accuracy"] = accuracy(d.kind, d.val, out)
        return row

    def test_report(self, params, state) -> TestReport:
        if self.data.kind == "regression":
            return reports.regression_report(self, params, state)
        return reports.classification_report(self, params, state)

    def extra_streams(self) -> dict[str, np.random.Generator]:
        return {"augment": self.augmenter.rng} if self.augmenter else {}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}  # nothing beyond the streams and the model (stream.StreamTask carries recurrent state)

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        pass

    def inspector(self):
        return SequenceInspector(self.spec, self.data, self.loss_fn, loss_targets)
