"""Cells you can read, for a character-level language model's test report (Karpathy, Johnson and Fei-Fei 2015).

On a probe (the first PROBE characters of the test split, read as one stream): every hidden unit's activation
per character, the units that correlate most with simple text features (inside quotes, inside parentheses,
position in line, after a space, ...; `rnnlab.analysis.text_cells`; a feature constant over the probe, such as
parentheses in a text without any, is left out), and the gates' saturation per unit.
Files for the run folder: units.csv (feature, layer, unit, r), gate_saturation.csv (layer, gate, unit, left,
right) and unit_activations.csv (step, char, then the best unit of each feature), which the HTML report
draws as colour over the probe text; the saturation scatter goes to plots/gate_saturation.png.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnlab.analysis import text_cells as tc

PROBE = 20_000  # characters the correlations are measured over
SHOWN = 2000  # characters of them in unit_activations.csv (the report draws the first ones)
TOP = 5


def probe_text(ids: np.ndarray, vocab: list[str]) -> str:
    """One character per token (multi-character tokens such as <oov> shown as "?"), so steps align."""
    return "".join(v if len(v) == 1 else "?" for v in (vocab[int(i)] for i in ids))


def readable_cells(spec, params, state, data) -> tuple[dict[str, Any], dict[str, Any]]:
    """(files, tables) of the cells analysis; empty for word-level or bidirectional models."""
    import pandas as pd

    meta = data.meta
    if meta.get("level") != "char" or spec.bidirectional or spec.vocab_size is None:
        return {}, {}
    ids = data.test.x.reshape(-1)[:PROBE]
    text = probe_text(ids, meta["vocab"])
    acts = tc.activations(spec, params, ids, state=state or None, chunk=500)
    features = {k: v for k, v in tc.text_features(text).items() if np.ptp(v) > 0}
    units = tc.correlated_units(acts, features, top=TOP)
    saturation = tc.gate_saturation(acts)
    n = min(SHOWN, len(text))
    shown = pd.DataFrame({"step": np.arange(n), "char": list(text[:n])})
    for row in units:
        col = f"{row['layer']}.u{row['unit']}"
        if col not in shown:
            shown[col] = acts[row["layer"]][:n, row["unit"]]
    files = {"units.csv": pd.DataFrame(units, columns=["feature", "layer", "unit", "r"]),
             "unit_activations.csv": shown}
    if saturation:
        files["gate_saturation.csv"] = pd.DataFrame(saturation)
    return files, {"saturation": saturation}
