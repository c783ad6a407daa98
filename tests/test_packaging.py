"""The wheel carries the whole config tree, and pyproject's package list matches the folders."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_list_matches_folders():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    on_disk = {"rnnlab"} | {
        "rnnlab." + ".".join(p.relative_to(ROOT / "rnnlab").parts)
        for p in (ROOT / "rnnlab").rglob("*") if p.is_dir() and (p / "__init__.py").exists()
    }
    on_disk |= {"rnnlab.conf"} | {f"rnnlab.conf.{p.name}" for p in (ROOT / "conf").iterdir() if p.is_dir()}
    on_disk |= {f"hydra_plugins.{p.parent.name}" for p in (ROOT / "hydra_plugins").glob("*/__init__.py")}
    on_disk = {p for p in on_disk if "__pycache__" not in p}
    assert listed == on_disk


@pytest.mark.slow
def test_every_conf_yaml_is_in_the_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("rnnlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"rnnlab/conf/" + str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert expected and expected <= names, expected - names
