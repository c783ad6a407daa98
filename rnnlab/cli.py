"""The `rnnlab` command line. Thin: parse, hand over to rnnlab.commands, print.

Heavy modules (Hydra, NumPy, pandas, matplotlib) are imported inside the commands so
`rnnlab --help` answers fast.
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperCommand

from rnnlab.config.groups import GROUPS, group_options

app = typer.Typer(
    name="rnnlab",
    help="A lab for recurrent neural networks: train RNN/LSTM/GRU nets written in NumPy, see inside them.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

HYDRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
def _group_listing() -> str:
    return "\n\n".join(f"  [bold]{g}[/bold]: {', '.join(group_options(g))}" for g in GROUPS)


TRAIN_HELP = f"""Train a model. Arguments are Hydra overrides and flags.

[bold]Usage:[/bold] rnnlab train [HYDRA FLAGS] [KEY=VALUE ...]

  rnnlab train arch=gru optim=adamw optim.lr=0.003 train.epochs=50

  rnnlab train -m arch=rnn,lstm,gru optim.lr=0.01,0.001

  rnnlab train -m arch=rnn,lstm hydra/launcher=joblib hydra.launcher.n_jobs=2

  rnnlab train experiment=sine_gru_cosine

  rnnlab train --cfg job     (print the composed config and exit)

  rnnlab train --resume outputs/train/2026-12-06_10-00-00 train.epochs=60     (continue a stopped run)

  rnnlab train -m --resume outputs/train/multirun/2026-12-06_10-00-00     (finish a stopped multirun)

Hydra flags: -m/--multirun, --cfg job|hydra|all, --resolve, --info, -cd DIR (extra config dir). \
--resume RUN_DIR continues an interrupted, killed or finished run in its folder, exactly as if it had not \
stopped (its own overrides, then the ones given). --resume SWEEP_DIR runs the multirun in that folder again: \
finished jobs kept, interrupted ones resumed, the others run.

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


def options_help(args: list[str]) -> str:
    """The keys of the data, arch and optim options `rnnlab train ARGS` picks, with their defaults and the
    comments of their YAML files (rnnlab.config.option_docs); UnknownOption for a name no file has."""
    from rich.markup import escape

    from rnnlab.config.option_docs import DETAILED, chosen_options, read_option

    chosen = chosen_options(args)
    parts = ["[bold]Keys of the chosen options[/bold] (GROUP.KEY=DEFAULT  # comment; another option's keys: "
             "e.g. rnnlab train data=csv --help):"]
    for group in DETAILED:
        doc = read_option(group, chosen[group])
        lines = [_hanging(f"  {group}={doc.option}: {doc.about}", 4)]
        lines += [_hanging(f"    {group}.{k.name}={k.value}" + (f"  # {k.comment}" if k.comment else ""), 8)
                  for k in doc.keys.values()]
        parts.append("\n".join(escape(line) for line in lines))
    return "\n\n".join(parts)


def _hanging(line: str, indent: int) -> str:
    """A line wrapped to the help's width with its continuation lines indented (Rich would start them at 0)."""
    import os
    import shutil
    import textwrap

    width = int(os.environ.get("TERMINAL_WIDTH") or shutil.get_terminal_size().columns) - 3  # Typer's margins
    return textwrap.fill(line, width=max(width, 40), subsequent_indent=" " * indent, break_on_hyphens=False,
                         break_long_words=False, drop_whitespace=True)


class TrainCommand(TyperCommand):
    """`rnnlab train`: its help lists the keys of the options the command line picks (`data=csv --help`)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if "--help" in args:
            from rnnlab.config.option_docs import UnknownOption

            try:
                self.help = f"{TRAIN_HELP}\n\n{options_help(args)}"
            except UnknownOption as exc:
                typer.echo(f"Error: {exc}", err=True)
                ctx.exit(2)
        return super().parse_args(ctx, args)


@app.command(cls=TrainCommand, context_settings=HYDRA_ARGS, help=TRAIN_HELP)
def train(ctx: typer.Context) -> None:
    from rnnlab.commands.train import run

    raise typer.Exit(run(list(ctx.args)))


CV_HELP = """Cross-validate one config: every fold is a training run (a Hydra multirun over cv.fold=0..k-1).

[bold]Usage:[/bold] rnnlab cv [HYDRA FLAGS] [KEY=VALUE ...]

