#!/usr/bin/env python
"""Wall time of one Hydra grid run sequentially and with the joblib launcher, side by side.

The grid (8 short runs by default: arch=rnn,lstm,gru,bigru x optim.lr=0.01,0.003 on the sine
task) runs through the real `rnnlab train -m` twice, alternating which goes first:

* sequential: Hydra's basic launcher, one process, BLAS at one thread (train.blas_threads=1);
* parallel:   hydra/launcher=joblib hydra.launcher.n_jobs=N (each worker limits BLAS to one
  thread itself, see rnnlab/commands/train.py).

It prints both wall times and the speed-up (sequential / parallel); the issue asks for at
least 1.7 with two workers on two cores. Run it on a quiet machine: other load on the cores
lowers the parallel side most.

    python benchmarks/launcher_speedup.py
    python benchmarks/launcher_speedup.py --epochs 20 --repeats 2 --n-jobs 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = ["arch=rnn,lstm,gru,bigru", "optim.lr=0.01,0.003"]


def run_grid(out: Path, epochs: int, parallel: int | None, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "rnnlab.cli", "train", "-m", *GRID, f"train.epochs={epochs}",
           "train.progress=false", f"hydra.sweep.dir={out}", *extra]
    if parallel:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={parallel}"]
    else:
        cmd += ["train.blas_threads=1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"grid failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    done = [json.loads(p.read_text())["status"] for p in sorted(out.glob("*/summary.json"))]
    if len(done) != 8 or set(done) != {"completed"}:
        sys.exit(f"expected 8 completed runs in {out}, got {done}")
    return wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15, help="epochs per run (default 15)")
    p.add_argument("--n-jobs", type=int, default=2, help="joblib workers (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="sequential/parallel pairs (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    p.add_argument("extra", nargs="*", help="more overrides for every run, e.g. monitor=none")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="rnnlab-launcher-"))
    seq, par = [], []
    for r in range(args.repeats):
        order = [None, args.n_jobs] if r % 2 == 0 else [args.n_jobs, None]
        for parallel in order:
            out = root / f"{'joblib' if parallel else 'basic'}_{r}"
            wall = run_grid(out, args.epochs, parallel, args.extra)
            (par if parallel else seq).append(wall)
            label = f"joblib n_jobs={parallel}" if parallel else "sequential"
            print(f"repeat {r}: {label}: {wall:.1f} s", flush=True)
    best_seq, best_par = min(seq), min(par)
    print(f"\n8 runs x {args.epochs} epochs: sequential {best_seq:.1f} s, joblib n_jobs={args.n_jobs} "
          f"{best_par:.1f} s, speed-up {best_seq / best_par:.2f}x (target >= 1.7)")
    if args.keep:
        print(f"run folders: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
