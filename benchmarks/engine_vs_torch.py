#!/usr/bin/env python
"""Speed of one rnnlab training step against the same step in PyTorch (CPU), in one process.

A training step is: forward over the whole sequence, a Dense head (output size 1) on the
last hidden state, MSE loss against a fixed target, backward, Adam update (lr 1e-3).
Both implementations run in float32 with the same number of threads (2 by default).

The printed ratio is ``median torch ms / median rnnlab ms``: above 1 means rnnlab is the
faster one. A case passes when the ratio reaches its target (1.5 for RNN and GRU, 1.0 for
LSTM and the 2-layer bidirectional LSTM).

Usage (from the repository root)::

    python benchmarks/engine_vs_torch.py                     # all cases
    python benchmarks/engine_vs_torch.py --cases lstm,gru    # by kind
    python benchmarks/engine_vs_torch.py --cases 'rnn-64x*'  # by glob on the case id
    python benchmarks/engine_vs_torch.py --repeats 10 --csv bench.csv
    python benchmarks/engine_vs_torch.py --unset-openblas-env  # re-exec without
                                                                 # OPENBLAS_CORETYPE/L2_SIZE
    python benchmarks/engine_vs_torch.py --profile lstm-32x200x64x256

Everything that decides threads must happen before NumPy is imported, so this module
imports NumPy only inside ``main()``, after the environment has been arranged.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
REEXEC_MARK = "RNNLAB_BENCH_REEXECED"
NOISY_CORES = 0.3  # other processes' CPU use while timing a case above which it is "noisy"

# (kind, B, T, I, H); target is the minimum torch/rnnlab ratio that counts as a pass.
SHAPES = [(64, 100, 32, 128), (32, 200, 64, 256), (128, 50, 16, 64)]
TARGETS = {"rnn": 1.5, "gru": 1.5, "lstm": 1.0, "bilstm2": 1.0}
KIND_LABEL = {
    "rnn": "RNN (tanh)",
    "lstm": "LSTM",
    "gru": "GRU",
    "bilstm2": "LSTM 2-layer bidir",
}


@dataclass(frozen=True)
class Case:
    kind: str  # rnn | lstm | gru | bilstm2
    B: int
    T: int
    I: int  # noqa: E741
    H: int

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.B}x{self.T}x{self.I}x{self.H}"

    @property
    def shape(self) -> str:
        return f"{self.B}x{self.T}x{self.I}x{self.H}"

    @property
    def target(self) -> float:
        return TARGETS[self.kind]


ALL_CASES = [Case(k, *s) for k in ("rnn", "lstm", "gru") for s in SHAPES] + [
    Case("bilstm2", 64, 100, 32, 128)
]


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time one training step of rnnlab against PyTorch (CPU), side by side.",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="A B B A repetitions after warm-up (each block runs --block steps); default 5",
    )
    p.add_argument("--block", type=int, default=2, help="steps per block; default 2")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per side; default 3")
    p.add_argument(
        "--settle",
        type=int,
        default=1,
        help="untimed steps at the start of every block, so that no timed step runs while the "
        "other side's idle threads still spin (see README); default 1",
    )
    p.add_argument(
        "--cases",
        default="",
        help="comma-separated filter: a kind (rnn, lstm, gru, bilstm2) or a glob on the case "
        "id, e.g. 'lstm-32x*'; default: all cases",
    )
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV to PATH")
    p.add_argument("--threads", type=int, default=2, help="threads for both sides; default 2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--unset-openblas-env",
        action="store_true",
        help="re-exec this script without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE",
    )
    p.add_argument(
        "--skip-check",
        action="store_true",
        help="skip the check that both sides compute the same loss and gradients",
    )
    p.add_argument(
        "--profile",
        metavar="CASE",
        nargs="?",
        const="worst",
        help="after the table, cProfile the rnnlab step of CASE (a case id, or 'worst', the "
        "lowest ratio relative to its target; the default when the flag has no value)",
    )
    p.add_argument("--profile-top", type=int, default=10, help="lines of profile to print")
    p.add_argument("--no-torch", action="store_true", help="time rnnlab only")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="rnnlab side: split each batch over N processes with one BLAS thread each "
        "(rnnlab.engine.parallel, what `rnnlab train train.workers=N` runs); default 1 "
        "(one process with --threads BLAS threads)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each case, wait up to SECONDS until other processes use < 0.3 cores "
        "(for shared machines); default 0 (don't wait)",
    )
    p.add_argument(
        "--retry-noisy",
        type=int,
        default=0,
        metavar="N",
        help="re-run a case up to N times while other processes used > 0.3 cores during its "
        "timing, keeping the quietest attempt; default 0",
    )
    p.add_argument(
        "--bilstm-impl",
        choices=("auto", "model", "compose"),
        default="auto",
        help="rnnlab side of the 2-layer bidirectional LSTM: the rnnlab.engine.model builder "
        "('model'), lstm.forward/backward composed here ('compose'), or the builder when it "
        "imports ('auto', default)",
    )
    args = p.parse_args(argv)
    if args.repeats < 1 or args.block < 1 or args.warmup < 0 or args.settle < 0 or args.threads < 1:
        p.error("--repeats, --block and --threads must be >= 1, --warmup and --settle >= 0")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    return args


def select_cases(spec: str) -> list[Case]:
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        return list(ALL_CASES)
    chosen = [
        c for c in ALL_CASES if any(t == c.kind or fnmatch.fnmatch(c.id, t) for t in tokens)
    ]
    if not chosen:
        ids = ", ".join(c.id for c in ALL_CASES)
        sys.exit(f"--cases {spec!r} matches no case; cases are: {ids}")
    return chosen


def arrange_environment(args: argparse.Namespace) -> dict[str, str | None]:
    """Fix thread counts; re-exec without the OpenBLAS core-type variables if asked.

    Returns the OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE values seen at start (None = unset).
    """
    seen = {k: os.environ.get(k) for k in OPENBLAS_ENV}
    if args.unset_openblas_env and any(v is not None for v in seen.values()):
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_ENV}
        env[REEXEC_MARK] = ";".join(f"{k}={seen[k]}" for k in OPENBLAS_ENV if seen[k] is not None)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    for k in THREAD_ENV:
        os.environ[k] = str(args.threads)
    return seen


# --------------------------------------------------------------------------- rnnlab side


class RnnlabUnavailable(RuntimeError):
    pass


def import_engine():
    """The engine modules; rnnlab comes from the environment (PYTHONPATH, an install) and
    else from this checkout."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("rnnlab") is None and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))

    try:
        from rnnlab.engine import dense, losses, optim
    except Exception as exc:  # noqa: BLE001 - any import failure means "not there yet"
        raise RnnlabUnavailable(f"{type(exc).__name__}: {exc}") from exc
    eng = {"dense": dense, "losses": losses, "optim": optim, "model": None, "missing": {}}
    for cell in ("rnn", "lstm", "gru"):  # a missing cell only drops the cases that need it
        try:  # the cell registry (rnnlab.engine.cells); checkouts before it had rnnlab.engine.<cell>
            try:
                from rnnlab.engine import cells
            except ImportError:
                eng[cell] = importlib.import_module(f"rnnlab.engine.{cell}")
            else:
                eng[cell] = cells.get(cell).module
        except Exception as exc:  # noqa: BLE001
            eng[cell] = None
            eng["missing"][cell] = f"{type(exc).__name__}: {exc}"
    try:
        from rnnlab.engine import model

        if all(hasattr(model, a) for a in ("ModelSpec", "init_params", "forward", "backward")):
            eng["model"] = model
        else:
            eng["model_error"] = "rnnlab.engine.model has no ModelSpec/init_params/forward/backward"
    except Exception as exc:  # noqa: BLE001
        eng["model_error"] = f"{type(exc).__name__}: {exc}"
    return eng


