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
        code = 0
    except KeyboardInterrupt:  # before a command took over (while importing or parsing)
        code = signals.exit_code()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    _leave(code)


def _leave(code: int) -> None:
    """Exit with our signal handlers still in place: the interpreter's own teardown puts the default ones
    back first, and a signal then kills the process (exit -2 or -15, not 130 or 143). So the exit hooks
    run here (logging's flush, joblib's cleanup), with a signal held until they end, then os._exit."""
    import atexit
    import os

    from rnnlab.runtime import signals

    try:
        with signals.deferred():
            atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: S110 - a closed pipe: nothing more to say
                    pass
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(signals.exit_code() if signals.received() is not None else code)


if __name__ == "__main__":
    main()
