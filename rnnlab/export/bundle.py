"""One export: the chosen formats written into a temporary folder beside the target, the manifest
(model.json) last, then the folder renamed into place, so a refused or failed format leaves nothing
behind and a previous export at the target is replaced only by a complete one."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.export import formats, manifest
from rnnlab.export.base import ExportError, ExportOptions

EXPORTABLE = ("completed",)


@dataclass
class Exported:
    folder: Path
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export(run, names: list[str], out: Path, options: ExportOptions | None = None) -> Exported:
    """Write formats `names` of trained run `run` (`rnnlab.predict.run.TrainedRun`) into folder `out`."""
    out, options = Path(out), options or ExportOptions()
    _check_target(out)
    notes = _provenance(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        facts, files = {}, []
        for name in names:
            written = formats.get(name).write(run, tmp, options)
            facts[name] = {"files": written.files, **written.facts}
            files += written.files
            notes += written.notes
        manifest.write_manifest(tmp, manifest.describe(run), facts)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Exported(out, list(dict.fromkeys([*files, manifest.MANIFEST])), notes)


def _check_target(out: Path) -> None:
    if out.exists() and not (out / manifest.MANIFEST).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an export (no {manifest.MANIFEST}); choose another -o folder")


def _provenance(run) -> list[str]:
    """Say which weights are exported when the run did not complete (the last good checkpoint)."""
    status = run.summary.status if run.summary is not None else "unknown (no summary.json)"
    if status in EXPORTABLE:
        return []
    return [f"run status {status}: exporting its last good checkpoint (the selected weights, epoch "
            f"{run.info.get('epoch')})"]


def _replace(tmp: Path, out: Path) -> None:
    """tmp becomes out; an old export at out is moved aside first and removed after."""
    os.chmod(tmp, 0o755)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
