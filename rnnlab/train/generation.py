"""Text from a trained language model (`data=textlm`): a prompt in, n sampled continuations out.

What `rnnlab generate` runs and what the test report of a language model shows (samples at several
temperatures). The vocabulary, level and case come from the data's meta (the checkpoint's model.json), so a
run folder is all it needs. An empty prompt starts after a document separator (a newline at character
level, <eos> at word level), as a new document would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.data import textlm
from rnnlab.data.base import DataError
from rnnlab.engine import sampling

REPORT_TEMPERATURES = (0.5, 0.8, 1.0)


@dataclass(frozen=True)
class Settings:
    length: int = 200
    temperature: float = 1.0  # 0: greedy
    top_k: int | None = None
    top_p: float | None = None
    n: int = 1
    seed: int = 0

    def check(self) -> None:
        """One line for a setting no sampler accepts."""
        if not self.temperature > 0:
            raise DataError(f"--temperature {self.temperature}: must be > 0 (use --greedy for the most likely token)")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise DataError(f"--top-p {self.top_p}: must be in (0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise DataError(f"--top-k {self.top_k}: must be at least 1")
        if self.length < 1 or self.n < 1:
            raise DataError(f"--length {self.length} and --n {self.n} must be at least 1")


def is_language_model(meta: dict | None) -> bool:
    return bool(meta) and meta.get("task") == "textlm" and "vocab" in meta


def prompt_ids(prompt: str, meta: dict) -> tuple[np.ndarray, list[str]]:
    """The prompt's token ids after a document separator, and the words mapped to <oov> (word level); a
    character the vocabulary lacks is refused in one line, naming them."""
    level, vocab = meta["level"], meta["vocab"]
    ids, unknown = textlm.encode(prompt, vocab, level, meta.get("lowercase", False))
    if unknown and level == "char":
        shown = ", ".join(repr(c) for c in unknown[:10])
        raise DataError(f"the prompt has {len(unknown)} characters the model's vocabulary lacks: {shown}"
                        f"{' ...' if len(unknown) > 10 else ''}")
    sep = vocab.index(textlm.SEPARATOR[level]) if textlm.SEPARATOR[level] in vocab else 1
    return np.concatenate([[sep], ids]).astype(np.int64), unknown


def generate(spec, params, state, meta: dict, prompt: str, settings: Settings,
             greedy: bool = False) -> tuple[list[str], list[str]]:
    """(n continuations of the prompt, the prompt's words read as <oov>); the prompt itself not repeated."""
    ids, unknown = prompt_ids(prompt, meta)
    rng = np.random.default_rng(settings.seed)
    banned = (0, 1) if meta["level"] == "char" else (0,)  # <oov> is no character; at word level it is a word
    out = sampling.sample(spec, params, ids, settings.length, rng, 0.0 if greedy else settings.temperature,
                          settings.top_k, settings.top_p, settings.n, state=state or None, banned=banned)
    return [textlm.decode(row, meta["vocab"], meta["level"]) for row in out], unknown


def after_prompt(prompt: str, text: str, meta: dict) -> str:
    """The prompt and its continuation as one text (a space between words at word level)."""
    if meta.get("level") != "word" or not prompt or not text:
        return prompt + text
    return prompt + ("" if text[0] in ".,!?;:)\n" else " ") + text


def report_samples(spec, params, state, meta: dict, seed: int, length: int = 300) -> list[dict]:
    """The report's samples: one per temperature in REPORT_TEMPERATURES, and the greedy continuation."""
    rows = [{"temperature": t, "text": generate(spec, params, state, meta, "", Settings(length, t, seed=seed))[0][0]}
            for t in REPORT_TEMPERATURES]
    rows.append({"temperature": 0.0, "text": generate(spec, params, state, meta, "", Settings(length, seed=seed),
                                                      greedy=True)[0][0]})
    return rows
