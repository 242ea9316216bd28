"""sdo.order's Merger by table: one order across partitions, an empty partition holding
the others back for at most the idle bound, a partition sought elsewhere forgotten, and
what counts as held too long. (The worker and the console using it against a real broker
are integration tests: test_backlog, test_faults.)"""

from __future__ import annotations

from typing import Any, NamedTuple

from sdo.config import SEQ_HEADER
from sdo.order import Merger, PartitionState


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    offset: int
    timestamp: int
    headers: tuple[tuple[str, bytes], ...] = ()
    value: Any = None


A, B = TP("in", 0), TP("in", 1)


def answered(position: int, highwater: int, at: float) -> PartitionState:
    return PartitionState(position, highwater, at)


def released(out: dict[Any, list[Rec]]) -> list[tuple[int, int]]:
    return sorted((r.timestamp, r.offset) for rs in out.values() for r in rs)


def test_records_come_out_lowest_timestamp_first_across_partitions() -> None:
    merger = Merger(idle_s=1.0)
    merger.add(A, [Rec(0, 10), Rec(1, 30)], pulled_at=100.0)
    merger.add(B, [Rec(0, 20)], pulled_at=100.0)
    # both partitions have nothing more on the broker, as of answers after the pull: no
    # older record can come, and all three go, A's 10, B's 20, A's 30
    states = {A: answered(2, 2, 100.1), B: answered(1, 1, 100.1)}
    out, forced = merger.release(states, now=100.1)
    assert [r.timestamp for r in out[A]] == [10, 30] and [r.timestamp for r in out[B]] == [20]
    assert forced == 0 and len(merger) == 0


def test_an_empty_partition_that_has_not_answered_holds_the_others_for_the_idle_bound() -> None:
    merger = Merger(idle_s=1.0)
    merger.add(A, [Rec(0, 10)], pulled_at=100.0)
    silent = {A: answered(1, 1, 100.0), B: answered(0, 5, 0.0)}  # B: records not fetched
    assert merger.release(silent, now=100.5) == ({}, 0)
    assert merger.overdue(100.5) == 0  # (held by ordering, as usual)
    assert merger.overdue(101.5) == 1  # held longer than ordering alone holds one
    out, forced = merger.release(silent, now=101.0)
    assert released(out) == [(10, 0)] and forced == 1


def test_the_sender_sequence_orders_records_of_the_same_time() -> None:
    merger = Merger()
    merger.add(A, [Rec(0, 10, ((SEQ_HEADER, b"2"),))], pulled_at=1.0)
    merger.add(B, [Rec(0, 10, ((SEQ_HEADER, b"1"),))], pulled_at=1.0)
    states = {A: answered(1, 1, 2.0), B: answered(1, 1, 2.0)}
    out, _ = merger.release(states, now=2.0)
    order = sorted((r.headers[0][1], tp.partition) for tp, rs in out.items() for r in rs)
    assert order == [(b"1", 1), (b"2", 0)]


def test_a_paused_partition_holds_the_others_back_and_gives_nothing() -> None:
    merger = Merger(idle_s=1.0)
    merger.add(A, [Rec(0, 10)], pulled_at=1.0)
    merger.add(B, [Rec(0, 20)], pulled_at=1.0)
    states = {A: answered(1, 1, 2.0), B: answered(1, 1, 2.0)}
    assert merger.release(states, now=2.0, deliverable={B}) == ({}, 0)
    assert len(merger) == 2


def test_a_partition_sought_elsewhere_is_forgotten() -> None:
    merger = Merger()
    merger.add(A, [Rec(5, 10), Rec(6, 11)], pulled_at=1.0)
    merger.add(B, [Rec(0, 20)], pulled_at=1.0)
    # A's position is no longer after what is held (a seek back to its committed offset)
    assert merger.check({A: 3, B: 1}) == 2
    assert merger.held(A) == 0 and merger.held(B) == 1
    assert merger.check({A: 3}) == 1  # B no longer assigned
    assert len(merger) == 0
