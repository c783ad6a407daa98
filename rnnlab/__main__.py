"""`rnnlab` (the console script) and `python -m rnnlab`: signals first, then the command line.

The signal handlers go in before anything else is imported, so Ctrl-C and SIGTERM are handled the
same way from the process's first line of rnnlab to its exit (`rnnlab.runtime.signals`): the run
records a truthful status, and the exit code is 128 + the signal (130, 143).
"""

from __future__ import annotations

import sys


def main() -> None:
    from rnnlab.runtime import signals

    signals.install()
    try:
        from rnnlab.cli import app

        app()
    except KeyboardInterrupt:  # before a command took over (while importing or parsing)
        _leave(signals.exit_code())
    except SystemExit:
        if signals.received() is not None:  # whatever the command said, a signal stopped it
            _leave(signals.exit_code())
        raise


def _leave(code: int) -> None:
    """Exit after a signal without the interpreter's slow teardown: every file is closed and whole by
    now, and a second Ctrl-C during the teardown would otherwise kill the process (exit -2, not 130)."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: S110 - a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
