"""NPZ sequence files: arrays x (N, T, D) or (N, T), y (N,), and optionally mask (N, T) of 0/1
(post-padding) or lengths (N,).

The arrays may be called x or X and y or Y (scikit-learn's and sktime's X), or anything
with data.x_key / data.y_key. data.layout=NDT reads a channel-first x (N, D, T), as sktime's
numpy3D keeps it, NTD an (N, T, D) one. Without data.layout, x is (N, T, D), but one with
fewer steps than features is refused: it is most likely channel-first, and read as (N, T, D)
it would train on a few long "steps" without an error.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from rnnlab.data.base import DataError
from rnnlab.data.seqformats.common import Read, Seqs, label_names, listing, missing_flags

LAYOUTS = ("NTD", "NDT")  # x's axes: (N, T, D), or channel-first (N, D, T)
X_NAMES = ("x", "X")
Y_NAMES = ("y", "Y")
NEEDS = "it needs x (N, T, D) or (N, T) and y (N,)"


def _key(path: Path, keys: list[str], configured: str | None, names: tuple[str, str], option: str) -> str:
    arrays = ", ".join(keys) or "none"
    if configured:
        if configured not in keys:
            raise DataError(f"{path.name} has no array '{configured}' (set by {option}; arrays: {arrays})")
        return configured
    found = [k for k in names if k in keys]
    if not found:
        raise DataError(f"{path.name} has no array '{names[0]}' or '{names[1]}' (arrays: {arrays}); {NEEDS}, "
                        f"or set {option}")
    if len(found) > 1:
        raise DataError(f"{path.name} has both '{found[0]}' and '{found[1]}'; set {option} to the one to use")
    return found[0]


def _arrays(path: Path, cfg) -> tuple[dict[str, np.ndarray], str, str]:
    """({'x', 'y', and 'mask' or 'lengths'}: arrays, x's name, y's name) of the archive."""
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as NPZ: {str(exc).strip().splitlines()[0]}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path.name} holds a single array; save an NPZ archive with np.savez(path, x=..., y=...)")
    with z:
        keys = list(z.files)
        x_key = _key(path, keys, cfg.x_key, X_NAMES, "data.x_key")
        unlabeled = getattr(cfg, "unlabeled", False) and not cfg.y_key and not set(Y_NAMES) & set(keys)
        y_key = None if unlabeled else _key(path, keys, cfg.y_key, Y_NAMES, "data.y_key")  # new inputs: none
        if "mask" in keys and "lengths" in keys:
            raise DataError(f"{path.name} has both 'mask' and 'lengths'; give one of them")
        arrays = {}
        for name, k in (("x", x_key), ("y", y_key), ("mask", "mask"), ("lengths", "lengths")):
            if k in keys:
                try:
                    arrays[name] = z[k]
                except ValueError:
                    raise DataError(
                        f"{path.name}: array '{k}' holds Python objects; save numbers or fixed-width "
                        "strings (e.g. np.asarray(labels, dtype=str))"
                    ) from None
    return arrays, x_key, y_key


def _x(path: Path, raw: np.ndarray, name: str, layout: str | None) -> np.ndarray:
    """x as (N, T, D) from (N, T), (N, T, D) or, with layout NDT, (N, D, T)."""
    if layout == "NDT":
        if raw.ndim != 3:
            raise DataError(f"{path.name}: data.layout=NDT needs {name} with 3 axes (N, D, T) (got shape {raw.shape}); "
                            "a 2-axis array is (N, T): use data.layout=NTD")
        x = raw.transpose(0, 2, 1)
    else:
        x = raw[:, :, None] if raw.ndim == 2 else raw
    if x.ndim != 3 or 0 in x.shape:
        raise DataError(f"{path.name}: {name} must have shape (N, T, D) or (N, T) with N, T, D >= 1 "
                        f"(got {raw.shape})")
    if layout is None and x.shape[1] < x.shape[2]:
        raise DataError(
            f"{path.name}: {name} of shape {raw.shape} read as (N, T, D) has fewer steps ({x.shape[1]}) than "
            f"features ({x.shape[2]}), as a channel-first array would; set data.layout=NDT if it is (N, D, T) "
            "(sktime's numpy3D), or data.layout=NTD if it is (N, T, D)"
        )
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path.name}: {name} must be numeric (got dtype {x.dtype})")
    return x


def _lengths(path: Path, arrays: dict[str, np.ndarray], n: int, t: int) -> np.ndarray:
    if "mask" in arrays:
        m = arrays["mask"]
        if m.shape != (n, t):
            raise DataError(f"{path.name}: mask must have shape (N, T) = ({n}, {t}) to match x (got {m.shape})")
        if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
            raise DataError(f"{path.name}: mask must hold only 0 and 1")
        lengths = m.sum(axis=1).astype(np.int64)
        bad = np.flatnonzero((m != (np.arange(t)[None, :] < lengths[:, None])).any(axis=1))
        if len(bad):
            raise DataError(
                f"{path.name}: mask must be 1 on the first steps and 0 after them (post-padding); "
                f"sequences {listing(bad)} (0-based) are not"
            )
        return lengths
    if "lengths" in arrays:
        lens = arrays["lengths"]
        if lens.shape != (n,):
            raise DataError(f"{path.name}: lengths must have shape (N,) = ({n},) to match x (got {lens.shape})")
        if lens.dtype.kind not in "iuf" or not np.all(np.mod(lens, 1) == 0) or lens.min() < 0 or lens.max() > t:
            raise DataError(f"{path.name}: lengths must be whole numbers in 0..{t} (T of x)")
        return lens.astype(np.int64)
    return np.full(n, t, dtype=np.int64)


def read(path: Path, cfg, reason: str) -> Read:
    arrays, x_key, y_key = _arrays(path, cfg)
    x = _x(path, arrays["x"], x_key, cfg.layout)
    n, t, _ = x.shape
    y = arrays["y"] if y_key is not None else np.full(n, None, dtype=object)
    if y.shape != (n,):
        raise DataError(f"{path.name}: {y_key} must have shape (N,) = ({n},) to match {x_key} (got {y.shape})")
    lengths = _lengths(path, arrays, n, t)
    xf = x.astype(np.float64)
    labels = label_names(y)
    seqs = Seqs(xf, lengths, labels, None, lambda idx: f"sequences {listing(np.asarray(idx))} (0-based)")
    incomplete, unfillable = missing_flags(xf, lengths, labels)
    return Read(seqs, incomplete, unfillable, "npz", reason, f"array '{y_key}'",
                {"x_key": x_key, "y_key": y_key, "layout": cfg.layout or "NTD"})
