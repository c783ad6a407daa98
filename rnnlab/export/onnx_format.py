"""ONNX export: hand-built graphs (opset 17, ir_version 8) that onnxruntime runs to the engine's numbers.

Each block lowers itself (``Block.lower``, ``rnnlab.engine.lowering``) onto `onnx_graph.OnnxGraph`; the
recurrent layers become fused ``LSTM`` / ``GRU`` / ``RNN`` nodes, or a ``Scan`` over the cell's step
(cells without a fused op, zoneout). This module states the graphs' contract and writes the files.

Sequence models (``model.onnx``)
    inputs   ``x`` float32 [batch, seq, D], or ``tokens`` int64 [batch, seq] with an embedding;
             ``mask`` float32 [batch, seq]: 1 = a real step, each row one run of real steps padded after
             (post) or before (pre); an all-zero row is an empty sequence
    output   ``y`` float32 [batch, output_size], or [batch, seq, output_size] with pooling "none" (padded
             steps exactly 0): the raw outputs (logits, or regression values in the scaled units the
             model was trained in), ``model.forward(..., train=False)``'s numbers
Seq2seq (``encoder.onnx``, ``decoder.onnx``; the decoding loop runs in Python, `greedy_decode_onnx`)
    encoder  ``src`` (int64 [batch, src_seq] or float32 [batch, src_seq, src_dim]), ``src_mask`` ->
             ``enc_hs`` [batch, src_seq, H] and the final states (``h``, and ``c`` for an LSTM)
    decoder  one step: ``prev`` (int64 [batch] token ids or float32 [batch, tgt_dim] values), the states,
             ``enc_hs``, ``src_mask`` -> ``out`` (logits / values), ``next_h`` (``next_c``), and
             ``attention`` [batch, src_seq] with attention

``--quantize int8`` adds ``<name>.int8.onnx`` per graph (onnxruntime's dynamic quantization, int8 weights):
LSTM becomes DynamicQuantizeLSTM, MatMul / Gather / Conv integer ops; GRU, RNN and Scan stay float.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from rnnlab.export.base import ExportError, ExportOptions, Written

NAME = "onnx"
SUMMARY = "ONNX graphs (opset 17; fused LSTM/GRU/RNN nodes) for onnxruntime; --quantize int8 adds INT8 copies"
QUANTIZE = ("int8",)
PADDING_NOTE = ("mask: 1 = real step; each row one contiguous run of real steps, padded after (post) or "
                "before (pre); padded steps carry the recurrent state and do not change a prediction")
RECURRENT_OPS = ("LSTM", "GRU", "RNN", "Scan")


# ----------------------------------------------------------------------------------------
# building the graphs
# ----------------------------------------------------------------------------------------


def build_model(spec, params: dict, state: dict | None = None, metadata: dict[str, str] | None = None):
    """A sequence model (`rnnlab.engine.model.ModelSpec`) as an onnx.ModelProto (module docstring)."""
    from onnx import TensorProto

    from rnnlab.engine import lowering
    from rnnlab.engine import model as M
    from rnnlab.engine.blocks import Flow
    from rnnlab.export.onnx_graph import OnnxGraph

    g = OnnxGraph({**params, **(state or {})})
    tokens = spec.vocab_size is not None
    if tokens:
        inp = g.input("tokens", TensorProto.INT64, ["batch", "seq"])
    else:
        inp = g.input("x", TensorProto.FLOAT, ["batch", "seq", spec.input_size])
    align = g.start_sequence(g.input("mask", TensorProto.FLOAT, ["batch", "seq"]))
    flow = Flow(align.to_left(inp, 2 if tokens else 3))
    try:
        for block in M.blocks_of(spec):
            flow = block.lower(g, flow)
    except lowering.Unsupported as exc:
        raise ExportError(f"ONNX export: {exc}") from None
    if spec.per_step:
        g.output(align.to_caller(flow.h, 3), "y", TensorProto.FLOAT, ["batch", "seq", spec.output_size])
    else:
        g.output(flow.h, "y", TensorProto.FLOAT, ["batch", spec.output_size])
    inputs = "tokens: int64 [batch, seq]" if tokens else f"x: float32 [batch, seq, {spec.input_size}]"
    shape = "[batch, seq, {}]" if spec.per_step else "[batch, {}]"
    props = {"rnnlab.model": "sequence", "rnnlab.spec": json.dumps(spec.to_dict(), sort_keys=True),
             "rnnlab.inputs": f"{inputs}; mask: float32 [batch, seq]",
             "rnnlab.outputs": "y: float32 " + shape.format(spec.output_size), "rnnlab.padding": PADDING_NOTE,
             **(metadata or {})}
    return g.model("rnnlab_sequence", "rnnlab sequence model: raw outputs y from x or tokens and mask", props)


def build_seq2seq(spec, params: dict, metadata: dict[str, str] | None = None):
    """A seq2seq model (`rnnlab.engine.seq2seq.Seq2SeqSpec`) as (encoder, decoder) onnx.ModelProtos."""
    from onnx import TensorProto

    from rnnlab.engine import cells, lowering
    from rnnlab.engine import seq2seq as Q
    from rnnlab.export.onnx_graph import OnnxGraph

    F, H = TensorProto.FLOAT, spec.hidden_size
    names = cells.get(spec.cell).state_names
    props = {"rnnlab.model": "seq2seq", "rnnlab.spec": json.dumps(dataclasses.asdict(spec), sort_keys=True),
             "rnnlab.states": ",".join(names), "rnnlab.padding": PADDING_NOTE.replace("mask", "src_mask", 1),
             **(metadata or {})}
    try:
        enc = OnnxGraph(params)
        if spec.tokens_in:
            src = enc.input("src", TensorProto.INT64, ["batch", "src_seq"])
        else:
            src = enc.input("src", F, ["batch", "src_seq", spec.src_dim])
        align = enc.start_sequence(enc.input("src_mask", F, ["batch", "src_seq"]))
        hs, state = Q.lower_encode(spec, enc, align.to_left(src, 2 if spec.tokens_in else 3))
        enc.output(align.to_caller(hs, 3), "enc_hs", F, ["batch", "src_seq", H])
        for n, s in zip(names, state, strict=True):
            enc.output(s, n, F, ["batch", H])

        dec = OnnxGraph(params)
        if spec.tokens_out:
            prev = dec.input("prev", TensorProto.INT64, ["batch"])
        else:
            prev = dec.input("prev", F, ["batch", spec.tgt_dim])
        states = tuple(dec.input(n, F, ["batch", H]) for n in names)
        memory = dec.input("enc_hs", F, ["batch", "src_seq", H])
        keep = dec.op("Cast", [dec.input("src_mask", F, ["batch", "src_seq"])], to=lowering.BOOL)
        out, new, weights = Q.lower_step(spec, dec, prev, states, memory, keep)
    except lowering.Unsupported as exc:
        raise ExportError(f"ONNX export: {exc}") from None
    dec.output(out, "out", F, ["batch", spec.out_size])
    for n, s in zip(names, new, strict=True):
        dec.output(s, f"next_{n}", F, ["batch", H])
    if weights is not None:
        dec.output(weights, "attention", F, ["batch", "src_seq"])
    return (enc.model("rnnlab_encoder", "rnnlab seq2seq encoder", {**props, "rnnlab.graph": "encoder"}),
            dec.model("rnnlab_decoder", "rnnlab seq2seq decoder: one step", {**props, "rnnlab.graph": "decoder"}))


# ----------------------------------------------------------------------------------------
# writing (rnnlab export)
# ----------------------------------------------------------------------------------------


def write(run, folder: Path, options: ExportOptions) -> Written:
    """model.onnx (sequence models) or encoder.onnx + decoder.onnx (seq2seq), each checked with
    onnx.checker (full_check) and, with options.quantize "int8", an .int8.onnx copy beside it."""
    import onnx

    from rnnlab.engine.seq2seq import Seq2SeqSpec
    from rnnlab.export.onnx_graph import IR_VERSION, OPSET

    if options.opset != OPSET:
        raise ExportError(f"ONNX export: opset {options.opset} is not supported (the graphs are built for {OPSET})")
    if options.quantize not in (None, *QUANTIZE):
        raise ExportError(f"ONNX export: quantize must be one of {', '.join(QUANTIZE)} (got '{options.quantize}')")
    meta = {"rnnlab.run": json.dumps(run.info, sort_keys=True, default=str)}
    if isinstance(run.spec, Seq2SeqSpec):
        graphs = dict(zip(("encoder.onnx", "decoder.onnx"), build_seq2seq(run.spec, run.params, meta), strict=True))
    else:
        graphs = {"model.onnx": build_model(run.spec, run.params, run.state, meta)}
    folder = Path(folder)
    out = Written(facts={"opset": OPSET, "ir_version": IR_VERSION, "graphs": {}})
    for fname, model in graphs.items():
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, folder / fname)
        out.files.append(fname)
        out.facts["graphs"][fname] = _io(model)
        if options.quantize == "int8":
            qname = fname.replace(".onnx", ".int8.onnx")
            note, facts = quantize_int8(folder / fname, folder / qname)
            out.files.append(qname)
            out.notes.append(note)
            out.facts.setdefault("int8", {})[qname] = facts
    return out


def _io(model) -> dict:
    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    return {"inputs": {vi.name: dims(vi) for vi in model.graph.input},
            "outputs": {vi.name: dims(vi) for vi in model.graph.output}}


def op_counts(model) -> Counter:
    """Node op types of a model, Scan bodies included ("domain::op" outside the default domain)."""
    from onnx import AttributeProto

    counts: Counter = Counter()

    def walk(graph):
        for n in graph.node:
            counts[f"{n.domain}::{n.op_type}" if n.domain else n.op_type] += 1
            for a in n.attribute:
                if a.type == AttributeProto.GRAPH:
                    walk(a.g)

    walk(model.graph)
    return counts


def quantize_int8(src: Path, dst: Path) -> tuple[str, dict]:
    """onnxruntime's dynamic quantization (int8 weights) of src into dst: (a note for the user, facts)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    before, after = op_counts(onnx.load(str(src))), op_counts(onnx.load(str(dst)))
    gone = {k: before[k] - after[k] for k in sorted(before) if before[k] > after[k]}
    new = {k: after[k] - before[k] for k in sorted(after) if after[k] > before[k]}
    kept = {k: after[k] for k in RECURRENT_OPS if after[k]}
    size, float_size = dst.stat().st_size, src.stat().st_size

    def listed(c):
        return ", ".join(f"{k} x{v}" for k, v in c.items()) or "nothing"

    note = (f"{dst.name}: replaced {listed(gone)} with {listed(new)}"
            + (f"; left float: {listed(kept)}" if kept else "")
            + f"; {size / 1024:.1f} kB (float {float_size / 1024:.1f} kB)")
    facts = {"nodes_before": dict(before), "nodes_after": dict(after), "quantized": gone, "added": new,
             "left_float": kept, "bytes": size, "float_bytes": float_size}
    return note, facts


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_dynamic advises pre-processing with logging.warning on the root logger, which would also
    install a stderr handler on it for good (logging.basicConfig): neither while it runs."""
    root, before = logging.getLogger(), logging.root.manager.disable
    guard = logging.NullHandler()
    root.addHandler(guard)
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)
        root.removeHandler(guard)


# ----------------------------------------------------------------------------------------
# running the graphs (onnxruntime)
# ----------------------------------------------------------------------------------------


def session(model_or_path, threads: int = 1):
    """An onnxruntime InferenceSession (CPU) of a ModelProto or a file, with `threads` intra-op threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only
    src = str(model_or_path) if isinstance(model_or_path, str | Path) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_sequence(sess, x, mask=None) -> np.ndarray:
    """y of a sequence model's session from x (B, T, D) floats or (B, T) token ids and the mask (B, T)
    (None: every step real)."""
    x = np.asarray(x)
    names = {i.name for i in sess.get_inputs()}
    feed = {"tokens": x.astype(np.int64)} if "tokens" in names else {"x": x.astype(np.float32)}
    m = np.ones(x.shape[:2], dtype=np.float32) if mask is None else np.asarray(mask, dtype=np.float32)
    check_padding(m)
    return sess.run(["y"], {**feed, "mask": m})[0]


