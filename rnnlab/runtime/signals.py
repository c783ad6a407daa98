"""Ctrl-C and SIGTERM, handled one way in the whole process (the one home for signals).

    signals.install()              # the CLI's first line: from here on both signals raise Interrupted
    with signals.handling(): ...   # the same inside one call (api.train in a user's script), then restored
    with signals.deferred(): ...   # writes that must not be cut: a signal waits until the block ends
    with signals.undeferred(): ... # inside a deferred block, signals raise again (a search trial)
    with signals.last_words(fn):   # fn() runs before a fast exit (say "interrupted" in summary.json)
    signals.exit_code()            # 128 + the first signal (130 SIGINT, 143 SIGTERM), as shells and Slurm expect

Both signals raise `Interrupted`, a KeyboardInterrupt, so SIGTERM stops every phase through the same
except/finally paths as Ctrl-C. A second signal within FAST_EXIT_S of the first exits at once (after any
deferred block): the last words run, the temporary files of writes in flight are removed (`runtime.io`
registers them), and every finished file is whole because it was renamed into place.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

FAST_EXIT_S = 1.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM, raised where the main thread was."""

    def __init__(self, signum: int):
        super().__init__(f"{NAMES.get(signum, signum)}")
        self.signum = signum


class _State:
    first: int | None = None  # the first signal received (decides the exit code)
    last_at: float = -1e9  # when the last one arrived (monotonic)
    depth: int = 0  # deferred blocks open
    held: int | None = None  # a signal that arrived inside a deferred block
    fast: int | None = None  # a second signal inside a deferred block: exit when it ends
    installed: bool = False
    words: list[Callable[[], None]] = []
    temp_files: set[str] = set()


_S = _State()


def _handler(signum: int, frame) -> None:
    now = time.monotonic()
    second = _S.first is not None and now - _S.last_at < FAST_EXIT_S
    _S.first = _S.first if _S.first is not None else signum
    _S.last_at = now
    if second:
        if _S.depth:
            _S.fast = signum
            return
        fast_exit()
    if _S.depth:
        _S.held = signum
        return
    raise Interrupted(signum)


def fast_exit() -> None:
    """Leave now: last words, no temporary file left behind, exit 128 + the first signal."""
    for fn in reversed(_S.words):
        try:
            fn()
        except Exception:  # noqa: S110 - nothing can be reported any more; the next words still run
            pass
    for path in list(_S.temp_files):
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        sys.stderr.write(f"interrupted twice: stopped at once (exit {exit_code()})\n")
        sys.stderr.flush()
    except Exception:  # noqa: S110 - a closed stderr must not keep the process alive
        pass
    os._exit(exit_code())


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """Handle both signals for the rest of the process (the CLI's entry point calls this first)."""
    if _main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)
        _S.installed = True


@contextmanager
def handling() -> Iterator[None]:
    """Both signals raise Interrupted inside the block (already so after install()); the caller's
    handlers come back afterwards, and the signals received are forgotten (the call's result says what
    happened), so a library call leaves a user's program as it found it."""
    if _S.installed or not _main_thread() or signal.getsignal(signal.SIGTERM) is _handler:  # or nested
        yield
        return
    old = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        reset()


@contextmanager
def deferred() -> Iterator[None]:
    """A signal inside the block is held until the block ends, then raised (a second one exits at
    once, also only when the block ends), so what the block writes is never half done."""
    if not _main_thread():
        yield
        return
    with handling():
        _S.depth += 1
        try:
            yield
        finally:
            _S.depth -= 1
        if _S.depth == 0:
            if _S.fast is not None:
                fast_exit()
            if _S.held is not None:
                held, _S.held = _S.held, None
                raise Interrupted(held)


@contextmanager
def undeferred() -> Iterator[None]:
    """Inside a deferred block, a block where signals raise again (rnnlab search: Optuna's bookkeeping
    around a trial is deferred, the trial itself is not). A signal held so far is raised as it starts."""
    if not _main_thread() or not _S.depth:
        yield
        return
    depth, _S.depth = _S.depth, 0
    try:
        if _S.fast is not None:
            fast_exit()
        if _S.held is not None:
            held, _S.held = _S.held, None
            raise Interrupted(held)
        yield
    finally:
        _S.depth = depth


@contextmanager
def last_words(fn: Callable[[], None]) -> Iterator[None]:
    """fn runs if the process exits at once (a second signal) while the block is open."""
    _S.words.append(fn)
    try:
        yield
    finally:
        _S.words.remove(fn)


@contextmanager
def temp_file(path: str) -> Iterator[None]:
    """A temporary file being written: removed by a fast exit (an atomic write registers its own)."""
    _S.temp_files.add(path)
    try:
        yield
    finally:
        _S.temp_files.discard(path)


@contextmanager
def unmasked() -> Iterator[None]:
    """A signal that a library turned into another error inside the block is raised as the interrupt it
    was: a C extension whose initialisation Ctrl-C cut reports "ImportError: initialization failed"
    (the interrupt only as its cause), and the run must stop as interrupted, not as failed."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        cause = _interrupt_behind(exc)
        if cause is None:
            raise
        raise cause from None


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def received() -> int | None:
    """The first signal this process received, or None."""
    return _S.first


def exit_code(default: int = 130) -> int:
    """128 + the first signal received (130 for SIGINT, 143 for SIGTERM); default when none was."""
    return 128 + _S.first if _S.first is not None else default


def signum_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (a plain one, raised by Python's own handler: SIGINT)."""
    return exc.signum if isinstance(exc, Interrupted) else signal.SIGINT


def reset() -> None:
    """Forget the signals received (tests that run several commands in one process)."""
    _S.first, _S.held, _S.fast, _S.last_at = None, None, None, -1e9
