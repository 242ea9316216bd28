"""``sdo worker`` against the real embedded broker: state, availability, dead letters,
duplicates, out-of-order events, recommendations and re-recommendation.

Observed only through Kafka: the tables' changelog topics and the output topics.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from sdo.broker import EmbeddedBroker, ensure_topics, topic_specs
from sdo.config import Topics
from sdo.events import (
    Incident,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Thrive,
)

from .conftest import WorkerProcess
from .kafka import Collector, produce, produce_raw

pytestmark = pytest.mark.integration

T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
# Inside the pilot area (north NPU); B is ~1.5 km from the incident, A ~4 km.
INCIDENT_AT = (-1.8300, 52.5500)
NEAR = (-1.8300, 52.5640)
FAR = (-1.8300, 52.5860)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def officer(oid: str, pos: tuple[float, float], t: float = 0, **profile: Any) -> list[Any]:
    return [
        OfficerProfile(
            event_id=f"{oid}-p",
            ts=at(t),
            officer_id=oid,
            callsign=oid.upper(),
            role=profile.get("role", "response"),
            skills=profile.get("skills", ()),
            transport="car",
        ),
        OfficerStatus(event_id=f"{oid}-s", ts=at(t), officer_id=oid, status="available"),
        OfficerLocation(event_id=f"{oid}-l", ts=at(t), officer_id=oid, lon=pos[0], lat=pos[1]),
    ]


def emergency(iid: str, t: float) -> Incident:
    return Incident(
        event_id=f"{iid}-v1",
        ts=at(t),
        incident_id=iid,
        lon=INCIDENT_AT[0],
        lat=INCIDENT_AT[1],
        category="violence",
        state="open",
        thrive=Thrive(
            threat="high",
            harm="medium",
            risk="medium",
            vulnerability="low",
            investigation=True,
            engagement=False,
            prevention=False,
        ),
        ongoing=True,
        offender_present=True,
        persistent=False,
    )


def latest(collector: Collector, topic: str, key: str) -> dict[str, Any] | None:
    found = None
    for r in collector.records:
        if r.topic == topic and r.key == f'"{key}"'.encode():
            found = orjson.loads(r.value) if r.value is not None else None
    return found


async def test_officer_state_and_availability(
    broker: EmbeddedBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Profile, status and fix fold into one officer record with its derived place, and the
    availability buckets of that place count the officer by role and skill."""
    worker = start_worker()
    await produce(broker.bootstrap, worker.topics, officer("o1", NEAR, skills=("taser",)))
    async with Collector(
        broker.bootstrap, worker.changelog("officers"), worker.changelog("availability")
    ) as c:
        rec = await c.wait_for(
            lambda c: (
                (r := latest(c, worker.changelog("officers"), "o1"))
                and r.get("fix_event")
                and r.get("role")
                and r
            ),
            what="officer o1 with profile and fix",
        )
        assert rec["status"] == "available"
        assert rec["callsign"] == "O1"
        assert (rec["npu"], rec["cluster"]) == ("north", "north-1")
        nbhd = rec["neighbourhood"]
        counts = await c.wait_for(
            lambda c: latest(c, worker.changelog("availability"), f"nbhd:{nbhd}"),
            what="availability",
        )
        assert counts == {"total": 1, "role:response": 1, "skill:taser": 1}
        npu = latest(c, worker.changelog("availability"), "npu:north")
        assert npu is not None and npu["total"] == 1


