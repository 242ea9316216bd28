"""Faust's Kafka consumer, with a fetch wait we choose and a hook before each commit.

* **Fetch wait.** Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. A Kafka
  broker answers a fetch as soon as data arrives, but the embedded broker (Tansu) answers
  only when the wait expires, so every hop through it would cost up to 1.5 s of latency.
  The worker's consumer waits at most :data:`FETCH_WAIT_MS`; on Apache Kafka the shorter
  wait only means more, cheap, empty fetches while idle.
* **Before commit.** The worker writes officer records to their table once per commit
  rather than once per event (``Runtime.flush``); the hook runs that flush synchronously
  just before the consumer decides which offsets to commit, so no offset is committed
  before the state it produced is on its way to the changelog (Faust then flushes the
  producer before committing): at-least-once holds.

Installed on the app's own transport instance, not globally: :func:`install_consumer`.

* **One order.** Records of the input topics are held in a merger as they are fetched
  (:class:`sdo.merge.FastMerger`: :class:`sdo.order.Merger`'s rule, compiled), and
  handed to Faust lowest timestamp first across every input partition (see
  :mod:`sdo.order`): the consumer thread pulls what aiokafka has fetched, and returns
  only what may go. Other topics (the tables' changelogs, read while
  recovering) pass straight through. Held records are not acknowledged, so no offset is
  committed past them; a partition sought or revoked is forgotten and read again.
* **Batches.** With ``take``, the released input records are not handed to Faust's
  streams: each batch is awaited by ``take`` (the worker applies it, mostly through its
  batch lane), and a commit covers what ``position`` says was applied, no further than
  ``hold``. A commit holds input back (``exclusive``) while the worker flushes and the
  offsets are taken, not while the broker is waited for.
* **Fetch answers.** :func:`fetch_ages` says how long ago the broker last answered a fetch
  for each assigned partition (aiokafka's partition state, as Faust's own stall warnings
  read it): the worker's readiness probe (:mod:`sdo.health`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from typing import Any, Final

import faust
from faust.exceptions import ProducerSendError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

from sdo.merge import FastMerger, warm_up
from sdo.order import DEFAULT_IDLE_S, HOLD_MAX, partition_states

__all__ = ["FETCH_WAIT_MS", "fetch_ages", "install_consumer", "unapplied"]

#: Longest a fetch waits for data, ms (a hop's worst-case delay on the embedded broker).
FETCH_WAIT_MS: Final = 20
#: While records are held, how long a pull waits for more before looking again (s): the
#: partitions holding them back answer a fetch every FETCH_WAIT_MS or so.
_HELD_POLL_S: Final = 0.005


class _ShortFetchThread(AIOKafkaConsumerThread):
    #: the input topics, released in one order (None: no ordering)
    ordered: frozenset[str] | None = None
    idle_s: float = DEFAULT_IDLE_S
    #: called (on the consumer's thread) with how many records were forced out of order
    on_forced: Callable[[int], None] | None = None
    #: whether input may be handed over now (False while a rebalance is under way)
    gate: Callable[[], bool] | None = None
    _merger: FastMerger | None = None

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (Faust's signature, overridden)
        max_records: int | None = None,
    ) -> Any:
        ordered = self.ordered
        if ordered is None:
            return await super()._fetch_records(consumer, active_partitions, timeout, max_records)
        if not self.consumer.flow_active:
            return {}
        merger = self._merger
        if merger is None:
            merger = self._merger = FastMerger(self.idle_s)
        active = set(active_partitions or ())
        # every ordered partition assigned, paused or not: a paused one (Faust pauses a
        # partition while its stream's buffer is full) still has older records to give
        mine = {tp for tp in consumer.assignment() if tp.topic in ordered}
        states = partition_states(consumer, mine)
        merger.check({tp: st.position for tp, st in states.items()})
        # pull what aiokafka has fetched, but not of a partition holding a lot already
        # (an empty set would mean every partition to aiokafka: then only wait a little);
        # nothing of the input while a rebalance is under way: what a fetch brings before
        # the partitions are sought to their committed offsets would be applied twice,
        # and out of order with what is read again after
        shut = self.gate is not None and not self.gate()
        pull = {
            tp for tp in active if merger.held(tp) < HOLD_MAX and not (shut and tp.topic in ordered)
        }
        # (while the gate is shut, look again soon: Faust asks for a wait of a second,
        # and input resumes the moment the rebalance ends)
        wait: float | None = timeout
        if shut:
            wait = min(timeout or 0.0, FETCH_WAIT_MS / 1000)
        elif len(merger):
            wait = min(timeout or 0.0, _HELD_POLL_S)
        out: dict[Any, list[Any]] = {}
        if pull:
            _bare_records(consumer, ordered)
            fetched = await super()._fetch_records(consumer, pull, wait, max_records)
            now = time.time()
            for tp, records in fetched.items():
                if tp.topic in ordered:
                    merger.add(tp, records, now)
                else:
                    out[tp] = records
        else:
            await asyncio.sleep(wait or 0.0)
        if shut or not len(merger):
            return out
        states = partition_states(consumer, mine)
        released, forced = merger.release(states, time.time(), active)
        if forced and self.on_forced is not None:
            self.on_forced(forced)
        # (the released records with their order: ``take`` need not merge them again;
        # the others, of other topics, are not in it)
        released.update(out)
        return released


def _bare(tp: Any, record: Any) -> Any:
    return record


def _bare_records(consumer: Any, topics: Collection[str]) -> None:
    """Have aiokafka hand over the records it has fetched of ``topics`` as it parsed them
    (its C record: offset, timestamp, key, value, headers), not each copied into a
    ``ConsumerRecord`` (0.3-0.4 us a record, a twentieth of the worker's whole cost
    through a backlog): the merge and the worker read nothing else of them, and have
    their partition apart. Set on each fetched partition's records before they are
    drained; what a fetch brings while the consumer waits comes as ``ConsumerRecord``
    (either serves). Without the attributes looked for (another aiokafka), nothing is
    changed. Call on the consumer's thread."""
    results = getattr(getattr(consumer, "_fetcher", None), "_records", None)
    if not isinstance(results, dict):
        return
    for tp, result in results.items():
        if tp.topic in topics:
            records = getattr(result, "_partition_records", None)
            if records is not None and hasattr(records, "_consumer_record"):
                records._consumer_record = _bare


