"""malloc tuning keeps a step's freed caches: repeated steps stop page-faulting."""

import subprocess
import sys

import pytest

from rnnlab.runtime.memory import keep_freed_memory

# Allocation pattern of a training step: several caches of 8-20 MB, freed in between.
PROBE = """
import resource, sys
import numpy as np
from rnnlab.runtime.memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
def step():
    a = np.ones(3_000_000, dtype=np.float32)
    b = np.ones(2_000_000, dtype=np.float32)
    del a
    c = np.ones(5_000_000, dtype=np.float32)
    return float(c[::4096].sum() + b[0])
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuning_applies_and_is_idempotent():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True


@pytest.mark.slow  # two fresh interpreters counting page faults
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tuning_removes_page_faults_of_repeated_steps():
    untuned, tuned = _faults("plain"), _faults("tuned")
    assert untuned > 500, untuned  # each step faults its fresh pages in again
    assert tuned < 20, tuned
