"""Tokens per second of a character language model's training step: stateful (chunks carrying the state) against
ordinary shuffled windows, and against PyTorch's LSTM doing the stateful step, side by side in one process;
and the sampling speed of `rnnlab generate`.

    python benchmarks/lm_tokens.py                      # experiment=char_rnn's model on 300k IMDB characters
    python benchmarks/lm_tokens.py --hidden 256 --layers 1 --repeats 7

Every side runs the same shapes (batch 32 x 100 steps, float32, Adam): the rnnlab sides are the task adapter's
own `train_step` (rnnlab.train.tasks.stream.StreamTask) plus the optimizer's update, so data handling counts;
the torch side is nn.Embedding + nn.LSTM + nn.Linear + cross-entropy + Adam with the carried state detached
(PyTorch's word_language_model). Blocks of steps alternate between the sides and the median block is kept,
so a busy neighbour slows all sides alike. Threads: --threads (default 1, what experiment=char_rnn uses).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--chars", type=int, default=300_000, help="characters of the IMDB text to read")
    p.add_argument("--block", type=int, default=5, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per side")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sample-length", type=int, default=500)
    return p.parse_args(argv)


def _task(args, stateful: bool):
    import numpy as np

    from rnnlab import api
    from rnnlab.data import registry
    from rnnlab.train.tasks import for_data
    from rnnlab.train.tasks.base import Streams

    over = ["experiment=char_rnn", f"data.max_chars={args.chars}", f"arch.hidden_size={args.hidden}",
            f"arch.num_layers={args.layers}", "train.batch_size=32", "data.seq_len=100"]
    over += ["train.stateful=true", "train.bptt=100"] if stateful else ["train.stateful=false", "train.bptt=null"]
    cfg = api.compose(over)
    streams = Streams.from_seed(0)
    data = registry.load(cfg.data, streams.data, np.dtype("float32"))
    task = for_data(cfg, data, streams)
    params, state = task.init_model(np.dtype("float32"))
    from rnnlab.engine.optim import make_optimizer

    opt = make_optimizer(**cfg.optim)
    batches = task.epoch_batches(0)
    pos = {"k": 0}

    def step():
        k = pos["k"] % len(batches)
        if stateful and k == 0:
            task.carry = None
        out = task.train_step(params, state, batches[k])
        opt.step(params, out.grads, lr=cfg.optim["lr"])
        pos["k"] += 1

    return step, task, params, 32 * 100


def _torch_step(args, vocab: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    emb, lstm = torch.nn.Embedding(vocab, 32), torch.nn.LSTM(32, args.hidden, args.layers, batch_first=True)
    head = torch.nn.Linear(args.hidden, vocab)
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=0.003)
    x = torch.randint(0, vocab, (32, 101))
    carry = {"h": None}

    def step():
        out, hc = lstm(emb(x[:, :-1]), carry["h"])
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        carry["h"] = tuple(t.detach() for t in hc)

    return step


def main(argv=None) -> int:
    args = parse_args(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    stateful, task, params, tokens = _task(args, True)
    windows, _, _, _ = _task(args, False)
    sides = {"rnnlab stateful": stateful, "rnnlab windows": windows}
    torch_step = _torch_step(args, task.spec.output_size)
    if torch_step is not None:
        sides["torch stateful"] = torch_step
    for fn in sides.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            for _ in range(args.block):
                fn()
            times[name].append((time.perf_counter() - t0) / args.block)
    print(f"char LSTM {args.layers} x {args.hidden}, vocabulary {task.spec.output_size}, batch 32 x 100 steps, "
          f"{args.threads} thread(s); median of {args.repeats} blocks of {args.block} steps")
    base = statistics.median(times["rnnlab stateful"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:16s} {1000 * med:8.1f} ms/step  {tokens / med:10,.0f} tokens/s  "
              f"time vs rnnlab stateful {med / base:5.2f}")
    _sampling(args, task, params)
    return 0


def _sampling(args, task, params) -> None:
    import numpy as np

    from rnnlab.train import generation

    t0 = time.perf_counter()
    generation.generate(task.spec, params, {}, task.data.meta, "The ", generation.Settings(args.sample_length, n=1))
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    generation.generate(task.spec, params, {}, task.data.meta, "The ", generation.Settings(args.sample_length, n=8))
    eight = time.perf_counter() - t0
    print(f"  sampling: {args.sample_length / one:,.0f} tokens/s for one sample, "
          f"{8 * args.sample_length / eight:,.0f} tokens/s for 8 at once ({np.round(eight, 2)} s)")


if __name__ == "__main__":
    raise SystemExit(main())
