"""The committed fixtures are exactly what the deterministic generator makes."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import FIXTURES

sys.path.insert(0, str(FIXTURES))
from make_fixtures import generate  # noqa: E402


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_reproduces_committed_fixtures(tmp_path: Path) -> None:
    generate(tmp_path)
    for part in ("evidence", "hashlists"):
        assert tree(tmp_path / part) == tree(FIXTURES / part), part
