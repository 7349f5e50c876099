"""The digest filter is saved in the store and reused only while it is provably right."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.importing import import_list
from matcher.match import DigestFilter
from matcher.lookup_filter import build_filter
from matcher.store import HashStore


@pytest.fixture
def store(tmp_path: Path) -> HashStore:
    lst = tmp_path / "a.sha256"
    lst.write_text("".join(f"{hashlib.sha256(b'%d' % i).hexdigest()}  f{i}\n" for i in range(500)))
    store = HashStore(tmp_path / "s.db")
    import_list(store, lst)
    return store


def _filter(store: HashStore) -> DigestFilter:
    digest_filter, _ = build_filter(store, store.lists(), ["md5", "sha256"])
    return digest_filter


def test_the_second_run_loads_the_saved_filter(store: HashStore) -> None:
    first = _filter(store)
    second = _filter(store)
    assert (first.loaded, second.loaded) == (False, True)
    stored = [hashlib.sha256(b"%d" % i).digest() for i in range(500)]
    assert second.holds_all("sha256", stored) and first.holds_all("sha256", stored)
    store.close()


def test_a_new_list_or_a_removal_makes_the_filter_rebuild(store: HashStore, tmp_path: Path) -> None:
    _filter(store)
    extra = tmp_path / "b.sha256"
    new = hashlib.sha256(b"new").hexdigest()
    extra.write_text(f"{new}  new\n")
    import_list(store, extra)
    rebuilt = _filter(store)
    assert not rebuilt.loaded and rebuilt.holds_all("sha256", [bytes.fromhex(new)])
    store.remove_list("b.sha256")
    assert not _filter(store).loaded
    store.close()


def test_a_damaged_saved_filter_is_never_used(store: HashStore) -> None:
    _filter(store)
    store.db.conn.execute("UPDATE filter_cache SET data = zeroblob(length(data))")
    store.db.conn.commit()
    assert not _filter(store).loaded
    store.close()


@pytest.mark.parametrize("data", ["'text'", "x''", "1"])
def test_a_saved_filter_that_is_no_blob_is_rebuilt(store: HashStore, data: str) -> None:
    _filter(store)
    store.db.conn.execute(f"UPDATE filter_cache SET data = {data}")
    store.db.conn.commit()
    rebuilt = _filter(store)
    assert not rebuilt.loaded
    assert rebuilt.holds_all("sha256", [hashlib.sha256(b"7").digest()])
    store.close()


def test_a_saved_filter_missing_stored_digests_is_never_used(store: HashStore) -> None:
    """Even with a matching checksum: it must hold a sample of the stored digests."""
    _filter(store)
    wrong = DigestFilter({"sha256": [os.urandom(32) for _ in range(500)]}, {"sha256": 500})
    (fingerprint,) = store.db.execute("SELECT fingerprint FROM filter_cache").fetchone()
    store.save_filter("sha256", fingerprint, wrong.saved()["sha256"])
    again = _filter(store)
    assert not again.loaded
    assert again.holds_all("sha256", [hashlib.sha256(b"%d" % i).digest() for i in range(500)])
    store.close()


def test_a_read_only_store_builds_without_saving(store: HashStore, tmp_path: Path) -> None:
    store.close()
    readonly = HashStore(tmp_path / "s.db", readonly=True)
    try:
        assert not _filter(readonly).loaded
        assert readonly.db.execute("SELECT count(*) FROM filter_cache").fetchone()[0] == 0
    finally:
        readonly.close()


def test_notable_sizes_are_kept_and_lists_without_sizes_named(tmp_path: Path) -> None:
    sized = tmp_path / "sized.csv"
    sized.write_text("md5,size\n" + "".join(f"{'%032x' % i},{i * 7}\n" for i in range(1, 50)))
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, sized)
        fingerprint = "fp-1"
        first = store.notable_sizes(fingerprint)
        assert first == ({i * 7 for i in range(1, 50)}, [])
        assert store.saved_filter("notable-sizes-2", fingerprint) is not None
        assert store.notable_sizes(fingerprint) == first  # from the kept copy
        unsized = tmp_path / "unsized.md5"
        unsized.write_text(f"{'ab' * 16}  x\n")
        import_list(store, unsized)
        assert store.saved_filter("notable-sizes-2", fingerprint) is None  # lists changed
        assert store.notable_sizes("fp-2") == (set(), ["unsized.md5"])
    finally:
        store.close()


def test_the_filter_bits_are_those_of_hashing_each_digest_with_digest_hash() -> None:
    """A filter saved by an earlier version (rbloom calling `digest_hash`) stays valid.

    The filter now holds integer keys; its saved bytes must be identical to
    those of a filter that hashes each digest with `digest_hash`, or a saved
    filter would silently miss stored digests.
    """
    import rbloom

    from matcher.match import BLOOM_FALSE_POSITIVE_RATE
    from matcher.match import digest_hash

    digests = [os.urandom(n) for n in (16, 20, 32, 64) for _ in range(300)]
    reference = rbloom.Bloom(len(digests), BLOOM_FALSE_POSITIVE_RATE, digest_hash)
    reference.update(digests)
    built = DigestFilter({"any": digests}, {"any": len(digests)})
    assert built.saved()["any"] == bytes(reference.save_bytes())
    loaded = DigestFilter.from_saved({"any": bytes(reference.save_bytes())})
    probes = digests + [os.urandom(32) for _ in range(3000)]
    expected = [d for d in probes if d in reference]
    assert loaded.candidates("any", probes) == expected == built.candidates("any", probes)
    assert loaded.holds_all("any", digests) and built.holds_all("any", digests)
    assert not loaded.holds_all("any", [d for d in probes if d not in reference][:1])
    # MD5s are keyed whole (no slice): the very keys digest_hash gives, in both checks.
    md5s = [os.urandom(16) for _ in range(2000)]
    keyed = rbloom.Bloom(len(md5s), BLOOM_FALSE_POSITIVE_RATE, digest_hash)
    keyed.update(md5s)
    md5_filter = DigestFilter.from_saved({"md5": bytes(keyed.save_bytes())})
    md5_probes = md5s + [os.urandom(16) for _ in range(20000)]
    in_reference = [d in keyed for d in md5_probes]
    assert md5_filter.candidates("md5", md5_probes) == [d for d in md5_probes if d in keyed]
    assert md5_filter.maybe_stored(("md5",), [[d] for d in md5_probes]) == in_reference


def test_one_pass_reads_use_a_small_page_cache_and_give_the_store_its_own_back(
    tmp_path: Path,
) -> None:
    """The filter's digests and the notable sizes are read once: a large cache would only
    fill (the first scan after an import once grew by the size of every digest it read)."""
    sized = tmp_path / "sized.csv"
    # Repeated and unordered sizes, and known entries whose sizes must not count.
    sized.write_text("md5,size\n" + "".join(f"{'%032x' % i},{(i * 37) % 11 + 1}\n" for i in range(1, 60)))
    known = tmp_path / "known.csv"
    known.write_text("md5,size\n" + "".join(f"{'%031x1' % i},{1000 + i}\n" for i in range(1, 9)))
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, sized)
        import_list(store, known, role="known")
        default = store.db.execute("PRAGMA cache_size").fetchone()[0]
        seen: list[int] = []
        digests = store.iter_digests("md5")
        next(digests)
        seen.append(store.db.execute("PRAGMA cache_size").fetchone()[0])
        assert len([*digests]) == 59 + 8 - 1
        sizes, unsized = store.notable_sizes()
        assert list(sizes) == sorted({(i * 37) % 11 + 1 for i in range(1, 60)}) and unsized == []
        assert seen == [-8192] and store.db.execute("PRAGMA cache_size").fetchone()[0] == default
    finally:
        store.close()


def test_interleaved_one_pass_reads_leave_the_store_its_own_cache(store: HashStore) -> None:
    default = store.db.execute("PRAGMA cache_size").fetchone()[0]
    first, second = store.iter_digests("sha256"), store.iter_digests("sha256")
    next(first)
    next(second)
    assert len([*first]) == len([*second]) == 499
    assert store.db.execute("PRAGMA cache_size").fetchone()[0] == default


def test_a_build_is_reported_as_it_goes_and_a_saved_filter_is_not(
    store: HashStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At NSRL's size a build takes minutes: the scan says so, chunk by chunk."""
    import matcher.match as match_mod

    monkeypatch.setattr(match_mod, "BUILD_CHUNK", 64)
    stages: list[str] = []
    build_filter(store, store.lists(), ["md5", "sha256"], stages.append)
    assert stages[0] == "Building the lookup filter: 0 of 500 digests"
    assert [s.split(":")[1].split(" of ")[0].strip() for s in stages] == [
        "0", "64", "128", "192", "256", "320", "384", "448", "500"
    ]  # fmt: skip
    again: list[str] = []
    assert build_filter(store, store.lists(), ["md5", "sha256"], again.append)[0].loaded
    assert again == []
    store.close()


