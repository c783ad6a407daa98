"""The training loop: `train(cfg, run_dir) -> summary`. Kept apart from the CLI and Hydra.

One epoch: shuffle, mini-batches of [mixup] -> forward -> loss (+ L1/L2 penalties) ->
backward -> [gradient noise] -> clip -> step, then evaluation on the validation split.
After every epoch the metrics so far are written (atomically), and the checkpoint when
the monitored metric improved. A loss or gradient that turns NaN/inf stops the run as
`diverged`; Ctrl-C or SIGTERM stops it as `interrupted`; an `epoch_hook` (rnnlab search's
pruner) as `pruned`; either way the last good checkpoint, the metrics so far and
`summary.json` stay on disk.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.config.validate import ConfigError, RunConfig
from rnnlab.data import augment, registry
from rnnlab.data.base import TaskData
from rnnlab.engine import clip, penalties
from rnnlab.engine import model as M
from rnnlab.engine.grad_noise import GradientNoise
from rnnlab.engine.optim import make_optimizer
from rnnlab.engine.parallel import WorkerError, make_loss
from rnnlab.engine.schedules import make_schedule
from rnnlab.runtime.io import write_csv, write_json
from rnnlab.runtime.memory import keep_freed_memory
from rnnlab.train import batches, checkpoint
from rnnlab.train.metrics import regression_metrics
from rnnlab.train.selection import ModelSelection, record_stop

TIMING_COLUMNS = ("seconds", "samples_per_s", "monitor_seconds")


class Diverged(RuntimeError):
    pass


@contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt so both stop the run the same clean way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def build_spec(cfg: RunConfig, data: TaskData) -> M.ModelSpec:
    a = cfg.arch
    emb = data.embedding or {}
    return M.ModelSpec(
        cell=a.cell,
        input_size=data.input_size,
        hidden_size=a.hidden_size,
        output_size=data.output_size,
        num_layers=a.num_layers,
        bidirectional=a.bidirectional,
        merge_mode=a.merge_mode,
        dropout=a.dropout,
        nonlinearity=a.nonlinearity,
        cell_options=dict(a.cell_options),
        pooling=a.pooling,
        conv_channels=a.conv_channels,
        conv_kernel=a.conv_kernel,
        conv_dilation=a.conv_dilation,
        layer_norm=a.layer_norm,
        batch_norm=a.batch_norm,
        self_attention_heads=a.self_attention_heads,
        self_attention_causal=a.self_attention_causal,
        input_dropout=cfg.reg.input_dropout,
        output_dropout=cfg.reg.dropout,
        recurrent_dropout=cfg.reg.recurrent_dropout,
        zoneout=cfg.reg.zoneout,
        vocab_size=emb.get("vocab_size"),
        padding_idx=emb.get("padding_idx", 0),
        embed_trainable=emb.get("trainable", True),
    )


def _check_task(cfg: RunConfig, data: TaskData, spec: M.ModelSpec) -> None:
    """Model and data must agree on the shape of the targets; one line when they do not."""
    from rnnlab.data.base import DataError

    per_step = data.kind != "regression" and data.train.y.ndim == 2
    if per_step and spec.pooling != "none":
        raise DataError(f"data '{cfg.data.name}' has a target at every step: use arch.pooling=none "
                        f"(got arch.pooling={spec.pooling})")
    if spec.pooling == "none" and not per_step:
        raise DataError(f"arch.pooling=none gives an output at every step, but data '{cfg.data.name}' "
                        "has one target per sequence (use last, mean, max or attention)")
    if cfg.train.monitor == "val_accuracy" and data.kind == "regression":
        raise DataError("train.monitor=val_accuracy needs a classification data set (use val_loss)")
    if cfg.reg.mixup_alpha > 0 and (data.embedding or np.issubdtype(data.train.x.dtype, np.integer)):
        raise DataError(f"reg.mixup_alpha needs float inputs, but data '{cfg.data.name}' feeds token ids "
                        "to an embedding (set reg.mixup_alpha=0)")
    name = cfg.train.loss or data.default_loss
    if name == "focal" and data.kind == "regression":
        raise DataError(f"train.loss=focal needs a classification data set (data '{cfg.data.name}' is regression)")
    if cfg.train.label_smoothing > 0 and name not in SMOOTHABLE:
        raise DataError(f"train.label_smoothing needs loss bce, cross_entropy or focal (got {name})")
    alpha = cfg.train.focal_alpha
    if name == "focal" and alpha is not None:
        if data.kind == "binary" and isinstance(alpha, list):
            raise DataError(f"train.focal_alpha for binary data is one number in [0, 1] (got {alpha})")
        if data.kind == "multiclass" and (not isinstance(alpha, list) or len(alpha) != spec.output_size):
            raise DataError(f"train.focal_alpha for data '{cfg.data.name}' is a list of {spec.output_size} "
                            f"class weights (got {alpha})")


def loss_targets(kind: str, y: np.ndarray, dtype) -> np.ndarray:
    """Targets as the loss wants them: (N, 1) floats for binary logits, int labels for multiclass."""
    if kind == "binary":
        return y.reshape(len(y), -1).astype(dtype)
    return y


SMOOTHABLE = ("bce", "cross_entropy", "focal")


def _loss_fn(cfg: RunConfig, data: TaskData, smoothing: bool = False):
    """(name, fn(pred, target, mask=None)); smoothing=True adds train.label_smoothing (the training loss)."""
    name, opts = _loss_setup(cfg, data, smoothing)
    return name, make_loss(name, opts)


def _loss_setup(cfg: RunConfig, data: TaskData, smoothing: bool = False) -> tuple[str, dict[str, Any]]:
    """The loss's name and keyword options (what a data-parallel worker rebuilds it from)."""
    name = cfg.train.loss or data.default_loss
    opts: dict[str, Any] = {}
    if name == "huber":
        opts["delta"] = cfg.train.huber_delta
    if name == "focal":
        opts.update(gamma=cfg.train.focal_gamma, alpha=cfg.train.focal_alpha)
    if smoothing and name in SMOOTHABLE and cfg.train.label_smoothing > 0:
        opts["label_smoothing"] = cfg.train.label_smoothing
    return name, opts


