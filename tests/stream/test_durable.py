"""sdo.stream.durable's rules, by table: which flushes count as committed, which table
values a new worker rolls back. (The rollback against a real broker, and a worker killed
mid-backlog deciding exactly as ``sdo evaluate`` after it, are integration tests.)"""

from __future__ import annotations

import pytest

from sdo.stream.durable import (
    FLUSH,
    RING,
    WORKER,
    committed_flushes,
    marker,
    tagged,
    trim,
    uncommitted,
)


def test_a_marker_keeps_the_flushes_since_the_last_committed() -> None:
    """Each flush adds (flush, offsets) to the worker's ring; one with the same offsets as
    the last replaces it; past RING the second oldest goes (the oldest is the last known
    committed); a commit trims what is older than the last flush it covers."""
    ring: list[list[object]] = []
    value = marker(ring, 1, {("sdo.incident", 0): 10})
    value = marker(ring, 2, {("sdo.incident", 0): 10})  # nothing new applied since 1
    assert value == {"ring": [[2, {"sdo.incident:0": 10}]]}
    for n in range(3, RING + 6):
        value = marker(ring, n, {("sdo.incident", 0): 10 * n, ("sdo.officer.location", 1): n})
    assert len(ring) == RING
    assert [flush for flush, _ in ring][:2] == [2, 7]  # 3 to 6 went
    assert ring[-1] == [
        RING + 5,
        {"sdo.incident:0": 10 * (RING + 5), "sdo.officer.location:1": RING + 5},
    ]
    trim(ring, {("sdo.incident", 0): 10 * (RING + 1), ("sdo.officer.location", 1): RING + 1})
    assert [flush for flush, _ in ring] == [RING + 1, RING + 2, RING + 3, RING + 4, RING + 5]
    trim(ring, {})  # (a commit of nothing known: nothing goes)
    assert len(ring) == 5


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        # the group committed past both of flush 2's offsets: flush 2 went through
        ({("in", 0): 20, ("in", 1): 7}, 2),
        # flush 2's commit did not reach partition 1: only flush 1's did
        ({("in", 0): 20, ("in", 1): 6}, 1),
        # nothing committed: no flush of this worker went through
        ({}, -1),
        # another worker went further since: a flush covered by later commits counts
        ({("in", 0): 90, ("in", 1): 90}, 2),
    ],
)
def test_a_flush_is_committed_when_every_offset_its_marker_names_is(
    committed: dict[tuple[str, int], int], expected: int
) -> None:
    ring: list[list[object]] = []
    marker(ring, 1, {("in", 0): 10, ("in", 1): 5})
    value = marker(ring, 2, {("in", 0): 20, ("in", 1): 7})
    assert committed_flushes({"w1": value}, committed) == {"w1": expected}


@pytest.mark.parametrize(
    ("value", "stale"),
    [
        (tagged({"x": 1}, "w1", 2), False),  # committed flush
        (tagged({"x": 1}, "w1", 3), True),  # written after the last committed flush
        (tagged({"x": 1}, "ghost", 1), True),  # a worker that never committed
        (tagged({"x": 1}, "me", 99), False),  # ours: our World is newer still
        ({"x": 1}, False),  # from before stamps
    ],
)
def test_which_values_are_rolled_back(value: dict[str, object], stale: bool) -> None:
    assert uncommitted(value, {"w1": 2}, me="me") is stale
    assert (WORKER in value) is (FLUSH in value)
