"""Config composition and validation: experiments apply their deltas, values are converted, the validators
name the key on bad input (that every option of every group composes and trains: tests/test_option_matrix.py)."""

from __future__ import annotations

import dataclasses
import re
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

import rnnlab
from rnnlab import api
from rnnlab.commands.hydra_bridge import compose_and_validate, split_args
from rnnlab.config.groups import group_options
from rnnlab.config.schema import ArchConf, MonitorConf, RegConf
from rnnlab.config.validate import ConfigError
from tests.conftest import TINY


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
        (["optim.lr=inf"], "optim.lr must be finite (got inf)"),
        (["optim=adamw", "optim.weight_decay=inf"], "optim.weight_decay must be finite (got inf)"),
        (["data.baselines=[naive,arima]"], "data.baselines must be one of naive, seasonal_naive, drift, mean, ets "
                                           "(got 'arima')"),
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


# ----------------------------------------------------------------------------- did you mean


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.epoch=3"], "unknown key 'train.epoch' (did you mean train.epochs?)"),
        (["+train.epoch=3"], "unknown key 'train.epoch' (did you mean train.epochs?)"),  # added, then refused
        (["trian.epochs=3"], "unknown key 'trian.epochs' (did you mean train.epochs?)"),
        (["seeed=1"], "unknown key 'seeed' (did you mean seed?)"),
        (["arch.hiden_size=3"], "unknown key 'arch.hiden_size' (did you mean arch.hidden_size?)"),
        (["debug=tiny", "arch.cel=gru"], "unknown key 'arch.cel' (did you mean arch.cell?)"),
        (["reg=zoneout", "reg.zonout=0.2"], "unknown key 'reg.zonout' (did you mean reg.zoneout?)"),
        (["+reg.dropot=0.1"], "unknown key 'reg.dropot' (did you mean reg.dropout?)"),
        (["optim.lrr=0.1"], "unknown key 'optim.lrr' (did you mean optim.lr?)"),
        (["sched=step", "sched.gama=0.5"], "unknown key 'sched.gama' (did you mean sched.gamma?)"),
        (["sched=warmup_cosine", "sched.after.eta_mn=0"],
         "unknown key 'sched.after.eta_mn' (did you mean sched.after.eta_min?)"),
        (["monitor=full", "monitor.cluster=3"], "unknown key 'monitor.cluster' (did you mean monitor.clusters?)"),
        (["data=adding", "data.lenght=50"], "unknown key 'data.lenght' (did you mean data.length?)"),
        (["cv.stratgy=kfold"], "unknown key 'cv.stratgy' (did you mean cv.strategy?)"),
        (["arch.foo=1"], "unknown key 'arch.foo'"),  # nothing close: no guess
        (["arch=lstn"], f"unknown arch 'lstn' (choose from: {', '.join(group_options('arch'))}; did you mean lstm?)"),
        (["reg=dropuot"], f"unknown reg 'dropuot' (choose from: {', '.join(group_options('reg'))}; did you mean "
                          "dropout?)"),
        (["optim.name=adm"], "unknown optim.name 'adm' (choose from: adagrad, adam, adamw, momentum, nadam, nesterov, "
                             "rmsprop, sgd; did you mean adam?)"),
    ],
)
def test_unknown_keys_and_options_suggest_the_closest(overrides, message):
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(overrides)
    assert str(exc.value) == message


