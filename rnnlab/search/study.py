"""The Optuna study: RDB storage, sampler, pruner, and the workers that run trials against it.

Every worker (this process, `--n-jobs` spawned processes, or `rnnlab search` on another
machine) loads the study from the same storage URL and asks it for trials; the storage
is the only thing they share, which is why a study can grow across runs and machines.
Sampler seeds come from (seed, trials already in the study, worker index): a fresh
study with one worker is reproducible, and a resumed study or a second worker does not
replay the random points already tried.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab.search import SearchError
from rnnlab.search.objective import TrialFailed, TrialSetup, run_trial
from rnnlab.search.space import Param, distribution

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "none")
SQLITE_TIMEOUT_S = 60  # workers wait this long for sqlite's write lock instead of failing at once
HEARTBEAT_S = 30  # a RUNNING trial's worker writes a heartbeat this often (--heartbeat)
GRACE_HEARTBEATS = 4  # ... and one silent for 4 heartbeats (120 s) is lost: failed and retried (see retry.py)
STORAGE_ATTEMPTS = 5  # opening the storage (see open_storage)


@dataclass
class StudySpec:
    """How to open the study and build the sampler and pruner (plain data, pickled into workers)."""
    name: str
    storage: str
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_startup: int = 5
    pruner_warmup: int = 2
    max_epochs: int = 30
    seed: int = 0
    grid: dict[str, list[Any]] | None = None
    n_existing: int = 0
    heartbeat: int = HEARTBEAT_S


def open_storage(url: str, heartbeat: int = HEARTBEAT_S):
    import optuna

    from rnnlab.search.retry import make_callback

    # Optuna logs every study it creates and each failed trial with its traceback; we print one line each.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    # Two workers opening a new database at the same moment race to create its schema; the
    # loser gets an IntegrityError (or "database is locked") and succeeds when it tries again.
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat is marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat,
                                                  grace_period=GRACE_HEARTBEATS * heartbeat,
                                                  heartbeat_stale_trial_callback=make_callback(), **kwargs)
        except Exception as exc:  # SQLAlchemy's errors for bad URLs, missing drivers, unreachable servers
            racing = type(exc).__name__ in ("IntegrityError", "OperationalError")
            if racing and attempt + 1 < STORAGE_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1))
                continue
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SearchError(f"cannot open storage {mask_url(url)}: {first}") from None


def mask_url(url: str) -> str:
    """A storage URL without its password (postgresql://user:secret@host -> postgresql://user:***@host)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def study_exists(storage: str, name: str) -> bool:
    """Whether the storage holds the study; a sqlite file that is not there is not created to find out."""
    import optuna

    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///"):].split("?")[0]
        if path != ":memory:" and not Path(path).is_file():
            return False
    return name in optuna.get_all_study_names(open_storage(storage))


def sampler_seed(seed: int, n_existing: int, worker: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed, n_existing, worker]).generate_state(1)[0])


def make_sampler(spec: StudySpec, worker: int = 0):
    import optuna.samplers as S

    seed = sampler_seed(spec.seed, spec.n_existing, worker)
    if spec.sampler == "random":
        return S.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return S.GridSampler(spec.grid, seed=seed)
    if spec.sampler == "cmaes":
        # CMA-ES moves the int and float ranges; choices are drawn at random beside it.
        return S.CmaEsSampler(seed=seed, warn_independent_sampling=False,
                              independent_sampler=S.RandomSampler(seed=seed + 1))
    return S.TPESampler(seed=seed, constant_liar=True)  # constant liar: parallel workers spread out


def make_pruner(spec: StudySpec):
    import optuna.pruners as P

    if spec.pruner == "median":
        return P.MedianPruner(n_startup_trials=spec.pruner_startup, n_warmup_steps=spec.pruner_warmup)
    if spec.pruner == "hyperband":
        return P.HyperbandPruner(min_resource=1, max_resource=max(spec.max_epochs, 1), reduction_factor=3)
    return P.NopPruner()


def load_study(spec: StudySpec, direction: str | None = None, worker: int = 0):
    """Create the study (direction given) or load it; the sampler and pruner are this worker's."""
    import optuna

    storage = open_storage(spec.storage, spec.heartbeat)
    sampler, pruner = make_sampler(spec, worker), make_pruner(spec)
    try:
        if direction is None:
            return optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
        return optuna.create_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner,
                                   direction=direction, load_if_exists=True)
    except Exception as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SearchError(f"cannot open study '{spec.name}' in {mask_url(spec.storage)}: {first}") from None