def _data_parallel(cfg: RunConfig, spec: M.ModelSpec, data: TaskData):
    """A started-on-entry DataParallel for train.workers > 1, else a context yielding None."""
    if cfg.train.workers == 1:
        return nullcontext(None)
    from rnnlab.engine.parallel import DataParallel

    name, opts = _loss_setup(cfg, data, smoothing=True)
    try:
        return DataParallel(spec, name, cfg.train.workers, opts, blas_threads=cfg.train.blas_threads or 1)
    except ValueError as exc:  # a model it cannot split (batch_norm)
        raise ConfigError(f"train.workers > 1: {exc}; use train.workers=1") from exc


def _mixup(x, mask, lam: float, perm: np.ndarray):
    """Inputs lam x + (1 - lam) x[perm]; the mask of a pair is the union of both masks."""
    x = lam * x + (1.0 - lam) * x[perm]
    if mask is not None:
        mask = np.maximum(mask, mask[perm])
    return x.astype(x.dtype, copy=False), mask


def _mixed_loss(loss_fn, out, y, tmask, lam: float, perm: np.ndarray):
    """Loss of a mixed batch. Float targets (regression, binary) are mixed themselves, which is exact for
    the losses linear in the target (bce, focal) and the usual mixup for regression; integer labels mix
    the losses: lam L(y) + (1 - lam) L(y[perm])."""
    if np.issubdtype(y.dtype, np.floating) and tmask is None:
        return loss_fn(out, (lam * y + (1.0 - lam) * y[perm]).astype(y.dtype, copy=False))
    la, ga = loss_fn(out, y, mask=tmask)
    lb, gb = loss_fn(out, y[perm], mask=None if tmask is None else tmask[perm])
    return lam * la + (1.0 - lam) * lb, (lam * ga + (1.0 - lam) * gb).astype(ga.dtype, copy=False)


def predict_split(spec, params, split, batch_size: int, state=None) -> np.ndarray:
    """Model outputs for every row of the split, in its order (length-grouped, trimmed batches).
    state: the model's BatchNorm running statistics (M.init_state; needed with batch_norm)."""
    out = None
    for idx in batches.eval_batches(split, batch_size):
        x, _, mask, _ = batches.take(split, idx, trim=False)
        cols = batches.real_columns(mask, x.shape[1])
        y, _ = M.forward(spec, params, x[:, cols], None if mask is None else mask[:, cols], train=False, state=state)
        if out is None:
            shape = (len(split), split.x.shape[1], y.shape[-1]) if y.ndim == 3 else (len(split), y.shape[-1])
            out = np.zeros(shape, dtype=y.dtype)
        if y.ndim == 3:
            out[idx, cols] = y
        else:
            out[idx] = y
    if out is None:
        return np.zeros((0, spec.output_size))
    return out


