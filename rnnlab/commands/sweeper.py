"""The Hydra sweeper of `rnnlab train -m` and `rnnlab cv`: Hydra's grid, with a plan the CLI reads back.

It sweeps BasicSweeper's grid (the same jobs in the same order, `hydra.sweeper.params`, any
launcher: basic, joblib, submitit), but first lists every job with its number, overrides and
folder, and decides each (`sweep_resume.prepare`: start, or for a resumed sweep skip / resume /
start), then launches the jobs to run. Skipped jobs are not launched at all; the others keep their
numbers (and so their folders, `hydra.sweep.subdir` = `${hydra.job.num}`), launched as runs of
consecutive numbers. The plan is left for the CLI (`last_plan`), which reads each job's outcome
from its folder. Hydra loads it as `hydra_plugins.rnnlab_sweeper.RnnlabSweeper`.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf, open_dict

from rnnlab.commands import outcome as O
from rnnlab.commands import sweep_resume as R
from rnnlab.config.validate import ConfigError

log = logging.getLogger(__name__)
NAME = "rnnlab"


@dataclass
class Job:
    num: int
    overrides: list[str]
    run_dir: Path
    action: str = R.START
    returned: Any = None  # the job's value, when it ran and returned one

    def outcome(self) -> O.Outcome:
        """From the job's folder, unless the job returned an outcome its folder does not record."""
        if isinstance(self.returned, O.Outcome) and self.returned.unrecorded:
            return self.returned
        done = O.read(self.run_dir)
        if done.status == "running":  # read after the launch: the job's process is gone
            done.message = "the job was killed before it finished (its summary still says running): resume the sweep"
        return done


@dataclass
class Plan:
    sweep_dir: Path
    resume: bool
    jobs: list[Job] = field(default_factory=list)
    error: str | None = None  # refused before anything was launched (one line)


_last: Plan | None = None


def last_plan() -> Plan | None:
    """The plan of the latest sweep in this process (None: no sweep ran, e.g. Hydra refused the config)."""
    return _last


def launch_overrides(overrides: list[str], resume: bool) -> list[str]:
    """What a command adds to a multirun's overrides to sweep with this sweeper (registered here first)."""
    global _last
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    from hydra_plugins.rnnlab_sweeper import RnnlabSweeper

    if any(o.split("=", 1)[0].lstrip("+~") == "hydra/sweeper" for o in overrides):
        raise ConfigError("hydra/sweeper: rnnlab's multiruns sweep a grid with their own sweeper (resumable with "
                          "--resume SWEEP_DIR); search with rnnlab search")

    # Registered here too: Hydra's scan of hydra_plugins misses packages installed in editable mode (PEP 660).
    Plugins.instance().register(RnnlabSweeper)
    ConfigStore.instance().store(group="hydra/sweeper", name=NAME, provider="rnnlab",
                                 node={"_target_": "hydra_plugins.rnnlab_sweeper.RnnlabSweeper", "max_batch_size": None,
                                       "params": None, "resume": False})
    _last = None
    return [f"hydra/sweeper={NAME}", f"hydra.sweeper.resume={str(resume).lower()}"]


class GridSweeper(Sweeper):
    # Not a subclass of BasicSweeper: Hydra re-executes the modules of its plugin folders when it scans them
    # again, and BasicSweeper's own super(BasicSweeper, self) then names another class than ours derives from.
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None, resume: bool = False):
        super().__init__()
        self.max_batch_size, self.params, self.resume = max_batch_size, dict(params or {}), resume
        self.hydra_context = self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        global _last
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in self.params.items()]  # hydra.sweeper.params first, as BasicSweeper
        (all_jobs,) = BasicSweeper.split_arguments(parser.parse_overrides(params + list(arguments)), None)
        plan = _last = Plan(Path(str(self.config.hydra.sweep.dir)), self.resume)
        try:
            plan.jobs = [self._job(num, list(ov)) for num, ov in enumerate(all_jobs)]
        except R.SweepError as exc:
            plan.error = (f"--resume {plan.sweep_dir}: " if self.resume else "") + str(exc)
            return []
        plan.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, plan.sweep_dir / "multirun.yaml")
        if self.resume:
            counts = {a: sum(j.action == a for j in plan.jobs) for a in (R.SKIP, R.RESUME, R.START)}
            log.info(f"Resuming the sweep in {plan.sweep_dir}: {counts[R.SKIP]} finished jobs kept, "
                     f"{counts[R.RESUME]} resumed, {counts[R.START]} started")
        return [self._launch(batch) for batch in self._batches(plan.jobs)]

    def _job(self, num: int, overrides: list[str]) -> Job:
        run_dir = self._job_dir(num, overrides)
        try:
            action = R.prepare(run_dir, overrides, self.resume)
        except R.SweepError as exc:
            hint = "" if self.resume else (f" (resume the sweep with --resume {self.config.hydra.sweep.dir}, "
                                           "or choose another hydra.sweep.dir)")
            raise R.SweepError(f"job {num}: {exc}{hint}") from None
        return Job(num, overrides, run_dir, action)

    def _job_dir(self, num: int, overrides: list[str]) -> Path:
        """The job's folder as its launcher will make it (hydra.sweep.dir / hydra.sweep.subdir, for job `num`)."""
        sweep = self.config.hydra.sweep
        if OmegaConf.to_container(sweep, resolve=False).get("subdir") == "${hydra.job.num}":
            return Path(str(sweep.dir)) / str(num)
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = num
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)

    def _batches(self, jobs: list[Job]):
        """Runs of consecutive job numbers to launch (a launcher numbers a batch's jobs from its first),
        at most max_batch_size jobs each."""
        todo = [j for j in jobs if j.action != R.SKIP]
        for _, run in itertools.groupby(enumerate(todo), key=lambda e: e[1].num - e[0]):
            run = [j for _, j in run]
            size = self.max_batch_size if self.max_batch_size and self.max_batch_size > 0 else len(run)
            for i in range(0, len(run), size):
                yield run[i:i + size]

    def _launch(self, batch: list[Job]):
        overrides = [j.overrides for j in batch]
        self.validate_batch_is_legal(overrides)
        results = self.launcher.launch(overrides, initial_job_idx=batch[0].num)
        for job, r in zip(batch, results, strict=True):
            if r.status == JobStatus.COMPLETED:
                job.returned = r.return_value
        for r in results:
            _ = r.return_value  # a job's exception is raised here, as BasicSweeper does
        return results
