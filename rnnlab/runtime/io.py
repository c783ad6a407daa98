"""Atomic file writes: write a temporary file beside the target, then rename over it.

A crash or Ctrl-C mid-write leaves the previous complete file, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; finished files get the usual 0666 & ~umask instead.
FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(path: str | Path, write: Callable[[IO], None], mode: str = "w") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text))


def write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON (see strict_json), atomically."""
    return write_text(path, strict_json(obj))


def strict_json(obj: Any) -> str:
    """JSON that jq and JavaScript read: NaN and infinities become null, and an object gets a
    `non_finite` entry saying which key held what ({"best_val_loss": "nan"})."""
    data, non_finite = finite(obj)
    if non_finite and isinstance(data, dict):  # beside the reasons an object read back already carries
        data["non_finite"] = {**(data.get("non_finite") or {}), **non_finite}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def finite(obj: Any, path: str = "") -> tuple[Any, dict[str, str]]:
    """(a JSON-safe copy of obj, {dotted.key: "nan" | "inf" | "-inf"} of the non-finite numbers made null)."""
    import math

    found: dict[str, str] = {}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out[str(k)], sub = finite(v, f"{path}.{k}" if path else str(k))
            found.update(sub)
        return out, found
    if isinstance(obj, list | tuple):
        items = []
        for i, v in enumerate(obj):
            x, sub = finite(v, f"{path}[{i}]")
            items.append(x)
            found.update(sub)
        return items, found
    if type(obj).__module__ == "numpy":
        obj = _jsonable(obj)
        if isinstance(obj, list):
            return finite(obj, path)
    if isinstance(obj, Path):
        return str(obj), found
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, {path: "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
    if obj is not None and not isinstance(obj, str | int | float | bool):
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")
    return obj, found


def write_csv(path: str | Path, frame) -> Path:
    """Write a pandas DataFrame as CSV atomically."""
    return atomic_write(path, lambda fh: frame.to_csv(fh, index=False))


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
