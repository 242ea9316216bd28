"""The Faust adapter: topics, tables and the input loop around :class:`sdo.domain.world.World`.

Theory of operation
-------------------
The consumer reads every input topic and hands each batch it releases, in event-time
order across their partitions (lowest timestamp first: :mod:`sdo.order`), to
:meth:`Runtime.take`, not to a Faust stream: Faust's per-message path costs some 170
microseconds of CPU a record, and nearly all records are AVL fixes. ``take`` applies the
batch in the one order (:func:`sdo.stream.ordering.merged`): each run of location records
through the batch lane (:mod:`sdo.stream.batch`: the evaluator's compiled fix lane, as far
as it takes them), every other record the general way (:meth:`Runtime.handle_record`),
which is glue only: admit the record (:mod:`sdo.admission`: the rule the console and the
evaluator apply too; :func:`sdo.events.decode` is where bytes become models), hand the
event to the World, keep the records that changed for the Faust tables, and send what the
World asked to publish, stamped with the World's clock. Bad input of any kind, and any
unexpected exception while applying one record, becomes a ``deadletter`` event with the
reason and the worker carries on. A commit covers the records applied (no Faust message
is made or acknowledged for input records: :mod:`sdo.stream.transport`), after a flush
has written what they changed.

Tables (changelogged in Kafka, restored by Faust when a worker starts):

* ``officers``: officer id → :meth:`sdo.domain.state.Officer.to_dict`
* ``incidents``: incident id → :meth:`sdo.domain.state.IncidentRecord.to_dict`
* ``availability``: ``nbhd:<id>`` / ``npu:<id>`` / ``cluster:<id>`` → counts of available
  officers (``total``, ``role:<role>``, ``skill:<skill>``)

The tables are the durable copy; the World is the in-memory index over them, rebuilt from
the tables once Faust has recovered them (``on_recover``), after which every incident
awaiting a decision gets a fresh recommendation.

Delivery is at-least-once (the embedded broker has no transactions): a redelivered event
is a duplicate to the World and changes nothing. Several workers share the input
partitions; each knows every officer through the officer mirror (:mod:`sdo.stream.mirror`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import faust
import orjson
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import current_event

from sdo.admission import Admission
from sdo.config import KafkaAuth, Settings, Topics
from sdo.domain.state import IncidentRecord, Officer
from sdo.domain.world import Effects, World
from sdo.errors import BadInput, Rejected
from sdo.events import (
    MAX_EVENT_BYTES,
    Alert,
    DeadLetter,
    Deployment,
    Recommendation,
    alert_key,
    encode,
)
from sdo.metrics import WorkerMetrics
from sdo.order import DEFAULT_IDLE_S
from sdo.stream.batch import BatchLane
from sdo.stream.durable import (
    WORKER,
    committed_flushes,
    committed_offsets,
    committed_value,
    entry_offsets,
    marker,
    read_changelog,
    tagged,
    trim,
    uncommitted,
)
from sdo.stream.mirror import OfficerMirror
from sdo.stream.ordering import merged
from sdo.stream.transport import fetch_ages, install_consumer, unapplied

__all__ = ["Runtime", "WorkerOptions", "build_app", "input_topics"]

log = logging.getLogger(__name__)

#: topic attribute of :class:`sdo.config.Topics` → the event type that belongs there
#: (its Kafka key must name its subject: sdo.admission.KEY_FIELDS).
_INPUTS: Mapping[str, str] = {
    "location": "officer.location",
    "status": "officer.status",
    "profile": "officer.profile",
    "incident": "incident",
    "deployment": "deployment",
}
#: Input types keyed by incident: their partition is the incident's.
_INCIDENT_TYPES: Final = frozenset({"incident", "deployment"})
#: What the World says of a deployment it holds (sdo.domain.waiting): no commit past it.
_WAITING: Final = frozenset({"waiting_for_incident", "waiting_for_officer"})


def input_topics(topics: Topics) -> list[str]:
    """The names of the worker's input topics (applied in one order: Runtime.take)."""
    return [getattr(topics, attr) for attr in _INPUTS]


#: Wall-clock seconds a deployment naming an officer of another worker's partitions waits
#: for them past the World's own wait (Runtime.refuse): that worker's next commits, or its
#: partitions handed over and restored.
OFFICER_WAIT_S: Final = 60.0
#: Commits an idle worker makes at most for the changes of its last batches (Runtime).
_IDLE_COMMITS: Final = 3
#: Readiness: the longest an input partition may go without a fetch answered (seconds).
FETCH_UNANSWERED_S: Final = 10.0
#: Readiness: the longest the worker may apply nothing while records wait (seconds).
STALLED_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    app_id: str = "sdo-worker"
    partitions: int = 4
    replication: int = 1
    session_timeout_s: float = 6.0
    data_dir: str | None = None
    web_port: int | None = None
    producer_linger_s: float = 0.005
    #: largest batch of records the producer sends to one partition at once (bytes;
    #: Faust's default is 16 KiB). A flush writes every officer who moved, and the
    #: producer adds a partition's next batch only once its last one is on its way: at 16
    #: KiB, 10,000 officer records took some 200 batches one after another, 176 ms of
    #: wall clock (bench/ingest.py); at 256 KiB, 56 ms. (Kafka's default limit on a
    #: batch, message.max.bytes, is 1 MiB.)
    producer_batch_bytes: int = 262_144
    #: how often offsets are committed, and so officer records and counts written (the
    #: table trails the input by one or two commits; Faust's default is 2.8 s)
    commit_interval_s: float = 1.0
    #: an idle worker (its input drained) commits at once, but not within this many
    #: seconds of its last flush: the tables are current a moment after a burst ends
    #: (measured: committing up to 20 times a second under a steady feed of 5,000 fixes/s
    #: cost neither the worker nor the broker CPU, bench/latency.py)
    idle_commit_s: float = 0.05
    #: longest an input partition with nothing fetched holds back the others (sdo.order)
    order_idle_s: float = DEFAULT_IDLE_S
    #: AVL fixes through the batch lane (sdo.stream.batch); False: all the general way
    batch_lane: bool = True


