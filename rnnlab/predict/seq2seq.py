"""A seq2seq model (`rnnlab.engine.seq2seq`) applied to new sources: read as the data set encodes them
(`rnnlab.data.inputs`: digit sequences, source series), decoded with the run's own settings (the test
report's `decode_sources`: beam search with train.beam_size > 1, else greedy, up to the data's max_out_len;
continuous outputs generated for the data's t_out steps from its start_value) on the engine or on the
encoder and decoder graphs in onnxruntime, and laid out by `rnnlab.predict.frames.decoded_frame`."""

from __future__ import annotations

import numpy as np


def predict(run, source, backend: str):
    """`TrainedRun.predict` of a seq2seq run on backend "engine" or "onnx"."""
    from rnnlab.data import inputs as reader
    from rnnlab.predict import backends
    from rnnlab.predict.frames import decoded_frame
    from rnnlab.train.tasks.seq2seq_report import decode_sources

    meta, train = run.info.get("data", {}), run.config.train
    got = reader.read(source, run.config.data, meta, np.dtype(train.dtype))
    _check_fits(run.spec, got.x)
    steps = backends.steps(backend, run.spec, run.params, run.graphs)
    beam = train.beam_size if run.spec.tokens_out else 1
    dec = decode_sources(steps, got.x, got.mask, meta, train.eval_batch_size, beam)
    frame = decoded_frame(dec, got)
    how = ("greedy" if beam == 1 else f"beam search (beam_size {beam})") if run.spec.tokens_out else \
        f"{meta['t_out']} steps generated from start value {meta.get('start_value', 0.0)}"
    frame.attrs["notes"] = [*got.notes, f"{len(got)} sources decoded on the {backend} backend: {how}"]
    return frame


def _check_fits(spec, x: np.ndarray) -> None:
    """Sources the encoder reads: token ids of its vocabulary, or values of its width (one line if not)."""
    from rnnlab.data.base import DataError

    if spec.tokens_in:
        if x.ndim != 2 or (x.size and (x.min() < 0 or x.max() >= spec.src_vocab)):
            raise DataError(f"the sources must be token ids (N, T) in 0..{spec.src_vocab - 1} for this model")
    elif x.ndim != 3 or x.shape[2] != spec.src_dim:
        raise DataError(f"the sources have shape {x.shape}, but the model reads (N, T, {spec.src_dim})")