def check_study(study, metric: str, direction: str, params: dict[str, Param]) -> None:
    """A resumed study must have the same objective and a compatible space (one line when not)."""
    from optuna.distributions import check_distribution_compatibility

    stored = study.user_attrs.get("metric")
    if stored is not None and stored != metric:
        raise SearchError(f"study '{study.study_name}' optimizes {stored}, not {metric}: use --metric {stored} "
                          "or another --study-name")
    if study.direction.name.lower() != direction:
        raise SearchError(f"study '{study.study_name}' was created to {study.direction.name.lower()} {metric}: "
                          "use another --study-name")
    if stored is None:
        study.set_user_attr("metric", metric)
    seen: set[str] = set()
    for t in study.get_trials(deepcopy=False):
        for key, old in t.distributions.items():
            if key in params and key not in seen:
                seen.add(key)
                try:
                    check_distribution_compatibility(old, distribution(params[key]))
                except ValueError:
                    raise SearchError(f"study '{study.study_name}' searched {key} as {_describe(old)}; this space "
                                      f"says {params[key].describe()}: use another --study-name") from None


def settle_heartbeat(study, asked: int | None) -> int:
    """The study's heartbeat in seconds: every worker must use the same, since each one fails the trials
    whose heartbeat is older than its own grace period. Recorded by the first worker; SearchError on another."""
    stored = study.user_attrs.get("heartbeat_s")
    if asked is not None and stored is not None and asked != stored:
        raise SearchError(f"study '{study.study_name}' runs with --heartbeat {stored} (all its workers must agree, "
                          f"or a short one fails the others' running trials): leave it out or give {stored}")
    value = asked or stored or HEARTBEAT_S
    if stored is None:
        study.set_user_attr("heartbeat_s", value)
    return value


def _describe(dist) -> str:
    """An Optuna distribution in the words of Param.describe (choice a, b / float 0.001..0.1 log)."""
    if hasattr(dist, "choices"):
        return "choice " + ", ".join(map(str, dist.choices))
    kind = "int" if type(dist).__name__.startswith("Int") else "float"
    extra = " log" if dist.log else (f" step {dist.step}" if dist.step not in (None, 1) else "")
    return f"{kind} {dist.low}..{dist.high}{extra}"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops a worker the way Ctrl-C does (the trainer does the same inside a run)."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def work(spec: StudySpec, setup: TrialSetup, n_trials: int | None, timeout: float | None, worker: int = 0,
         one_blas_thread: bool = False) -> int:
    """Run trials until n_trials, the timeout, the end of the grid or Ctrl-C; returns an exit code
    (0, 2 for a SearchError that stopped it, 130 interrupted)."""
    from rich.markup import escape

    from rnnlab.report.console import make_console
    from rnnlab.runtime import signals

    console = make_console()
    limit = contextlib.nullcontext()
    if one_blas_thread:  # parallel workers share the cores: one BLAS thread each, or they oversubscribe
        import numpy  # noqa: F401  (threadpoolctl limits only the BLAS libraries already loaded)
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1, user_api="blas")
    try:
        # Optuna's bookkeeping (asking for a trial, starting and joining its heartbeat thread, recording its
        # state) runs with signals deferred: an interrupt there left a heartbeat thread running (the process
        # never exited) or a trial without a state. Inside the objective they raise (run_trial: undeferred);
        # one held meanwhile is raised as the next trial starts, and the study stops after the trial.
        with signals.deferred(), limit:
            study = load_study(spec, worker=worker)
            study.optimize(functools.partial(run_trial, setup=setup, console=console), n_trials=n_trials,
                           timeout=timeout, catch=(TrialFailed,), callbacks=[_stop_when_signalled])
    except KeyboardInterrupt as exc:
        return 128 + signals.signum_of(exc)
    except SearchError as exc:
        console.print(f"[red]Error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    # A signal whose KeyboardInterrupt a library swallowed inside a trial: the study stopped after it.
    return signals.exit_code() if signals.received() is not None else 0


def _stop_when_signalled(study, trial) -> None:
    from rnnlab.runtime import signals

    if signals.received() is not None:
        study.stop()


def work_in_process(spec: StudySpec, setup: TrialSetup, n_trials: int | None, timeout: float | None,
                    worker: int) -> None:
    """Target of a spawned worker process: its exit code is work()'s."""
    import sys

    try:
        code = work(spec, setup, n_trials, timeout, worker, one_blas_thread=True)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
