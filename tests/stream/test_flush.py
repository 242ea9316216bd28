"""``Runtime.flush`` and ``Runtime.hold``: at each commit every change is written, and the
consumer commits past everything but a deployment still waiting for its incident.

The runtime's Kafka parts are plain stand-ins here (dicts for the tables); that a worker
killed at any moment restarts consistent with the offsets it resumes from, and decides as
it would have, is shown against a real broker by ``tests/integration/test_faults.py`` and
``tests/integration/test_backlog.py``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sdo.areas import load_areas
from sdo.config import DEFAULT_AREAS, DEFAULT_RULES, package_data
from sdo.domain.state import Officer
from sdo.domain.world import Effects, World
from sdo.events import Deployment, OfficerStatus, Status, encode
from sdo.grade import load_rules
from sdo.stream.app import Runtime
from tests.stream import stand_ins
from tests.waits import wait_until

TP = ("sdo.officer.location", 0)
DEPLOYMENTS = ("sdo.deployment", 1)
T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)


def runtime() -> Runtime:
    world = World(load_areas(package_data(DEFAULT_AREAS)), load_rules(package_data(DEFAULT_RULES)))
    world.dirty_incidents = set()
    return Runtime(
        world=world,
        app=SimpleNamespace(consumer=SimpleNamespace(highwater=lambda tp: None)),  # type: ignore[arg-type]
        officers={},
        incidents={},
        availability={},
        outputs={},
    )


def fix(o: Officer, n: int) -> Officer:
    """The officer at their n-th fix: one every 5 s of event time."""
    return o._replace(
        lat=52.5 + n / 1000, lon=-1.9, fix_ts=T0 + timedelta(seconds=5 * n), fix_event=f"f{n}"
    )


BASE = Officer("o1", status=Status.AVAILABLE, status_event="s1", neighbourhood="N1")


def test_every_change_is_written_at_each_flush_the_latest_per_key() -> None:
    """Ten fixes of one officer between commits cost one write, of the last; counts too."""
    rt = runtime()
    for n in range(10):
        rt.write(Effects(officers=[fix(BASE, n)], availability={"nbhd:N1": {"total": n}}))
    assert rt.officers == {} and rt.availability == {}
    rt.flush()
    assert rt.officers["o1"]["fix_event"] == "f9"
    assert rt.availability == {"nbhd:N1": {"total": 9}}
    assert rt.dirty == {} and rt.counts == {}
    assert rt.hold(TP) is None


def test_a_waiting_deployment_holds_its_partitions_commit_until_it_applies() -> None:
    """A deployment read before its incident holds the commit of its partition at its
    offset (a restart must read it again: it is in no table yet); once its incident comes
    and it applies, the hold goes, and the incident is written in its durable form."""
    rt = runtime()
    deployment = Deployment(
        event_id="d1",
        ts=T0,
        incident_id="i1",
        decision="declined",
        by="sdo-1",
        reason="a test",
    )
    effects = rt.world.apply(deployment)
    assert effects.ignored == "waiting_for_incident"
    rt.waiting["d1"] = (DEPLOYMENTS, 41)  # (what handle() records)
    rt.write(effects)
    rt.flush()
    assert rt.hold(DEPLOYMENTS) == 41
    assert rt.hold(TP) is None
    from sdo.events import Incident  # noqa: PLC0415

    incident = Incident.model_validate(
        {
            "event_id": "i1-v1",
            "ts": "2015-12-01T09:00:01Z",
            "incident_id": "i1",
            "lat": 52.55,
            "lon": -1.83,
            "category": "other",
            "thrive": {
                "threat": "low",
                "harm": "low",
                "risk": "low",
                "vulnerability": "none",
                "investigation": False,
                "engagement": False,
                "prevention": False,
            },
            "ongoing": False,
            "offender_present": False,
            "persistent": False,
        }
    )
    rt.write(rt.world.apply(incident))
    rt.flush()
    assert rt.hold(DEPLOYMENTS) is None
    assert rt.incidents["i1"]["decision"] == "declined"


def test_an_incident_awaiting_a_decision_is_written_with_its_recommendation() -> None:
    """The durable form of a pending incident holds its current recommendation: restored
    into a fresh World it is the current one again, and nothing is published anew."""
    rt = runtime()
    from sdo.events import decode  # noqa: PLC0415
    from tests.test_bad_input import incident, js  # noqa: PLC0415

    rt.write(rt.world.apply(decode(js(incident("I-1", eid="v1", t=10)))))
    rt.flush()
    stored: dict[str, Any] = rt.incidents["I-1"]
    rec = rt.world.recommendation("I-1")
    assert rec is not None and stored["rec"]["recommendation_id"] == rec.recommendation_id
    from sdo.domain.state import IncidentRecord  # noqa: PLC0415
    from sdo.events import Recommendation  # noqa: PLC0415

    again = World(rt.world.areas, rt.world.rules)
    again.restore_incident(
        IncidentRecord.from_dict(stored), Recommendation.model_validate(stored["rec"])
    )
    assert again.resume(rt.world.now).outputs == []
    assert again.recommendation("I-1") == rec


class _Consumer:
    """Faust's consumer as the idle commit sees it: ``commit()`` flushes (the worker's hook)
    and takes a while; called while one is under way, it waits for that one and returns
    False without committing (``maybe_wait_for_commit_to_finish``)."""

    def __init__(self, rt: Runtime, takes_s: float) -> None:
        self.rt = rt
        self.takes_s = takes_s
        self.running: asyncio.Future[None] | None = None
        self.flushes: list[float] = []

    def highwater(self, tp: Any) -> None:
        return None  # nothing known on the broker past what was applied: no backlog

    async def commit(self) -> bool:
        if self.running is not None:
            await self.running
            return False
        self.running = asyncio.get_running_loop().create_future()
        try:
            self.rt.flush_for_commit()
            self.flushes.append(time.monotonic())
            await asyncio.sleep(self.takes_s)
            return True
        finally:
            self.running.set_result(None)
            self.running = None


def _status_record(n: int) -> Any:
    value = OfficerStatus(
        event_id=f"s{n}", ts=T0 + timedelta(seconds=n), officer_id="o1", status=Status.AVAILABLE
    )
    return stand_ins.Record(b"o1", encode(value), n, int(value.ts.timestamp() * 1000), ())


STATUS_TP = stand_ins.TP("sdo.officer.status", 0)


def _idle_runtime(takes_s: float) -> tuple[Runtime, _Consumer]:
    rt = runtime()
    consumer = _Consumer(rt, takes_s)
    rt.app = SimpleNamespace(consumer=consumer)  # type: ignore[assignment]
    rt.topic_kinds = {"sdo.officer.status": "officer.status"}
    rt.idle_commit_s = 0.05
    return rt, consumer


def test_input_that_pauses_during_a_commit_is_written_when_that_commit_ends() -> None:
    """The last batch is applied while a (timer) commit is under way, its flush taken
    before: the idle commit waits for it, then commits again, so the table has the last
    batch's changes without waiting for the next interval."""

    async def go() -> tuple[Runtime, _Consumer]:
        rt, consumer = _idle_runtime(takes_s=0.2)
        timer = asyncio.ensure_future(consumer.commit())  # the interval's commit
        await wait_until(
            lambda: consumer.running is not None, 10.0, "a commit under way", 0.01
        )  # (its flush taken)
        await rt.take({STATUS_TP: [_status_record(1)]})  # input, then nothing more
        await wait_until(lambda: len(consumer.flushes) >= 2, 10.0, "a second flush", 0.01)
        await timer
        return rt, consumer

    rt, consumer = asyncio.run(go())
    assert len(consumer.flushes) == 2, "a second commit followed the one under way"
    assert consumer.flushes[1] >= rt.taken_at
    assert rt.officers["o1"]["status_event"] == "s1"


