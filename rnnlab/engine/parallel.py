"""Data-parallel training steps: a mini-batch split by rows over worker processes.

NumPy runs elementwise work (the gates' exp, the products of BPTT) on one core, and a
recurrent layer's per-step GEMMs are too small for OpenBLAS to split well over threads.
The sequences of a batch are independent in the forward pass and in BPTT, so the batch
splits with no exchange between timesteps: part 0 runs in this process and part k in
worker k, each with one BLAS thread, and only the gradients are summed. Python threads
cannot do this: every NumPy call needs the GIL, and passing it back and forth at each of
a timestep's ~15 calls costs more than the parallel work saves (docs/design.md).

Exactness: every loss in ``losses`` is a mean over its counted entries, so part k's
gradient is weighted by ``count_k / sum(count)`` before its backward pass; the summed
gradients are the whole batch's up to float rounding (another summation order).

Transport: each worker is a fresh interpreter on a socket pair and has one
``multiprocessing.shared_memory`` block for the parameters, its rows of x / mask /
targets / target mask and its gradients, reused while it is large enough; the socket
carries only the layout and a few numbers.

Dropout: a step draws one seed from the caller's generator; part k samples its masks
from ``default_rng([seed, k])``. A run is therefore reproducible for a given number of
workers, and differs from the one-process run (other masks, other rounding). BatchNorm
models are refused: each part would normalise with its own batch statistics.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from multiprocessing import shared_memory
from multiprocessing.connection import Connection

import numpy as np

from rnnlab.engine import losses
from rnnlab.engine import model as M
from rnnlab.engine.row_threads import split_rows
from rnnlab.runtime.memory import keep_freed_memory

_ALIGN = 64
# Seconds to busy-poll the socket before sleeping on it. Waking a sleeping process costs
# up to milliseconds on a VM, paid twice per step; a worker spins a little past each
# step (the parent's optimizer update and next batch), the parent while its workers finish.
SPIN_WORKER = 0.005
SPIN_PARENT = 0.05


def loss_count(target: np.ndarray, mask) -> float:
    """The number of entries a mean-reduced loss of ``losses`` divides by."""
    if mask is None:
        return float(np.prod(target.shape))
    mask = np.asarray(mask)
    return float(mask.sum(dtype=np.float64)) * float(np.prod(target.shape[mask.ndim :]))


def make_loss(name: str, opts: dict):
    """fn(pred, target, mask=None) -> (value, dpred) for a loss of ``losses`` with keyword options."""

    base = losses.get_loss(name)
    if not opts:
        return base
    return lambda pred, target, mask=None: base(pred, target, mask=mask, **opts)


def part_loss_and_grads(spec, params, loss_fn, x, mask, target, tmask, weight: float, rng):
    """(weight * loss, grads of weight * loss) of one part of a batch."""

    out, cache = M.forward(spec, params, x, mask, train=True, rng=rng)
    loss, dout = loss_fn(out, target, mask=tmask)
    if weight != 1.0:
        dout = dout * dout.dtype.type(weight)
    grads, _ = M.backward(spec, params, dout, cache)
    return weight * loss, grads


def _layout(arrays: dict[str, np.ndarray], start: int = 0):
    """[(key, offset, shape, dtype str)] packing arrays from byte `start`, and the end offset."""
    out, off = [], start
    for k, a in arrays.items():
        out.append((k, off, a.shape, a.dtype.str))
        off += -(-a.nbytes // _ALIGN) * _ALIGN
    return out, off


def _views(buf, layout) -> dict[str, np.ndarray]:
    return {k: np.ndarray(shape, np.dtype(dt), buffer=buf, offset=off) for k, off, shape, dt in layout}


# ---------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------


def _spin(conn, seconds: float) -> None:
    """Busy-poll conn for up to `seconds` (returns early when something can be read)."""
    end = time.perf_counter() + seconds
    while not conn.poll(0) and time.perf_counter() < end:
        pass


def _attach(name: str) -> shared_memory.SharedMemory:
    """The parent's block, not tracked here: this interpreter's resource tracker would
    otherwise unlink it when the worker exits (python/cpython#82300), under the parent."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    from multiprocessing import resource_tracker

    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001 - the documented workaround
    return shm


def _worker_main(conn) -> None:
    """A worker (one BLAS thread, set by its environment): steps until "close" or until the
    connection closes (the parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle

    keep_freed_memory()  # as in the trainer: no page faults on every step's caches

    try:
        _, spec_dict, loss_name, loss_opts = conn.recv()
    except EOFError:
        return
    spec = M.ModelSpec.from_dict(spec_dict)
    loss_fn = make_loss(loss_name, loss_opts)
    shm = None
    try:
        while True:
            try:
                _spin(conn, SPIN_WORKER)
                msg = conn.recv()
            except EOFError:
                return
            if msg[0] == "close":
                return
            _, name, in_layout, grad_layout, weight, seed, part = msg
            try:
                if shm is None or shm.name != name:
                    if shm is not None:
                        shm.close()
                    shm = _attach(name)
                v = _views(shm.buf, in_layout)
                params = {k[2:]: a for k, a in v.items() if k.startswith("p:")}
                rng = None if seed is None else np.random.default_rng([seed, part])
                loss, grads = part_loss_and_grads(spec, params, loss_fn, v["x"], v.get("mask"), v["target"],
                                                  v.get("tmask"), weight, rng)
                for k, g in _views(shm.buf, grad_layout).items():
                    np.copyto(g, grads[k[2:]])
                del v, params, grads  # no views into the block may outlive a resize
                conn.send(("ok", float(loss)))
            except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it
                conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        if shm is not None:
            shm.close()


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A worker failed or died during a step."""


class DataParallel:
    """``loss_and_grads`` of a ``ModelSpec`` model with each batch split over ``workers`` processes.

    A context manager: entering starts ``workers - 1`` processes and limits this process's
    BLAS to ``blas_threads`` (1: each process gets its own core); leaving stops them. The
    workers are fresh interpreters (``python -m rnnlab.engine.parallel``) on a socket, not
    ``multiprocessing`` children: a fork would copy OpenBLAS' thread pool, and a spawn
    re-imports the parent's ``__main__`` and start method, which fails inside joblib's
    workers (Hydra's joblib launcher). ``loss_opts`` are the loss's keyword
    options (``label_smoothing``, ``delta``...).
    """

    def __init__(self, spec, loss: str, workers: int = 2, loss_opts: dict | None = None,
                 blas_threads: int | None = 1):
        if workers < 2:
            raise ValueError(f"DataParallel needs workers >= 2 (got {workers})")
        if getattr(spec, "batch_norm", False):
            raise ValueError("data-parallel steps do not support batch_norm models (each process would normalise "
                             "with its own batch statistics)")
        self.spec, self.workers = spec, int(workers)
        self.loss_name, self.loss_opts = loss, dict(loss_opts or {})
        self._loss_fn = make_loss(loss, self.loss_opts)
        self._blas_threads = blas_threads
        self._procs: list = []
        self._conns: list = []
        self._shms: list = []
        self._limiter = None

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> DataParallel:
        try:
            for _ in range(self.workers - 1):
                proc, conn = _start_worker()
                self._procs.append(proc)
                self._conns.append(conn)
                self._shms.append(None)
                conn.send(("init", self.spec.to_dict(), self.loss_name, self.loss_opts))
            if self._blas_threads is not None:
                from threadpoolctl import threadpool_limits

                self._limiter = threadpool_limits(self._blas_threads, user_api="blas")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (empty when not started)."""
        return [p.pid for p in self._procs]

    def close(self) -> None:
        """Stop the workers and free the shared blocks (safe to call twice)."""
        for c in self._conns:
            try:
                c.send(("close",))
            except OSError:
                pass
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: stuck mid-step
                p.kill()
                p.wait(timeout=5)
        for c in self._conns:
            c.close()
        for s in self._shms:
            if s is not None:
                s.close()
                s.unlink()
        self._procs, self._conns, self._shms = [], [], []
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None

    # -- a step -----------------------------------------------------------------------------
    def _block(self, k: int, nbytes: int):
        s = self._shms[k]
        if s is None or s.size < nbytes:
            if s is not None:
                s.close()
                s.unlink()
            s = shared_memory.SharedMemory(create=True, size=max(nbytes * 5 // 4, 1 << 16))
            self._shms[k] = s
        return s

    def loss_and_grads(self, params: dict, x, mask, target, tmask=None, rng: np.random.Generator | None = None):
        """(loss, grads) of the whole batch: what one process computes, up to rounding.

        x (B, ...), mask (B, T) or None, target and tmask as the loss takes them (rows first).
        rng: dropout's generator (one seed per step is drawn from it); None without dropout.
        """
        if not self._procs:
            raise RuntimeError("DataParallel is not started (use it as a context manager)")
        parts = split_rows(len(x), self.workers)
        counts = [loss_count(target[s], None if tmask is None else tmask[s]) for s in parts]
        total = sum(counts)
        weights = [c / total if total > 0 else 0.0 for c in counts]
        seed = None if rng is None else int(rng.integers(2**63))

        sent = []
        for j, s in enumerate(parts[1:]):
            arrays = {"p:" + n: a for n, a in params.items()}
            arrays["x"] = x[s]
            arrays["target"] = target[s]
            if mask is not None:
                arrays["mask"] = mask[s]
            if tmask is not None:
                arrays["tmask"] = tmask[s]
            in_layout, end = _layout(arrays)
            grad_layout, end = _layout({"g:" + n: a for n, a in params.items()}, end)
            shm = self._block(j, end)
            for n, view in _views(shm.buf, in_layout).items():
                np.copyto(view, arrays[n])
            try:
                self._conns[j].send(("step", shm.name, in_layout, grad_layout, weights[j + 1], seed, j + 1))
            except OSError as exc:
                self._drain(sent)
                code = self._procs[j].poll()
                raise WorkerError(f"data-parallel worker {j + 1} is gone (exit code {code})") from exc
            sent.append((j, shm, grad_layout))

        s0 = parts[0]
        try:
            loss, grads = part_loss_and_grads(
                self.spec, params, self._loss_fn, x[s0], None if mask is None else mask[s0], target[s0],
                None if tmask is None else tmask[s0], weights[0],
                None if seed is None else np.random.default_rng([seed, 0]))
        except BaseException:
            self._drain(sent)
            raise
        errors = []
        for j, shm, grad_layout in sent:  # collect every reply, so no worker is left mid-step
            reply = self._recv(j)
            if reply[0] != "ok":
                errors.append(f"data-parallel worker {j + 1}: {reply[1]}")
                continue
            loss += reply[1]
            for n, g in _views(shm.buf, grad_layout).items():
                grads[n[2:]] = grads[n[2:]] + g  # a new array: a part's grads may share memory
        if errors:
            raise WorkerError("; ".join(errors))
        return float(loss), grads

    def _drain(self, sent) -> None:
        """Read the pending replies of a failed step, so that the next step does not read them."""
        for j, _, _ in sent:
            try:
                self._recv(j)
            except WorkerError:
                pass

    def _recv(self, j: int):
        conn, proc = self._conns[j], self._procs[j]
        try:
            _spin(conn, SPIN_PARENT)
            while not conn.poll(1.0):
                if proc.poll() is not None:
                    raise WorkerError(f"data-parallel worker {j + 1} died (exit code {proc.returncode})")
            return conn.recv()
        except (EOFError, OSError) as exc:
            code = proc.wait(timeout=5) if proc.poll() is None else proc.returncode
            raise WorkerError(f"data-parallel worker {j + 1} closed its pipe (exit code {code})") from exc


def _start_worker():
    """(Popen, Connection) of a new worker interpreter with one BLAS thread."""
    import socket
    import subprocess
    from pathlib import Path

    ours, theirs = socket.socketpair()
    root = str(Path(__file__).resolve().parents[2])  # the directory holding the rnnlab package
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "rnnlab.engine.parallel", str(theirs.fileno())],
                                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
    finally:
        theirs.close()
    return proc, Connection(ours.detach())


if __name__ == "__main__":
    _worker_main(Connection(int(sys.argv[1])))
