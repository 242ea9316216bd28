"""The console view: events folded into a picture, deltas out, decisions checked."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from sdo.console.view import ConsoleView
from sdo.domain.geo import Areas
from sdo.domain.state import availability_keys, availability_of
from sdo.errors import Rejected
from sdo.events import Decision, Deployment, Response, Status

#: The event factory of ``conftest.py`` (a fixture; conftest modules are not importable).
Events = Any

NOW = datetime(2015, 12, 1, 9, 30, tzinfo=UTC)
#: The bookkeeping fields of an officer record (event ids), which the page does not get.
IDS = ("_event", "_seen")
T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def view(areas: Areas) -> ConsoleView:
    return ConsoleView(areas)


def _types(deltas: list[dict[str, Any]]) -> list[str]:
    return [d["type"] for d in deltas]


def _on_duty(view: ConsoleView, ev: Events, oid: str) -> None:
    for e in (ev.profile(oid), ev.status(oid, "available"), ev.location(oid)):
        view.apply(e)


def test_officer_events_make_officer_and_availability_deltas(view: ConsoleView, ev: Events) -> None:
    """A profiled, available, located officer counts in its neighbourhood, NPU and cluster."""
    assert _types(view.apply(ev.profile("o1"))) == ["officer"]
    deltas = view.apply(ev.status("o1", "available", at=1))
    # no fix yet: counted in the home NPU
    assert _types(deltas) == ["officer", "availability"]
    assert deltas[1] == {
        "type": "availability",
        "key": "npu:north",
        "counts": {"total": 1, "role:response": 1, "skill:first_aid": 1},
    }
    deltas = view.apply(ev.location("o1", at=2))
    assert deltas[0]["officer"]["neighbourhood"] == "N01"
    keys = {d["key"] for d in deltas if d["type"] == "availability"}
    assert keys == {"nbhd:N01", "cluster:north-1"}  # npu:north unchanged in count: not re-sent
    avail = view.availability()
    assert avail["cluster:north-1"]["total"] == 1
    assert avail["cluster:east-2"] == {"total": 0}


def test_duplicate_and_older_events_change_nothing(view: ConsoleView, ev: Events) -> None:
    """Redelivered or out-of-order events produce no deltas (idempotent folding)."""
    loc = ev.location("o1", at=10)
    view.apply(ev.profile("o1"))
    assert view.apply(loc)
    assert view.apply(loc) == []
    assert view.apply(ev.location("o1", (-1.80, 52.47), at=5)) == []
    assert view.officers["o1"].fix_ts == loc.ts
    rec = ev.recommendation("I1", ["o1"], at=3)
    view.apply(ev.incident("I1"))
    assert view.apply(rec)
    assert view.apply(rec) == []


def test_going_off_duty_leaves_the_availability_buckets(view: ConsoleView, ev: Events) -> None:
    _on_duty(view, ev, "o1")
    deltas = view.apply(ev.status("o1", "committed", at=5))
    avail = {d["key"]: d["counts"] for d in deltas if d["type"] == "availability"}
    assert avail == {
        "nbhd:N01": {"total": 0},
        "npu:north": {"total": 0},
        "cluster:north-1": {"total": 0},
    }


def test_snapshot_holds_open_incidents_and_their_recommendations(
    view: ConsoleView, ev: Events
) -> None:
    _on_duty(view, ev, "o1")
    view.apply(ev.incident("I1"))
    view.apply(ev.incident("I2"))
    view.apply(ev.recommendation("I1", ["o1"]))
    view.apply(ev.incident("I2", at=60, state="closed"))
    view.apply(ev.alert("north-1"))
    snap = view.snapshot()
    assert snap["type"] == "snapshot"
    assert [i["incident_id"] for i in snap["incidents"]] == ["I1"]
    assert [r["incident_id"] for r in snap["recommendations"]] == ["I1"]
    assert [o["officer_id"] for o in snap["officers"]] == ["o1"]
    assert "fix_event" not in snap["officers"][0]
    assert snap["alerts"][0]["subject"] == "north-1"
    assert snap["min_cover"]["north-1"] == 4
    assert snap["event_time"] == "2015-12-01T09:01:00Z"


def test_alert_cleared_when_inactive(view: ConsoleView, ev: Events) -> None:
    view.apply(ev.alert("north-1", at=1))
    assert _types(view.apply(ev.alert("north-1", at=2, active=False))) == ["alert"]
    assert view.alerts == {}
    assert view.apply(ev.alert("east-2", active=False)) == []


def _deployment(iid: str, officers: tuple[str, ...], event_id: str = "d1") -> Deployment:
    return Deployment(
        event_id=event_id,
        ts=T0.replace(minute=5),
        incident_id=iid,
        decision=Decision.ACCEPTED,
        officer_ids=officers,
        by="sdo1",
        recommendation_id="r1",
    )


def test_deployment_resources_incident_and_sends_officers_en_route(
    view: ConsoleView, ev: Events
) -> None:
    """A deployment read from Kafka updates the incident and the officers on every console."""
    _on_duty(view, ev, "o1")
    view.apply(ev.incident("I1"))
    deltas = view.apply(_deployment("I1", ("o1",)))
    assert _types(deltas)[:3] == ["deployment", "incident", "officer"]
    assert deltas[1]["incident"]["state"] == "resourced"
    assert deltas[1]["incident"]["decided_by"] == "sdo1"
    assert deltas[2]["officer"]["status"] == "en_route"
    assert view.availability()["cluster:north-1"] == {"total": 0}
    assert view.apply(_deployment("I1", ("o1",))) == []  # redelivery is a no-op


def test_a_redeployment_stands_down_the_officer_left_out(view: ConsoleView, ev: Events) -> None:
    """Accepted with o1, then overridden with o2: o1, still en route, is available again on
    every console (and counted so), o2 en route."""
    _on_duty(view, ev, "o1")
    _on_duty(view, ev, "o2")
    view.apply(ev.incident("I1"))
    view.apply(_deployment("I1", ("o1",)))
    assert view.officers["o1"].status is Status.EN_ROUTE
    redeploy = Deployment(
        event_id="d2",
        ts=T0.replace(minute=7),
        incident_id="I1",
        decision=Decision.OVERRIDDEN,
        officer_ids=("o2",),
        by="sdo1",
        reason="o2 knows the family",
    )
    deltas = view.apply(redeploy)
    officers = {d["officer"]["officer_id"]: d["officer"] for d in deltas if d["type"] == "officer"}
    assert officers["o2"]["status"] == "en_route"
    assert officers["o1"]["status"] == "available"
    assert view.officers["o1"].status is Status.AVAILABLE
    assert view.availability()["cluster:north-1"]["total"] == 1


def test_deployment_read_before_its_incident_is_applied_when_it_arrives(
    view: ConsoleView, ev: Events
) -> None:
    """Topics are read in parallel: a deployment may overtake its incident."""
    _on_duty(view, ev, "o1")
    assert view.apply(_deployment("I1", ("o1",))) == []
    deltas = view.apply(ev.incident("I1"))
    assert "deployment" in _types(deltas)
    assert view.incidents["I1"].state.value == "resourced"


def test_deployment_read_before_an_officer_it_names_is_applied_when_they_arrive(
    view: ConsoleView, ev: Events
) -> None:
    """As the worker does (sdo.domain.waiting): it waits for the officer, is recorded
    when it applies, and sends both officers en route."""
    _on_duty(view, ev, "o1")
    view.apply(ev.incident("I1"))
    assert view.apply(_deployment("I1", ("o1", "o2"))) == []
    assert view.incidents["I1"].state.value == "open"
    assert view.ignored["deployment_before_officer"] == 1
    deltas = view.apply(ev.profile("o2"))
    assert _types(deltas)[:3] == ["officer", "deployment", "incident"]
    assert view.incidents["I1"].assigned == ("o1", "o2")
    assert {o: view.officers[o].status for o in ("o1", "o2")} == dict.fromkeys(
        ("o1", "o2"), Status.EN_ROUTE
    )
    assert [d.event_id for d in view.deployments] == ["d1"]


def _ready(view: ConsoleView, ev: Events) -> str:
    _on_duty(view, ev, "o1")
    _on_duty(view, ev, "o2")
    view.apply(ev.incident("I1"))
    rec = ev.recommendation("I1", ["o1", "o2"], rid="R1")
    view.apply(rec)
    return str(rec.recommendation_id)


def test_accept_gives_the_recommended_officers(view: ConsoleView, ev: Events) -> None:
    rid = _ready(view, ev)
    dep = view.decide(
        {"type": "accept", "incident_id": "I1", "recommendation_id": rid},
        by="sdo1",
        event_id="e1",
        now=NOW,
    )
    assert dep.decision is Decision.ACCEPTED
    assert dep.officer_ids == ("o1",)
    assert (dep.by, dep.recommendation_id, dep.ts, dep.event_id) == ("sdo1", "R1", NOW, "e1")


def test_accepting_a_signpost_refers_the_call_and_sends_nobody(
    view: ConsoleView, ev: Events
) -> None:
    """A signpost names no officer by design: Accept takes it as given (the call goes to
    the partner service), not a Decline; a recommendation that names nobody for want of
    officers still cannot be accepted."""
    view.apply(ev.incident("I1"))
    signpost = ev.recommendation("I1", [], rid="R1").model_copy(
        update={"grade": 4, "response": Response.SIGNPOST, "service": "Council noise line"}
    )
    view.apply(signpost)
    dep = view.decide(
        {"type": "accept", "incident_id": "I1", "recommendation_id": "R1"},
        by="sdo1",
        event_id="e1",
        now=NOW,
    )
    assert (dep.decision, dep.officer_ids) == (Decision.ACCEPTED, ())
    view.apply(dep)
    assert view.incidents["I1"].decision is Decision.ACCEPTED
    view.apply(ev.incident("I2"))
    view.apply(ev.recommendation("I2", [], rid="R2"))
    with pytest.raises(Rejected, match="names no officers; override or decline"):
        view.decide(
            {"type": "accept", "incident_id": "I2", "recommendation_id": "R2"},
            by="sdo1",
            event_id="e2",
            now=NOW,
        )


def test_override_and_decline(view: ConsoleView, ev: Events) -> None:
    rid = _ready(view, ev)
    dep = view.decide(
        {
            "type": "override",
            "incident_id": "I1",
            "recommendation_id": rid,
            "officer_ids": ["o2"],
            "reason": " o2 knows the family ",
        },
        by="sdo1",
        event_id="e1",
        now=NOW,
    )
    assert (dep.decision, dep.officer_ids, dep.reason) == (
        Decision.OVERRIDDEN,
        ("o2",),
        "o2 knows the family",
    )
    dep = view.decide(
        {"type": "decline", "incident_id": "I1", "reason": "duplicate of I0"},
        by="sdo1",
        event_id="e2",
        now=NOW,
    )
    assert (dep.decision, dep.officer_ids, dep.recommendation_id) == (Decision.DECLINED, (), "R1")


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"type": "accept", "incident_id": "nope", "recommendation_id": "R1"}, "not known"),
        ({"type": "accept", "incident_id": "I1", "recommendation_id": "OLD"}, "superseded"),
        (
            {
                "type": "accept",
                "incident_id": "I1",
                "recommendation_id": "R1",
                "officer_ids": ["o2"],
            },
            "use override",
        ),
        ({"type": "override", "incident_id": "I1", "officer_ids": ["o2"]}, "needs a reason"),
        (
            {"type": "override", "incident_id": "I1", "officer_ids": [], "reason": "x"},
            "at least one officer",
        ),
        (
            {"type": "override", "incident_id": "I1", "officer_ids": ["ghost"], "reason": "x"},
            "unknown officer",
        ),
        (
            {"type": "override", "incident_id": "I1", "officer_ids": "o2", "reason": "x"},
            "list of strings",
        ),
        ({"type": "decline", "incident_id": "I1", "reason": "   "}, "needs a reason"),
        ({"type": "decline", "incident_id": "I1", "reason": 5}, "must be a string"),
        ({"type": "shrug", "incident_id": "I1"}, "unknown action"),
        ({"type": "accept"}, "incident_id is required"),
    ],
)
def test_invalid_actions_are_rejected_with_a_reason(
    view: ConsoleView, ev: Events, action: dict[str, Any], message: str
) -> None:
    _ready(view, ev)
    with pytest.raises(Rejected, match=message):
        view.decide(action, by="sdo1", event_id="e1", now=NOW)


def test_decisions_on_closed_or_decided_incidents_are_refused(
    view: ConsoleView, ev: Events
) -> None:
    rid = _ready(view, ev)
    view.apply(_deployment("I1", ("o1",)))
    accept = {"type": "accept", "incident_id": "I1", "recommendation_id": rid}
    with pytest.raises(Rejected, match="already accepted by sdo1"):
        view.decide(accept, by="sdo2", event_id="e2", now=NOW)
    view.apply(ev.incident("I1", at=600, state="closed"))
    with pytest.raises(Rejected, match="is closed"):
        view.decide(accept, by="sdo2", event_id="e3", now=NOW)


def test_availability_counts_follow_any_sequence_of_officer_changes(
    view: ConsoleView, ev: Events, areas: Areas
) -> None:
    """Kept per bucket as each change comes (not counted again from its members), the
    counts equal, after every event of a random sequence (profiles with other roles,
    skills and NPUs; statuses; fixes anywhere in and around the area, some older), the
    counts of the officers as they are, bucket by bucket; and each delta says the bucket's
    new counts."""
    rng = random.Random(7)
    west, south, east, north = areas.bounds
    oids = [f"o{i}" for i in range(6)]
    roles = ["response", "neighbourhood", "investigator"]
    skills = ["first_aid", "taser", "driver"]
    statuses = ["available", "committed", "en_route", "off_duty"]
    for step in range(600):
        oid, at = rng.choice(oids), rng.uniform(0, step + 1)
        kind = rng.random()
        if kind < 0.15:
            event: Any = ev.profile(
                oid,
                at=at,
                role=rng.choice(roles),
                skills=rng.sample(skills, rng.randint(0, 3)),
                npu=rng.choice(["north", "south", "east"]),
            )
        elif kind < 0.4:
            event = ev.status(oid, rng.choice(statuses), at=at)
        else:
            lonlat = (
                rng.uniform(west - 0.01, east + 0.01),
                rng.uniform(south - 0.01, north + 0.01),
            )
            event = ev.location(oid, lonlat, at=at)
        deltas = view.apply(event)
        expected: dict[str, Counter[str]] = {}
        for officer in view.officers.values():
            for key in availability_keys(officer):
                expected.setdefault(key, Counter()).update(availability_of((officer,)))
        shown = {k: c for k, c in view.availability().items() if c.get("total")}
        assert shown == {k: dict(c) for k, c in expected.items()}, f"step {step}: {event}"
        for d in deltas:
            if d["type"] == "availability":
                assert d["counts"] == dict(expected.get(d["key"], {})) or {"total": 0}
            if d["type"] == "officer":  # what the page sees: the record but its event ids
                full = view.officers[d["officer"]["officer_id"]].to_dict()
                assert d["officer"] == {k: v for k, v in full.items() if not k.endswith(IDS)}
