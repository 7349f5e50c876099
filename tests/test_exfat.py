"""exFAT: detected by content; its allocation bitmap and up-case table are fs-metadata.

Here the volume is empty, as mkfs.exfat makes it: what is checked is
detection, and that TSK's view of exFAT's own tables (shown as regular root
files) is never hashed as evidence. A volume with files in it (written by
fixtures/images/exfat_writer.py, since no Debian tool writes into exFAT
without mounting) is checked against its manifest in tests/test_images.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from click.testing import CliRunner
from conftest import assert_counts_add_up
from conftest import peer_tool
from conftest import read_log

from matcher.cli import cli


def test_an_empty_exfat_volume_holds_only_fs_metadata(runner: CliRunner, tmp_path: Path) -> None:
    mkfs = peer_tool("mkfs.exfat")
    image = tmp_path / "volume.bin"
    with image.open("wb") as stream:
        stream.truncate(64 << 20)
    subprocess.run([mkfs, str(image)], check=True, capture_output=True)
    listed = tmp_path / "n.sha256"
    listed.write_text(f"{'ab' * 32}  nothing\n")
    log = tmp_path / "run.jsonl"
    args = ["scan", str(image), "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db")]
    result = runner.invoke(cli, [*args, "--list", str(listed), "--log", str(log)])
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["files"] == 0 and counts["skipped_by_reason"] == {
        "fs-metadata": counts["skipped"]
    }
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        names = {bytes(p).rsplit(b"/", 1)[1] for (p,) in conn.execute("SELECT path FROM entries")}
    finally:
        conn.close()
    assert {b"$ALLOC_BITMAP", b"$UPCASE_TABLE"} <= names
    [image_info] = read_log(log)[0]["images"]
    assert "exfat" in str(image_info).lower()
