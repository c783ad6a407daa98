"""The folder a launch writes into, settled before Hydra starts, and removed again when bad input left
nothing in it.

    folder = LaunchFolder(multirun=False)
    rc = compose_and_validate(overrides, config_dir, on_first=folder.settle)  # ConfigError: one line
    launch(..., [*overrides, *folder.overrides()])
    folder.discard_if_unused()                                               # a single run's only

`settle` resolves hydra.run.dir (hydra.sweep.dir for a multirun) from the composed config. The default
(conf/config.yaml's `${rnnlab_new_dir:...}`) claims a new folder as it resolves; a folder the user
named keeps its exact meaning and is only checked: it must be a folder this process can write in, or
the launch stops with one line naming the path and the cause ("outputs/x: is a file",
"outputs/x: Read-only file system") instead of Hydra's traceback. The resolved folder is handed to
Hydra explicitly, so its job does not claim another one.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from rnnlab.config.validate import ConfigError
from rnnlab.runtime.folders import check_dir, describe

# What a run that stopped on its input leaves (Hydra's .hydra/ and job log, the lock, the bad-input stub).
STUB_FILES = {".hydra", ".lock", "summary.json"}


class LaunchFolder:
    def __init__(self, multirun: bool):
        self.multirun = multirun
        self.key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        self.path: Path | None = None
        self.fresh = False  # created for this launch
        self.pinned = False  # claimed here, or resolved from an interpolation: Hydra must be told which

    def settle(self, composed) -> None:
        """Resolve the folder from a composed config (with its hydra node), claim or check it."""
        from omegaconf import OmegaConf

        node = composed.cfg.hydra.sweep if self.multirun else composed.cfg.hydra.run
        raw = str(OmegaConf.to_container(node, resolve=False)["dir"])
        try:
            self.path = Path(OmegaConf.select(composed.cfg, self.key))  # the default claims a new folder here
            claimed = "${rnnlab_new_dir:" in raw
            self.fresh = check_dir(self.path) or claimed
            self.pinned = "${" in raw and "'" not in str(self.path)  # resolving again could give another one
        except Exception as exc:  # an OSError, or the resolver's wrapped by OmegaConf
            cause = _os_error(exc)
            if cause is None:
                raise
            where = self.path or cause.filename or raw
            raise ConfigError(f"{self._what} {describe(cause, where)}") from None

    @property
    def _what(self) -> str:
        return "sweep folder" if self.multirun else "run folder"

    def overrides(self) -> list[str]:
        """The folder for Hydra, quoted, when resolving its value again could give another folder (a plain
        path the user gave stays as the user wrote it)."""
        return [f"{self.key}='{self.path}'"] if self.pinned else []

    def launching(self):
        """The context of the launch: with no folder settled (--cfg, --info: nothing runs), the default
        folders are printed, not created."""
        from rnnlab.config.composition import folders_unclaimed

        return contextlib.nullcontext() if self.path is not None else folders_unclaimed()

    def discard_if_unused(self) -> bool:
        """Remove a single run's folder made for this launch when it holds nothing but what bad input
        leaves (Hydra's files and a bad-input stub): bad input leaves no run folder. Returns whether removed."""
        if self.multirun or not self.fresh or self.path is None or not self.path.is_dir():
            return False
        names = {p.name for p in self.path.iterdir()}
        if any(n not in STUB_FILES and not n.endswith(".log") for n in names):
            return False
        if "summary.json" in names and not _bad_input_stub(self.path):
            return False
        shutil.rmtree(self.path, ignore_errors=True)
        return True


def _bad_input_stub(run_dir: Path) -> bool:
    from rnnlab.record import summary as summary_file

    try:
        return summary_file.read(run_dir).bad_input
    except (OSError, ValueError, TypeError):
        return False


def _os_error(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
