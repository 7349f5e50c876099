"""Marks functions that run as callbacks from a C library, where a signal must not raise.

TSK (pytsk3) reads an image through Python: its C code calls our
`Img_Info.read` for every block. An exception raised inside that callback
comes back out of TSK as a failure of whatever TSK was doing, so the scan's
SIGINT/SIGTERM handler, raising `Interrupted` where it landed, turned an
interrupted scan into a `complete` one with invented errors: a directory
that "cannot be listed", a file with an `io-error`.

Such a function is marked `@foreign_callback`. The scan's signal handler
asks `in_foreign_callback(frame)` of the frame it interrupted, and holds a
signal that landed in one (or in anything it called), to raise it at its
next point in the scan's own code. The frame is walked, not a flag set on
entry: Python runs a pending handler as a function starts, before any of
its own statements.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from collections.abc import Iterator
from types import CodeType
from types import FrameType
from typing import Any
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

_CALLBACKS: set[CodeType] = set()


def foreign_callback(function: F) -> F:
    """Mark `function` as one that a C library calls (see the module's note)."""
    _CALLBACKS.add(function.__code__)
    return function


def in_foreign_callback(frame: FrameType | None) -> bool:
    """True when `frame` is, or was called by, a function marked `foreign_callback`."""
    while frame is not None:
        if frame.f_code in _CALLBACKS:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def held_in_callbacks() -> Iterator[None]:
    """Hold a SIGINT/SIGTERM that lands in a foreign callback; send it again on leaving.

    For code that calls TSK before the scan's own handling of signals is in
    force (opening an image, checking it): there Python's own handlers run,
    and the KeyboardInterrupt of a Ctrl-C raised inside TSK's read came out
    of TSK as a RuntimeError, an "internal error". A signal that lands
    anywhere else goes to the handler in force before, at once. Outside the
    main thread (where Python runs no signal handler) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if in_foreign_callback(frame):
            if not pending:
                pending.append(signum)
            return
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:  # the default (end the process) at once
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    previous: dict[int, Any] = {
        s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
        if pending:
            signal.raise_signal(pending[0])