def check_padding(mask: np.ndarray) -> None:
    """The graphs take each row's real steps as one run at its start (post-padding, `sequence_lens`) or at
    its end (pre-padding, rotated in the graph). A mask with a hole inside a row would give wrong numbers
    without an error, so it is refused in one line (the engine runs any mask)."""
    real = mask != 0
    T = real.shape[1]
    n = real.sum(axis=1, keepdims=True)
    steps = np.arange(T)
    bad = ~((real == (steps < n)).all(axis=1) | (real == (steps >= T - n)).all(axis=1))
    if bad.any():
        raise ExportError(f"mask row {int(np.argmax(bad))}: its real steps are not one run at the start or the "
                          "end of the row; the ONNX graph takes pre- or post-padding only (use --backend engine)")


class OnnxSteps:
    """The encoder and decoder sessions as a step source for the engine's decoding loops
    (`rnnlab.engine.seq2seq.Steps`), so decoding follows the engine's rules exactly."""

    def __init__(self, encoder, decoder):
        from rnnlab.engine.seq2seq import Seq2SeqSpec

        meta = encoder.get_modelmeta().custom_metadata_map
        self.spec = Seq2SeqSpec(**json.loads(meta["rnnlab.spec"]))
        self.states = meta["rnnlab.states"].split(",")
        self.encoder, self.decoder = encoder, decoder
        self.dtype = np.dtype(np.float32)
        self._outputs = [o.name for o in decoder.get_outputs()]

    def encode(self, src, src_mask) -> dict:
        src = np.asarray(src)
        src = src.astype(np.int64) if self.spec.tokens_in else src.astype(np.float32)
        mask = np.ones(src.shape[:2], np.float32) if src_mask is None else np.asarray(src_mask, np.float32)
        out = dict(zip([o.name for o in self.encoder.get_outputs()],
                       self.encoder.run(None, {"src": src, "src_mask": mask}), strict=True))
        return {"hs": out["enc_hs"], "mask": mask, "state": tuple(out[n] for n in self.states)}

    def step(self, enc, state, prev):
        prev = np.asarray(prev)
        prev = prev.astype(np.int64) if self.spec.tokens_out else prev.astype(np.float32)
        feed = {"prev": prev, "enc_hs": enc["hs"], "src_mask": np.asarray(enc["mask"], np.float32),
                **{n: np.asarray(s, np.float32) for n, s in zip(self.states, state, strict=True)}}
        out = dict(zip(self._outputs, self.decoder.run(None, feed), strict=True))
        return out["out"], tuple(out[f"next_{n}"] for n in self.states), out.get("attention")