def engine_fingerprint(eng: dict) -> str:
    """Where the engine was imported from and a short hash of its modules' sources, so runs
    can be compared knowing whether the engine changed in between."""
    import hashlib

    h = hashlib.sha1()
    for name in ("rnn", "lstm", "gru", "dense", "losses", "optim", "model"):
        mod = eng.get(name)
        f = getattr(mod, "__file__", None)
        if f:
            h.update(Path(f).read_bytes())
    where = Path(eng["dense"].__file__).resolve().parent
    return f"{where} (sources sha1 {h.hexdigest()[:10]})"


def layer_names(layer: int, reverse: bool = False) -> dict[str, str]:
    """Cell parameter name -> flat PyTorch-style name (as in torch.nn.LSTM, prefixed rnn.)."""
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return {k: f"rnn.{k}{sfx}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


class RnnlabStep:
    """One training step of the NumPy engine.

    Parameters live in one flat dict with PyTorch's names ("rnn.weight_ih_l0",
    "rnn.weight_hh_l1_reverse", "head.weight", ...), the layout of rnnlab.engine.model,
    so they copy 1:1 into TorchStep. The optimizer sees that flat dict.

    Single-layer cases call the cell module, dense, losses.mse and optim directly. The
    2-layer bidirectional LSTM uses rnnlab.engine.model (the model builder) when it is
    importable and ``bilstm_impl`` allows it, else composes lstm.forward/backward by hand.
    """

    def __init__(self, case: Case, eng: dict, x, target, bilstm_impl: str = "auto", workers: int = 1):
        import numpy as np

        self.case, self.eng, self.x, self.target = case, eng, x, target
        rng = np.random.default_rng(1234)
        c = case
        self.is_lstm = c.kind in ("lstm", "bilstm2")
        self.cell = eng["lstm"] if c.kind == "bilstm2" else eng[c.kind]
        self.fkw = {"nonlinearity": "tanh"} if c.kind == "rnn" else {}
        self.mode = "cell"
        self.dp = None
        if workers > 1:
            if eng.get("model") is None:
                raise RnnlabUnavailable(f"--workers needs rnnlab.engine.model: {eng.get('model_error')}")
            self.mode = "parallel"
        elif c.kind == "bilstm2":
            model = eng.get("model")
            if bilstm_impl == "model" and model is None:
                raise RnnlabUnavailable(f"rnnlab.engine.model: {eng.get('model_error')}")
            self.mode = "model" if (model is not None and bilstm_impl != "compose") else "compose"
        self.params: dict = {}
        if self.mode in ("model", "parallel"):
            model = eng["model"]
            bi = c.kind == "bilstm2"
            self.spec = model.ModelSpec(cell="lstm" if bi else c.kind, input_size=c.I, hidden_size=c.H,
                                        output_size=1, num_layers=2 if bi else 1, bidirectional=bi,
                                        merge_mode="concat", pooling="last", nonlinearity="tanh")
            self.params = model.init_params(self.spec, rng, dtype=np.float32)
            if self.mode == "parallel":
                from rnnlab.engine.parallel import DataParallel

                self.dp = DataParallel(self.spec, "mse", workers).__enter__()
        else:
            if c.kind == "bilstm2":
                slots = [(0, False, c.I), (0, True, c.I), (1, False, 2 * c.H),
                         (1, True, 2 * c.H)]
                head_in = 2 * c.H
            else:
                slots = [(0, False, c.I)]
                head_in = c.H
            for layer, rev, n_in in slots:
                p = self.cell.init_params(rng, n_in, c.H, dtype=np.float32)
                for k, name in layer_names(layer, rev).items():
                    self.params[name] = p[k]
            hp = eng["dense"].init_params(rng, head_in, 1)
            self.params["head.weight"] = np.asarray(hp["weight"], dtype=np.float32)
            self.params["head.bias"] = np.asarray(hp["bias"], dtype=np.float32)
        self.opt = eng["optim"].make_optimizer("adam", lr=1e-3)

    @property
    def label(self) -> str:
        return {"cell": "cell modules", "model": "rnnlab.engine.model builder",
                "compose": "lstm.forward/backward composed in the benchmark",
                "parallel": "rnnlab.engine.parallel"}[self.mode]

    def close(self) -> None:
        if self.dp is not None:
            self.dp.close()

    def sub(self, layer: int, reverse: bool = False) -> dict:
        return {k: self.params[n] for k, n in layer_names(layer, reverse).items()}

    def head(self) -> dict:
        return {"weight": self.params["head.weight"], "bias": self.params["head.bias"]}

    def _dstate(self, dh):
        return (dh, None) if self.is_lstm else (dh,)

    def _put(self, grads: dict, g: dict, layer: int, reverse: bool = False) -> None:
        for k, name in layer_names(layer, reverse).items():
            grads[name] = g[k]

    def loss_and_grads(self):
        if self.mode == "parallel":
            return self.dp.loss_and_grads(self.params, self.x, None, self.target)
        if self.mode == "model":
            return self._model_loss_and_grads()
        if self.mode == "compose":
            return self._bilstm_loss_and_grads()
        eng, cell = self.eng, self.cell
        p = self.sub(0)
        (_hs, st), cache = cell.forward(p, self.x, **self.fkw)
        y, hcache = eng["dense"].forward(self.head(), st[0])
        loss, dy = eng["losses"].mse(y, self.target)
        dh, g_head = eng["dense"].backward(self.head(), dy, hcache)
        _dx, _ds0, g = cell.backward(p, None, self._dstate(dh), cache)
        grads: dict = {}
        self._put(grads, g, 0)
        grads["head.weight"], grads["head.bias"] = g_head["weight"], g_head["bias"]
        return float(loss), grads

    def _model_loss_and_grads(self):
        model, eng = self.eng["model"], self.eng
        y, cache = model.forward(self.spec, self.params, self.x)
        loss, dy = eng["losses"].mse(y, self.target)
        grads, _dx = model.backward(self.spec, self.params, dy, cache)
        return float(loss), grads

    def _bilstm_loss_and_grads(self):
        import numpy as np

        eng, cell, H = self.eng, self.cell, self.case.H
        inp = self.x
        caches, finals = {}, {}
        for layer in (0, 1):
            for rev in (False, True):
                out, caches[layer, rev] = cell.forward(self.sub(layer, rev), inp, reverse=rev)
                finals[layer, rev] = out
            inp = np.concatenate([finals[layer, False][0], finals[layer, True][0]], axis=-1)
        feat = np.concatenate([finals[1, False][1][0], finals[1, True][1][0]], axis=-1)
        y, hcache = eng["dense"].forward(self.head(), feat)
        loss, dy = eng["losses"].mse(y, self.target)
        dfeat, g_head = eng["dense"].backward(self.head(), dy, hcache)
        grads: dict = {}
        # top layer: the gradient enters only through the final states
        dx_f, _, g = cell.backward(self.sub(1), None, self._dstate(dfeat[:, :H]),
                                   caches[1, False])
        self._put(grads, g, 1)
        dx_b, _, g = cell.backward(self.sub(1, True), None, self._dstate(dfeat[:, H:]),
                                   caches[1, True])
        self._put(grads, g, 1, True)
        dinp = dx_f + dx_b  # (B, T, 2H): split back into layer 0's two directions
        _, _, g = cell.backward(self.sub(0), dinp[..., :H], (None, None), caches[0, False])
        self._put(grads, g, 0)
        _, _, g = cell.backward(self.sub(0, True), dinp[..., H:], (None, None),
                                caches[0, True])
        self._put(grads, g, 0, True)
        grads["head.weight"], grads["head.bias"] = g_head["weight"], g_head["bias"]
        return float(loss), grads

    def step(self) -> float:
        loss, grads = self.loss_and_grads()
        self.opt.step(self.params, grads)
        return loss


# --------------------------------------------------------------------------- torch side


class TorchStep:
    def __init__(self, case: Case, torch, x_np, target_np):
        nn = torch.nn
        self.torch = torch
        self.case = case
        c = case
        kw = {"batch_first": True}
        if c.kind == "rnn":
            self.net = nn.RNN(c.I, c.H, nonlinearity="tanh", **kw)
        elif c.kind == "lstm":
            self.net = nn.LSTM(c.I, c.H, **kw)
        elif c.kind == "gru":
            self.net = nn.GRU(c.I, c.H, **kw)
        else:
            self.net = nn.LSTM(c.I, c.H, num_layers=2, bidirectional=True, **kw)
        self.head = nn.Linear(2 * c.H if c.kind == "bilstm2" else c.H, 1)
        self.x = torch.from_numpy(x_np)
        self.target = torch.from_numpy(target_np)
        self.opt = torch.optim.Adam(self.named().values(), lr=1e-3)

    def named(self) -> dict:
        """Flat names as in RnnlabStep: rnn.<torch name>, head.weight, head.bias."""
        d = {f"rnn.{k}": v for k, v in self.net.named_parameters()}
        d.update({f"head.{k}": v for k, v in self.head.named_parameters()})
        return d

    def loss_and_backward(self):
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        _out, hn = self.net(self.x)
        h_n = hn[0] if isinstance(hn, tuple) else hn  # LSTM: (h_n, c_n)
        if self.case.kind == "bilstm2":
            feat = torch.cat([h_n[-2], h_n[-1]], dim=1)  # top layer, forward and reverse
        else:
            feat = h_n[-1]
        y = self.head(feat)
        loss = torch.nn.functional.mse_loss(y, self.target)
        loss.backward()
        return loss

    def step(self):
        loss = self.loss_and_backward()
        self.opt.step()
        return loss


def copy_weights(rl: RnnlabStep, ts: TorchStep) -> None:
    import numpy as np

    torch = ts.torch
    tparams = ts.named()
    if set(tparams) != set(rl.params):
        only_r = sorted(set(rl.params) - set(tparams))
        only_t = sorted(set(tparams) - set(rl.params))
        raise KeyError(f"parameter names differ: rnnlab only {only_r}, torch only {only_t}")
    with torch.no_grad():
        for k, v in rl.params.items():
            tp = tparams[k]
            if tuple(v.shape) != tuple(tp.shape):
                raise ValueError(f"{k}: rnnlab {v.shape} vs torch {tuple(tp.shape)}")
            tp.copy_(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)))


