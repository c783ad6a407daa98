"""Model configurations for the export tests: every pair of factor values (pairwise covering), or the full
product of the structural factors (slow suite), built tiny with random parameters, and padded batches.

A configuration is a dict of factor -> value name; ``spec_of`` turns it into a ModelSpec, ``model_of``
adds random parameters and BatchNorm running statistics (not the initial 0 / 1), ``inputs_of`` a batch.
"""

from __future__ import annotations

import itertools

import numpy as np

from rnnlab.engine import model as M

# cell variants: (cell, cell options / nonlinearity)
CELLS = {
    "rnn_tanh": ("rnn", {"nonlinearity": "tanh"}), "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "lstm": ("lstm", {}), "gru": ("gru", {}), "indrnn_relu": ("indrnn", {}),
    "indrnn_tanh": ("indrnn", {"nonlinearity": "tanh"}), "ln_lstm": ("ln_lstm", {}),
    "ln_lstm_whole": ("ln_lstm", {"cell_options": {"per_gate": False}}),
}
DIRECTIONS = {"uni": {}, **{m: {"bidirectional": True, "merge_mode": m} for m in ("concat", "sum", "mean", "mul")}}
FACTORS = {
    "cell": list(CELLS),
    "direction": list(DIRECTIONS),
    "layers": ["1", "2"],
    "pooling": ["last", "mean", "max", "attention", "none"],
    "norm": ["none", "layer", "batch"],
    "conv": ["none", "k2d2", "k3d1"],
    "embedding": ["no", "yes"],
    "attention": ["none", "heads2", "heads1_causal"],
    "zoneout": ["0", "0.25"],
    "dropout": ["0", "0.3"],  # every dropout (recurrent too): the identity in evaluation, but another runner
}
STRUCTURE = ("cell", "direction", "layers", "pooling", "norm")  # the slow suite's full product

H, D, V, O = 4, 3, 7, 2  # hidden size, input size (embedding dim), vocabulary, outputs


def valid(case: dict) -> bool:
    """Self-attention needs a pooling other than last (the spec refuses the pair)."""
    return not (case.get("attention", "none") != "none" and case.get("pooling") == "last")


def pairwise(factors: dict = FACTORS) -> list[dict]:
    """A greedy covering array: every valid pair of values of two factors is in some case."""
    names = list(factors)
    todo = {((a, va), (b, vb)) for a, b in itertools.combinations(names, 2) for va in factors[a] for vb in factors[b]
            if valid({a: va, b: vb})}
    cases = []
    while todo:
        (a, va), (b, vb) = min(todo, key=lambda p: (names.index(p[0][0]), names.index(p[1][0]), p))
        case = {a: va, b: vb}
        for name in names:
            if name in case:
                continue
            options = [v for v in factors[name] if valid({**case, name: v})]
            case[name] = max(options, key=lambda v: sum(((n, case[n]), (name, v)) in todo or ((name, v), (n, case[n]))
                                                         in todo for n in case))
        todo -= {((x, case[x]), (y, case[y])) for x, y in itertools.combinations(names, 2)}
        cases.append(case)
    return cases


def product(factors: dict = FACTORS, structure=STRUCTURE) -> list[dict]:
    """Every combination of the structural factors, the other factors' values taken in turn."""
    rest = [n for n in factors if n not in structure]
    out = []
    for k, values in enumerate(itertools.product(*(factors[n] for n in structure))):
        case = dict(zip(structure, values, strict=True))
        case.update({n: factors[n][(k + j) % len(factors[n])] for j, n in enumerate(rest)})
        if not valid(case):
            case["attention"] = "none"
        out.append(case)
    return out


def case_id(case: dict) -> str:
    return "-".join(case[n] for n in FACTORS)


def spec_of(case: dict) -> M.ModelSpec:
    cell, opts = CELLS[case["cell"]]
    conv = {"none": {}, "k2d2": {"conv_channels": 3, "conv_kernel": 2, "conv_dilation": 2},
            "k3d1": {"conv_channels": 2, "conv_kernel": 3, "conv_dilation": 1}}[case["conv"]]
    heads = {"none": {}, "heads2": {"self_attention_heads": 2},
             "heads1_causal": {"self_attention_heads": 1, "self_attention_causal": True}}[case["attention"]]
    p = float(case["dropout"])
    return M.ModelSpec(
        cell=cell, input_size=D, hidden_size=H, output_size=O, num_layers=int(case["layers"]),
        pooling=case["pooling"], layer_norm=case["norm"] == "layer", batch_norm=case["norm"] == "batch",
        vocab_size=V if case["embedding"] == "yes" else None, zoneout=float(case["zoneout"]),
        input_dropout=p, dropout=p, output_dropout=p, recurrent_dropout=p,
        **opts, **DIRECTIONS[case["direction"]], **conv, **heads)


def model_of(spec: M.ModelSpec, seed: int = 0, dtype=np.float64):
    """(params, state): random parameters (LayerNorm / BatchNorm gains and biases too, so they matter)
    and running statistics away from their initial values."""
    rng = np.random.default_rng(seed)
    params = {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(dtype) for k, v in M.init_params(spec, rng).items()}
    state = {k: (v + (0.5 + rng.random(v.shape) if k.endswith("var") else rng.standard_normal(v.shape))).astype(dtype)
             for k, v in M.init_state(spec).items()}
    return params, state


# masks of a B = 3, T = 5 batch: post-, pre-padded and full; holes, contiguous in the middle and empty
MASKS = {
    "none": None,
    "post_pre_full": np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]),
    "holes_middle_empty": np.array([[1, 0, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]),
}


def inputs_of(spec: M.ModelSpec, seed: int = 1, B: int = 3, T: int = 5, dtype=np.float64):
    """x (B, T, D) or token ids (B, T); padded steps hold junk (they must not matter)."""
    rng = np.random.default_rng(seed)
    if spec.vocab_size is not None:
        return rng.integers(0, spec.vocab_size, (B, T))
    return rng.standard_normal((B, T, spec.input_size)).astype(dtype)


def cell_variants() -> list[tuple[str, dict]]:
    """Every registered cell with its default options, and with each other choice of each option."""
    from rnnlab.engine import cells

    out = []
    for name in cells.names():
        out.append((name, {}))
        for key, opt in cells.get(name).options.items():
            out += [(name, {key: c}) for c in opt.choices or () if c != opt.default]
    return out


def variant_id(v) -> str:
    return v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()) or "defaults"


def cell_inputs(name: str, options: dict, seed: int = 0):
    """(cell, resolved options, params, x (2, D), state) with weights larger than the init (gates far from 0.5)."""
    from rnnlab.engine import cells

    cell = cells.get(name)
    opts = cell.resolve(options)
    rng = np.random.default_rng(seed)
    p = {k: 1.7 * v + 0.2 * rng.standard_normal(v.shape) for k, v in cell.init_params(rng, D, H, np.float64,
                                                                                      **opts).items()}
    state = tuple(0.6 * rng.standard_normal((2, H)) for _ in range(cell.num_states))
    return cell, opts, p, rng.standard_normal((2, D)), state
