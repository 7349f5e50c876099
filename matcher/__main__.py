"""Allows `python -m matcher`; `run` is also the `matcher` command's entry point."""

from __future__ import annotations

import contextlib
import errno
import io
import signal
import sys


def run() -> None:
    """Start the command line.

    A Ctrl-C while matcher's code still loads (its first tens of
    milliseconds) exits 8, "interrupted", as it does later, with one line.
    (One in Python's own start-up, before this runs, gets Python's traceback.)
    """
    _stand_in_for_closed_outputs()
    # Note: SIGTERM too (a supervisor stopping a job as it starts): killed
    # silently, it exited 143 with nothing said.
    signal.signal(signal.SIGTERM, _starting_terminated)
    try:
        from matcher.cli import cli
    except KeyboardInterrupt as exc:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        what = "Terminated" if isinstance(exc, _StartingTerminated) else "Interrupted"
        said = f"{what} while starting: nothing was done."
        sys.stderr.write(f"{said}\n")
        if "--json" in sys.argv[1:]:
            # Note: a script parsing --json had no object on stdout, where an
            # interruption once matcher's code has loaded gives one.
            with contextlib.suppress(Exception):
                stopped = f'{{"status": "interrupted", "exit_code": 8, "error": "{said}"}}'
                sys.stdout.write(stopped + "\n")
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
        # KeyboardInterrupt traceback from threading's shutdown over it. A
        # hangup too, which a command takes as a SIGTERM (a terminal closing
        # as the scan ends).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


class _StartingTerminated(KeyboardInterrupt):
    """SIGTERM while matcher's code loads, taken as a Ctrl-C is."""


def _starting_terminated(signum: int, frame: object) -> None:
    raise _StartingTerminated


class _Closed(io.TextIOBase):
    """Stands in for a standard output the process was started without (`>&-`)."""

    encoding = "utf-8"
    # Note: what the report writer asks, to say "Standard output is closed".
    closed_at_start = True

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EBADF, "the output is closed")

    def flush(self) -> None:
        """Nothing to flush: nothing is ever held (a write fails at once)."""

    @property
    def buffer(self) -> io.RawIOBase:
        return _ClosedBytes()


class _ClosedBytes(io.RawIOBase):
    """The bytes side of `_Closed`: a write fails at once."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise BrokenPipeError(errno.EBADF, "the output is closed")


def _stand_in_for_closed_outputs() -> None:
    """Make a write to a closed stdout or stderr fail, as one to a reader gone does.

    Python sets such a stream to None, and click then drops what is echoed
    there without a word: `scan --json >&-` exited 1 with its JSON lost, and
    `verify >&-` 0, where an outcome that cannot be reported exits 2.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, _Closed())


if __name__ == "__main__":
    run()
