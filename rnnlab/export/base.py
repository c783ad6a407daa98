"""What every export format shares: its options, what it hands back, its one-line refusal."""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnlab.config.validate import ConfigError


class ExportError(ConfigError):
    """A model (or a block of it) a format cannot express, or an export that cannot be written; the
    message is one line meant for the user (`rnnlab export` prints it and exits with code 2)."""


@dataclass(frozen=True)
class ExportOptions:
    quantize: str | None = None  # "int8": ONNX dynamic quantization beside the float model
    opset: int = 17


@dataclass
class Written:
    """The files one format wrote (names relative to the export folder) and lines worth telling the user
    (e.g. which nodes INT8 quantized)."""

    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Facts for the export's manifest (model.json "formats" entry), e.g. {"opset": 17, "quantized": [...]}.
    facts: dict = field(default_factory=dict)
