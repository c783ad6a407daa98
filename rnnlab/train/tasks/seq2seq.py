"""The encoder-decoder tasks (data=reverse_digits, data=sine2cosine) as a task adapter.

Model (`rnnlab.engine.seq2seq`): any registered arch.cell, arch.hidden_size, arch.attention (none |
luong | bahdanau); token tasks embed with data.embed_dim. Training: teacher forcing with ratio
train.teacher_forcing at the first epoch, decaying linearly to train.teacher_forcing_end by the
last (scheduled sampling), masked cross entropy (tokens) or MSE (continuous). Batches are
length-bucketed and trimmed to their real columns (train.bucket_by_length). Every epoch: the
validation loss (teacher forced) and free-running validation metrics (token and sequence accuracy
of greedy decoding, or MSE of the generated sequence). The test split is decoded with beam search
(train.beam_size > 1) or greedily, beside a baseline (tokens: the most frequent target token;
continuous: predicting 0 and predicting the training mean). Files for the run folder:
predictions.csv (decoded test examples) and with attention attention_mean.csv and its plots.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import numpy as np

from rnnlab.config.validate import ConfigError
from rnnlab.data import seq2seq_tasks as S
from rnnlab.data.base import DataError
from rnnlab.data.registry import is_seq2seq
from rnnlab.engine import seq2seq as Q
from rnnlab.monitor.inspect import Seq2SeqInspector
from rnnlab.train import batches
from rnnlab.train.tasks import seq2seq_report
from rnnlab.train.tasks.base import StepOut, Streams, TestReport, limited_steps
from rnnlab.train.tasks.seq2seq_report import continuous_metrics, decode, teacher_forced_loss, token_metrics


def check_config(cfg, data) -> None:
    """One-line DataError for settings the encoder-decoder does not have (or non-seq2seq data with attention)."""

    a, r = cfg.arch, cfg.reg
    if not is_seq2seq(data):
        raise DataError(f"arch.attention={a.attention} is for the seq2seq data sets (reverse_digits, sine2cosine); "
                        f"data '{cfg.data.name}' needs arch.attention=none (or arch.pooling=attention)")
    if cfg.train.workers > 1:
        raise ConfigError("train.workers > 1 is not supported for seq2seq models: the data-parallel step runs the "
                          "sequence model only (the decoder's step-by-step loop is not split); use train.workers=1")
    bad = [text for cond, text in (
        (a.num_layers != 1, f"arch.num_layers={a.num_layers} (one layer each side)"),
        (a.bidirectional, "arch.bidirectional=true"), (a.conv_channels, f"arch.conv_channels={a.conv_channels}"),
        (a.layer_norm, "arch.layer_norm=true"), (a.batch_norm, "arch.batch_norm=true"),
        (a.self_attention_heads, f"arch.self_attention_heads={a.self_attention_heads}")) if cond]
    for key in ("dropout", "input_dropout", "mixup_alpha", "recurrent_dropout", "zoneout"):
        if (getattr(r, key, 0) or 0) > 0:
            bad.append(f"reg.{key}={getattr(r, key)}")
    if bad:
        raise DataError(f"the seq2seq model of data '{cfg.data.name}' does not support: {', '.join(bad)}")
    if cfg.train.monitor == "val_accuracy" and data.kind != "tokens":
        raise DataError(f"train.monitor=val_accuracy needs token targets (data '{cfg.data.name}' is continuous)")
    if cfg.train.beam_size > 1 and data.kind != "tokens":
        raise DataError(f"train.beam_size={cfg.train.beam_size} needs token targets (data '{cfg.data.name}' "
                        "is continuous; use beam_size=1)")


def build_spec(cfg, data: S.Seq2SeqTask) -> Q.Seq2SeqSpec:
    m, a = data.meta, cfg.arch
    attention = None if a.attention == "none" else a.attention
    options = dict(a.cell_options, **({} if a.nonlinearity is None else {"nonlinearity": a.nonlinearity}))
    common = {"cell": a.cell, "hidden_size": a.hidden_size, "attention": attention, "cell_options": options}
    if data.kind == "tokens":
        return Q.Seq2SeqSpec(**common, src_vocab=m["vocab_size"], tgt_vocab=m["vocab_size"],
                             embed_dim=m.get("embed_dim", 16), pad_id=m["pad_id"])
    return Q.Seq2SeqSpec(**common, src_dim=m["src_dim"], tgt_dim=m["tgt_dim"])


def teacher_forcing_at(cfg, epoch: int) -> float:
    """Linear decay from train.teacher_forcing (epoch 0) to train.teacher_forcing_end (last epoch)."""
    start, end = cfg.train.teacher_forcing, cfg.train.teacher_forcing_end
    if end is None or cfg.train.epochs == 1:
        return float(start)
    return float(start + (end - start) * epoch / (cfg.train.epochs - 1))


def loss(spec, out, split: S.Seq2SeqSplit):
    return Q.loss(spec, out, split.tgt_out, split.tgt_mask)


def trimmed(split: S.Seq2SeqSplit, idx) -> S.Seq2SeqSplit:
    """Rows idx cut to the columns where some source or target step is real (right-padded batches)."""
    b = split.batch(idx)
    src = batches.real_columns(b.src_mask, b.src.shape[1])
    tgt = batches.real_columns(b.tgt_mask, b.tgt_in.shape[1]) if b.tgt_in.ndim == 2 else slice(None)
    return S.Seq2SeqSplit(b.src[:, src], b.src_mask[:, src], b.tgt_in[:, tgt], b.tgt_out[:, tgt], b.tgt_mask[:, tgt])


class Seq2SeqAdapter:
    """The adapter of `rnnlab.engine.seq2seq` on a `Seq2SeqTask` (see `base.TaskAdapter`)."""

    model_kind = "seq2seq"

    def __init__(self, cfg, data: S.Seq2SeqTask, streams: Streams):
        check_config(cfg, data)
        self.cfg, self.data, self.streams = cfg, data, streams
        self.dtype = np.dtype(cfg.train.dtype)
        self.spec = build_spec(cfg, data)
        self.tokens = data.kind == "tokens"
        self.loss_name = "cross_entropy" if self.tokens else "mse"
        self.steps_per_epoch = limited_steps(len(data.train), cfg.train.batch_size, cfg.train.limit_batches)
        self.p_tf = float(cfg.train.teacher_forcing)

    def init_model(self, dtype):
        return Q.init_params(self.spec, self.streams.init, dtype=dtype), {}

    def session(self):
        return nullcontext(self)

    def summary_entries(self) -> dict[str, Any]:
        t, d = self.cfg.train, self.data
        return {"task": "multiclass" if self.tokens else "regression", "model": "seq2seq", "loss": self.loss_name,
                "n_train": len(d.train), "n_val": len(d.val), "n_test": len(d.test), "workers": t.workers,
                "seq2seq": {"data": self.cfg.data.name, "cell": self.spec.cell, "attention": self.cfg.arch.attention,
                            "beam_size": t.beam_size, "teacher_forcing": t.teacher_forcing,
                            "teacher_forcing_end": t.teacher_forcing_end}}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"data": self.data.meta, "task": f"seq2seq_{self.data.kind}", "loss": self.loss_name,
                "dtype": str(self.dtype)}

    def epoch_batches(self, epoch: int) -> list:
        t, tr = self.cfg.train, self.data.train
        lengths = S.src_lengths(tr) if t.bucket_by_length else None
        return batches.batch_order(len(tr), t.batch_size, self.streams.shuffle, lengths,
                                   shuffle=t.shuffle is not False)[: t.limit_batches]

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        self.p_tf = teacher_forcing_at(self.cfg, epoch)
        return {"teacher_forcing": self.p_tf}

    def train_step(self, params, state, idx) -> StepOut:
        tr = self.data.train
        b = trimmed(tr, idx) if self.cfg.train.bucket_by_length else tr.batch(idx)
        out, cache = Q.forward(self.spec, params, b.src, b.src_mask, b.tgt_in, teacher_forcing=self.p_tf,
                               rng=self.streams.dropout)
        value, dout = loss(self.spec, out, b)
        return StepOut(float(value), Q.backward(self.spec, params, dout, cache), state, len(b))

    def after_step(self, params) -> None:
        Q.after_step(self.spec, params)  # the cells' projections (IndRNN's recurrent bound)

    def validate(self, params, state) -> dict[str, float]:
        ebs, val = self.cfg.train.eval_batch_size, self.data.val
        row = {"val_loss": teacher_forced_loss(self.spec, params, val, ebs)}
        if not math.isfinite(row["val_loss"]):
            return row  # the loop stops the run as diverged
        dec = decode(self.spec, params, val, self.data.meta, ebs)  # free running, greedy
        if self.tokens:
            m = token_metrics(dec, val)
            row.update(val_accuracy=m["accuracy"], val_sequence_accuracy=m["sequence_accuracy"])
        else:
            row["val_mse"] = continuous_metrics(dec.outputs, val)["mse"]
        return row

    def test_report(self, params, state) -> TestReport:
        return seq2seq_report.report(self, params)

    def extra_streams(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass

    def inspector(self):
        return Seq2SeqInspector(self.spec, self.data)
