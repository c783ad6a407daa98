"""Training loop of the encoder-decoder tasks (data=reverse_digits, data=sine2cosine):
`train_seq2seq(cfg, data, run_dir, console) -> summary`, called by `trainer.train` when the data
set is a `Seq2SeqTask`.

Model (`rnnlab.engine.seq2seq`): arch.cell (lstm | gru), arch.hidden_size, arch.attention (none |
luong | bahdanau); token tasks embed with data.embed_dim. Training: teacher forcing with ratio
train.teacher_forcing at the first epoch, decaying linearly to train.teacher_forcing_end by the
last (scheduled sampling), masked cross entropy (tokens) or MSE (continuous), the trainer's
optimizer, schedule, L1/L2 penalties, gradient noise and clipping. Every epoch: validation loss
(teacher forced) and free-running validation metrics (token and sequence accuracy of greedy
decoding, or MSE of the generated sequence). The test split is decoded with beam search
(train.beam_size > 1) or greedily, beside a baseline (tokens: the most frequent target token;
continuous: predicting 0 and predicting the training mean).

Files: metrics.csv, summary.json, checkpoint/ (model.npz + model.json with the Seq2SeqSpec, no
pickle; `load_checkpoint` reads it back), predictions.csv (decoded test examples), plots/loss.png,
plots/lr.png, and with attention plots/attention.png (mean attention over the test sequences of
the most common length), plots/attention_example.png and attention_mean.csv; report.html last.
A NaN/inf loss stops the run as `diverged`, Ctrl-C / SIGTERM as `interrupted`, as in the trainer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.data import seq2seq_tasks as S
from rnnlab.data.base import DataError
from rnnlab.engine import clip, losses, penalties
from rnnlab.engine import seq2seq as Q
from rnnlab.engine.grad_noise import GradientNoise
from rnnlab.engine.optim import make_optimizer
from rnnlab.engine.schedules import make_schedule
from rnnlab.runtime.io import write_csv, write_json
from rnnlab.train import checkpoint
from rnnlab.train.selection import ModelSelection, record_stop

N_PREDICTIONS = 20  # decoded test examples in predictions.csv (continuous: sequences)


class _SpecDict:
    """What checkpoint.save needs of a spec (to_dict), for a Seq2SeqSpec."""

    def __init__(self, spec: Q.Seq2SeqSpec):
        self.spec = spec

    def to_dict(self) -> dict[str, Any]:
        return {"model": "seq2seq", **dataclasses.asdict(self.spec)}


def load_checkpoint(folder: str | Path) -> tuple[Q.Seq2SeqSpec, dict[str, np.ndarray], dict[str, Any]]:
    """(spec, params, model.json) of a seq2seq checkpoint folder (or run folder), without pickle."""
    folder = Path(folder)
    if (folder / "checkpoint").is_dir():
        folder = folder / "checkpoint"
    info = json.loads((folder / "model.json").read_text())
    fields = {k: v for k, v in info["spec"].items() if k != "model"}
    spec = Q.Seq2SeqSpec(**fields)
    with np.load(folder / "model.npz", allow_pickle=False) as z:
        params = {k: z[k] for k in z.files}
    return spec, params, info


def check_config(cfg, data) -> None:
    """One-line DataError for settings the encoder-decoder does not have (or non-seq2seq data with attention)."""
    from rnnlab.data.registry import is_seq2seq

    a, r = cfg.arch, cfg.reg
    if not is_seq2seq(data):
        raise DataError(f"arch.attention={a.attention} is for the seq2seq data sets (reverse_digits, sine2cosine); "
                        f"data '{cfg.data.name}' needs arch.attention=none (or arch.pooling=attention)")
    bad = []
    if a.num_layers != 1:
        bad.append(f"arch.num_layers={a.num_layers} (one layer each side)")
    if a.bidirectional:
        bad.append("arch.bidirectional=true")
    if a.conv_channels:
        bad.append(f"arch.conv_channels={a.conv_channels}")
    if a.layer_norm:
        bad.append("arch.layer_norm=true")
    if a.batch_norm:
        bad.append("arch.batch_norm=true")
    if a.self_attention_heads:
        bad.append(f"arch.self_attention_heads={a.self_attention_heads}")
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


def _loss(spec, out, split: S.Seq2SeqSplit):
    if spec.tokens_out:
        return losses.softmax_cross_entropy(out, split.tgt_out, split.tgt_mask)
    return losses.mse(out, split.tgt_out)


def _eval_batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def teacher_forced_loss(spec, params, split, batch_size: int) -> float:
    total = weight = 0.0
    for sl in _eval_batches(len(split), batch_size):
        b = split.batch(sl)
        out, _ = Q.forward(spec, params, b.src, b.src_mask, b.tgt_in)
        value, _ = _loss(spec, out, b)
        w = float(b.tgt_mask.sum()) if spec.tokens_out else float(b.tgt_out.size)
        total += float(value) * w
        weight += w
    return total / max(weight, 1e-12)


def decode(spec, params, split, meta, batch_size: int, beam_size: int = 1) -> Q.Decoded:
    """Free-running decoding of the whole split: tokens (greedy or beam) or generated values."""
    parts = []
    for sl in _eval_batches(len(split), batch_size):
        b = split.batch(sl)
        if not spec.tokens_out:
            parts.append(Q.generate(spec, params, b.src, b.tgt_out.shape[1], meta.get("start_value", 0.0),
                                    src_mask=b.src_mask))
        elif beam_size > 1:
            parts.append(Q.beam_search(spec, params, b.src, b.src_mask, beam_size, meta["max_out_len"],
                                       meta["bos_id"], meta["eos_id"]))
        else:
            parts.append(Q.greedy_decode(spec, params, b.src, b.src_mask, meta["max_out_len"], meta["bos_id"],
                                         meta["eos_id"]))

    def cat(name):
        vals = [getattr(p, name) for p in parts]
        return None if vals[0] is None else np.concatenate(vals, axis=0)

    return Q.Decoded(cat("tokens"), cat("outputs"), cat("log_prob"), cat("lengths"), cat("attention"))


def token_metrics(dec: Q.Decoded, split: S.Seq2SeqSplit) -> dict[str, float]:
    """Token accuracy over the real target steps (EOS included) and the share of fully correct sequences."""
    real = split.tgt_mask > 0
    ok = (dec.tokens[:, : real.shape[1]] == split.tgt_out) | ~real
    return {"accuracy": float(ok[real].mean()), "sequence_accuracy": float(ok.all(axis=1).mean())}


def continuous_metrics(pred: np.ndarray, split: S.Seq2SeqSplit) -> dict[str, float]:
    diff = np.asarray(pred, dtype=np.float64) - split.tgt_out
    mse = float(np.mean(diff ** 2))
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(diff)))}


def _baselines(data: S.Seq2SeqTask) -> dict[str, dict[str, dict[str, float]]]:
    if data.kind == "tokens":
        tr = data.train
        tokens, counts = np.unique(tr.tgt_out[tr.tgt_mask > 0], return_counts=True)
        top = int(tokens[counts.argmax()])
        out = {}
        for name, split in (("val", data.val), ("test", data.test)):
            fake = Q.Decoded(np.full(split.tgt_out.shape, top), None, None, None, None)
            out[f"{name}_metrics"] = token_metrics(fake, split)
        return {"most_frequent_token": out}
    mean = float(data.train.tgt_out.mean())
    return {name: {f"{s}_metrics": continuous_metrics(np.full(split.tgt_out.shape, v), split)
                   for s, split in (("val", data.val), ("test", data.test))}
            for name, v in (("zero", 0.0), ("train_mean", mean))}


def _fmt_tokens(ids) -> str:
    """Digits as text ("3 1 4"), EOS as <eos>, padding left out."""
    words = []
    for t in ids:
        t = int(t)
        if t == S.EOS:
            words.append("<eos>")
            break
        if t >= S.DIGIT0:
            words.append(str(t - S.DIGIT0))
    return " ".join(words)


def _predictions(data: S.Seq2SeqTask, dec: Q.Decoded, run_dir: Path) -> None:
    import pandas as pd

    te = data.test
    n = min(N_PREDICTIONS, len(te))
    if data.kind == "tokens":
        rows = []
        for i in range(n):
            real = te.tgt_mask[i] > 0
            rows.append({"sample": i, "source": _fmt_tokens(te.src[i][te.src_mask[i] > 0]),
                         "target": _fmt_tokens(te.tgt_out[i][real]),
                         "prediction": _fmt_tokens(dec.tokens[i]),
                         "correct": bool(np.all(dec.tokens[i, : real.size][real] == te.tgt_out[i][real]))})
        frame = pd.DataFrame(rows)
    else:
        n = min(5, len(te))
        t_out, t_in = te.tgt_out.shape[1], te.src.shape[1]
        frame = pd.DataFrame({
            "sample": np.repeat(np.arange(n), t_out),
            "step": np.tile(np.arange(t_out), n),
            "source": [float(te.src[i, t, 0]) if t < t_in else np.nan for i in range(n) for t in range(t_out)],
            "target": te.tgt_out[:n, :, 0].ravel().astype(np.float64),
            "prediction": dec.outputs[:n, :, 0].ravel().astype(np.float64),
        })
    write_csv(run_dir / "predictions.csv", frame)


def _attention_outputs(data: S.Seq2SeqTask, dec: Q.Decoded, run_dir: Path, plots: bool) -> dict[str, Any]:
    """Mean attention of the test sequences of the most common source length (attention_mean.csv,
    plots/attention.png) and one example (plots/attention_example.png); for reverse_digits also the
    share of output steps whose mean-attention argmax is the mirrored source position."""
    import pandas as pd

    te = data.test
    lengths = S.src_lengths(te)
    values, counts = np.unique(lengths, return_counts=True)
    L = int(values[counts.argmax()])
    rows = lengths == L
    n_rows = L + 1 if data.kind == "tokens" else te.tgt_out.shape[1]  # tokens: the L digits and EOS
    # each output step averaged over the sequences still decoding there (rows after an early EOS are 0)
    alive = (np.arange(n_rows)[None, :] < dec.lengths[rows][:, None]).astype(np.float64)
    mean = (dec.attention[rows][:, :n_rows, :L] * alive[:, :, None]).sum(axis=0)
    mean /= np.maximum(alive.sum(axis=0), 1)[:, None]
    frame = pd.DataFrame(mean, columns=[f"src_{j}" for j in range(L)])
    frame.insert(0, "output_step", np.arange(n_rows))
    write_csv(run_dir / "attention_mean.csv", frame)
    out: dict[str, Any] = {"attention_length": L, "attention_sequences": int(rows.sum())}
    if data.kind == "tokens":
        mirrored = L - 1 - np.arange(L)
        out["attention_alignment"] = float(np.mean(mean[:L].argmax(axis=1) == mirrored))
    if plots:
        from rnnlab.report.attention_plots import attention_heatmap

        i = int(np.flatnonzero(rows)[0])
        if data.kind == "tokens":
            ylab = [str(int(t) - S.DIGIT0) if t >= S.DIGIT0 else "<eos>" for t in dec.tokens[i, :n_rows]]
            xlab = [str(int(t) - S.DIGIT0) for t in te.src[i, :L]]
            ylab_mean = [*(f"out {t}" for t in range(L)), "<eos>"]
        else:
            ylab = xlab = ylab_mean = None
        attention_heatmap(mean, run_dir / "plots" / "attention.png", ylabels=ylab_mean,
                          title=f"Mean attention over {int(rows.sum())} test sequences of length {L}",
                          xlabel="source position", ylabel="output step")
        attention_heatmap(dec.attention[i, :n_rows, :L], run_dir / "plots" / "attention_example.png",
                          xlabels=xlab, ylabels=ylab, title=f"Attention of test sequence {i}",
                          xlabel="source token", ylabel="decoded token")
    return out


def train_seq2seq(cfg, data, run_dir: str | Path, console=None, epoch_hook=None) -> dict[str, Any]:
    """Train the encoder-decoder on a Seq2SeqTask; writes the run folder's files and returns the summary.
    epoch_hook: as in trainer.train (a returned message stops the run as "pruned")."""
    from rnnlab.train.trainer import Diverged, _blas_threads, _sigterm_as_interrupt, _versions

    check_config(cfg, data)
    run_dir = Path(run_dir)
    t_start = time.perf_counter()
    dtype = np.dtype(cfg.train.dtype)
    # the trainer's streams (data_rng was used by the loader); the 4th is the sampling decisions
    seeds = np.random.SeedSequence(cfg.seed).spawn(6)
    _, init_rng, shuffle_rng, tf_rng, noise_rng, _ = (np.random.default_rng(s) for s in seeds)
    spec = build_spec(cfg, data)
    params = Q.init_params(spec, init_rng, dtype=dtype)
    meta = data.meta
    tr = data.train
    bs = cfg.train.batch_size
    steps_per_epoch = max(1, math.ceil(len(tr) / bs))
    if cfg.train.limit_batches is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.train.limit_batches)
    opt = make_optimizer(**cfg.optim)
    sched = make_schedule(cfg.sched, cfg.optim["lr"], cfg.train.epochs, steps_per_epoch)
    reg = cfg.reg
    noise = GradientNoise(reg.grad_noise_eta, reg.grad_noise_gamma, noise_rng)
    tokens = data.kind == "tokens"
    loss_name = "cross_entropy" if tokens else "mse"
    ebs = cfg.train.eval_batch_size
    ckpt_meta = {"data": meta, "task": f"seq2seq_{data.kind}", "loss": loss_name, "dtype": str(dtype)}
    summary: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run_dir),
        "seed": cfg.seed,
        "task": "multiclass" if tokens else "regression",
        "model": "seq2seq",
        "seq2seq": {"data": cfg.data.name, "cell": spec.cell, "attention": cfg.arch.attention,
                    "beam_size": cfg.train.beam_size, "teacher_forcing": cfg.train.teacher_forcing,
                    "teacher_forcing_end": cfg.train.teacher_forcing_end},
        "loss": loss_name,
        "n_params": int(sum(v.size for v in params.values())),
        "n_train": len(tr),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "versions": _versions(),
        "pid": os.getpid(),
        "blas_threads": _blas_threads(),
    }
    rows: list[dict[str, Any]] = []
    lr_trace: list[float] = []
    history: list[float] = []
    best = ModelSelection(cfg.train.monitor, cfg.train.early_stopping_patience, cfg.train.early_stopping_min_delta,
                          params)
    spec_dict = _SpecDict(spec)
    checkpoint.save(run_dir / "checkpoint", spec_dict, params, {**ckpt_meta, "epoch": 0})
    write_json(run_dir / "summary.json", summary)

    from rnnlab.report.progress import TrainingProgress

    progress = TrainingProgress(cfg.train.epochs, steps_per_epoch, enabled=cfg.train.progress, console=console,
                                samples_per_step=len(tr) / steps_per_epoch)
    status, message = "completed", None
    step = 0
    try:
        with _sigterm_as_interrupt(), progress, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(cfg.train.epochs):
                t0 = time.perf_counter()
                p_tf = teacher_forcing_at(cfg, epoch)
                order = shuffle_rng.permutation(len(tr))
                total = count = 0.0
                gnorm_sum = 0.0
                for i in range(0, min(len(tr), steps_per_epoch * bs), bs):
                    b = tr.batch(order[i:i + bs])
                    out, cache = Q.forward(spec, params, b.src, b.src_mask, b.tgt_in, teacher_forcing=p_tf,
                                           rng=tf_rng)
                    loss, dout = _loss(spec, out, b)
                    loss = float(loss)
                    grads = Q.backward(spec, params, dout, cache)
                    if reg.l1 > 0 or reg.l2 > 0:
                        _, pgrads = penalties.penalties(params, l1=reg.l1, l2=reg.l2)
                        grads = penalties.add_grads(grads, pgrads)
                    if noise.enabled:
                        grads = noise(grads)
                    if cfg.train.clip_value is not None:
                        grads = clip.clip_by_value(grads, cfg.train.clip_value)
                    if cfg.train.clip_norm is not None:
                        grads, gnorm = clip.clip_by_global_norm(grads, cfg.train.clip_norm)
                    else:
                        gnorm = clip.global_norm(grads)
                    if not (math.isfinite(loss) and math.isfinite(gnorm)):
                        raise Diverged(f"loss became {loss} (gradient norm {gnorm}) at epoch {epoch + 1}, step {step}")
                    lr = sched.lr_at(step, epoch, history)
                    opt.step(params, grads, lr=lr)
                    Q.after_step(spec, params)  # the cells' projections (IndRNN's recurrent bound)
                    lr_trace.append(lr)
                    step += 1
                    total += loss * len(b)
                    count += len(b)
                    gnorm_sum += gnorm
                    progress.batch(epoch, loss, lr)
                train_loss = total / count
                val_loss = teacher_forced_loss(spec, params, data.val, ebs)
                if not math.isfinite(val_loss):
                    raise Diverged(f"validation loss became {val_loss} at epoch {epoch + 1}")
                dec = decode(spec, params, data.val, meta, ebs)  # free running, greedy
                seconds = time.perf_counter() - t0
                row = {"epoch": epoch + 1, "lr": lr_trace[-1], "teacher_forcing": p_tf, "train_loss": train_loss,
                       "val_loss": val_loss}
                if tokens:
                    m = token_metrics(dec, data.val)
                    row.update(val_accuracy=m["accuracy"], val_sequence_accuracy=m["sequence_accuracy"])
                else:
                    row["val_mse"] = continuous_metrics(dec.outputs, data.val)["mse"]
                row.update(grad_norm=gnorm_sum / steps_per_epoch, seconds=seconds, samples_per_s=count / seconds)
                rows.append(row)
                history.append(val_loss)
                _write_metrics(run_dir, rows)
                if best.update(row, params):
                    checkpoint.save(run_dir / "checkpoint", spec_dict, params,
                                    {**ckpt_meta, "epoch": epoch + 1, "val_loss": val_loss})
                progress.epoch_end(epoch, train_loss, val_loss, row["lr"], val_accuracy=row.get("val_accuracy"),
                                   samples_per_s=row["samples_per_s"], rows=rows)
                stop = best.after_epoch(epoch + 1, row, epoch_hook)
                if stop:
                    status, message = stop
                    break
    except Diverged as exc:
        status, message = "diverged", str(exc)
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted after {len(rows)} completed epochs"
    record_stop(run_dir, summary, status, message, len(rows))

    use_last = best.tests_last(cfg.train.restore_best_weights, status, len(rows))
    if use_last:
        checkpoint.save(run_dir / "checkpoint_last", spec_dict, params, {**ckpt_meta, "epoch": len(rows)})
    else:
        params = best.params
    summary.update(
        status=status,
        message=message,
        test_weights="last" if use_last else "best",
        test_weights_epoch=len(rows) if use_last else best.epoch,
        epochs_run=len(rows),
        best_epoch=best.epoch,
        best_val_loss=None if not rows else rows[best.epoch - 1]["val_loss"] if best.epoch else None,
        monitored_metric=cfg.train.monitor,
        final_train_loss=rows[-1]["train_loss"] if rows else None,
        final_val_loss=rows[-1]["val_loss"] if rows else None,
    )
    summary.update(_test_report(spec, params, data, cfg, run_dir))
    summary["runtime_s"] = time.perf_counter() - t_start
    if rows:
        summary["seconds_per_epoch"] = float(np.mean([r["seconds"] for r in rows]))
    write_json(run_dir / "summary.json", summary)
    if cfg.train.plots:
        from rnnlab.report import plots

        plots.save_run_plots(run_dir, rows, lr_trace, steps_per_epoch, None)
        try:
            from rnnlab.report.html import write_report

            write_report(run_dir)
        except Exception as exc:
            import logging

            logging.getLogger(__name__).warning("report.html not written: %r", exc)
    return summary


def _test_report(spec, params, data: S.Seq2SeqTask, cfg, run_dir: Path) -> dict[str, Any]:
    """Test (and val) metrics of the decoding beside the baselines; predictions.csv and the attention files."""
    ebs = cfg.train.eval_batch_size
    out: dict[str, Any] = {"test_loss": teacher_forced_loss(spec, params, data.test, ebs)}
    beam = cfg.train.beam_size if spec.tokens_out else 1
    val_dec = decode(spec, params, data.val, data.meta, ebs)
    dec = decode(spec, params, data.test, data.meta, ebs, beam_size=beam)
    out["decoding"] = "greedy" if beam == 1 else f"beam search (beam_size {beam})"
    if spec.tokens_out:
        out["val_metrics"] = token_metrics(val_dec, data.val)
        out["test_metrics"] = token_metrics(dec, data.test)
        out["test_token_accuracy"] = out["test_metrics"]["accuracy"]
        out["test_sequence_accuracy"] = out["test_metrics"]["sequence_accuracy"]
    else:
        out["val_metrics"] = continuous_metrics(val_dec.outputs, data.val)
        out["test_metrics"] = continuous_metrics(dec.outputs, data.test)
        out["test_mse"] = out["test_metrics"]["mse"]
    out["baselines"] = _baselines(data)
    _predictions(data, dec, run_dir)
    if dec.attention is not None:
        out.update(_attention_outputs(data, dec, run_dir, cfg.train.plots))
    return out


def _write_metrics(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd

    write_csv(run_dir / "metrics.csv", pd.DataFrame(rows))
