"""One order across partitions: records released lowest timestamp first (Kafka Streams'
timestamp synchronisation, KIP-353), for the worker and the console alike.

Theory of operation
-------------------
Kafka orders a partition, not a topic, and sdo's input is five topics of several
partitions. A consumer that applies whatever each fetch brings applies a deployment
before its incident whenever the incident's partition was fetched later, and a worker
working through a backlog then decides otherwise than ``sdo evaluate`` over the same log.

:class:`Merger` holds what a consumer has pulled, per partition in offset order, and
releases it merged by (record timestamp, sender sequence, topic, partition, offset):
producers stamp the record time with the event's ``ts`` and ``sdo replay`` adds the log
position as the sequence header, so a replayed log comes out in log order, whatever the
fetch sizes. A record is released only when no partition can still deliver an older one:
every other partition either holds a record of its own (then the merge decides), or has
nothing more on the broker as of a fetch *answered after the record was pulled* (its
position at its high watermark in that answer: anything older would have been in it,
since the producer wrote it first). An empty partition that cannot show that (its fetch
unanswered, or records on the broker not fetched yet) holds the others back for at most
``idle_s``; then the record is released anyway and counted as ``forced``. In a steady
feed a record waits for one fetch round (tens of milliseconds); working through a backlog
the order is the log's.

Pure: the caller pulls the records and reads each partition's state from its consumer
(:func:`partition_states` for aiokafka), and passes the wall clock (``now``, seconds, the
clock aiokafka stamps its fetch answers with). What is held is never acknowledged, so no
offset is committed past it; a partition revoked or sought elsewhere is forgotten and
read again from its committed offset.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sdo.config import SEQ_HEADER

__all__ = [
    "DEFAULT_IDLE_S",
    "HOLD_MAX",
    "Merger",
    "PartitionState",
    "Released",
    "order_key",
    "partition_states",
    "sequence",
]

#: Default of how long an empty partition may hold the others back (seconds).
DEFAULT_IDLE_S: Final = 1.0
#: Records held per partition before the caller stops pulling it (bounds memory).
HOLD_MAX: Final = 10_000

_MINUS_INF: Final = float("-inf")
_SEQ_MIN: Final = -(2**63)
_SEQ_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PartitionState:
    """What the consumer knows of one partition: its position (the next offset it will
    hand over), the high watermark of its last fetch answer, and when that answer came
    (wall seconds; 0.0: none yet)."""

    position: int | None
    highwater: int | None
    answered_at: float

    @property
    def caught_up(self) -> bool:
        """Nothing more on the broker, as of the last answer."""
        return (
            self.position is not None
            and self.highwater is not None
            and self.position >= self.highwater
        )


def sequence(record: Any) -> int:
    """A record's sender sequence: ``sdo replay``'s header (0 without one, or with one
    that is not a whole number of 64 bits: :mod:`sdo.merge` compares them as such)."""
    for key, value in getattr(record, "headers", None) or ():
        if key == SEQ_HEADER:
            try:
                seq = int(value)
            except (TypeError, ValueError):
                return 0
            return seq if _SEQ_MIN <= seq <= _SEQ_MAX else 0
    return 0


def order_key(tp: Any, record: Any) -> tuple[int, int, str, int, int]:
    """The merge order: record time, sender sequence, then where it is (a total order)."""
    return (record.timestamp or 0, sequence(record), tp.topic, tp.partition, record.offset)


class Released(dict[Any, list[Any]]):
    """What :meth:`Merger.release` lets go: per partition, in offset order, and
    :attr:`order`, every record as (partition, record) in the one order (the merge the
    release made: a caller need not merge again)."""

    __slots__ = ("order",)

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[Any, Any]] = []


class Merger:
    """Records pulled from several partitions, released in one order (module docstring)."""

    __slots__ = ("_heads", "_held", "_next", "idle_s")

    def __init__(self, idle_s: float = DEFAULT_IDLE_S) -> None:
        self.idle_s = idle_s
        #: per partition: (key, record, pulled at) in offset order
        self._held: dict[Hashable, deque[tuple[tuple[int, int, str, int, int], Any, float]]] = {}
        #: (key of its first record, partition) of every partition holding records
        self._heads: list[tuple[tuple[int, int, str, int, int], Hashable]] = []
        #: per partition: the offset after the last record pulled (to notice a seek)
        self._next: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._held.values())

    def held(self, tp: Hashable) -> int:
        """How many records of ``tp`` are held."""
        q = self._held.get(tp)
        return 0 if q is None else len(q)

    def add(self, tp: Any, records: Iterable[Any], pulled_at: float) -> None:
        """Records of ``tp`` just pulled (in offset order), at wall time ``pulled_at``."""
        q = self._held.get(tp)
        fresh = not q
        if q is None:
            q = self._held[tp] = deque()
        last = None
        for record in records:
            q.append((order_key(tp, record), record, pulled_at))
            last = record.offset
        if last is None:
            if not q:
                del self._held[tp]
            return
        self._next[tp] = last + 1
        if fresh:
            heapq.heappush(self._heads, (q[0][0], tp))

    def forget(self, tps: Collection[Hashable]) -> int:
        """Drop what is held of ``tps`` (revoked, or sought elsewhere): they are read
        again from their committed offsets. Returns how many records were dropped."""
        dropped = 0
        for tp in tps:
            q = self._held.pop(tp, None)
            self._next.pop(tp, None)
            if q:
                dropped += len(q)
        if dropped:
            self._heads = [h for h in self._heads if h[1] in self._held]
            heapq.heapify(self._heads)
        return dropped

    def check(self, positions: Mapping[Hashable, int | None]) -> int:
        """Forget the partitions whose consumer position is not where the records held
        end (sought elsewhere, or no longer assigned: not in ``positions``)."""
        moved = sought_elsewhere(self._next, self._held, positions)
        return self.forget(moved) if moved else 0

    def release(
        self,
        states: Mapping[Hashable, PartitionState],
        now: float,
        deliverable: Collection[Hashable] | None = None,
    ) -> tuple[Released, int]:
        """The records that may go now, per partition in offset order (merged, they are
        the next ones in the one order: :attr:`Released.order`), and how many of them were
        forced out by ``idle_s``. ``states``: every partition to be ordered that the
        consumer is assigned; ``deliverable``: those it may hand over now (None: all). A
        paused one still holds the others back (it has records to give), but nothing of
        it goes."""
        held = self._held
        horizon = first_horizon(states, held)
        out = Released()
        order = out.order
        forced = 0
        heads = self._heads
        idle = self.idle_s
        while heads:
            tp = heads[0][1]
            if tp not in states or (deliverable is not None and tp not in deliverable):
                break  # paused, or no longer assigned: the consumer would not deliver it
            q = held[tp]
            # this partition's records while they stay first: the heap is changed once,
            # when another partition's head comes first, this one is emptied or held
            rival = _second(heads)
            batch: list[Any] | None = None
            blocked = False
            while True:
                _, record, pulled = q[0]
                if pulled >= horizon:
                    if now < pulled + idle:
                        blocked = True
                        break
                    forced += 1
                q.popleft()
                if batch is None:
                    batch = out.get(tp)
                    if batch is None:
                        batch = out[tp] = []
                batch.append(record)
                order.append((tp, record))
                if not q or (rival is not None and rival < q[0][0]):
                    break
            if q:
                if batch is not None:
                    heapq.heapreplace(heads, (q[0][0], tp))
                if blocked:
                    break
            else:
                heapq.heappop(heads)
                del held[tp]
                state = states[tp]
                horizon = min(horizon, state.answered_at if state.caught_up else _MINUS_INF)
        return out, forced

    def overdue(self, now: float) -> int:
        """How many held records were pulled more than ``idle_s`` before ``now``: held
        longer than ordering alone holds a record (a partition that does not answer)."""
        limit = now - self.idle_s
        return sum(1 for q in self._held.values() for _, _, at in q if at < limit)

    def wait_s(self, now: float) -> float | None:
        """Seconds until the first held record would be forced out (None: none held)."""
        if not self._heads:
            return None
        tp = self._heads[0][1]
        return max(0.0, self._held[tp][0][2] + self.idle_s - now)


def sought_elsewhere(
    next_offsets: Mapping[Hashable, int],
    held: Collection[Hashable],
    positions: Mapping[Hashable, int | None],
) -> list[Hashable]:
    """The partitions holding records whose consumer position is not where they end
    (``next_offsets``: the offset after each one's last record pulled): a merger's
    ``check``, for both mergers."""
    return [tp for tp, nxt in next_offsets.items() if tp in held and positions.get(tp, -1) != nxt]


def first_horizon(states: Mapping[Hashable, PartitionState], held: Collection[Hashable]) -> float:
    """A release's horizon before it empties any partition: the earliest last answer of
    the partitions holding nothing (minus infinity for one not caught up; infinity if
    every partition holds records), for both mergers."""
    horizon = float("inf")
    for tp, state in states.items():
        if tp not in held:
            horizon = min(horizon, state.answered_at if state.caught_up else _MINUS_INF)
    return horizon


def _second(heads: list[tuple[tuple[int, int, str, int, int], Hashable]]) -> Any:
    """The key of the second head of the heap ``heads`` (None: there is one)."""
    n = len(heads)
    if n < 2:
        return None
    if n == 2:
        return heads[1][0]
    return min(heads[1][0], heads[2][0])


def partition_states(consumer: Any, tps: Iterable[Any]) -> dict[Any, PartitionState]:
    """An aiokafka consumer's state of each of ``tps`` it is assigned (read on its loop):
    position, high watermark and time of the last fetch answer. Partitions it is not
    assigned, or has no position for yet, are left out."""
    assignment = consumer._fetcher._subscriptions.subscription
    assignment = None if assignment is None else assignment.assignment
    if assignment is None:
        return {}
    out: dict[Any, PartitionState] = {}
    for tp in tps:
        try:
            state = assignment.state_value(tp)
        except (KeyError, AssertionError):
            continue
        if state is None or not state.has_valid_position:
            continue
        stamp = state.timestamp
        out[tp] = PartitionState(
            state.position, state.highwater, 0.0 if stamp is None else stamp / 1000
        )
    return out