def greedy_decode_onnx(enc_sess, dec_sess, src, src_mask, max_len: int, bos: int, eos: int | None = None):
    """`rnnlab.engine.seq2seq.greedy_decode` on the exported graphs: a `Decoded`."""
    from rnnlab.engine import seq2seq as Q

    return Q.decode_greedy(OnnxSteps(enc_sess, dec_sess), src, src_mask, max_len, bos, eos)


def beam_search_onnx(enc_sess, dec_sess, src, src_mask, beam_size: int, max_len: int, bos: int,
                     eos: int | None = None, length_penalty: float = 0.0):
    """`rnnlab.engine.seq2seq.beam_search` on the exported graphs: a `Decoded`."""
    from rnnlab.engine import seq2seq as Q

    return Q.decode_beam(OnnxSteps(enc_sess, dec_sess), src, src_mask, beam_size, max_len, bos, eos, length_penalty)


def generate_onnx(enc_sess, dec_sess, src, steps: int, start_value, src_mask=None):
    """`rnnlab.engine.seq2seq.generate` (continuous outputs, free running) on the exported graphs: a `Decoded`."""
    from rnnlab.engine import seq2seq as Q

    return Q.decode_generate(OnnxSteps(enc_sess, dec_sess), src, steps, start_value, src_mask)
