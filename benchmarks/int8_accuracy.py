"""INT8 against float: a trained run's ONNX graph quantized with onnxruntime's dynamic quantization, both run on
the run's whole test split; size, which nodes were quantized, and the test metric of each.

    python benchmarks/int8_accuracy.py outputs/train/imdb_bilstm outputs/train/sp500 [--threads 2]

Classification: accuracy at the run's threshold (chosen on validation) and ROC AUC. Regression: MAE and RMSE
in the series' units. The engine's numbers on the same inputs are printed beside them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _outputs(forward, split, batch: int = 512) -> np.ndarray:
    parts = []
    for i in range(0, len(split.x), batch):
        m = None if split.mask is None else split.mask[i : i + batch]
        parts.append(forward(split.x[i : i + batch], m))
    return np.concatenate(parts)


def _scores(run, data, y) -> dict:
    from rnnlab.analysis import metrics as mt

    if run.kind == "binary":
        prob = 1 / (1 + np.exp(-y[:, 0].astype(np.float64)))
        m = mt.binary_metrics(data.test.y.ravel(), prob, run.threshold)
        return {"accuracy": m["accuracy"], "roc_auc": m["roc_auc"]}
    m = mt.regression_metrics(data.targets_original("test"), data.to_original(y, "test"))
    return {"mae": m["mae"], "rmse": m["rmse"]}


def measure(run_dir: Path, threads: int) -> None:
    from rnnlab import load_run
    from rnnlab.export import onnx_format

    run = load_run(run_dir)
    data = run.task().data
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        src.write_bytes(onnx_format.build_model(run.spec, run.params, run.state).SerializeToString())
        note, facts = onnx_format.quantize_int8(src, dst)
        rows = [("engine", None, lambda x, m: run.forward(x, m))]
        for name, path in (("onnx float32", src), ("onnx int8", dst)):
            sess = onnx_format.session(path, threads=threads)
            rows.append((name, path.stat().st_size, lambda x, m, s=sess: onnx_format.run_sequence(s, x, m)))
        print(f"\n{run_dir} ({run.spec.cell}, {len(data.test)} test samples): {note}")
        for name, size, forward in rows:
            t0 = time.perf_counter()
            y = _outputs(forward, data.test)
            secs = time.perf_counter() - t0
            scores = "  ".join(f"{k} {v:.4g}" for k, v in _scores(run, data, y).items())
            kb = "" if size is None else f"{size / 1024:8.1f} kB"
            print(f"  {name:13s} {kb:>11s}  {scores}  ({secs:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for run_dir in args.runs:
        measure(run_dir, args.threads)


if __name__ == "__main__":
    main()
