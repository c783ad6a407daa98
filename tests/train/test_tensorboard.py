"""logger=tensorboard: the event files are read back (a minimal TFRecord reader over tensorboardX's protos)
and their scalars equal metrics.csv, the step scalars the loop's steps, the histograms the weights and
gradients."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.config.validate import ConfigError
from rnnlab.record import checkpoint
from rnnlab.train.callbacks import Callback
from tests.conftest import TINY

# tensorboardX (a dev dependency) is imported inside the tests: at module level it would load torch in
# every worker while the suite is collected.


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli, reflected
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant (written here, not taken
    from the writer, so a framing bug cannot check itself)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_crc32c_check_value():
    crc = masked_crc32c(b"123456789")
    unmasked = ((crc - 0xA282EAD8) & 0xFFFFFFFF)
    assert ((unmasked << 15) | (unmasked >> 17)) & 0xFFFFFFFF == 0xE3069283  # CRC-32C's published check value


def read_events(folder: Path) -> list:
    """Every Event of the event files in folder, in order. TFRecord framing: uint64 length, masked CRC32C of
    the length, the record, masked CRC32C of the record (all little-endian); both CRCs are checked."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos: pos + 8]
            (length,) = struct.unpack("<Q", header)
            (len_crc,) = struct.unpack("<I", data[pos + 8: pos + 12])
            assert len_crc == masked_crc32c(header), f"bad length CRC at byte {pos} of {path.name}"
            record = data[pos + 12: pos + 12 + length]
            (data_crc,) = struct.unpack("<I", data[pos + 12 + length: pos + 16 + length])
            assert data_crc == masked_crc32c(record), f"bad record CRC at byte {pos} of {path.name}"
            events.append(Event.FromString(record))
            pos += 16 + length
    return events


def by_tag(events) -> tuple[dict, dict, dict]:
    """(scalars tag -> [(step, value)], histograms tag -> [(step, HistogramProto)], texts tag -> [str])."""
    scalars, histos, texts = defaultdict(list), defaultdict(list), defaultdict(list)
    for e in events:
        for v in e.summary.value:
            kind = v.WhichOneof("value")
            if kind == "simple_value":
                scalars[v.tag].append((e.step, v.simple_value))
            elif kind == "histo":
                histos[v.tag].append((e.step, v.histo))
            elif kind == "tensor":
                texts[v.tag].append(b"".join(v.tensor.string_val).decode())
    return scalars, histos, texts


class StepLog(Callback):
    """What the loop did at each step, and the raw gradients of each epoch's last step."""

    def __init__(self):
        self.steps, self.last_grads = [], {}

    def on_step(self, fit, info):  # the latest step's gradients; what is left at the epoch's end is its last
        self.current = {k: np.array(v) for k, v in info.raw_grads.items()}

    def on_epoch_end(self, fit, row):
        self.last_grads[row["epoch"]] = self.current

    def on_step_end(self, fit, info):
        self.steps.append((info.step, info.loss, info.lr, info.grad_norm))


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tb") / "run"
    log = StepLog()
    overrides = [*TINY, "train.epochs=4", "logger=tensorboard", "logger.every_n_steps=3",
                 "logger.histogram_every_n_epochs=2", "sched=step", "sched.step_size=1", "sched.gamma=0.5"]
    summary = api.train(overrides, run_dir, callbacks=[log])
    assert summary.status == "completed"
    return run_dir, log, by_tag(read_events(run_dir / "tensorboard"))


def test_epoch_scalars_equal_metrics_csv(logged_run):
    run_dir, _, (scalars, _, _) = logged_run
    metrics = pd.read_csv(run_dir / "metrics.csv")
    numeric = [c for c in metrics.columns if c != "epoch" and pd.api.types.is_numeric_dtype(metrics[c])]
    assert {"train_loss", "val_loss", "lr", "grad_norm", "seconds", "samples_per_s"} <= set(numeric)
    assert {t for t in scalars if t.startswith("epoch/")} == {f"epoch/{c}" for c in numeric}
    for col in numeric:
        steps, values = zip(*scalars[f"epoch/{col}"], strict=True)
        assert list(steps) == metrics["epoch"].tolist() == [1, 2, 3, 4], col
        # event scalars are float32: the csv's float64, rounded once
        np.testing.assert_array_equal(np.float32(values), metrics[col].to_numpy(np.float32), err_msg=col)
    assert metrics["lr"].tolist() == [1e-3, 5e-4, 2.5e-4, 1.25e-4]  # the schedule is visible


def test_step_scalars_every_n_steps(logged_run):
    _, log, (scalars, _, _) = logged_run
    expected = [s for s in log.steps if s[0] % 3 == 0]
    assert [s[0] for s in log.steps] == list(range(36))  # 4 epochs of 9 batches (TINY)
    assert [s[0] for s in expected] == list(range(0, 36, 3))
    for i, tag in enumerate(("step/loss", "step/lr", "step/grad_norm"), start=1):
        steps, values = zip(*scalars[tag], strict=True)
        assert list(steps) == [s[0] for s in expected], tag
        np.testing.assert_array_equal(np.float32(values), np.float32([s[i] for s in expected]), err_msg=tag)


def test_histograms_of_weights_and_gradients(logged_run):
    run_dir, log, (_, histos, texts) = logged_run
    final = checkpoint.load(run_dir / "checkpoint_last").params  # the weights after epoch 4
    assert {t for t in histos} == {f"weights/{n}" for n in final} | {f"gradients/{n}" for n in final}
    for name, w in final.items():
        assert [s for s, _ in histos[f"weights/{name}"]] == [2, 4]  # histogram_every_n_epochs=2
        h = histos[f"weights/{name}"][-1][1]
        assert h.num == w.size and h.sum == pytest.approx(float(w.astype(np.float64).sum()), rel=1e-9, abs=1e-12)
        assert h.min == pytest.approx(float(w.min())) and h.max == pytest.approx(float(w.max()))
        for epoch, g in histos[f"gradients/{name}"]:
            raw = log.last_grads[epoch][name].astype(np.float64)  # the raw gradients of the epoch's last step
            assert g.num == raw.size and g.sum == pytest.approx(float(raw.sum()), rel=1e-9, abs=1e-12)
    assert "optim:" in texts["config/text_summary"][0] and "name: tensorboard" in texts["config/text_summary"][0]


def test_logger_none_writes_no_events(tmp_path):
    from rnnlab.config.schema import LoggerConf

    assert api.compose([]).logger == LoggerConf()  # logger=none by default; the YAML and the schema agree
    assert api.compose(["logger=tensorboard"]).logger == LoggerConf(name="tensorboard")
    api.train([*TINY, "train.epochs=1"], tmp_path / "run")
    assert not (tmp_path / "run" / "tensorboard").exists()


@pytest.mark.parametrize("override, message", [
    ("logger=wandb", "unknown logger 'wandb' (choose from: none, tensorboard)"),
    ("logger.every_n_steps=-1", "logger.every_n_steps must be >= 0 (got -1)"),
])
def test_bad_logger_settings_are_one_line(override, message):
    overrides = [override] if override.startswith("logger=") else ["logger=tensorboard", override]
    with pytest.raises(ConfigError) as err:
        api.compose(overrides)
    assert str(err.value) == message
