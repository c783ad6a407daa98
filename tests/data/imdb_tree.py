"""A tiny aclImdb tree for tests: folder, folder's parent, or .tar.gz (not a test module)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

POS_WORDS = ["great", "wonderful", "superb", "loved", "brilliant", "excellent"]
NEG_WORDS = ["awful", "terrible", "boring", "hated", "dreadful", "worst"]
FILLER = ["the", "movie", "film", "was", "plot", "actors", "story", "and", "a", "it"]
# Words that occur in only one part of the data (for the vocabulary-leak checks).
TEST_ONLY_WORD = "zanzibarish"


def review(split: str, label: str, i: int) -> tuple[str, int, str]:
    """(file name, rating, text) of review i in split/label; short, clearly positive or negative."""
    words = POS_WORDS if label == "pos" else NEG_WORDS
    rating = 7 + i % 4 if label == "pos" else 1 + i % 4
    n = 3 + i % 5  # lengths 3..7 words of sentiment plus filler
    body = " ".join(f"{FILLER[(i + k) % len(FILLER)]} {words[(i + k) % len(words)]}" for k in range(n))
    if i % 3 == 0:
        body = body.replace(" ", " <br /><br />", 1)  # the HTML line breaks of the real data
    body += f" {marker(split, label, i)}"  # a word of this review only
    if split == "test" and i == 0:
        body += f" {TEST_ONLY_WORD}"
    return f"{i}_{rating}.txt", rating, body.capitalize() + "."


def marker(split: str, label: str, i: int) -> str:
    """The word that occurs in review i of split/label and nowhere else."""
    return f"id{split}{label}{i}"


def files(n_per: int = 12) -> dict[str, str]:
    """{relative path under aclImdb/: text}."""
    out = {}
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            for i in range(n_per):
                name, _, body = review(split, label, i)
                out[f"{split}/{label}/{name}"] = body
    return out


def write_folder(root: Path, n_per: int = 12, extra: dict[str, str] | None = None) -> Path:
    """Writes root/aclImdb/...; returns the aclImdb folder."""
    acl = Path(root) / "aclImdb"
    for rel, body in {**files(n_per), **(extra or {})}.items():
        p = acl / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body, encoding="utf-8")
    return acl


def write_tar(path: Path, n_per: int = 12, extra: dict[str, str] | None = None) -> Path:
    """An aclImdb_*.tar.gz with members aclImdb/<rel>."""
    path = Path(path)
    with tarfile.open(path, "w:gz") as tf:
        for rel, body in {**files(n_per), **(extra or {})}.items():
            data = body.encode("utf-8")
            info = tarfile.TarInfo(f"aclImdb/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# The original Stanford archive also has unlabelled reviews and a README: both are ignored.
UNSUP_EXTRA = {
    "train/unsup/0_0.txt": "an unlabelled review that must be ignored",
    "train/unsup/1_0.txt": "another unlabelled review",
    "README": "Large Movie Review Dataset v1.0",
    "imdb.vocab": "the\nmovie\n",
}