def evaluate(spec, params, split, loss_fn, batch_size, kind: str = "regression",
             state=None) -> tuple[float, np.ndarray]:
    pred = predict_split(spec, params, split, batch_size, state)
    tmask = getattr(split, "target_mask", None)
    value, _ = loss_fn(pred, loss_targets(kind, split.y, pred.dtype), mask=tmask)
    return float(value), pred


def accuracy(kind: str, split, out: np.ndarray) -> float:
    """Share of correct predictions (at threshold 0.5 for binary; over counted steps for per-step targets)."""
    y = split.y
    if kind == "binary":
        return float(np.mean((out[:, 0] >= 0) == (y.ravel() > 0)))
    pred = out.argmax(axis=-1)
    tmask = getattr(split, "target_mask", None)
    if tmask is not None:
        sel = tmask > 0
        return float(np.mean(pred[sel] == y[sel]))
    return float(np.mean(pred == y))


def train(cfg: RunConfig, run_dir: str | Path, console=None, epoch_hook=None) -> dict[str, Any]:
    """Train one model; writes the run folder's files and returns the summary dict.

    epoch_hook(epoch, row), if given, is called after each epoch's row is recorded (1-based epoch);
    a returned message stops the run cleanly with status "pruned" (rnnlab search's pruner uses it).
    """
    if cfg.train.blas_threads is None:
        return _train(cfg, run_dir, console, epoch_hook)
    from threadpoolctl import threadpool_limits

    # Small per-step GEMMs gain little from a second BLAS thread and lose a lot when
    # another process holds a core (every GEMM then waits for the descheduled thread).
    with threadpool_limits(cfg.train.blas_threads, user_api="blas"):
        return _train(cfg, run_dir, console, epoch_hook)


