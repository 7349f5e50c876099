"""Report output: atomic files (temp file beside the target, fsync, rename; 0600), JSON lists."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import IO
from typing import TextIO

from matcher.errors import UsageError
from matcher.sqlitefiles import scratch_folder

# What a spooled stdout report keeps in memory before it goes to a temp file.
_SPOOL_MEMORY = 16 << 20


def is_stdout(path: Path | None) -> bool:
    """True for the output that means stdout: none given, or "-"."""
    return path is None or str(path) == "-"


@contextlib.contextmanager
def atomic_text(
    path: Path | None,
    newline: str | None = "\n",
    errors: str = "strict",
    spool: bool = False,
    overwrite: bool = False,
) -> Iterator[TextIO]:
    """A UTF-8 text stream that becomes `path` only when the block ends without error.

    The data goes to `.<name>.<random>.tmp` in the same folder (created 0600
    with O_EXCL), is fsynced, then put in place, and the folder is fsynced.
    An existing `path` is refused before anything is written, and again at
    the end (a hard link, which never replaces), unless `overwrite`: then it
    is replaced by a rename, and only if it is a regular file (or a symlink,
    itself replaced). A report must never destroy a log, a key or a store
    given as its output by mistake. On any exception the temp file is
    removed and `path` is left as it was. `None` (or "-") means stdout:
    written as it comes, or with `spool`, kept aside (in memory, then a
    private temp file) and written only when the block ends without error.
    `errors="surrogateescape"` lets inventory formats write names that are
    not UTF-8 as their raw bytes.

    Raises:
        UsageError: the folder does not exist or cannot be written, or
            `path` exists (without `overwrite`) or is not a regular file.
    """
    if is_stdout(path) and (sys.stdout is None or getattr(sys.stdout, "closed_at_start", False)):
        raise UsageError("Standard output is closed: give an output file (-o FILE).")
    if is_stdout(path) and spool:
        # Note: never in the current folder, which may be an evidence folder.
        scratch = scratch_folder()
        kept: IO[bytes] = (
            tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY, mode="w+b", dir=str(scratch))
            if scratch is not None
            else io.BytesIO()
        )
        with kept:
            text = io.TextIOWrapper(kept, encoding="utf-8", errors=errors, newline=newline)
            try:
                yield text
                text.flush()
            except OSError as exc:
                raise UsageError(
                    f"Cannot keep the report aside in {scratch or 'memory'} until it is "
                    f"complete: {exc.strerror or exc}. Point TMPDIR at a folder with room."
                ) from exc
            finally:
                text.detach()  # `kept` is then closed only by its own block
            kept.seek(0)
            sys.stdout.flush()
            shutil.copyfileobj(kept, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return
    if path is None or str(path) == "-":  # is_stdout(), for mypy's narrowing below
        sys.stdout.flush()
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors=errors, newline=newline)
        try:
            yield out
            out.flush()
        finally:
            out.detach()
        return
    check_target(path, overwrite)
    folder = path.parent if str(path.parent) else Path(".")
    tmp: Path | None = None
    fd = -1
    for _ in range(100):
        candidate = folder / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(
                f"Cannot write {path}: {exc.strerror or exc}. Choose a writable folder."
            ) from exc
        tmp = candidate
        break
    if tmp is None:
        raise UsageError(f"Cannot create a temporary file beside {path}.")
    raw = os.fdopen(fd, "wb")
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline=newline)
    try:
        yield stream
        stream.flush()
        os.fsync(raw.fileno())
        stream.close()
        _put_in_place(tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            stream.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse an output path that exists (unless `overwrite`) or is not a file.

    Raises:
        UsageError: naming the path and what to do.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    if stat.S_ISLNK(mode):
        # Note: replacing it would replace the link itself (with --force, a
        # link to /dev/null, or /dev/stdout, became a regular file).
        raise UsageError(
            f"Cannot write {path}: it is a symbolic link (to {os.path.realpath(path)}). "
            "Give the file's own path, or another output file."
        )
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise UsageError(f"Cannot write {path}: it is {what}. Choose another output file.")
    if not overwrite:
        raise UsageError(
            f"{path} already exists; matcher replaces no file unless told: give --force "
            "to replace it, or choose another output file."
        )


def _put_in_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the finished temp file its name: a rename with `overwrite`, else a hard link.

    Note: a link fails if the name appeared meanwhile; where the file system
    has no hard links, the name is checked and the file renamed.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        check_target(path, overwrite)
        raise
    except OSError:
        check_target(path, overwrite)
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json(
    stream: TextIO,
    document: Mapping[str, object],
    lists: Mapping[str, Iterable[object]],
    ensure_ascii: bool = True,
) -> None:
    """What json.dump(document, indent=2) writes, with `lists` as its top-level lists.

    Each list is written item by item, never held: `document` gives the
    rest (each of those keys an empty list), and each item goes in its
    list's place, dumped alone and indented two levels. A final newline
    ends it.
    """
    text = json.dumps(document, indent=2, ensure_ascii=ensure_ascii)
    # Note: a newline never occurs inside a JSON string, so these are top-level keys.
    places = []
    for key, items in lists.items():
        empty = "\n  " + json.dumps(key, ensure_ascii=ensure_ascii) + ": []"
        at = text.find(empty)
        assert at >= 0, f"the document has a top-level {key} list, empty"
        places.append((at, empty, items))
    done = 0
    for at, empty, items in sorted(places, key=lambda place: place[0]):
        stream.write(text[done:at] + empty.removesuffix("[]"))
        first = True
        for item in items:
            dumped = json.dumps(item, indent=2, ensure_ascii=ensure_ascii)
            stream.write(("[\n    " if first else ",\n    ") + dumped.replace("\n", "\n    "))
            first = False
        stream.write("[]" if first else "\n  ]")
        done = at + len(empty)
    stream.write(text[done:] + "\n")
