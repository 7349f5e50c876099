"""Evidence roots as given on the command line, reduced to distinct, non-nested ones.

`matcher scan /ev /ev/sub /ev` names the files under /ev/sub three times.
Hashing them three times would inflate every count and log each notable
match more than once, so the roots are reduced before the walk: a root equal
to an earlier one, or lying inside another root, is dropped with a note that
the run record keeps. Two roots are the same when their normalised absolute
paths are equal or when they are the same directory (device and inode), such
as one folder reached by two paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def distinct_roots(evidence: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Return the roots to walk (in the order given) and a note for each one dropped."""
    normal = [os.path.normpath(os.path.abspath(e)) for e in evidence]
    kept: list[Path] = []
    notes: list[str] = []
    seen: dict[tuple[int, int], Path] = {}
    for index, (given, path) in enumerate(zip(evidence, normal, strict=True)):
        container = next(
            (
                evidence[other]
                for other, root in enumerate(normal)
                if other != index and _inside(path, root) and (path != root or other < index)
            ),
            None,
        )
        identity = _identity(path)
        if container is None and identity is not None and identity in seen:
            container = seen[identity]
        if container is not None:
            same = "is the same as" if _same(given, container) else "lies inside"
            notes.append(f"evidence {given} {same} evidence {container}: scanned once")
            continue
        if identity is not None:
            seen[identity] = given
        kept.append(given)
    return kept, notes


def _same(a: Path, b: Path) -> bool:
    if os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b)):
        return True
    ia, ib = _identity(str(a)), _identity(str(b))
    return ia is not None and ia == ib
