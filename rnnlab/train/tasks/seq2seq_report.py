"""The encoder-decoder's evaluation (teacher-forced loss, decoding, metrics) and its test report:
and with attention the mean attention of the most common source length (attention_mean.csv; the
report draws plots/attention.png and plots/attention_example.png from `tables["attention"]`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnlab.data import seq2seq_tasks as S
from rnnlab.engine import seq2seq as Q
from rnnlab.train.tasks.base import TestReport

N_PREDICTIONS = 20  # decoded test examples in predictions.csv (continuous: 5 sequences)


def _eval_batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def teacher_forced_loss(spec, params, split, batch_size: int) -> float:
    total = weight = 0.0
    for sl in _eval_batches(len(split), batch_size):
        b = split.batch(sl)
        out, _ = Q.forward(spec, params, b.src, b.src_mask, b.tgt_in)
        value, _ = Q.loss(spec, out, b.tgt_out, b.tgt_mask)
        w = float(b.tgt_mask.sum()) if spec.tokens_out else float(b.tgt_out.size)
        total += float(value) * w
        weight += w
    return total / max(weight, 1e-12)


def decode(spec, params, split, meta, batch_size: int, beam_size: int = 1) -> Q.Decoded:
    """Free-running decoding of the whole split: tokens (greedy or beam) or generated values."""
    return decode_sources(Q.Steps(spec, params), split.src, split.src_mask, meta, batch_size, beam_size,
                          length=split.tgt_out.shape[1])


def decode_sources(steps, src, src_mask, meta, batch_size: int, beam_size: int = 1,
                   length: int | None = None) -> Q.Decoded:
    """`decode` of sources on any step source (`Q.Steps`: the engine's, or the ONNX graphs'), in batches of
    batch_size; continuous outputs: `length` steps (None: the data's meta["t_out"])."""
    parts = []
    for sl in _eval_batches(len(src), batch_size):
        b_src, b_mask = src[sl], None if src_mask is None else src_mask[sl]
        if not steps.spec.tokens_out:
            parts.append(Q.decode_generate(steps, b_src, meta["t_out"] if length is None else length,
                                           meta.get("start_value", 0.0), src_mask=b_mask))
        elif beam_size > 1:
            parts.append(Q.decode_beam(steps, b_src, b_mask, beam_size, meta["max_out_len"], meta["bos_id"],
                                       meta["eos_id"]))
        else:
            parts.append(Q.decode_greedy(steps, b_src, b_mask, meta["max_out_len"], meta["bos_id"], meta["eos_id"]))

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


def report(task, params) -> TestReport:
    spec, data, cfg = task.spec, task.data, task.cfg
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
    out["baselines"] = baselines(data)
    files: dict[str, Any] = {"predictions.csv": predictions(data, dec)}
    tables: dict[str, Any] = {}
    if dec.attention is not None:
        entries, tables["attention"], files["attention_mean.csv"] = attention_outputs(data, dec)
        out.update(entries)
    return TestReport(out, tables, files)


def baselines(data: S.Seq2SeqTask) -> dict[str, dict[str, dict[str, float]]]:
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


def predictions(data: S.Seq2SeqTask, dec: Q.Decoded):
    import pandas as pd

    te = data.test
    if data.kind == "tokens":
        rows = []
        for i in range(min(N_PREDICTIONS, len(te))):
            real = te.tgt_mask[i] > 0
            rows.append({"sample": i, "source": S.digits_text(te.src[i][te.src_mask[i] > 0]),
                         "target": S.digits_text(te.tgt_out[i][real]), "prediction": S.digits_text(dec.tokens[i]),
                         "correct": bool(np.all(dec.tokens[i, : real.size][real] == te.tgt_out[i][real]))})
        return pd.DataFrame(rows)
    n = min(5, len(te))
    t_out, t_in = te.tgt_out.shape[1], te.src.shape[1]
    return pd.DataFrame({
        "sample": np.repeat(np.arange(n), t_out),
        "step": np.tile(np.arange(t_out), n),
        "source": [float(te.src[i, t, 0]) if t < t_in else np.nan for i in range(n) for t in range(t_out)],
        "target": te.tgt_out[:n, :, 0].ravel().astype(np.float64),
        "prediction": dec.outputs[:n, :, 0].ravel().astype(np.float64),
    })


def attention_outputs(data: S.Seq2SeqTask, dec: Q.Decoded) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Mean attention of the test sequences of the most common source length (attention_mean.csv) and
    one example; for reverse_digits also the share of output steps whose mean-attention argmax is the
    mirrored source position. Returns (summary entries, what the attention plots draw, attention_mean.csv)."""
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
    out: dict[str, Any] = {"attention_length": L, "attention_sequences": int(rows.sum())}
    if data.kind == "tokens":
        mirrored = L - 1 - np.arange(L)
        out["attention_alignment"] = float(np.mean(mean[:L].argmax(axis=1) == mirrored))
    i = int(np.flatnonzero(rows)[0])
    if data.kind == "tokens":
        ylab = [str(int(t) - S.DIGIT0) if t >= S.DIGIT0 else "<eos>" for t in dec.tokens[i, :n_rows]]
        xlab = [str(int(t) - S.DIGIT0) for t in te.src[i, :L]]
        ylab_mean = [*(f"out {t}" for t in range(L)), "<eos>"]
    else:
        ylab = xlab = ylab_mean = None
    draw = {"mean": mean, "mean_ylabels": ylab_mean, "length": L, "sequences": int(rows.sum()),
            "example": dec.attention[i, :n_rows, :L], "example_index": i, "example_xlabels": xlab,
            "example_ylabels": ylab}
    return out, draw, frame
