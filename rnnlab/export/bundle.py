"""One export: the chosen formats written into a temporary folder beside the target, the manifest
(model.json) last, then the folder renamed into place, so a refused or failed format leaves nothing
behind and a previous export at the target is replaced only by a complete one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.export import formats, manifest
from rnnlab.export.base import ExportError, ExportOptions
from rnnlab.runtime.io import folder_in_place

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
    with folder_in_place(out) as tmp:
        facts, files = {}, []
        for name in names:
            written = formats.get(name).write(run, tmp, options)
            facts[name] = {"files": written.files, **written.facts}
            files += written.files
            notes += written.notes
        manifest.write_manifest(tmp, manifest.describe(run), facts)
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

