"""The rows of a batch over Python threads: how evaluation uses more than one core.

In evaluation the rows of a batch are independent (BatchNorm reads its running statistics),
so `model.infer` runs parts of them at once and stacks the outputs. Why threads, measured on
2 cores (benchmarks/inference_speed.py; IMDB BiGRU H=64, batches of 1024 reviews):

* BLAS threads do not help: half of a step is elementwise NumPy (float32 exp alone costs about
  2 ns an entry here), which runs on one core, and OpenBLAS' threads busy-wait for each other,
  so when another process holds a core every per-step product waits for it. The cached forward
  took 38.9 s with two BLAS threads against 41.9 s with one on a quiet machine, and 4x longer
  than with one on a busy one.
* Python threads do: with evaluation batches every NumPy call of a step works on some 512 x
  64..192 entries (tens of microseconds) with the GIL released, so two threads overlap well
  (the test set in 9.1 s against 14.2 s in one thread). Training steps of 64 rows are too
  small for that, hence processes there (``parallel``); for evaluation, processes would add
  worker start-up and the transport of every batch for little more.

Each thread gets at least MIN_ENTRIES rows x hidden units (the size of a step's smallest NumPy
calls; below it two threads measured 0.3-1.2x one); BLAS is limited to one thread per thread
meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

from rnnlab.runtime.cpu import usable_cores

MIN_ENTRIES = 256 * 64  # smaller (rows x hidden units) per thread: calls too short to hide the GIL hand-over


def split_rows(n: int, parts: int) -> list[slice]:
    """Contiguous row ranges as equal as possible (the first ones one row longer); empty ones dropped."""
    q, r = divmod(n, parts)
    out, a = [], 0
    for k in range(parts):
        b = a + q + (1 if k < r else 0)
        if b > a:
            out.append(slice(a, b))
        a = b
    return out


def plan(rows: int, threads: int | None = None, width: int = 64) -> list[slice]:
    """Row ranges, one per thread: `threads` of them, or with None as many as the usable cores
    while each keeps MIN_ENTRIES rows x `width` (the hidden size; one range for small batches)."""
    if threads is None:
        threads = min(usable_cores(), rows * width // MIN_ENTRIES)
    return split_rows(rows, max(1, threads)) or [slice(0, rows)]


def run(fn: Callable[[slice], object], parts: list[slice]) -> list:
    """``[fn(part) for part in parts]``, the parts in threads (the first in this one) with BLAS
    limited to one thread while they run."""
    if len(parts) <= 1:
        return [fn(p) for p in parts]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(len(parts) - 1) as pool:
        futures = [pool.submit(fn, p) for p in parts[1:]]
        first = fn(parts[0])
        return [first] + [f.result() for f in futures]