def _train(cfg: RunConfig, run_dir: str | Path, console=None, epoch_hook=None) -> dict[str, Any]:
    run_dir = Path(run_dir)
    t_start = time.perf_counter()
    keep_freed_memory()
    dtype = np.dtype(cfg.train.dtype)
    # The first four streams are those of every run so far; the regularizers' streams come after
    # them, so switching gradient noise or mixup on changes no other random number.
    seeds = np.random.SeedSequence(cfg.seed).spawn(6)
    data_rng, init_rng, shuffle_rng, drop_rng, noise_rng, mixup_rng = (np.random.default_rng(s) for s in seeds)

    data = registry.load(cfg.data, data_rng, dtype, cv=cfg.cv, seed=cfg.seed)  # cv.fold: one CV fold
    if registry.is_seq2seq(data) or cfg.arch.attention != "none":  # encoder-decoder (refuses other data)
        if cfg.train.workers > 1:
            raise ConfigError("train.workers > 1 is not supported for seq2seq models; use train.workers=1")
        from rnnlab.train.seq2seq_trainer import train_seq2seq

        return train_seq2seq(cfg, data, run_dir, console, epoch_hook)
    spec = build_spec(cfg, data)
    params = M.init_params(spec, init_rng, dtype=dtype)
    state = M.init_state(spec, dtype)  # BatchNorm running statistics ({} without arch.batch_norm)
    if data.embedding and data.embedding.get("weights") is not None:
        params["embedding.weight"] = np.asarray(data.embedding["weights"], dtype=dtype)
    opt = make_optimizer(**cfg.optim)
    steps_per_epoch = max(1, math.ceil(len(data.train) / cfg.train.batch_size))
    if cfg.train.limit_batches is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.train.limit_batches)
    _check_task(cfg, data, spec)
    dp_context = _data_parallel(cfg, spec, data)  # refuses batch_norm now; starts the workers below
    augmenter = augment.for_training(cfg, data)  # data.augment: train batches only, own random stream
    sched = make_schedule(cfg.sched, cfg.optim["lr"], cfg.train.epochs, steps_per_epoch)
    loss_name, loss_fn = _loss_fn(cfg, data)  # validation, test and monitor: no label smoothing
    _, train_loss_fn = _loss_fn(cfg, data, smoothing=True)
    reg = cfg.reg
    noise = GradientNoise(reg.grad_noise_eta, reg.grad_noise_gamma, noise_rng)
    pen_columns = [c for c, coef in (("l1_loss", reg.l1), ("l2_loss", reg.l2)) if coef > 0]
    from rnnlab.monitor import RunMonitor

    monitor = RunMonitor(cfg.monitor, spec, data, run_dir, console, loss_fn, loss_targets, plots=cfg.train.plots)
    ckpt_meta = {"data": data.meta, "task": data.kind, "loss": loss_name, "dtype": str(dtype)}

    summary: dict[str, Any] = {
        "status": "running",
        "run_dir": str(run_dir),
        "seed": cfg.seed,
        "task": data.kind,
        "loss": loss_name,
        "n_params": M.n_params(params),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "versions": _versions(),
        "pid": os.getpid(),
        "blas_threads": _blas_threads(),
        "workers": cfg.train.workers,
    }
    rows: list[dict[str, Any]] = []
    lr_trace: list[float] = []
    history: list[float] = []
    best = ModelSelection(cfg.train.monitor, cfg.train.early_stopping_patience, cfg.train.early_stopping_min_delta,
                          params, state)
    checkpoint.save(run_dir / "checkpoint", spec, params, {**ckpt_meta, "epoch": 0}, state)
    write_json(run_dir / "summary.json", summary)

    from rnnlab.report.progress import TrainingProgress

    progress = TrainingProgress(cfg.train.epochs, steps_per_epoch, enabled=cfg.train.progress, console=console,
                                samples_per_step=len(data.train) / steps_per_epoch)  # report: live samples/s
    status, message = "completed", None
    step = 0
    try:
        # Overflow on the way to divergence is expected; the finite checks below catch it.
        with (_sigterm_as_interrupt(), progress, np.errstate(over="ignore", invalid="ignore", divide="ignore"),
              dp_context as dp):
            for epoch in range(cfg.train.epochs):
                t0 = time.perf_counter()
                epoch_batches = batches.train_batches(data.train, cfg.train.batch_size, shuffle_rng,
                                                      bucket=cfg.train.bucket_by_length)[: cfg.train.limit_batches]
                total, count, gnorm_sum = 0.0, 0, 0.0
                pen_totals = dict.fromkeys(pen_columns, 0.0)
                for idx in epoch_batches:
                    xb, yb, mb, tmb = batches.take(data.train, idx)
                    xb, mb, aug_mix = augmenter(xb, mb) if augmenter else (xb, mb, None)
                    if reg.mixup_alpha > 0:
                        lam = float(mixup_rng.beta(reg.mixup_alpha, reg.mixup_alpha))
                        perm = mixup_rng.permutation(len(idx))
                        xb, mb = _mixup(xb, mb, lam, perm)
                    targets = loss_targets(data.kind, yb, dtype)
                    if dp is not None and reg.mixup_alpha == 0 and aug_mix is None:  # train.workers > 1
                        loss, grads = dp.loss_and_grads(params, xb, mb, targets, tmb, rng=drop_rng)
                        new_state = state  # no batch_norm here: nothing to update
                    else:  # one process (also for a mixed batch, whose loss pairs rows across parts)
                        out, cache = M.forward(spec, params, xb, mb, train=True, rng=drop_rng, state=state)
                        if reg.mixup_alpha > 0:
                            loss, dout = _mixed_loss(train_loss_fn, out, targets, tmb, lam, perm)
                        elif aug_mix is not None:  # data.augment's mixup
                            loss, dout = _mixed_loss(train_loss_fn, out, targets, tmb, aug_mix.lam, aug_mix.perm)
                        else:
                            loss, dout = train_loss_fn(out, targets, mask=tmb)
                        grads, _ = M.backward(spec, params, dout, cache)
                        new_state = cache["new_state"]
                    raw_grads = grads
                    if pen_columns:
                        pen_values, pgrads = penalties.penalties(params, l1=reg.l1, l2=reg.l2)
                        for c, v in pen_values.items():
                            pen_totals[c] += v * len(idx)
                        grads = penalties.add_grads(grads, pgrads)
                    if noise.enabled:  # before clipping, so the clip also bounds the early, large noise
                        grads = noise(grads)
                    if cfg.train.clip_value is not None:
                        grads = clip.clip_by_value(grads, cfg.train.clip_value)
                    if cfg.train.clip_norm is not None:
                        grads, gnorm = clip.clip_by_global_norm(grads, cfg.train.clip_norm)
                    else:
                        gnorm = clip.global_norm(grads)
                    monitor.on_step(step, epoch, params, raw_grads, gnorm)
                    if not (math.isfinite(loss) and math.isfinite(gnorm)):
                        raise Diverged(f"loss became {loss} (gradient norm {gnorm}) at epoch {epoch + 1}, step {step}")
                    lr = sched.lr_at(step, epoch, history)
                    opt.step(params, grads, lr=lr)
                    M.after_step(spec, params)  # the cells' projections (IndRNN's recurrent bound)
                    state = new_state  # a new dict each step: the best epoch's state stays as it was
                    lr_trace.append(lr)
                    step += 1
                    total += loss * len(idx)
                    count += len(idx)
                    gnorm_sum += gnorm
                    progress.batch(epoch, loss, lr)
                train_loss = total / count
                val_loss, val_out = evaluate(spec, params, data.val, loss_fn, cfg.train.eval_batch_size, data.kind,
                                             state=state)
                if not math.isfinite(val_loss):
                    raise Diverged(f"validation loss became {val_loss} at epoch {epoch + 1}")
                seconds = time.perf_counter() - t0
                row = {
                    "epoch": epoch + 1,
                    "lr": lr_trace[-1],
                    "train_loss": train_loss,  # the data loss; penalties have their own column
                    "val_loss": val_loss,
                    "grad_norm": gnorm_sum / steps_per_epoch,
                    "seconds": seconds,
                    "samples_per_s": count / seconds,
                }
                for c in pen_columns:
                    row[c] = pen_totals[c] / count
                if data.kind != "regression":
                    row["val_accuracy"] = accuracy(data.kind, data.val, val_out)
                t_mon = time.perf_counter()
                row.update(monitor.on_epoch_end(epoch, params, state))
                row["monitor_seconds"] = time.perf_counter() - t_mon
                rows.append(row)
                history.append(val_loss)  # ReduceLROnPlateau follows the validation loss
                _write_metrics(run_dir, rows)
                if best.update(row, params, state):
                    checkpoint.save(
                        run_dir / "checkpoint", spec, params,
                        {**ckpt_meta, "epoch": epoch + 1, "val_loss": val_loss,
                         **({"val_accuracy": row["val_accuracy"]} if "val_accuracy" in row else {})},
                        state,
                    )
                progress.epoch_end(epoch, train_loss, val_loss, row["lr"],  # report: + val accuracy, samples/s
                                   val_accuracy=row.get("val_accuracy"), samples_per_s=row["samples_per_s"], rows=rows)
                stop = best.after_epoch(epoch + 1, row, epoch_hook)
                if stop:
                    status, message = stop
                    break
    except Diverged as exc:
        status, message = "diverged", str(exc)
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted after {len(rows)} completed epochs"
    except WorkerError as exc:  # a data-parallel worker failed or died: keep what was done
        status, message = "failed", str(exc)
    record_stop(run_dir, summary, status, message, len(rows))

    # Evaluate the best (= checkpointed) weights on the test split, or with
    # train.restore_best_weights=false the last ones (never those of a diverged run).
    use_last = best.tests_last(cfg.train.restore_best_weights, status, len(rows))
    if use_last:
        checkpoint.save(run_dir / "checkpoint_last", spec, params, {**ckpt_meta, "epoch": len(rows)}, state)
    else:
        params, state = best.params, best.state
    summary.update(
        test_weights="last" if use_last else "best",
        test_weights_epoch=len(rows) if use_last else best.epoch,
    )
    summary.update(
        status=status,
        message=message,
        epochs_run=len(rows),
        best_epoch=best.epoch,
        best_val_loss=None if not rows else rows[best.epoch - 1]["val_loss"],
        monitored_metric=cfg.train.monitor,
        final_train_loss=rows[-1]["train_loss"] if rows else None,
        final_val_loss=rows[-1]["val_loss"] if rows else None,
    )
    if data.kind == "regression":
        report, tables = _test_report(spec, params, data, loss_fn, cfg, run_dir, state)
    else:
        from rnnlab.train.classify import classification_report

        report, tables = classification_report(spec, params, data, loss_fn, cfg, run_dir, state)
    summary.update(report)
    summary.update(monitor.finish(params, rows, state))
    summary["runtime_s"] = time.perf_counter() - t_start
    if rows:
        summary["seconds_per_epoch"] = float(np.mean([r["seconds"] for r in rows]))
    from rnnlab.train.dashboard import dashboard, peak_memory_mb  # report: the metrics dashboard

    summary["dashboard"] = dashboard(rows, monitor=cfg.train.monitor, peak_memory_mb=peak_memory_mb())
    write_json(run_dir / "summary.json", summary)
    if cfg.train.plots:
        from rnnlab.report import plots

        plots.save_run_plots(run_dir, rows, lr_trace, steps_per_epoch, tables.get("predictions"),
                             data.future, tables.get("forecast"), curves=tables.get("curves"))
    if cfg.train.plots:  # report: report.html, last; a failure here never loses the run
        try:
            from rnnlab.report.html import write_report

            write_report(run_dir)
        except Exception as exc:
            import logging

            logging.getLogger(__name__).warning("report.html not written: %r", exc)
    return summary


