"""Allows `python -m matcher`; `run` is also the `matcher` command's entry point."""

from __future__ import annotations

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
    finally:
        # Note: the command is over and its exit status decided. A signal that
        # lands while Python shuts down (the tail of a Ctrl-C storm) printed a
        # KeyboardInterrupt traceback from threading's shutdown over it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    run()
