"""Deliver each fetched batch in event-time order, across topics.

Faust's default scheduler hands records to agents round-robin by topic. The officer,
incident and deployment feeds arrive on five topics; a batch may hold a minute of fixes
and the incident that came after them, and round-robin would apply the incident first.
This scheduler merges the batch's partitions by the Kafka record timestamp (producers of
sdo events set it to the event's ``ts``; ``sdo replay`` does) and, for equal timestamps, by
the ``sdo-seq`` header ``sdo replay`` adds (the line of the log), so a replay is applied
in log order, as ``sdo evaluate`` applies it. Order within a partition is never changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import Any

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from sdo.config import SEQ_HEADER

__all__ = ["EventTimeScheduler"]


def _seq(record: Any) -> int:
    for key, value in getattr(record, "headers", None) or ():
        if key == SEQ_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0
    return 0


class EventTimeScheduler(DefaultSchedulingStrategy):
    """Merge a fetched batch by (record timestamp, sender sequence, topic, offset)."""

    def iterate(self, records: Mapping[TP, list[Any]]) -> Iterator[tuple[TP, Any]]:
        ordered = sorted(records.items(), key=lambda kv: (kv[0].topic, kv[0].partition))
        streams = [_keyed(rank, tp, batch) for rank, (tp, batch) in enumerate(ordered)]
        for _, tp, record in heapq.merge(*streams, key=_sort_key):
            yield tp, record


def _keyed(
    rank: int, tp: TP, batch: list[Any]
) -> Iterator[tuple[tuple[int, int, int, int], TP, Any]]:
    # a function, not a generator expression in a loop: rank and tp are bound per partition
    for record in batch:
        yield (record.timestamp or 0, _seq(record), rank, record.offset), tp, record


def _sort_key(item: tuple[tuple[int, int, int, int], TP, Any]) -> tuple[int, int, int, int]:
    return item[0]
