"""`rnnlab train [GROUP=OPTION ...] --help`: the keys of the chosen data, arch and optim options, with their
defaults and the comments of their YAML files (rnnlab.config.option_docs), without starting Hydra."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rnnlab.cli import app
from rnnlab.config.groups import group_options
from rnnlab.config.option_docs import chosen_options, read_option


def _help(*args: str):
    return CliRunner().invoke(app, ["train", *args, "--help"], env={"COLUMNS": "2000"})


def _keys(output: str) -> dict[str, str]:
    """'data.path=null  # The CSV file ...' lines -> {'data.path': 'null  # The CSV file ...'}."""
    lines = [ln.strip() for ln in output.splitlines()]
    return dict(ln.split("=", 1) for ln in lines if ln.startswith(("data.", "arch.", "optim.")) and "=" in ln)


def test_train_help_lists_the_chosen_data_options_keys_with_their_comments():
    res = _help("data=csv")
    assert res.exit_code == 0, res.output
    keys = _keys(res.output)
    assert keys["data.path"] == "null  # The CSV file (required unless default_file is set)."
    assert keys["data.target"] == "Close  # The column to forecast."
    assert keys["data.n_in"] == "60  # n_in past steps predict the next n_out values directly (one multi-output head)."
    assert keys["data.n_out"] == "1"  # no comment of its own
    assert "data.name" not in keys  # the option itself, picked with data=csv
    assert keys["arch.cell"].startswith("lstm  # Recurrent cell: any module of rnnlab/engine/cells/")
    assert keys["optim.lr"] == "0.001"
    assert "data=csv: Forecast a column of your own CSV file" in res.output


def test_an_option_built_on_another_shows_its_values_with_the_bases_comments():
    res = _help("data=sp500", "optim=sgd")
    keys = _keys(res.output)
    assert keys["data.n_out"] == "30" and keys["data.transform"].startswith("log_returns  # none | log | diff")
    assert keys["data.default_file"].startswith("sp500_daily_1990-2023.csv  # A file name inside $RNNLAB_DATA")
    assert keys["optim.lr"] == "0.01" and "optim.betas" not in keys
    assert read_option("arch", "gru").keys["cell"].value == "gru"  # arch/gru.yaml over arch/_base.yaml
    assert read_option("arch", "gru").keys["hidden_size"].value == "64"


def test_the_default_options_and_an_experiments_choices():
    assert chosen_options([]) == {"data": "sine", "arch": "lstm", "optim": "adam"}
    assert chosen_options(["experiment=sp500_30day"]) == {"data": "sp500", "arch": "gru", "optim": "adam"}
    assert chosen_options(["experiment=sp500_30day", "arch=rnn", "data.n_in=5"])["arch"] == "rnn"
    assert chosen_options(["-m", "arch=gru,rnn", "optim=choice(sgd,adam)"]) == {"data": "sine", "arch": "gru",
                                                                              "optim": "adam"}
    assert chosen_options(["-cd", "outputs/search/s", "experiment=best"])["arch"] == "lstm"  # best: in that folder
    assert "data.length" in _keys(_help().output)  # sine, the default


@pytest.mark.parametrize(("args", "group", "name", "hint"), [
    (["data=foo"], "data", "foo", ""), (["arch=lstn"], "arch", "lstn", "; did you mean lstm?"),
    (["experiment=nope"], "experiment", "nope", ""),
])
def test_an_unknown_option_with_help_is_one_line_and_exit_2(args, group, name, hint):
    res = _help(*args)
    assert res.exit_code == 2
    line = f"Error: unknown {group} '{name}' (choose from: {', '.join(group_options(group))}{hint})"
    assert res.stderr.splitlines() == [line] and res.stdout == ""


def test_train_help_does_not_start_hydra():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom rnnlab.cli import app\n"
            "r = CliRunner().invoke(app, ['train', 'data=csv', '--help'])\n"
            "print(r.exit_code, 'data.target=Close' in r.output, 'hydra' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "True", "False", "False"]
