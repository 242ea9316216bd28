"""The Faust adapter: topics, tables and agents around :class:`sdo.domain.world.World`.

Theory of operation
-------------------
Each input topic has one agent. An agent is glue only: take the raw bytes, decode them
(:func:`sdo.events.decode`, the one place bytes become models), hand the event to the
World, write the records that changed into the Faust tables, and send what the World
asked to publish. Bad input of any kind becomes a ``deadletter`` event with the reason and
the agent carries on.

Tables (changelogged in Kafka, restored by Faust when a worker starts):

* ``officers``: officer id → :meth:`sdo.domain.state.Officer.to_dict`
* ``incidents``: incident id → :meth:`sdo.domain.state.IncidentRecord.to_dict`
* ``availability``: ``nbhd:<id>`` / ``npu:<id>`` / ``cluster:<id>`` → counts of available
  officers (``total``, ``role:<role>``, ``skill:<skill>``)

The tables are the durable copy; the World is the in-memory index over them, rebuilt from
the tables once Faust has recovered them (``on_recover``), after which every incident
awaiting a decision gets a fresh recommendation.

Delivery is at-least-once (the embedded broker has no transactions): a redelivered event
is a duplicate to the World and changes nothing. One worker holds every partition; a
multi-worker deployment needs a global officer view (see README, "Run on Kafka").
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.types import EventT, StreamT

from sdo.config import KafkaAuth, Settings, Topics
from sdo.domain.state import IncidentRecord, Officer
from sdo.domain.world import Effects, World
from sdo.errors import BadInput
from sdo.events import MAX_EVENT_BYTES, Alert, DeadLetter, Recommendation, decode, encode
from sdo.metrics import WorkerMetrics
from sdo.stream.mirror import OfficerMirror
from sdo.stream.ordering import EventTimeScheduler
from sdo.stream.transport import fetch_ages, install_consumer

__all__ = ["Runtime", "WorkerOptions", "build_app", "input_topics"]

log = logging.getLogger(__name__)

#: topic attribute of :class:`sdo.config.Topics` → the event type that belongs there,
#: and the field that must equal the Kafka key.
_INPUTS: Mapping[str, tuple[str, str]] = {
    "location": ("officer.location", "officer_id"),
    "status": ("officer.status", "officer_id"),
    "profile": ("officer.profile", "officer_id"),
    "incident": ("incident", "incident_id"),
    "deployment": ("deployment", "incident_id"),
}


def input_topics(topics: Topics) -> list[str]:
    """The names of the worker's input topics (one agent reads them all)."""
    return [getattr(topics, attr) for attr in _INPUTS]


#: Readiness: the longest an input partition may go without a fetch answered (seconds).
FETCH_UNANSWERED_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    app_id: str = "sdo-worker"
    partitions: int = 4
    replication: int = 1
    session_timeout_s: float = 6.0
    data_dir: str | None = None
    web_port: int | None = None
    producer_linger_s: float = 0.005
    #: how often offsets are committed, and so officer records and counts written (the
    #: table trails the input by one or two commits; Faust's default is 2.8 s)
    commit_interval_s: float = 1.0


