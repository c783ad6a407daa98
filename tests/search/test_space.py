"""Search space parsing and checks (no trials): every bad input is one exact line."""

from __future__ import annotations

import pytest

from rnnlab.search import SearchError
from rnnlab.search.space import Param, format_value, grid_values, load_space_file, parse_cli, space_names


def test_cli_ranges_and_choices():
    assert parse_cli("optim.lr=float:1e-4:1e-1:log") == Param("optim.lr", "float", 1e-4, 0.1, None, True)
    assert parse_cli("reg.dropout=float:0:0.5:0.1") == Param("reg.dropout", "float", 0.0, 0.5, 0.1, False)
    assert parse_cli("arch.hidden_size=int:16:128:16") == Param("arch.hidden_size", "int", 16, 128, 16, False)
    p = parse_cli("train.batch_size=int:8:256:log")
    assert (p.low, p.high, p.log, type(p.low)) == (8, 256, True, int)
    # choice values are typed like YAML, and 1e-3 (YAML 1.1 would keep it a string) is a float
    assert parse_cli("x=choice:rnn,1,0.5,true,null,1e-3").values == ("rnn", 1, 0.5, True, None, 1e-3)


@pytest.mark.parametrize("text, message", [
    ("optim.lr", "--param optim.lr: write KEY=SPEC, e.g. optim.lr=float:1e-4:1e-1:log or arch=choice:rnn,gru"),
    ("optim.lr=flot:1:2", "--param optim.lr=flot:1:2: unknown type 'flot' (use float:LOW:HIGH[:log|:STEP], "
                          "int:LOW:HIGH[:log|:STEP] or choice:A,B,...)"),
    ("optim.lr=float:0.1", "--param optim.lr=float:0.1: write float:LOW:HIGH, float:LOW:HIGH:log or "
                           "float:LOW:HIGH:STEP"),
    ("optim.lr=float:0.1:0.001", "optim.lr: low must be below high (got low=0.1, high=0.001)"),
    ("optim.lr=float:0.1:0.1", "optim.lr: low must be below high (got low=0.1, high=0.1)"),
    ("optim.lr=float:0:0.1:log", "optim.lr: log scale needs low > 0 (got low=0.0)"),
    ("optim.lr=float:a:0.1", "optim.lr: low must be a number (got 'a')"),
    ("optim.lr=float:0.1:inf", "optim.lr: high must be finite (got 'inf')"),
    ("arch.hidden_size=int:16:128:15", "arch.hidden_size: high - low (112) must be a multiple of step (15)"),
    ("arch.hidden_size=int:1.5:8", "arch.hidden_size: low of an int range must be a whole number (got '1.5')"),
    ("arch.hidden_size=int:4:8:0", "arch.hidden_size: step must be > 0 (got 0)"),
    ("arch=choice:", "arch: choice needs at least one value"),
    ("arch=choice:rnn,rnn", "arch: choice lists a value twice (rnn, rnn)"),
    ("optim lr=float:1:2", "parameter 'optim lr': not a config key (write e.g. optim.lr or arch)"),
])
def test_cli_bad_params(text, message):
    with pytest.raises(SearchError) as exc:
        parse_cli(text)
    assert str(exc.value) == message


def _file(tmp_path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def test_space_file(tmp_path):
    f = load_space_file(_file(tmp_path, """
objective: {metric: test_mae, direction: minimize}
params:
  optim.lr: {type: float, low: 1e-4, high: 1e-1, log: true}   # 1e-4 is a string to YAML 1.1
  arch: {type: choice, values: [rnn, gru]}
overrides: [train.epochs=3]
"""))
    assert (f.metric, f.direction, f.overrides) == ("test_mae", "minimize", ["train.epochs=3"])
    assert f.params["optim.lr"] == Param("optim.lr", "float", 1e-4, 0.1, None, True)
    assert f.params["arch"].values == ("rnn", "gru")


@pytest.mark.parametrize("text, message", [
    ("params:\n  optim.lr: {type: float, low: 1, hgh: 2}\n",
     "optim.lr: unknown field 'hgh' (fields: type, low, high, step, log, values)"),
    ("params:\n  optim.lr: {type: real, low: 1, high: 2}\n",
     "optim.lr: unknown type 'real' (use float, int or choice)"),
    ("params:\n  optim.lr: {type: float, low: 1}\n", "optim.lr: a float range needs low and high"),
    ("params:\n  arch: {type: choice, values: []}\n", "arch: choice needs at least one value"),
    ("params:\n  arch: {type: choice, values: [[1, 2]]}\n",
     "arch: choice values must be numbers, strings or booleans (got [1, 2])"),
    ("params:\n  optim.lr: {type: float, low: 0.1, high: 1, log: true, step: 0.1}\n",
     "optim.lr: use either log or step, not both"),
    ("params:\n  optim.lr: {type: float, low: 0.1, high: 1, log: yes please}\n",
     "optim.lr: log must be true or false (got 'yes please')"),
    ("params:\n  optim.lr: 0.1\n", "optim.lr: give a mapping such as {type: float, low: 0.001, high: 0.1} (got 0.1)"),
])
def test_space_file_bad_params(tmp_path, text, message):
    with pytest.raises(SearchError) as exc:
        load_space_file(_file(tmp_path, text))
    assert str(exc.value) == message


def test_space_file_bad_layout(tmp_path):
    path = _file(tmp_path, "param: {}\n")
    with pytest.raises(SearchError, match=r"space.yaml: unknown key 'param' \(keys: objective, params, overrides\)$"):
        load_space_file(path)
    with pytest.raises(SearchError, match=r"space.yaml: not valid YAML"):
        load_space_file(_file(tmp_path, "params: [\n"))
    with pytest.raises(SearchError) as exc:
        load_space_file("no_such_space")
    assert str(exc.value) == ("search space 'no_such_space' not found (a YAML file, or one of conf/search: "
                              f"{', '.join(space_names())})")


def test_grid_values():
    assert grid_values(parse_cli("reg.dropout=float:0:0.3:0.1")) == [0.0, 0.1, 0.2, 0.3]
    assert grid_values(parse_cli("arch.hidden_size=int:16:64:16")) == [16, 32, 48, 64]
    assert grid_values(parse_cli("arch.num_layers=int:1:3")) == [1, 2, 3]
    assert grid_values(parse_cli("arch=choice:rnn,gru")) == ["rnn", "gru"]
    with pytest.raises(SearchError) as exc:
        grid_values(parse_cli("optim.lr=float:1e-4:1e-1:log"))
    assert str(exc.value) == ("optim.lr: --sampler grid needs a step for a float range (write "
                              "float:LOW:HIGH:STEP or use choice)")


def test_override_values_round_trip_through_hydra():
    assert [format_value(v) for v in (True, None, 0.001, 1e-05, 16, "gru", "a b")] == \
        ["true", "null", "0.001", "1e-05", "16", "gru", "'a b'"]
