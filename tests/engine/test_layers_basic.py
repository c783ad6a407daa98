"""Dense, embedding and dropout: finite-difference gradients, init, and edge cases."""

import numpy as np
import pytest

from rnnlab.engine import dense, dropout, embedding
from rnnlab.engine.gradcheck import max_rel_error, numeric_grad, numeric_grads, rel_error

# ---------------------------------------------------------------- dense


def test_dense_init_shapes_dtype_and_bounds():
    rng = np.random.default_rng(0)
    p = dense.init_params(rng, 16, 5)
    assert p["weight"].shape == (5, 16) and p["bias"].shape == (5,)
    assert p["weight"].dtype == np.float32 and p["bias"].dtype == np.float32
    bound = 1 / np.sqrt(16)
    assert np.abs(p["weight"]).max() <= bound and np.abs(p["bias"]).max() <= bound
    # Spread over the interval, not stuck near zero.
    assert np.abs(p["weight"]).max() > 0.8 * bound
    assert dense.init_params(rng, 3, 2, dtype=np.float64)["weight"].dtype == np.float64


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 4)])
def test_dense_gradcheck(shape):
    rng = np.random.default_rng(1)
    p = dense.init_params(rng, 4, 3, dtype=np.float64)
    arrays = {"weight": p["weight"], "bias": p["bias"], "x": rng.standard_normal(shape)}
    w_out = rng.standard_normal(shape[:-1] + (3,))

    def loss(a):
        y, _ = dense.forward({"weight": a["weight"], "bias": a["bias"]}, a["x"])
        return float(np.sum(y * w_out))

    y, cache = dense.forward(p, arrays["x"])
    assert y.shape == shape[:-1] + (3,)
    np.testing.assert_allclose(y, arrays["x"] @ p["weight"].T + p["bias"])
    dx, grads = dense.backward(p, w_out, cache)
    num = numeric_grads(loss, arrays)
    errs = max_rel_error({**grads, "x": dx}, num)
    assert max(errs.values()) < 1e-6, errs


def test_dense_does_not_modify_inputs_and_keeps_float32():
    rng = np.random.default_rng(2)
    p = dense.init_params(rng, 4, 3)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    x0, w0 = x.copy(), p["weight"].copy()
    y, cache = dense.forward(p, x)
    dy = np.ones_like(y)
    dx, g = dense.backward(p, dy, cache)
    assert y.dtype == dx.dtype == g["weight"].dtype == g["bias"].dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(p["weight"], w0)
    np.testing.assert_array_equal(dy, 1.0)
    with pytest.raises(ValueError, match="last axis"):
        dense.forward(p, np.zeros((2, 5)))


# ---------------------------------------------------------------- embedding


def test_embedding_init_and_forward():
    rng = np.random.default_rng(3)
    p = embedding.init_params(rng, 50, 8, padding_idx=0)
    w = p["weight"]
    assert w.shape == (50, 8) and w.dtype == np.float32
    np.testing.assert_array_equal(w[0], 0.0)
    # N(0, 1) entries like torch.nn.Embedding.
    assert abs(w[1:].std() - 1.0) < 0.15 and abs(w[1:].mean()) < 0.15
    ids = np.array([[1, 2, 0], [2, 2, 49]])
    y, _ = embedding.forward(p, ids, padding_idx=0)
    assert y.shape == (2, 3, 8)
    np.testing.assert_array_equal(y[1, 2], w[49])
    y[0, 0] = 123.0  # the output must be a copy, never a view of the weight
    assert w[1, 0] != 123.0
    # Negative padding_idx counts from the end, as in torch.
    assert np.all(embedding.init_params(rng, 5, 2, padding_idx=-1)["weight"][4] == 0)