@dataclass(slots=True)
class Runtime:
    """What the agents share: the World, the tables, the output topics, the counters."""

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
    #: per dirty officer, the first input offset per partition whose change is unwritten:
    #: the consumer commits no further than that (see hold())
    pending: dict[str, dict[Any, int]] = field(default_factory=dict)
    #: availability buckets changed since the last flush, with their latest counts
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the last record written per officer, and when (monotonic seconds)
    written: dict[str, tuple[Officer, float]] = field(default_factory=dict)
    #: the last input offset processed per partition (to tell whether we are caught up)
    positions: dict[Any, int] = field(default_factory=dict)
    #: ``positions`` as of the last flush (unchanged since: the input is quiet)
    flushed_positions: dict[Any, int] = field(default_factory=dict)
    #: event time a moving officer's table record may lag their last fix while busy
    checkpoint_s: float = 15.0
    #: and wall time: an officer whose fixes stop (a broken AVL unit) while the worker
    #: stays busy is still written, so no commit is held back for longer than this
    wall_checkpoint_s: float = 60.0
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

    async def handle(self, event: EventT[Any], topic: str, expect: str, key_field: str) -> None:
        started = time.monotonic()
        raw = event.value
        key = event.key
        message = event.message
        self.positions[message.tp] = message.offset  # dead letters included
        metrics = self.metrics
        if metrics is not None:
            metrics.position(
                message.topic,
                message.partition,
                message.offset,
                self.app.consumer.highwater(message.tp),
            )
        try:
            model = decode(raw, expect=expect)
            _check_time(model, event.message.timestamp)
            if key is not None and key != b"" and _text(key) != getattr(model, key_field):
                raise BadInput(
                    f"Kafka key {_text(key)!r} does not match {key_field} "
                    f"{getattr(model, key_field)!r}"
                )
            effects = self.world.apply(model)
            if key_field == "incident_id":
                self.incident_partitions[model.incident_id] = event.message.partition
        except BadInput as exc:
            if metrics is not None:
                metrics.dead(exc, topic)
            await self.dead_letter(topic, key, raw, exc.reason)
            return
        self.processed[expect] += 1
        if effects.ignored:
            self.ignored[effects.ignored] += 1
        self.write(effects, message.tp, message.offset)
        if effects.outputs:
            await self.publish(effects)
        if metrics is not None:
            metrics.processed(expect)
            if effects.ignored:
                metrics.ignored(effects.ignored)
            recommendations = len(effects.recommendations)
            if recommendations:
                metrics.published("recommendation", recommendations)
                metrics.latency(time.monotonic() - started)
            if len(effects.outputs) > recommendations:
                metrics.published("alert", len(effects.outputs) - recommendations)

    def write(self, effects: Effects, tp: Any = None, offset: int = 0) -> None:
        """Write what an event changed; ``tp``/``offset``: the input record it came from.

        Officer records (one per AVL fix, the bulk of the traffic) and availability
        counts (three buckets per status change) are coalesced and written by
        :meth:`flush`; incidents go at once.
        """
        for officer in effects.officers:
            oid = officer.officer_id
            self.dirty[oid] = officer
            if tp is not None:
                self.pending.setdefault(oid, {}).setdefault(tp, offset)
        for record in effects.incidents:
            self.incidents[record.incident_id] = record.to_dict()
        if effects.availability:
            self.counts.update(effects.availability)

    async def publish(self, effects: Effects) -> None:
        for out in effects.outputs:
            await self.send(out)

    async def send(self, out: Recommendation | Alert) -> None:
        if isinstance(out, Recommendation):
            await self.outputs["recommendation"].send(
                key=out.incident_id.encode(), value=encode(out)
            )
        else:
            key = (out.area_id or out.subject).encode()
            await self.outputs["alert"].send(key=key, value=encode(out))

    async def dead_letter(self, topic: str, key: bytes | None, raw: Any, reason: str) -> None:
        """Publish a dead letter; never raises (one bad event must not stop the agent)."""
        try:
            data = raw if isinstance(raw, bytes) else str(raw).encode()
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

    def flush(self, *, everything: bool = False) -> None:
        """Write changed availability counts and officer records (just before each commit).

        Written: every record, when the input is quiet (caught up, and nothing processed
        since the last flush) or ``everything``; otherwise each record whose change is
        more than movement within the same neighbourhood, and each moving officer whose
        fix is ``checkpoint_s`` of event time newer than the one last written. A busy
        worker thus writes a moving officer for at most every ``checkpoint_s`` of their
        feed, however fast or slow it works through it (a worker behind by an hour writes
        as little per fix as one keeping up). The consumer commits no offset past an
        unwritten change (:meth:`hold`), so a crash re-reads at most ``checkpoint_s`` of
        each officer's fixes: nothing is lost. A deferred record is written anyway once
        ``wall_checkpoint_s`` has passed since that officer's last write (their fixes may
        have stopped), which bounds how long a commit is held back.
        """
        if self.counts:
            availability = self.availability
            for key, counts in self.counts.items():
                availability[key] = counts
            self.counts = {}
        # Quiet: no record processed since the last flush. A worker that keeps up with a
        # steady feed is "caught up" at almost every commit, and writing every moving
        # officer then would cost a table write per fix; once quiet, all are written.
        quiet = self.positions == self.flushed_positions
        self.flushed_positions = dict(self.positions)
        if not self.dirty:
            return
        if not everything and quiet and self._caught_up():
            everything = True
        now = time.monotonic()
        wall = self.wall_checkpoint_s
        keep: dict[str, Officer] = {}
        officers, written, pending = self.officers, self.written, self.pending
        checkpoint = self.checkpoint_s
        for oid, officer in self.dirty.items():
            last = written.get(oid)
            if (
                not everything
                and last is not None
                and _moved_only(last[0], officer)
                and _fix_age_s(last[0], officer) < checkpoint
                and now - last[1] < wall
            ):
                keep[oid] = officer
                continue
            officers[oid] = officer.to_dict()
            written[oid] = (officer, now)
            pending.pop(oid, None)
        self.dirty = keep
        holds: dict[Any, int] = {}
        for offsets in pending.values():
            for tp, offset in offsets.items():
                if offset < holds.get(tp, offset + 1):
                    holds[tp] = offset
        self.holds = holds

    def hold(self, tp: Any) -> int | None:
        """The first offset of input partition ``tp`` whose change is not written yet
        (as of the last :meth:`flush`, which runs just before every commit)."""
        return self.holds.get(tp) if self.pending else None

    def _caught_up(self) -> bool:
        consumer = self.app.consumer
        for tp, offset in self.positions.items():
            high = consumer.highwater(tp)
            if high is None or offset + 1 < high:
                return False
        return True

    def problems(self, unanswered_s: float = FETCH_UNANSWERED_S) -> list[str]:
        """Why this worker is not ready to process (empty: it is): the readiness probe.

        Not ready while it stops, while its tables are being restored, while its group
        rebalances, and while the broker has answered no fetch on one of its input
        partitions for ``unanswered_s`` (a broker down or unreachable: the consumer
        fetches every few tens of milliseconds while it runs). Call on the worker's loop.
        """
        if self.app.should_stop:
            return ["stopping"]
        if not self.ready.is_set():
            return ["restoring its tables from their changelogs"]
        problems = []
        if self.app.rebalancing:
            problems.append("its consumer group is rebalancing")
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

    def revoke(self, partitions: set[int]) -> None:
        """Input partitions were taken away: forget the incidents they carried."""
        gone = [iid for iid, p in self.incident_partitions.items() if p in partitions]
        self.world.forget_incidents(gone)
        for iid in gone:
            del self.incident_partitions[iid]
        if gone:
            log.info("handed over %d incidents of partitions %s", len(gone), sorted(partitions))

    async def recover(self) -> None:
        """Rebuild the World from the recovered tables, then recommend what awaits."""
        for value in list(self.officers.values()):
            self.world.restore_officer(Officer.from_dict(value))
        latest = self.world.now
        for value in list(self.incidents.values()):
            record = IncidentRecord.from_dict(value)
            self.world.restore_incident(record)
            self.incident_partitions.setdefault(
                record.incident_id, _partition_of(record.incident_id, self.partitions)
            )
            latest = max(latest, record.ts)
        for officer in self.world.officers.values():
            for ts in (officer.fix_ts, officer.status_ts, officer.profile_ts):
                if ts is not None and ts > latest:
                    latest = ts
        effects = self.world.resume(latest)
        self.recovered = True
        log.info(
            "restored %d officers, %d incidents; %d recommendations re-issued",
            len(self.world.officers),
            len(self.world.incidents),
            len(effects.recommendations),
        )
        await self.publish(effects)
        if self.ready_at is None:
            self.ready_at = time.monotonic()
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready()
            self.on_ready = None


