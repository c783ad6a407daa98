"""Sequence machinery shared by every cell: argument checks, masks, state slots, BPTT chunks, buffers.

Conventions (stated once for all cells)
---------------------------------------
* x (B, T, D) batch-first; a state is a tuple of NUM_STATES arrays (B, H), h first.
* mask: None or (B, T) of 0/1 (1 = real step). At a padded step the state is carried
  unchanged and the output is 0; the gradient at a padded output is ignored.
* reverse=True runs t = T-1 ... 0; outputs stay aligned with input positions and the final
  state is the state after reading position 0.
* Carried states live in a (T+1, ...) buffer S in input-time order (``slots``):
  forward S[0] = s0, S[t+1] = s_t; reverse S[T] = s0, S[t] = s_t. Either way S[out] (the
  outputs) and S[prev] (the states each step reads) are contiguous (T, ...) blocks.
"""

from __future__ import annotations

import numpy as np


def time_major_view(x, D: int) -> np.ndarray:
    """x (B, T, D) validated, as a (T, B, D) view (no copy)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != D:
        raise ValueError(f"x must have shape (B, T, {D}), got {x.shape}")
    if x.shape[1] == 0:
        raise ValueError("x must have at least one time step")
    return x.transpose(1, 0, 2)


def batch_first(x, D: int) -> np.ndarray:
    """x (B, T, D) validated (no copy)."""
    return time_major_view(x, D).transpose(1, 0, 2)


def carve(dtype, *shapes) -> list[np.ndarray]:
    """Views of ONE fresh buffer, one per shape, each 64-byte aligned.

    A single allocation per call lets malloc hand back the pages of the previous call:
    many separate big arrays tend to be unmapped and mapped again, and first-touch page
    faults on fresh (huge-page advised) memory can cost more than the arithmetic.
    """
    itemsize = np.dtype(dtype).itemsize
    align = max(1, 64 // itemsize)
    sizes = [int(np.prod(shape)) for shape in shapes]
    offsets, total = [], 0
    for n in sizes:
        offsets.append(total)
        total += -(-n // align) * align
    buf = np.empty(total + align, dtype=dtype)
    shift = (-(buf.ctypes.data // itemsize)) % align
    return [
        buf[shift + o : shift + o + n].reshape(shape)
        for o, n, shape in zip(offsets, sizes, shapes, strict=True)
    ]


def readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def time_major_inputs(x, D: int, state0, H: int):
    """(xt (T, B, D), T, B, h0 or None) of a one-state layer: the input as a time-major view and the
    initial state, None when it is zero (the first step then skips its recurrent product)."""
    xt = time_major_view(x, D)
    T, B, _ = xt.shape
    return xt, T, B, nonzero_or_none(state_tuple(state0, 1, B, H)[0])


def state_tuple(state, n: int, B: int, H: int, what: str = "state0", names=("h0", "c0")) -> tuple:
    """A state argument as a tuple of n entries, each None (zeros) or a validated (B, H) array."""
    if state is None:
        return (None,) * n
    if not isinstance(state, (tuple, list)) or len(state) != n:
        shown = ", ".join(names[:n]) if n <= len(names) else f"{n} arrays"
        raise ValueError(f"{what} must be None or a tuple ({shown},)" if n == 1 else
                         f"{what} must be None or a tuple ({shown})")
    out = []
    for k, s in enumerate(state):
        if s is not None:
            s = np.asarray(s)
            if s.shape != (B, H):
                name = names[k] if k < len(names) else f"{what}[{k}]"
                raise ValueError(f"{name} must have shape ({B}, {H}), got {s.shape}")
        out.append(s)
    return tuple(out)


def nonzero_or_none(s):
    """s, or None when it is None or all zeros (a zero initial state lets the first step skip work)."""
    if s is None or not s.any():
        return None
    return s


def check_mask(mask, B: int, T: int) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (B, T):
        raise ValueError(f"mask must have shape ({B}, {T}), got {mask.shape}")
    return mask


def mask_time_major(mask, B: int, T: int, dtype):
    """(m (T, B, 1) in dtype, pad (T, B, 1) bool), or (None, None): for (T, B, H) state layouts."""
    mask = check_mask(mask, B, T)
    if mask is None:
        return None, None
    pad = (mask.T == 0)[:, :, None]
    return np.logical_not(pad).astype(dtype), pad


def mask_feature_major(mask, B: int, T: int, dtype):
    """(m (T, 1, B) in dtype, pad (T, 1, B) bool), or (None, None): for (T, H, B) state layouts."""
    mask = check_mask(mask, B, T)
    if mask is None:
        return None, None
    pad = (mask.T == 0)[:, None, :]
    return np.logical_not(pad).astype(dtype), pad


def step_runs(mask, B: int, T: int):
    """(lo, hi) int arrays (T,): the rows lo[t] <= b < hi[t] are the real ones at step t, or None when
    at some step the real rows are not one run (a general mask; empty runs have lo == hi).

    Without a mask every row is real; rows sorted by length (`eval_batches`) with post- or
    pre-padding always give runs. Inference then works on each step's run only: no masked
    copies, and no work on padding (as PyTorch's packed sequences)."""
    if mask is None:
        return np.zeros(T, dtype=np.intp), np.full(T, B, dtype=np.intp)
    real = check_mask(mask, B, T).T != 0  # (T, B)
    edges = np.diff(real.astype(np.int8), axis=1, prepend=0, append=0)  # +1 where a run starts, -1 after it
    starts = edges == 1
    if (starts.sum(axis=1) > 1).any():
        return None
    return np.argmax(starts, axis=1), np.argmax(edges == -1, axis=1)


def out_view(out, B: int, T: int, H: int, dtype, feature_major: bool) -> np.ndarray:
    """The view an inference kernel writes hs into, (T, H, B) or time-major (T, B, H): of `out`
    ((B, T, H), any strides, e.g. one direction's half of a merged buffer), or of a fresh array."""
    if out is None:
        return np.empty((T, H, B) if feature_major else (T, B, H), dtype=dtype)
    if out.shape != (B, T, H) or out.dtype != dtype or not out.flags.writeable:
        raise ValueError(f"out must be a writable ({B}, {T}, {H}) {np.dtype(dtype).name} array, got "
                         f"{out.shape} {out.dtype}")
    return out.transpose(1, 2, 0) if feature_major else out.transpose(1, 0, 2)


def slots(T: int, reverse: bool):
    """(out slice, prev slice, initial slot, final slot) of a (T+1, ...) state buffer (module docstring)."""
    if reverse:
        return slice(0, T), slice(1, T + 1), T, 0
    return slice(1, T + 1), slice(0, T), 0, T


def step_offsets(reverse: bool) -> tuple[int, int]:
    """(off_prev, off_out): step t reads slot t + off_prev and writes slot t + off_out."""
    return (1, 0) if reverse else (0, 1)


def steps(T: int, reverse: bool) -> range:
    """Input positions in the order the forward pass visits them."""
    return range(T - 1, -1, -1) if reverse else range(T)


def upstream(dhs, dstateT, n: int, B: int, T: int, H: int, dtype, names=("dhT", "dcT"), time_major=False):
    """(dhs (B, T, H) array, or its (T, B, H) view with time_major, or None; tuple of n final-state
    gradients, each None or cast (B, H))."""
    if dhs is not None:
        dhs = np.asarray(dhs)
        if dhs.shape != (B, T, H):
            raise ValueError(f"dhs must have shape ({B}, {T}, {H}), got {dhs.shape}")
        dhs = dhs.astype(dtype, copy=False)
        if time_major:
            dhs = dhs.transpose(1, 0, 2)
    ds = state_tuple(dstateT, n, B, H, "dstateT", names)
    return dhs, tuple(None if d is None else d.astype(dtype, copy=False) for d in ds)


def check_trace(dh_trace, T: int, B: int, H: int):
    """dh_trace validated: None or a writable (T, B, H) array."""
    if dh_trace is None:
        return None
    if not isinstance(dh_trace, np.ndarray) or dh_trace.shape != (T, B, H):
        shape = getattr(dh_trace, "shape", type(dh_trace).__name__)
        raise ValueError(f"dh_trace must be a ({T}, {B}, {H}) array, got {shape}")
    return dh_trace


CHUNK_ELEMS = 1 << 17  # BPTT works on chunks of about this many (step, batch, unit) entries


def chunk_steps(T: int, B: int, H: int) -> int:
    """Steps per chunk: big enough for efficient GEMMs, small enough to stay in cache."""
    return max(1, min(T, CHUNK_ELEMS // (B * H)))


def bptt_chunks(T: int, K: int, reverse: bool):
    """(t0, t1, steps) blocks of at most K steps, in the order BPTT visits them (pass
    ``not reverse`` for the order the forward pass visits them)."""
    if reverse:  # forward pass went T-1 ... 0, so BPTT goes 0 ... T-1
        return [(t0, min(T, t0 + K), range(t0, min(T, t0 + K))) for t0 in range(0, T, K)]
    return [(max(0, t1 - K), t1, range(t1 - 1, max(0, t1 - K) - 1, -1)) for t1 in range(T, 0, -K)]


# Kernels that fold chunks of steps into the weight gradients with GEMMs over (steps x batch)
# columns (lstm.py) use chunks of about this many columns.
CHUNK_COLUMNS = 512


def column_chunks(T: int, B: int, backwards: bool):
    """[(a, b), ...] covering 0..T-1 in chunks of about CHUNK_COLUMNS / B steps, in visiting order."""
    k = max(1, min(T, CHUNK_COLUMNS // max(1, B)))
    spans = [(a, min(a + k, T)) for a in range(0, T, k)]
    return spans[::-1] if backwards else spans


def uniform_init(rng: np.random.Generator, shapes: dict[str, tuple], hidden_size: int, dtype) -> dict[str, np.ndarray]:
    """PyTorch's recurrent init: every tensor U(-1/sqrt(H), 1/sqrt(H)), drawn in the order of `shapes`."""
    k = 1.0 / np.sqrt(hidden_size)
    return {name: rng.uniform(-k, k, size=shape).astype(dtype) for name, shape in shapes.items()}


def pytorch_shapes(gates: int, input_size: int, hidden_size: int) -> dict[str, tuple]:
    """weight_ih (G*H, D), weight_hh (G*H, H), bias_ih, bias_hh (G*H,): torch.nn.RNN/LSTM/GRU's layout."""
    G = gates * hidden_size
    return {"weight_ih": (G, input_size), "weight_hh": (G, hidden_size), "bias_ih": (G,), "bias_hh": (G,)}


def gate_blocks(z, n: int) -> tuple:
    """The n gate blocks of a (B, n*H) pre-activation as (B, H) views (np.split, without its overhead)."""
    H = z.shape[-1] // n
    return tuple(z[..., k * H : (k + 1) * H] for k in range(n))


def sigmoid(z):
    """1 / (1 + exp(-z)) without overflow warnings for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def row_ranges(mask, B: int, T: int, dtype, feature_major: bool):
    """(m, keep, lo, hi) for an inference kernel: with length-sorted rows (`step_runs`) step t runs on rows
    lo[t]:hi[t] and m = keep = None; otherwise every row with the mask m (feature- or time-major, as the
    kernel lays out its state) and keep its real steps."""
    runs = step_runs(mask, B, T)
    if runs is not None:
        return None, None, runs[0], runs[1]
    m, pad = (mask_feature_major if feature_major else mask_time_major)(mask, B, T, dtype)
    return m, np.logical_not(pad), np.zeros(T, dtype=np.intp), np.full(T, B, dtype=np.intp)
