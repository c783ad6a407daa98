"""`summary.json`: one definition of its keys, strict JSON both ways.

`Summary` holds the keys every run has as typed fields; what a task adds (a classifier's
threshold, a forecast, seq2seq's decoding) lives in `extra` and is written at the top level
beside them, so summary.json stays one flat object. Reading is tolerant: a file written
before this layout (no `format_version`) or by a newer rnnlab loads with its unknown keys
in `extra`.

Strict JSON: NaN and infinities become null, and `non_finite` says which key held what
(`{"best_val_loss": "nan"}`), so `jq` and JavaScript read every summary.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.runtime.io import strict_json

FORMAT_VERSION = 2
FILE = "summary.json"
STATUSES = ("running", "completed", "diverged", "interrupted", "failed", "pruned")


@dataclass
class Summary:
    status: str = "running"
    run_dir: str = ""
    message: str | None = None
    bad_input: bool = False  # the run failed on its input (exit code 2)
    # what was trained
    seed: int | None = None
    task: str | None = None  # regression | binary | multiclass (seq2seq: multiclass for tokens)
    model: str | None = None  # sequence | seq2seq
    loss: str | None = None
    n_params: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    sample_unit: str | None = None  # what n_train/n_val/n_test count: sequences | windows
    n_test_origins: int | None = None  # forecasting: the test windows' forecast origins (= n_test)
    data_format: str | None = None  # the file layout the loader read (seqfile: wide | long | npz)
    data_format_reason: str | None = None  # why (data.format=auto's decision)
    # how it went
    epochs_run: int = 0
    best_epoch: int | None = None
    best_val_loss: float | None = None
    monitored_metric: str | None = None
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    test_weights: str | None = None  # best | last
    test_weights_epoch: int | None = None
    interrupted_in: str | None = None  # start-up | training | test | monitor | plots | report (status interrupted)
    # train.restarts: every attempt ({attempt, seed_stream, status, best_epoch, best_val_loss, val_metric,
    # val_score, baseline, baseline_score, chance}) and the one kept (the best by validation)
    attempts: list[dict[str, Any]] | None = None
    kept_attempt: int | None = None
    warnings: list[str] | None = None  # what a reader must not miss (the run ended at chance level)
    # the tested attempt's best epoch against the baseline on the validation split (train/chance.py):
    # {val_metric, val_score, baseline, baseline_score, chance}
    chance_check: dict[str, Any] | None = None
    # results
    test_loss: float | None = None
    val_metrics: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = None
    baselines: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    dashboard: dict[str, Any] | None = None
    cv: dict[str, Any] | None = None
    # where and how fast
    runtime_s: float | None = None
    seconds_per_epoch: float | None = None
    versions: dict[str, str] | None = None
    pid: int | None = None
    blas_threads: str | None = None
    workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    # -- dict-style reading, so summary["test_metrics"] and summary.get("threshold") both work
    def __getitem__(self, key: str) -> Any:
        if key in _FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _FIELDS:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default: Any = None) -> Any:
        """As dict.get, where an unset field (None) counts as absent."""
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value

    def update(self, entries: dict[str, Any] | None = None, **more: Any) -> None:
        for k, v in {**(entries or {}), **more}.items():
            self[k] = v

    def keys(self):
        return self.to_dict().keys()

    def items(self):
        return self.to_dict().items()

    def values(self):
        return self.to_dict().values()

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / FILE

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON object (extras at the top level; False bad_input left out). A bad-input stub holds
        only what is known (status, message, bad_input, run_dir and any entry that was set): it says plainly
        that nothing ran, without a page of nulls."""
        out = {f: getattr(self, f) for f in _FIELDS if f != "extra"}
        if not self.bad_input:
            del out["bad_input"]
        else:
            defaults = Summary()
            out = {k: v for k, v in out.items() if v != getattr(defaults, k) or k in _STUB_KEYS}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        known = {k: v for k, v in d.items() if k in _FIELDS and k != "extra"}
        s = cls(**known)
        s.extra = {k: v for k, v in d.items() if k not in _FIELDS}  # "non_finite" too: the nulls keep their reason
        if "format_version" not in d:
            s.format_version = 1
        return s

    def to_json(self) -> str:

        return strict_json(self.to_dict())


_FIELDS = tuple(f.name for f in dataclasses.fields(Summary))
_STUB_KEYS = ("status", "run_dir", "message", "bad_input", "format_version")
# What a field may hold in the file (or null), by its annotation: a summary.json with, say, test_metrics as
# a list is unreadable, in one line naming the file and the key, rather than a crash where the key is used.
_KINDS = {"dict": ((dict,), "an object"), "int": ((int,), "an integer"), "float": ((int, float), "a number"),
          "str": ((str,), "a string"), "bool": ((bool,), "true or false"), "list": ((list,), "a list")}
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
               float: "a number"}


def _check_types(d: dict[str, Any], path: Path) -> None:
    for f in dataclasses.fields(Summary):
        kind, value = _KINDS.get(str(f.type).split("[")[0].split(" |")[0]), d.get(f.name)
        if kind is None or value is None or f.name == "extra":
            continue
        types, want = kind
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"{path}: {f.name} must be {want} (got {_JSON_NAMES.get(type(value), 'null')})")


def read(run_dir: str | Path) -> Summary:
    """The summary of a run folder (or a summary.json path). Raises OSError / ValueError when unreadable.
    Accepts the bare NaN of files written before strict JSON."""
    p = Path(run_dir)
    p = p if p.suffix == ".json" else p / FILE
    data = json.loads(p.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{p} does not hold a JSON object")
    _check_types(data, p)
    return Summary.from_dict(data)
