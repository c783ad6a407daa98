"""Where data files are found: as given, inside $RNNLAB_DATA, or in ../shared/data.

A configured path is used as given when it is absolute or exists relative to the working
directory, else it is looked up inside $RNNLAB_DATA. A data set's default file (path
null) comes from $RNNLAB_DATA when that is set, else from ../shared/data beside the
working directory or beside the rnnlab checkout.
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve_path(path: str | None, default_name: str | None = None) -> Path:
    if path:
        p = Path(os.path.expanduser(path))
        if p.is_absolute() or p.exists() or "RNNLAB_DATA" not in os.environ:
            return p
        inside = Path(os.environ["RNNLAB_DATA"]) / p
        return inside if inside.exists() else p
    name = default_name or ""
    if "RNNLAB_DATA" in os.environ:
        return Path(os.environ["RNNLAB_DATA"]) / name
    candidates = [Path("../shared/data"), Path(__file__).resolve().parents[2].parent / "shared" / "data"]
    for base in candidates:
        if (base / name).exists():
            return base / name
    return candidates[0] / name
