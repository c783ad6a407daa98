"""Seq2seq encoder-decoder: float64 finite-difference gradients of every parameter (teacher forcing
and scheduled sampling, masks, LSTM / GRU, with and without attention), attention weights,
greedy vs beam search, free-running generation, and a small training run on reverse_digits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnlab.data import seq2seq_tasks as S
from rnnlab.engine import cells, losses
from rnnlab.engine import seq2seq as Q
from rnnlab.engine.gradcheck import max_rel_error, numeric_grads

TOL = 1e-6
B, TS, TO, V = 3, 5, 4, 7


def _src_mask():
    m = np.ones((B, TS))
    m[0, -2:] = 0  # post-padded source
    m[2, -1:] = 0
    return m


def _token_batch(rng):
    src = rng.integers(3, V, size=(B, TS))
    mask = _src_mask()
    src = np.where(mask > 0, src, 0)
    tgt_in = rng.integers(0, V, size=(B, TO))
    tgt_out = rng.integers(0, V, size=(B, TO))
    tgt_mask = np.ones((B, TO))
    tgt_mask[1, -1] = 0
    return src, mask, tgt_in, tgt_out, tgt_mask


def _check(spec, src, mask, tgt_in, loss_fn, p=1.0, seed=0):
    """Analytic vs numeric gradients of loss_fn(out) for every parameter; returns the max error."""
    params = Q.init_params(spec, np.random.default_rng(seed), dtype=np.float64)
    for k in params:  # the default init gives near-uniform attention, whose tiny gradients drown in round-off
        if k.startswith("attn."):
            params[k] *= 4.0

    def run(_=None):
        rng = np.random.default_rng(123)  # the same sampling decisions in every call
        return Q.forward(spec, params, src, mask, tgt_in, teacher_forcing=p, rng=rng)

    out, cache = run()
    _, dout = loss_fn(out)
    grads = Q.backward(spec, params, dout, cache)
    assert set(grads) == set(params)
    for k in params:
        assert grads[k].shape == params[k].shape and grads[k].dtype == np.float64, k
    num = numeric_grads(lambda _: loss_fn(run()[0])[0], params)
    errs = max_rel_error(grads, num)
    assert max(errs.values()) < TOL, errs
    return max(errs.values()), cache


CELLS = ["lstm", "gru"]
ATTN = [None, "luong", "bahdanau"]


def _pairwise(ps):
    """Every (cell, attention, p) combination; those outside a pairwise-covering subset (every cell with every
    attention, every attention with every p, every cell with every p) are marked slow, so the fast suite checks
    each pair once and the slow suite the whole product."""
    out = []
    for (ci, cell), (ai, attention), (pi, p) in itertools.product(enumerate(CELLS), enumerate(ATTN), enumerate(ps)):
        covering = ci == (ai + pi) % len(CELLS)
        out.append(pytest.param(p, attention, cell, id=f"{p}-{attention}-{cell}",
                                marks=() if covering else pytest.mark.slow))
    return out


@pytest.mark.parametrize("p, attention, cell", _pairwise([1.0, 0.5]))
def test_token_gradients(cell, attention, p):
    rng = np.random.default_rng(1)
    src, mask, tgt_in, tgt_out, tgt_mask = _token_batch(rng)
    spec = Q.Seq2SeqSpec(cell=cell, hidden_size=4, src_vocab=V, tgt_vocab=V, embed_dim=3,
                         attention=attention, attn_size=3, pad_id=0)

    def loss_fn(out):
        return losses.softmax_cross_entropy(out, tgt_out, tgt_mask)

    _, cache = _check(spec, src, mask, tgt_in, loss_fn, p=p)
    if p < 1:  # some steps really did read the model's own prediction
        assert not cache["gold"].all() and cache["gold"][:, 0].all()


@pytest.mark.parametrize("p, attention, cell", _pairwise([1.0, 0.4, 0.0]))
def test_continuous_gradients(cell, attention, p):
    """The fed-back value of a sampled step is differentiated through, so any p checks."""
    rng = np.random.default_rng(2)
    src = rng.standard_normal((B, TS, 2))
    mask = _src_mask()
    tgt_in = rng.standard_normal((B, TO, 2))
    tgt_out = rng.standard_normal((B, TO, 2))
    spec = Q.Seq2SeqSpec(cell=cell, hidden_size=4, src_dim=2, tgt_dim=2, attention=attention, attn_size=3)

    def loss_fn(out):
        return losses.mse(out, tgt_out)

    _, cache = _check(spec, src, mask, tgt_in, loss_fn, p=p)
    if p == 0:
        assert not cache["gold"][:, 1:].any()


# ln_lstm's check costs seconds (its norms' many parameters): slow suite; the others stay fast.
@pytest.mark.parametrize("cell", [pytest.param(c, marks=[pytest.mark.slow] if c == "ln_lstm" else [])
                                  for c in cells.names() if c not in CELLS])
def test_every_other_cell_as_encoder_and_decoder(cell):
    """Any registered cell runs both sides (its options too); gradients stay exact."""
    rng = np.random.default_rng(4)
    src, mask = rng.standard_normal((B, TS, 2)), _src_mask()
    tgt_in, tgt_out = rng.standard_normal((B, TO, 2)), rng.standard_normal((B, TO, 2))
    opts = {"nonlinearity": "tanh"} if "nonlinearity" in cells.get(cell).options else {}
    spec = Q.Seq2SeqSpec(cell=cell, hidden_size=4, src_dim=2, tgt_dim=2, attention="luong", cell_options=opts)
    _check(spec, src, mask, tgt_in, lambda out: losses.mse(out, tgt_out), p=0.5)


def test_scheduled_sampling_feeds_argmax_tokens():
    rng = np.random.default_rng(3)
    src, mask, tgt_in, _, _ = _token_batch(rng)
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=5, src_vocab=V, tgt_vocab=V, embed_dim=3, attention="luong")
    params = Q.init_params(spec, rng, dtype=np.float64)
    out, cache = Q.forward(spec, params, src, mask, tgt_in, teacher_forcing=0.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(cache["fed"][:, 0], tgt_in[:, 0])
    np.testing.assert_array_equal(cache["fed"][:, 1:], out[:, :-1].argmax(-1))
    # p = 0 from BOS equals greedy decoding (no EOS)
    dec = Q.greedy_decode(spec, params, src, mask, TO, bos_id=int(tgt_in[0, 0]))
    if (tgt_in[:, 0] == tgt_in[0, 0]).all():
        np.testing.assert_array_equal(dec.tokens, out.argmax(-1))
    # p = 1 never draws from the rng and reads the gold inputs
    out1, c1 = Q.forward(spec, params, src, mask, tgt_in, teacher_forcing=1.0)
    np.testing.assert_array_equal(c1["fed"], tgt_in)
    assert c1["gold"].all()


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_attention_weights_sum_to_one_over_real_source(attention):
    rng = np.random.default_rng(4)
    src, mask, tgt_in, _, _ = _token_batch(rng)
    spec = Q.Seq2SeqSpec(cell="lstm", hidden_size=6, src_vocab=V, tgt_vocab=V, embed_dim=4, attention=attention)
    params = Q.init_params(spec, rng, dtype=np.float64)
    _, cache = Q.forward(spec, params, src, mask, tgt_in)
    a = cache["attention"]
    assert a.shape == (B, TO, TS)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-12)
    assert (a[mask[:, None, :].repeat(TO, 1) == 0] == 0).all()
    dec = Q.greedy_decode(spec, params, src, mask, 6, bos_id=1, eos_id=2)
    for b in range(B):
        n = dec.lengths[b]
        np.testing.assert_allclose(dec.attention[b, :n].sum(-1), 1.0, atol=1e-12)
        assert (dec.attention[b, :, mask[b] == 0] == 0).all()
        assert (dec.attention[b, n:] == 0).all()


def test_padded_source_junk_does_not_matter():
    rng = np.random.default_rng(5)
    src, mask, tgt_in, _, _ = _token_batch(rng)
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=5, src_vocab=V, tgt_vocab=V, embed_dim=3, attention="bahdanau")
    params = Q.init_params(spec, rng, dtype=np.float64)
    out, _ = Q.forward(spec, params, src, mask, tgt_in)
    junk = np.where(mask > 0, src, rng.integers(0, V, size=src.shape))
    out2, _ = Q.forward(spec, params, junk, mask, tgt_in)
    np.testing.assert_allclose(out, out2, atol=1e-12)


def _small_token_model(seed, attention="luong", cell="gru", vocab=6, hidden=8):
    rng = np.random.default_rng(seed)
    spec = Q.Seq2SeqSpec(cell=cell, hidden_size=hidden, src_vocab=vocab, tgt_vocab=vocab, embed_dim=4,
                         attention=attention)
    params = Q.init_params(spec, rng, dtype=np.float64)
    for k in params:  # sharper distributions than the default init, so decoding choices matter
        params[k] *= 3.0
    src = rng.integers(3, vocab, size=(4, 5))
    mask = np.ones((4, 5))
    mask[1, 3:] = 0
    mask[3, 4:] = 0
    return spec, params, src, mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("attention", [None, "luong", "bahdanau"])
@pytest.mark.parametrize("eos", [None, 2])
def test_beam_size_one_equals_greedy(seed, attention, eos):
    spec, params, src, mask = _small_token_model(seed, attention)
    g = Q.greedy_decode(spec, params, src, mask, max_len=6, bos_id=1, eos_id=eos)
    b = Q.beam_search(spec, params, src, mask, beam_size=1, max_len=6, bos_id=1, eos_id=eos)
    np.testing.assert_array_equal(b.tokens, g.tokens)
    np.testing.assert_array_equal(b.lengths, g.lengths)
    np.testing.assert_allclose(b.log_prob, g.log_prob, rtol=1e-12)
    if attention:
        np.testing.assert_allclose(b.attention, g.attention, atol=1e-12)
    else:
        assert b.attention is None and g.attention is None


def _sequence_logprob(spec, params, src, mask, seq, bos):
    """log p(seq | src) by teacher forcing (one source row)."""
    tgt_in = np.array([[bos, *seq[:-1]]])
    out, _ = Q.forward(spec, params, src, mask, tgt_in)
    logp = out - out.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return float(sum(logp[0, t, s] for t, s in enumerate(seq)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eos", [None, 2])
def test_beam_search_scores_at_least_greedy_and_reports_true_logprob(seed, eos):
    spec, params, src, mask = _small_token_model(seed, "bahdanau" if seed % 2 else None)
    g = Q.greedy_decode(spec, params, src, mask, max_len=5, bos_id=1, eos_id=eos)
    b = Q.beam_search(spec, params, src, mask, beam_size=4, max_len=5, bos_id=1, eos_id=eos)
    assert (b.log_prob >= g.log_prob - 1e-12).all()
    for i in range(len(src)):
        seq = b.tokens[i, : b.lengths[i]]
        lp = _sequence_logprob(spec, params, src[i:i + 1], mask[i:i + 1], seq, 1)
        assert lp == pytest.approx(b.log_prob[i], abs=1e-9)


def test_wide_beam_finds_the_exact_best_sequence():
    """With beam_size >= V^(L-1) and no EOS, beam search is exhaustive."""
    vocab, L = 4, 3
    spec, params, src, mask = _small_token_model(11, "luong", cell="lstm", vocab=vocab)
    b = Q.beam_search(spec, params, src, mask, beam_size=vocab ** (L - 1), max_len=L, bos_id=1)
    for i in range(len(src)):
        best = max(_sequence_logprob(spec, params, src[i:i + 1], mask[i:i + 1], list(s), 1)
                   for s in itertools.product(range(vocab), repeat=L))
        assert b.log_prob[i] == pytest.approx(best, abs=1e-9)


def test_length_penalty_prefers_longer_hypotheses():
    spec, params, src, mask = _small_token_model(7, "luong")
    raw = Q.beam_search(spec, params, src, mask, beam_size=4, max_len=6, bos_id=1, eos_id=2)
    long = Q.beam_search(spec, params, src, mask, beam_size=4, max_len=6, bos_id=1, eos_id=2, length_penalty=2.0)
    # same candidates, only the final choice differs: never shorter, never a higher raw score
    assert (long.lengths >= raw.lengths).all()
    assert (raw.log_prob >= long.log_prob - 1e-12).all()


@pytest.mark.parametrize("attention", [None, "luong"])
def test_generate_equals_forward_without_teacher_forcing(attention):
    rng = np.random.default_rng(8)
    spec = Q.Seq2SeqSpec(cell="lstm", hidden_size=5, src_dim=1, tgt_dim=1, attention=attention)
    params = Q.init_params(spec, rng, dtype=np.float64)
    src = rng.standard_normal((B, TS, 1))
    gen = Q.generate(spec, params, src, steps=TO, start_value=0.5)
    tgt_in = np.full((B, TO, 1), 0.5)
    out, cache = Q.forward(spec, params, src, None, tgt_in, teacher_forcing=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(gen.outputs, out, atol=1e-12)
    if attention:
        np.testing.assert_allclose(gen.attention, cache["attention"], atol=1e-12)
        assert gen.attention.shape == (B, TO, TS)


def test_float32_and_spec_validation():
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=4, src_vocab=V, tgt_vocab=V, embed_dim=3, attention="luong")
    params = Q.init_params(spec, np.random.default_rng(0))
    assert all(v.dtype == np.float32 for v in params.values())
    src, mask, tgt_in, tgt_out, tgt_mask = _token_batch(np.random.default_rng(0))
    out, cache = Q.forward(spec, params, src, mask, tgt_in, teacher_forcing=0.5, rng=np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == (B, TO, V)
    grads = Q.backward(spec, params, losses.softmax_cross_entropy(out, tgt_out, tgt_mask)[1], cache)
    assert all(grads[k].dtype == np.float32 for k in params)
    with pytest.raises(ValueError, match="unknown cell 'nope'"):
        Q.Seq2SeqSpec(cell="nope")
    with pytest.raises(ValueError, match="no option 'per_gate'"):
        Q.Seq2SeqSpec(cell="gru", cell_options={"per_gate": True})
    with pytest.raises(ValueError):
        Q.Seq2SeqSpec(attention="dot")
    with pytest.raises(ValueError):
        Q.forward(spec, params, src, mask, tgt_in, teacher_forcing=1.5)


# ----------------------------------------------------------------------------------------
# training demonstration
# ----------------------------------------------------------------------------------------


def train_reverse_digits(attention, steps=300, seed=0, hidden=32, batch=64, lr=0.01):
    """Train a GRU seq2seq on reverse_digits (length 5-6, 8 digits); returns (spec, params, task)."""
    from rnnlab.engine.optim import make_optimizer

    rng = np.random.default_rng(seed)
    task = S.reverse_digits(4000, 200, 500, rng, min_len=5, max_len=6, n_digits=8)
    m = task.meta
    spec = Q.Seq2SeqSpec(cell="gru", hidden_size=hidden, src_vocab=m["vocab_size"], tgt_vocab=m["vocab_size"],
                         embed_dim=16, attention=attention, pad_id=m["pad_id"])
    params = Q.init_params(spec, rng)
    opt = make_optimizer("adam", lr=lr)
    tr = task.train
    for _ in range(steps):
        bt = tr.batch(rng.integers(0, len(tr), size=batch))
        out, cache = Q.forward(spec, params, bt.src, bt.src_mask, bt.tgt_in)
        _, dout = losses.softmax_cross_entropy(out, bt.tgt_out, bt.tgt_mask)
        opt.step(params, Q.backward(spec, params, dout, cache))
    return spec, params, task


def evaluate_reverse_digits(spec, params, task):
    """(greedy token accuracy over the target steps incl. EOS, fraction of output steps whose
    attention argmax is the mirrored source position, mean attention (T_out, Ts) of length-6 rows)."""
    te, m = task.test, task.meta
    dec = Q.greedy_decode(spec, params, te.src, te.src_mask, m["max_out_len"], m["bos_id"], m["eos_id"])
    correct = (dec.tokens == te.tgt_out) & (te.tgt_mask > 0)
    acc = float(correct.sum() / te.tgt_mask.sum())
    if dec.attention is None:
        return acc, None, None
    L = S.src_lengths(te)
    hits = total = 0
    for b in range(len(te)):
        n = min(L[b], dec.lengths[b])
        for t in range(n):
            hits += int(dec.attention[b, t].argmax() == L[b] - 1 - t)
            total += 1
    full = L == m["max_len"]
    return acc, hits / total, dec.attention[full].mean(axis=0)


@pytest.mark.slow  # about 25 s on a shared CPU
def test_train_reverse_digits_with_attention():
    spec, params, task = train_reverse_digits("luong", steps=300)
    acc, mirrored, mean_attn = evaluate_reverse_digits(spec, params, task)
    chance = task.meta["chance_accuracy"]
    assert acc > 0.8, acc
    assert acc > 5 * chance
    assert mirrored > 0.8, mirrored
    L = task.meta["max_len"]
    # anti-diagonal dominance of the mean attention over full-length sources
    assert (mean_attn[:L].argmax(axis=1) == np.arange(L)[::-1]).all()


def test_train_sine2cosine_with_decaying_teacher_forcing():
    """Scheduled sampling from p = 1 down to 0; the free-running generate MSE must drop a lot."""
    from rnnlab.engine.optim import make_optimizer

    rng = np.random.default_rng(0)
    task = S.sine2cosine(1000, 50, 100, rng, t_in=12, offset="same")
    spec = Q.Seq2SeqSpec(cell="lstm", hidden_size=16, src_dim=1, tgt_dim=1, attention="luong")
    params = Q.init_params(spec, rng)
    opt = make_optimizer("adam", lr=0.01)
    te = task.test

    def free_running_mse():
        g = Q.generate(spec, params, te.src, te.tgt_out.shape[1], task.meta["start_value"])
        return float(np.mean((g.outputs - te.tgt_out) ** 2))

    before = free_running_mse()
    for i in range(150):
        b = task.train.batch(rng.integers(0, len(task.train), 32))
        out, cache = Q.forward(spec, params, b.src, b.src_mask, b.tgt_in, teacher_forcing=max(0.0, 1 - i / 100),
                               rng=rng)
        _, dout = losses.mse(out, b.tgt_out)
        opt.step(params, Q.backward(spec, params, dout, cache))
    after = free_running_mse()
    assert after < 0.1 and after < before / 5, (before, after)
