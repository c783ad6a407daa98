"""Pictures of readable cells (Karpathy, Johnson & Fei-Fei 2015): one unit's activation drawn over the text
it read, as HTML (every character's background coloured by the activation), and the gates' saturation
scatter (matplotlib, Agg backend). The numbers come from ``rnnlab.analysis.text_cells``.

matplotlib is imported inside `saturation_plot` only, so the HTML needs none of it.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

# The paper's colours: red for positive activations, blue for negative, white at 0.
POSITIVE, NEGATIVE = (214, 39, 40), (31, 119, 180)


def unit_html(text: str, values: np.ndarray, title: str) -> str:
    """An HTML fragment: `title`, then every character of `text` as one <span> whose background is red
    (positive) or blue (negative) with opacity |v| / scale, and whose tooltip is the value. scale = 1 for
    values within [-1, 1] (tanh states: a pale character is a weak activation, on an absolute scale),
    else max |v|. Newlines are drawn as a blank span followed by a line break."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) != len(text):
        raise ValueError(f"unit_html: {len(v)} values for {len(text)} characters")
    finite = np.where(np.isfinite(v), v, 0.0)
    scale = max(1.0, float(np.abs(finite).max(initial=0.0)))
    spans = []
    for ch, a, raw in zip(text, finite / scale, v, strict=True):
        rgb = POSITIVE if a >= 0 else NEGATIVE
        shown = " " if ch == "\n" else html.escape(ch)
        spans.append(f'<span style="background:rgba({rgb[0]},{rgb[1]},{rgb[2]},{abs(a):.2f})" '
                     f'title="{raw:.3f}">{shown}</span>' + ("<br>" if ch == "\n" else ""))
    return (f'<div class="unit-text"><div><b>{html.escape(title)}</b></div>'
            f'<div style="font-family:monospace;white-space:pre-wrap;line-height:1.4">{"".join(spans)}</div></div>')


def saturation_plot(rows: list[dict], path: Path) -> Path:
    """`text_cells.gate_saturation` rows as the paper's scatter: one panel per gate, one point per unit at
    (fraction right-saturated, fraction left-saturated), coloured by layer. Points lie under the
    diagonal x + y = 1 (a step cannot be both)."""
    from rnnlab.report.plots import plt, save_figure

    if not rows:
        raise ValueError("saturation_plot: no rows (the model shows no sigmoid gates)")
    gates = list(dict.fromkeys(r["gate"] for r in rows))
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, axes = plt.subplots(1, len(gates), figsize=(3.2 * len(gates), 3.4), squeeze=False, sharey=True)
    for ax, gate in zip(axes[0], gates, strict=True):
        for j, layer in enumerate(layers):
            pts = [(r["right"], r["left"]) for r in rows if r["gate"] == gate and r["layer"] == layer]
            if pts:
                x, y = zip(*pts, strict=True)
                ax.scatter(x, y, s=12, alpha=0.7, color=f"C{j}", label=layer)
        ax.plot([0, 1], [1, 0], color="grey", ls=":", lw=1)
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="fraction right-saturated", title=f"gate {gate}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction left-saturated")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    return save_figure(fig, Path(path))
