"""Tests for matcher.signing: key files, fingerprints, seals and record decoding."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import rechain

from matcher import signing
from matcher.errors import IntegrityError
from matcher.errors import UsageError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "examiner.pem", tmp_path / "examiner.pub"
    signing.generate_keypair(private, public)
    return private, public


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_generate_keypair_writes_owner_only_pem_files_even_with_umask_0(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    old = os.umask(0)
    try:
        fingerprint = signing.generate_keypair(private, public)
    finally:
        os.umask(old)
    assert _mode(private) == 0o600
    assert _mode(public) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert signing.load_signer(private).fingerprint == fingerprint
    assert signing.load_verifier(public).fingerprint == fingerprint


def test_fingerprint_is_sha256_of_raw_public_key(keys: tuple[Path, Path]) -> None:
    key = serialization.load_pem_public_key(keys[1].read_bytes())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert len(raw) == 32
    assert signing.load_verifier(keys[1]).fingerprint == hashlib.sha256(raw).hexdigest()


def test_generate_keypair_refuses_to_overwrite_private_key(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    private.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        signing.generate_keypair(private, public)
    assert private.read_bytes() == b"precious"
    assert not public.exists()


def test_generate_keypair_leaves_nothing_when_public_key_exists(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    public.write_bytes(b"other")
    with pytest.raises(UsageError, match=r"k\.pub already exists"):
        signing.generate_keypair(private, public)
    assert not private.exists()
    assert public.read_bytes() == b"other"


def test_generate_keypair_refuses_one_path_for_both(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="two different files"):
        signing.generate_keypair(tmp_path / "k", tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_load_signer_rejects_public_key_garbage_missing_and_non_ed25519(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="not an unencrypted Ed25519 private key"):
        signing.load_signer(keys[1])
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key\n")
    with pytest.raises(UsageError, match="garbage.pem"):
        signing.load_signer(garbage)
    with pytest.raises(UsageError, match="cannot be read"):
        signing.load_signer(tmp_path / "missing.pem")
    ec_pem = tmp_path / "ec.pem"
    ec_pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UsageError, match="is not an Ed25519 key"):
        signing.load_signer(ec_pem)


def test_load_signer_rejects_encrypted_key(tmp_path: Path) -> None:
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(UsageError, match="unencrypted"):
        signing.load_signer(encrypted)


def test_load_verifier_refuses_private_key(keys: tuple[Path, Path]) -> None:
    with pytest.raises(UsageError, match="never the private one"):
        signing.load_verifier(keys[0])


def test_sign_and_verify_round_trip(keys: tuple[Path, Path]) -> None:
    signer, verifier = signing.load_signer(keys[0]), signing.load_verifier(keys[1])
    signature = signer.sign(b"message")
    assert len(signature) == 64
    assert verifier.verify(b"message", signature)
    assert not verifier.verify(b"messagE", signature)
    assert not verifier.verify(b"message", signature[:-1])
    assert not verifier.verify(b"message", b"")


def test_signature_message_prefix_and_excluded_keys() -> None:
    record = {"seq": 3, "type": "end", "counts": {"files": 1}, "signature": "x", "self_sha256": "y"}
    expected = b'matcher-log-signature-v1\n{"seq":3,"type":"end","counts":{"files":1}}'
    assert signing.signature_message(record) == expected


def test_seal_then_check_seal(keys: tuple[Path, Path]) -> None:
    signer, verifier = signing.load_signer(keys[0]), signing.load_verifier(keys[1])
    record: dict[str, object] = {"seq": 7, "type": "end", "prev": "ab" * 32, "status": "complete"}
    signing.seal(record, signer, sign=True, digest=True)
    assert list(record)[-3:] == ["key_fingerprint", "signature", "self_sha256"]
    assert signing.check_seal(record, verifier, sign=True, digest=True) == signer.fingerprint
    raw = base64.b64decode(str(record["signature"]))
    assert verifier.verify(signing.signature_message(record), raw)

    altered = dict(record, seq=8)
    with pytest.raises(IntegrityError, match="self_sha256"):
        signing.check_seal(altered, None, sign=True, digest=True)
    rest = {k: v for k, v in altered.items() if k != "self_sha256"}
    altered["self_sha256"] = hashlib.sha256(signing.canonical_bytes(rest)).hexdigest()
    assert signing.check_seal(altered, None, sign=True, digest=True) == signer.fingerprint
    with pytest.raises(IntegrityError, match="signature does not verify"):
        signing.check_seal(altered, verifier, sign=True, digest=True)


def test_check_seal_rules(keys: tuple[Path, Path]) -> None:
    verifier = signing.load_verifier(keys[1])
    unsigned: dict[str, object] = {"seq": 1, "type": "checkpoint", "counts": {}}
    assert signing.check_seal(unsigned, None, sign=True, digest=False) is None
    with pytest.raises(IntegrityError, match="not signed, but a public key was given"):
        signing.check_seal(unsigned, verifier, sign=True, digest=False)
    stray = {"seq": 1, "type": "match", "signature": "AA==", "key_fingerprint": "00"}
    with pytest.raises(IntegrityError, match="cannot carry a signature"):
        signing.check_seal(stray, None, sign=False, digest=False)
    half = {"seq": 1, "type": "checkpoint", "signature": "AA=="}
    with pytest.raises(IntegrityError, match="both signature and key_fingerprint"):
        signing.check_seal(half, None, sign=True, digest=False)
    other = {"seq": 1, "type": "checkpoint", "key_fingerprint": "0" * 64, "signature": "AA=="}
    with pytest.raises(IntegrityError, match="not by the given public key"):
        signing.check_seal(other, verifier, sign=True, digest=False)


def test_canonical_bytes_form() -> None:
    record = {"seq": 0, "type": "run", "name": "é", "n": [1, 2.5]}
    assert (
        signing.canonical_bytes(record) == '{"seq":0,"type":"run","name":"é","n":[1,2.5]}'.encode()
    )
    with pytest.raises(ValueError):
        signing.canonical_bytes({"x": float("nan")})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"\xff{}", "not valid UTF-8"),
        (b'{"a":', "not valid JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"a": 1}', "canonical"),
        (b'{"a":1,"a":2}', "canonical"),
        (b'{"a":"\\u00e9"}', "canonical"),
        (b'{"a":NaN}', "canonical"),
        (b'{"a":"\\ud800"}', "canonical"),
        (b'{"a":1e3}', "canonical"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_decode_record_rejects(line: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        signing.decode_record(line)


def test_decode_record_accepts_canonical() -> None:
    record = {"seq": 0, "type": "run", "path": "é/\u2603", "size": None, "ok": True}
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    assert signing.decode_record(line) == record


def test_write_private_file_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "side"
    signing.write_private_file(target, b"one")
    assert _mode(target) == 0o600
    with pytest.raises(FileExistsError):
        signing.write_private_file(target, b"two")
    assert target.read_bytes() == b"one"


def test_keygen_of_an_empty_name_is_a_usage_error(tmp_path: Path) -> None:
    """It was a traceback and "internal error" (Path('') is '.', whose name is empty)."""
    from click.testing import CliRunner

    from matcher.cli import cli

    result = CliRunner().invoke(cli, ["keygen", ""])
    assert result.exit_code == 2 and "give the key file's name" in result.output
    assert "Traceback" not in result.output


def _independent_check(log: Path, public_pem: Path) -> list[str]:
    """A reviewer's verifier written from README's "Checking a log without matcher" alone:
    hashlib, json and the cryptography library, nothing of matcher. Returns what fails."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(public_pem.read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    raw_key = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fingerprint = hashlib.sha256(raw_key).hexdigest()

    def canonical(record: dict[str, object]) -> bytes:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    problems, prev = [], "0" * 64
    for n, line in enumerate(log.read_bytes().split(b"\n")[:-1]):
        record = json.loads(line)
        if canonical(record) != line or list(record)[:4] != ["seq", "type", "time", "prev"]:
            problems.append(f"{n}: not canonical")
        if record["seq"] != n or record["prev"] != prev:
            problems.append(f"{n}: chain")
        if record["type"] == "end":
            rest = {k: v for k, v in record.items() if k != "self_sha256"}
            if hashlib.sha256(canonical(rest)).hexdigest() != record["self_sha256"]:
                problems.append(f"{n}: self_sha256")
        if record["type"] in ("end", "checkpoint"):
            signed = {k: v for k, v in record.items() if k not in ("signature", "self_sha256")}
            if record.get("key_fingerprint") != fingerprint:
                problems.append(f"{n}: key")
            try:
                key.verify(base64.b64decode(str(record["signature"])), b"matcher-log-signature-v1\n" + canonical(signed))
            except InvalidSignature:
                problems.append(f"{n}: signature")
        prev = hashlib.sha256(line).hexdigest()
    return problems