def check_same(rl: RnnlabStep, ts: TorchStep, rtol: float = 1e-4, grad_tol: float = 1e-3):
    """Same weights -> same loss (rel. rtol) and same gradients (rel. Frobenius grad_tol).

    Runs before any timed step; neither side's optimizer is stepped here.
    """
    import numpy as np

    copy_weights(rl, ts)
    loss_r, grads = rl.loss_and_grads()
    loss_t = ts.loss_and_backward().item()
    rel = abs(loss_r - loss_t) / max(abs(loss_t), 1e-12)
    if rel > rtol:
        raise AssertionError(
            f"{rl.case.id}: losses differ on the same weights: rnnlab {loss_r:.8g} vs torch "
            f"{loss_t:.8g} (rel {rel:.2e} > {rtol:g})"
        )
    tparams = ts.named()
    if set(grads) != set(tparams):
        raise AssertionError(f"{rl.case.id}: gradient keys differ from the parameters: "
                             f"{sorted(set(grads) ^ set(tparams))}")
    worst = (0.0, "")
    for k, g in grads.items():
        tg = tparams[k].grad
        b = np.zeros(tuple(tparams[k].shape)) if tg is None else tg.numpy().astype(np.float64)
        a = np.asarray(g, dtype=np.float64)
        scale = np.linalg.norm(a) + np.linalg.norm(b)
        err = 0.0 if scale < 1e-12 else float(np.linalg.norm(a - b) / scale)
        worst = max(worst, (err, k))
    if worst[0] > grad_tol:
        raise AssertionError(
            f"{rl.case.id}: gradients differ on the same weights: {worst[1]} rel error "
            f"{worst[0]:.2e} > {grad_tol:g}"
        )
    ts.opt.zero_grad(set_to_none=True)
    return loss_r, loss_t, rel, worst


