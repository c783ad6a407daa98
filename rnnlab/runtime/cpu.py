"""The cores this process may run on."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as taskset or Slurm set it), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def one_blas_thread():
    """A context in which BLAS runs on one thread. The engine's matrices are small: a second BLAS thread
    gains little and, beside another busy process, makes every GEMM wait for a descheduled thread (a
    forward and backward measured 5-10x slower). Training does the same (train.blas_threads)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")
