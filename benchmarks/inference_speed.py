#!/usr/bin/env python
"""Evaluation speed: the engine's cached forward (before), its inference path (after), and PyTorch.

Two cases, each on the same batches for every side:

* ``imdb``: the IMDB BiGRU of conf/experiment/imdb_bigru.yaml (vocabulary 20000, embedding 64,
  bidirectional GRU H=64, max pooling over the real steps, a Dense head) over the 25,000 test
  reviews, as ``predict_split`` batches them (1024 reviews sorted by length, trimmed to their
  real columns). Token ids and lengths come from the real test set (rnnlab.data.imdb reads
  ../shared/data/aclImdb_v1_labeled.tar.gz; about 25 s) or, with ``--synthetic``, are drawn like
  them (log-normal lengths with the test set's median of 171 tokens, 12 % cut at 400).
* ``lstm``: a forecasting-shaped LSTM, windows (256, 90, 2), H=64, the last state into a Dense
  head, ``--lstm-batches`` batches.

Sides (rows of the table, ``--sides``):

* ``cached1``, ``cached``: the engine's cached forward, ``model.forward(train=False)`` per batch
  (what evaluation ran before the inference path) with 1 BLAS thread (train.blas_threads=1, as
  imdb_bigru.yaml sets) and with ``--threads`` BLAS threads;
* ``infer1``, ``infer``: the inference path, ``model.infer`` per batch in one thread, and with
  the batch's rows over ``--threads`` Python threads (what ``model.infer`` picks by default for
  these batches, except the LSTM's 256 rows, which it keeps in one thread); ``infer1blas``: in
  one thread with ``--threads`` BLAS threads (not timed by default);
* ``torch``: ``torch.no_grad()``, ``nn.Embedding`` + ``nn.GRU(bidirectional=True,
  batch_first=True)`` on packed sequences + max over the real steps + ``nn.Linear`` (``nn.LSTM``
  + ``nn.Linear`` on h_n for the LSTM), ``torch.set_num_threads(--threads)``.

The engine's weights are copied into the torch modules and the outputs compared before timing
(the table's last line). Each side runs ``--repeats`` times in alternating order (A B B A ...) and
the table shows the minimum (the run least disturbed by other processes), the median, the
ratio torch / side and the speed-up over the cached forward with one BLAS thread (of the minima;
above 1: the side is faster), and how many cores other processes used during the minimum's run
(from /proc/stat).

Usage (from the repository root; ``nice -n -5`` where allowed keeps other jobs from skewing it)::

    python benchmarks/inference_speed.py                    # real IMDB test set, both cases
    python benchmarks/inference_speed.py --synthetic        # IMDB-like lengths, no data needed
    python benchmarks/inference_speed.py --cases lstm --repeats 5
    python benchmarks/inference_speed.py --sides infer1,infer,torch  # without the slow cached rows

Thread counts must be fixed before NumPy is imported, so NumPy and torch are imported in main().
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
IMDB = {"vocab": 20000, "embed": 64, "hidden": 64, "maxlen": 400, "median": 171.0, "sigma": 0.73}
LSTM = {"batch": 256, "steps": 90, "inputs": 2, "hidden": 64}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="imdb,lstm", help="comma-separated: imdb, lstm")
    p.add_argument("--synthetic", action="store_true", help="IMDB-like lengths and random ids instead of the test set")
    p.add_argument("--data", default=None, help="the aclImdb folder or archive (default: rnnlab's data path)")
    p.add_argument("--reviews", type=int, default=25000, help="synthetic reviews (default 25000, the test set's size)")
    p.add_argument("--lstm-batches", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1024, help="evaluation batch (train.eval_batch_size)")
    p.add_argument("--threads", type=int, default=2, help="threads for every multi-threaded side")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sides", default="cached1,cached,infer1,infer,torch",
                   help="rows to time: cached1 / cached (the cached forward with 1 / --threads BLAS threads), "
                        "infer1 / infer (the inference path in 1 / --threads threads), infer1blas (in 1 thread "
                        "with --threads BLAS threads), torch")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def imdb_batches(args, np):
    """[(ids (B, T), mask (B, T))] as predict_split makes them, and a description."""
    from rnnlab.data.base import Split
    from rnnlab.train import batches

    if args.synthetic:
        rng = np.random.default_rng(0)
        n, maxlen = args.reviews, IMDB["maxlen"]
        lengths = np.clip(np.rint(IMDB["median"] * np.exp(IMDB["sigma"] * rng.standard_normal(n))), 1, maxlen)
        mask = (np.arange(maxlen)[None, :] < lengths[:, None]).astype(np.float32)
        ids = np.where(mask > 0, rng.integers(2, IMDB["vocab"], (n, maxlen)), 0)
        split, what = Split(ids, np.zeros(n), mask), f"synthetic, {n} reviews"
    else:
        from rnnlab.config.schema import ImdbConf
        from rnnlab.data import imdb

        data = imdb.load(ImdbConf(path=args.data), np.random.default_rng(0))
        split, what = data.test, f"IMDB test set, {len(data.test)} reviews"
    lens = split.mask.sum(axis=1)
    what += f" (median {np.median(lens):.0f} tokens, {np.mean(lens == IMDB['maxlen']):.0%} at {IMDB['maxlen']})"
    out = []
    for idx in batches.eval_batches(split, args.batch_size):
        x, _, mask, _ = batches.take(split, idx, trim=True)
        out.append((np.ascontiguousarray(x), np.ascontiguousarray(mask)))
    return out, what


def lstm_batches(args, np):
    rng = np.random.default_rng(1)
    shape = (LSTM["batch"], LSTM["steps"], LSTM["inputs"])
    return [(rng.standard_normal(shape).astype(np.float32), None) for _ in range(args.lstm_batches)]


# ---------------------------------------------------------------------------------------------
# the sides
# ---------------------------------------------------------------------------------------------


def engine_sides(args, M, spec, params, data):
    """{label: fn() -> outputs of every batch}."""
    from threadpoolctl import threadpool_limits

    def cached(blas: int):
        def run():
            with threadpool_limits(blas, user_api="blas"):
                return [M.forward(spec, params, x, m, train=False)[0] for x, m in data]
        return run

    def inference(threads: int | None, blas: int = 1):
        def run():
            with threadpool_limits(blas, user_api="blas"):
                return [M.infer(spec, params, x, m, threads=threads) for x, m in data]
        return run

    n = args.threads
    choices = {
        "cached1": ("engine, cached forward, 1 BLAS thread", cached(1)),
        "cached": (f"engine, cached forward, {n} BLAS threads", cached(n)),
        "infer1": ("engine, inference path, 1 thread", inference(1)),
        "infer": (f"engine, inference path, rows over {n} threads", inference(n)),
        "infer1blas": (f"engine, inference path, 1 thread, {n} BLAS threads", inference(1, n)),
    }
    wanted = [k for k in args.sides.split(",") if k in choices and (n > 1 or k in ("cached1", "infer1"))]
    return dict(choices[k] for k in wanted)


def torch_imdb(torch, params, spec):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(spec.vocab_size, spec.input_size, padding_idx=0)
            self.rnn = nn.GRU(spec.input_size, spec.hidden_size, bidirectional=True, batch_first=True)
            self.head = nn.Linear(2 * spec.hidden_size, spec.output_size)

        def forward(self, ids, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
            return self.head(out.max(dim=1).values)  # max over the real steps

    return _loaded(torch, Net(), params)


def torch_lstm(torch, params, spec):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(spec.input_size, spec.hidden_size, batch_first=True)
            self.head = nn.Linear(spec.hidden_size, spec.output_size)

        def forward(self, x, lengths):
            _, (h, _) = self.rnn(x)
            return self.head(h[-1])

    return _loaded(torch, Net(), params)


def _loaded(torch, net, params):
    """net with the engine's parameters (the engine names them as torch.nn does)."""
    state = {k: torch.from_numpy(v.copy()) for k, v in params.items()}
    net.load_state_dict(state, strict=True)
    return net.eval()