def _write_metrics(run_dir: Path, rows: list[dict]) -> None:
    import pandas as pd

    write_csv(run_dir / "metrics.csv", pd.DataFrame(rows))


def _test_report(spec, params, data: TaskData, loss_fn, cfg: RunConfig, run_dir: Path, state=None):
    """Test metrics in original units beside the baselines; writes predictions.csv (and forecast.csv).

    Returns (summary entries, {"predictions": frame, "forecast": frame}) so the plots need not re-read the files.
    """
    import pandas as pd

    bs = cfg.train.eval_batch_size
    test_loss, pred = evaluate(spec, params, data.test, loss_fn, bs, state=state)
    val_pred = predict_split(spec, params, data.val, bs, state)
    if data.recursive_horizon:
        pred = rolled_forecast(spec, params, data.test.x, data.recursive_horizon, bs, state)
        val_pred = rolled_forecast(spec, params, data.val.x, data.recursive_horizon, bs, state)
    out: dict[str, Any] = {"test_loss": test_loss}
    y_true, y_pred = data.targets_original("test"), data.to_original(pred, "test")
    val_true = data.targets_original("val")
    out["val_metrics"] = regression_metrics(val_true, data.to_original(val_pred, "val"))
    out["test_metrics"] = regression_metrics(y_true, y_pred)
    out["baselines"] = {
        name: {
            "val_metrics": regression_metrics(val_true, b["val"]),
            "test_metrics": regression_metrics(y_true, b["test"]),
        }
        for name, b in data.baselines.items()
    }
    n, h = y_true.shape
    frame = pd.DataFrame(
        {
            "sample": np.repeat(np.arange(n), h),
            "horizon": np.tile(np.arange(1, h + 1), n),
            "target": y_true.ravel(),
            "prediction": y_pred.ravel(),
        }
    )
    for name, b in data.baselines.items():
        frame[name] = np.asarray(b["test"], dtype=np.float64).ravel()
    write_csv(run_dir / "predictions.csv", frame)
    tables = {"predictions": frame}
    if data.future is not None:
        tables["forecast"] = _forecast(spec, params, data, run_dir, state)
        out["forecast"] = tables["forecast"]["forecast"].tolist()
    return out, tables


