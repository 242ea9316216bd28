"""Apply each released batch in the one order, across topics.

The consumer (:mod:`sdo.stream.transport`) releases the input records that may go now,
held in a :class:`sdo.order.Merger`; :func:`merged` merges that batch's partitions by the
same key (:func:`sdo.order.order_key`: record time, sender sequence, topic, partition,
offset), so the worker applies them in exactly the order they were released. Order
within a partition is never changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from sdo.order import order_key, sequence

__all__ = ["merged"]


def merged(records: Mapping[Any, list[Any]]) -> list[tuple[Any, Any]]:
    """``records`` (per partition, in offset order) as one list of (partition, record) in
    the one order.

    A merge of sorted runs (``heapq.merge``), which never reorders a partition. When every
    partition's records are already in (record time, sequence) order, as a producer
    stamping event times writes them, that merge is a sort by the whole key: done by
    numpy in one call (``lexsort``) rather than a heap step per record."""
    if len(records) == 1:
        ((tp, batch),) = records.items()
        return [(tp, record) for record in batch]
    order = _sorted_order(records)
    if order is None:
        return [(tp, r) for _, tp, r in heapq.merge(*_streams(records), key=_sort_key)]
    flat = [(tp, record) for tp, batch in records.items() for record in batch]
    return [flat[i] for i in order.tolist()]


def _sorted_order(records: Mapping[Any, list[Any]]) -> np.ndarray | None:
    """The merge as indices into the records concatenated, or None if a partition is not
    in (record time, sequence) order."""
    rank = {tp: n for n, tp in enumerate(sorted(records, key=lambda tp: (tp.topic, tp.partition)))}
    times, seqs, ranks, offsets = [], [], [], []
    for tp, batch in records.items():
        n = len(batch)
        ts = np.fromiter((r.timestamp or 0 for r in batch), np.int64, n)
        if any(r.headers for r in batch):
            seq = np.fromiter((sequence(r) for r in batch), np.int64, n)
            step, same = np.diff(ts), np.diff(seq)
            if ((step < 0) | ((step == 0) & (same < 0))).any():
                return None
        else:
            seq = np.zeros(n, np.int64)
            if (np.diff(ts) < 0).any():
                return None
        times.append(ts)
        seqs.append(seq)
        ranks.append(np.full(n, rank[tp], np.int64))
        offsets.append(np.fromiter((r.offset for r in batch), np.int64, n))
    return np.lexsort(
        (
            np.concatenate(offsets),
            np.concatenate(ranks),
            np.concatenate(seqs),
            np.concatenate(times),
        )
    )


def _streams(
    records: Mapping[Any, list[Any]],
) -> list[Iterator[tuple[tuple[int, int, str, int, int], Any, Any]]]:
    return [_keyed(tp, batch) for tp, batch in records.items()]


def _keyed(tp: Any, batch: list[Any]) -> Iterator[tuple[tuple[int, int, str, int, int], Any, Any]]:
    # a function, not a generator expression in a loop: tp is bound per partition
    for record in batch:
        yield order_key(tp, record), tp, record


def _sort_key(
    item: tuple[tuple[int, int, str, int, int], Any, Any],
) -> tuple[int, int, str, int, int]:
    return item[0]
