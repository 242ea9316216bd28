""":class:`sdo.order.Merger`'s release, compiled: the same rule, for a worker's thousands of
records a fetch.

Theory of operation
-------------------
:class:`sdo.order.Merger` states the rule and applies it a record at a time in Python:
per record, a key tuple built, a deque entry, a heap step when the first partition
changes (working through a backlog of AVL fixes, at nearly every record: an officer's
fixes interleave with the other partitions' by time). In the worker that came to some
1.5 us a record, a tenth of its whole cost.

:class:`FastMerger` holds the same records with their keys in flat lists, and
:func:`_release` (numba) runs the release over them in one call: the same merge by
(record time, sender sequence, topic, partition), the same horizon of partitions that
hold nothing, the same idle bound and forced count, the same stop at a partition that
may not deliver. It returns which partition each released record came from, in the one
order; Python then hands the records out. ``tests/test_order.py`` checks both classes
against the rule written a record at a time.

Numba compiles the kernel once per machine (its cache, next to this file);
:func:`warm_up` loads it, so a worker does so before it reports ready, not on its first
fetch. The console keeps the Python class: it releases a few hundred records at a time,
and need not load numba for that.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from itertools import chain
from typing import Any, Final

import numpy as np
from numba import njit

from sdo.order import (
    DEFAULT_IDLE_S,
    PartitionState,
    Released,
    first_horizon,
    sequence,
    sought_elsewhere,
)

__all__ = ["FastMerger", "warm_up"]

_MINUS_INF: Final = float("-inf")


@njit(cache=True, nogil=True)
def _less(a: int, b: int, ts: Any, seq: Any, rank: Any, pos: Any) -> bool:  # pragma: no cover
    """Whether partition ``a``'s first held record comes before partition ``b``'s."""
    i = pos[a]
    j = pos[b]
    if ts[i] != ts[j]:
        return bool(ts[i] < ts[j])
    if seq[i] != seq[j]:
        return bool(seq[i] < seq[j])
    return bool(rank[a] < rank[b])


@njit(cache=True, nogil=True)
def _down(  # pragma: no cover
    heap: Any, size: int, at: int, ts: Any, seq: Any, rank: Any, pos: Any
) -> None:
    """Sift the partition at ``heap[at]`` down to its place (first record first)."""
    while True:
        first = at
        left = 2 * at + 1
        right = left + 1
        if left < size and _less(heap[left], heap[first], ts, seq, rank, pos):
            first = left
        if right < size and _less(heap[right], heap[first], ts, seq, rank, pos):
            first = right
        if first == at:
            return
        heap[at], heap[first] = heap[first], heap[at]
        at = first


@njit(cache=True, nogil=True)
def _release(  # pragma: no cover  (compiled; its Python twin is sdo.order.Merger.release)
    ts: Any,
    seq: Any,
    pulled: Any,
    bounds: Any,
    rank: Any,
    ok: Any,
    emptied: Any,
    horizon: float,
    now: float,
    idle: float,
    out: Any,
    taken: Any,
) -> tuple[int, int]:
    """Release records by the rule of :meth:`sdo.order.Merger.release`.

    Partition ``p`` holds records ``bounds[p]:bounds[p + 1]`` of the flat arrays ``ts``,
    ``seq`` (their order keys) and ``pulled`` (when each was pulled); ``rank[p]`` orders
    partitions of equal keys (by topic and partition); ``ok[p]``: whether it may deliver
    now; ``emptied[p]``: what it adds to the horizon once emptied. Writes the partition
    of each released record, in order, into ``out`` and how many each released into
    ``taken``; returns (released, forced)."""
    parts = rank.shape[0]
    pos = bounds[:parts].copy()
    heap = np.empty(parts, np.int64)
    size = 0
    for p in range(parts):
        if pos[p] < bounds[p + 1]:
            heap[size] = p
            size += 1
    for at in range(size // 2 - 1, -1, -1):
        _down(heap, size, at, ts, seq, rank, pos)
    n = 0
    forced = 0
    while size > 0:
        p = heap[0]
        if not ok[p]:
            break  # paused, or no longer assigned: the consumer would not deliver it
        # this partition's records while they stay first (as Merger.release)
        rival = -1
        if size >= 2:
            rival = heap[1]
            if size >= 3 and _less(heap[2], rival, ts, seq, rank, pos):
                rival = heap[2]
        end = bounds[p + 1]
        moved = False
        blocked = False
        while True:
            i = pos[p]
            if pulled[i] >= horizon:
                if now < pulled[i] + idle:
                    blocked = True
                    break
                forced += 1
            out[n] = p
            n += 1
            pos[p] = i + 1
            moved = True
            if pos[p] == end:
                break
            if rival >= 0 and _less(rival, p, ts, seq, rank, pos):
                break
        if pos[p] < end:
            if moved:
                _down(heap, size, 0, ts, seq, rank, pos)
            if blocked:
                break
        else:
            size -= 1
            heap[0] = heap[size]
            _down(heap, size, 0, ts, seq, rank, pos)
            horizon = min(horizon, emptied[p])
    for p in range(parts):
        taken[p] = pos[p] - bounds[p]
    return n, forced


class _Held:
    """One partition's held records (in offset order) and their keys."""

    __slots__ = ("pulled", "records", "seq", "ts")

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.ts: list[int] = []
        self.seq: list[int] = []
        self.pulled: list[float] = []


