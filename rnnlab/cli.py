"""The `rnnlab` command line. Thin: parse, hand over to rnnlab.commands, print.

Heavy modules (Hydra, NumPy, pandas, matplotlib) are imported inside the commands so
`rnnlab --help` answers fast.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

import typer

app = typer.Typer(
    name="rnnlab",
    help="A lab for recurrent neural networks: train RNN/LSTM/GRU nets written in NumPy, see inside them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

HYDRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
GROUPS = ("arch", "optim", "sched", "reg", "data", "experiment")


def _group_listing() -> str:
    root = files("rnnlab.conf")
    lines = []
    for g in GROUPS:
        opts = sorted(p.name[:-5] for p in (root / g).iterdir() if p.name.endswith(".yaml"))
        lines.append(f"  [bold]{g}[/bold]: {', '.join(opts)}")
    return "\n\n".join(lines)


TRAIN_HELP = f"""Train a model. Arguments are Hydra overrides and flags.

[bold]Usage:[/bold] rnnlab train [HYDRA FLAGS] [KEY=VALUE ...]

  rnnlab train arch=gru optim=adamw optim.lr=0.003 train.epochs=50

  rnnlab train -m arch=rnn,lstm,gru optim.lr=0.01,0.001

  rnnlab train -m arch=rnn,lstm hydra/launcher=joblib hydra.launcher.n_jobs=2

  rnnlab train experiment=sine_gru_cosine

  rnnlab train --cfg job     (print the composed config and exit)

Hydra flags: -m/--multirun, --cfg job|hydra|all, --resolve, --info, -cd DIR (extra config dir).

[bold]Config groups[/bold] (pick with GROUP=OPTION, change a value with GROUP.KEY=VALUE):

{_group_listing()}

Other keys: seed, name, train.epochs, train.batch_size, train.loss, train.clip_norm, \
train.clip_value, train.dtype, train.early_stopping_patience, train.progress, train.plots \
(see conf/config.yaml).

Runs are written to outputs/train/<timestamp>[_<name>]/, multiruns to outputs/train/multirun/<timestamp>/<job>/.
"""


@app.callback()
def main() -> None:
    """rnnlab: recurrent neural networks in NumPy, with Hydra configs."""


@app.command(context_settings=HYDRA_ARGS, help=TRAIN_HELP)
def train(ctx: typer.Context) -> None:
    from rnnlab.commands.train import run

    raise typer.Exit(run(list(ctx.args)))


REPORT_HELP = """Write RUN_DIR/report.html: one self-contained page (images embedded, no external resources).

It shows the status (a clearly marked partial report for diverged, interrupted or failed runs), \
the key metrics beside the baselines, the dashboard, the config, the metrics table and every plot, \
grouped into Training, Gradients, Weights, Hidden states and Predictions. \
`rnnlab train` writes it at the end of each run (with train.plots=true).

  rnnlab report outputs/train/2024-05-01_12-00-00

  rnnlab report RUN_DIR --output /tmp/run.html
"""


@app.command(help=REPORT_HELP)
def report(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A run folder (summary.json or .hydra/config.yaml)."),
    output: str = typer.Option(None, "--output", "-o", help="Where to write the page (default: RUN_DIR/report.html)."),
) -> None:
    from rnnlab.commands.report import run

    raise typer.Exit(run(run_dir, output))


AUGMENT_HELP = """Preview data.augment: write a PNG of a few training sequences beside their augmented versions.

Arguments are the same overrides as for `rnnlab train`; the augmentation is data.augment, or \
the names given with --aug (default parameters). Augmentations: jitter, scaling, magnitude_warp, \
time_warp, window_slice, phase_shift, mixup (see rnnlab/data/augment.py).

  rnnlab augment-preview data.augment=[jitter,time_warp]

  rnnlab augment-preview --aug window_slice,scaling --n 6 --output /tmp/aug.png

  rnnlab augment-preview data=sp500 'data.augment=[{name:magnitude_warp,sigma:0.3}]'
"""


@app.command("augment-preview", context_settings=HYDRA_ARGS, help=AUGMENT_HELP)
def augment_preview(
    ctx: typer.Context,
    aug: str = typer.Option(None, "--aug", help="Comma-separated augmentations to use instead of data.augment."),
    output: str = typer.Option(None, "--output", "-o", help="Where to write the PNG (default: augment_preview.png)."),
    n: int = typer.Option(4, "--n", help="How many training sequences to show."),
) -> None:
    from rnnlab.commands.augment import run

    raise typer.Exit(run(list(ctx.args), aug, output, n))


COMPARE_HELP = """Compare runs: a ranked table, comparison.csv and loss_curves.png in --output (default ./comparison/).

Arguments are run folders, multirun folders (0/, 1/, ...), folders holding runs (searched 3 levels \
down) or quoted globs. Runs that failed, diverged or were interrupted are listed but left out of the \
ranking and the statistics. --metric (default test_mse for regression, test_accuracy for \
classification; e.g. val_mae, r2, f1) sets the ranking. --by KEY groups the runs by a config value \
(mean, std, n; Welch's t-test and Mann-Whitney U of the best group against each other group, into \
comparison_groups.csv). --ensemble averages the runs' test predictions (soft vote for classification).

  rnnlab compare outputs/train/multirun/2024-05-01_12-00-00

  rnnlab compare 'outputs/train/2024-05-*' --metric val_mae

  rnnlab compare outputs/train/multirun/2024-05-01_12-00-00 --by arch.cell --ensemble --output /tmp/cmp
"""


@app.command(help=COMPARE_HELP)
def compare(
    inputs: Annotated[list[str], typer.Argument(metavar="RUN_DIR|SWEEP_DIR|GLOB ...", help="Runs to compare.")],
    by: str = typer.Option(None, "--by", help="Group by this config key (dotted, e.g. arch.cell, optim.lr)."),
    metric: str = typer.Option(None, "--metric", help="Rank by this metric (test_mse, val_accuracy, r2, ...)."),
    output: str = typer.Option(None, "--output", "-o", help="Folder for the files (default: ./comparison)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Also score the mean of the runs' test predictions."),
) -> None:
    from rnnlab.commands.compare import run

    raise typer.Exit(run(inputs, by=by, metric=metric, output=output, use_ensemble=ensemble))


if __name__ == "__main__":  # pragma: no cover
    app()
