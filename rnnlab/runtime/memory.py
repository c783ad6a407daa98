"""Keep freed memory in the process instead of handing it back to the OS after every step.

A training step allocates and frees the same tens of megabytes of caches each time.
glibc's malloc serves blocks over its (dynamic) mmap threshold with fresh mmaps and trims
the heap top when freed, so the next step page-faults all of it again: measured at
thousands of faults and up to 3x the step time on small models. Raising the mmap
threshold to its maximum (32 MiB on 64-bit) and switching off trimming keeps those pages.
This is process-wide, so only entry points (the trainer, the benchmark) call it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for 64-bit builds
_done = False


def keep_freed_memory() -> bool:
    """Tune glibc malloc once; returns True when it applied (False on other platforms)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
        ok &= libc.mallopt(M_TRIM_THRESHOLD, 2 * 1024 * 1024 * 1024 - 1) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