def test_a_filter_built_in_chunks_has_the_bits_of_one_built_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Filters saved by earlier versions stay valid: chunks change no bit."""
    import operator

    import rbloom

    import matcher.match as match_mod

    digests = [hashlib.sha1(b"%d" % i).digest() for i in range(1000)]
    whole = rbloom.Bloom(1000, match_mod.BLOOM_FALSE_POSITIVE_RATE, operator.index)
    whole.update(int.from_bytes(d[:16], "little", signed=True) for d in digests)
    monkeypatch.setattr(match_mod, "BUILD_CHUNK", 7)
    chunked = DigestFilter({"sha1": iter(digests)}, {"sha1": 1000})
    assert chunked.saved()["sha1"] == bytes(whole.save_bytes())


@pytest.fixture
def two_lists(tmp_path: Path) -> HashStore:
    """A store of 3,000 SHA-256 and 1,500 MD5 digests, in two lists."""
    a = tmp_path / "a.sha256"
    a.write_text("".join(f"{hashlib.sha256(b'%d' % i).hexdigest()}  f{i}\n" for i in range(3000)))
    b = tmp_path / "b.md5"
    b.write_text("".join(f"{hashlib.md5(b'%d' % i).hexdigest()}  g{i}\n" for i in range(1500)))
    store = HashStore(tmp_path / "s.db")
    import_list(store, a)
    import_list(store, b)
    return store


def _built(store: HashStore, split_min: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    import matcher.lookup_filter as lookup_filter

    monkeypatch.setattr(lookup_filter, "SPLIT_MIN_DIGESTS", split_min)
    store.db.conn.execute("DELETE FROM filter_cache")
    stages: list[str] = []
    built, _ = build_filter(store, store.lists(), ["md5", "sha256"], stages.append)
    assert not built.loaded and stages[-1] == "Building the lookup filter: 4,500 of 4,500 digests"
    return built.saved()


def test_a_build_split_between_two_processes_has_the_bits_of_one_build(
    two_lists: HashStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child reads the digests from 0x80.. up, this process the rest: ORed, the two
    filters must be exactly the filter of one build (a missed digest would be silent)."""
    whole = _built(two_lists, 10**12, monkeypatch)
    split = _built(two_lists, 0, monkeypatch)
    assert split == whole
    two_lists.close()


