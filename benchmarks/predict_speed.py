"""Prediction throughput of a trained run on every backend, side by side on the same batches, and the latency
of one request through the served app.

    python benchmarks/predict_speed.py outputs/train/imdb_bilstm outputs/train/sp500 [--threads 2]

Backends: the engine (`run.forward`, evaluation mode), the run's ONNX graph in onnxruntime, and where torch
is installed the exported PyTorch module (`rnnlab export --format torch`'s model_def.py, under
torch.no_grad()). Inputs are the run's test split (its first rows), at batch 1 and batch 256. The app is
the export's `--format serve` app under uvicorn on 127.0.0.1; one request carries one sample (a text, or
the series rows the model reads).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _torch_forward(run, folder: Path, threads: int):
    try:
        import torch
    except ImportError:
        return None
    from rnnlab.export import torch_format

    torch.set_num_threads(threads)
    torch_format.write_model(run.spec, run.params, run.state, folder)
    spec = importlib.util.spec_from_file_location("model_def", folder / "model_def.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.load(folder).eval()

    def forward(x, mask):
        with torch.no_grad():
            xt = torch.as_tensor(x)
            mt = None if mask is None else torch.as_tensor(mask, dtype=torch.float32)
            return model(xt, mt).numpy()

    return forward


def _backends(run, tmp: Path, threads: int) -> dict:
    from rnnlab.export import onnx_format

    sess = onnx_format.session(onnx_format.build_model(run.spec, run.params, run.state), threads=threads)
    out = {"engine": lambda x, m: run.forward(x, m),
           "onnxruntime": lambda x, m: onnx_format.run_sequence(sess, x, m)}
    torch_fwd = _torch_forward(run, tmp / "torch", threads)
    if torch_fwd is not None:
        out["torch (export)"] = torch_fwd
    return out


def _rate(forward, split, batch: int, budget: float = 10.0) -> float:
    """Samples per second over the split's first rows, at most `budget` seconds (at least one batch)."""
    n, done, t0 = len(split.x), 0, time.perf_counter()
    while done < n and (done == 0 or time.perf_counter() - t0 < budget):
        sl = slice(done, min(done + batch, n))
        forward(split.x[sl], None if split.mask is None else split.mask[sl])
        done = sl.stop
    return done / (time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _latency(run, run_dir: Path, tmp: Path, requests: int = 30) -> float | None:
    """Median seconds of one POST /predict with one sample, through uvicorn on 127.0.0.1."""
    import httpx

    from rnnlab.export import bundle, formats

    folder = tmp / "served"
    bundle.export(run, formats.parse("serve"), folder)
    body = _one_request(run)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level",
                             "warning"], cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            time.sleep(0.05)
        with httpx.Client() as client:
            client.post(f"{url}/predict", json=body).raise_for_status()  # warm-up
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                client.post(f"{url}/predict", json=body).raise_for_status()
                times.append(time.perf_counter() - t0)
        return float(np.median(times))
    finally:
        proc.terminate()
        proc.wait()


def _one_request(run) -> dict:
    """One sample in the app's request field: the first test review's text, or the rows a forecast reads."""
    import pandas as pd

    data = run.task().data
    if run.config.data.name == "imdb":
        return {"texts": [str(data.test.info["text"].iloc[0])]}
    if run.config.data.name in ("csv", "sine"):
        meta = run.info["data"]
        cfg = run.config.data
        cols = [c for c in [getattr(cfg, "date_column", None), meta.get("target") or "value",
                            *meta.get("covariates", [])] if c]
        frame = pd.read_csv(meta["path"], usecols=cols) if meta.get("path") else None
        rows = frame.tail(meta["n_in"] + 1)
        return {"series": rows.astype(object).where(rows.notna(), None).to_dict("records")}
    x = data.test.x[:1]
    return {"x": x.tolist(), "mask": None if data.test.mask is None else data.test.mask[:1].tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-serve", action="store_true", help="skip the served app's latency")
    args = ap.parse_args()
    from rnnlab import load_run

    for run_dir in args.runs:
        run = load_run(run_dir)
        split = run.task().data.test
        with tempfile.TemporaryDirectory() as tmp:
            backends = _backends(run, Path(tmp), args.threads)
            print(f"\n{run_dir} ({run.spec.cell}, hidden {run.spec.hidden_size}, {split.x.shape[1]} steps), "
                  f"samples per second, {args.threads} threads:")
            print(f"  {'backend':16s} {'batch 1':>10s} {'batch 256':>10s}")
            for name, forward in backends.items():
                one, many = _rate(forward, split, 1), _rate(forward, split, 256)
                print(f"  {name:16s} {one:10.1f} {many:10.1f}")
            if not args.no_serve:
                lat = _latency(run, run_dir, Path(tmp))
                print(f"  served app: one request {lat * 1000:.1f} ms (median of 30)" if lat else "  served app: -")


if __name__ == "__main__":
    main()
