"""The inference path (`model.infer`, the blocks' and cells' `infer`) against the cached forward:
the same outputs for every cell, direction, merge mode, padding and pooling; its step runs, its
row threads, and the callers that use it."""

import numpy as np
import pytest

from rnnlab.engine import cells, row_threads
from rnnlab.engine import model as M
from rnnlab.engine.cells import _sequence as seq
from rnnlab.runtime.cpu import usable_cores
from rnnlab.train.tasks import predict as P

CELLS = cells.names()
TUNED = [c for c in CELLS if hasattr(cells.get(c).module, "infer")]
POOLINGS = ("last", "mean", "max", "attention", "none")
B, T, D, H = 3, 5, 3, 4
ATOL = 1e-6  # float32 rounding: a step's product over a run of columns may round differently


def _masks() -> dict[str, np.ndarray | None]:
    """Post- and pre-padding, unsorted (masked updates) and sorted by length (one run per step), a
    general mask with holes, and a row without any real step."""
    lengths = np.array([4, 2, 5])
    post = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float32)
    pre = post[:, ::-1].copy()
    order = np.argsort(lengths)
    holes = np.array([[1, 0, 1, 1, 0], [1, 1, 0, 1, 1], [0, 1, 1, 1, 1]], dtype=np.float32)
    empty = post.copy()
    empty[1] = 0
    return {"none": None, "post": post, "pre": pre, "post sorted": post[order], "pre sorted": pre[order],
            "holes": holes, "empty row": empty}


MASKS = _masks()


def _close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=0, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("cell", CELLS)
def test_cell_infer_matches_forward(cell):
    """hs and the final states of every cell, both directions, with and without initial states and
    with every mask; hs written into a strided `out` as the bidirectional layer passes it."""
    c = cells.get(cell)
    rng = np.random.default_rng(0)
    p = c.init_params(rng, D, H)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    s0 = tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in range(c.num_states))
    for name, mask in MASKS.items():
        for rev in (False, True):
            for state0 in (None, s0):
                what = f"{cell} mask={name} reverse={rev} state0={state0 is not None}"
                (hs, sT), _ = c.forward(p, x, state0, mask, rev)
                hs2, sT2 = c.infer(p, x, state0, mask, rev)
                _close(hs2, hs, what)
                for a, b in zip(sT2, sT, strict=True):
                    _close(a, b, what + " final state")
                buf = np.full((T, 2 * H, B), np.nan, dtype=np.float32)
                out = buf[:, H:].transpose(2, 0, 1)
                hs3, _ = c.infer(p, x, state0, mask, rev, out=out)
                assert hs3 is out
                _close(out, hs, what + " out=")
                assert np.isnan(buf[:, :H]).all()  # nothing written outside out


