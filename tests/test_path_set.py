"""The resume's set of finished paths: exact membership in 16 bytes a path, and its inventory side."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.inventory import Inventory
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import Skip
from matcher.path_set import MEMBER_BYTES
from matcher.path_set import PathSet


def built(paths: list[bytes], key: bytes | None = None, batch: int = 1000) -> PathSet:
    """A set holding `paths`, fed in sorted batches as the inventory feeds it."""
    result = PathSet(key)
    members = sorted(result.key_of(p) for p in paths)
    for start in range(0, len(members), batch):
        result.extend_sorted(members[start : start + batch])
    return result


paths_strategy = st.lists(st.binary(min_size=0, max_size=40), max_size=300, unique=True)


@settings(max_examples=150, deadline=None)
@given(paths=paths_strategy, others=paths_strategy, batch=st.integers(1, 50))
def test_every_member_is_found_and_no_other_path(paths: list[bytes], others: list[bytes], batch: int) -> None:
    finished = built(paths, batch=batch)
    assert all(p in finished for p in paths)
    assert not any(o in finished for o in others if o not in set(paths))
    assert len(finished) == len(paths)
    assert finished.nbytes == len(paths) * MEMBER_BYTES


def test_names_that_are_not_utf8_slashes_and_empty_paths_are_members() -> None:
    paths = [b"", b"/", b"/ev/\xff\xfe.bin", b"/ev/a\nb", b"/ev/" + bytes(range(1, 256))]
    finished = built(paths)
    assert all(p in finished for p in paths)
    assert b"/ev/\xff\xfe.bi" not in finished


@pytest.mark.parametrize("path", ["/ev/a", bytearray(b"/ev/a"), memoryview(b"/ev/a"), None])
def test_a_path_that_is_not_bytes_is_refused_not_answered_no(path: object) -> None:
    """A silent False would read a finished file again and count it twice."""
    finished = built([b"/ev/a"])
    with pytest.raises(TypeError):
        assert path not in finished


def test_a_large_set_finds_exactly_its_members() -> None:
    rng = random.Random(5)
    paths = [b"/ev/d%04d/f%05d" % (rng.randrange(10_000), i) for i in range(60_000)]
    finished = built(paths[:40_000], batch=4096)
    assert all(p in finished for p in paths[:40_000])
    assert not any(p in finished for p in paths[40_000:])


def members_at(highs_and_lows: list[tuple[int, int]]) -> list[bytes]:
    return sorted(hi.to_bytes(8, "big") + lo.to_bytes(8, "big") for hi, lo in highs_and_lows)


EDGES = [0, 1, (1 << 48) - 1, 1 << 48, (1 << 48) + 1, (1 << 63), (1 << 64) - (1 << 48), (1 << 64) - 1]


def test_members_at_bucket_edges_and_the_ends_of_the_range() -> None:
    pairs = [(hi, lo) for hi in EDGES for lo in (0, 7, (1 << 64) - 1)]
    finished = PathSet()
    finished.extend_sorted(members_at(pairs))
    for hi, lo in pairs:
        assert finished.has_member(members_at([(hi, lo)])[0])
    for hi in EDGES:
        assert not finished.has_member(members_at([(hi, 3)])[0])  # same high half, another low
    for hi in (2, 1 << 47, (1 << 48) + 2, (1 << 64) - 2):
        assert not finished.has_member(members_at([(hi, 0)])[0])  # a high half no member has


def test_a_run_of_equal_high_halves_is_searched_whole() -> None:
    pairs = [(1 << 60, lo) for lo in range(0, 1000, 3)] + [(5, 5), ((1 << 60) + 1, 0)]
    finished = PathSet()
    finished.extend_sorted(members_at(pairs))
    assert all(finished.has_member(members_at([p])[0]) for p in pairs)
    assert not any(finished.has_member(members_at([(1 << 60, lo)])[0]) for lo in range(1, 1000, 3))


def test_members_added_after_a_lookup_are_found() -> None:
    finished = PathSet()
    low, high = members_at([(1, 0), ((1 << 64) - 1, 0)])
    finished.extend_sorted([low])
    assert finished.has_member(low) and not finished.has_member(high)  # the index is built
    finished.extend_sorted([high])
    assert finished.has_member(low) and finished.has_member(high)


def test_a_member_of_the_wrong_length_is_refused_by_the_lookup() -> None:
    finished = built([b"/ev/a"])
    for member in (b"\x00" * 15, b"\x00" * 17):
        with pytest.raises(ValueError, match="16 bytes"):
            finished.has_member(member)


def test_members_out_of_order_or_of_the_wrong_length_are_refused() -> None:
    finished = PathSet()
    low, high = members_at([(1, 0), (2, 0)])
    with pytest.raises(ValueError, match="sorted"):
        finished.extend_sorted([high, low])
    finished.extend_sorted([high])
    with pytest.raises(ValueError, match="sorted"):
        finished.extend_sorted([low])  # a later batch starting below the last member
    with pytest.raises(ValueError, match="16 bytes"):
        finished.extend_sorted([b"\x00" * 15, b"\x00" * 17])  # 32 bytes, but not two members
    with pytest.raises(ValueError):
        PathSet(b"short key")


def test_the_key_is_drawn_per_set_and_decides_the_members() -> None:
    key = bytes(range(16))
    expected = hashlib.blake2b(b"/ev/a", digest_size=16, key=key).digest()
    assert PathSet(key).key_of(b"/ev/a") == expected
    assert PathSet().key != PathSet().key


def test_paths_added_after_the_build_are_members() -> None:
    finished = built([b"/ev/a"])
    finished.add(b"/ev/b")
    assert b"/ev/a" in finished and b"/ev/b" in finished and b"/ev/c" not in finished


def mixed_inventory(path: Path) -> tuple[Inventory, list[EntryOutcome]]:
    outcomes = [
        EntryOutcome(b"/ev/a", 5, 1, digests={"sha256": b"\x01" * 32}),
        EntryOutcome(b"/ev/empty", 0, 1, digests={"sha256": b"\x02" * 32}),
        EntryOutcome(b"/ev/\xff", 7, 1, digests={"sha256": b"\x03" * 32}),
        EntryOutcome.skipped(b"/ev/link", None, 1, Skip.SYMLINK, kind="symlink"),
        EntryOutcome.skipped(b"/ev/big", 10**9, 1, Skip.TOO_LARGE),
        EntryOutcome.skipped(b"/ev/fifo", 0, 1, Skip.FIFO, kind="fifo"),
        EntryOutcome(b"/ev/gone", 3, 1, failure=Failure.VANISHED),
    ]
    inventory = Inventory(path)
    verdicts = ["unknown", "unknown", "notable", None, None, None, None]
    for outcome, verdict in zip(outcomes, verdicts, strict=True):
        inventory.add(outcome, verdict, 0)
    inventory.flush()
    return inventory, outcomes


def test_finished_paths_are_the_hashed_and_skipped_entries_not_the_failed(tmp_path: Path) -> None:
    inventory, outcomes = mixed_inventory(tmp_path / "inv.db")
    finished = inventory.finished_paths()
    assert len(finished) == 6
    for outcome in outcomes:
        assert (outcome.path in finished) == (outcome.failure is None)


def test_finished_totals_group_by_skip_and_verdict(tmp_path: Path) -> None:
    inventory, _ = mixed_inventory(tmp_path / "inv.db")
    totals = {(skip, verdict): rest for skip, verdict, *rest in inventory.finished_totals()}
    assert totals == {
        (None, "unknown"): [2, 5, 1],  # entries, bytes, empty files
        (None, "notable"): [1, 7, 0],
        ("symlink", None): [1, 0, 0],
        ("too-large", None): [1, 10**9, 0],
        ("fifo", None): [1, 0, 1],
    }


def test_finished_paths_of_many_rows_hold_about_16_bytes_each(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path / "inv.db")
    paths = [b"/ev/d%03d/" % (i % 300) + os.urandom(6).hex().encode() for i in range(20_000)]
    for path in paths:
        inventory.add(EntryOutcome.skipped(path, 1, 1, Skip.EXCLUDED), None, 0)
    inventory.flush()
    finished = inventory.finished_paths()
    assert finished.nbytes == 20_000 * MEMBER_BYTES
    assert all(p in finished for p in paths)
    assert b"/ev/d000/not-there" not in finished