@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding_gradcheck_repeated_ids_and_padding(padding_idx):
    rng = np.random.default_rng(4)
    V, E = 7, 3
    p = embedding.init_params(rng, V, E, padding_idx=padding_idx, dtype=np.float64)
    p["weight"] += rng.standard_normal((V, E))  # non-zero padding row: its grad must stay 0
    ids = np.array([[1, 1, 0, 3], [6, 1, 0, 3]])  # repeats, padding 0 and (V-1 = -1) used
    w_out = rng.standard_normal((2, 4, E))

    def loss(a):
        y, _ = embedding.forward(a, ids, padding_idx=padding_idx)
        return float(np.sum(y * w_out))

    _, cache = embedding.forward(p, ids, padding_idx=padding_idx)
    grads = embedding.backward(p, w_out, cache)
    num = numeric_grads(loss, p)
    if padding_idx is not None:
        assert np.any(num["weight"][padding_idx] != 0)  # forward does read the row...
        num["weight"][padding_idx] = 0.0  # ...but torch semantics: no gradient into it
        np.testing.assert_array_equal(grads["weight"][padding_idx], 0.0)
    assert max_rel_error(grads, num)["weight"] < 1e-6
    # Unused rows get exactly zero; repeated id 1 sums its three contributions.
    np.testing.assert_array_equal(grads["weight"][[2, 4, 5]], 0.0)
    np.testing.assert_allclose(grads["weight"][1], w_out[0, 0] + w_out[0, 1] + w_out[1, 1])


def test_embedding_backward_matches_add_at_on_larger_batch():
    rng = np.random.default_rng(5)
    p = embedding.init_params(rng, 40, 6)
    ids = rng.integers(0, 40, (16, 30))
    y, cache = embedding.forward(p, ids)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ref = np.zeros((40, 6), np.float64)
    np.add.at(ref, ids.reshape(-1), dy.reshape(-1, 6).astype(np.float64))
    g = embedding.backward(p, dy, cache)["weight"]
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)


def test_embedding_rejects_bad_ids():
    p = embedding.init_params(np.random.default_rng(6), 10, 4)
    with pytest.raises(ValueError, match=r"id 10 out of range \[0, 10\)"):
        embedding.forward(p, np.array([[1, 10]]))
    with pytest.raises(ValueError, match=r"id -1 out of range"):
        embedding.forward(p, np.array([[-1, 2]]))
    with pytest.raises(ValueError, match="integers"):
        embedding.forward(p, np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="padding_idx"):
        embedding.init_params(np.random.default_rng(0), 10, 4, padding_idx=10)


# ---------------------------------------------------------------- dropout


def test_dropout_gradcheck():
    x = np.random.default_rng(7).standard_normal((4, 5, 6))
    w_out = np.random.default_rng(8).standard_normal(x.shape)

    def loss():
        y, _ = dropout.forward(x, 0.3, np.random.default_rng(9))  # same seed: same mask
        return float(np.sum(y * w_out))

    _, cache = dropout.forward(x, 0.3, np.random.default_rng(9))
    dx = dropout.backward(w_out, cache)
    assert rel_error(dx, numeric_grad(loss, x)) < 1e-6


def test_dropout_mask_values_and_mean_preserved():
    rng = np.random.default_rng(10)
    p = 0.25
    m = dropout.sample_mask(rng, (400, 500), p, np.float32)
    assert m.dtype == np.float32
    assert set(np.unique(m)) == {np.float32(0.0), np.float32(1 / (1 - p))}
    # 200k Bernoulli draws: the keep rate's standard error is ~1e-3, so 5e-3 is ~5 sigma.
    assert abs((m == 0).mean() - p) < 5e-3
    x = np.full((400, 500), 2.0, np.float32)
    y, cache = dropout.forward(x, p, rng)
    assert not cache["identity"]
    assert abs(y.mean() - 2.0) < 0.02
    np.testing.assert_array_equal(x, 2.0)  # input untouched


def test_dropout_identity_cases():
    x = np.arange(6.0).reshape(2, 3)
    for kwargs in ({"p": 0.5, "train": False}, {"p": 0.0, "train": True}):
        y, cache = dropout.forward(x, rng=np.random.default_rng(0), **kwargs)
        assert cache["identity"] and y is x
        dy = np.ones_like(x)
        assert dropout.backward(dy, cache) is dy
    y, _ = dropout.forward(x, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(y, 0.0)
    with pytest.raises(ValueError, match=r"dropout p must be in \[0, 1\]"):
        dropout.forward(x, 1.5, np.random.default_rng(0))


def test_dropout_float64_and_broadcast_mask():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 5))
    y, cache = dropout.forward(x, 0.5, rng)
    assert y.dtype == np.float64 and cache["mask"].dtype == np.float64
    # A (B, 1, H) mask, as shared over time between recurrent layers.
    m = dropout.sample_mask(rng, (3, 1, 5), 0.5, np.float64)
    assert m.shape == (3, 1, 5) and set(np.unique(m)) <= {0.0, 2.0}