Arguments are the same overrides as for `rnnlab train`, plus the cv.* keys: cv.k (folds, default 5), \
cv.strategy (auto | kfold | stratified | expanding | sliding; auto = expanding for forecasting series, \
stratified for classification, else kfold), cv.shuffle, cv.gap (windows left out between train and \
validation; default n_out - 1 for forecasting), cv.val_size, cv.max_train_size. The folds re-split \
train + val; the test split stays the same in every fold.

  rnnlab cv cv.k=5 train.epochs=10

  rnnlab cv cv.strategy=sliding cv.k=4 cv.gap=5 data.n_out=5

  rnnlab cv data=seqfile data.path=my_sequences.csv cv.strategy=stratified

  rnnlab cv cv.k=4 hydra/launcher=joblib hydra.launcher.n_jobs=2     (folds in parallel)

  rnnlab cv name=lstm_baseline arch=lstm optim.lr=0.003

  rnnlab cv --resume outputs/cv/2026-12-06_10-00-00     (finish a stopped cv: finished folds kept)

Writes outputs/cv/<timestamp>[_<name>]/: the fold run folders 0/, 1/, ..., cv_results.csv (one row \
per fold, then mean and std over the completed folds), cv_summary.json and, with train.plots, \
cv_folds.png, cv_loss.png and cv_predictions.png. A failed or diverged fold is listed and left out \
of the mean. Exit codes: 0 every fold completed, 1 a fold failed or diverged, 2 bad input, 130 interrupted. \
`rnnlab compare outputs/cv/<timestamp>` compares the folds.
"""


@app.command(context_settings=HYDRA_ARGS, help=CV_HELP)
def cv(ctx: typer.Context) -> None:
    from rnnlab.commands.cv import run

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


PREDICT_HELP = """Apply a trained run (or an exported folder) to new data, read as its training data were.