def install_consumer(
    app: faust.App,
    before_commit: Callable[[], None] | None = None,
    hold: Callable[[Any], int | None] | None = None,
    *,
    ordered: Collection[str] | None = None,
    idle_s: float = DEFAULT_IDLE_S,
    on_forced: Callable[[int], None] | None = None,
    on_commit: Callable[[Any], None] | None = None,
    on_committed: Callable[[Any], None] | None = None,
    after_commit: Callable[[], None] | None = None,
    gate: Callable[[], bool] | None = None,
    take: Callable[[dict[Any, list[Any]], list[tuple[Any, Any]] | None], Awaitable[None]]
    | None = None,
    position: Callable[[Any], int | None] | None = None,
    exclusive: asyncio.Lock | None = None,
    delivered: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Give ``app`` the short-fetch consumer, calling ``before_commit`` before each commit.

    ``hold(tp)``, if given, is the first offset of ``tp`` that may not be committed yet
    (its effect is not durable); the consumer commits no further than that. ``ordered``:
    the topics whose records are handed over in one order across their partitions (see
    :mod:`sdo.order`), an empty partition holding the others back for at most
    ``idle_s``; ``on_forced(n)`` hears of records released before that could be shown
    safe (called on the consumer's thread). ``on_commit(offsets)`` hears of the offsets
    about to be committed (of assigned partitions), before the producer is flushed and
    they are, ``on_committed(offsets)`` once they are, and ``after_commit()`` after each
    commit attempt, whether or not anything was to commit (all on the app's loop).
    ``gate()``: whether input records may
    be handed over now (read on the consumer's thread).

    ``take(records, order)``, with ``ordered``: each released batch of the ``ordered``
    topics (per partition, in offset order; ``order``: every record as (partition,
    record) in the one order, or None: to be merged) is awaited by it, on the app's loop,
    instead of being handed to Faust's streams record by record (the worker's batch lane:
    :mod:`sdo.stream.batch`); no message is made or acknowledged for them, so
    ``position(tp)`` says what a commit may cover: the offset after the last record of
    ``tp`` applied (None: none). ``exclusive``: a lock held while a batch is applied,
    which a commit takes too while it flushes and takes its offsets (they are then of
    whole batches; without one, the commit's own). ``delivered()`` is awaited once input
    may go on, before the offsets are committed (it raises if what the flush wrote did
    not reach the broker: then nothing is committed).
    """
    topics = None if ordered is None else frozenset(ordered)
    if topics is not None:
        warm_up()  # (the merge's kernel loaded now, not on the first fetch)

    class _Thread(_ShortFetchThread):
        pass

    _Thread.ordered = topics
    _Thread.idle_s = idle_s
    _Thread.on_forced = staticmethod(on_forced) if on_forced is not None else None
    _Thread.gate = staticmethod(gate) if gate is not None else None

    held = exclusive if exclusive is not None else asyncio.Lock()

    class SdoConsumer(Consumer):
        _sdo_committing = asyncio.Lock()  # (per app: this class is made per app)

        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return _Thread(self, loop=self.loop, beacon=self.beacon)

        async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
            if take is None or topics is None:
                async for item in super().getmany(timeout):
                    yield item
                return
            records, active = await self._wait_next_records(timeout)
            if records is None or self.should_stop:
                return
            if not self.flow_active:
                # (as Faust: a rebalance stopped the flow; the records are read again)
                try:
                    await self.perform_seek()
                except Exception as exc:
                    self.log.warning(f"exception performing seek when flow not active {exc}")
                return
            mine = {tp: batch for tp, batch in records.items() if tp.topic in topics}
            if mine:
                # (the order the release made, when the batch is a release: sdo.order)
                await take(mine, getattr(records, "order", None))
            generation = self.app.consumer_generation_id
            for tp, batch in records.items():
                if tp.topic in topics:
                    continue
                for record in batch:
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        return
                    if active is None or tp in active or tp in self._buffered_partitions:
                        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                        yield tp, self._to_message(tp, record)

        def _filter_tps_with_pending_acks(self, topics_: Any = None) -> Iterator[Any]:
            tps = set(super()._filter_tps_with_pending_acks(topics_))
            if position is not None and topics is not None:
                tps.update(
                    tp
                    for tp in self.assignment()
                    if tp.topic in topics
                    and (topics_ is None or tp in topics_ or tp.topic in topics_)
                )
            return iter(tps)

        async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
            if on_commit is not None:
                assigned = self.assignment()
                on_commit({tp: o for tp, o in offsets.items() if tp in assigned})
            done: bool = await super()._commit_offsets(offsets, start_new_transaction)
            if done and on_committed is not None:
                on_committed(offsets)
            return done

        async def force_commit(
            self, topics: Any = None, start_new_transaction: bool = True
        ) -> bool:
            async with self._sdo_committing:  # one commit at a time
                try:
                    return await self._commit_batches(topics, start_new_transaction)
                finally:
                    if after_commit is not None:
                        after_commit()

        async def _commit_batches(self, topics: Any, start_new_transaction: bool) -> bool:
            """Faust's force_commit, with input held back (``exclusive``) only while the
            state is flushed and the offsets it covers are taken: not while the broker
            is waited for (what the flush wrote, then the offsets)."""
            async with held:
                if before_commit is not None:
                    before_commit()  # synchronous: nothing is applied before the offsets
                tps = list(self._filter_tps_with_pending_acks(topics))
                offsets = self._filter_committable_offsets(tps)
            if delivered is not None:
                await delivered()
            if not offsets:
                return False
            try:
                await self._handle_attached(offsets)
            except ProducerSendError as exc:
                await self.crash(exc)
                return False
            committed: bool = await self._commit_offsets(
                offsets, start_new_transaction=start_new_transaction
            )
            return committed

        def _new_offset(self, tp: Any) -> int | None:
            # a batch's records are not acknowledged: position says what was applied
            applied = position is not None and topics is not None and tp.topic in topics
            offset: int | None = (
                position(tp) if position is not None and applied else super()._new_offset(tp)
            )
            limit = hold(tp) if hold is not None else None
            if offset is not None and limit is not None and limit < offset:
                if not applied:
                    # Faust took [first acked .. offset) off its acked list: give back the
                    # part past the hold, so that it is committed once its effect is durable.
                    back = range(limit, offset)
                    acked = self._acked[tp]
                    acked[:0] = back
                    self._acked_index[tp].update(back)
                offset = limit
            committed = self._committed_offset[tp]
            if offset is None or (committed is not None and offset <= committed):
                return None
            return offset

    app.transport.Consumer = SdoConsumer  # type: ignore[misc]  # this app's transport only


def fetch_ages(
    app: faust.App, topics: Collection[str]
) -> dict[tuple[str, int], float | None] | None:
    """Per assigned partition of ``topics``: seconds since the broker last answered a
    fetch for it (None: not yet since it was assigned). None while the consumer has no
    assignment (joining its group); empty when it was assigned none of ``topics``.

    Reads aiokafka's partition state as Faust's ``verify_event_path`` does (the time of
    the last fetch answer, set even when it brought no record). Call on the app's loop.
    Raises ``RuntimeError`` when the consumer is not running.
    """
    assignment = _assignment(app)
    if assignment is None:
        return None
    now_ms = time.time() * 1000  # aiokafka stamps wall-clock milliseconds
    ages: dict[tuple[str, int], float | None] = {}
    for tp in assignment.tps:
        if tp.topic not in topics:
            continue
        state = assignment.state_value(tp)
        stamp = None if state is None else state.timestamp
        ages[(tp.topic, tp.partition)] = None if stamp is None else (now_ms - stamp) / 1000
    return ages


def unapplied(app: faust.App, topics: Collection[str], applied: Collection[Any]) -> int:
    """Records waiting on the partitions of ``topics`` the consumer is assigned, but for
    ``applied`` (those the caller counts itself): on the broker past the consumer's
    position, as of its last fetch answer, and pulled but held for the one order. 0 while
    the consumer is not running or has no assignment.

    Reads aiokafka's partition state and the consumer thread's merger as
    :func:`fetch_ages` does (a read of what the consumer's thread writes). Call on the
    app's loop."""
    try:
        assignment = _assignment(app)
    except RuntimeError:
        return 0
    if assignment is None:
        return 0
    merger = getattr(app.consumer._thread, "_merger", None)  # type: ignore[attr-defined]
    total = 0
    try:
        for tp in list(assignment.tps):
            if tp.topic not in topics or tp in applied:
                continue
            state = assignment.state_value(tp)
            if state is not None and state.has_valid_position and state.highwater is not None:
                total += max(0, state.highwater - state.position)
            if merger is not None:
                total += merger.held(tp)
    except (RuntimeError, KeyError, AssertionError):  # (changed meanwhile: a rebalance)
        return 0
    return total


def _assignment(app: faust.App) -> Any:
    """aiokafka's assignment of the app's consumer (None while it has none: joining its
    group), read on the app's loop as Faust's ``verify_event_path`` reads it. Raises
    ``RuntimeError`` when the consumer is not running."""
    consumer: Any = app.consumer  # (the aiokafka driver's Consumer; typed as the ABC)
    try:
        aio = consumer._thread._ensure_consumer()
        return aio._fetcher._subscriptions.subscription.assignment
    except (AttributeError, RuntimeError, AssertionError) as exc:
        raise RuntimeError(f"the Kafka consumer is not running ({exc})") from None
