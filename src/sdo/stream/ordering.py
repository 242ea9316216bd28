"""Hand each released batch to the agent in the one order, across topics.

Faust's default scheduler hands records to agents round-robin by topic. The consumer
(:mod:`sdo.stream.transport`) releases the input records that may go now, held in a
:class:`sdo.order.Merger`; this scheduler merges that batch's partitions by the same key
(:func:`sdo.order.order_key`: record time, sender sequence, topic, partition, offset), so
the agent sees them in exactly the order they were released. Order within a partition is
never changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import Any

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from sdo.order import order_key

__all__ = ["EventTimeScheduler"]


class EventTimeScheduler(DefaultSchedulingStrategy):
    """Merge a batch by :func:`sdo.order.order_key`."""

    def iterate(self, records: Mapping[TP, list[Any]]) -> Iterator[tuple[TP, Any]]:
        streams = [_keyed(tp, batch) for tp, batch in records.items()]
        for _, tp, record in heapq.merge(*streams, key=_sort_key):
            yield tp, record


def _keyed(tp: TP, batch: list[Any]) -> Iterator[tuple[tuple[int, int, str, int, int], TP, Any]]:
    # a function, not a generator expression in a loop: tp is bound per partition
    for record in batch:
        yield order_key(tp, record), tp, record


def _sort_key(
    item: tuple[tuple[int, int, str, int, int], TP, Any],
) -> tuple[int, int, str, int, int]:
    return item[0]
