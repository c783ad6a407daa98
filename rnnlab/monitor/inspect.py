"""What the monitors read of a model, behind one interface, so that every kind of model is watched
the same way: the sequence model (`SequenceInspector`) and the encoder-decoder (`Seq2SeqInspector`).

An inspector gives the fixed probe batch, the per-step gradient traces dL/dh_t on it (with the
real steps of each), the hidden states and activations each recurrent part shows, and the
weights that carry the state. Layer keys: "l0", "l0_reverse", ... for the sequence model;
"encoder" and "decoder" for seq2seq.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnlab.engine import cells
from rnnlab.engine import model as M
from rnnlab.engine import seq2seq as Q
from rnnlab.engine.model import forward, recurrent_weights, shows
from rnnlab.monitor.probe import make_probe


class SequenceInspector:
    def __init__(self, spec, data=None, loss_fn=None, loss_targets=None):
        self.spec, self.data, self.loss_fn, self.loss_targets = spec, data, loss_fn, loss_targets
        self.kind = getattr(data, "kind", "regression")
        self.num_layers, self.hidden_size, self.cell = spec.num_layers, spec.hidden_size, spec.cell
        # the bottom layer's weights drawn as heatmaps at the end
        self.heatmap_params = ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l0_reverse",
                               "rnn.weight_hh_l0_reverse")

    def probe(self, size: int):

        return make_probe(self.data, size)

    def recurrent_weights(self) -> list[tuple[str, str, cells.Recurrent]]:

        return recurrent_weights(self.spec)

    def time_traces(self, params, state, probe) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(layer key, dL/dh_t (T, B, H), real steps (T, B)) per recurrent layer and direction, bottom first."""

        out, cache = M.forward(self.spec, params, probe.x, probe.mask, train=False, state=state)
        targets = probe.y if self.loss_targets is None else self.loss_targets(self.kind, probe.y, out.dtype)
        _, dout = self.loss_fn(out, targets, mask=probe.target_mask)
        trace: dict[str, np.ndarray] = {}
        M.backward(self.spec, params, dout, cache, trace=trace)
        T, B = next(iter(trace.values())).shape[:2]
        real = np.ones((T, B), dtype=bool) if probe.mask is None else (np.asarray(probe.mask).T != 0)
        return [(layer, tr, real) for layer, tr in trace.items()]

    def shown(self, params, state, probe) -> tuple[dict[str, Any], np.ndarray]:
        """(what the model's blocks show: "states", "attention", ...; valid (B, T) real steps)."""

        _, cache = forward(self.spec, params, probe.x, probe.mask, train=False, state=state)
        B, T = np.shape(probe.x)[:2]
        valid = np.ones((B, T), dtype=bool) if probe.mask is None else np.asarray(probe.mask) > 0
        return shows(self.spec, cache), valid


class Seq2SeqInspector:
    """The encoder (layer 0, key "encoder") and decoder (layer 1, key "decoder") of `engine.seq2seq`,
    on a teacher-forced probe batch of the validation split."""

    num_layers = 2

    def __init__(self, spec, data):
        self.spec, self.data = spec, data
        self.kind = "multiclass" if spec.tokens_out else "regression"
        self.hidden_size, self.cell = spec.hidden_size, spec.cell
        self.heatmap_params = ("enc.weight_ih", "enc.weight_hh", "dec.weight_ih", "dec.weight_hh")

    def probe(self, size: int):
        split = self.data.val if len(self.data.val) else self.data.train
        return split.batch(slice(0, min(size, len(split)))) if len(split) else None

    def recurrent_weights(self):

        return Q.recurrent_weights(self.spec)

    def time_traces(self, params, state, probe):

        out, cache = Q.forward(self.spec, params, probe.src, probe.src_mask, probe.tgt_in)
        _, dout = Q.loss(self.spec, out, probe.tgt_out, probe.tgt_mask)
        trace: dict[str, np.ndarray] = {}
        Q.backward(self.spec, params, dout, cache, trace=trace)
        real = {"encoder": np.asarray(probe.src_mask).T > 0, "decoder": np.asarray(probe.tgt_mask).T > 0}
        return [(k, tr, real[k]) for k, tr in trace.items()]

    def shown(self, params, state, probe):

        _, cache = Q.forward(self.spec, params, probe.src, probe.src_mask, probe.tgt_in)
        shown = Q.shows(self.spec, cache)
        shown["states"][1]["valid"] = np.asarray(probe.tgt_mask) > 0  # the decoder's real target steps
        return shown, None


def of(model) -> SequenceInspector | Seq2SeqInspector:
    """An inspector as it is, or a sequence ModelSpec wrapped in one (the monitors' own tests pass specs)."""
    return model if hasattr(model, "time_traces") else SequenceInspector(model)
