"""SizeSet (the --candidates-only sizes): `in` answers exactly as a set, in both of its forms."""

from __future__ import annotations

import array

from hypothesis import given
from hypothesis import strategies as st

from matcher.models import SizeSet

SIZES = st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=60)
PROBES = st.lists(st.integers(min_value=-5, max_value=2**63 - 1), max_size=30)


@given(SIZES, PROBES)
def test_membership_is_exact_as_a_hash_set_and_as_a_sorted_array(
    sizes: list[int], probes: list[int]
) -> None:
    small = SizeSet.of(sizes)
    large = SizeSet(array.array("q", sorted(set(sizes))))
    large._small = None  # the form of a store with more than SMALL distinct sizes
    for probe in [*probes, *sizes, *(s + 1 for s in sizes if s < 2**63 - 1)]:
        assert (probe in small) == (probe in large) == (probe in set(sizes))
    assert list(small) == list(large) == sorted(set(sizes))
    assert small.tobytes() == large.tobytes()


def test_a_large_set_is_kept_as_the_array_only() -> None:
    sizes = SizeSet(array.array("q", range(SizeSet.SMALL + 1)))
    assert sizes._small is None
    assert SizeSet.SMALL in sizes and SizeSet.SMALL + 1 not in sizes and -1 not in sizes