# --------------------------------------------------------------------------- timing


class ForeignCpu:
    """CPU used by other processes (in cores) between start() and stop(), from /proc/stat.

    On a shared machine another process's load slows both sides unevenly; the table notes
    it. None where /proc/stat is unreadable (not Linux). `own_pids`: processes of this run
    (rnnlab's data-parallel workers) whose CPU is not foreign.
    """

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, own_pids=()):
        self.own_pids = list(own_pids)

    def _own(self) -> float:
        t = os.times()
        total = t.user + t.system
        for pid in self.own_pids:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / self.HZ  # utime, stime
            except (OSError, ValueError, IndexError):
                pass
        return total

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as fh:
                f = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return (sum(f[:8]) - idle) / ForeignCpu.HZ

    def start(self) -> None:
        self.t0, self.own0, self.busy0 = time.perf_counter(), self._own(), self._busy()

    def stop(self) -> float | None:
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        own = self._own() - self.own0
        return max(0.0, (busy - self.busy0 - own) / max(wall, 1e-9))


def wait_for_quiet(max_wait: float, threshold: float, console) -> float | None:
    """Sample other processes' CPU use for 1 s at a time until it is below threshold cores
    or max_wait seconds have passed; returns the last sample."""
    deadline = time.perf_counter() + max_wait
    waited = False
    while True:
        fc = ForeignCpu()
        fc.start()
        time.sleep(1.0)
        load = fc.stop()
        if load is None or load < threshold or time.perf_counter() >= deadline:
            if waited:
                console.print(f" (waited for a quiet machine: other processes now {load:.2f} "
                              "cores)", end="", highlight=False)
            return load
        waited = True


