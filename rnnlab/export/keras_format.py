"""`rnnlab export --format keras`: a Keras 3 model definition (keras_model.py) with weights.npz and architecture.json.

``keras_model.py`` builds ``RnnlabKerasModel`` from Keras' own layers: LSTM / GRU (reset_after) /
SimpleRNN for the cells that declare ``STANDALONE["keras"]`` (their module converts torch's weight layout:
kernels transposed, the two biases summed, the GRU's gates reordered), Embedding, LayerNormalization,
BatchNormalization and Dense, with pooling last / mean / max / none; the weights are the NumPy export's
(``numpy_format.write_arrays``) and are converted when the model loads. Keras' recurrent layers carry their
state over masked steps, as the engine does; their outputs there are set to 0, and the reverse direction
is ``go_backwards`` with its outputs flipped back. Refused in one line: seq2seq models, zoneout, cells
without a Keras layer, and blocks Keras has no layer for here (Conv1D, self-attention, attention pooling).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.export import architecture, keras_snippets, numpy_format
from rnnlab.export.base import ExportError, ExportOptions, Written
from rnnlab.runtime.io import write_text

NAME = "keras"
SUMMARY = "keras_model.py (Keras 3, any backend) with weights.npz: lstm / gru / rnn models without conv or attention"
FILES = ("keras_model.py", "weights.npz", "architecture.json")


def write(run, folder: Path, options: ExportOptions) -> Written:
    return write_model(run.spec, run.params, run.state, folder)


def write_model(spec, params: dict, state: dict, folder, fmt: str = NAME) -> Written:
    """Write the three files of `spec` with `params` and `state` into `folder` (ExportError for what Keras
    layers do not express, naming `fmt`: the formats built on this one say theirs)."""
    arch = architecture.describe(spec, params, fmt)
    if arch["model"] != "sequence":
        raise ExportError(f"--format {fmt}: seq2seq models are not supported; use --format numpy")
    text = source(arch, fmt)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "keras_model.py", text)
    numpy_format.write_arrays(folder, arch, {**params, **state})
    return Written(files=list(FILES), facts={"inputs": ["x", "mask"], "needs": ["keras>=3"]})


def source(arch: dict, fmt: str = NAME) -> str:
    """keras_model.py: prelude, the cell's Keras layer, the blocks the model uses, the model class."""
    for i, block in enumerate(arch["blocks"]):
        if block["kind"] not in keras_snippets.BLOCKS:
            raise ExportError(f"--format {fmt}: block {block['kind']} (block {i}) has no Keras layer here; "
                              "use --format numpy or torch")
        if block.get("zoneout"):
            raise ExportError(f"--format {fmt}: zoneout (recurrent layer {block['layer']}) has no Keras layer; "
                              "use --format numpy or torch")
    kinds = list(dict.fromkeys(b["kind"] for b in arch["blocks"]))
    parts = [keras_snippets.PRELUDE, architecture.cell_source(arch["spec"]["cell"], "keras", fmt)]
    parts += [keras_snippets.BLOCKS[k] for k in kinds]
    for table in ("BUILD", "WEIGHTS", "RUN"):
        defined = [k for k in kinds if f"def {table.lower()}_{k}(" in keras_snippets.BLOCKS[k]]
        parts.append(f"{table} = {{\n" + "".join(f'    "{k}": {table.lower()}_{k},\n' for k in defined) + "}")
    parts.append(keras_snippets.MODEL)
    return "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