#: An event may claim a time at most this far after the broker received it (clock skew).
FUTURE_TOLERANCE_S = 3600.0


def _check_time(model: Any, record_time_s: float | None) -> None:
    """Refuse an event from the future: later than its Kafka record time allows."""
    if not record_time_s:
        return
    ahead = model.ts.timestamp() - record_time_s
    if ahead > FUTURE_TOLERANCE_S:
        raise BadInput(
            f"ts {model.ts.isoformat()} is {ahead / 3600:.1f} h in the future of its Kafka "
            f"record time (at most {FUTURE_TOLERANCE_S / 3600:.0f} h of clock skew allowed)"
        )


_PARTITIONER = DefaultPartitioner()


def _moved_only(before: Officer, after: Officer) -> bool:
    """Whether ``after`` differs from ``before`` only by a fix in the same neighbourhood."""
    return (
        before.status_event == after.status_event
        and before.profile_event == after.profile_event
        and before.neighbourhood == after.neighbourhood
        and before.cluster == after.cluster
    )


def _fix_age_s(before: Officer, after: Officer) -> float:
    """Event time from ``before``'s fix to ``after``'s (infinite if either has none)."""
    if before.fix_ts is None or after.fix_ts is None:
        return math.inf
    return (after.fix_ts - before.fix_ts).total_seconds()