--input: a CSV series (forecasting: the next n_out steps after its last row, with dates), a sequence \
file (data=seqfile: CSV, NPZ or .ts; labels optional), a folder of .txt files or a file with one \
text per line (data=imdb), or an .npz with x (and mask) for the other tasks. --split test computes \
the run's predictions.csv again from its weights. --backend onnx runs the model's ONNX graph in \
onnxruntime (built on the fly from a run folder, or the export's model.onnx).

  rnnlab predict outputs/train/2026-12-06_12-00-00 --input new_sales.csv

  rnnlab predict RUN_DIR --input reviews.txt --output sentiment.csv --backend onnx

  rnnlab predict RUN_DIR --split test
"""


@app.command(help=PREDICT_HELP)
def predict(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A run folder, or a folder rnnlab export wrote."),
    input_path: str = typer.Option(None, "--input", "-i", help="New data to predict (see above)."),
    split: str = typer.Option(None, "--split", help="test: the run's own test split (its predictions.csv)."),
    output: str = typer.Option(None, "--output", "-o",
                               help="CSV to write (default: predictions_<input name>.csv here)."),
    backend: str = typer.Option(None, "--backend",
                                help="engine (NumPy) or onnx (onnxruntime); default: engine for a run, onnx for "
                                     "an export with model.onnx."),
    last: bool = typer.Option(False, "--last", help="Use the last epoch's weights, not the selected ones."),
) -> None:
    from rnnlab.commands.predict import run

    raise typer.Exit(run(run_dir, input_path, split, output, backend, "checkpoint_last" if last else "checkpoint"))


EXPORT_HELP = """Export a trained run's selected weights: ONNX, PyTorch, standalone NumPy, JSON, a serving app.

Formats (comma-separated): onnx (model.onnx, opset 17, fused LSTM/GRU/RNN nodes, dynamic batch and \
length; --quantize int8 adds model.int8.onnx), torch (model.safetensors + model_def.py), \
torch-export (model.pt2, needs torch), numpy (predict.py + weights.npz, needs only NumPy), keras \
(keras_model.py, Keras 3), savedmodel and tflite (need tensorflow), json (model.json; every export \
has it), serve (a FastAPI app on onnxruntime with a Dockerfile). The folder is written whole or \
not at all.

  rnnlab export outputs/train/2026-12-06_12-00-00 --format onnx,numpy

  rnnlab export RUN_DIR --format onnx --quantize int8 -o /tmp/model
"""


@app.command(help=EXPORT_HELP)
def export(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A run folder."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="Formats, comma-separated (see above)."),
    quantize: str = typer.Option(None, "--quantize", help="int8: also an INT8 ONNX graph (dynamic quantization)."),
    output: str = typer.Option(None, "--output", "-o", help="Folder to write (default: RUN_DIR/export)."),
    last: bool = typer.Option(False, "--last", help="Export the last epoch's weights, not the selected ones."),
) -> None:
    from rnnlab.commands.export import run

    raise typer.Exit(run(run_dir, fmt, output, quantize, "checkpoint_last" if last else "checkpoint"))


EXPLAIN_HELP = """Explain a trained run's predictions: attributions per input step (and feature), with sanity checks.

Methods (comma-separated): ig (integrated gradients, Gauss-Legendre or midpoint rule, with its \
completeness gap), saliency, smoothgrad, gxi (gradient x input), occlusion, attention (attention \
pooling's weights), shap (Shapley values of 16 groups of steps, shap's PermutationExplainer). Text \
models are attributed at their embedding vectors, summed per token. Every \
method gets a deletion curve against random orders and the model-randomisation test (Spearman between \
the trained and a re-initialised model, cascading from the head); on the adding and copy tasks the \
share of |attribution| on the steps the answer depends on. Writes RUN_DIR/explain (or -o DIR): \
explain.json, sanity.json, attributions.npz, steps.csv (and tokens.html for text; heatmaps for \
series). Also: layer integrated gradients per recurrent layer (layers.png), and a global view over \
--overview samples (top tokens, or features and lags ranked by attribution and permutation importance). \
--maximize finds an input that maximises a hidden unit or an output (writes RUN_DIR/maximize).

  rnnlab explain outputs/train/2026-12-06_12-00-00 --samples 0:20

  rnnlab explain RUN_DIR --method ig,occlusion --target class:1 --baseline pad --steps 32

  rnnlab explain RUN_DIR --input new_series.csv --method ig

  rnnlab explain RUN_DIR --maximize unit:0:3
"""


@app.command(help=EXPLAIN_HELP)
def explain(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A run folder."),
    method: str = typer.Option("ig,saliency,gxi,occlusion", "--method", "-m", help="Methods, comma-separated."),
    split: str = typer.Option("test", "--split", help="The split whose samples are explained: test, val or train."),
    samples: str = typer.Option(None, "--samples", help="Sample numbers of the split: A:B, K or I,J,K (default 0:20)."),
    input_file: str = typer.Option(None, "--input", "-i",
                                   help="Explain new inputs from a file (as rnnlab predict --input reads it)."),
    target: str = typer.Option("pred", "--target",
                               help="pred (the predicted class or first forecast step), class:K, or step:H."),
    baseline: str = typer.Option("zero", "--baseline", help="zero, mean (the training inputs' mean) or pad (text)."),
    steps: int = typer.Option(64, "--steps", help="Integrated gradients' quadrature points."),
    rule: str = typer.Option("gauss-legendre", "--rule", help="gauss-legendre or midpoint (integrated gradients)."),
    groups: int = typer.Option(16, "--groups", help="shap: players per sample, groups of consecutive steps."),
    output: str = typer.Option(None, "--output", "-o", help="Folder to write (default: RUN_DIR/explain)."),
    no_randomisation: bool = typer.Option(False, "--no-randomisation", help="Skip the model-randomisation test."),
    layers: bool = typer.Option(True, "--layers/--no-layers", help="Layer integrated gradients per recurrent layer."),
    overview: int = typer.Option(500, "--overview", help="Samples of the split for the global view (0: none)."),
    overview_method: str = typer.Option("gxi", "--overview-method", help="The global view's method."),
    maximize: str = typer.Option(None, "--maximize",
                                 help="Activation maximisation instead: unit:L:K, class:K or output:K."),
    length: int = typer.Option(0, "--length", help="--maximize: steps of the optimised input (0: the data's)."),
    iterations: int = typer.Option(300, "--iterations", help="--maximize: gradient-ascent iterations."),
    last: bool = typer.Option(False, "--last", help="Explain the last epoch's weights, not the selected ones."),
) -> None:
    from rnnlab.commands.explain import run

    raise typer.Exit(run(run_dir, method, split, samples, target, baseline, steps, rule, output,
                         not no_randomisation, "checkpoint_last" if last else "checkpoint", groups=groups,
                         layers=layers, overview=overview, overview_method=overview_method, input_file=input_file,
                         maximize=maximize, length=length, iterations=iterations))


ATTACK_HELP = """Adversarial examples: a trained run's accuracy (or error) under FGSM and PGD attacks against eps.

Methods (comma-separated): fgsm (one step of the whole budget along the loss gradient, Goodfellow et al. \
2015), pgd (projected gradient ascent from a random start, --pgd-steps steps of 2.5 eps / steps; per \
sample the highest-loss point of its iterates and FGSM's is kept; Madry et al. 2018). Series are \
attacked in an L-infinity ball of eps times each feature's standard deviation (train split); text \
models at their embedding vectors, in an L2 ball per review of radius eps x the mean embedding norm x \
sqrt(its length) (Miyato et al. 2016). Padded steps are never moved. The metric is the run's \
validation accuracy (classification) or MSE and MAE in the model's scaled units (regression); eps 0 \
is the clean model. Writes RUN_DIR/attack (or -o DIR): attack.json, attack.csv, attack.png (the \
metric against eps), and tokens.csv for text (the tokens whose embeddings moved most under the \
strongest attack).

  rnnlab attack outputs/train/2026-12-06_12-00-00

  rnnlab attack RUN_DIR --method pgd --eps 0,0.05,0.1 --pgd-steps 20 --samples 0:200
"""


@app.command(help=ATTACK_HELP)
def attack(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A run folder."),
    method: str = typer.Option("fgsm,pgd", "--method", "-m", help="Attacks, comma-separated: fgsm, pgd."),
    split: str = typer.Option("test", "--split", help="The split whose samples are attacked: test, val or train."),
    samples: str = typer.Option(None, "--samples",
                                help="Sample numbers of the split: A:B, K or I,J,K (default 0:500, or all of a "
                                     "smaller split)."),
    eps: str = typer.Option("0,0.01,0.02,0.05,0.1,0.2", "--eps",
                            help="Budgets, comma-separated, >= 0, relative to the input scale (see above)."),
    pgd_steps: int = typer.Option(10, "--pgd-steps", help="PGD's steps (at least 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of PGD's random start."),
    output: str = typer.Option(None, "--output", "-o", help="Folder to write (default: RUN_DIR/attack)."),
    last: bool = typer.Option(False, "--last", help="Attack the last epoch's weights, not the selected ones."),
) -> None:
    from rnnlab.commands.attack import run

    raise typer.Exit(run(run_dir, method, split, samples, eps, pgd_steps, seed, output,
                         "checkpoint_last" if last else "checkpoint"))


GENERATE_HELP = """Text sampled from a trained language model (a run of data=textlm).

Reads the prompt once and continues it token by token, carrying the recurrent state (one step per \
token). Sampling: --temperature T (> 0; below 1 sharper, above 1 flatter), --top-k K (only the K most \
likely tokens), --top-p P (nucleus: the smallest set of tokens whose probability reaches P), --greedy \
(always the most likely token). An empty prompt starts a new document. Characters the vocabulary \
lacks are refused (say which); at word level unknown words are read as <oov>. A seq2seq run of token \
sources (data=reverse_digits) decodes the prompt as its source instead, greedily or with its beam search.

  rnnlab generate outputs/char_rnn --prompt "This movie" --length 300 --temperature 0.8 --n 3

  rnnlab generate RUN_DIR --top-p 0.9 --seed 7 -o samples.json

  rnnlab generate SEQ2SEQ_RUN_DIR --prompt "3 1 4 1 5"
"""


@app.command(help=GENERATE_HELP)
def generate(
    run_dir: str = typer.Argument(..., metavar="RUN_DIR", help="A run folder of a language model."),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue (default: a new document)."),
    length: int = typer.Option(200, "--length", "-l", help="Tokens to generate per sample."),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="Softmax temperature, > 0."),
    top_k: int = typer.Option(None, "--top-k", help="Sample among the K most likely tokens only."),
    top_p: float = typer.Option(None, "--top-p", help="Nucleus sampling: the smallest set reaching P, in (0, 1]."),
    greedy: bool = typer.Option(False, "--greedy", help="Always take the most likely token."),
    n: int = typer.Option(1, "--n", "-n", help="Number of samples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling."),
    output: str = typer.Option(None, "--output", "-o", help="Also write the samples to this JSON file."),
    last: bool = typer.Option(False, "--last", help="Use the last epoch's weights, not the selected ones."),
) -> None:
    from rnnlab.commands.generate import run

    raise typer.Exit(run(run_dir, prompt, length, temperature, top_k, top_p, seed, n, greedy, output,
                         "checkpoint_last" if last else "checkpoint"))


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


LR_FIND_HELP = """Learning-rate range test (Smith 2017, as fastai's lr_find): sweep the lr, suggest one.

Arguments are the same overrides as for `rnnlab train`. A short run raises the learning rate \
exponentially from --start to --end over --steps optimizer steps (as many epochs as that takes), \
recording the loss of every step and its smoothed value (exponential moving average, beta 0.98, bias \
corrected); it stops early when the smoothed loss exceeds 4x its minimum. The suggestion is the lr where \
the smoothed loss falls fastest against log lr; it is printed with the override to paste \
(optim.lr=...). The weights of this run are not a trained model.

  rnnlab lr-find

  rnnlab lr-find arch=gru optim=sgd --end 1

  rnnlab lr-find data=adding data.length=50 --steps 200 -o /tmp/lr_adding

Writes outputs/lr_find/<timestamp>[_<name>]/ (or -o DIR): lr_find.csv (step, lr, loss, smoothed_loss), \
plots/lr_find.png (loss against lr, the suggestion marked) and summary.json (its lr_find entry has the \
suggestion). Runs with monitor=none train.plots=false train.progress=false unless the overrides say \
otherwise. Exit codes: 0 a suggestion, 1 none or the run failed, 2 bad input, 130 interrupted.
"""


@app.command("lr-find", context_settings=HYDRA_ARGS, help=LR_FIND_HELP)
def lr_find(
    ctx: typer.Context,
    start: float = typer.Option(1e-7, "--start", help="First learning rate of the sweep."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate of the sweep."),
    steps: int = typer.Option(100, "--steps", help="Optimizer steps from --start to --end."),
    output: str = typer.Option(None, "--output", "-o", help="Run folder (default: outputs/lr_find/<timestamp>)."),
) -> None:
    from rnnlab.commands.lr_find import run

    raise typer.Exit(run(list(ctx.args), start=start, end=end, steps=steps, output=output))


COMPARE_HELP = """Compare runs: a ranked table, comparison.csv and loss_curves.png in --output (default ./comparison/).

Arguments are run folders, multirun folders (0/, 1/, ...), folders holding runs (searched 3 levels \
down) or quoted globs. Runs that failed, diverged or were interrupted are listed but left out of the \
ranking and the statistics. --metric (default test_mse for regression, test_accuracy for \
classification; e.g. val_mae, r2, f1) sets the ranking. --by KEY groups the runs by a config value \
(mean, std, n; Welch's t-test and Mann-Whitney U of the best group against each other group, into \
comparison_groups.csv). --ensemble averages the runs' test predictions (soft vote for classification). \
--baselines ranks the runs' baselines among them (rows "baseline: ets", ...): does any run beat ETS?

  rnnlab compare outputs/train/multirun/2024-05-01_12-00-00

  rnnlab compare 'outputs/train/2024-05-*' --metric val_mae

  rnnlab compare outputs/train/multirun/2024-05-01_12-00-00 --baselines --metric test_mase

  rnnlab compare outputs/train/multirun/2024-05-01_12-00-00 --by arch.cell --ensemble --output /tmp/cmp
"""


@app.command(help=COMPARE_HELP)
def compare(
    inputs: Annotated[list[str], typer.Argument(metavar="RUN_DIR|SWEEP_DIR|GLOB ...", help="Runs to compare.")],
    by: str = typer.Option(None, "--by", help="Group by this config key (dotted, e.g. arch.cell, optim.lr)."),
    metric: str = typer.Option(None, "--metric", help="Rank by this metric (test_mse, val_accuracy, r2, ...)."),
    output: str = typer.Option(None, "--output", "-o", help="Folder for the files (default: ./comparison)."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Also score the mean of the runs' test predictions."),
    baselines: bool = typer.Option(False, "--baselines",
                                   help="Rank the runs' baselines (naive, drift, ETS, ...) among them."),
) -> None:
    from rnnlab.commands.compare import run

    raise typer.Exit(run(inputs, by=by, metric=metric, output=output, use_ensemble=ensemble,
                         use_baselines=baselines))


SEARCH_HELP = """Hyper-parameter search with Optuna: each trial is a training run in outputs/search/STUDY/trial_NNNN/.

[bold]Usage:[/bold] rnnlab search [SPACE] [--param KEY=SPEC ...] [OPTIONS] [KEY=VALUE ...]

SPACE is a file in conf/search/ (sine_small, adding_memory) or a path to a YAML file with objective, \
params and overrides. --param adds or replaces a parameter: float:LOW:HIGH, float:LOW:HIGH:log, \
float:LOW:HIGH:STEP, int:LOW:HIGH, int:LOW:HIGH:log, int:LOW:HIGH:STEP, choice:A,B,C. A KEY is a config \
key (optim.lr) or a group (arch, optim). KEY=VALUE overrides apply to every trial.

  rnnlab search sine_small --n-trials 12       (the same command again adds trials to the study)

  rnnlab search --param optim.lr=float:1e-4:1e-1:log --param arch=choice:rnn,lstm,gru --study-name lr_cell \
train.epochs=5

  rnnlab search --sampler grid --param arch=choice:rnn,gru --param arch.hidden_size=int:16:64:16 --study-name grid

  rnnlab search sine_small --sampler cmaes --pruner hyperband --study-name sine_cma

  rnnlab search sine_small --metric val_r2 --n-jobs 2 --study-name sine_r2     (maximised; 2 worker processes)

  rnnlab search sine_small --storage sqlite:////tmp/sine.db --study-name sine --seed 1   (and --seed 2 \
in a second terminal: two workers, one study)

  rnnlab train -cd outputs/search/sine_small experiment=best     (train the best trial again)

Objective: any number of summary.json (val_loss = best epoch's validation loss, test_mse, val_accuracy, \
...), minimised or maximised (inferred from the name, or --direction). Poor trials are pruned from \
their per-epoch validation metric (--pruner median|hyperband|none). The study lives in \
sqlite:///outputs/search/STUDY/study.db: the same command again adds --n-trials more trials; \
several processes given the same --storage and --study-name share the study (on several machines: \
--storage postgresql+psycopg://USER:PASSWORD@HOST/DB, with pip install 'rnnlab[postgres]'). Ctrl-C stops \
cleanly; a trial interrupted, or whose worker was killed (no heartbeat), is retried first when the search \
goes on and resumes its run folder from its last completed epoch. \
The folder gets trials.csv, search_summary.json, best_config.yaml, experiment/best.yaml, \
optimization_history.png and param_importances.png. For a plain grid over config values, \
Hydra's multirun also works: rnnlab train -m arch=rnn,lstm optim.lr=0.01,0.001.
"""


@app.command(context_settings=HYDRA_ARGS, help=SEARCH_HELP)
def search(
    ctx: typer.Context,
    space: str = typer.Argument(None, metavar="[SPACE]", help="A conf/search name or a YAML file.", show_default=False),
    param: Annotated[list[str], typer.Option("--param", help="KEY=SPEC, repeatable (see above).")] = None,
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, grid or cmaes."),
    n_trials: int = typer.Option(None, "--n-trials",
                                 help="New trials (default: 20; grid: the points not run yet; 0: only the outputs)."),
    timeout: float = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
    metric: str = typer.Option(None, "--metric", help="Objective from summary.json (default: val_loss)."),
    direction: str = typer.Option(None, "--direction", help="minimize or maximize (default: from the metric's name)."),
    pruner: str = typer.Option("median", "--pruner", help="median, hyperband or none."),
    pruner_startup: int = typer.Option(5, "--pruner-startup", help="Median: completed trials before pruning."),
    pruner_warmup: int = typer.Option(2, "--pruner-warmup", help="Median: epochs every trial trains."),
    n_jobs: int = typer.Option(1, "--n-jobs", help="Worker processes on this machine."),
    storage: str = typer.Option(None, "--storage", help="Optuna RDB URL (default: sqlite in the study folder)."),
    study_name: str = typer.Option(None, "--study-name", help="Study name (default: the SPACE name, or 'search')."),
    output: str = typer.Option(None, "--output", help="Study folder (default: outputs/search/STUDY)."),
    seed: int = typer.Option(None, "--seed", help="Seeds the sampler (default: the trials' seed=...)."),
    heartbeat: int = typer.Option(None, "--heartbeat", help="Seconds between a running trial's heartbeats; one "
                                  "silent for 4 is retried (default: the study's, else 30)."),
) -> None:
    from rnnlab.commands.search import SearchOptions, run

    raise typer.Exit(run(SearchOptions(
        space=space, params=list(param or []), args=list(ctx.args), sampler=sampler, n_trials=n_trials,
        timeout=timeout, metric=metric, direction=direction, pruner=pruner, pruner_startup=pruner_startup,
        pruner_warmup=pruner_warmup, n_jobs=n_jobs, storage=storage, study_name=study_name, output=output,
        seed=seed, heartbeat=heartbeat)))


if __name__ == "__main__":  # pragma: no cover - `python -m rnnlab` is the same, with signals from the first line
    from rnnlab.__main__ import main as _main

    _main()
