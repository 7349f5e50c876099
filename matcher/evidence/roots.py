"""Evidence roots as given on the command line, reduced to distinct, non-nested ones.

`matcher scan /ev /ev/sub /ev` names the files under /ev/sub three times.
Hashing them three times would inflate every count and log each notable
match more than once, so the roots are reduced before the walk: a root equal
to an earlier one, or lying inside another root, is dropped with a note that
the run record keeps. Containment is decided on real paths (symlinks
resolved: `L/sub` with L a link to `ev` lies inside `ev`; `ev/link/x` with
`link` pointing out of `ev` does not, as the walk of `ev` never follows
`link`), and two roots are also the same when they are the same directory
(device and inode), such as one folder mounted twice. A nested root that
the outer root's walk would never reach (an `--exclude` pattern takes a
folder between them, or `--one-file-system` stops at a crossing) is kept,
and walked as a root of its own. So is every folder nested in another root
when there are `--exclude` patterns: they match paths relative to the root
walked, and the files under a root the examiner named follow the patterns
as they read against that root, wherever it lies (FolderWalker.walk then
leaves it out of the outer root's walk).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

# Whether a walk leaves out an entry: (path relative to its root, name) -> bool.
Excluded = Callable[[bytes, bytes], bool]


def absolute(path: str | os.PathLike[str]) -> str:
    """`path` made absolute as the kernel resolves it.

    os.path.abspath collapses `..` lexically: it takes `LINK/..` for the
    folder holding LINK, where the kernel goes to the parent of LINK's
    target, so a scan of `Lsub/..` walked the folder above the one named
    (the log being written there among its files). A path with a `..`
    component is therefore resolved whole (realpath); any other is only
    made absolute, keeping the names (and symlinks) the examiner gave.
    """
    text = os.fspath(path)
    if os.pardir in text.split(os.sep):
        return os.path.realpath(text)
    return os.path.abspath(text)


def unusable_root(path: str | os.PathLike[str]) -> str | None:
    """Why the evidence `path` cannot be looked at at all (words after its name), or None.

    Note: os.path.lexists says False for a path below a folder this user
    cannot search (EACCES): "does not exist" sent the examiner to look for a
    typo in a path that is there.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "does not exist"
    except PermissionError as exc:
        return (
            f"cannot be reached ({exc.strerror}): a folder above it cannot be searched by this user"
        )
    except OSError as exc:
        return f"cannot be reached ({exc.strerror})"
    # Note: the command line refused such a root, while a batch item or a
    # library call scanned it as one walk error: "complete", exit 4.
    if stat.S_ISDIR(st.st_mode) and not os.access(path, os.R_OK | os.X_OK):
        return (
            "cannot be read (Permission denied): this user may not list that folder or open "
            "what it holds"
        )
    if stat.S_ISREG(st.st_mode) and not os.access(path, os.R_OK):
        return "cannot be read (Permission denied): this user may not read that file"
    return None


def _identity(path: str) -> tuple[int, int] | None:
    """A folder's (device, inode): one folder named by two paths (a bind mount).

    Note: None for a file: a file's hard links are entries of their own (a
    walk lists both names); the second given as a root was dropped as "the same".
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _unreached(path: str, root: str, excluded: Excluded | None, one_file_system: bool) -> bool:
    """True when the walk of `root` never reaches `path` (below it): see the module's note."""
    parts = os.path.relpath(path, root).split(os.sep)
    folder = root
    device = _identity(root)
    for depth, part in enumerate(parts, 1):
        relative = os.fsencode(os.path.join(*parts[:depth]))
        # Note: the nested root itself is never excluded (no root is): only a folder above it.
        if excluded is not None and depth < len(parts) and excluded(relative, os.fsencode(part)):
            return True
        folder = os.path.join(folder, part)
        here = _identity(folder)
        if one_file_system and (here is None or device is None or here[0] != device[0]):
            return True
        device = here
    return False


def distinct_roots(
    evidence: Sequence[Path],
    excluded: Excluded | None = None,
    one_file_system: bool = False,
    walked_inside: Callable[[Path], bool] | None = None,
) -> tuple[list[Path], list[str]]:
    """Return the roots to walk (in the order given) and a note for each one dropped or kept aside.

    `excluded` and `one_file_system` are the walk's own rules (FolderWalker),
    so that a nested root it would not reach is kept. `walked_inside` says
    of a file root that it is walked inside (a disk image): such a root
    inside a folder root is kept too, since the folder's walk hashes it as
    one file and never walks what it holds.
    """
    real = [os.path.realpath(e) for e in evidence]
    kept: list[Path] = []
    notes: list[str] = []
    seen: dict[tuple[int, int], Path] = {}
    for index, (given, path) in enumerate(zip(evidence, real, strict=True)):
        around = [
            other
            for other, root in enumerate(real)
            if other != index and _inside(path, root) and (path != root or other < index)
        ]
        reached = [
            other
            for other in around
            if real[other] == path or not _unreached(path, real[other], excluded, one_file_system)
        ]
        container = evidence[reached[0]] if reached else None
        identity = _identity(path)
        if container is None and identity is not None and identity in seen:
            container = seen[identity]
        same = container is not None and _same(given, container)
        nested = container is not None and not same
        if nested and identity is None and walked_inside is not None and walked_inside(given):
            # Note: folded, `scan case case/disk.raw` hashed disk.raw as a file
            # of `case` and never walked the image: "scanned once", exit 0, a
            # notable file inside it never read.
            notes.append(
                f"evidence {given} lies inside evidence {container}: walked as the disk image "
                f"it is (the walk of {container} hashes it as one file)"
            )
        elif nested and identity is not None and excluded is not None:
            # Note: folded into the outer root's walk, the files under it met
            # the patterns as they read against the outer root: `scan ev
            # ev/d0/s0 --exclude 'd0/*'` excluded every file the examiner
            # named, noted "scanned once". (A file root is never excluded,
            # in either walk: it stays folded.)
            notes.append(
                f"evidence {given} lies inside evidence {container}: walked as a root of its "
                "own, --exclude patterns matched against paths below it (the walk of "
                f"{container} leaves it to that)"
            )
        elif container is not None:
            if nested:
                notes.append(f"evidence {given} lies inside evidence {container}: scanned once")
            elif str(given) == str(container):
                notes.append(f"evidence {given} is named twice: scanned once")
            else:
                notes.append(f"evidence {given} is the same as evidence {container}: scanned once")
            continue
        elif around:
            notes.append(
                f"evidence {given} lies inside evidence {evidence[around[0]]}, whose walk does not "
                "reach it (--exclude or --one-file-system): scanned as a root of its own"
            )
        if identity is not None:
            seen[identity] = given
        kept.append(given)
    return kept, notes


def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    ia, ib = _identity(str(a)), _identity(str(b))
    return ia is not None and ia == ib
