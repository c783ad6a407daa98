"""data.augment through the config, the trainer and `rnnlab augment-preview`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab import api
from rnnlab.commands import augment as preview_cmd
from rnnlab.commands.hydra_bridge import compose_and_validate
from rnnlab.commands.train import run as train_run
from rnnlab.config.validate import ConfigError
from tests.conftest import TINY, read_summary


def _one_line_error(err: str, *needles: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- config


def test_names_and_mappings_become_full_specs():
    rc = compose_and_validate(["data.augment=[jitter,{name:time_warp,knots:3,p:0.5}]"])
    assert rc.data.augment == [{"name": "jitter", "sigma": 0.03, "p": 1.0},
                               {"name": "time_warp", "sigma": 0.2, "knots": 3, "p": 0.5}]
    rc = compose_and_validate(["data=seqfile", "data.augment=[mixup]"])
    assert rc.data.augment == [{"name": "mixup", "alpha": 0.2, "p": 1.0}]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.augment=[wiggle]"], "data.augment[0]: unknown augmentation 'wiggle' (choose from: jitter,"),
        (["data.augment=[{name:jitter,sigma:-1}]"], "data.augment[0] (jitter): sigma must be >= 0 (got -1)"),
        (["data=sp500", "data.augment=[{name:window_slice,ratio:0}]"], "ratio must be in (0, 1] (got 0)"),
        (["data.augment=[{name:scaling,sigm:1}]"], "unknown parameter 'sigm'"),
        (["data=adding", "data.augment=[jitter]"], "unknown key 'data.augment'"),
    ],
)
def test_bad_augment_config_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(overrides)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_bad_augment_exits_2_with_one_line(tmp_path, capsys):
    assert train_run([*TINY, "data.augment=[jitter,wiggle]", f"hydra.run.dir={tmp_path / 'r'}"]) == 2
    _one_line_error(capsys.readouterr().err, "data.augment[1]: unknown augmentation 'wiggle'")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------- training


def _metrics(tmp_path, name, extra):
    d = tmp_path / name
    assert api.train([*TINY, *extra], d).status == "completed"
    assert read_summary(d)["status"] == "completed"
    return pd.read_csv(d / "metrics.csv").drop(columns=["seconds", "samples_per_s", "monitor_seconds"])


def test_training_with_augmentation_differs_and_is_reproducible(tmp_path):
    plain = _metrics(tmp_path, "plain", [])
    aug = _metrics(tmp_path, "aug", ["data.augment=[jitter,{name:time_warp,p:0.5}]"])
    again = _metrics(tmp_path, "again", ["data.augment=[jitter,{name:time_warp,p:0.5}]"])
    assert not np.allclose(plain["train_loss"], aug["train_loss"])
    pd.testing.assert_frame_equal(aug, again)


def test_training_with_mixup_augmentation(tmp_path):
    m = _metrics(tmp_path, "mix", ["data.augment=[mixup]"])
    assert np.isfinite(m["train_loss"]).all()


def test_mixup_twice_is_refused(tmp_path, capsys):
    d = tmp_path / "r"
    assert train_run([*TINY, "data.augment=[mixup]", "reg.mixup_alpha=0.2", f"hydra.run.dir={d}"]) == 2
    _one_line_error(capsys.readouterr().err, "reg.mixup_alpha")


def test_multiclass_mixup_and_time_warp_on_padded_sequences(tmp_path):
    """Integer labels: mixup mixes the losses, lam L(y) + (1 - lam) L(y[perm])."""
    rng = np.random.default_rng(0)
    lines = ["label," + ",".join(f"t{j}" for j in range(6))]
    for i in range(45):
        c = i % 3
        n = 3 + i % 4
        lines.append(f"{c}," + ",".join([f"{c + 0.3 * rng.standard_normal():.3f}" for _ in range(n)] + [""] * (6 - n)))
    path = tmp_path / "seqs.csv"
    path.write_text("\n".join(lines) + "\n")
    d = tmp_path / "cls"
    args = ["data=seqfile", f"data.path={path}", "data.augment=[mixup,time_warp]", "arch.hidden_size=8",
            "train.epochs=2", "train.batch_size=8", "train.progress=false", "train.plots=false", "monitor=none",
            f"hydra.run.dir={d}"]
    assert train_run(args) == 0
    s = read_summary(d)
    assert s["status"] == "completed" and s["task"] == "multiclass"


# ---------------------------------------------------------------------------- preview


@pytest.mark.slow  # suite time: a whole preview drawn
def test_preview_writes_a_png(tmp_path, capsys):
    out = tmp_path / "sub" / "p.png"
    assert preview_cmd.run([*TINY[:2], "data.augment=[jitter,time_warp]"], output=out, n=3) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # a second preview through the real CLI; test_preview_writes_a_png stays fast
def test_preview_default_path_and_aug_option_through_typer(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rnnlab.cli import app

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["augment-preview", "--aug", "window_slice,mixup", "--n", "2", *TINY[:2]])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "augment_preview.png"
    assert (tmp_path / "augment_preview.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, aug, message",
    [
        ([], "jitter,wobble", "--aug[1]: unknown augmentation 'wobble'"),
        (["data.augment=[wobble]"], None, "data.augment[0]: unknown augmentation 'wobble'"),
        ([], None, "no augmentation to preview"),
        (["data=csv", "data.path=missing.csv"], "jitter", "data file not found"),
    ],
)
def test_preview_bad_input_is_one_line_exit_2(tmp_path, capsys, args, aug, message):
    assert preview_cmd.run(args, aug=aug, output=tmp_path / "p.png") == 2
    _one_line_error(capsys.readouterr().err, message)
    assert not (tmp_path / "p.png").exists()


def test_preview_without_training_data_exits_2(tmp_path, capsys, monkeypatch):
    from rnnlab.data import registry
    from rnnlab.data.base import Split

    real = registry.load

    def no_train(cfg, rng, dtype):
        data = real(cfg, rng, dtype)
        data.train = Split(data.train.x[:0], data.train.y[:0])
        return data

    monkeypatch.setattr(registry, "load", no_train)
    assert preview_cmd.run(list(TINY[:2]), aug="jitter", output=tmp_path / "p.png") == 2
    _one_line_error(capsys.readouterr().err, "no training sequences")
