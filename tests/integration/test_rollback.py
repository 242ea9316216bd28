"""Tables consistent with the committed offsets after a crash (sdo.stream.durable).

A worker killed between a flush's changelog records reaching the broker and the commit
that covers them leaves its tables partly ahead of the offsets the next worker resumes
from. That is forged here, deterministically: after a worker has committed an officer's
fix and stopped, a newer record of that officer is written to the officers changelog as a
flush of a worker process that never committed (no marker). The next worker rolls it back
to the committed record before it rebuilds its World, and says so.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import uuid4

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from sdo.broker import EmbeddedBroker
from sdo.events import OfficerLocation, OfficerProfile, OfficerStatus

from .conftest import WorkerProcess
from .kafka import Collector, produce

pytestmark = pytest.mark.integration

T0: Final = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
#: The worker applies and writes what it is sent within this.
APPLY_TIMEOUT_S: Final = 60.0
OFFICER: Final = "rb-1"


def _officer() -> list[object]:
    return [
        OfficerProfile(
            event_id="rb-p",
            ts=T0,
            officer_id=OFFICER,
            callsign="RB1",
            role="response",
            transport="car",
        ),
        OfficerStatus(event_id="rb-s", ts=T0, officer_id=OFFICER, status="available"),
        OfficerLocation(
            event_id="rb-l1", ts=T0 + timedelta(seconds=1), officer_id=OFFICER, lat=52.55, lon=-1.83
        ),
    ]


async def test_a_flush_without_its_commit_is_rolled_back_by_the_next_worker(
    broker: EmbeddedBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The forged, uncommitted record is replaced by the committed one in the table (a new
    changelog record) before the World is rebuilt; the worker's log names the rollback."""
    app_id = f"sdo-rollback-{uuid4().hex[:8]}"
    first = start_worker(app_id)
    officers_log = first.changelog("officers")
    await produce(broker.bootstrap, first.topics, _officer())  # type: ignore[arg-type]
    async with Collector(broker.bootstrap, officers_log) as c:
        record = await c.wait_for(
            lambda c: next(
                (
                    r
                    for r in reversed(c.records)
                    if r.value and orjson.loads(r.value).get("fix_event") == "rb-l1"
                ),
                None,
            ),
            what="the officer's fix in the officers table",
            limit_s=APPLY_TIMEOUT_S,
        )
    committed = orjson.loads(record.value)
    assert committed["_w"] and committed["_f"] >= 1, committed
    assert first.stop(signal.SIGTERM) == 0  # a clean stop commits what it applied

    forged = {**committed, "lat": 52.6, "fix_event": "forged", "_w": "gone", "_f": 1}
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            officers_log, key=record.key, value=orjson.dumps(forged), partition=record.partition
        )
    finally:
        await producer.stop()

    second = start_worker(app_id)
    assert any("rolled back 1 officers record(s)" in line for line in second.output), "".join(
        second.output[-30:]
    )
    async with Collector(broker.bootstrap, officers_log) as c:
        await c.wait_for(
            lambda c: (
                (latest := [r for r in c.records if r.key == record.key])
                and orjson.loads(latest[-1].value or b"{}").get("fix_event") == "rb-l1"
            ),
            what="the committed record back as the officer's latest",
            limit_s=APPLY_TIMEOUT_S,
        )