@pytest.mark.parametrize("overrides", [["train.epoch=3"], ["arch=lstn"]])
def test_the_api_suggests_through_the_same_module(overrides):
    with pytest.raises(ConfigError) as cli:
        compose_and_validate(overrides)
    with pytest.raises(ConfigError) as python:
        api.compose(overrides)
    assert str(python.value) == str(cli.value) and "did you mean" in str(python.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        # typed at composition (reg is a structured config): Hydra's multi-line error, translated
        (["reg.dropout=abc"], "reg.dropout: Value 'abc' could not be converted to Float"),
        (["reg.dropout=null"], "reg.dropout: Incompatible value 'None' for field of type 'float'"),
        (["arch.num_layers=abc"], "arch.num_layers: Value 'abc' could not be converted to Integer"),
        (["monitor.gif=abc"], "monitor.gif: Value 'abc' is not a valid bool (type str)"),
        # typed at validation (root sections): the same words
        (["train.epochs=null"], "train.epochs: Incompatible value 'None' for field of type 'int'"),
        (["train=3"], "train must be a mapping of keys (got 3)"),
        (["optim.lr=[1"], "cannot parse override 'optim.lr=[1': no viable alternative at input '[1'"),
        (["arch=[1,2]"], "cannot compose overrides ['arch=[1,2]']: argument of type 'int' is not iterable"),
    ],
)
def test_structured_config_errors_are_one_line(overrides, message):
    with pytest.raises(ConfigError) as exc:
        compose_and_validate(overrides)
    assert str(exc.value) == message


# ----------------------------------------------------------------------------- group options as deltas

# conf/reg/*.yaml before they became deltas over reg/_base.yaml: every key written out in every file.
REG_BEFORE = {"input_dropout": 0.0, "dropout": 0.0, "l2": 0.0, "l1": 0.0, "grad_noise_eta": 0.0,
              "grad_noise_gamma": 0.55, "mixup_alpha": 0.0, "recurrent_dropout": 0.0, "zoneout": 0.0}
REG_OPTIONS_BEFORE = {
    "none": {}, "dropout": {"dropout": 0.2}, "l1": {"l1": 1e-5}, "l2": {"l2": 1e-4},
    "elastic_net": {"l2": 1e-4, "l1": 1e-5}, "mixup": {"mixup_alpha": 0.2}, "noise": {"grad_noise_eta": 0.01},
    "recurrent_dropout": {"recurrent_dropout": 0.25}, "zoneout": {"zoneout": 0.1},
}


@pytest.mark.parametrize("option", sorted(REG_OPTIONS_BEFORE))
def test_reg_options_compose_to_their_old_values(option):
    reg = dataclasses.asdict(api.compose([f"reg={option}"]).reg)
    assert reg == {"name": option, **REG_BEFORE, **REG_OPTIONS_BEFORE[option]}
    assert all(type(v) is float for k, v in reg.items() if k != "name")


@pytest.mark.parametrize("group, option, schema", [("arch", "lstm", ArchConf), ("reg", "none", RegConf),
                                                    ("monitor", "default", MonitorConf)])
def test_group_base_equals_its_schema_defaults(group, option, schema):
    """The YAML base of a structured group (its documented values) and the dataclass defaults do not drift."""
    assert getattr(api.compose([f"{group}={option}"]), group) == schema()


@pytest.mark.parametrize("group", ["arch", "reg"])
def test_options_are_deltas_over_the_base(group):
    for option in group_options(group):
        text = (files("rnnlab.conf") / group / f"{option}.yaml").read_text()
        values = yaml.safe_load(text)
        assert values["defaults"] == ["_base", "_self_"], option
        assert len(values) <= 6, f"{group}/{option}.yaml repeats the base"


# ----------------------------------------------------------------------------- optimizer ranges without optimizers

BAD_OPTIM_VALUES = {"lr": [0.0, -1.0, float("nan")], "weight_decay": [-0.1], "eps": [0.0, -1e-8],
                    "betas": [[0.9, 1.0], [-0.1, 0.9], [0.9]], "momentum": [1.0, -0.5], "dampening": [1.5],
                    "alpha": [1.0], "lr_decay": [-1.0], "initial_accumulator_value": [-1.0],
                    "momentum_decay": [-0.1], "amsgrad": [1], "centered": ["yes"]}


@pytest.mark.parametrize("option", group_options("optim"))
def test_optimizer_ranges_are_the_engines(option):
    """Validation range-checks an optimizer from its config (no optimizer built) with the engine's messages."""
    from rnnlab.config.schema import OPTIM_RANGES, check_optim
    from rnnlab.engine.optim import make_optimizer

    good = api.compose([f"optim={option}"]).optim
    assert set(good) - {"name"} <= set(OPTIM_RANGES)  # every key of conf/optim/ is range-checked
    check_optim(good)
    cases = [{**good, key: bad} for key in good if key in BAD_OPTIM_VALUES for bad in BAD_OPTIM_VALUES[key]]
    if option == "nesterov":
        cases.append({**good, "momentum": 0.0})
    assert cases
    for values in cases:
        with pytest.raises(ValueError) as ours:
            check_optim(values)
        with pytest.raises(ValueError) as engine:
            make_optimizer(**values)
        assert str(ours.value) == str(engine.value)


