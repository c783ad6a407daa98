"""Every `rnnlab train ...` example in the README composes and validates as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rnnlab.commands.hydra_bridge import compose_and_validate, split_args

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("rnnlab train") or line.startswith("make train"):
                lines.append(line)
    return lines


EXAMPLES = _examples()


def test_readme_has_train_examples():
    assert len(EXAMPLES) >= 25


def _is_sweep(line: str) -> bool:
    return bool({"-m", "--multirun"} & set(shlex.split(line)))


# A sweep example composes each of its values (a second or more each): slow suite; the fast suite keeps
# every single-run example and test_config's multirun check.
@pytest.mark.parametrize("line", [pytest.param(e, marks=[pytest.mark.slow] if _is_sweep(e) else []) for e in EXAMPLES])
def test_readme_example_composes(line):
    words = shlex.split(line)
    if words[:2] == ["make", "train"]:
        args = [w.split("=", 1)[1] for w in words if w.startswith("ARGS=")]
        words = ["rnnlab", "train", *(shlex.split(args[0]) if args else [])]
    if "--resume" in words:  # the run folder the example resumes does not exist here: its overrides compose
        i = words.index("--resume")
        words = words[:i] + words[i + 2:]
    flags, overrides = split_args(words[2:])
    if "--cfg" in flags:
        flags = [f for f in flags if f not in ("--cfg", "job")]
    compose_and_validate(overrides)
