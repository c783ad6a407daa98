"""Resume a multirun in its folder: `rnnlab train -m --resume SWEEP_DIR`, `rnnlab cv --resume CV_DIR`.

The sweep is the one SWEEP_DIR/multirun.yaml records (its overrides; overrides given again must say
the same, Hydra options such as the launcher may change), so its jobs get the same numbers and
folders. Each job is then decided on its folder (`decide`, checked against the overrides the folder's
.hydra/overrides.yaml holds):

- skip: a finished run (completed, diverged or pruned; the same config and seed would only repeat
  it), left untouched;
- resume: an unfinished run (interrupted, killed, failed) with a completed epoch continues from its
  checkpoint_last/, exactly (the job sees `resumes`);
- start: no folder, a run killed before its first epoch completed, or a run that failed on its input:
  it starts over in its folder (the new run's files replace what the attempt left).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.commands import outcome
from rnnlab.config.validate import ConfigError
from rnnlab.record.checkpoint import has_training_state

SKIP, RESUME, START = "skip", "resume", "start"
FINISHED = ("completed", "diverged", "pruned")
# Hydra's own keys the resumed launch sets itself (or the sweeper does), not taken from multirun.yaml.
_RELAUNCH_KEYS = ("hydra.mode", "hydra.sweep.dir", "hydra/sweeper", "hydra.sweeper.resume")


class SweepError(ConfigError):
    """A sweep that cannot be resumed (or run) as asked; one line, nothing launched."""


# ----------------------------------------------------------------------------- the sweep in SWEEP_DIR


def is_sweep(folder: str | Path) -> bool:
    return (Path(folder) / "multirun.yaml").is_file()


def take_flag(args: list[str]) -> tuple[Path | None, list[str]]:
    """(FOLDER, the other arguments) for `--resume FOLDER` or `--resume=FOLDER` among args."""
    rest, folder = [], None
    it = iter(args)
    for a in it:
        if a == "--resume":
            folder = next(it, None)
            if folder is None:
                raise ConfigError("option --resume needs a run folder")
        elif a.startswith("--resume="):
            folder = a.split("=", 1)[1]
        else:
            rest.append(a)
    return (None, args) if folder is None else (Path(folder), rest)


def resume_args(sweep_dir: Path, args: list[str], command: str = "train", drop: tuple[str, ...] = ()) -> list[str]:
    """The arguments that resume the sweep in sweep_dir: the given flags (with -m), the sweep's own
    overrides in their order (those given must agree with them), its Hydra overrides and then the given
    ones, into sweep_dir. command: the rnnlab command resuming it, which must be the one that ran it
    (Hydra's job name); drop: keys of the saved sweep the command adds itself (cv's cv.fold)."""
    from rnnlab.commands.hydra_bridge import split_args

    name, task, hydra = _saved(sweep_dir)
    if name != command:
        raise SweepError(f"--resume {sweep_dir}: a sweep of rnnlab {name}, not of rnnlab {command} "
                         f"(resume it with rnnlab {name} --resume {sweep_dir})")
    task = [o for o in task if _key(o) not in drop]
    flags, given = split_args(args)
    _check_same_sweep(sweep_dir, task + [o for o in hydra if _is_sweep_param(o)], given)
    ours = {_key(o): o for o in hydra if _key(o) not in _RELAUNCH_KEYS}
    ours.update({_key(o): o for o in given if _key(o).startswith("hydra")})
    multirun = [] if {"-m", "--multirun"} & set(flags) else ["-m"]
    return [*multirun, *flags, *task, *ours.values(), f"hydra.sweep.dir={sweep_dir}"]


def _saved(sweep_dir: Path) -> tuple[str, list[str], list[str]]:
    """(the command that ran it, its overrides, its Hydra overrides) from multirun.yaml."""
    import yaml

    path = sweep_dir / "multirun.yaml"
    try:
        hydra = (yaml.safe_load(path.read_text()) or {})["hydra"]
        saved = hydra["overrides"]
        return (str(hydra.get("job", {}).get("name", "train")), [str(o) for o in saved["task"] or []],
                [str(o) for o in saved["hydra"] or []])
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise SweepError(f"--resume {sweep_dir}: cannot read the sweep from {path} ({type(exc).__name__})") from None


def _check_same_sweep(sweep_dir: Path, saved: list[str], given: list[str]) -> None:
    """Each key given must have the value the saved sweep has (Hydra's options aside)."""
    before = _values(saved)
    for key, value in _values([o for o in given if not _key(o).startswith("hydra") or _is_sweep_param(o)]).items():
        if before.get(key) != value:
            was = next((o for o in saved if _key(o) == key), None)
            now = next(o for o in given if _key(o) == key)
            raise SweepError(f"--resume {sweep_dir}: not the sweep it holds ({now} given, "
                             f"{was or 'no ' + key} in its multirun.yaml): give its own overrides, or none")


def _values(overrides: list[str]) -> dict[str, object]:
    """Key -> value(s) as Hydra reads them (train.plots=false and =False are the same; a sweep's values in order)."""
    from rnnlab.config.composition import parse

    out: dict[str, object] = {}
    for o in parse(overrides):
        key = o.get_key_element().lstrip("+~")
        out[key] = tuple(o.sweep_string_iterator()) if o.is_sweep_override() else o.get_value_element_as_str()
    return out


def _is_sweep_param(override: str) -> bool:
    return _key(override).startswith("hydra.sweeper.params")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


# ----------------------------------------------------------------------------- one job


def prepare(job_dir: Path, overrides: list[str], resume: bool) -> str:
    """The job's action (`decide`), taken while holding its folder's lock: a folder in use by a run
    (this sweep still running elsewhere) is SweepError."""
    from rnnlab.train.recorder import RunFolderError, RunRecorder

    if not _leftovers(job_dir):
        return START
    folder = RunRecorder(job_dir, plots=False)
    try:
        folder.claim(resume=True)
    except RunFolderError as exc:
        raise SweepError(str(exc)) from None
    try:
        return decide(job_dir, overrides, resume)
    finally:
        folder.release()


def decide(job_dir: Path, overrides: list[str], resume: bool) -> str:
    """skip / resume / start for the job of `overrides` in job_dir (see the module's text). SweepError when
    the folder holds another job's run, or (a new sweep) a run already."""
    if not _leftovers(job_dir):
        return START
    if not resume:
        if has_training_state(job_dir):
            raise SweepError(f"{job_dir} already holds a run")
        return START
    saved = _job_overrides(job_dir)
    if saved is None and not has_training_state(job_dir):
        return START  # stopped before it wrote its config: nothing was trained there
    if saved is None or _values(saved) != _values(list(overrides)):
        raise SweepError(f"{job_dir} holds a run of other overrides than this job's ({' '.join(overrides)})")
    done = outcome.read(job_dir)
    if done.status in FINISHED and not done.bad_input:
        return SKIP
    return RESUME if has_training_state(job_dir) else START


def resumes(run_dir: Path, sweeper_cfg) -> bool:
    """Inside a job: continue the run in run_dir (a job of a resumed sweep whose folder has a checkpoint_last)."""
    return bool(sweeper_cfg.get("resume", False)) and has_training_state(run_dir)


def _leftovers(job_dir: Path) -> list[Path]:
    """What a job folder holds besides Hydra's .hydra/, its log and the lock file."""
    if not job_dir.is_dir():
        return []
    return [p for p in job_dir.iterdir() if p.name not in (".hydra", ".lock") and p.suffix != ".log"]


def _job_overrides(job_dir: Path) -> list[str] | None:
    import yaml

    try:
        saved = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in saved] if isinstance(saved, list) else None
