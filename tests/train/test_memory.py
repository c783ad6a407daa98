"""malloc tuning keeps a step's freed caches: repeated steps stop page-faulting."""

import resource
import sys

import numpy as np
import pytest

from rnnlab.train.memory import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_repeated_large_allocations_do_not_fault_after_tuning():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent

    def step():
        a = np.ones(3_000_000, dtype=np.float32)  # 12 MB: over glibc's default mmap threshold
        return float(a[::4096].sum())

    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
    # untuned, each call faults in ~2900 fresh 4 KiB pages
    assert faults < 100, faults
