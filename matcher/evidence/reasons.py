"""Why a container could not be read, said without a byte of its content.

A parser's own message may quote what it read: gzip says `Not a gzipped
file (b'SE')`, int() says `invalid literal ... '\\x00ab'`, py7zr raises a
KeyError of a byte it did not expect. Such text must never reach a log, a
report or an error message. `describe()` keeps the message only of the
exception kinds whose messages are fixed text or metadata (errno strings, zip
and tar structure errors, decompressor errors), with any bytes literal
replaced; of anything else it keeps only the kind.
"""

from __future__ import annotations

import functools
import re
import zlib


class OwnMessage(Exception):
    """A mixin for matcher's own reader errors: their messages never quote content."""


@functools.cache
def _message_safe() -> tuple[type[BaseException], ...]:
    """Kinds whose messages say what went wrong, not what was read.

    Note: built at the first failure, so that a scan that never reads an
    archive never loads the archive modules (a tenth of every start-up).
    """
    import lzma
    import tarfile
    import zipfile

    return (
        OwnMessage,
        OSError,  # includes gzip.BadGzipFile, whose message can quote magic bytes (scrubbed below)
        EOFError,
        zlib.error,
        lzma.LZMAError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        NotImplementedError,  # zipfile: "That compression method is not supported"
        RuntimeError,  # zipfile: "File 'name' is encrypted, password required ..."
    )


_BYTES_LITERAL = re.compile(r"""b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*\"""")
_LONGEST = 200


def describe(exc: BaseException) -> str:
    """`Kind: message` for a message-safe kind (bytes literals removed), else `Kind`."""
    kind = type(exc).__name__
    if not isinstance(exc, _message_safe()):
        return kind
    message = _BYTES_LITERAL.sub("<bytes>", str(exc)).strip()
    if len(message) > _LONGEST:
        message = message[:_LONGEST] + "..."
    return f"{kind}: {message}" if message else kind