def rolled_forecast(spec, params, x: np.ndarray, horizon: int, batch_size: int = 1024, state=None) -> np.ndarray:
    """Recursive forecast (N, horizon): predict one step, append it to the window, repeat."""
    window = np.array(x, copy=True)
    out = np.empty((len(x), horizon), dtype=window.dtype)
    for h in range(horizon):
        step = M.predict(spec, params, window, None, batch_size, state=state)[:, 0]
        out[:, h] = step
        window[:, :-1] = window[:, 1:]
        window[:, -1, 0] = step
    return out


def _forecast(spec, params, data: TaskData, run_dir: Path, state=None):
    """The next n_out values past the end of the data, written to forecast.csv."""
    import pandas as pd

    if data.recursive_horizon:
        y_scaled = rolled_forecast(spec, params, data.future["x"], data.recursive_horizon, state=state)
    else:
        y_scaled = M.predict(spec, params, data.future["x"], state=state)
    y = data.to_original(y_scaled, "future")[0]
    dates = data.future.get("dates")
    frame = pd.DataFrame({"horizon": np.arange(1, len(y) + 1), "forecast": y})
    if dates is not None and len(dates):
        # business days after the last date (daily market data); other data can ignore the column
        frame.insert(1, "date", pd.bdate_range(dates.iloc[-1], periods=len(y) + 1)[1:].strftime("%Y-%m-%d"))
    write_csv(run_dir / "forecast.csv", frame)
    return frame


def _blas_threads() -> str:
    """Threads the BLAS library will use, as a string ("1", "2"; "?" when unknown)."""
    from threadpoolctl import threadpool_info

    counts = sorted({str(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"})
    return ",".join(counts) or "?"


def _versions() -> dict[str, str]:
    import rnnlab

    return {
        "rnnlab": getattr(rnnlab, "__version__", "0"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
