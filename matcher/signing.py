"""One match-log record's bytes: canonical form, decoding, seals, signatures, keys.

`canonical_bytes` is the only serialisation of a record, and `decode_record`
accepts a line only if it is exactly that serialisation of what it holds.

A signed log lets a third party who holds only the examiner's public key
check who closed a run. `matcher.auditlog` decides which record types are
sealed (`end` and `checkpoint`); this module says how. `seal()` adds, in this
order: `key_fingerprint`, `signature` (base64 Ed25519 over
`SIGNATURE_CONTEXT` + the record's canonical bytes without `signature` and
`self_sha256`), then `self_sha256` (hex SHA-256 of the canonical bytes without
itself). `check_seal()` is its counterpart. The context prefix means a
signature made for the log can never be replayed as one over anything else.

Key files are PEM: the private key is unencrypted PKCS#8, the public key is
SubjectPublicKeyInfo. Both are created owner-only (0600) and never overwritten.
A key's fingerprint is the lowercase hex SHA-256 of its raw 32-byte public key;
the log names it in `key_fingerprint` so a reader knows which key to ask for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import TypeAlias

from matcher.errors import IntegrityError
from matcher.errors import UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Note: `cryptography` is imported by the functions that handle keys, so that a
# scan without --sign-key (and every start-up) does not load it (some 25 ms).

StrPath: TypeAlias = str | os.PathLike[str]

SIGNATURE_CONTEXT = b"matcher-log-signature-v1\n"
"""Domain-separation prefix of every log signature message."""
SELF_DIGEST = "self_sha256"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """The lowercase hex SHA-256 of the raw 32-byte public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def canonical_bytes(record: Mapping[str, object]) -> bytes:
    """The canonical UTF-8 serialisation of a log record, without newline.

    Raises:
        ValueError: the record holds NaN/infinity or text UTF-8 cannot encode.
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def decode_record(body: bytes) -> dict[str, object]:
    """Parse one line (without its newline) that must be a canonical JSON object.

    Raises:
        IntegrityError: (without a line number) not UTF-8, not JSON, not an
            object, or not byte for byte the canonical form of what it holds.
    """
    try:
        record = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IntegrityError(f"not valid UTF-8 at byte {exc.start}") from exc
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise IntegrityError("not a JSON object")
    try:
        expected: bytes | None = canonical_bytes(record)
    except (ValueError, RecursionError):
        expected = None
    if expected != body:
        if expected is not None and body.endswith(b"\r") and expected == body[:-1]:
            # Note: only its line end differs: a copy by a text tool (unix2dos,
            # a Windows mail or share) made it CRLF. Still no verified log;
            # the original is what to look for, not an editor.
            raise IntegrityError(
                "ends in CR LF, not LF: were the log's line ends converted (a text tool, a "
                "copy through Windows)? Verify the original file"
            )
        raise IntegrityError("not in canonical form (the line was re-serialised or edited)")
    return record


def signature_message(record: Mapping[str, object]) -> bytes:
    """The exact bytes signed for a record: the context prefix + its canonical
    bytes without `signature` and `self_sha256` (the keys added after signing)."""
    rest = {k: v for k, v in record.items() if k not in ("signature", SELF_DIGEST)}
    return SIGNATURE_CONTEXT + canonical_bytes(rest)


def seal(record: dict[str, object], signer: Signer | None, *, sign: bool, digest: bool) -> None:
    """Add the seal keys to a record in place, in their fixed order.

    Args:
        record: the record, all other keys already in place.
        signer: adds `key_fingerprint` and `signature` when given and `sign`.
        sign: whether this record type is signed.
        digest: whether this record type carries `self_sha256`.
    """
    if sign and signer is not None:
        record["key_fingerprint"] = signer.fingerprint
        signature = signer.sign(signature_message(record))
        record["signature"] = base64.b64encode(signature).decode("ascii")
    if digest:
        record[SELF_DIGEST] = hashlib.sha256(canonical_bytes(record)).hexdigest()


def check_seal(
    record: Mapping[str, object], verifier: Verifier | None, *, sign: bool, digest: bool
) -> str | None:
    """Check the seal keys of a parsed record (the counterpart of `seal`).

    Args:
        record: the parsed record (its line already known to be canonical).
        verifier: when given, a signable record must be signed by its key.
        sign: whether this record type may carry a signature.
        digest: whether this record type must carry `self_sha256`.

    Returns:
        The key fingerprint the record names, or None when it is unsigned.

    Raises:
        IntegrityError: (without a line number) a seal is missing or wrong.
    """
    kind = record.get("type")
    if digest:
        rest = {k: v for k, v in record.items() if k != SELF_DIGEST}
        expected = hashlib.sha256(canonical_bytes(rest)).hexdigest()
        if tuple(record)[-1:] != (SELF_DIGEST,) or record[SELF_DIGEST] != expected:
            raise IntegrityError(f"{kind} record's {SELF_DIGEST} is missing or does not match")
    elif SELF_DIGEST in record:
        raise IntegrityError(f"a {kind} record cannot carry {SELF_DIGEST}")
    sig, fp = record.get("signature"), record.get("key_fingerprint")
    if sig is None and fp is None:
        if sign and verifier is not None:
            raise IntegrityError(f"{kind} record is not signed, but a public key was given")
        return None
    if not sign:
        raise IntegrityError(f"a {kind} record cannot carry a signature")
    if not isinstance(sig, str) or not isinstance(fp, str):
        raise IntegrityError(f"{kind} record needs both signature and key_fingerprint as text")
    if verifier is None:
        return fp
    if fp != verifier.fingerprint:
        raise IntegrityError(
            f"{kind} record was signed by key {fp}, not by the given public key "
            f"{verifier.fingerprint}"
        )
    try:
        raw = base64.b64decode(sig, validate=True)
    except ValueError:
        raw = b""
    if not verifier.verify(signature_message(record), raw):
        raise IntegrityError(f"{kind} record's signature does not verify: altered after signing")
    return fp


class Signer:
    """Signs log records with an Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.fingerprint = fingerprint(private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of `message`."""
        return self._key.sign(message)

    def verifier(self) -> Verifier:
        """A verifier for this signer's public key."""
        return Verifier(self._key.public_key())


class Verifier:
    """Checks log signatures against one Ed25519 public key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._key = public_key
        self.fingerprint = fingerprint(public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is this key's signature of `message`."""
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def generate_keypair(private_path: StrPath, public_path: StrPath) -> str:
    """Create a new Ed25519 key pair as two PEM files, both 0600.

    Neither file may exist beforehand; if the second cannot be created, the
    first is removed again, so a failure leaves nothing behind.

    Args:
        private_path: where to write the private key (unencrypted PKCS#8 PEM).
        public_path: where to write the public key (SubjectPublicKeyInfo PEM).

    Returns:
        The key's fingerprint (hex SHA-256 of the raw public key).

    Raises:
        UsageError: a key file already exists, both paths are the same file,
            or a file could not be written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if os.path.abspath(private_path) == os.path.abspath(public_path):
        raise UsageError(
            f"Key paths are both {os.fsdecode(private_path)}. Give two different files."
        )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_key(private_path, private_pem)
    try:
        _write_key(public_path, public_pem)
    except UsageError:
        os.unlink(private_path)
        raise
    return fingerprint(key.public_key())


def load_signer(pem_path: StrPath) -> Signer:
    """Load an unencrypted Ed25519 private key from a PEM file.

    Args:
        pem_path: the private key file (as `--sign-key` names it).

    Returns:
        A signer for that key.

    Raises:
        UsageError: the file cannot be read or is not an unencrypted Ed25519
            private key in PEM form.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key(pem_path, "Signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UsageError(
            f"Signing key {os.fsdecode(pem_path)} is not an unencrypted Ed25519 private key "
            f"in PEM form ({exc}). Give the private key file that `matcher keygen` wrote."
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(
            f"Signing key {os.fsdecode(pem_path)} is not an Ed25519 key. "
            "Give an Ed25519 private key in PEM form."
        )
    return Signer(key)


def load_verifier(pem_path: StrPath) -> Verifier:
    """Load an Ed25519 public key from a PEM file.

    Args:
        pem_path: the public key file (as `verify --public-key` names it).

    Returns:
        A verifier for that key.

    Raises:
        UsageError: the file cannot be read or is not an Ed25519 public key in
            PEM form (a private key is refused: only the public half is needed).
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key(pem_path, "Public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UsageError(
            f"Public key {os.fsdecode(pem_path)} is not an Ed25519 public key in PEM form "
            f"({exc}). Give the public key file, never the private one."
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(
            f"Public key {os.fsdecode(pem_path)} is not an Ed25519 key. "
            "Give the Ed25519 public key that matches the signing key."
        )
    return Verifier(key)


def _read_key(path: StrPath, what: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read(1 << 16)
    except OSError as exc:
        raise UsageError(
            f"{what} {os.fsdecode(path)} cannot be read ({exc.strerror}). Check the path."
        ) from exc


def write_private_file(path: StrPath, data: bytes) -> None:
    """Create a new file readable by its owner only (0600, O_EXCL) and fsync it.

    A file that fails half-way is removed again.

    Raises:
        FileExistsError: the path exists (never overwritten).
        OSError: the file could not be created or written.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        # Note that the umask may have taken bits away from 0o600; set it exactly.
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def _write_key(path: StrPath, data: bytes) -> None:
    try:
        write_private_file(path, data)
    except FileExistsError as exc:
        raise UsageError(
            f"Key file {os.fsdecode(path)} already exists. "
            "Choose another path; matcher never overwrites a key."
        ) from exc
    except OSError as exc:
        raise UsageError(
            f"Key file {os.fsdecode(path)} could not be written ({exc.strerror})."
        ) from exc