async def test_invalid_event_is_dead_lettered_and_next_is_applied(
    broker: EmbeddedBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """A malformed event and an event with an out-of-range latitude each land in the
    dead-letter topic with a specific reason; the valid event after them is applied."""
    worker = start_worker()
    topics = worker.topics
    await produce_raw(broker.bootstrap, topics.location, b"o9", b"{not json")
    bad = OfficerLocation(event_id="x", ts=T0, officer_id="o9", lon=-1.8, lat=52.5).model_dump(
        mode="json"
    )
    bad["lat"] = 123.0
    await produce_raw(broker.bootstrap, topics.location, b"o9", orjson.dumps(bad))
    await produce(broker.bootstrap, topics, officer("o9", NEAR))
    async with Collector(broker.bootstrap, topics.deadletter, worker.changelog("officers")) as c:
        letters = await c.wait_for(
            lambda c: len(c.values(topics.deadletter)) >= 2 and c.values(topics.deadletter),
            what="two dead letters",
        )
        assert letters[0]["source_topic"] == topics.location
        assert letters[0]["error"].startswith("malformed JSON")
        assert letters[0]["raw"] == "{not json"
        assert "lat" in letters[1]["error"] and "less than or equal to 90" in letters[1]["error"]
        rec = await c.wait_for(
            lambda c: (
                (r := latest(c, worker.changelog("officers"), "o9")) and r.get("fix_event") and r
            ),
            what="o9 applied after the dead letters",
        )
        assert rec["fix_event"] == "o9-l"


async def test_duplicates_and_older_events_change_nothing(
    broker: EmbeddedBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """A redelivered fix and a fix older than the one held leave the officer record as it
    was: no new changelog record, the latest fix still wins."""
    worker = start_worker()
    topics = worker.topics
    newer = OfficerLocation(event_id="o2-l2", ts=at(60), officer_id="o2", lon=NEAR[0], lat=NEAR[1])
    older = OfficerLocation(event_id="o2-l0", ts=at(30), officer_id="o2", lon=-1.79, lat=52.57)
    await produce(broker.bootstrap, topics, [*officer("o2", FAR), newer])
    log = worker.changelog("officers")
    async with Collector(broker.bootstrap, log) as c:
        await c.wait_for(
            lambda c: (r := latest(c, log, "o2")) and r.get("fix_event") == "o2-l2",
            what="o2 at its newer fix",
        )
        writes_before = sum(1 for r in c.records if r.key == b'"o2"')
        # the same fix again (redelivery) and an older one, then another officer as a marker
        await produce(broker.bootstrap, topics, [newer, older, *officer("m1", NEAR)])
        await c.wait_for(
            lambda c: (r := latest(c, log, "m1")) and r.get("fix_event"), what="marker officer"
        )
        final = latest(c, log, "o2")
        assert final is not None
        assert final["fix_event"] == "o2-l2"
        assert (final["lon"], final["lat"]) == NEAR
        # the duplicate and the older fix wrote nothing
        assert sum(1 for r in c.records if r.key == b'"o2"') == writes_before


async def test_incident_recommends_nearest_and_reissues_when_officer_goes_off_duty(
    broker: EmbeddedBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """An emergency gets a recommendation whose first candidate is the nearest suitable
    officer; when that officer goes off duty, a new recommendation names the other."""
    worker = start_worker()
    topics = worker.topics
    await produce(broker.bootstrap, topics, [*officer("near", NEAR), *officer("far", FAR)])
    log = worker.changelog("officers")
    async with Collector(broker.bootstrap, log) as board:
        # the officers are on the board before the call comes in
        await board.wait_for(
            lambda c: all(
                (r := latest(c, log, o)) and r.get("fix_event") and r.get("role")
                for o in ("near", "far")
            ),
            what="both officers known",
        )
    await produce(broker.bootstrap, topics, [emergency("i1", 10)])
    async with Collector(broker.bootstrap, topics.recommendation) as c:
        first = await c.wait_for(lambda c: c.values(topics.recommendation), what="a recommendation")
        rec = first[0]
        assert rec["incident_id"] == "i1"
        assert (rec["grade"], rec["response"]) == (1, "emergency")
        assert rec["recommended"] == ["near"]
        assert [cand["officer_id"] for cand in rec["candidates"]][:2] == ["near", "far"]
        assert rec["candidates"][0]["eta_s"] < rec["candidates"][1]["eta_s"]

        await produce(
            broker.bootstrap,
            topics,
            [OfficerStatus(event_id="near-off", ts=at(20), officer_id="near", status="off_duty")],
        )
        recs = await c.wait_for(
            lambda c: len(c.values(topics.recommendation)) >= 2 and c.values(topics.recommendation),
            what="a re-issued recommendation",
        )
        again = recs[-1]
        assert again["recommended"] == ["far"]
        assert "near" not in [cand["officer_id"] for cand in again["candidates"]]
        assert again["recommendation_id"] != rec["recommendation_id"]


#: A worker that refuses to start does so within this (imports, topic metadata).
REFUSE_TIMEOUT_S = 60.0


async def test_input_topics_with_another_partition_count_stop_the_worker_at_start(
    broker: EmbeddedBroker, topic_prefix: str
) -> None:
    """Topics made with 4 partitions (by the console, say) and a worker started with
    --partitions 8: its tables could not be co-partitioned with them and its agent would
    crash on every event, so it stops at start with one line saying how to start it."""
    topics = Topics(topic_prefix)
    await ensure_topics(broker.bootstrap, topic_specs(topics, 4))
    cmd = [
        sys.executable, "-m", "sdo", "worker", "--broker", broker.url,
        "--topic-prefix", topic_prefix, "--partitions", "8", "--session-timeout", "3",
    ]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, timeout=REFUSE_TIMEOUT_S
    )
    assert done.returncode == 2, done.stderr
    errors = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(errors) == 1, done.stderr  # (not a notice of the other topics beside it)
    assert "input topic(s) with another number of partitions than --partitions 8" in errors[0]
    assert f"{topics.incident} 4" in errors[0]
    assert errors[0].endswith("start the worker with --partitions 4")
    assert "Traceback" not in done.stderr


def test_an_unreachable_broker_is_one_line_exit_1() -> None:
    """Nothing listens at --broker: one line naming it (not aiokafka's log of each
    attempt beside it), exit 1, no traceback."""
    cmd = [sys.executable, "-m", "sdo", "worker", "--broker", "kafka://127.0.0.1:1"]
    done = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=REFUSE_TIMEOUT_S
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "sdo worker: broker error: cannot reach the broker at kafka://127.0.0.1:1: "
        "KafkaConnectionError: Unable to bootstrap from "
        "[('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]"
    ]
