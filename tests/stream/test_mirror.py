"""The officer mirror (``sdo.stream.mirror``): another worker's records merged into the
World, and the owner's rewrite of a record another worker wrote from an older view.

The runtime's Kafka parts are plain stand-ins here (dicts for the tables, the assignment
a list); two workers sharing a real broker: ``tests/integration/test_workers.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from sdo.areas import load_areas
from sdo.config import DEFAULT_AREAS, DEFAULT_RULES, package_data
from sdo.domain.waiting import WAIT
from sdo.domain.world import World
from sdo.events import (
    Decision,
    Deployment,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Status,
)
from sdo.grade import load_rules
from sdo.stream.app import OFFICER_WAIT_S, Runtime, _partition_of
from sdo.stream.durable import WORKER
from sdo.stream.mirror import OfficerMirror
from tests.domain.conftest import Events
from tests.stream.stand_ins import Recorder

T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
LOCATION = "sdo.officer.location"
AREAS = load_areas(package_data(DEFAULT_AREAS))
RULES = load_rules(package_data(DEFAULT_RULES))


def _world() -> World:
    world = World(AREAS, RULES)
    world.dirty_incidents = set()
    return world


def runtime(owns: bool) -> Runtime:
    """A worker assigned the partition of officer ``o1`` (``owns``) or every other one."""
    mine = _partition_of("o1", 4)
    parts = [p for p in range(4) if (p == mine) == owns]
    tps = [SimpleNamespace(topic=LOCATION, partition=p) for p in parts]
    app = SimpleNamespace(
        consumer=SimpleNamespace(highwater=lambda tp: None),
        assignor=SimpleNamespace(assigned_actives=lambda: tps),
    )
    return Runtime(
        world=_world(),
        app=app,  # type: ignore[arg-type]
        partitions=4,
        officers={},
        incidents={},
        availability={},
        outputs={"recommendation": Recorder(), "alert": Recorder(), "deadletter": Recorder()},
        input_topics=frozenset({LOCATION}),
        topic_of={"deployment": "sdo.deployment"},
    )


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _fix(n: int) -> OfficerLocation:
    lon, lat = AREAS.neighbourhoods["N06"].centroid
    return OfficerLocation(
        event_id=f"f{n}", ts=_at(10 * n), officer_id="o1", lat=lat + n / 10_000, lon=lon
    )


def _shift_start(world: World) -> None:
    world.apply(
        OfficerProfile(
            event_id="p", ts=T0, officer_id="o1", callsign="O1", role="response", transport="car"
        )
    )
    world.apply(OfficerStatus(event_id="s1", ts=T0, officer_id="o1", status=Status.AVAILABLE))


def written_by_another(officer: Any) -> bytes:
    """An officers-table record as another worker process writes it."""
    return orjson.dumps({**officer.to_dict(), WORKER: "another-worker"})


def take(rt: Runtime, value: bytes) -> OfficerMirror:
    mirror = OfficerMirror(rt, "unused:9092", "officers-changelog")
    asyncio.run(mirror.take(value))
    return mirror


@pytest.mark.parametrize("owns", [True, False])
def test_a_record_another_worker_wrote_from_an_older_view_is_written_again_by_the_owner(
    owns: bool,
) -> None:
    """The other worker sent o1 en route (its incident's deployment) from its view of o1
    at fix 1; this worker has applied fix 3 since. Both merge to fix 3 and en route; only
    the owner of o1's partition writes that again, so the table's latest record of o1 is
    not left at fix 1."""
    other = _world()
    _shift_start(other)
    other.apply(_fix(1))
    other.apply(OfficerStatus(event_id="s2", ts=_at(35), officer_id="o1", status=Status.EN_ROUTE))
    rt = runtime(owns)
    _shift_start(rt.world)
    for n in (1, 2, 3):
        rt.world.apply(_fix(n))
    mirror = take(rt, written_by_another(other.officers["o1"]))
    merged = rt.world.officers["o1"]
    assert (merged.fix_event, merged.status) == ("f3", Status.EN_ROUTE)
    assert mirror.merged == 1
    rt.flush()
    if owns:
        assert mirror.rewritten == 1
        assert rt.officers["o1"]["fix_event"] == "f3"
        assert rt.officers["o1"]["status"] == "en_route"
    else:
        assert mirror.rewritten == 0 and "o1" not in rt.officers


def test_a_record_as_new_as_the_world_in_every_aspect_is_not_written_again() -> None:
    """Another worker's record holding everything this World holds, and more: merged,
    and nothing to write (its writer has)."""
    other = _world()
    _shift_start(other)
    for n in (1, 2, 3, 4):
        other.apply(_fix(n))
    rt = runtime(owns=True)
    _shift_start(rt.world)
    rt.world.apply(_fix(1))
    mirror = take(rt, written_by_another(other.officers["o1"]))
    assert rt.world.officers["o1"].fix_event == "f4"
    assert (mirror.merged, mirror.rewritten) == (1, 0)
    rt.flush()
    assert "o1" not in rt.officers


def test_an_older_record_of_this_workers_officer_is_written_over() -> None:
    """A record another worker wrote of o1 that this World has all of, and newer (a
    partition's former owner, say): nothing merges, and the owner writes its own."""
    other = _world()
    _shift_start(other)
    other.apply(_fix(1))
    rt = runtime(owns=True)
    _shift_start(rt.world)
    for n in (1, 2):
        rt.world.apply(_fix(n))
    mirror = take(rt, written_by_another(other.officers["o1"]))
    assert (mirror.merged, mirror.skipped, mirror.rewritten) == (0, 1, 1)
    rt.flush()
    assert rt.officers["o1"]["fix_event"] == "f2"


def _call_and_deployment(rt: Runtime) -> Deployment:
    """An open call of this worker's, and an SDO's deployment of o1 to it."""
    lon, lat = AREAS.neighbourhoods["N06"].centroid
    call = Events.incident("i1", lon, lat, ts=_at(20), graded_as="emergency", event_id="c1")
    rt.world.apply(call)
    return Deployment(
        event_id="d1",
        ts=_at(30),
        incident_id="i1",
        decision=Decision.OVERRIDDEN,
        officer_ids=("o1",),
        by="sdo-1",
        reason="knows the family",
    )


def _past_the_wait(rt: Runtime) -> Any:
    """An event of another officer WAIT after the deployment: the World gives up on o1."""
    lon, lat = AREAS.neighbourhoods["N06"].centroid
    later = OfficerLocation(event_id="z", ts=_at(30) + WAIT, officer_id="zz", lat=lat, lon=lon)
    return rt.world.apply(later)


def _letters(rt: Runtime) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in rt.outputs["deadletter"].sent]  # type: ignore[attr-defined]


def test_a_deployment_naming_another_workers_officer_waits_on_until_they_are_merged() -> None:
    """Working through a backlog, event time runs past the World's wait long before the
    officer's owner writes them: the deployment is not dead-lettered, its commit stays
    held, and it applies once the officer comes from the table."""
    rt = runtime(owns=False)
    deployment = _call_and_deployment(rt)
    held = rt.world.apply(deployment)
    assert held.ignored == "waiting_for_officer"
    rt.waiting["d1"] = (("sdo.deployment", 0), 7)
    effects = _past_the_wait(rt)
    assert [d.event_id for d, _ in effects.refused] == ["d1"]
    asyncio.run(rt.refuse(effects))
    assert _letters(rt) == [] and set(rt.officer_waits) == {"d1"}
    rt.flush()
    assert rt.holds == {("sdo.deployment", 0): 7}, "no commit past it"
    other = _world()
    _shift_start(other)
    mirror = take(rt, written_by_another(other.officers["o1"]))
    assert mirror.merged == 1
    asyncio.run(rt.retry_waiting())
    record = rt.world.incidents["i1"]
    assert record.assigned == ("o1",) and record.decision_event == "d1"
    assert rt.world.officers["o1"].status is Status.EN_ROUTE
    assert rt.officer_waits == {} and _letters(rt) == []
    rt.flush()
    assert rt.holds == {}


def test_it_is_dead_lettered_if_the_owner_never_writes_them() -> None:
    """After OFFICER_WAIT_S of the wall clock more, the reason says both waits."""
    rt = runtime(owns=False)
    rt.world.apply(_call_and_deployment(rt))
    asyncio.run(rt.refuse(_past_the_wait(rt)))
    _, _, deadline = rt.officer_waits["d1"]
    asyncio.run(rt.retry_waiting(now=deadline - 1))
    assert _letters(rt) == []
    asyncio.run(rt.retry_waiting(now=deadline))
    (letter,) = _letters(rt)
    assert letter["source_topic"] == "sdo.deployment"
    assert letter["error"] == (
        "deployment names unknown officer o1 (waited 10 min of event time for them); "
        f"and {OFFICER_WAIT_S:.0f} s for the worker that owns them"
    )
    assert rt.officer_waits == {}


def test_a_deployment_naming_this_workers_own_unknown_officer_is_dead_lettered_at_once() -> None:
    """Nobody else would write them: the World's wait is the only one."""
    rt = runtime(owns=True)
    rt.world.apply(_call_and_deployment(rt))
    asyncio.run(rt.refuse(_past_the_wait(rt)))
    assert rt.officer_waits == {}
    (letter,) = _letters(rt)
    assert letter["error"].startswith("deployment names unknown officer o1 (waited 10 min")


def test_a_waiting_deployment_goes_with_its_incidents_partition() -> None:
    """Handed over to another worker, which reads it again: this one forgets it, in its
    World and in its own wait."""
    rt = runtime(owns=False)
    rt.world.apply(_call_and_deployment(rt))
    rt.incident_partitions["i1"] = 2
    asyncio.run(rt.refuse(_past_the_wait(rt)))
    assert set(rt.officer_waits) == {"d1"}
    rt.revoke({2})
    assert rt.officer_waits == {}
    fresh = runtime(owns=False)
    fresh.world.apply(_call_and_deployment(fresh))
    fresh.incident_partitions["i1"] = 2
    fresh.revoke({2})
    assert fresh.world.waiting_ids() == set()


def test_what_a_merge_publishes_is_counted_in_the_metrics() -> None:
    """A call waits with nobody to send; the other worker's officer comes from the table
    and this worker recommends them: the recommendation (sent from the mirror, not from
    an input record) is counted, as every output is."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from sdo.metrics import WorkerMetrics  # noqa: PLC0415

    rt = runtime(owns=False)
    registry = CollectorRegistry()
    rt.metrics = WorkerMetrics(registry)
    _call_and_deployment(rt)  # (the call only; nothing sent: no officer yet)
    other = _world()
    _shift_start(other)
    other.apply(_fix(3))
    take(rt, written_by_another(other.officers["o1"]))
    sent = rt.outputs["recommendation"].sent  # type: ignore[attr-defined]
    assert sent, "the call was recommended the merged officer"
    counted = registry.get_sample_value("sdo_outputs_published_total", {"type": "recommendation"})
    assert counted == len(sent)


def test_a_deployment_that_waited_for_its_incident_is_dead_lettered_whoever_it_names() -> None:
    """Its incident never came: the wall-clock wait is for officers only, so it goes to
    the dead letters when the World gives up, though it names another worker's officer."""
    rt = runtime(owns=False)
    deployment = _call_and_deployment(rt).model_copy(update={"incident_id": "never"})
    assert rt.world.apply(deployment).ignored == "waiting_for_incident"
    asyncio.run(rt.refuse(_past_the_wait(rt)))
    assert rt.officer_waits == {}
    (letter,) = _letters(rt)
    assert letter["error"].startswith("deployment for unknown incident never (waited")
