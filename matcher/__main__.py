"""Allows `python -m matcher`; `run` is also the `matcher` command's entry point."""

from __future__ import annotations

import contextlib
import signal
import sys


def run() -> None:
    """Start the command line.

    A Ctrl-C while matcher's code still loads (its first tens of
    milliseconds) exits 8, "interrupted", as it does later, with one line.
    (One in Python's own start-up, before this runs, gets Python's traceback.)
    """
    try:
        from matcher.cli import cli
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted while starting: nothing was done.\n")
        raise SystemExit(8) from None  # ExitCode.INTERRUPTED, without importing more
    try:
        cli()
    except Exception:  # noqa: BLE001 - the last stop before Python's exit 1
        # Note: what escapes here could not even be reported (stderr full or
        # closed: the error's own message failed). Python would exit 1, the
        # code of a notable match; 2 is a fatal error.
        with contextlib.suppress(Exception):
            sys.stderr.write("Error: matcher could not report its outcome (stderr unwritable).\n")
        raise SystemExit(2) from None
    finally:
        # Note: the command is over and its exit status decided. A signal that
        # lands while Python shuts down (the tail of a Ctrl-C storm) printed a
        # KeyboardInterrupt traceback from threading's shutdown over it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    run()