def torch_side(torch, net, data, np):
    prepared = []
    for x, m in data:
        lengths = None if m is None else torch.from_numpy(m.sum(axis=1).astype(np.int64))
        prepared.append((torch.from_numpy(x.astype(np.int64) if m is not None else x), lengths))

    def run():
        with torch.no_grad():
            return [net(x, n).numpy() for x, n in prepared]
    return run


# ---------------------------------------------------------------------------------------------
# timing and the table
# ---------------------------------------------------------------------------------------------


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(sides: dict, repeats: int) -> dict:
    """{label: [(seconds, other processes' cores meanwhile) per repeat]}, the sides in A B B A
    order, one untimed run each first."""
    import gc

    labels = list(sides)
    for fn in sides.values():
        fn()
    times = {k: [] for k in labels}
    for r in range(repeats):
        for label in labels if r % 2 == 0 else labels[::-1]:
            gc.collect()
            gc.disable()
            b0, c0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
            sides[label]()
            wall, ours, b1 = time.perf_counter() - t0, time.process_time() - c0, busy_seconds()
            gc.enable()
            others = None if b0 is None else max(0.0, (b1 - b0 - ours) / wall)
            times[label].append((wall, others))
    return times


def table(title: str, times: dict, torch_label: str | None, before: str | None) -> str:
    lines = [f"\n{title}", "",
             "| side | min s | median s | torch / side | before / side | other processes' cores at the min |",
             "| --- | --- | --- | --- | --- | --- |"]
    t_torch = min(times[torch_label])[0] if torch_label else None
    t_before = min(times[before])[0] if before else None
    for label, runs in times.items():
        best, others = min(runs)
        ratio = f"{t_torch / best:.2f}" if t_torch else "-"
        speedup = f"{t_before / best:.2f}" if t_before else "-"
        noise = "-" if others is None else f"{others:.1f}"
        lines.append(f"| {label} | {best:.2f} | {statistics.median(w for w, _ in runs):.2f} | {ratio} | {speedup} "
                     f"| {noise} |")
    return "\n".join(lines)


