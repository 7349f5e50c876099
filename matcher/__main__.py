"""Allows `python -m matcher`; `run` is also the `matcher` command's entry point."""

from __future__ import annotations

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
    cli()


if __name__ == "__main__":
    run()
