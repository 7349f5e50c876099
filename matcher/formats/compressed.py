"""Refusals for a hash list that arrives packed: a zip that is not an NSRL RDS 2.x
distribution, and gzip, bzip2, xz, zstd, 7z or tar files.

NIST ships the RDS v3 database zipped, and suppliers zip or gzip their lists.
matcher reads one packed form only, the NSRL RDS 2.x zip holding NSRLFile.txt
(nsrl_rds2); any other came out as "not a hash list in any format", with no
word of what the file was. Unpacking is the examiner's step, with the tool of
their choice, so that the file imported (and its SHA-256 in the log) is the
list itself.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import ZIP_MAGIC
from matcher.formats.nsrl_rds2 import MEMBER
from matcher.formats.nsrl_rds2 import NsrlRds2Reader

_MAGICS = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z", "7z x"),
)
_SHOWN = 5  # member names a message gives


class PackedListRefusal:
    """A packed file no reader took: say what it holds, and to unpack it first."""

    NAME = "packed"
    DESCRIPTION = "a zip (other than an NSRL RDS 2.x one), gzip, bzip2, xz, zstd, 7z or tar file"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        if head.startswith(ZIP_MAGIC):
            return _zip_reason(path)
        for magic, kind, tool in _MAGICS:
            if head.startswith(magic) and (magic != b"BZh" or _bzip2(head)):
                return (
                    f"a {kind}-compressed file: matcher reads hash lists unpacked; unpack it "
                    f"(`{tool}`) and import the list it holds"
                )
        if _tar_header(head):
            return (
                "a tar archive: matcher reads hash lists unpacked; unpack it (`tar xf`) and "
                "import the list it holds"
            )
        return None


def _bzip2(head: bytes) -> bool:
    """A bzip2 stream's start: "BZh", a block size 1-9, then a block's or the end's magic.

    Note: "BZh" alone could start a text list's header (a review).
    """
    return (
        head[3:4] in b"123456789"
        and len(head) >= 10
        and head[4:10]
        in (
            b"1AY&SY",
            b"\x17rE8P\x90",
        )
    )


def _tar_header(head: bytes) -> bool:
    """A tar header: "ustar" at byte 257 and the header's checksum right.

    Note: "ustar" alone can fall at byte 257 of a text list ("mustard.txt", a review).
    """
    if len(head) < 512 or head[257:262] != b"ustar":
        return False
    try:
        stored = int(head[148:156].strip(b" \0") or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:512])


def _zip_reason(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None  # nsrl_rds2's damaged-zip refusal names the fault
    if any(n.replace("\\", "/").rsplit("/", 1)[-1].lower() == MEMBER for n in names):
        return _nsrl_zip_fault(path)
    shown = ", ".join(repr(n[:100]) for n in names[:_SHOWN])
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    holding = f"holding {shown}{more}" if names else "holding no file"
    return (
        f"a zip archive {holding}: matcher reads a zip only as an NSRL RDS 2.x "
        "distribution (its NSRLFile.txt); unpack the hash list (an RDS v3 .db, a VICS "
        ".json, ...) and import that file"
    )


def _nsrl_zip_fault(path: Path) -> str | None:
    """Why a zip holding NSRLFile.txt that no reader took is no NSRL RDS 2.x list, if it says.

    Read as one, its first fault is named (a header that is not NSRL's), as
    `--format nsrl-rds2` names it; None when it reads (nsrl_rds2's to take).
    """
    try:
        with path.open("rb") as stream:
            next(iter(NsrlRds2Reader().parse(stream, source=str(path))), None)
    except FormatError as exc:
        where = f"line {exc.line} of NSRLFile.txt: " if exc.line is not None else ""
        return f"a zip holding NSRLFile.txt that is not an NSRL RDS 2.x list ({where}{exc.reason})"
    except OSError:
        return None
    return None


registry.register_refusal(PackedListRefusal())
