"""Typed schemas for the config groups, and the range checks run on them.

The YAML files in conf/ hold the values; these dataclasses give them types, so a
wrong type (`optim.lr=abc`) or an unknown key is caught by OmegaConf before a run
starts, and `__post_init__` gives range errors as one line naming the key.

Optimizer and schedule options differ per choice (Adam has betas, SGD has not), so
their schemas are derived from the YAML defaults of the chosen file (see validate.py);
an optimizer's ranges are checked here (`check_optim`, the engine's messages, no optimizer
built), a schedule's by building it (cheap, and its bounds depend on the run's lr). The
other groups have a fixed set of keys and are written out here; arch, reg and monitor are
registered as Hydra structured configs (composition.py), so their YAML options are typed
deltas over one default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rnnlab.data.augment import normalize_specs
from rnnlab.data.baselines import BASELINES
from rnnlab.data.calendar import offset
from rnnlab.data.seqformats import FORMATS as SEQFILE_FORMATS
from rnnlab.data.seqformats.npzfile import LAYOUTS as NPZ_LAYOUTS
from rnnlab.data.windows import fraction
from rnnlab.engine.model import check_spec
from rnnlab.runtime.cpu import usable_cores

DTYPES = ("float32", "float64")
LOSSES = ("mse", "mae", "huber", "bce", "cross_entropy", "focal")
MONITORS = ("val_loss", "val_accuracy")
ATTENTIONS = ("none", "luong", "bahdanau")  # seq2seq data only (arch.attention)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)} (got '{value}')")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"{key} must be >= {low} (got {value})")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key} must be > 0 (got {value})")


def _fraction(key: str, value: float, *, closed: bool = False) -> None:
    ok = 0 <= value <= 1 if closed else 0 <= value < 1
    if not ok:
        raise ValueError(f"{key} must be in [0, 1{']' if closed else ')'} (got {value})")


def _augment_specs(value: Any) -> list[dict[str, Any]]:
    """data.augment as full specs (each name with its parameters); ValueError naming the entry."""

    return normalize_specs(value, key="data.augment")


def _splits(val_frac: float, test_frac: float) -> None:
    _fraction("data.val_frac", val_frac)
    _fraction("data.test_frac", test_frac)
    if val_frac + test_frac >= 0.9:
        raise ValueError("data.val_frac + data.test_frac must leave at least 10 % for training")


@dataclass
class ArchConf:
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    merge_mode: str = "concat"
    dropout: float = 0.0
    # The cell's nonlinearity where it has that option (rnn: tanh | relu; indrnn: relu | tanh); null = its default.
    nonlinearity: str | None = None
    # The cell's other options (see its module in rnnlab/engine/cells/), e.g. {per_gate: false} for ln_lstm.
    cell_options: dict[str, Any] = field(default_factory=dict)
    pooling: str = "last"
    # Causal Conv1D front (relu) before the recurrent layers; 0 channels = none.
    conv_channels: int = 0
    conv_kernel: int = 3
    conv_dilation: int = 1
    # LayerNorm on every recurrent layer's output.
    layer_norm: bool = False
    # BatchNorm over batch and time on every recurrent layer's output (running statistics for evaluation).
    batch_norm: bool = False
    # Encoder-decoder attention for the seq2seq data sets (reverse_digits, sine2cosine): none | luong | bahdanau.
    attention: str = "none"
    # Multi-head self-attention (residual) on the top layer's outputs before pooling: heads (0 = none), causal mask.
    self_attention_heads: int = 0
    self_attention_causal: bool = False
    # Language models: the output layer shares the input embedding's matrix (rnnlab/train/tasks/stream.py).
    tie_weights: bool = False

    def __post_init__(self) -> None:

        _choice("arch.attention", self.attention, ATTENTIONS)
        _at_least("arch.conv_channels", self.conv_channels, 0)
        _at_least("arch.conv_kernel", self.conv_kernel, 1)
        _at_least("arch.conv_dilation", self.conv_dilation, 1)
        _at_least("arch.hidden_size", self.hidden_size, 1)
        if not 1 <= self.num_layers <= 5:
            raise ValueError(f"arch.num_layers must be in 1..5 (got {self.num_layers})")
        _fraction("arch.dropout", self.dropout)
        check_spec(self, key=lambda name: f"arch.{name}")  # the model's own constraints, named as config keys


@dataclass
class RegConf:
    name: str = "none"
    input_dropout: float = 0.0
    dropout: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    # Annealed gradient noise N(0, eta / (1 + t)^gamma) (Neelakantan et al. 2015); 0 = off.
    grad_noise_eta: float = 0.0
    grad_noise_gamma: float = 0.55
    # Mixup (Zhang et al. 2018): lambda ~ Beta(alpha, alpha) per batch; 0 = off.
    mixup_alpha: float = 0.0
    # Recurrent (variational) dropout on h_{t-1} in the recurrent product, one mask per sequence
    # (Gal & Ghahramani 2016), and zoneout (Krueger et al. 2017); rnn, lstm, gru cells; 0 = off.
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0

    def __post_init__(self) -> None:
        _fraction("reg.input_dropout", self.input_dropout)
        _fraction("reg.dropout", self.dropout)
        _at_least("reg.l2", self.l2, 0.0)
        _at_least("reg.l1", self.l1, 0.0)
        _at_least("reg.grad_noise_eta", self.grad_noise_eta, 0.0)
        _at_least("reg.grad_noise_gamma", self.grad_noise_gamma, 0.0)
        _at_least("reg.mixup_alpha", self.mixup_alpha, 0.0)
        _fraction("reg.recurrent_dropout", self.recurrent_dropout)
        _fraction("reg.zoneout", self.zoneout)


@dataclass
class TrainConf:
    epochs: int = 30
    batch_size: int = 64
    loss: str | None = None
    huber_delta: float = 1.0
    clip_norm: float | None = 5.0
    clip_value: float | None = None
    dtype: str = "float32"
    monitor: str = "val_loss"
    early_stopping_patience: int | None = None
    # An epoch counts as an improvement for early stopping only when it beats the best by more than this.
    early_stopping_min_delta: float = 0.0
    # Test (and report) the best epoch's weights; false = the last epoch's.
    restore_best_weights: bool = True
    # Label smoothing for bce (y (1 - eps) + eps / 2), cross_entropy and focal; training loss only.
    label_smoothing: float = 0.0
    # Focal loss (train.loss=focal): gamma, and alpha: one number in [0, 1] (binary) or one weight per class.
    focal_gamma: float = 2.0
    focal_alpha: Any = None
    eval_batch_size: int = 1024
    progress: bool = True
    plots: bool = True
    bucket_by_length: bool = True
    threshold: float | None = None
    blas_threads: int | None = None
    workers: int = 1
    # At most this many training batches per epoch (null = all), as Lightning's limit_train_batches: smoke tests.
    limit_batches: int | None = None
    # Also save checkpoint_last every N optimizer steps inside an epoch (null = at epoch ends only),
    # as Lightning's every_n_train_steps: a resume then continues from that step.
    checkpoint_every_steps: int | None = None
    # Retrain from new initial weights (a new seed stream) up to N times when an attempt ends at chance level
    # (its best validation score no better than the baseline's); the best attempt by validation is kept.
    restarts: int = 0
    # Seq2seq data only: teacher-forcing ratio at the first epoch, decaying linearly to teacher_forcing_end
    # (null = no decay) by the last one (scheduled sampling), and the beam width of the test decoding (1 = greedy).
    teacher_forcing: float = 1.0
    teacher_forcing_end: float | None = None
    beam_size: int = 1
    # Stateful truncated BPTT on data whose samples continue each other (data=textlm, data=echo): the stream is
    # cut into batch_size parallel streams read in order, chunks of `bptt` steps (null: the data's windows), and
    # each chunk starts from the state the previous one ended in (its gradient stopped there); reset at epoch starts.
    stateful: bool = False
    bptt: int | None = None
    # Shuffle the training batches each epoch (null: yes, except with stateful, whose streams stay in order).
    shuffle: bool | None = None

    def __post_init__(self) -> None:
        _at_least("train.epochs", self.epochs, 1)
        if self.bptt is not None:
            _at_least("train.bptt", self.bptt, 1)
        if self.stateful and self.shuffle:
            raise ValueError("train.stateful=true reads each stream in order: drop train.shuffle=true "
                             "(it would cut the carried state from the text it belongs to)")
        if self.bptt is not None and not self.stateful:
            raise ValueError("train.bptt sets the chunk length of stateful training: add train.stateful=true "
                             "(without it, the data's windows are the truncation: data.seq_len)")
        _fraction("train.teacher_forcing", self.teacher_forcing, closed=True)
        if self.teacher_forcing_end is not None:
            _fraction("train.teacher_forcing_end", self.teacher_forcing_end, closed=True)
        _at_least("train.beam_size", self.beam_size, 1)
        _at_least("train.batch_size", self.batch_size, 1)
        _at_least("train.eval_batch_size", self.eval_batch_size, 1)
        if self.loss is not None:
            _choice("train.loss", self.loss, LOSSES)
        _positive("train.huber_delta", self.huber_delta)
        if self.clip_norm is not None:
            _positive("train.clip_norm", self.clip_norm)
        if self.clip_value is not None:
            _positive("train.clip_value", self.clip_value)
        _choice("train.dtype", self.dtype, DTYPES)
        _choice("train.monitor", self.monitor, MONITORS)
        if self.early_stopping_patience is not None:
            _at_least("train.early_stopping_patience", self.early_stopping_patience, 1)
        _at_least("train.early_stopping_min_delta", self.early_stopping_min_delta, 0.0)
        _fraction("train.label_smoothing", self.label_smoothing)
        _at_least("train.focal_gamma", self.focal_gamma, 0.0)
        self._check_focal_alpha()
        if self.blas_threads is not None:
            _at_least("train.blas_threads", self.blas_threads, 1)
        _at_least("train.workers", self.workers, 1)
        cores = usable_cores()
        if self.workers > cores:  # each worker is a full model replica busy-polling its socket: more is only slower
            raise ValueError(f"train.workers must be <= {cores}, the cores this process may use (got {self.workers})")
        if self.limit_batches is not None:
            _at_least("train.limit_batches", self.limit_batches, 1)
        if self.checkpoint_every_steps is not None:
            _at_least("train.checkpoint_every_steps", self.checkpoint_every_steps, 1)
        _at_least("train.restarts", self.restarts, 0)
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"train.threshold must be in (0, 1) or null (got {self.threshold})")


    def _check_focal_alpha(self) -> None:
        a = self.focal_alpha
        if a is None:
            return
        bad = f"train.focal_alpha must be null, a number in [0, 1] or a list of class weights >= 0 (got {a!r})"
        if isinstance(a, bool) or isinstance(a, str):
            raise ValueError(bad)
        if isinstance(a, int | float):
            if not 0 <= a <= 1:
                raise ValueError(bad)
            self.focal_alpha = float(a)
            return
        try:
            values = [float(v) for v in a]
        except (TypeError, ValueError):
            raise ValueError(bad) from None
        if not values or any(not v >= 0 for v in values) or any(isinstance(v, bool | str) for v in a):
            raise ValueError(bad)
        self.focal_alpha = values


@dataclass
class MonitorConf:
    name: str = "default"
    every_n_steps: int = 10
    probe_size: int = 16
    time_gradients: bool = True
    weights: bool = True
    states: bool = True
    histograms: bool = True
    gif: bool = False
    vanish_below: float = 1e-5
    explode_above: float = 1000.0
    saturation_margin: float = 0.05
    clusters: int = 4

    def __post_init__(self) -> None:
        _at_least("monitor.every_n_steps", self.every_n_steps, 0)
        _at_least("monitor.probe_size", self.probe_size, 1)
        _positive("monitor.vanish_below", self.vanish_below)
        _positive("monitor.explode_above", self.explode_above)
        if self.explode_above <= self.vanish_below:
            raise ValueError(f"monitor.explode_above ({self.explode_above}) must be larger than "
                             f"monitor.vanish_below ({self.vanish_below})")
        if not 0 < self.saturation_margin < 0.5:
            raise ValueError(f"monitor.saturation_margin must be in (0, 0.5) (got {self.saturation_margin})")
        _at_least("monitor.clusters", self.clusters, 1)
        if self.gif and not self.histograms:
            raise ValueError("monitor.gif=true needs monitor.histograms=true (the GIF animates them)")

    @property
    def enabled(self) -> bool:
        return bool(self.every_n_steps or self.time_gradients or self.weights or self.states or self.histograms)


LOGGERS = ("none", "tensorboard")


@dataclass
class LoggerConf:
    """Where a run logs beside its own files (conf/logger/): none, or TensorBoard event files."""

    name: str = "none"
    every_n_steps: int = 10
    histogram_every_n_epochs: int = 1

    def __post_init__(self) -> None:
        _choice("logger.name", self.name, LOGGERS)
        _at_least("logger.every_n_steps", self.every_n_steps, 0)
        _at_least("logger.histogram_every_n_epochs", self.histogram_every_n_epochs, 0)


CV_STRATEGIES = ("auto", "kfold", "stratified", "expanding", "sliding")


@dataclass
class CvConf:
    """Cross-validation (rnnlab cv; rnnlab/data/folds.py). fold null = the ordinary train/val/test split."""

    fold: int | None = None
    k: int = 5
    # auto: expanding for forecasting series, stratified for one class label per sequence, else kfold.
    strategy: str = "auto"
    shuffle: bool = True
    # Samples left out between train and val (time-series strategies); null = n_out - 1 for forecasting windows.
    gap: int | None = None
    # Time-series strategies: samples in each validation block (null = n // (k + 1)) and the most in a
    # training block (null: all before the block for expanding, the first fold's size for sliding).
    val_size: int | None = None
    max_train_size: int | None = None

    def __post_init__(self) -> None:
        _choice("cv.strategy", self.strategy, CV_STRATEGIES)
        _at_least("cv.k", self.k, 2)
        if self.fold is not None and not 0 <= self.fold < self.k:
            raise ValueError(f"cv.fold must be in 0..{self.k - 1} for cv.k={self.k} (got {self.fold})")
        if self.gap is not None:
            _at_least("cv.gap", self.gap, 0)
        for key in ("val_size", "max_train_size"):
            if getattr(self, key) is not None:
                _at_least(f"cv.{key}", getattr(self, key), 1)
        if self.strategy in ("kfold", "stratified"):
            given = [f"cv.{key}" for key in ("gap", "val_size", "max_train_size") if getattr(self, key)]
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise ValueError(f"{' and '.join(given)} {verb} to cv.strategy expanding or sliding "
                                 f"(got {self.strategy})")


@dataclass
class WindowConf:
    """Forecasting windows shared by the series data sets: n_in steps in, n_out out, time-ordered splits.

    The test part is stated by one of test_frac, test_size (and for dated CSVs test_start or
    test_path), the validation part by one of val_frac, val_size (val_start); a fraction of 0.15
    when none is given. The rule is in rnnlab/data/windows.py.
    """

    n_in: int = 50
    n_out: int = 1
    val_frac: float | None = None
    test_frac: float | None = None
    # Rows held out at the end (test) and right before it (validation), counted in rows of the series.
    val_size: int | None = None
    test_size: int | None = None
    scale: bool = True
    # direct: one model output per horizon step; recursive: predict one step, roll n_out times; stream: the series
    # as one stream in windows of n_in steps, the next value the target at every step (train.stateful reads it whole)
    strategy: str = "direct"
    # Training-batch augmentation (rnnlab/data/augment.py): names or {name: ..., params, p: ...}.
    augment: list[Any] = field(default_factory=list)
    # Forecasting baselines scored beside the model (rnnlab/data/baselines.py); [] for none.
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))

    def _check_windows(self) -> None:
        _choice("data.strategy", self.strategy, ("direct", "recursive", "stream"))
        for name in self.baselines:
            _choice("data.baselines", name, tuple(BASELINES))
        self.baselines = list(dict.fromkeys(self.baselines))  # each once, in the order given
        _at_least("data.n_in", self.n_in, 1)
        _at_least("data.n_out", self.n_out, 1)
        for part in ("val", "test"):
            self._check_part(part)
        val, test = fraction(self, "val"), fraction(self, "test")
        if val is not None and test is not None:
            _splits(val, test)
        self.augment = _augment_specs(self.augment)

    def _check_part(self, part: str) -> None:
        """At most one way of stating the part (none: the default fraction), each in range."""
        given = [f"data.{part}_{k}" for k in ("frac", "size", "start", "path")
                 if getattr(self, f"{part}_{k}", None) is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} both state the {part} part: give only one (set the other "
                             "to null)")
        if getattr(self, f"{part}_frac") is not None:
            _fraction(f"data.{part}_frac", getattr(self, f"{part}_frac"))
        size = getattr(self, f"{part}_size")
        if size is not None and size < self.n_out:
            raise ValueError(f"data.{part}_size must be >= data.n_out={self.n_out}, the targets of one window "
                             f"(got {size}): no {part} window would fit")


@dataclass
class SineConf(WindowConf):
    name: str = "sine"
    length: int = 2000
    periods: list[float] = field(default_factory=lambda: [25.0, 60.0, 110.0])
    amplitudes: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.3])
    noise: float = 0.1

    def __post_init__(self) -> None:
        self._check_windows()
        _at_least("data.noise", self.noise, 0.0)
        if len(self.periods) != len(self.amplitudes) or not self.periods:
            raise ValueError("data.periods and data.amplitudes must be non-empty and of equal length")
        for p in self.periods:
            _positive("data.periods", p)
        # Each split needs at least one window, so the train part alone must hold one.
        held = [self.length * f if f is not None else s
                for f, s in ((fraction(self, "val"), self.val_size), (fraction(self, "test"), self.test_size))]
        need = int(self.n_in + self.n_out + sum(held)) + 3
        if self.length < need:
            raise ValueError(
                f"data.length {self.length} is too short for n_in={self.n_in}, n_out={self.n_out}"
                f" and the splits (need at least {need})"
            )


TRANSFORMS = ("none", "log", "diff", "returns", "log_returns")
NAN_POLICIES = ("error", "drop", "ffill", "interpolate")
DUPLICATES = ("error", "mean", "last", "first", "sum")


@dataclass
class CsvConf(WindowConf):
    name: str = "csv"
    # Path to the CSV; null means `default_file` inside $RNNLAB_DATA (default ../shared/data).
    path: str | None = None
    default_file: str | None = None
    date_column: str | None = "Date"
    target: str = "Close"
    covariates: list[str] = field(default_factory=list)
    transform: str = "none"
    covariate_transform: str = "none"
    nan_policy: str = "error"
    # Rows sharing a date: error, or aggregate them (mean, last, first, sum).
    duplicates: str = "error"
    # The series' frequency (a pandas offset alias: D, B, W, MS, ME, QS, YS, h, ...); null = inferred from the dates.
    freq: str | None = None
    n_in: int = 60
    # Season of the seasonal-naive baseline; null = from the frequency (5 business days, 12 months, ...), 0 = off.
    seasonal_period: int | None = None
    # The validation and test parts from a date on (the first target date), and a test file continuing the series.
    val_start: str | None = None
    test_start: str | None = None
    test_path: str | None = None

    def __post_init__(self) -> None:
        if not self.path and not self.default_file:
            raise ValueError("data.path must name a CSV file (e.g. data.path=prices.csv)")
        _choice("data.transform", self.transform, TRANSFORMS)
        _choice("data.covariate_transform", self.covariate_transform, TRANSFORMS)
        _choice("data.nan_policy", self.nan_policy, NAN_POLICIES)
        _choice("data.duplicates", self.duplicates, DUPLICATES)
        self._check_windows()
        if self.seasonal_period is not None:
            _at_least("data.seasonal_period", self.seasonal_period, 0)
        if self.freq is not None:
            try:
                offset(self.freq)
            except ValueError as exc:
                raise ValueError(f"data.freq: {exc}") from None
        self._check_dated()

    def _check_dated(self) -> None:
        """The options that read the date column need one, and dates."""
        for key in ("val_start", "test_start"):
            value = getattr(self, key)
            if value is None:
                continue
            if not self.date_column:
                raise ValueError(f"data.{key} needs dates: set data.date_column")
            if not _is_date(value):
                raise ValueError(f"data.{key} must be a date such as 2020-01-31 (got {value!r})")
        if self.duplicates != "error" and not self.date_column:
            raise ValueError("data.duplicates aggregates rows of one date, so it needs data.date_column")


def _is_date(value: Any) -> bool:
    import pandas as pd

    try:
        return not pd.isna(pd.Timestamp(str(value)))
    except (TypeError, ValueError):
        return False


@dataclass
class AddingConf:
    name: str = "adding"
    length: int = 100
    n_train: int = 10000
    n_val: int = 1000
    n_test: int = 1000

    def __post_init__(self) -> None:
        _at_least("data.length", self.length, 2)
        for key in ("n_train", "n_val", "n_test"):
            _at_least(f"data.{key}", getattr(self, key), 1)


@dataclass
class ImdbConf:
    name: str = "imdb"
    # aclImdb folder or its .tar.gz; null means aclImdb_v1_labeled.tar.gz in $RNNLAB_DATA.
    path: str | None = None
    vocab_size: int = 20000
    min_freq: int = 1
    maxlen: int = 400
    truncating: str = "pre"
    padding: str = "post"
    lowercase: bool = True
    punctuation: str = "strip"
    val_frac: float = 0.1
    n_train: int | None = None
    n_test: int | None = None
    embed_dim: int = 64
    pretrained: str | None = None
    freeze_embeddings: bool = False

    def __post_init__(self) -> None:
        _at_least("data.vocab_size", self.vocab_size, 3)
        _at_least("data.min_freq", self.min_freq, 1)
        _at_least("data.maxlen", self.maxlen, 1)
        _choice("data.truncating", self.truncating, ("pre", "post"))
        _choice("data.padding", self.padding, ("pre", "post"))
        _choice("data.punctuation", self.punctuation, ("strip", "keep"))
        if not 0 < self.val_frac < 0.9:
            raise ValueError(f"data.val_frac must be in (0, 0.9) (got {self.val_frac})")
        for key in ("n_train", "n_test"):
            if getattr(self, key) is not None:
                _at_least(f"data.{key}", getattr(self, key), 2)
        _at_least("data.embed_dim", self.embed_dim, 1)
        if self.freeze_embeddings and not self.pretrained:
            raise ValueError("data.freeze_embeddings=true needs data.pretrained (a GloVe-format vectors file)")


@dataclass
class CopyConf:
    """The copy memory task (rnnlab/data/copy_task.py): remember copy_len symbols over delay steps."""

    name: str = "copy"
    n_symbols: int = 8
    copy_len: int = 10
    delay: int = 50
    loss_on: str = "answer"
    n_train: int = 10000
    n_val: int = 1000
    n_test: int = 1000

    def __post_init__(self) -> None:
        _at_least("data.n_symbols", self.n_symbols, 2)
        _at_least("data.copy_len", self.copy_len, 1)
        _at_least("data.delay", self.delay, 1)
        _choice("data.loss_on", self.loss_on, ("answer", "all"))
        for key in ("n_train", "n_val", "n_test"):
            _at_least(f"data.{key}", getattr(self, key), 1)


@dataclass
class EchoConf:
    """The echo task (rnnlab/data/echo.py): the target at step t is the input at step t - delay, in one stream."""

    name: str = "echo"
    n_symbols: int = 4
    delay: int = 8
    seq_len: int = 10
    n_train: int = 4000
    n_val: int = 400
    n_test: int = 400

    def __post_init__(self) -> None:
        _at_least("data.n_symbols", self.n_symbols, 2)
        _at_least("data.delay", self.delay, 1)
        _at_least("data.seq_len", self.seq_len, 1)
        for key in ("n_train", "n_val", "n_test"):
            _at_least(f"data.{key}", getattr(self, key), 1)


@dataclass
class TextlmConf:
    """Language modelling on UTF-8 text (rnnlab/data/textlm.py): the next character or word at every step."""

    name: str = "textlm"
    # A text file, a folder of .txt files or the IMDB archive; null: aclImdb_v1_labeled.tar.gz in $RNNLAB_DATA.
    path: str | None = None
    level: str = "char"
    lowercase: bool = False
    vocab_size: int = 20000
    min_freq: int = 1
    seq_len: int = 100
    val_frac: float = 0.05
    test_frac: float = 0.05
    max_chars: int | None = 2000000
    embed_dim: int = 32

    def __post_init__(self) -> None:
        _choice("data.level", self.level, ("char", "word"))
        _at_least("data.vocab_size", self.vocab_size, 3)
        _at_least("data.min_freq", self.min_freq, 1)
        _at_least("data.seq_len", self.seq_len, 1)
        for key in ("val_frac", "test_frac"):
            if not 0 < getattr(self, key) < 0.5:
                raise ValueError(f"data.{key} must be in (0, 0.5) (got {getattr(self, key)})")
        if self.max_chars is not None:
            _at_least("data.max_chars", self.max_chars, 100)
        _at_least("data.embed_dim", self.embed_dim, 1)


@dataclass
class SeqfileConf:
    """Sequence classification from a wide/long CSV, an NPZ or a UCR/UEA .ts file (rnnlab/data/seqfile.py)."""

    name: str = "seqfile"
    # The data file; checked when the data is loaded (absolute, relative, or inside $RNNLAB_DATA).
    path: str | None = None
    test_path: str | None = None
    format: str = "auto"
    label_column: str = "label"
    # Long CSV: null = found by name and content (rnnlab/data/seqformats/layout.py).
    id_column: str | None = None
    time_column: str | None = None
    feature_columns: list[str] | None = None
    # NPZ: the arrays' names (null = x or X, y or Y) and x's axes (NTD, NDT = channel-first; null =
    # NTD, refusing an x with fewer steps than features).
    x_key: str | None = None
    y_key: str | None = None
    layout: str | None = None
    max_len: int | None = None
    nan_policy: str = "error"
    val_frac: float = 0.15
    test_frac: float = 0.15
    scale: bool = True
    # Training-batch augmentation (rnnlab/data/augment.py): names or {name: ..., params, p: ...}.
    augment: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        _choice("data.format", self.format, SEQFILE_FORMATS)
        _choice("data.nan_policy", self.nan_policy, ("error", "drop", "fill"))
        if self.layout is not None:
            _choice("data.layout", self.layout, NPZ_LAYOUTS)
        for key in ("label_column", "id_column", "time_column", "x_key", "y_key"):
            if getattr(self, key) == "":
                raise ValueError(f"data.{key} must name a column or array, or be null (got an empty name)")
        if self.x_key and self.x_key == self.y_key:
            raise ValueError(f"data.x_key and data.y_key name the same array ('{self.x_key}')")
        if self.id_column and self.id_column == self.time_column:
            raise ValueError(f"data.id_column and data.time_column name the same column ('{self.id_column}')")
        if self.max_len is not None:
            _at_least("data.max_len", self.max_len, 1)
        _splits(self.val_frac, self.test_frac)
        self.augment = _augment_specs(self.augment)


@dataclass
class ReverseDigitsConf:
    """Seq2seq: reverse a digit sequence (rnnlab/data/seq2seq_tasks.py); lengths uniform in [min_len, max_len]."""

    name: str = "reverse_digits"
    min_len: int = 3
    max_len: int = 8
    n_digits: int = 10
    embed_dim: int = 16
    n_train: int = 5000
    n_val: int = 500
    n_test: int = 500

    def __post_init__(self) -> None:
        _at_least("data.min_len", self.min_len, 1)
        if self.max_len < self.min_len:
            raise ValueError(f"data.max_len must be >= data.min_len (got {self.max_len} < {self.min_len})")
        _at_least("data.n_digits", self.n_digits, 2)
        _at_least("data.embed_dim", self.embed_dim, 1)
        for key in ("n_train", "n_val", "n_test"):
            _at_least(f"data.{key}", getattr(self, key), 1)


@dataclass
class Sine2CosineConf:
    """Seq2seq, continuous: read t_in steps of sin(w t + phi), generate t_out steps of the cosine."""

    name: str = "sine2cosine"
    t_in: int = 20
    t_out: int | None = None
    offset: str = "same"
    w_min: float = 0.2
    w_max: float = 0.6
    start_value: float = 0.0
    n_train: int = 3000
    n_val: int = 300
    n_test: int = 300

    def __post_init__(self) -> None:
        _at_least("data.t_in", self.t_in, 1)
        if self.t_out is not None:
            _at_least("data.t_out", self.t_out, 1)
        _choice("data.offset", self.offset, ("same", "next"))
        _positive("data.w_min", self.w_min)
        if self.w_max < self.w_min:
            raise ValueError(f"data.w_max must be >= data.w_min (got {self.w_max} < {self.w_min})")
        for key in ("n_train", "n_val", "n_test"):
            _at_least(f"data.{key}", getattr(self, key), 1)


# Data schemas by data.name; later data sets register here.
DATA_SCHEMAS: dict[str, type] = {
    "sine": SineConf,
    "csv": CsvConf,
    "adding": AddingConf,
    "imdb": ImdbConf,
    "copy": CopyConf,
    "textlm": TextlmConf,
    "echo": EchoConf,
    "seqfile": SeqfileConf,
    "reverse_digits": ReverseDigitsConf,
    "sine2cosine": Sine2CosineConf,
}


# ----------------------------------------------------------------------------- optimizers
# An optimizer's keys and types are its YAML file's (conf/optim/NAME.yaml); these are their ranges: the
# checks of the engine's constructors (rnnlab/engine/optim.py), with the same messages, so that validating
# a config never builds an optimizer. tests/test_config.py checks both give the same message.


def _opt_number(key: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"optim.{key} must be a number (got {value!r})") from None
    if math.isinf(v):  # optim.lr=inf passed "> 0" and the first step turned every weight into NaN
        raise ValueError(f"optim.{key} must be finite (got {v})")
    return v


def _opt_positive(key: str, value: Any) -> None:
    v = _opt_number(key, value)
    if not v > 0:  # also rejects NaN
        raise ValueError(f"optim.{key} must be > 0 (got {v})")


def _opt_nonneg(key: str, value: Any) -> None:
    v = _opt_number(key, value)
    if not v >= 0:
        raise ValueError(f"optim.{key} must be >= 0 (got {v})")


def _opt_unit(key: str, value: Any, closed: bool = False) -> None:
    v = _opt_number(key, value)
    if not (0 <= v <= 1 if closed else 0 <= v < 1):
        raise ValueError(f"optim.{key} must be in [0, 1{']' if closed else ')'} (got {v})")


def _opt_flag(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"optim.{key} must be true or false (got {value!r})")


def _opt_betas(key: str, value: Any) -> None:
    try:
        b1, b2 = (float(b) for b in value)
    except (TypeError, ValueError):
        b1 = b2 = float("nan")
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"optim.betas must be two values in [0, 1) (got {value!r})")


OPTIM_RANGES = {
    "lr": _opt_positive,
    "weight_decay": _opt_nonneg,
    "betas": _opt_betas,
    "eps": _opt_positive,
    "amsgrad": _opt_flag,
    "momentum": _opt_unit,
    "dampening": lambda key, value: _opt_unit(key, value, closed=True),
    "alpha": _opt_unit,
    "centered": _opt_flag,
    "lr_decay": _opt_nonneg,
    "initial_accumulator_value": _opt_nonneg,
    "momentum_decay": _opt_nonneg,
}


def check_optim(values: dict[str, Any]) -> None:
    """Range-check an optimizer's config ({name, **keys of conf/optim/NAME.yaml}) in the order its constructor
    does (lr and weight_decay first); ValueError naming the first bad key."""
    for key in ("lr", "weight_decay", *(k for k in values if k not in ("name", "lr", "weight_decay"))):
        check = OPTIM_RANGES.get(key)  # every key of conf/optim/ has one (a test checks)
        if check is not None and key in values:
            check(key, values[key])
    if values.get("name") == "nesterov" and float(values.get("momentum", 0.9)) == 0:
        raise ValueError("optim.momentum must be in (0, 1) for nesterov (got 0.0)")  # the engine's words