def test_a_failed_or_killed_child_only_costs_time(
    two_lists: HashStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matcher.lookup_filter as lookup_filter

    whole = _built(two_lists, 10**12, monkeypatch)

    def unopenable(*args: object, **kwargs: object) -> HashStore:
        if os.getpid() != parent:
            raise OSError("the child cannot open the store")
        return HashStore(*args, **kwargs)  # type: ignore[arg-type]

    parent = os.getpid()
    monkeypatch.setattr(lookup_filter, "HashStore", unopenable)
    assert _built(two_lists, 0, monkeypatch) == whole
    monkeypatch.undo()

    def killed(*args: object, **kwargs: object) -> HashStore:
        if os.getpid() != parent:
            os.kill(os.getpid(), 9)
        return HashStore(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lookup_filter, "HashStore", killed)
    assert _built(two_lists, 0, monkeypatch) == whole
    two_lists.close()


def test_a_build_without_a_process_to_spare_is_done_here(
    two_lists: HashStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _built(two_lists, 10**12, monkeypatch)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert _built(two_lists, 0, monkeypatch) == whole
    two_lists.close()


def test_a_store_swapped_at_its_path_is_not_read_by_the_child(
    two_lists: HashStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child opens the store by path: one put there meanwhile (a sync job's swap)
    holds other lists, and its digests must not stand in for this store's upper half."""
    whole = _built(two_lists, 10**12, monkeypatch)
    other_list = tmp_path / "other.sha256"
    other_list.write_text("".join(f"{hashlib.sha256(b'x%d' % i).hexdigest()}  x\n" for i in range(99)))
    other = HashStore(tmp_path / "other.db")
    import_list(other, other_list)
    other.close()
    import matcher.lookup_filter as lookup_filter

    monkeypatch.setattr(lookup_filter, "SPLIT_MIN_DIGESTS", 0)
    two_lists.db.conn.execute("DELETE FROM filter_cache")
    os.replace(tmp_path / "other.db", two_lists.path)  # this scan's connection keeps the old file
    built, _ = build_filter(two_lists, two_lists.lists(), ["md5", "sha256"])
    assert built.saved() == whole
    two_lists.close()


@settings(max_examples=50, deadline=None)
@given(
    stored=st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40),
    others=st.lists(st.binary(min_size=32, max_size=32), max_size=40),
)
def test_maybe_stored_never_rules_out_a_stored_digest(
    stored: list[bytes], others: list[bytes]
) -> None:
    """A file with any stored digest (of any algorithm the filter holds) is never ruled out.

    And one it rules out has no digest in the filter (what `candidates` says, per algorithm).
    """
    md5s = [d[:16] for d in stored[::2]]
    sha256s = stored[1::2]
    digest_filter = DigestFilter(
        {"md5": md5s, "sha256": sha256s}, {"md5": len(md5s), "sha256": len(sha256s)}
    )
    algorithms = ("md5", "sha1", "sha256")
    files = [[d[:16], d[:20], d] for d in stored + others]
    maybe = digest_filter.maybe_stored(algorithms, files)
    assert len(maybe) == len(files)
    for d in stored:
        assert maybe[files.index([d[:16], d[:20], d])]
    for digests, flag in zip(files, maybe, strict=True):
        expected = bool(
            digest_filter.candidates("md5", [digests[0]])
            or digest_filter.candidates("sha256", [digests[2]])
        )
        assert flag == expected


def test_a_candidates_only_scan_keeps_the_notable_sizes_for_the_next(tmp_path: Path) -> None:
    """Before: the sizes were read inside the scan's hold on the store, which takes no cache
    write: every --candidates-only run read them again from each notable entry (1M entries:
    a second of a two-second scan)."""
    from click.testing import CliRunner

    from matcher.cli import cli
    from matcher.lookup_filter import lists_fingerprint

    sized = tmp_path / "sized.csv"
    sized.write_text("md5,size\n" + "".join(f"{'%032x' % i},{i * 7}\n" for i in range(1, 50)))
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "f").write_bytes(b"x" * 14)
    db = tmp_path / "s.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(sized), "--db", str(db)]).exit_code == 0
    args = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "--candidates-only"]
    result = runner.invoke(cli, [*args, "--log", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 0, result.output
    store = HashStore(db, readonly=True)
    try:
        assert store.saved_filter("notable-sizes-2", lists_fingerprint(store.lists())) is not None
    finally:
        store.close()
