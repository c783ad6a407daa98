"""`rnnlab augment-preview [OVERRIDES...]`: see what data.augment does to training sequences.

Composes the config like `rnnlab train` (same overrides, same checks), loads the data with
the run's data seed, applies the configured augmentation (or the names given with --aug,
at their default parameters) to a few training sequences and writes a PNG: each row one
sequence, the original on the left and the augmented sequence on the right (channel 0,
real steps only). Bad input (an unknown augmentation, a bad override, data that cannot be
loaded or has no training sequences) gives one line `Error: ...` on stderr and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rnnlab.data import augment, registry
from rnnlab.data.base import DataError

DEFAULT_OUTPUT = "augment_preview.png"


def run(overrides: list[str], aug: str | None = None, output: str | Path | None = None, n: int = 4) -> int:
    """Entry point behind the Typer command; returns the process exit code."""
    try:
        path = preview(overrides, aug, output, n)
    except ValueError as exc:  # ConfigError, DataError and bad --aug / --n are ValueErrors with one line
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"Error: cannot write {output or DEFAULT_OUTPUT}: {exc.strerror or exc.__class__.__name__}",
              file=sys.stderr)
        return 2
    print(path)
    return 0


def preview(overrides: list[str], aug: str | None, output: str | Path | None, n: int) -> Path:
    import numpy as np

    from rnnlab.commands.hydra_bridge import split_args
    from rnnlab.config.composition import compose_and_validate
    from rnnlab.config.validate import ConfigError

    if n < 1:
        raise ValueError(f"--n must be >= 1 (got {n})")
    flags, plain = split_args(overrides)
    if flags:
        raise ConfigError(f"augment-preview takes overrides only, not Hydra flags ({' '.join(flags)})")
    cfg = compose_and_validate(plain)
    specs = augment.parse_names(aug) if aug is not None else list(getattr(cfg.data, "augment", None) or [])
    if not specs:
        raise ConfigError("no augmentation to preview: set data.augment=[...] or give --aug jitter,time_warp")
    dtype = np.dtype(cfg.train.dtype)
    data_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(4)[0])  # the run's data stream
    data = registry.load(cfg.data, data_rng, dtype)
    if registry.is_seq2seq(data):
        raise DataError(f"data '{cfg.data.name}' is a sequence-to-sequence task: data.augment applies to "
                        "sequence and forecasting data, not to seq2seq pairs")
    train = data.train
    if len(train) == 0:
        raise DataError(f"data '{cfg.data.name}' has no training sequences to augment")
    if data.embedding or not np.issubdtype(train.x.dtype, np.floating) or train.x.ndim != 3:
        raise DataError(f"augmentation needs float inputs (B, T, D), but data '{cfg.data.name}' has "
                        f"{train.x.dtype} inputs of shape {train.x.shape[1:]}")
    rng = augment.stream(cfg.seed)
    idx = np.sort(rng.choice(len(train), size=min(n, len(train)), replace=False))
    x = train.x[idx]
    mask = None if train.mask is None else train.mask[idx]
    x_aug, mask_aug, mix = augment.apply(x, mask, specs, rng)
    path = Path(output) if output is not None else Path(DEFAULT_OUTPUT)
    return _plot(x, mask, x_aug, mask_aug, idx, specs, mix, path)


def _describe(spec: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name" and not (k == "p" and v == 1.0))
    return f"{spec['name']}({params})" if params else spec["name"]


def _plot(x, mask, x_aug, mask_aug, idx, specs, mix, path: Path) -> Path:
    import numpy as np

    from rnnlab.report.plots import plt, save_figure

    rows = len(x)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 1.7 * rows + 0.8), sharex=True, squeeze=False)
    for r in range(rows):
        real = np.arange(x.shape[1]) if mask is None else np.flatnonzero(mask[r] > 0)
        real_aug = np.arange(x.shape[1]) if mask_aug is None else np.flatnonzero(mask_aug[r] > 0)
        left, right = axes[r]
        left.plot(real, x[r, real, 0], lw=1.2, color="C0")
        right.plot(real, x[r, real, 0], lw=0.8, color="C0", alpha=0.35, label="original")
        right.plot(real_aug, x_aug[r, real_aug, 0], lw=1.2, color="C1", label="augmented")
        title = f"train sequence {idx[r]}"
        if mix is not None and mix.perm[r] != r:
            title += f" (mixed with {idx[mix.perm[r]]}, lam={mix.lam:.2f})"
        left.set_title(f"train sequence {idx[r]}: original", fontsize=9)
        right.set_title(title + ": augmented", fontsize=9)
        for ax in (left, right):
            ax.grid(alpha=0.3)
    axes[0, 1].legend(loc="upper right", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle("Augmentation (channel 0): " + " -> ".join(_describe(s) for s in specs), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