@dataclass(slots=True)
class Runtime:
    """The worker's state: the World, the tables, the output topics, the counters."""

    world: World
    app: faust.App
    officers: Any
    incidents: Any
    availability: Any
    outputs: Mapping[str, Any]
    processed: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    recovered: bool = False
    partitions: int = 4
    metrics: WorkerMetrics | None = None
    #: officers changed and not yet written to their table (see flush())
    dirty: dict[str, Officer] = field(default_factory=dict)
    #: availability buckets changed since the last flush, with their latest counts
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the last input offset processed per partition
    positions: dict[Any, int] = field(default_factory=dict)
    #: deployments waiting for their incident (event id -> input partition, offset): the
    #: consumer commits no further than the first of a partition, so a restart reads
    #: them again (see hold())
    waiting: dict[str, tuple[Any, int]] = field(default_factory=dict)
    #: deployments the World refused after waiting for an officer of another worker's
    #: partitions, waiting on for them in wall-clock time (event id -> the deployment,
    #: why it was refused, monotonic deadline): see refuse()
    officer_waits: dict[str, tuple[Deployment, str, float]] = field(default_factory=dict)
    #: per input partition, the first offset not to commit past (set by flush())
    holds: dict[Any, int] = field(default_factory=dict)
    #: input partition of every incident this worker holds (for hand-over on rebalance)
    incident_partitions: dict[str, int] = field(default_factory=dict)
    #: called once the World has been rebuilt and the worker processes events
    on_ready: Callable[[], None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: the input topics (the readiness probe watches their fetches)
    input_topics: frozenset[str] = frozenset()
    #: monotonic time the World was first rebuilt (None: not yet)
    ready_at: float | None = None
    #: the admission rule (sdo.admission), with this process's clock
    admit: Admission = field(default_factory=Admission)
    #: event type -> its input topic (where a refused deployment is said to come from)
    topic_of: Mapping[str, str] = field(default_factory=dict)
    #: monotonic time of the last record handled (None: none yet; the readiness probe)
    handled_at: float | None = None
    #: records whose application raised an unexpected exception (dead-lettered)
    internal_errors: int = 0
    #: input records released out of certain order (an input partition unanswered)
    forced: int = 0
    #: why applying input last raised, and when (monotonic; None: it has not)
    crashed: tuple[str, float] | None = None
    #: this worker process, and the number of its last flush (sdo.stream.durable)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    flushes: int = 0
    #: flush markers by worker instance (a table; None: not kept, as in unit tests)
    markers: Any = None
    #: worker instances whose uncommitted values were rolled back -> their last committed
    #: flush: the officer mirror does not take their later values either
    rolled_back: dict[str, int] = field(default_factory=dict)
    #: flushes since the last known committed, and the offsets last committed
    _ring: list[list[Any]] = field(default_factory=list)
    _committed: dict[tuple[str, int], int] = field(default_factory=dict)
    _marked: int = 0
    #: the flush the commit under way took its offsets after (flush_for_commit)
    _commit_flush: int = 0
    #: how to reach Kafka at recovery (to read committed offsets and changelogs): the
    #: bootstrap servers, client security options, consumer group, changelog topics
    kafka: tuple[str, Mapping[str, Any], str, Mapping[str, str]] | None = None
    #: input topic -> the event type that belongs there
    topic_kinds: Mapping[str, str] = field(default_factory=dict)
    #: the location topic, whose runs of records go through the batch lane
    location_topic: str | None = None
    #: whether AVL fixes go through the batch lane (sdo.stream.batch), once recovered
    batch_lane: bool = True
    lane: BatchLane | None = None
    #: after a batch that leaves nothing waiting on the broker, commit if the last flush
    #: is this old (seconds; None: only at the commit interval): see take()
    idle_commit_s: float | None = None
    flushed_at: float = 0.0
    _idle_commit: asyncio.Future[Any] | None = None
    _idle_check: asyncio.TimerHandle | None = None
    #: monotonic time the last batch of input was applied (take)
    taken_at: float = 0.0
    #: input records waiting on the partitions not in :attr:`positions` (none of theirs
    #: applied yet), given those: read from the consumer (sdo.stream.transport.unapplied)
    unapplied: Callable[[Collection[Any]], int] | None = None
    #: officer records each flush took and send_written() has not written yet:
    #: (officer id -> record, worker instance, flush number)
    unbuilt: list[tuple[dict[str, Officer], str, int]] = field(default_factory=list)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: officer records sent and not yet known to be written (delivery futures)
    _sending: list[asyncio.Future[Any]] = field(default_factory=list)
    #: officer id -> (changelog partition, key as written): see _send
    _officer_keys: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    #: per event type, the count of :attr:`processed` the metrics have (see _report)
    _reported: dict[str, int] = field(default_factory=dict)
    #: held while a batch of input is applied (take()), and by whatever must not run in
    #: the middle of one: a commit (its flush and offsets), a hand-over of partitions
    applying: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def take(
        self, batch: Mapping[Any, list[Any]], order: list[tuple[Any, Any]] | None = None
    ) -> None:
        """Apply a batch of input records the consumer released (per partition, in offset
        order), in the one order of :mod:`sdo.order` (``order``: the batch in that order,
        as the release made it; None: merged here): each run of location records through
        the batch lane (:mod:`sdo.stream.batch`) as far as it takes them, every other
        record the general way (:meth:`handle_record`). Holds :attr:`applying`: a
        rebalance hands partitions over between batches, not within one.

        Raises only for what is not a record's fault (the broker refusing the outputs):
        that is noted for the readiness probe, and Faust's consumer stops on it; the
        records from the last committed offsets on are read again when it restarts.

        A batch begun is applied to its end, every output sent, even if the consumer is
        cancelled meanwhile (a worker stopping): the commit that follows, or a
        hand-over, waits for it. Cancelled in the middle of a record, the World would
        hold its effects without its outputs sent, and the commit would cover it."""
        applying = asyncio.ensure_future(self._take(batch, order))
        try:
            await asyncio.shield(applying)
        except asyncio.CancelledError:
            applying.add_done_callback(_log_failure)
            raise
        except Exception as exc:
            self.crashed = (f"{type(exc).__name__}: {exc}"[:300], time.monotonic())
            raise

    async def _take(
        self, batch: Mapping[Any, list[Any]], order: list[tuple[Any, Any]] | None
    ) -> None:
        async with self.applying:
            run = merged(batch) if order is None else order
            lane = self.lane
            location = self.location_topic
            routes = self.topic_kinds
            i, n = 0, len(run)
            j = 0  # the end of the run of location records at i (when i < j)
            if lane is not None:
                lane.stale = True  # (the officer mirror, a recovery: the World changed)
            while i < n:
                tp, record = run[i]
                if lane is not None and tp.topic == location:
                    if j <= i:
                        j = i + 1
                        while j < n and run[j][0].topic == location:
                            j += 1
                    taken = lane.take(run, i, j)
                    if taken:
                        self._took(run, i, i + taken)
                        i += taken
                        if i == j:
                            continue
                        tp, record = run[i]
                if lane is not None:
                    lane.sync(self.counts)
                await self.handle_record(
                    tp, record.offset, record.key, record.value, routes[tp.topic]
                )
                if lane is not None:
                    lane.stale = True
                i += 1
            if lane is not None:
                lane.sync(self.counts)
                lane.release()
            if self.metrics is not None:
                self._report(self.metrics, batch)
        self.taken_at = time.monotonic()
        if self.idle_commit_s is not None:
            self._commit_if_idle(self.idle_commit_s)

    def _commit_if_idle(self, after_s: float) -> None:
        """Commit now (in a task) if nothing more waits on the broker and the last flush
        is ``after_s`` old, or once it is: the tables are then current when the input
        pauses, not up to a commit interval later (under load, commits keep their
        interval)."""
        pending = self._idle_commit
        if pending is not None and not pending.done():
            return  # (it commits again if a batch came after its flush: _idle_commits)
        if self.backlog():
            return
        wait = self.flushed_at + after_s - time.monotonic()
        if wait > 0:
            # the last flush is recent: look again when it is old enough (the input may
            # have paused for good, and the tables would wait for the commit interval)
            if self._idle_check is None:
                self._idle_check = asyncio.get_running_loop().call_later(
                    wait, self._idle_again, after_s
                )
            return
        self._idle_commit = asyncio.ensure_future(self._idle_commits())

    async def _idle_commits(self) -> None:
        """Commit until a flush has followed the last batch applied. A commit already under
        way (the timer's) took its flush before the last batches, and Faust's ``commit``
        then only waits for it: the input paused, nothing would write those batches'
        changes until the next interval. (Each commit flushes, so this ends; bounded
        all the same.)"""
        for _ in range(_IDLE_COMMITS):
            if self.flushed_at >= self.taken_at or self.backlog():
                return
            await self.app.consumer.commit()

    def _idle_again(self, after_s: float) -> None:
        self._idle_check = None
        if not getattr(self.app.consumer, "should_stop", False):  # (not while stopping)
            self._commit_if_idle(after_s)

    def _took(self, run: list[tuple[Any, Any]], start: int, stop: int) -> None:
        """Records ``run[start:stop]`` were applied by the batch lane."""
        positions = self.positions
        for i in range(start, stop):
            tp, record = run[i]
            positions[tp] = record.offset
        self.handled_at = time.monotonic()
        self.processed["officer.location"] += stop - start

    def _report(self, metrics: WorkerMetrics, batch: Mapping[Any, Any]) -> None:
        """Bring the metrics up to date after a batch: the events applied by type, and
        the lag of each partition the batch came from. Once a batch, not once a record:
        the two calls cost some 3 us a record (timeit: the labelled counter 1.1, the lag
        gauge, summed over a topic's partitions, 2.1), a quarter of a profile's whole
        way (12 us)."""
        reported = self._reported
        for kind, n in self.processed.items():
            done = reported.get(kind, 0)
            if n != done:
                metrics.processed(kind, n - done)
                reported[kind] = n
        positions = self.positions
        highwater = self.app.consumer.highwater
        for tp in batch:
            offset = positions.get(tp)
            if offset is not None:
                metrics.position(tp.topic, tp.partition, offset, highwater(tp))

    async def handle_record(
        self,
        tp: Any,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        expect: str,
    ) -> None:
        """Admit one input record, apply it to the World, write and publish what changed.

        Never raises for one record: anything the admission rule refuses, or the World
        rejects, and any unexpected exception while applying it (``internal error: ...``,
        logged with its traceback and counted), goes to the dead-letter topic with the
        reason, and the next record is processed. (Publishing is not applying: a broker
        that takes nothing is the worker's problem, not the record's.)
        """
        started = time.monotonic()
        self.handled_at = started
        topic = tp[0]  # (a TP: topic, partition)
        self.positions[tp] = offset  # dead letters included (the lag metric: _report)
        metrics = self.metrics
        try:
            model = self.admit(raw, expect, key)
            effects = self.world.apply(model)
            if expect in _INCIDENT_TYPES:
                self.incident_partitions[model.incident_id] = tp[1]
        except BadInput as exc:
            if metrics is not None:
                metrics.dead(exc, topic)
            await self.dead_letter(topic, key, raw, exc.reason)
            return
        except Exception as exc:
            log.exception("internal error applying a record from %s", topic)
            self.internal_errors += 1
            if metrics is not None:
                metrics.internal_error(topic)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            await self.dead_letter(topic, key, raw, reason)
            return
        self.processed[expect] += 1  # (the metric: _report)
        if effects.ignored:
            self.ignored[effects.ignored] += 1
            if effects.ignored in _WAITING:
                self.waiting[model.event_id] = (tp, offset)
        await self.carry_out(effects)
        if metrics is not None:
            if effects.ignored:
                metrics.ignored(effects.ignored)
            if effects.outputs and effects.recommendations:
                metrics.latency(time.monotonic() - started)

    async def carry_out(self, effects: Effects) -> None:
        """What applying something to the World asks for: its changes kept for the next
        flush, its outputs published, the deployments it refused dead-lettered (or
        waiting on: :meth:`refuse`). For an input record, the officer mirror's merges and
        a deployment that waited alike."""
        self.write(effects)
        if effects.outputs:
            await self.publish(effects)
        if effects.refused:
            await self.refuse(effects)

    async def refuse(self, effects: Effects) -> None:
        """Dead-letter the deployments the World refused after they waited (for their
        incident, or an officer they name: sdo.domain.waiting), from the deployment topic.

        But one naming an officer of another worker's partitions waits on, in wall-clock
        time (:data:`OFFICER_WAIT_S`): with several workers, an officer is known to this
        one once their owner has applied their first event and written them to the
        table, and working through a backlog, event time runs far ahead of that.
        :meth:`retry_waiting` applies it once they are known, or dead-letters it then."""
        world = self.world
        for refused, reason in effects.refused:
            if (
                isinstance(refused, Deployment)
                and refused.event_id not in self.officer_waits
                and refused.incident_id in world.incidents  # (else it waited for that)
            ):
                others = [
                    oid
                    for oid in refused.officer_ids
                    if oid not in world.officers and not self.owns_officer(oid)
                ]
                if others:
                    deadline = time.monotonic() + OFFICER_WAIT_S
                    self.officer_waits[refused.event_id] = (refused, reason, deadline)
                    continue
            await self._dead_deployment(refused, reason)

    async def retry_waiting(self, now: float | None = None) -> None:
        """Apply the deployments that wait (:meth:`refuse`) for officers known now, and
        dead-letter those that waited :data:`OFFICER_WAIT_S` too."""
        if not self.officer_waits:
            return
        now = time.monotonic() if now is None else now
        world = self.world
        for event_id, (deployment, reason, deadline) in list(self.officer_waits.items()):
            if all(oid in world.officers for oid in deployment.officer_ids):
                del self.officer_waits[event_id]
                async with self.applying:
                    try:
                        effects = world.apply(deployment)
                    except Rejected as exc:
                        await self._dead_deployment(deployment, exc.reason)
                        continue
                    await self.carry_out(effects)
            elif now >= deadline:
                del self.officer_waits[event_id]
                why = f"{reason}; and {OFFICER_WAIT_S:.0f} s for the worker that owns them"
                await self._dead_deployment(deployment, why)

    async def _dead_deployment(self, refused: Any, reason: str) -> None:
        topic = self.topic_of.get(refused.type, "deployment")
        if self.metrics is not None:
            self.metrics.dead(Rejected(reason), topic)
        await self.dead_letter(topic, refused.incident_id.encode(), encode(refused), reason)

    def forced_out(self, n: int) -> None:
        """``n`` input records were released before every input partition could show it
        held nothing older (called on the consumer's thread; see sdo.order)."""
        self.forced += n
        if self.metrics is not None:
            self.metrics.order_forced(n)
        log.warning(
            "%d input record(s) applied before every input partition answered "
            "(ordering waited --order-idle)",
            n,
        )

    def write(self, effects: Effects) -> None:
        """Keep what an event changed for the next :meth:`flush` (latest per key): officer
        records and availability counts from the effects; incidents as the World marks
        them (``World.dirty_incidents``)."""
        for officer in effects.officers:
            self.dirty[officer.officer_id] = officer
        if effects.availability:
            self.counts.update(effects.availability)

    async def publish(self, effects: Effects) -> None:
        for out in effects.outputs:
            await self.send(out)

    async def send(self, out: Recommendation | Alert) -> None:
        """Publish an output, its record time its ``ts`` (the World's clock), keyed by
        what it is about: a recommendation by incident, an alert by its identity (kind
        and subject: a raise and its clear share a partition, so they stay in order)."""
        stamp = out.ts.timestamp()
        if isinstance(out, Recommendation):
            kind = "recommendation"
            await self.outputs[kind].send(
                key=out.incident_id.encode(), value=encode(out), timestamp=stamp
            )
        else:
            kind = "alert"
            await self.outputs[kind].send(
                key=alert_key(out).encode(), value=encode(out), timestamp=stamp
            )
        if self.metrics is not None:
            # (every output, whatever made it: an input record, the officer mirror's
            # merges, a deployment that waited, a restore)
            self.metrics.published(kind)

    async def dead_letter(self, topic: str, key: bytes | None, raw: Any, reason: str) -> None:
        """Publish a dead letter; never raises (one bad event must not stop the worker)."""
        try:
            # (a tombstone has no value: the dead letter's raw is empty)
            data = b"" if raw is None else raw if isinstance(raw, bytes) else str(raw).encode()
            truncated = len(data) > MAX_EVENT_BYTES
            data = data[:MAX_EVENT_BYTES]
            try:
                text, encoding = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                text, encoding = base64.b64encode(data).decode("ascii"), "base64"
            now = datetime.now(UTC)  # the time it was received: the adapter may read the clock
            letter = DeadLetter(
                event_id=f"dl:{topic}:{now.timestamp():.6f}:{self.dead.total()}",
                ts=now,
                source_topic=topic,
                error=reason[:2000],
                raw=text,
                raw_encoding=encoding,
                raw_truncated=truncated,
                received_at=now,
            )
            log.warning("dead letter from %s: %s", topic, reason[:200])
            await self.outputs["deadletter"].send(key=key, value=encode(letter))
        except Exception:
            log.exception("could not publish a dead letter from %s (%s)", topic, reason[:200])
            self.dead["unpublished"] += 1
            return
        self.dead[reason.split(":", 1)[0][:60]] += 1

    def flush(self) -> None:
        """Write every change since the last flush (just before each commit, and before a
        partition is handed over): availability counts, officer records, and each incident
        the World changed, in its durable form (record, current recommendation and race:
        :meth:`World.durable_incident`). The tables then hold the World as of the records
        applied so far, and the commit that follows covers exactly those records (but for
        deployments still waiting for their incident: :meth:`hold`). A worker killed at any
        moment restarts from a World consistent with the offsets it resumes from: what it
        reads again changes nothing, and it decides from there on as it would have."""
        self.flushes += 1
        self.flushed_at = time.monotonic()
        me, n = self.instance, self.flushes
        if self.lane is not None:
            for officer in self.lane.changes(self.counts):
                self.dirty[officer.officer_id] = officer
        if self.counts:
            availability = self.availability
            for key, counts in self.counts.items():
                availability[key] = counts
            self.counts = {}
        if self.dirty:
            if hasattr(self.officers, "changelog_topic"):
                # records are immutable: built and written by send_written(), input going on
                self.unbuilt.append((self.dirty, me, n))
            else:  # (a plain mapping, in unit tests)
                for oid, officer in self.dirty.items():
                    self.officers[oid] = tagged(officer.to_dict(), me, n)
            self.dirty = {}
        world = self.world
        changed = world.dirty_incidents
        if changed:
            incidents = self.incidents
            for iid in sorted(changed):
                value = world.durable_incident(iid)
                if value is not None:
                    incidents[iid] = tagged(value, me, n)
            changed.clear()
        if self.waiting:
            still = world.waiting_ids() | self.officer_waits.keys()
            self.waiting = {e: at for e, at in self.waiting.items() if e in still}
        holds: dict[Any, int] = {}
        for tp, offset in self.waiting.values():
            if offset < holds.get(tp, offset + 1):
                holds[tp] = offset
        self.holds = holds

    async def send_written(self, wait: bool = False) -> None:
        """Write the officer records the flushes so far took, as a Faust table does it
        (the value into its store, a record to its changelog keyed by the key as Faust's
        JSON writes it, in the partition Kafka's partitioner gives that key), with the
        value encoded by orjson and the records sent in a batch per partition: a flush
        takes every officer who moved, and Faust's path (a message object, its JSON
        encoder, a producer call per record) costs some 30 us a record. Built a chunk at
        a time, letting input go on between chunks; ``wait``: until the broker has them
        (:meth:`delivered`, which a commit awaits before its offsets)."""
        async with self._send_lock:  # (in flush order)
            while self.unbuilt:
                dirty, me, n = self.unbuilt.pop(0)
                await self._send(list(dirty.values()), me, n)
        if wait:
            await self.delivered()

    async def _send(self, officers: list[Officer], me: str, n: int) -> None:
        table = self.officers
        store = table.data
        every = list(range(self.partitions))
        keys = self._officer_keys
        faust_producer: Any = self.app.producer  # (the aiokafka driver's)
        producer = faust_producer._ensure_producer()  # aiokafka's, on this loop
        topic = table.changelog_topic.get_topic_name()
        sent = self._sending
        batches: dict[int, Any] = {}
        for k, officer in enumerate(officers, 1):
            oid = officer.officer_id
            value = store[oid] = tagged(officer.to_dict(), me, n)
            known = keys.get(oid)
            if known is None:
                raw = json.dumps(oid).encode()
                known = keys[oid] = (int(_PARTITIONER(raw, every, every)), raw)
            partition, key = known
            # into its partition's batch at once, and the encoded value freed: kept until
            # all were encoded, a flush of every officer grew the heap by megabytes each
            # time (measured at 40,000 officers: encoding took 15-26 us a record while
            # the heap grew, 1.3-4 us when it reused what was freed)
            encoded = orjson.dumps(value)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=encoded, timestamp=None) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=encoded, timestamp=None)
            if k % _BUILD_CHUNK == 0:
                await asyncio.sleep(0)
        for partition, batch in sorted(batches.items()):
            sent.append(await producer.send_batch(batch, topic, partition=partition))

    async def delivered(self) -> None:
        """Write what the flushes so far took (:meth:`send_written`) and wait until the
        broker has it; raises if a record could not be written (the commit that waits
        for them then commits nothing)."""
        if self.unbuilt:
            await self.send_written()
        sending, self._sending = self._sending, []
        if sending:
            await asyncio.gather(*sending)

    def mark_commit(self, offsets: Mapping[Any, int]) -> None:
        """The offsets about to be committed after the last flush (each input partition's
        next record to read, or a held deployment's): written to the flush markers
        (sdo.stream.durable) with the flush's values, before they are committed, so a new
        worker can tell whether the flush was. Called by the consumer, just before."""
        if self.markers is None:
            return
        covered = {
            (tp.topic, tp.partition): offset
            for tp, offset in offsets.items()
            if tp.topic in self.input_topics
        }
        # (partitions with nothing new to commit: as at the last commit)
        self._mark({**self._last_covered(), **covered}, self._commit_flush)

    def flush_for_commit(self) -> None:
        """:meth:`flush` before a commit takes its offsets: the flush :meth:`mark_commit`
        pairs them with (the commit waits for the broker after input may go on again,
        and a hand-over may flush meanwhile)."""
        self.flush()
        self._commit_flush = self.flushes

    def settle(self) -> None:
        """After a flush no commit followed (nothing new applied: the officer mirror's
        changes, a hand-over): its values are committed with the last commit's offsets."""
        if self.markers is None or self._marked == self.flushes:
            return
        self._mark(self._last_covered())

    def _last_covered(self) -> dict[tuple[str, int], int]:
        return entry_offsets(self._ring[-1]) if self._ring else {}

    def _mark(self, covered: Mapping[tuple[str, int], int], flush: int | None = None) -> None:
        """Write a flush's marker (default: the last flush's): the offsets its commit
        covers."""
        flush = self.flushes if flush is None else flush
        self.markers[self.instance] = marker(self._ring, flush, covered)
        self._marked = flush

    def committed(self, offsets: Mapping[Any, int]) -> None:
        """The consumer committed ``offsets``: flush markers before the last flush they
        cover are needed no more."""
        for tp, offset in offsets.items():
            self._committed[(tp.topic, tp.partition)] = offset
        trim(self._ring, self._committed)

    def next_offset(self, tp: Any) -> int | None:
        """The offset after the last record of input partition ``tp`` applied (None: none
        since it was assigned): what a commit may cover, but for :meth:`hold`."""
        position = self.positions.get(tp)
        return None if position is None else position + 1

    def hold(self, tp: Any) -> int | None:
        """The first offset of input partition ``tp`` not to commit past (a deployment
        waiting for its incident, as of the last :meth:`flush`, which runs just before
        every commit)."""
        return self.holds.get(tp)

    def problems(
        self, unanswered_s: float = FETCH_UNANSWERED_S, stalled_s: float = STALLED_S
    ) -> list[str]:
        """Why this worker is not ready to process (empty: it is): the readiness probe.

        Not ready while it stops, while its tables are being restored, while its group
        rebalances, while the broker has answered no fetch on one of its input partitions
        for ``unanswered_s`` (a broker down or unreachable: the consumer fetches every few
        tens of milliseconds while it runs), once applying its input raised (not a
        record's fault: see :meth:`take`) until it applies a record again, and while
        records wait on its input and it has applied none for ``stalled_s`` (stalled).
        Call on the worker's loop.
        """
        if self.app.should_stop:
            return ["stopping"]
        if not self.ready.is_set():
            try:
                joined = fetch_ages(self.app, self.input_topics) is not None
            except RuntimeError:  # (its consumer not started yet)
                joined = False
            if not joined:
                return ["joining its consumer group (then it restores its tables)"]
            return ["restoring its tables from their changelogs"]
        problems = []
        if self.app.rebalancing:
            problems.append("its consumer group is rebalancing")
        now = time.monotonic()
        if self.crashed is not None and (self.handled_at or 0.0) <= self.crashed[1]:
            problems.append(
                f"applying its input failed {now - self.crashed[1]:.0f} s ago "
                f"({self.crashed[0]}) and it has applied nothing since"
            )
        waiting = self.backlog()
        since = self.handled_at if self.handled_at is not None else self.ready_at or now
        if waiting and now - since > stalled_s:
            problems.append(
                f"stalled: {waiting} input record(s) wait and none was applied for "
                f"{now - since:.0f} s"
            )
        try:
            ages = fetch_ages(self.app, self.input_topics)
        except RuntimeError as exc:
            return [*problems, str(exc)]
        if ages is None:
            return [*problems, "it has no partitions assigned by its consumer group yet"]
        since_ready = 0.0 if self.ready_at is None else time.monotonic() - self.ready_at
        # (a partition not fetched yet since it was assigned: as long as the worker ran)
        waited = {f"{t}[{p}]": since_ready if a is None else a for (t, p), a in ages.items()}
        silent = sorted(name for name, s in waited.items() if s > unanswered_s)
        if silent:
            oldest = max(waited[name] for name in silent)
            problems.append(
                f"the broker has answered no fetch for {oldest:.0f} s on {len(silent)} input "
                f"partition(s) ({', '.join(silent[:4])}{', ...' if len(silent) > 4 else ''})"
            )
        return problems

    def backlog(self) -> int:
        """Input records on the broker past the last one the worker applied (as the
        consumer last heard the ends): over the partitions it has applied any of, and,
        with :attr:`unapplied`, the others it is assigned. (Without them, the first batch
        of a backlog that had only some partitions' records looked like the end of the
        input: an idle commit wrote every officer it touched, and the readiness probe
        could not call a worker that had applied nothing stalled.)"""
        consumer = self.app.consumer
        positions = self.positions
        total = 0
        for tp, offset in positions.items():
            high = consumer.highwater(tp)
            if high is not None and high > offset + 1:
                total += high - offset - 1
        if self.unapplied is not None:
            total += self.unapplied(positions)
        return total

    def revoke(self, partitions: set[int]) -> None:
        """Input partitions were taken away: forget the incidents they carried."""
        gone = [iid for iid, p in self.incident_partitions.items() if p in partitions]
        self.world.forget_incidents(gone)
        for iid in gone:
            del self.incident_partitions[iid]
        if self.officer_waits:
            left = set(gone)
            self.officer_waits = {
                e: w for e, w in self.officer_waits.items() if w[0].incident_id not in left
            }
        if gone:
            log.info("handed over %d incidents of partitions %s", len(gone), sorted(partitions))

    async def recover(self) -> None:
        """Rebuild the World from the recovered tables (rolled back first to the
        committed offsets: :meth:`roll_back`), then recommend what awaits."""
        mine = self.assigned()
        await self.roll_back(mine)
        for value in list(self.officers.values()):
            self.world.restore_officer(Officer.from_dict(value))
        latest = self.world.now
        for value in list(self.incidents.values()):
            record = IncidentRecord.from_dict(value)
            if _partition_of(record.incident_id, self.partitions) not in mine:
                # (the in-memory store keeps what a revoked partition's changelog held:
                # another worker decides those incidents now)
                continue
            rec, race = value.get("rec"), value.get("race")
            self.world.restore_incident(
                record,
                None if rec is None else Recommendation.model_validate(rec),
                None if race is None else Recommendation.model_validate(race),
            )
            self.incident_partitions.setdefault(
                record.incident_id, _partition_of(record.incident_id, self.partitions)
            )
            latest = max(latest, record.ts)
        for officer in self.world.officers.values():
            for ts in (officer.fix_ts, officer.status_ts, officer.profile_ts):
                if ts is not None and ts > latest:
                    latest = ts
        # an officer of a partition given to this worker now is watched by it from here
        self.world.arm_stale_timers()
        effects = self.world.resume(latest)
        if self.batch_lane:
            # a new copy of the World as rebuilt (sdo.stream.batch); its counts go on
            old, self.lane = self.lane, BatchLane(self.world, self.admit)
            if old is not None:
                self.lane.applied, self.lane.refused = old.applied, old.refused
        self.recovered = True
        log.info(
            "restored %d officers, %d incidents, event time %s; %d recommendations issued",
            len(self.world.officers),
            len(self.world.incidents),
            self.world.now.isoformat(),
            len(effects.recommendations),
        )
        await self.publish(effects)
        if self.ready_at is None:
            self.ready_at = time.monotonic()
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready()
            self.on_ready = None

    def owns_officer(self, officer_id: str) -> bool:
        """Whether this worker is assigned the officer's partitions (their events and
        their record in the officers table)."""
        return _partition_of(officer_id, self.partitions) in self.assigned()

    def assigned(self) -> set[int]:
        """The input partitions this worker is assigned now (those of its tables too)."""
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in self.input_topics
        }

    async def roll_back(self, mine: set[int]) -> None:
        """Make the tables the World as of the committed offsets (sdo.stream.durable):
        each officer and incident takes the latest value a committed flush wrote, read
        from its changelog (what a flush of another worker process wrote and did not
        commit is rolled back; what the table recovery missed is caught up)."""
        if self.kafka is None or self.markers is None:
            return
        bootstrap, security, group, changelogs = self.kafka
        tps = [(t, p) for t in sorted(self.input_topics) for p in range(self.partitions)]
        committed = await committed_offsets(bootstrap, security, group, tps)
        markers = {
            key: versions[-1]
            for key, versions in (
                await read_changelog(bootstrap, security, changelogs["flushes"])
            ).items()
            if versions and versions[-1] is not None
        }
        flushes = committed_flushes(markers, committed)
        me = self.instance
        # only the partitions this worker is assigned (``mine``): the others' keys are not
        # its to write (their owner rolls them back), nor its incidents to restore
        for name, table in (("officers", self.officers), ("incidents", self.incidents)):
            history = await read_changelog(bootstrap, security, changelogs[name], mine)
            rolled = caught = 0
            for key, versions in history.items():
                value, skipped = committed_value(versions, flushes, me)
                if skipped:
                    rolled += 1
                    for later in versions:
                        if later is not None and uncommitted(later, flushes, me):
                            instance = str(later.get(WORKER))
                            self.rolled_back[instance] = flushes.get(instance, -1)
                held = table.get(key)
                if held == value:
                    continue
                caught += not skipped
                if value is None:
                    if held is not None:
                        del table[key]
                else:
                    table[key] = value
            if rolled:
                log.warning(
                    "rolled back %d %s record(s) a flush wrote and its commit did not cover",
                    rolled,
                    name,
                )
            if caught:
                log.info("caught up %d %s record(s) the table recovery had not read", caught, name)


