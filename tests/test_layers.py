"""Imports point down the layer table (STYLE.md §1): cli -> jobs -> components -> base."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "matcher"
BASE = {"errors", "digests", "models", "sqlitefiles", "sqlite_newer", "workers", "path_set", "timestamps", "interrupts", "mounts"}
COMPONENTS = {
    "formats",
    "evidence",
    "hashing",
    "store",
    "match",
    "auditlog",
    "signing",
    "inventory",
    "reports",
}
JOBS = {"importing", "scan", "lookup_filter", "rematch", "batch", "selftest", "validate", "hashjob", "reporting", "logged_matches"}
LAYER = {**{m: 0 for m in BASE}, **{m: 1 for m in COMPONENTS}, **{m: 2 for m in JOBS}, "cli": 3}


def top(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "matcher" or len(parts) < 2:
        return None
    return parts[1]


def test_imports_point_down() -> None:
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        me = rel.parts[0]
        if me in ("__init__", "__main__"):
            continue
        mine = LAYER[me]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                other = top(target)
                if other is None or other == me or other not in LAYER:
                    continue
                theirs = LAYER[other]
                allowed = theirs < mine or (me == "auditlog" and other == "signing")
                if mine == 1 and theirs == 1 and not allowed:
                    problems.append(f"{rel}: component imports component {other}")
                elif theirs > mine:
                    problems.append(f"{rel}: imports upward {other}")
    assert problems == []
