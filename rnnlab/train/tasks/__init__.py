"""Task adapters: what the fit loop needs of a task, behind one interface (`base.TaskAdapter`).

`for_data(cfg, data, streams)` picks the adapter for a loaded data set: the sequence model
(regression and classification, `sequence.SequenceTask`), the same on one contiguous stream (language
models, echo: token-level metrics and stateful truncated BPTT, `stream.StreamTask`) or the encoder-decoder
(`seq2seq.Seq2SeqTask`). A new kind of task is a new module here and a line in ADAPTERS.
"""

from __future__ import annotations

from rnnlab.data.registry import is_seq2seq


def for_data(cfg, data, streams):
    # imported here, not at the top: the adapters import this package's base module
    from rnnlab.train.tasks.seq2seq import Seq2SeqAdapter
    from rnnlab.train.tasks.sequence import SequenceTask
    from rnnlab.train.tasks.stream import StreamTask

    if is_seq2seq(data) or cfg.arch.attention != "none":  # the encoder-decoder (refuses other data)
        return Seq2SeqAdapter(cfg, data, streams)
    if data.contiguous or cfg.train.stateful:  # one stream (textlm, echo); stateful refuses other data
        return StreamTask(cfg, data, streams)
    return SequenceTask(cfg, data, streams)