def _log_failure(task: asyncio.Future[Any]) -> None:
    """A batch the consumer stopped waiting for failed (Runtime.take): say so."""
    if not task.cancelled() and task.exception() is not None:
        log.error("applying a batch of input failed", exc_info=task.exception())


_PARTITIONER = DefaultPartitioner()
#: Officer records built between two turns of the loop (send_written).
_BUILD_CHUNK: Final = 512


def _partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key."""
    every = list(range(partitions))
    return int(_PARTITIONER(key.encode(), every, every))


def faust_credentials(auth: KafkaAuth) -> Any:
    """Faust's form of the Kafka security settings (None: plaintext)."""
    if auth.sasl:
        return faust.SASLCredentials(
            username=auth.user,
            password=auth.password,
            ssl_context=auth.ssl_context(),
            mechanism=auth.mechanism,
        )
    if auth.tls:
        return faust.SSLCredentials(auth.ssl_context())
    return None


def build_app(
    settings: Settings, world: World, options: WorkerOptions
) -> tuple[faust.App, Runtime]:
    """A Faust app wired to ``world``; run it with ``faust.Worker``."""
    app = faust.App(
        options.app_id,
        # Faust reads some 80 environment variables of its own (BROKER_URL, WEB_PORT, ...),
        # and they would win over sdo's flags; Kubernetes sets WEB_PORT=tcp://... in every
        # pod beside a Service called "web". Settings come from sdo's flags and SDO_* only.
        env={},
        broker=settings.broker,
        broker_credentials=faust_credentials(settings.kafka),
        datadir=options.data_dir,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=options.partitions,
        topic_replication_factor=options.replication,
        broker_session_timeout=options.session_timeout_s,
        broker_heartbeat_interval=max(options.session_timeout_s / 6, 0.3),
        broker_rebalance_timeout=max(options.session_timeout_s * 2, 10.0),
        consumer_auto_offset_reset="earliest",
        producer_linger=options.producer_linger_s,
        producer_max_batch_size=options.producer_batch_bytes,
        broker_commit_interval=options.commit_interval_s,
        table_standby_replicas=0,
        web_enabled=options.web_port is not None,
        web_port=options.web_port or 6066,
        web_bind="127.0.0.1",
    )
    topics = settings.topics

    def table(name: str, *, by_key: bool) -> Any:
        # by_key=False: the changelog partition is that of the event being processed, so a
        # worker recovers exactly the records of the input partitions it is assigned
        # (incidents: co-partitioned with the incident and deployment topics). by_key=True:
        # partitioned by the record's own key, writable outside an event (availability is
        # derived state, also written when the officer mirror merges a record).
        return app.Table(
            name,
            default=None,
            partitions=options.partitions,
            key_type=str,
            use_partitioner=by_key,
        )

    world.dirty_incidents = set()  # (written by Runtime.flush at each commit)
    runtime = Runtime(
        world=world,
        app=app,
        partitions=options.partitions,
        # Officer records are written by flush() at commit time, outside any event: keyed
        # by officer. Restoring merges records per aspect, newest wins, and every worker
        # reads all partitions of this changelog anyway (sdo.stream.mirror).
        officers=table("officers", by_key=True),
        incidents=table("incidents", by_key=False),
        availability=table("availability", by_key=True),
        # flush markers by worker process: sdo.stream.durable
        markers=table("flushes", by_key=True),
        input_topics=frozenset(input_topics(topics)),
        topic_kinds={getattr(topics, attr): kind for attr, kind in _INPUTS.items()},
        location_topic=topics.location,
        batch_lane=options.batch_lane,
        idle_commit_s=options.idle_commit_s,
        admit=Admission(max_ahead_s=settings.max_ahead_s, areas=world.areas, keyed=True),
        topic_of={kind: getattr(topics, attr) for attr, kind in _INPUTS.items()},
        outputs={
            "recommendation": app.topic(topics.recommendation, internal=False),
            "alert": app.topic(topics.alert, internal=False),
            "deadletter": app.topic(topics.deadletter, internal=False),
        },
    )
    # stale positions: this worker watches the officers of its partitions (World.owns)
    world.owns = runtime.owns_officer

    # An incident's record goes to the changelog partition of its own input partition,
    # whatever event changed it (a recommendation's number may be written while an AVL
    # fix is applied): a worker assigned that partition restores it on a rebalance.
    by_event = runtime.incidents.partition_for_key

    def incident_partition(key: str) -> int | None:
        partition = runtime.incident_partitions.get(key)
        if partition is None:
            # written at a commit, outside any event: where Kafka's partitioner puts it
            return (
                _partition_of(key, options.partitions) if current_event() is None else by_event(key)
            )
        return partition

    runtime.incidents.partition_for_key = incident_partition

    # The consumer subscribes to every input topic and hands each released batch to
    # Runtime.take (not to a Faust stream: sdo.stream.batch), which applies it in the one
    # order (sdo.stream.ordering), so an incident is never applied before the fixes that
    # came before it.
    app.topics.add(app.topic(*runtime.topic_kinds, key_type=bytes, value_type=bytes))

    incident_topic = topics.incident

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _hand_over(sender: object, revoked: set[Any], **_: object) -> None:
        async with runtime.applying:  # (after the batch being applied, if any)
            for tp in revoked:
                runtime.positions.pop(tp, None)
            runtime.flush()  # the next owner restores what this worker applied
            await runtime.send_written(wait=True)
            runtime.settle()
            runtime.revoke({tp.partition for tp in revoked if tp.topic == incident_topic})

    @app.task  # type: ignore[untyped-decorator]
    async def officer_mirror() -> None:
        # the global officer view (sdo.stream.mirror), once this worker's tables are back
        await runtime.ready.wait()
        topic = runtime.officers.changelog_topic.get_topic_name()
        security = settings.kafka.client_options()
        await OfficerMirror(runtime, settings.bootstrap, topic, security).run()

    install_consumer(
        app,
        before_commit=runtime.flush_for_commit,
        delivered=runtime.delivered,
        hold=runtime.hold,
        ordered=runtime.input_topics,
        take=runtime.take,
        position=runtime.next_offset,
        exclusive=runtime.applying,
        idle_s=options.order_idle_s,
        on_forced=runtime.forced_out,
        on_commit=runtime.mark_commit,
        on_committed=runtime.committed,
        after_commit=runtime.settle,
        # nothing of the input before a rebalance has ended: the World rebuilt from the
        # tables, and the input partitions sought to their committed offsets
        gate=lambda: not app.rebalancing,
    )
    runtime.unapplied = lambda applied: unapplied(app, runtime.input_topics, applied)
    runtime.kafka = (
        settings.bootstrap,
        settings.kafka.client_options(),
        options.app_id,
        {
            "officers": runtime.officers.changelog_topic.get_topic_name(),
            "incidents": runtime.incidents.changelog_topic.get_topic_name(),
            "flushes": runtime.markers.changelog_topic.get_topic_name(),
        },
    )

    # incidents is the last table recovered from our point of view: every table has its
    # data once recovery completes, so one callback rebuilds the whole World.
    runtime.incidents.on_recover(runtime.recover)
    return app, runtime
