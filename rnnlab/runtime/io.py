"""Atomic file writes: write a temporary file beside the target, then rename over it.

A crash or Ctrl-C mid-write leaves the previous complete file, never a torn one.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rnnlab.runtime import signals
from rnnlab.runtime.folders import describe


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; finished files get the usual 0666 & ~umask instead.
FILE_MODE = 0o666 & ~_current_umask()


# The storage itself refusing (full, read-only, no permission, a quota, an I/O error), as opposed to a bug.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR,
                  errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG}


class StorageError(OSError):
    """A file that could not be written because of the disk (full, read-only, ...): one line naming the path
    and the cause. `summary` is set by whoever still holds results the disk refused (the run's summary)."""

    summary = None

    def __init__(self, path: str | Path, exc: OSError):
        super().__init__(exc.errno, f"cannot write {describe(exc, path)}")  # one wording for the disk's refusals
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror


@contextmanager
def storage_errors(path: str | Path) -> Iterator[None]:
    """OSErrors of the storage inside the block become one StorageError naming `path`."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise StorageError(path, exc) from None
        raise


def atomic_write(path: str | Path, write: Callable[[IO], None], mode: str = "w") -> Path:
    path = Path(path)
    with storage_errors(path):
        return _atomic_write(path, write, mode)


def _atomic_write(path: Path, write: Callable[[IO], None], mode: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The name is drawn before the file exists, so a signal at any moment after its creation finds it in the
    # except below (mkstemp creates the file before it returns its name: a signal in between leaked it).
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with signals.temp_file(tmp):  # a fast exit (a second Ctrl-C) removes it too
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, mode) as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    except FileExistsError:  # another writer's file of the same random name (2^-64): not ours to remove
        raise
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


@contextmanager
def folder_in_place(out: str | Path) -> Iterator[Path]:
    """A folder written whole or not at all: the block fills a temporary folder beside `out`, which then
    replaces `out` (an old folder there is moved aside first and removed after); an error or a signal in
    the block leaves `out` as it was and no temporary folder."""
    import shutil

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
