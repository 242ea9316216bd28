"""Tables consistent with the committed offsets, after any crash (at-least-once, exactly).

Theory of operation
-------------------
The worker writes every change to its tables just before each commit
(:meth:`sdo.stream.app.Runtime.flush`), and the commit then covers exactly the records
those changes came from. Without Kafka transactions (the embedded broker has none) the
two are not one step: a worker killed after some of a flush's changelog records reached
the broker, but before the commit, leaves tables partly *ahead* of the offsets a new
worker resumes from. Applying the uncommitted records again onto such a mix (some
officers already where they will be, an incident not yet there) would decide otherwise
than the worker did: a different recommendation.

So each flush is numbered, per worker process (its ``instance``), and every table value
it writes carries ``_w`` (the instance) and ``_f`` (the number). With its values, each
flush writes the worker's marker to the ``flushes`` table: per flush since the last one
known committed, the offsets the commit after it covers (every record applied, but for
a partition held behind a waiting deployment). A flush with no new input since the last
(changes from the officer mirror, a hand-over) is committed as soon as that one is.
A new worker, before it rebuilds its World, reads the committed offsets and the
changelogs (markers, officers, incidents) from the beginning: a flush whose marker's
offsets are all committed is committed, and each key of its tables takes the latest
value a committed flush wrote (a value of a flush that was not committed is rolled back;
a committed one the table recovery missed is caught up). The tables are then the World
as of the committed offsets exactly, and what is read again decides as it did. A worker
never rolls back its own values (its World in memory is newer).

On Apache Kafka the changelogs are compacted; the versions a rollback needs are the
latest few seconds', in the active segment, which the cleaner never compacts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

import orjson

__all__ = [
    "FLUSH",
    "RING",
    "WORKER",
    "committed_flushes",
    "committed_offsets",
    "committed_value",
    "entry_offsets",
    "marker",
    "read_changelog",
    "tagged",
    "trim",
    "uncommitted",
]

#: The keys every table value carries: the writing worker instance and its flush number.
WORKER: Final = "_w"
FLUSH: Final = "_f"
#: Flushes remembered in a worker's marker (since the last known committed; many only
#: while commits fail, or wait behind a held deployment).
RING: Final = 64
#: Bound on reading committed offsets and changelogs at recovery.
READ_TIMEOUT_S: Final = 60.0
#: A changelog is read to its end once this many fetches in a row, of POLL_MS each,
#: bring nothing.
QUIET_POLLS: Final = 3
POLL_MS: Final = 200


def tagged(value: dict[str, Any], instance: str, flush: int) -> dict[str, Any]:
    """``value`` stamped with the worker instance and flush number that write it."""
    value[WORKER] = instance
    value[FLUSH] = flush
    return value


def marker(
    ring: list[list[Any]], flush: int, offsets: Mapping[tuple[str, int], int]
) -> dict[str, Any]:
    """Add flush ``flush`` (its values come from the input before ``offsets``, and the
    commit that follows it covers ``offsets``) to a worker's ``ring``, and return the
    marker to write: the ring. A flush with the same offsets as the last one replaces it
    (the later flush is committed exactly when the earlier is); past :data:`RING`
    entries, the second oldest goes (the oldest is the last flush known committed:
    :func:`trim`)."""
    entry = [flush, {f"{t}:{p}": o for (t, p), o in offsets.items()}]
    if ring and ring[-1][1] == entry[1]:
        ring[-1] = entry
    else:
        ring.append(entry)
    if len(ring) > RING:
        del ring[1]
    return {"ring": list(ring)}


def trim(ring: list[list[Any]], committed: Mapping[tuple[str, int], int]) -> None:
    """Drop from ``ring`` the entries older than the last one ``committed`` (offsets the
    worker committed) covers: a new worker never needs them."""
    last = None
    for n, (_, offsets) in enumerate(ring):
        if _covered(offsets, committed):
            last = n
    if last:
        del ring[:last]


def committed_flushes(
    markers: Mapping[str, Mapping[str, Any]], committed: Mapping[tuple[str, int], int]
) -> dict[str, int]:
    """Per worker instance, the last flush whose commit went through: every offset its
    marker names is committed (the group's committed offset at least as far)."""
    out: dict[str, int] = {}
    for instance, value in markers.items():
        best = -1
        for flush, offsets in value.get("ring", ()):
            if _covered(offsets, committed):
                best = max(best, int(flush))
        out[instance] = best
    return out


def entry_offsets(entry: list[Any]) -> dict[tuple[str, int], int]:
    """A marker entry's offsets, by (topic, partition)."""
    return {_tp(name): offset for name, offset in entry[1].items()}


def _covered(offsets: Mapping[str, int], committed: Mapping[tuple[str, int], int]) -> bool:
    """Whether ``committed`` reaches every offset of a marker entry."""
    return all(committed.get(_tp(name), -1) >= offset for name, offset in offsets.items())


def uncommitted(value: Mapping[str, Any], flushes: Mapping[str, int], me: str) -> bool:
    """Whether a table value was written by a flush whose commit did not go through (not
    one of ours, ``me``; a value without a stamp is from before stamps: committed)."""
    instance = value.get(WORKER)
    if instance is None or instance == me:
        return False
    return int(value.get(FLUSH, -1)) > flushes.get(str(instance), -1)


def _tp(name: str) -> tuple[str, int]:
    topic, _, partition = name.rpartition(":")
    return topic, int(partition)


async def committed_offsets(
    bootstrap: str, security: Mapping[str, Any], group: str, tps: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The group's committed offsets of ``tps`` (a partition never committed: absent)."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 (as faust, on use)
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **security
    )
    await consumer.start()
    try:
        out: dict[tuple[str, int], int] = {}
        async with asyncio.timeout(READ_TIMEOUT_S):
            for topic, partition in tps:
                offset = await consumer.committed(TopicPartition(topic, partition))
                if offset is not None:
                    out[(topic, partition)] = offset
        return out
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def read_changelog(
    bootstrap: str,
    security: Mapping[str, Any],
    topic: str,
    partitions: Collection[int] | None = None,
) -> dict[str, list[dict[str, Any] | None]]:
    """Every value of changelog ``topic`` (of ``partitions`` only, if given), per key in
    the order written (None: deleted), read from the beginning until a few fetches in a
    row bring nothing more.

    Not to the end offsets the broker reports: the embedded broker reports the end of a
    partition as one past the first record of its last produce batch, not its last record
    (a batch of several records reads as one), which is also why Faust's own recovery may
    stop short of a partition's last records there."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **security,
    )
    await consumer.start()
    out: dict[str, list[dict[str, Any] | None]] = {}
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            await consumer.topics()
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in parts if partitions is None or p in partitions]
            if not tps:
                return out
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            quiet = 0
            while quiet < QUIET_POLLS:
                batch = await consumer.getmany(timeout_ms=POLL_MS)
                records = [r for rs in batch.values() for r in rs]
                quiet = 0 if records else quiet + 1
                for record in records:
                    if record.key is None:
                        continue
                    value = None if record.value is None else orjson.loads(record.value)
                    out.setdefault(orjson.loads(record.key), []).append(value)
        return out
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def committed_value(
    versions: list[dict[str, Any] | None], flushes: Mapping[str, int], me: str
) -> tuple[dict[str, Any] | None, bool]:
    """The latest of a key's values a committed flush wrote (None: none, or deleted), and
    whether a later, uncommitted one was passed over."""
    skipped = False
    for value in reversed(versions):
        if value is not None and uncommitted(value, flushes, me):
            skipped = True
            continue
        return value, skipped
    return None, skipped