# ----------------------------------------------------------------------------- validated once


@pytest.fixture
def counted(monkeypatch):
    """Counts of validations and of optimizers built."""
    from rnnlab.config import validate as V
    from rnnlab.engine import optim

    counts = {"validate": 0, "optimizers": 0}
    real_validate, real_init = V.validate, optim.Optimizer.__init__

    def validate(cfg):
        counts["validate"] += 1
        return real_validate(cfg)

    def init(self, *args, **kwargs):
        counts["optimizers"] += 1
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(V, "validate", validate)
    monkeypatch.setattr(optim.Optimizer, "__init__", init)
    return counts


def test_validation_builds_no_optimizer(counted):
    compose_and_validate(["optim=nadam", "optim.lr=0.01,0.1"])  # a sweep: each value validated
    api.compose(["optim=rmsprop"])
    assert counted == {"validate": 3, "optimizers": 0}


def test_a_cli_run_validates_once(tmp_path, counted):
    from rnnlab.commands.train import run

    assert run([*TINY, f"hydra.run.dir={tmp_path / 'r'}"]) == 0
    assert counted == {"validate": 1, "optimizers": 1}  # before the launch; the job takes that RunConfig


@pytest.mark.slow  # suite time: a real multirun
def test_a_multirun_validates_each_config_once(tmp_path, counted):
    from rnnlab.commands.train import run

    assert run(["-m", *TINY, "train.epochs=1", "optim.lr=0.01,0.02", f"hydra.sweep.dir={tmp_path / 's'}"]) == 0
    assert counted == {"validate": 2, "optimizers": 2}


def test_api_train_validates_once(tmp_path, counted):
    assert api.train([*TINY, "train.epochs=1"], tmp_path / "r").status == "completed"
    assert counted == {"validate": 1, "optimizers": 1}


def test_a_job_validates_a_config_it_was_not_given(counted):
    """A job whose config was composed elsewhere (a joblib worker) validates it, once."""
    from rnnlab.config.composition import Composer, validated

    with Composer() as c:
        cfg = c.compose(["arch=gru", "train.epochs=7"]).cfg
    assert validated(cfg).train.epochs == 7
    assert counted == {"validate": 1, "optimizers": 0}


# ----------------------------------------------------------------------------- one config path


@pytest.mark.slow  # suite time: a search's compositions
def test_search_composes_through_the_config_module(monkeypatch):
    from rnnlab.config import composition
    from rnnlab.search import compose as S
    from rnnlab.search.space import parse_cli

    seen = []
    real = composition.Composer.compose

    def spy(self, overrides):
        seen.append(list(overrides))
        return real(self, overrides)

    monkeypatch.setattr(composition.Composer, "compose", spy)
    rc = S.check_space({"arch.hidden_size": parse_cli("arch.hidden_size=int:4:8")}, ["train.epochs=2"])
    assert rc.arch.hidden_size == 4 and ["train.epochs=2", "arch.hidden_size=8"] in seen
    composed, rc = S.compose_trial(["arch=gru", "reg=l2"])
    assert rc.reg.l2 == 1e-4 and ["arch=gru", "reg=l2"] in seen
    _, body = S.experiment_delta(["arch=gru", "reg.l2=0.5"])
    assert body == {"defaults": [{"override /arch": "gru"}], "reg": {"l2": 0.5}}
    assert ["arch=gru", "reg.l2=0.5"] in seen


def test_only_the_config_module_uses_hydras_compose_api():
    """One config path: Hydra's Compose API appears in rnnlab/config/composition.py and nowhere else."""
    root = Path(rnnlab.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if re.search(r"initialize_config_(module|dir)|from hydra import .*compose", p.read_text()))
    assert users == ["config/composition.py"]