def time_block(fn, n: int, out: list[float], settle: int = 0) -> None:
    """Runs fn settle times untimed, then n times timed (appending seconds to out)."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(settle):
            fn()
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    finally:
        gc.enable()


def run_case(case: Case, args, eng, torch, np) -> dict:
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((case.B, case.T, case.I)).astype(np.float32)
    target = rng.standard_normal((case.B, 1)).astype(np.float32)
    row = {"case": case, "torch": [], "rnnlab": [], "check": None, "note": ""}

    rl = ts = None
    cell = "lstm" if case.kind == "bilstm2" else case.kind
    if eng is not None and eng[cell] is not None:
        rl = RnnlabStep(case, eng, x, target, args.bilstm_impl, args.workers)
    elif eng is not None:
        row["note"] = f"rnnlab.engine.{cell} not importable ({eng['missing'][cell]})"
    if torch is not None:
        ts = TorchStep(case, torch, x, target)
    if rl is not None and ts is not None and not args.skip_check:
        row["check"] = check_same(rl, ts)

    sides = [(n, s) for n, s in (("torch", ts), ("rnnlab", rl)) if s is not None]
    for _name, s in sides:  # warm-up (also the first Adam steps, which allocate state)
        for _ in range(args.warmup):
            s.step()
    if rl is not None:
        probe = rl.params[next(iter(rl.params))]
        if probe.dtype != np.float32:
            row["note"] = f"rnnlab params became {probe.dtype}"
    order = sides if len(sides) == 1 else [sides[0], sides[1], sides[1], sides[0]]
    fc = ForeignCpu(rl.dp.pids if rl is not None and rl.dp is not None else ())
    fc.start()
    for _ in range(args.repeats):
        for name, s in order:
            time_block(s.step, args.block, row[name], args.settle)
    row["foreign"] = fc.stop()
    row["torch_ms"] = statistics.median(row["torch"]) * 1e3 if row["torch"] else None
    row["rnnlab_ms"] = statistics.median(row["rnnlab"]) * 1e3 if row["rnnlab"] else None
    if row["torch_ms"] and row["rnnlab_ms"]:
        row["ratio"] = row["torch_ms"] / row["rnnlab_ms"]
        row["pass"] = row["ratio"] >= case.target
    else:
        row["ratio"] = row["pass"] = None
    row["_rl"] = rl
    if rl is not None:
        rl.close()  # --profile re-opens it
    return row


def iqr_ms(samples: list[float]) -> float:
    if len(samples) < 4:
        return 0.0
    q = statistics.quantiles(samples, n=4)
    return (q[2] - q[0]) * 1e3


# --------------------------------------------------------------------------- report


def blas_report() -> list[str]:
    lines = []
    try:
        import threadpoolctl
    except ImportError:
        return ["threadpoolctl not installed: BLAS thread count and kernel not verified"]
    for info in threadpoolctl.threadpool_info():
        lines.append(
            f"{info.get('user_api')}: {info.get('internal_api')} {info.get('version') or ''} "
            f"threads={info.get('num_threads')} arch={info.get('architecture', '-')} "
            f"({Path(info.get('filepath', '')).name})"
        )
    return lines


def enforce_blas_threads(n: int):
    """Keep NumPy's BLAS at n threads even if something changed it (returns the limiter)."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(rows, console) -> None:
    from rich.table import Table

    t = Table(title="one training step, median ms (ratio = torch / rnnlab; higher is better)")
    for col, just in (("case", "left"), ("shape BxTxIxH", "left"), ("torch ms", "right"),
                      ("rnnlab ms", "right"), ("ratio", "right"), ("target", "right"),
                      ("pass/fail", "center")):
        t.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        c = r["case"]
        if r["pass"] is None:
            verdict = "-"
        else:
            verdict = "[green]pass[/green]" if r["pass"] else "[red]FAIL[/red]"
        t_ms = fmt(r["torch_ms"], ".2f")
        r_ms = fmt(r["rnnlab_ms"], ".2f")
        if r["torch"]:
            t_ms += f" ±{iqr_ms(r['torch']) / 2:.2f}"
        if r["rnnlab"]:
            r_ms += f" ±{iqr_ms(r['rnnlab']) / 2:.2f}"
        t.add_row(KIND_LABEL[c.kind], c.shape, t_ms, r_ms, fmt(r["ratio"], ".3f"),
                  f">= {c.target:g}", verdict)
    console.print(t)
    console.print("± is half the interquartile range of the per-step times. Pass: ratio >= "
                  "target, i.e. rnnlab at least target times as fast as torch.")
    noisy = [r for r in rows if (r.get("foreign") or 0) > NOISY_CORES]
    if noisy:
        console.print("[yellow]noisy: other processes used CPU while timing "
                      + ", ".join(f"{r['case'].id} ({r['foreign']:.2f} cores)" for r in noisy)
                      + "; rerun on a quiet machine (or with --wait-quiet 120).[/yellow]")


