"""Cells you can read: which hidden units of a character-level language model track a property of the text.

Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks", found single
LSTM cells that follow quotes, line length or the depth of brackets, and showed how often each gate sits
near 0 or 1. This module gives the numbers behind those pictures, as pure functions of arrays:

* `text_features`: per character, properties of the text a unit might track (inside quotes, position in
  the line, ...), each the value *after* reading the character, as the hidden state at that step is;
* `activations`: one long sequence of token ids through the model in evaluation mode, chunk by chunk
  with the recurrent state carried over (a long probe's caches would not fit at once), giving every
  recurrent layer's hidden states and the activations its cell shows (``model.shows``) over time;
* `correlated_units`: the units whose state correlates most (Pearson) with each feature;
* `gate_saturation`: per unit, how often each sigmoid gate is left (< low) or right (> high) saturated,
  the paper's saturation scatter.

The figures (a unit's activation over the text as HTML, the saturation scatter) are in
``rnnlab.report.text_cells_plots``.
"""

from __future__ import annotations

import string
import unicodedata

import numpy as np

from rnnlab.engine import model as M

# The sigmoid gates the built-in cells show: LSTM and LN-LSTM i, f, o; GRU r, z. Their candidates
# (LSTM g, GRU n) and the LSTM's cell state are tanh or unbounded, so "saturated at 0 or 1" means nothing.
SIGMOID_GATES = ("i", "f", "o", "r", "z")

FEATURES = {
    "inside_quotes": "1 from an opening \" up to the character before its closing \" (toggled at each \")",
    "inside_parentheses": "1 while more ( than ) have been read (the depth never drops below 0)",
    "position_in_line": "the character's column: characters since the last newline, 0 at a line start",
    "after_space": "1 when the previous character is whitespace (0 for the first character)",
    "is_space": "1 for whitespace (space, tab, newline, ...)",
    "is_upper": "1 for upper-case letters",
    "is_punctuation": "1 for ASCII punctuation and symbols (string.punctuation) and Unicode punctuation",
    "word_position": "characters since the word (a run of non-whitespace) began: 0 at its first, 0 on whitespace",
}