def _partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives a key."""
    every = list(range(partitions))
    return int(_PARTITIONER(key.encode(), every, every))


def _text(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)


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
        broker_commit_interval=options.commit_interval_s,
        table_standby_replicas=0,
        web_enabled=options.web_port is not None,
        web_port=options.web_port or 6066,
        web_bind="127.0.0.1",
        ConsumerScheduler=EventTimeScheduler,
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
        input_topics=frozenset(input_topics(topics)),
        outputs={
            "recommendation": app.topic(topics.recommendation, internal=False),
            "alert": app.topic(topics.alert, internal=False),
            "deadletter": app.topic(topics.deadletter, internal=False),
        },
    )

    # One agent reads every input topic: the World applies events one at a time, and the
    # scheduler (sdo.stream.ordering) hands each fetched batch over in event-time order,
    # so an incident is never applied before the fixes that came before it.
    routes = {getattr(topics, attr): spec for attr, spec in _INPUTS.items()}
    source = app.topic(*routes, key_type=bytes, value_type=bytes)
    app.agent(source, name="sdo.inputs")(_agent(runtime, routes))

    incident_topic = topics.incident

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _hand_over(sender: object, revoked: set[Any], **_: object) -> None:
        for tp in revoked:
            runtime.positions.pop(tp, None)
        runtime.flush(everything=True)  # what the next owner re-reads need not be held
        runtime.revoke({tp.partition for tp in revoked if tp.topic == incident_topic})

    @app.task  # type: ignore[untyped-decorator]
    async def officer_mirror() -> None:
        # the global officer view (sdo.stream.mirror), once this worker's tables are back
        await runtime.ready.wait()
        topic = runtime.officers.changelog_topic.get_topic_name()
        security = settings.kafka.client_options()
        await OfficerMirror(runtime, settings.bootstrap, topic, security).run()

    install_consumer(app, before_commit=runtime.flush, hold=runtime.hold)

    # incidents is the last table recovered from our point of view: every table has its
    # data once recovery completes, so one callback rebuilds the whole World.
    runtime.incidents.on_recover(runtime.recover)
    return app, runtime


def _agent(runtime: Runtime, routes: Mapping[str, tuple[str, str]]) -> Any:
    async def inputs(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            topic = event.message.topic
            expect, key_field = routes[topic]
            await runtime.handle(event, topic, expect, key_field)

    return inputs
