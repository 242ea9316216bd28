"""The global officer view: every worker's World knows every officer.

Theory of operation
-------------------
Input partitions are spread over the workers, so each worker applies the profile, status
and AVL events of *its* officers only, and writes them to the ``officers`` table. To
recommend for its incidents, a worker needs the others' officers too. Kafka already holds
them: the table's changelog. :class:`OfficerMirror` reads that changelog, every partition,
from the beginning (no consumer group: every worker reads everything), and merges each
record into the World (:meth:`sdo.domain.world.World.merge_officer`): only aspects newer
than what the World has change anything, so this worker's own records come back as
no-ops, cheaply recognised by their event ids. What a merge changes is reacted to as if it
were local (re-recommendation of this worker's incidents, availability, alerts).

Another worker writes one of this worker's officers too, when a deployment of one of its
incidents sends them; it writes them from its view, as of this worker's last commit, so
the record may carry an older fix (or status, or profile) than this World holds. The
table's latest record of that officer would then stay stale until their next event (for
good, if none comes). So the officer's owner, the worker assigned their partition, writes
the merged record again at its next flush.

With one worker the mirror finds nothing new; with several it is the global table of
ARCHITECTURE.md, built from Kafka rather than a home-made protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from sdo.broker import start_client
from sdo.domain.state import Officer
from sdo.stream.durable import FLUSH, WORKER
from sdo.stream.transport import FETCH_WAIT_MS

if TYPE_CHECKING:
    from sdo.stream.app import Runtime

__all__ = ["OfficerMirror"]

log = logging.getLogger(__name__)

#: How long one fetch may wait for new records, ms.
_POLL_MS: Final = 200
#: Bound of one attempt to connect the mirror's consumer, and the pause before the next.
_START_TIMEOUT_S: Final = 30.0
_RETRY_S: Final = 2.0
_ASPECT_IDS: Final = ("fix_event", "status_event", "profile_event")
_SEEN_IDS: Final = ("fix_seen", "status_seen", "profile_seen")


class OfficerMirror:
    """Reads the officers changelog and merges other workers' records into the World."""

    def __init__(
        self,
        runtime: Runtime,
        bootstrap: str,
        topic: str,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.bootstrap = bootstrap
        self.topic = topic
        #: the consumer's security options (:meth:`sdo.config.KafkaAuth.client_options`)
        self.security = dict(security or {})
        self.merged = 0
        self.skipped = 0
        #: records of this worker's officers written again, merged (see take)
        self.rewritten = 0
        #: how this worker process stamps its own records (orjson's form: Runtime.flush)
        self._mine = f'"{WORKER}":"{runtime.instance}"'.encode()

    async def run(self) -> None:
        consumer = await self._start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while True:
                batch = await consumer.getmany(timeout_ms=_POLL_MS)
                for records in batch.values():
                    for record in records:
                        if record.value is not None:
                            await self.take(record.value)
                # deployments waiting for another worker's officers: known now?
                await self.runtime.retry_waiting()
        finally:
            await consumer.stop()

    async def _start(self) -> AIOKafkaConsumer:
        """A started consumer; retried (with a warning) while the broker is unreachable."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                **self.security,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=FETCH_WAIT_MS,
                request_timeout_ms=int(_START_TIMEOUT_S * 1000),
            )
            try:
                await start_client(consumer.start, consumer.stop, timeout=_START_TIMEOUT_S)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("officer mirror: cannot reach Kafka (%s); retrying", exc)
                await asyncio.sleep(_RETRY_S)
                continue
            return consumer

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            await consumer.force_metadata_update()  # Faust creates the topic at start-up
            await asyncio.sleep(0.2)

    async def take(self, value: bytes) -> None:
        """Merge one changelog record (JSON of :meth:`Officer.to_dict`)."""
        runtime = self.runtime
        if self._mine in value:
            # written by this worker process, from this World: nothing in it is newer
            # than what the World has
            self.skipped += 1
            return
        data: dict[str, Any] = orjson.loads(value)
        gone = runtime.rolled_back.get(str(data.get(WORKER)))
        if gone is not None and int(data.get(FLUSH, -1)) > gone:
            # written by a worker that died before committing it, and rolled back at
            # recovery (sdo.stream.durable): not the truth, whatever its times say
            self.skipped += 1
            return
        oid = str(data.get("officer_id", ""))
        world = runtime.world
        current = world.officers.get(oid)
        if current is not None and _same(data, current):
            self.skipped += 1  # ours, or already merged
            return
        effects = world.merge_officer(Officer.from_dict(data))
        # Another worker wrote one of this worker's officers (a deployment of its incident
        # sent them) from its view, older in some aspect than this World: the table's
        # latest record of them is now stale, so the owner writes what it holds, merged.
        now = world.officers.get(oid)
        if now is not None and not _same(data, now) and runtime.owns_officer(oid):
            runtime.dirty[oid] = now
            self.rewritten += 1
        if effects.ignored:
            self.skipped += 1
            return
        self.merged += 1
        await runtime.carry_out(effects)


def _same(data: Mapping[str, Any], officer: Officer) -> bool:
    """Whether a record (JSON of :meth:`Officer.to_dict`) holds each aspect ``officer``
    holds: the same event of each, and the same recent events seen."""
    return all(data.get(name) == getattr(officer, name) for name in _ASPECT_IDS) and all(
        tuple(data.get(name, ())) == getattr(officer, name) for name in _SEEN_IDS
    )
