"""Config composition and validation: experiments apply their deltas, values are converted, the validators
name the key on bad input (that every option of every group composes and trains: tests/test_option_matrix.py)."""

from __future__ import annotations

import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate, split_args
from rnnlab.config.validate import ConfigError


def test_csv_without_a_path_is_refused():
    with pytest.raises(ConfigError, match=r"data.path must name a CSV file"):
        compose_and_validate(["data=csv"])


def test_experiment_applies_its_delta():
    rc = compose_and_validate(["experiment=sine_gru_cosine"])
    assert rc.arch.cell == "gru"
    assert rc.sched["name"] == "warmup" and rc.sched["after"]["name"] == "cosine"
    assert rc.train.epochs == 40 and rc.name == "sine_gru_cosine"


def test_types_are_converted():
    rc = compose_and_validate(["optim.lr=1", "arch.hidden_size=16", "optim.betas=[0.8,0.9]", "train.clip_norm=null"])
    assert rc.optim["lr"] == 1.0 and isinstance(rc.optim["lr"], float)
    assert rc.optim["betas"] == [0.8, 0.9]
    assert rc.arch.hidden_size == 16 and rc.train.clip_norm is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim=sgd", "optim.betas=[0.9,0.99]"], "unknown key 'optim.betas'"),
        (["optim.betas=[0.9,1.5]"], "optim.betas"),
        (["sched=step", "sched.gamma=0"], "sched.gamma must be > 0"),
        (["sched=plateau", "sched.factor=2"], "sched.factor"),
        (["arch.num_layers=6"], "arch.num_layers must be in 1..5 (got 6)"),
        (["arch.merge_mode=avg"], "arch.merge_mode must be one of concat, sum, mean, mul (got 'avg')"),
        (["reg.dropout=1.0"], "reg.dropout must be in [0, 1) (got 1.0)"),
        (["train.batch_size=abc"], "train.batch_size: Value 'abc' could not be converted to Integer"),
        (["seed=-3"], "seed must be a non-negative integer"),
        (["data.periods=[]"], "data.periods and data.amplitudes must be non-empty"),
        (["optim.amsgrad=maybe"], "optim.amsgrad"),
        (["-m", "optim.lr=0.1,-0.1"], "optim.lr must be > 0 (got -0.1)"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    flags, ovs = split_args(overrides)
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(ovs)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_split_args_reorders_flags_before_overrides():
    flags, ovs = split_args(["arch=gru", "-m", "optim.lr=0.1,0.01", "--config-dir", "cd", "hydra/launcher=joblib"])
    assert flags == ["-m", "--config-dir", "cd"]
    assert ovs == ["arch=gru", "optim.lr=0.1,0.01", "hydra/launcher=joblib"]
    with pytest.raises(ConfigError, match="unknown option '--bogus'"):
        split_args(["--bogus"])


@pytest.mark.parametrize("flags", [["-m", "--cfg", "job"], ["--multirun", "--info"], ["-r", "-m"]])
def test_split_args_refuses_two_hydra_modes(flags):
    with pytest.raises(ConfigError, match="cannot be combined") as exc:
        split_args(["arch=gru", *flags])
    assert "\n" not in str(exc.value)