# --------------------------------------------------------------------------------------
# properties of the text
# --------------------------------------------------------------------------------------


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character of `text`, the float64 arrays (len(text),) named in FEATURES (described there).

    Stateful features hold the value after reading the character: an opening quote or bracket is
    already inside, a closing one already outside, as the hidden state at that step has seen it."""
    n = len(text)
    out = {name: np.zeros(n) for name in FEATURES}
    quoted, depth, column, word = False, 0, 0, 0
    prev_space = False
    for t, ch in enumerate(text):
        space = ch.isspace()
        if ch == '"':
            quoted = not quoted
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)  # an unmatched ) does not open a negative depth
        word = 0 if space or prev_space or t == 0 else word + 1  # 0 at a word's first character
        out["inside_quotes"][t] = quoted
        out["inside_parentheses"][t] = depth > 0
        out["position_in_line"][t] = column
        out["after_space"][t] = prev_space
        out["is_space"][t] = space
        out["is_upper"][t] = ch.isupper()
        out["is_punctuation"][t] = ch in string.punctuation or unicodedata.category(ch).startswith("P")
        out["word_position"][t] = word
        column = 0 if ch == "\n" else column + 1
        prev_space = space
    return out


# --------------------------------------------------------------------------------------
# the model's states over one long sequence
# --------------------------------------------------------------------------------------


def activations(spec: M.ModelSpec, params: dict, ids: np.ndarray, state: dict | None = None,
                chunk: int | None = None) -> dict[str, np.ndarray]:
    """Hidden states and cell activations of one sequence, time first (evaluation mode).

    ids: (T,) token ids (a spec with an embedding) or (T, D) inputs. state: the BatchNorm running
    statistics where the model has them. chunk: run `chunk` steps at a time, each chunk starting from
    the previous one's final states (None: all T at once); the result equals the unchunked one.

    Keys, per recurrent layer l (bottom first): "layer{l}" -> the cell's hidden state h (T, H), and
    "layer{l}.{name}" -> (T, H) for every activation the cell shows besides h: LSTM and LN-LSTM "i", "f",
    "g", "o", "c" (cell state), "tanh_c"; GRU "r", "z", "n"; RNN and IndRNN none (their only one is h).
    """
    if spec.bidirectional:
        raise ValueError("activations: a bidirectional model reads the future of every step; use a uni-directional one")
    x = np.asarray(ids)
    if x.ndim != (1 if spec.vocab_size is not None else 2) or len(x) == 0:
        shape = "(T,) token ids" if spec.vocab_size is not None else "(T, D) inputs"
        raise ValueError(f"activations: ids must be non-empty {shape} for this spec (got shape {x.shape})")
    T = len(x)
    step = T if chunk is None else int(chunk)
    if step < 1:
        raise ValueError(f"activations: chunk must be >= 1 (got {chunk})")
    if spec.conv_channels and step < T:
        raise ValueError("activations: the conv front reads steps before a chunk's start; use chunk=None")
    parts: dict[str, list[np.ndarray]] = {}
    carry = None
    for start in range(0, T, step):
        _, cache = M.forward(spec, params, x[None, start : start + step], state=state, initial_states=carry)
        carry = cache["final_states"]
        for view in M.shows(spec, cache)["states"]:
            key = f"layer{view['layer']}"
            parts.setdefault(key, []).append(view["hs"][0])
            for name, (_, a) in view["activations"].items():
                if name != "h":  # the RNN's only activation is its state, already under "layer{l}"
                    parts.setdefault(f"{key}.{name}", []).append(a[0])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _layer_and_name(key: str) -> tuple[str, str | None]:
    """"layer0" -> ("layer0", None); "layer0.f" -> ("layer0", "f")."""
    layer, dot, name = key.partition(".")
    return layer, (name if dot else None)


# --------------------------------------------------------------------------------------
# units that track a feature
# --------------------------------------------------------------------------------------


def pearson(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of every column of X (T, H) with y (T,), in float64; 0 where either has no variance."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    num = yc @ Xc
    den = np.sqrt((Xc * Xc).sum(axis=0) * (yc @ yc))
    # a constant unit or feature predicts nothing: r = 0, without 0/0 warnings
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def correlated_units(acts: dict[str, np.ndarray], features: dict[str, np.ndarray], top: int = 5) -> list[dict]:
    """Per feature, the `top` units by |r| over all hidden-state layers ("layer{l}" keys of `acts`), each a
    row {"feature", "layer" ("layer0"), "unit", "r"}, by |r| descending (ties: bottom layer, low unit first).
    The unit's states over the text are ``acts[row["layer"]][:, row["unit"]]``."""
    layers = [k for k in acts if _layer_and_name(k)[1] is None]
    rows: list[dict] = []
    for feature, y in features.items():
        y = np.asarray(y)
        found = []
        for layer in layers:
            X = np.asarray(acts[layer])
            if len(X) != len(y):
                raise ValueError(f"correlated_units: feature {feature!r} has {len(y)} steps, {layer} has {len(X)}")
            found += [(layer, u, float(r)) for u, r in enumerate(pearson(X, y))]
        order = sorted(range(len(found)), key=lambda i: -abs(found[i][2]))  # stable: ties keep layer/unit order
        rows += [{"feature": feature, "layer": found[i][0], "unit": found[i][1], "r": found[i][2]}
                 for i in order[:top]]
    return rows


# --------------------------------------------------------------------------------------
# gate saturation
# --------------------------------------------------------------------------------------


def gate_saturation(acts: dict[str, np.ndarray], low: float = 0.1, high: float = 0.9,
                    gates: tuple[str, ...] = SIGMOID_GATES) -> list[dict]:
    """Per layer, sigmoid gate (the "layer{l}.{gate}" keys of `acts` whose gate is in `gates`) and unit,
    the fraction of steps with the gate < low ("left", saturated shut) and > high ("right", saturated
    open): rows {"layer", "gate", "unit", "left", "right"}. A unit with left near 1 is a gate that is
    almost always closed; right near 1, one almost always open (e.g. a forget gate that remembers)."""
    rows: list[dict] = []
    for key, a in acts.items():
        layer, gate = _layer_and_name(key)
        if gate not in gates:
            continue
        a = np.asarray(a)
        if len(a) == 0:
            continue
        left, right = (a < low).mean(axis=0), (a > high).mean(axis=0)
        rows += [{"layer": layer, "gate": gate, "unit": u, "left": float(left[u]), "right": float(right[u])}
                 for u in range(a.shape[1])]
    return rows