def test_the_readme_is_enough_to_check_a_signed_log_without_matcher(tmp_path: Path) -> None:
    """A reviewer holding the log and the public key years later must be able to check the
    signatures from the documented format alone (the message, its prefix, the fingerprint and
    the base64 were in docstrings only): a verifier written from README's words agrees with
    `matcher verify` on a signed log and on one whose match record was changed, chain redone."""
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for rule in ("matcher-log-signature-v1\\n", 'separators=(",", ":")', "raw 32-byte Ed25519 public key",
                 "base64 of the 64-byte Ed25519 signature", "without `signature` and `self_sha256`"):  # fmt: skip
        assert rule in readme, rule
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "hit").write_bytes(b"hit \xe9 content")
    (ev / "caf\u00e9").write_bytes(b"other")
    listed = tmp_path / "n.sha256"
    digest = hashlib.sha256(b"hit \xe9 content").hexdigest()
    listed.write_text(f"{digest}  hit\n")
    matcher = [sys.executable, "-m", "matcher"]
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    subprocess.run([*matcher, "keygen", str(private), str(public)], check=True, capture_output=True)
    log = tmp_path / "run.jsonl"
    done = subprocess.run([*matcher, "scan", str(ev), "--examiner", "Jos\u00e9", "--case", "C", "--db",
                           str(tmp_path / "s.db"), "--list", str(listed), "--log", str(log), "--sign-key",
                           str(private), "-q"], capture_output=True)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert _independent_check(log, public) == []
    records = [json.loads(line) for line in log.read_bytes().splitlines()]
    at = next(i for i, r in enumerate(records) if r["type"] == "match")
    records[at]["size"] += 1
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(records, at + 1))
    assert [p.split(": ")[1] for p in _independent_check(forged, public)] == ["signature"]
    checked = subprocess.run([*matcher, "verify", str(forged), "--public-key", str(public)], capture_output=True)
    assert checked.returncode == 1 and b"signature does not verify" in checked.stderr