def test_tuned_cells_have_their_own_inference_kernel():
    assert {"rnn", "lstm", "gru"} <= set(TUNED)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_model_infer_matches_forward(cell, pooling):
    """Every cell and pooling, one and two directions (every merge mode), every mask."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    for both, modes in ((False, ("concat",)), (True, ("concat", "sum", "mean", "mul"))):
        for mode in modes:
            spec = M.ModelSpec(cell=cell, input_size=D, hidden_size=H, output_size=2, bidirectional=both,
                               merge_mode=mode, pooling=pooling)
            params = M.init_params(spec, rng)
            for name, mask in MASKS.items():
                y, _ = M.forward(spec, params, x, mask, train=False)
                _close(M.infer(spec, params, x, mask), y, f"{cell} {pooling} bidirectional={both} {mode} mask={name}")


@pytest.mark.parametrize("extra", [
    {"num_layers": 2, "dropout": 0.3, "input_dropout": 0.2, "output_dropout": 0.1},
    {"layer_norm": True},
    {"zoneout": 0.2},
    {"conv_channels": 4},
    {"self_attention_heads": 2},
])
def test_model_infer_matches_forward_with_other_blocks(extra):
    spec = M.ModelSpec(cell="gru", input_size=D, hidden_size=H, output_size=1, bidirectional=True, pooling="max",
                       **extra)
    rng = np.random.default_rng(2)
    params = M.init_params(spec, rng)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    for name, mask in MASKS.items():
        y, _ = M.forward(spec, params, x, mask, train=False)
        _close(M.infer(spec, params, x, mask), y, f"{extra} mask={name}")


def test_embedding_batch_norm_and_initial_states():
    """Token ids through an embedding (the IMDB model), BatchNorm's running statistics, per-layer
    initial states split over row threads."""
    spec = M.ModelSpec(cell="lstm", input_size=D, hidden_size=H, output_size=1, bidirectional=True, pooling="max",
                       vocab_size=11, batch_norm=True, num_layers=2)
    rng = np.random.default_rng(3)
    params = M.init_params(spec, rng)
    state = {k: v + rng.random(v.shape).astype(v.dtype) for k, v in M.init_state(spec).items()}
    mask = MASKS["post sorted"]
    ids = (rng.integers(1, 11, (B, T)) * mask).astype(np.int64)
    init = {f"rnn{k}": tuple(tuple(rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
                             for _ in range(2)) for k in range(2)}
    y, _ = M.forward(spec, params, ids, mask, train=False, state=state, initial_states=init)
    for threads in (1, 2, 3):
        _close(M.infer(spec, params, ids, mask, state=state, initial_states=init, threads=threads), y,
               f"threads={threads}")
    with pytest.raises(ValueError, match="needs state="):
        M.infer(spec, params, ids, mask)


def test_float64_models_run_in_float64():
    spec = M.ModelSpec(cell="gru", input_size=D, hidden_size=H, output_size=2, bidirectional=True, pooling="mean")
    params = M.init_params(spec, np.random.default_rng(4), dtype=np.float64)
    x = np.random.default_rng(5).standard_normal((B, T, D))
    y, _ = M.forward(spec, params, x, MASKS["pre"], train=False)
    y2 = M.infer(spec, params, x, MASKS["pre"])
    assert y2.dtype == np.float64
    np.testing.assert_allclose(y2, y, rtol=0, atol=1e-12)


def test_step_runs():
    lo, hi = seq.step_runs(None, 3, 2)
    assert lo.tolist() == [0, 0] and hi.tolist() == [3, 3]
    lo, hi = seq.step_runs(MASKS["post sorted"], B, T)  # lengths 2, 4, 5
    assert lo.tolist() == [0, 0, 1, 1, 2] and hi.tolist() == [3, 3, 3, 3, 3]
    lo, hi = seq.step_runs(MASKS["pre sorted"], B, T)
    assert lo.tolist() == [2, 1, 1, 0, 0] and hi.tolist() == [3, 3, 3, 3, 3]
    lo, hi = seq.step_runs(np.array([[0, 1], [0, 1]]), 2, 2)  # a step without real rows: an empty run
    assert lo[0] == hi[0] and (lo[1], hi[1]) == (0, 2)
    assert seq.step_runs(MASKS["post"], B, T) is None  # rows 0 and 2 real, row 1 padded at step 2
    assert seq.step_runs(MASKS["holes"], B, T) is None


def test_out_must_fit():
    c = cells.get("gru")
    p = c.init_params(np.random.default_rng(0), D, H)
    x = np.zeros((B, T, D), dtype=np.float32)
    with pytest.raises(ValueError, match=r"out must be a writable \(3, 5, 4\) float32 array"):
        c.infer(p, x, out=np.zeros((B, T, H + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be a writable"):
        c.infer(p, x, out=np.zeros((B, T, H), dtype=np.float64))


def test_row_threads_plan_and_run():
    assert row_threads.plan(1000, 2) == [slice(0, 500), slice(500, 1000)]
    assert row_threads.plan(3, 5) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert row_threads.plan(0) == [slice(0, 0)]
    assert len(row_threads.plan(2 * row_threads.MIN_ENTRIES // 8, width=8)) == min(2, usable_cores())
    assert len(row_threads.plan(2 * row_threads.MIN_ENTRIES // 8 - 1, width=8)) == 1  # small batches: one thread
    assert row_threads.run(lambda s: (s.start, s.stop), row_threads.plan(10, 3)) == [(0, 4), (4, 7), (7, 10)]

    def fail(s):
        if s.start:
            raise RuntimeError(f"part at {s.start}")
        return s

    with pytest.raises(RuntimeError, match="part at 5"):
        row_threads.run(fail, row_threads.plan(10, 2))


def test_evaluation_uses_the_inference_path(monkeypatch):
    """predict_split and model.predict never build the caches (forward is not called)."""
    from rnnlab.data.base import Split

    spec = M.ModelSpec(cell="gru", input_size=D, hidden_size=H, output_size=1, bidirectional=True, pooling="max")
    rng = np.random.default_rng(6)
    params = M.init_params(spec, rng)
    mask = np.vstack([MASKS["post"], MASKS["post sorted"]])
    split = Split(rng.standard_normal((6, T, D)).astype(np.float32), np.zeros(6), mask)
    expected = np.concatenate([M.forward(spec, params, split.x[i : i + 1], mask[i : i + 1])[0] for i in range(6)])

    def refuse(*a, **k):
        raise AssertionError("the cached forward ran")

    monkeypatch.setattr(M, "forward", refuse)
    _close(P.predict_split(spec, params, split, batch_size=4), expected, "predict_split")
    _close(M.predict(spec, params, split.x, mask, batch_size=4), expected, "model.predict")
