"""sdo.order's Merger by table: one order across partitions, an empty partition holding
the others back for at most the idle bound, a partition sought elsewhere forgotten, and
what counts as held too long. (The worker and the console using it against a real broker
are integration tests: test_backlog, test_faults.)"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

import pytest

from sdo.config import SEQ_HEADER
from sdo.merge import FastMerger
from sdo.order import Merger, PartitionState, order_key

#: The rule in Python (the console's) and compiled (the worker's): each test runs on both.
MERGERS = pytest.mark.parametrize("make", [Merger, FastMerger], ids=["python", "compiled"])


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


@MERGERS
def test_records_come_out_lowest_timestamp_first_across_partitions(make: type[Any]) -> None:
    merger = make(idle_s=1.0)
    merger.add(A, [Rec(0, 10), Rec(1, 30)], pulled_at=100.0)
    merger.add(B, [Rec(0, 20)], pulled_at=100.0)
    # both partitions have nothing more on the broker, as of answers after the pull: no
    # older record can come, and all three go, A's 10, B's 20, A's 30
    states = {A: answered(2, 2, 100.1), B: answered(1, 1, 100.1)}
    out, forced = merger.release(states, now=100.1)
    assert [r.timestamp for r in out[A]] == [10, 30] and [r.timestamp for r in out[B]] == [20]
    assert forced == 0 and len(merger) == 0


@MERGERS
def test_an_empty_partition_that_has_not_answered_holds_the_others_for_the_idle_bound(
    make: type[Any],
) -> None:
    merger = make(idle_s=1.0)
    merger.add(A, [Rec(0, 10)], pulled_at=100.0)
    silent = {A: answered(1, 1, 100.0), B: answered(0, 5, 0.0)}  # B: records not fetched
    assert merger.release(silent, now=100.5) == ({}, 0)
    assert merger.overdue(100.5) == 0  # (held by ordering, as usual)
    assert merger.overdue(101.5) == 1  # held longer than ordering alone holds one
    out, forced = merger.release(silent, now=101.0)
    assert released(out) == [(10, 0)] and forced == 1


@MERGERS
def test_the_sender_sequence_orders_records_of_the_same_time(make: type[Any]) -> None:
    merger = make()
    merger.add(A, [Rec(0, 10, ((SEQ_HEADER, b"2"),))], pulled_at=1.0)
    merger.add(B, [Rec(0, 10, ((SEQ_HEADER, b"1"),))], pulled_at=1.0)
    states = {A: answered(1, 1, 2.0), B: answered(1, 1, 2.0)}
    out, _ = merger.release(states, now=2.0)
    assert [(tp.partition, r.headers[0][1]) for tp, r in out.order] == [(1, b"1"), (0, b"2")]


@MERGERS
def test_a_sequence_header_that_is_not_a_64_bit_number_counts_as_none(make: type[Any]) -> None:
    """A hostile header (no number, or one past 64 bits) orders as a record without one,
    in both mergers alike (the compiled one compares 64-bit numbers)."""
    merger = make()
    huge = str(2**70).encode()
    merger.add(A, [Rec(0, 10, ((SEQ_HEADER, huge),))], pulled_at=1.0)
    merger.add(B, [Rec(0, 10, ((SEQ_HEADER, b"-1"),))], pulled_at=1.0)
    merger.add(TP("in", 2), [Rec(0, 10, ((SEQ_HEADER, b"x"),))], pulled_at=1.0)
    states = {tp: answered(1, 1, 2.0) for tp in (A, B, TP("in", 2))}
    out, _ = merger.release(states, now=2.0)
    assert [tp.partition for tp, _ in out.order] == [1, 0, 2]


@MERGERS
def test_a_paused_partition_holds_the_others_back_and_gives_nothing(make: type[Any]) -> None:
    merger = make(idle_s=1.0)
    merger.add(A, [Rec(0, 10)], pulled_at=1.0)
    merger.add(B, [Rec(0, 20)], pulled_at=1.0)
    states = {A: answered(1, 1, 2.0), B: answered(1, 1, 2.0)}
    assert merger.release(states, now=2.0, deliverable={B}) == ({}, 0)
    assert len(merger) == 2


@MERGERS
def test_a_partition_sought_elsewhere_is_forgotten(make: type[Any]) -> None:
    merger = make()
    merger.add(A, [Rec(5, 10), Rec(6, 11)], pulled_at=1.0)
    merger.add(B, [Rec(0, 20)], pulled_at=1.0)
    # A's position is no longer after what is held (a seek back to its committed offset)
    assert merger.check({A: 3, B: 1}) == 2
    assert merger.held(A) == 0 and merger.held(B) == 1
    assert merger.check({A: 3}) == 1  # B no longer assigned
    assert len(merger) == 0


# -- the release against the rule, one record at a time ------------------------------------


def _reference_release(
    queues: dict[TP, list[tuple[Rec, float]]],
    states: dict[TP, PartitionState],
    now: float,
    idle: float,
    deliverable: set[TP] | None,
) -> tuple[list[tuple[TP, Rec]], int]:
    """The release rule as the module docstring states it, a record at a time: the first
    record in the one order goes unless its partition may not deliver, or it was pulled
    no earlier than the last answer of a partition holding nothing (then it waits for the
    idle bound, and goes counted as forced). ``queues`` is consumed."""

    def key(tp: TP) -> tuple[int, int, str, int, int]:
        return order_key(tp, queues[tp][0][0])

    horizon = min(
        (
            s.answered_at if s.caught_up else float("-inf")
            for tp, s in states.items()
            if not queues.get(tp)
        ),
        default=float("inf"),
    )
    order: list[tuple[TP, Rec]] = []
    forced = 0
    while any(queues.values()):
        tp = min((t for t in queues if queues[t]), key=key)
        if tp not in states or (deliverable is not None and tp not in deliverable):
            break
        record, pulled = queues[tp][0]
        if pulled >= horizon:
            if now < pulled + idle:
                break
            forced += 1
        queues[tp].pop(0)
        order.append((tp, record))
        if not queues[tp]:
            state = states[tp]
            horizon = min(horizon, state.answered_at if state.caught_up else float("-inf"))
    return order, forced


@MERGERS
@pytest.mark.parametrize("seed", range(200))
def test_a_release_is_the_rule_applied_a_record_at_a_time(make: type[Any], seed: int) -> None:
    """Random partitions, pulls, answers, pauses and clocks: each release gives what the
    rule gives record by record, in the same order (Released.order), grouped per
    partition in offset order, with the same forced count; and what it keeps is what the
    rule keeps, over several releases."""
    rng = random.Random(seed)
    tps = [TP(rng.choice(["in.a", "in.b"]), p) for p in range(rng.randint(1, 9))]
    tps = list(dict.fromkeys(tps))
    merger = make(idle_s=1.0)
    queues: dict[TP, list[tuple[Rec, float]]] = {tp: [] for tp in tps}
    offsets = dict.fromkeys(tps, 0)
    stamps = dict.fromkeys(tps, 0)
    clock = 100.0
    for _ in range(rng.randint(1, 4)):
        for tp in tps:
            if rng.random() < 0.3:
                continue
            records = []
            for _ in range(rng.randint(0, 12)):
                # (a partition's record times may go back: producers stamp event times)
                stamps[tp] = max(0, stamps[tp] + rng.choice([-3, 0, 0, 1, 2, 5]))
                seq = rng.choice(["0", "1", "2", "3", "-1", "x", str(2**64), str(2**63 - 1)])
                headers = ((SEQ_HEADER, seq.encode()),) if rng.random() < 0.3 else ()
                records.append(Rec(offsets[tp], stamps[tp], headers))
                offsets[tp] += 1
            pulled = clock + rng.random()
            merger.add(tp, records, pulled)
            queues[tp].extend((r, pulled) for r in records)
        clock += rng.random()
        states = {
            tp: PartitionState(
                offsets[tp],
                offsets[tp] + rng.choice([0, 0, 1]),
                clock + rng.choice([-0.5, 0.0, 0.5, 2.0]),
            )
            for tp in tps
            if rng.random() < 0.9
        }
        deliverable = None if rng.random() < 0.7 else {tp for tp in tps if rng.random() < 0.7}
        now = clock + rng.choice([0.0, 0.5, 1.5, 3.0])
        expected, expected_forced = _reference_release(queues, states, now, 1.0, deliverable)
        out, forced = merger.release(states, now, deliverable)
        assert out.order == expected
        assert forced == expected_forced
        grouped: dict[TP, list[Rec]] = {}
        for tp, record in expected:
            grouped.setdefault(tp, []).append(record)
        assert out == grouped
        assert len(merger) == sum(len(q) for q in queues.values())