class FastMerger:
    """:class:`sdo.order.Merger` with its release compiled (module docstring)."""

    __slots__ = ("_count", "_held", "_next", "idle_s")

    def __init__(self, idle_s: float = DEFAULT_IDLE_S) -> None:
        self.idle_s = idle_s
        self._held: dict[Any, _Held] = {}
        self._count = 0
        #: per partition: the offset after the last record pulled (to notice a seek)
        self._next: dict[Any, int] = {}

    def __len__(self) -> int:
        return self._count

    def held(self, tp: Hashable) -> int:
        """How many records of ``tp`` are held."""
        h = self._held.get(tp)
        return 0 if h is None else len(h.records)

    def add(self, tp: Any, records: Iterable[Any], pulled_at: float) -> None:
        """Records of ``tp`` just pulled (in offset order), at wall time ``pulled_at``."""
        batch = records if isinstance(records, list) else list(records)
        if not batch:
            return
        h = self._held.get(tp)
        if h is None:
            h = self._held[tp] = _Held()
        n = len(batch)
        h.records.extend(batch)
        h.ts.extend([r.timestamp or 0 for r in batch])
        if any(getattr(r, "headers", None) for r in batch):
            h.seq.extend([sequence(r) for r in batch])
        else:
            h.seq.extend([0] * n)
        h.pulled.extend([pulled_at] * n)
        self._count += n
        self._next[tp] = batch[-1].offset + 1

    def forget(self, tps: Collection[Hashable]) -> int:
        """As :meth:`sdo.order.Merger.forget`."""
        dropped = 0
        for tp in tps:
            h = self._held.pop(tp, None)
            self._next.pop(tp, None)
            if h is not None:
                dropped += len(h.records)
        self._count -= dropped
        return dropped

    def check(self, positions: Mapping[Hashable, int | None]) -> int:
        """As :meth:`sdo.order.Merger.check`."""
        moved = sought_elsewhere(self._next, self._held, positions)
        return self.forget(moved) if moved else 0

    def release(
        self,
        states: Mapping[Hashable, PartitionState],
        now: float,
        deliverable: Collection[Hashable] | None = None,
    ) -> tuple[Released, int]:
        """As :meth:`sdo.order.Merger.release`."""
        held = self._held
        horizon = first_horizon(states, held)
        out = Released()
        if not held:
            return out, 0
        tps = list(held)
        parts = len(tps)
        order = sorted(range(parts), key=lambda p: (tps[p].topic, tps[p].partition))
        rank = np.empty(parts, np.int64)
        rank[order] = np.arange(parts)
        ok = np.zeros(parts, np.bool_)
        emptied = np.full(parts, _MINUS_INF)
        bounds = np.zeros(parts + 1, np.int64)
        for p, tp in enumerate(tps):
            bounds[p + 1] = bounds[p] + len(held[tp].records)
            known = states.get(tp)
            if known is None:
                continue
            ok[p] = deliverable is None or tp in deliverable
            if known.caught_up:
                emptied[p] = known.answered_at
        total = int(bounds[parts])
        hs = [held[tp] for tp in tps]
        ts = np.fromiter(chain.from_iterable(h.ts for h in hs), np.int64, total)
        seq = np.fromiter(chain.from_iterable(h.seq for h in hs), np.int64, total)
        pulled = np.fromiter(chain.from_iterable(h.pulled for h in hs), np.float64, total)
        which = np.empty(total, np.int64)
        taken = np.zeros(parts, np.int64)
        # (floats every time: an int would have numba compile another kernel, mid-run)
        n, forced = _release(
            ts, seq, pulled, bounds, rank, ok, emptied,
            float(horizon), float(now), float(self.idle_s), which, taken,
        )  # fmt: skip
        if not n:
            return out, forced
        nexts: list[Any] = []
        for p, tp in enumerate(tps):
            k = int(taken[p])
            h = hs[p]
            if k:
                batch = out[tp] = h.records[:k]
                if k == len(h.records):
                    del held[tp]
                else:
                    del h.records[:k], h.ts[:k], h.seq[:k], h.pulled[:k]
                nexts.append(iter(batch).__next__)
            else:
                nexts.append(None)
        self._count -= n
        out.order = [(tps[p], nexts[p]()) for p in which[:n].tolist()]
        return out, forced

    def overdue(self, now: float) -> int:
        """As :meth:`sdo.order.Merger.overdue`."""
        limit = now - self.idle_s
        return sum(1 for h in self._held.values() for at in h.pulled if at < limit)


def warm_up() -> None:
    """Load (or compile, the first time on a machine) the kernel, with a release of two
    records: a worker calls this before it reports ready."""
    merger = FastMerger(1.0)

    class _TP(tuple[str, int]):
        topic = property(lambda self: self[0])
        partition = property(lambda self: self[1])

    class _R:
        __slots__ = ("headers", "offset", "timestamp")

        def __init__(self, offset: int, timestamp: int) -> None:
            self.offset, self.timestamp, self.headers = offset, timestamp, ()

    a, b = _TP(("a", 0)), _TP(("a", 1))
    merger.add(a, [_R(0, 2)], 0.0)
    merger.add(b, [_R(0, 1)], 0.0)
    state = PartitionState(1, 1, 0.0)
    merger.release({a: state, b: state}, 10.0)