def test_input_that_pauses_just_after_a_flush_is_written_once_the_flush_is_old_enough() -> None:
    """The last batch comes less than the idle bound after a flush: a commit follows when
    the bound has passed (not at the next interval)."""

    async def go() -> tuple[Runtime, _Consumer]:
        rt, consumer = _idle_runtime(takes_s=0.0)
        await consumer.commit()
        await rt.take({STATUS_TP: [_status_record(1)]})
        assert len(consumer.flushes) == 1, "too soon after the last flush"
        await wait_until(lambda: len(consumer.flushes) >= 2, 10.0, "a second flush", 0.01)
        return rt, consumer

    rt, consumer = asyncio.run(go())
    assert len(consumer.flushes) == 2
    assert consumer.flushes[1] - consumer.flushes[0] >= 0.05
    assert rt.officers["o1"]["status_event"] == "s1"


def test_records_waiting_on_a_partition_not_applied_yet_are_no_pause() -> None:
    """A batch applied, and records wait on another input partition none of whose
    records were applied yet (the first batch of a backlog often has only some
    partitions'): no idle commit. Before, the backlog counted only partitions with
    records applied, and this commit wrote every officer the batch touched."""

    async def go() -> tuple[Runtime, _Consumer]:
        rt, consumer = _idle_runtime(takes_s=0.0)
        rt.flushed_at = time.monotonic() - 1.0  # (the last flush old enough)
        waiting = {"n": 500}
        rt.unapplied = lambda applied: waiting["n"]
        await rt.take({STATUS_TP: [_status_record(1)]})
        assert consumer.flushes == [], "a commit while records waited"
        # (nor one scheduled: no task, no timer to look again)
        assert rt._idle_commit is None and rt._idle_check is None
        waiting["n"] = 0  # all applied: the next batch's end is a pause
        await rt.take({STATUS_TP: [_status_record(2)]})
        await wait_until(lambda: len(consumer.flushes) >= 1, 10.0, "an idle commit", 0.01)
        return rt, consumer

    rt, _ = asyncio.run(go())
    assert rt.officers["o1"]["status_event"] == "s2"


def test_the_batch_lanes_counts_go_on_over_a_rebalance() -> None:
    """Each restore (every rebalance) makes a new lane over the rebuilt World; what the
    worker's last line says it applied counts from the start, not from the last restore."""
    rt = runtime()
    rt.app = SimpleNamespace(  # type: ignore[assignment]
        consumer=SimpleNamespace(highwater=lambda tp: None),
        assignor=SimpleNamespace(assigned_actives=list),
    )
    asyncio.run(rt.recover())
    assert rt.lane is not None
    rt.lane.applied, rt.lane.refused = 120, 7
    first = rt.lane
    asyncio.run(rt.recover())
    assert rt.lane is not first
    assert (rt.lane.applied, rt.lane.refused) == (120, 7)
