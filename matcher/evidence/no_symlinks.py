"""Open a path none of whose components is a symlink, in one call: Linux openat2(2).

openat2 with RESOLVE_NO_SYMLINKS (Linux 5.6 and later) refuses (ELOOP) a path
in which any component is a symlink, where open(2) with O_NOFOLLOW checks only
the last one. Without it, the same guarantee takes one open per component: a
folder 30 levels deep cost 30 opens, and a scan of a deep tree 1.7 times its
time. Where the call is missing (an older kernel, a container whose seccomp
filter refuses it, another system), `available()` is False and the caller
opens one component at a time.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from typing import Any

# Note that openat2 has one number on every Linux architecture with the
# unified syscall table (x86-64, arm64, riscv, ...; alpha alone differs).
_SYS_OPENAT2 = 437
_AT_FDCWD = -100
_RESOLVE_NO_SYMLINKS = 0x04


class _OpenHow(ctypes.Structure):
    """struct open_how (linux/openat2.h)."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_call: Any = None
_checked = False
# The call's fixed arguments, as C values: passed as they are, with no
# conversion per call (an open costs some 0.4 µs more than os.open, not 1.1).
_NUMBER = ctypes.c_long(_SYS_OPENAT2)
_CWD = ctypes.c_long(_AT_FDCWD)
_SIZE = ctypes.c_size_t(ctypes.sizeof(_OpenHow))
# One open_how per set of flags (a file's, a folder's, with or without O_NOATIME).
_HOWS: dict[int, tuple[_OpenHow, Any]] = {}


def available() -> bool:
    """Whether openat2 works here (checked once, by opening / with it)."""
    global _call, _checked
    if _checked:
        return _call is not None
    _checked = True
    if not sys.platform.startswith("linux"):
        return False
    try:
        call = ctypes.CDLL(None, use_errno=True).syscall
        call.restype = ctypes.c_long
        fd = call(_NUMBER, _CWD, b"/", _how(os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), _SIZE)
    except (OSError, AttributeError, TypeError):
        return False
    if fd < 0:
        return False  # ENOSYS, or EPERM from a seccomp filter
    os.close(fd)
    _call = call
    return True


def _how(flags: int) -> Any:
    """A reference to the open_how of `flags` (made once)."""
    held = _HOWS.get(flags)
    if held is None:
        how = _OpenHow(flags, 0, _RESOLVE_NO_SYMLINKS)
        held = _HOWS[flags] = (how, ctypes.byref(how))
    return held[1]


def opener(flags: int) -> Callable[[bytes], int]:
    """open_no_symlinks for one set of flags, with its arguments made once (a scan's hot path).

    Only after available() said True.
    """
    call, number, cwd, how, size = _call, _NUMBER, _CWD, _how(flags), _SIZE
    get_errno, eintr = ctypes.get_errno, errno.EINTR

    def open_path(path: bytes) -> int:
        while True:
            fd: int = call(number, cwd, path, how, size)
            if fd >= 0:
                return fd
            code = get_errno()
            if code != eintr:  # retried, as in open_no_symlinks
                raise OSError(code, os.strerror(code), os.fsdecode(path))

    return open_path


def open_no_symlinks(path: bytes, flags: int) -> int:
    """os.open(path, flags), refused with ELOOP if any component of `path` is a symlink.

    Only after available() said True. `path` holds no NUL (a path never does).

    Raises:
        OSError: as os.open raises, with the call's errno.
    """
    how = _how(flags)
    while True:
        fd: int = _call(_NUMBER, _CWD, path, how, _SIZE)
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        # Note: os.open retries a call a signal interrupted (PEP 475), and so
        # must this one: an open on a FUSE or NFS mount can wait, and the
        # scan handles SIGINT, SIGTERM and SIGHUP (without SA_RESTART).
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code), os.fsdecode(path))
