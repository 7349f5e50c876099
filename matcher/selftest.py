"""Job: known-answer self-test of the installed build (digests, chunking, parsers, log chain).

`run_selftest(fast=True)` is what `scan` runs at start-up (milliseconds):
the FIPS 180 / RFC 1321 example messages through every available digest, and
the log chain written, verified, tampered and caught. The full test adds
generated files across read-chunk boundaries, hashed through the real engine,
and every registered list parser on an embedded sample.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from matcher import auditlog
from matcher.digests import available_algorithms
from matcher.digests import new_hasher
from matcher.errors import IntegrityError
from matcher.evidence.folder import open_readonly
from matcher.hashing import CHUNK_SIZE
from matcher.hashing import Hasher
from matcher.models import FileTask

_ABC = b"abc"
_FIPS_448 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
_FIPS_896 = (
    b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
    b"klmnopqrlmnopqrsmnopqrstnopqrstu"
)
_MILLION_A = b"a" * 1_000_000

# (algorithm, message, expected hex): FIPS 180-4 examples, RFC 1321 appendix A.5,
# and the BLAKE3 reference digest of the empty input and of "abc".
KNOWN_ANSWERS: list[tuple[str, bytes, str]] = [
    ("md5", b"", "d41d8cd98f00b204e9800998ecf8427e"),
    ("md5", b"a", "0cc175b9c0f1b6a831c399e269772661"),
    ("md5", _ABC, "900150983cd24fb0d6963f7d28e17f72"),
    ("md5", b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    ("md5", b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    ("md5", b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
    ("sha1", _ABC, "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("sha1", _FIPS_448, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    ("sha1", _MILLION_A, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
    ("sha256", _ABC, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("sha256", _FIPS_448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ("sha256", _MILLION_A, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    (
        "sha512",
        _ABC,
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    ),
    (
        "sha512",
        _FIPS_896,
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
        "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
    ),
    ("blake3", b"", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
    ("blake3", _ABC, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"),
]

_HELLO = {
    "md5": "5d41402abc4b2a76b9719d911017c592",
    "sha1": "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
    "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
}
_H = _HELLO
# One embedded sample per text format, each holding the digests of b"hello".
TEXT_SAMPLES: dict[str, bytes] = {
    "gnu-sum": f"{_H['sha256']}  hello.txt\n".encode(),
    "bsd-tag": f"SHA256 (hello.txt) = {_H['sha256']}\n".encode(),
    "plain": f"{_H['md5'].upper()}\n{_H['sha1']}\n".encode(),
    "hashdeep": (
        "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: /x\n## \n"
        f"5,{_H['md5']},{_H['sha256']},/x/hello.txt\n"
    ).encode(),
    "csv": f"md5,sha256,size,filename\n{_H['md5']},{_H['sha256']},5,hello.txt\n".encode(),
    "clamav": f"{_H['md5']}:5:Synthetic.Hello\n".encode(),
    "nsrl-rds2": (
        '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
        f'"{_H["sha1"].upper()}","{_H["md5"].upper()}","3610A686","hello.txt",5,1,"189",""\r\n'
    ).encode(),
    "vics": (
        '{"@odata.context":"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/'
        'Default/$metadata#Media","value":[{"MediaID":1,"Category":0,'
        f'"MD5":"{_H["md5"].upper()}","SHA1":"{_H["sha1"].upper()}","MediaSize":5}}]}}'
    ).encode(),
    "xways": f"SHA-1\r\n{_H['sha1'].upper()}\r\n".encode(),
    "hashkeeper": (
        '"file_id","hashset_id","file_name","directory","hash","file_size","date_modified",'
        '"time_modified","time_zone","comments","date_accessed","time_accessed"\r\n'
        f'1,900,"hello.txt","C:\\x","{_H["md5"].upper()}",5,,,,,,\r\n'
    ).encode(),
    "ilook": (
        "V3Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,HashSHA512\n"
        f"{_H['md5'].upper()},{_H['sha1'].upper()},hello.txt,\\,5,{_H['sha256']},,\n"
    ).encode(),
    # EnCase legacy .hash: signature, version 2, flag 1, one hash; name at 0x408;
    # one 18-byte record (raw MD5, two zero bytes) from 0x480.
    "encase": (
        b"HASH\r\n\xff\x00\x02\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00"
        + bytes(0x408 - 0x14)
        + "selftest".encode("utf-16-le").ljust(0x78, b"\x00")
        + bytes.fromhex(_H["md5"])
        + b"\x00\x00"
    ),
}


@dataclasses.dataclass
class Check:
    """One self-test check and its outcome."""

    area: str
    name: str
    passed: bool
    detail: str = ""


@dataclasses.dataclass
class SelftestResult:
    """All checks; `passed` only when every one passed."""

    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_log_dict(self) -> dict[str, object]:
        failed = [f"{c.area}: {c.name}" for c in self.checks if not c.passed]
        return {"passed": self.passed, "checks": len(self.checks), "failed": failed}


def _guard(area: str, name: str, fn: Callable[[], str | None]) -> Check:
    try:
        problem = fn()
    except Exception as exc:  # a self-test reports every failure, whatever it is
        return Check(area, name, False, f"{type(exc).__name__}: {exc}")
    return Check(area, name, problem is None, problem or "")


def _known_answers() -> list[Check]:
    available = set(available_algorithms())
    checks = []
    for algorithm, message, expected in KNOWN_ANSWERS:
        if algorithm not in available:
            continue
        shown = message[:12].decode() + ("..." if len(message) > 12 else "")

        def run(
            algorithm: str = algorithm, message: bytes = message, expected: str = expected
        ) -> str | None:
            h = new_hasher(algorithm)
            h.update(message)
            got = h.hexdigest()
            return None if got == expected else f"got {got}"

        checks.append(_guard("digest", f"{algorithm}({len(message)} bytes: {shown!r})", run))
    return checks


def _chunk_boundaries(workdir: Path) -> list[Check]:
    algorithms = available_algorithms()
    chunk = 4096
    hasher = Hasher(algorithms, open_readonly, chunk_size=chunk)
    full = Hasher(algorithms, open_readonly, chunk_size=CHUNK_SIZE)
    checks = []
    pattern = bytes(range(256)) * 64
    for size in (0, 1, chunk - 1, chunk, chunk + 1, 5 * chunk + 3, CHUNK_SIZE + 1):
        data = (pattern * (size // len(pattern) + 1))[:size]

        def run(size: int = size, data: bytes = data) -> str | None:
            path = workdir / f"chunk-{size}"
            path.write_bytes(data)
            st = os.lstat(path)
            task = FileTask(os.fsencode(path), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
            for engine in (hasher, full):
                out = engine.run(task)
                if out.digests is None:
                    return f"not hashed: {out.failure} {out.detail}"
                for algorithm in algorithms:
                    h = new_hasher(algorithm)
                    h.update(data)
                    if out.digests[algorithm] != h.digest():
                        return f"{algorithm} differs at chunk size {engine.chunk_size}"
            return None

        checks.append(_guard("engine", f"file of {size} bytes across {chunk}-byte chunks", run))
    return checks


def _nsrl_sample(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE FILE (sha256 VARCHAR, sha1 VARCHAR, md5 VARCHAR, crc32 VARCHAR, "
        "file_name VARCHAR, file_size INTEGER, package_id INTEGER);"
        "CREATE TABLE PKG (package_id INTEGER, name VARCHAR, version VARCHAR, "
        "operating_system_id INTEGER, manufacturer_id INTEGER, language VARCHAR, "
        "application_type VARCHAR);"
        "CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR, build_date TIMESTAMP, "
        "release_date TIMESTAMP, description VARCHAR);"
    )
    conn.execute(
        "INSERT INTO FILE VALUES (?, ?, ?, '3610A686', 'hello.txt', 5, 1)",
        [_H["sha256"].upper(), _H["sha1"].upper(), _H["md5"].upper()],
    )
    conn.execute(
        "INSERT INTO VERSION VALUES ('2026.09.1', 'selftest', '2026-09-01', '2026-09-01', 'x')"
    )
    conn.commit()
    conn.close()


def _kdb_sample(path: Path) -> None:
    # The schema The Sleuth Kit's `hfind -c` creates (tsk/hashdb/sqlite_hdb.cpp).
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE db_properties (name TEXT NOT NULL, value TEXT);"
        "CREATE TABLE hashes (id INTEGER PRIMARY KEY AUTOINCREMENT, md5 BINARY(16) UNIQUE, "
        "sha1 BINARY(20), sha2_256 BINARY(32));"
        "CREATE TABLE file_names (name TEXT NOT NULL, hash_id INTEGER NOT NULL, "
        "PRIMARY KEY(name, hash_id));"
        "INSERT INTO db_properties VALUES ('Schema Version', '1');"
    )
    conn.execute("INSERT INTO hashes (md5) VALUES (?)", [bytes.fromhex(_H["md5"])])
    conn.execute("INSERT INTO file_names VALUES ('hello.txt', 1)")
    conn.commit()
    conn.close()


def _parsers(workdir: Path) -> list[Check]:
    # Note: imported here; the fast self-test that every scan runs needs no list reader.
    from matcher.formats import registry
    from matcher.formats.base import HashListReader

    checks = []
    for name in registry.names():
        reader = registry.get(name)

        def run(name: str = name, reader: HashListReader = reader) -> str | None:
            path = workdir / f"sample-{name}"
            if name == "nsrl-rds3":
                _nsrl_sample(path)
            elif name == "tsk-kdb":
                _kdb_sample(path)
            elif name in TEXT_SAMPLES:
                path.write_bytes(TEXT_SAMPLES[name])
            else:
                return "no embedded sample for this format"
            detected = registry.detect(path).NAME
            if detected != name:
                return f"detected as {detected}"
            found = {
                (a, d.hex()) for record in reader.read(path) for a, d in record.digests.items()
            }
            wanted = {(a, h) for a, h in _HELLO.items()}
            if not found or not found <= wanted:
                return f"read {sorted(found)}"
            return None

        checks.append(_guard("parser", f"{name} sample detected and read", run))
    return checks


def _chain(workdir: Path) -> list[Check]:
    log_path = workdir / "chain.jsonl"

    def write_verify() -> str | None:
        log = auditlog.create(log_path)
        log.append("run", {"examiner": "selftest", "case": "selftest"})
        log.append("match", {"path": "/selftest/hello.txt", "digests": {"md5": _H["md5"]}})
        counts = {"entries": 1, "files": 1, "skipped": 0, "errors": 0, "notable": 1}
        log.append("end", {"status": "complete", "counts": {**counts, "known": 0, "unknown": 0}})
        log.close()
        auditlog.verify(log_path)
        return None

    def tamper() -> str | None:
        lines = log_path.read_bytes().splitlines(keepends=True)
        lines[1] = lines[1].replace(b"hello", b"hellO")
        bad = workdir / "chain-tampered.jsonl"
        bad.write_bytes(b"".join(lines))
        try:
            auditlog.verify(bad)
        except IntegrityError as exc:
            return None if exc.line == 3 else f"caught at line {exc.line}, expected 3"
        return "a tampered log verified"

    return [
        _guard("log", "write and verify a chain", write_verify),
        _guard("log", "an edited line is caught", tamper),
    ]


def run_selftest(fast: bool = False) -> SelftestResult:
    """Run the self-test; `fast` keeps to what a scan runs at start-up."""
    checks = _known_answers()
    with tempfile.TemporaryDirectory(prefix="matcher-selftest-") as tmp:
        workdir = Path(tmp)
        checks += _chain(workdir)
        if not fast:
            checks += _chunk_boundaries(workdir)
            checks += _parsers(workdir)
    return SelftestResult(checks)


__all__ = ["Check", "SelftestResult", "run_selftest"]