def check(engine_out, torch_out, np) -> float:
    a, b = np.concatenate(engine_out), np.concatenate(torch_out)
    return float(np.max(np.abs(a - b)))


def run_case(name, args, np, M, torch):
    if name == "imdb":
        data, what = imdb_batches(args, np)
        spec = M.ModelSpec(cell="gru", input_size=IMDB["embed"], hidden_size=IMDB["hidden"], output_size=1,
                           bidirectional=True, pooling="max", vocab_size=IMDB["vocab"])
        make_torch = torch_imdb
        title = (f"IMDB BiGRU (vocab {IMDB['vocab']}, embed {IMDB['embed']}, H={IMDB['hidden']}, max pooling): "
                 f"{what}, {len(data)} batches of <= {args.batch_size}")
    else:
        data = lstm_batches(args, np)
        spec = M.ModelSpec(cell="lstm", input_size=LSTM["inputs"], hidden_size=LSTM["hidden"], output_size=1)
        make_torch = torch_lstm
        title = f"forecasting LSTM: {len(data)} batches of ({LSTM['batch']}, {LSTM['steps']}, {LSTM['inputs']}), H=64"
    params = M.init_params(spec, np.random.default_rng(0))
    sides = engine_sides(args, M, spec, params, data)
    torch_label = None
    agreement = ""
    if torch is not None:
        torch_label = f"PyTorch no_grad, {'packed sequences, ' if name == 'imdb' else ''}{args.threads} threads"
        sides[torch_label] = torch_side(torch, make_torch(torch, params, spec), data, np)
        ours = M.infer(spec, params, *data[0])
        theirs = sides[torch_label]()[0]
        agreement = f"\nengine and torch outputs on the first batch: max |difference| {check([ours], [theirs], np):.2e}"
    print(f"timing {name} ({len(sides)} sides x {args.repeats} repeats)...", file=sys.stderr, flush=True)
    times = timed(sides, args.repeats)
    before = next((k for k in times if "cached" in k and "1 BLAS" in k), None)
    return table(title, times, torch_label, before) + agreement


def main(argv=None) -> int:
    args = parse_args(argv)
    for k in THREAD_ENV:
        os.environ[k] = str(args.threads)
    sys.path.insert(0, str(REPO_ROOT))
    import numpy as np

    from rnnlab.engine import model as M
    from rnnlab.runtime.memory import keep_freed_memory

    keep_freed_memory()  # as the trainer does
    unknown = set(args.sides.split(",")) - {"cached1", "cached", "infer1", "infer", "infer1blas", "torch"}
    if unknown:
        print(f"unknown side(s) {', '.join(sorted(unknown))} (choose from cached1, cached, infer1, infer, "
              "infer1blas, torch)", file=sys.stderr)
        return 2
    torch = None
    if "torch" in args.sides.split(","):
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            print("torch is not installed: engine rows only (pip install -e '.[bench]')", file=sys.stderr)
    load = os.getloadavg()
    print(f"numpy {np.__version__}, torch {torch.__version__ if torch else '-'}, threads {args.threads}, "
          f"{args.repeats} repeats (min and median shown), load average before {load[0]:.2f}")
    for name in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if name not in ("imdb", "lstm"):
            print(f"unknown case {name!r} (choose from imdb, lstm)", file=sys.stderr)
            return 2
        print(run_case(name, args, np, M, torch), flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
