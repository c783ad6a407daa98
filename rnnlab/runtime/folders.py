"""Run and sweep folders: a new one claimed atomically, a given one checked before anything runs.

`claim_new_dir(path)` creates `path`, or `path-2`, `path-3`, ... when that name is taken: `os.mkdir`
is atomic, so two processes starting in the same second with the same name get two folders (a
timestamp alone cannot promise that, and sub-second stamps only make the race rarer).
`check_dir(path)` makes sure a folder the user named can be written before a run starts; both
raise `OSError`, which `describe` turns into the one line a user sees ("outputs/x: is a file").
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

MAX_SUFFIX = 10_000  # path-2 ... path-9999: far more runs than can start in one second


def claim_new_dir(path: str | Path) -> Path:
    """Create a folder no other run has: `path`, else the first free `path-N` (N >= 2). Returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_SUFFIX):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, f"{MAX_SUFFIX - 1} folders of this name exist", str(path))


def check_dir(path: str | Path) -> bool:
    """Make sure `path` is a folder this process can create files in, creating it if needed; returns
    whether it was created here. OSError naming the cause (read-only, a file in the way) otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(path))
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".rnnlab-write-check-")  # permissions alone say nothing to root
    os.close(fd)
    os.unlink(probe)
    return created


def describe(exc: OSError, path: str | Path) -> str:
    """`PATH: cause` for an OSError about a folder: 'is a file', 'x is a file' (a file where a parent
    folder should be), or the system's reason ('Read-only file system', 'Permission denied')."""
    path = Path(path)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        for p in (path, *path.parents):
            if p.exists() and not p.is_dir():
                return f"{path}: is a file" if p == path else f"{path}: {p} is a file"
    if exc.errno == errno.ENAMETOOLONG:
        return f"{path}: a file name is longer than the system allows (255 bytes)"
    return f"{path}: {exc.strerror or exc}"