def write_csv(path: str, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "shape", "torch_ms", "rnnlab_ms", "ratio", "target", "result",
                    "torch_iqr_ms", "rnnlab_iqr_ms", "n_torch", "n_rnnlab", "other_cpu_cores"])
        for r in rows:
            c = r["case"]
            w.writerow([
                c.id, c.shape,
                fmt(r["torch_ms"], ".4f"), fmt(r["rnnlab_ms"], ".4f"), fmt(r["ratio"], ".4f"),
                c.target,
                "-" if r["pass"] is None else ("pass" if r["pass"] else "fail"),
                f"{iqr_ms(r['torch']):.4f}", f"{iqr_ms(r['rnnlab']):.4f}",
                len(r["torch"]), len(r["rnnlab"]),
                fmt(r.get("foreign"), ".2f"),
            ])


def profile_rnnlab(row, args, console) -> None:
    import cProfile
    import io
    import pstats

    rl = row["_rl"]
    n = max(5, args.repeats * args.block)
    if rl.dp is not None:
        rl.dp.__enter__()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        rl.step()
    prof.disable()
    rl.close()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime")
    st.print_stats(args.profile_top)
    console.print(f"\n[bold]cProfile of the rnnlab step, {row['case'].id}, {n} steps "
                  f"(sorted by tottime)[/bold]")
    console.print(buf.getvalue(), markup=False, highlight=False)
    console.print("NumPy calls made from inside a function (matmul, ufuncs with out=) count in "
                  "that function's tottime; for a per-line split run line_profiler on the cell's "
                  "forward/backward.", highlight=False)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seen = arrange_environment(args)
    cases = select_cases(args.cases)

    import numpy as np
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    if not console.is_terminal:  # piped or redirected: don't wrap the table at 80 columns
        console = Console(width=120)
    limiter = enforce_blas_threads(args.threads)  # noqa: F841 - keep the limit alive

    torch = None
    torch_note = ""
    if not args.no_torch:
        try:
            import torch as _torch

            _torch.set_num_threads(args.threads)
            torch = _torch
        except Exception as exc:  # noqa: BLE001
            torch_note = f"{type(exc).__name__}: {exc}"
    eng = None
    eng_note = ""
    try:
        eng = import_engine()
    except RnnlabUnavailable as exc:
        eng_note = str(exc)
    malloc_note = "default"
    if eng is not None:
        # As `rnnlab train` does: keep freed step caches instead of page-faulting them in
        # again. Process-wide, so torch's CPU allocations (glibc malloc) get it too.
        try:
            from rnnlab.runtime.memory import keep_freed_memory
        except ImportError:  # checkouts before rnnlab.runtime
            from rnnlab.train.memory import keep_freed_memory

        malloc_note = "tuned (rnnlab memory tuning)" if keep_freed_memory() else "default"

    # --- header
    console.print("[bold]rnnlab engine vs PyTorch: one training step[/bold]")
    console.print(f"python {platform.python_version()}, numpy {np.__version__}, "
                  f"torch {torch.__version__ if torch else '-'}, "
                  f"threads {args.threads} (torch.get_num_threads()="
                  f"{torch.get_num_threads() if torch else '-'}), "
                  f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    reexec = os.environ.get(REEXEC_MARK)
    for k in OPENBLAS_ENV:
        if reexec is not None:
            state = "unset by --unset-openblas-env (was " + (
                next((p.split("=", 1)[1] for p in reexec.split(";") if p.startswith(k + "=")),
                     "unset") + ")")
        elif seen[k] is None:
            state = "not set"
        else:
            state = f"SET to {seen[k]!r}" + (
                "" if args.unset_openblas_env else
                " (slows a current NumPy's OpenBLAS; try --unset-openblas-env)")
        console.print(f"{k}: {state}", highlight=False)
    if args.unset_openblas_env and reexec is None:
        console.print("--unset-openblas-env: neither variable is set, nothing to unset",
                      highlight=False)
    for line in blas_report():
        console.print(f"  {line}", highlight=False)
    console.print(f"glibc malloc: {malloc_note}", highlight=False)
    if torch is None:
        what = (f"torch is not importable ({escape(torch_note)})" if torch_note
                else "torch skipped (--no-torch)")
        console.print(f"[yellow]NOTE: {what}: printing rnnlab times only, no ratios and no "
                      "pass/fail.[/yellow]")
    if eng is None:
        console.print(f"[yellow]NOTE: the rnnlab engine is not importable ({escape(eng_note)}): "
                      "printing torch times only.[/yellow]")
    else:
        console.print(f"rnnlab engine: {engine_fingerprint(eng)}", highlight=False)
        for cell, why in eng["missing"].items():
            console.print(f"[yellow]NOTE: rnnlab.engine.{cell} is not importable ({escape(why)}): "
                          "torch times only for its cases.[/yellow]")
    if torch is None and eng is None:
        return 2
    load = os.getloadavg()[0]
    if load > 0.5:
        console.print(f"[yellow]NOTE: 1-minute load average is {load:.2f} before the run; other "
                      "processes share the cores and add noise to both sides.[/yellow]")
    if args.workers > 1:
        console.print(f"rnnlab side: data-parallel, each batch split over {args.workers} processes with one "
                      "BLAS thread each (rnnlab.engine.parallel, `train.workers`)", highlight=False)
    console.print(f"timing: {args.warmup} warm-up steps per side, then {args.repeats} x "
                  f"A B B A blocks of {args.settle} untimed + {args.block} timed steps (A = torch, "
                  "B = rnnlab); medians of per-step times")

    rows = []
    for case in cases:
        console.print(f"  running {case.id} ...", end="")
        t0 = time.perf_counter()
        row = new = None
        for attempt in range(1 + args.retry_noisy):
            if attempt:
                console.print(f" noisy ({new['foreign']:.2f} cores), retry {attempt} ...",
                              end="", highlight=False)
            if args.wait_quiet > 0:
                wait_for_quiet(args.wait_quiet, NOISY_CORES, console)
            new = run_case(case, args, eng, torch, np)
            if row is None or (new.get("foreign") or 0) < (row.get("foreign") or 0):
                row = new  # keep the quietest attempt
            if (row.get("foreign") or 0) <= NOISY_CORES:
                break
        msg = f" {time.perf_counter() - t0:.1f}s"
        if row.get("foreign") is not None:
            msg += f", other processes used {row['foreign']:.2f} cores while timing"
        if row["_rl"] is not None and case.kind == "bilstm2":
            msg += escape(f"  [rnnlab side: {row['_rl'].label}]")
        if row["check"] is not None:
            lr_, lt_, rel, (gerr, gk) = row["check"]
            msg += escape(f"  (same weights: loss rnnlab {lr_:.6f} torch {lt_:.6f}, rel "
                          f"{rel:.1e}; worst grad rel err {gerr:.1e} [{gk}])")
        if row["note"]:
            msg += f"  [yellow]{escape(row['note'])}[/yellow]"
        console.print(msg, highlight=False)
        rows.append(row)

    print_table(rows, console)
    if args.csv:
        write_csv(args.csv, rows)
        console.print(f"wrote {args.csv}")

    if args.profile and eng is not None:
        timed = [r for r in rows if r["_rl"] is not None]
        if args.profile == "worst":
            scored = [r for r in timed if r["ratio"] is not None]
            if scored:
                pick = min(scored, key=lambda r: r["ratio"] / r["case"].target)
            else:
                pick = max(timed, key=lambda r: r["rnnlab_ms"] or 0, default=None)
        else:
            pick = next((r for r in timed if r["case"].id == args.profile), None)
        if pick is None:
            console.print(f"--profile: no rnnlab case {args.profile!r} timed in this run")
            return 1
        profile_rnnlab(pick, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
