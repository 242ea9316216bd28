"""sdo.domain.state: how one event changes an officer or an incident record (pure)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from sdo.domain.state import (
    SEEN_MAX,
    IncidentRecord,
    Officer,
    apply_deployment,
    apply_incident,
    apply_location,
    apply_profile,
    apply_status,
    availability_keys,
    availability_of,
    deployment_statuses,
    merge_officer,
)
from sdo.errors import Rejected
from sdo.events import Decision, IncidentState, Role, Status, Transport

MIN = timedelta(minutes=1)

# -- officers: idempotence per aspect ----------------------------------------------------


def _status(ev: Any, oid: str, ts: Any, event_id: str, status: str = "available") -> Any:
    return ev.status(oid, status, ts=ts, event_id=event_id)


def _profile(ev: Any, oid: str, ts: Any, event_id: str, callsign: str = "A1") -> Any:
    return ev.profile(oid, ts=ts, event_id=event_id, callsign=callsign)


@pytest.mark.parametrize(
    ("second_minute", "second_id", "expected_ignored"),
    [
        (0, "e1", "duplicate"),  # the same event again (a redelivery)
        (5, "e1", "duplicate"),  # same id wins over a later ts: it is still the same event
        (-1, "e2", "out_of_order"),  # older than what is held
        (0, "e2", None),  # equal ts, an id not seen: applied, log order breaks the tie
        (1, "e2", None),  # newer: applied
    ],
)
@pytest.mark.parametrize("aspect", ["status", "profile", "location"])
def test_officer_aspect_duplicate_and_order(
    ev: Any,
    areas: Any,
    aspect: str,
    second_minute: int,
    second_id: str,
    expected_ignored: str | None,
) -> None:
    """Each officer aspect ignores a duplicate event id and an older ts, applies an equal ts."""
    t = ev.at(10)
    t2 = t + second_minute * MIN
    if aspect == "status":
        first = apply_status(None, _status(ev, "o1", t, "e1", "available")).state
        change = apply_status(first, _status(ev, "o1", t2, second_id, "committed"))
        value = change.state.status
        new_value = Status.COMMITTED
    elif aspect == "profile":
        first = apply_profile(None, _profile(ev, "o1", t, "e1", "A1")).state
        change = apply_profile(first, _profile(ev, "o1", t2, second_id, "B2"))
        value = change.state.callsign
        new_value = "B2"
    else:
        first = apply_location(
            None, ev.location("o1", -1.82, 52.57, ts=t, event_id="e1"), areas
        ).state
        change = apply_location(
            first, ev.location("o1", -1.85, 52.58, ts=t2, event_id=second_id), areas
        )
        value = change.state.lon
        new_value = -1.85
    assert change.ignored == expected_ignored
    assert change.changed is (expected_ignored is None)
    if expected_ignored is None:
        assert value == new_value
    else:
        assert change.state == first


def _aspect(ev: Any, areas: Any, aspect: str) -> Any:
    """(apply, make an event of the aspect at minute m with id i and a value v, the value
    read back from a record, the seen ids field)."""
    if aspect == "status":
        statuses = ["available", "committed", "en_route", "at_scene"]
        return (
            apply_status,
            lambda m, i, v: ev.status("o1", statuses[v % 4], ts=ev.at(m), event_id=i),
            lambda o: statuses.index(o.status.value),
            "status_seen",
        )
    if aspect == "profile":
        return (
            apply_profile,
            lambda m, i, v: _profile(ev, "o1", ev.at(m), i, f"A{v}"),
            lambda o: int(o.callsign[1:]),
            "profile_seen",
        )
    return (
        lambda o, e: apply_location(o, e, areas),
        lambda m, i, v: ev.location("o1", -1.82 - v / 1000, 52.57, ts=ev.at(m), event_id=i),
        lambda o: round((-1.82 - o.lon) * 1000),
        "fix_seen",
    )


@pytest.mark.parametrize("aspect", ["status", "profile", "location"])
def test_redelivery_after_another_event_at_the_same_time_changes_nothing(
    ev: Any, areas: Any, aspect: str
) -> None:
    """Two events of one aspect at the very same time, then the first again (a redelivery):
    the record keeps the second. Each id applied at the held time is remembered until a
    later event comes."""
    apply, make, value, seen_field = _aspect(ev, areas, aspect)
    o = apply(None, make(10, "e1", 1)).state
    o = apply(o, make(10, "e2", 2)).state
    o = apply(o, make(10, "e3", 3)).state
    assert (value(o), getattr(o, seen_field)) == (3, ("e1", "e2"))
    for again in ("e1", "e2", "e3"):
        change = apply(o, make(10, again, 1 if again != "e1" else 2))
        assert (change.changed, change.ignored, change.state) == (False, "duplicate", o)
    later = apply(o, make(11, "e4", 1)).state
    assert (value(later), getattr(later, seen_field)) == (1, ())
    assert apply(later, make(10, "e5", 2)).ignored == "out_of_order"


def test_seen_ids_are_bounded(ev: Any) -> None:
    """At most SEEN_MAX ids are remembered at one time, the latest; one more event at that
    time pushes out the oldest (which a redelivery would then apply again)."""
    o = None
    for k in range(SEEN_MAX + 3):
        o = apply_status(o, ev.status("o1", "available", ts=ev.at(5), event_id=f"e{k}")).state
    assert o is not None and o.status_event == f"e{SEEN_MAX + 2}"
    assert o.status_seen == tuple(f"e{k}" for k in range(2, SEEN_MAX + 2))
    assert apply_status(o, ev.status("o1", "committed", ts=ev.at(5), event_id="e2")).ignored
    assert apply_status(o, ev.status("o1", "committed", ts=ev.at(5), event_id="e1")).changed


def test_officer_aspects_are_independent(ev: Any, areas: Any) -> None:
    """An old fix after a newer status (or profile) still applies: each aspect keeps its own ts."""
    o = apply_status(None, ev.status("o1", "available", ts=ev.at(10))).state
    o = apply_profile(o, ev.profile("o1", ts=ev.at(12))).state
    change = apply_location(o, ev.location("o1", -1.82, 52.57, ts=ev.at(1)), areas)
    assert change.changed
    assert (change.state.lon, change.state.lat, change.state.fix_ts) == (-1.82, 52.57, ev.at(1))
    assert change.state.status is Status.AVAILABLE
    assert change.state.status_ts == ev.at(10)
    assert change.state.profile_ts == ev.at(12)
    # and a status older than a newer fix, but newer than the status held
    moved = apply_location(change.state, ev.location("o1", -1.83, 52.57, ts=ev.at(20)), areas)
    later = apply_status(moved.state, ev.status("o1", "committed", ts=ev.at(15)))
    assert later.changed and later.state.status is Status.COMMITTED
    assert later.state.fix_ts == ev.at(20)


@pytest.mark.parametrize(
    ("status", "keeps"),
    [
        ("en_route", True),
        ("at_scene", True),
        ("committed", True),
        ("available", False),
        ("refreshment", False),
        ("off_duty", False),
    ],
)
def test_status_keeps_incident_only_while_committed(ev: Any, status: str, keeps: bool) -> None:
    """incident_id is kept for en_route, at_scene and committed, cleared for any other status."""
    change = apply_status(None, ev.status("o1", status, ts=ev.at(1), incident_id="inc-9"))
    assert change.state.incident_id == ("inc-9" if keeps else None)
    assert change.state.status is Status(status)


def test_profile_fields_are_taken(ev: Any) -> None:
    """A profile sets role, skills, transport, home NPU, neighbourhoods and shift end."""
    end = ev.at(600)
    event = ev.profile(
        "o1",
        role="neighbourhood",
        skills=["taser", "first_aid"],
        transport="bicycle",
        npu="north",
        neighbourhoods=["N01"],
        shift_end=end,
        callsign="NB1",
    )
    o = apply_profile(None, event).state
    assert (o.role, o.skills, o.transport, o.home_npu, o.neighbourhoods, o.shift_end) == (
        Role.NEIGHBOURHOOD,
        ("taser", "first_aid"),
        Transport.BICYCLE,
        "north",
        ("N01",),
        end,
    )
    assert o.callsign == "NB1" and o.has_profile and not o.has_fix


@pytest.mark.parametrize(
    ("lon", "lat", "placement"),
    [
        (-1.8182105, 52.5680851, ("N03", "north", "north-1")),
        (-1.8372933, 52.5216305, ("N10", "north", "north-east")),
        (-1.7996158, 52.4500333, ("E10", "east", "east-2")),
        (-1.5, 52.2, (None, None, None)),  # outside every area: kept, unplaced
    ],
)
def test_location_derives_placement(
    ev: Any, areas: Any, lon: float, lat: float, placement: tuple[Any, ...]
) -> None:
    """A fix records the position and derives neighbourhood, NPU and cluster from the areas."""
    o = apply_location(None, ev.location("o1", lon, lat, ts=ev.at(1)), areas).state
    assert (o.lon, o.lat, o.has_fix) == (lon, lat, True)
    assert (o.neighbourhood, o.npu, o.cluster) == placement


def test_location_leaving_the_areas_clears_placement(ev: Any, areas: Any) -> None:
    """A fix outside every area after one inside keeps the position but drops the placement."""
    o = apply_location(None, ev.location("o1", -1.8182, 52.5681, ts=ev.at(1)), areas).state
    assert o.neighbourhood == "N03"
    o = apply_location(o, ev.location("o1", -1.5, 52.2, ts=ev.at(2)), areas).state
    assert (o.lon, o.lat) == (-1.5, 52.2)
    assert (o.neighbourhood, o.npu, o.cluster) == (None, None, None)
    o = apply_location(o, ev.location("o1", -1.7996, 52.4500, ts=ev.at(3)), areas).state
    assert (o.neighbourhood, o.npu, o.cluster) == ("E10", "east", "east-2")


# -- availability ------------------------------------------------------------------------


def _officer(**kw: Any) -> Officer:
    base: dict[str, Any] = {
        "officer_id": "o1",
        "role": Role.RESPONSE,
        "skills": ("taser",),
        "status": Status.AVAILABLE,
    }
    base.update(kw)
    return Officer(**base)


PLACED = {"lat": 52.5, "lon": -1.8, "neighbourhood": "N03", "npu": "north", "cluster": "north-1"}


@pytest.mark.parametrize(
    ("officer", "keys"),
    [
        (_officer(**PLACED), ("nbhd:N03", "npu:north", "cluster:north-1")),
        (_officer(home_npu="east"), ("npu:east",)),  # no fix yet: counts in the home NPU
        (_officer(home_npu="east", lat=52.2, lon=-1.5), ()),  # fix outside every area
        (_officer(), ()),  # no fix, no home NPU
        (_officer(status=Status.EN_ROUTE, **PLACED), ()),
        (_officer(status=Status.REFRESHMENT, **PLACED), ()),
        (_officer(status=Status.OFF_DUTY, **PLACED), ()),
        (_officer(role=None, **PLACED), ()),  # no profile yet
    ],
)
def test_availability_keys(officer: Officer, keys: tuple[str, ...]) -> None:
    """Only available officers with a profile count, where their fix (or home NPU) puts them."""
    assert availability_keys(officer) == keys


def test_availability_of_counts_roles_and_skills() -> None:
    """One bucket's counts: total, per role and per skill."""
    officers = [
        _officer(officer_id="a", skills=("taser", "first_aid")),
        _officer(officer_id="b", skills=("taser",)),
        _officer(officer_id="c", role=Role.PCSO, skills=()),
    ]
    assert availability_of(officers) == Counter(
        {"total": 3, "role:response": 2, "role:pcso": 1, "skill:taser": 2, "skill:first_aid": 1}
    )
    assert availability_of([]) == Counter()


# -- incidents ---------------------------------------------------------------------------


def _inc(ev: Any, minute: float, event_id: str, state: str = "open", **kw: Any) -> Any:
    return ev.incident(
        "inc-1", -1.82, 52.57, ts=ev.at(minute), event_id=event_id, state=state, **kw
    )


def test_apply_incident_new_and_update(ev: Any) -> None:
    """A new incident makes a record at its ts; a later version replaces it, keeps created_ts."""
    first = apply_incident(None, _inc(ev, 1, "i1"))
    assert first.changed and first.state is not None
    assert first.state.created_ts == ev.at(1) and first.state.awaiting_deployment
    update = apply_incident(first.state, _inc(ev, 3, "i2", category="burglary"))
    assert update.changed and update.state is not None
    assert update.state.incident.category == "burglary"
    assert update.state.created_ts == ev.at(1)
    assert update.state.ts == ev.at(3)


@pytest.mark.parametrize(
    ("minute", "event_id", "ignored"),
    [(5, "i1", "duplicate"), (9, "i1", "duplicate"), (4, "i2", "out_of_order")],
)
def test_apply_incident_ignores_duplicate_and_older(
    ev: Any, minute: int, event_id: str, ignored: str
) -> None:
    """A redelivered or older incident version changes nothing and says why."""
    record = apply_incident(None, _inc(ev, 5, "i1")).state
    change = apply_incident(record, _inc(ev, minute, event_id, category="changed"))
    assert (change.changed, change.ignored, change.state) == (False, ignored, record)


def test_apply_incident_equal_ts_other_id_applies(ev: Any) -> None:
    """Equal ts with another event id is a newer version (log order)."""
    record = apply_incident(None, _inc(ev, 5, "i1")).state
    change = apply_incident(record, _inc(ev, 5, "i2", category="changed"))
    assert change.changed and change.state is not None
    assert change.state.incident.category == "changed"


def test_apply_incident_redelivered_at_the_same_time_is_a_duplicate(ev: Any) -> None:
    """An open version and a close at the very same time, then the open version again (a
    redelivery): a duplicate, not an update to a closed incident."""
    record = apply_incident(None, _inc(ev, 5, "i1")).state
    closed = apply_incident(record, _inc(ev, 5, "i2", state="closed")).state
    assert closed is not None and not closed.is_open and closed.incident_seen == ("i1",)
    change = apply_incident(closed, _inc(ev, 5, "i1"))
    assert (change.changed, change.ignored, change.state) == (False, "duplicate", closed)
    with pytest.raises(Rejected, match="closed"):
        apply_incident(closed, _inc(ev, 5, "i3"))  # a version not seen yet: an update


def test_closed_incident_is_final(ev: Any) -> None:
    """After a close, a later update is rejected; a redelivered close is still a duplicate."""
    record = apply_incident(None, _inc(ev, 1, "i1")).state
    closed = apply_incident(record, _inc(ev, 2, "i2", state="closed"))
    assert closed.changed and closed.state is not None and not closed.state.is_open
    with pytest.raises(Rejected, match="closed"):
        apply_incident(closed.state, _inc(ev, 3, "i3", state="open"))
    assert apply_incident(closed.state, _inc(ev, 2, "i2", state="closed")).ignored == "duplicate"


def test_closed_before_seen_is_kept_closed(ev: Any) -> None:
    """A close for an incident never seen is kept, closed, so that a stray open version
    arriving later cannot bring it back."""
    change = apply_incident(None, _inc(ev, 2, "i2", state="closed"))
    assert change.changed and change.state is not None and not change.state.is_open
    with pytest.raises(Rejected, match="closed"):
        apply_incident(change.state, _inc(ev, 3, "i3", state="open"))
    assert apply_incident(change.state, _inc(ev, 1, "i1", state="open")).ignored == "out_of_order"


# -- deployments -------------------------------------------------------------------------


@pytest.fixture
def record(ev: Any) -> IncidentRecord:
    rec = apply_incident(None, _inc(ev, 1, "i1")).state
    assert rec is not None
    return rec


@pytest.fixture
def officers() -> dict[str, Officer]:
    return {oid: _officer(officer_id=oid) for oid in ("o1", "o2")}


def test_deployment_unknown_incident_rejected(ev: Any, officers: dict[str, Officer]) -> None:
    """A deployment for an incident sdo has never seen is rejected, naming it."""
    with pytest.raises(Rejected, match="unknown incident inc-1"):
        apply_deployment(None, ev.deployment("inc-1", ["o1"], ts=ev.at(2)), officers)


def test_deployment_unknown_officer_rejected(
    ev: Any, record: IncidentRecord, officers: dict[str, Officer]
) -> None:
    """A deployment naming an officer sdo does not know is rejected, naming the officer."""
    with pytest.raises(Rejected, match="ghost"):
        apply_deployment(record, ev.deployment("inc-1", ["o1", "ghost"], ts=ev.at(2)), officers)


def test_deployment_on_closed_incident_rejected(
    ev: Any, record: IncidentRecord, officers: dict[str, Officer]
) -> None:
    """A deployment on a closed incident is rejected."""
    closed = apply_incident(record, _inc(ev, 2, "i2", state="closed")).state
    with pytest.raises(Rejected, match="closed"):
        apply_deployment(closed, ev.deployment("inc-1", ["o1"], ts=ev.at(3)), officers)


@pytest.mark.parametrize(
    ("decision", "officer_ids", "state", "assigned"),
    [
        ("accepted", ["o1"], IncidentState.RESOURCED, ("o1",)),
        ("overridden", ["o2", "o1"], IncidentState.RESOURCED, ("o2", "o1")),
        ("declined", [], IncidentState.OPEN, ()),
    ],
)
def test_deployment_decisions(
    ev: Any,
    record: IncidentRecord,
    officers: dict[str, Officer],
    decision: str,
    officer_ids: list[str],
    state: IncidentState,
    assigned: tuple[str, ...],
) -> None:
    """Accepted/overridden resource the incident and assign the officers; declined keeps it open."""
    event = ev.deployment("inc-1", officer_ids, ts=ev.at(2), decision=decision, by="sdo-7")
    change = apply_deployment(record, event, officers)
    new = change.state
    assert change.changed and new is not None
    assert (new.state, new.assigned, new.decision) == (state, assigned, Decision(decision))
    assert (new.decided_by, new.decision_ts) == ("sdo-7", ev.at(2))
    assert not new.awaiting_deployment
    assert apply_deployment(new, event, officers).ignored == "duplicate"
    older = ev.deployment("inc-1", ["o1"], ts=ev.at(1.5))
    assert apply_deployment(new, older, officers).ignored == "out_of_order"


@pytest.mark.parametrize(
    ("decision", "officer_ids", "expected"),
    [
        ("accepted", ["o1"], [("d-1:o1", "o1")]),
        ("overridden", ["o2", "o1"], [("d-1:o2", "o2"), ("d-1:o1", "o1")]),
        ("declined", [], []),
    ],
)
def test_deployment_statuses(
    ev: Any, decision: str, officer_ids: list[str], expected: list[tuple[str, str]]
) -> None:
    """Deployed officers go en_route to the incident, with ids derived from the deployment's."""
    event = ev.deployment("inc-1", officer_ids, ts=ev.at(2), decision=decision, event_id="d-1")
    statuses = deployment_statuses(event)
    assert [(s.event_id, s.officer_id) for s in statuses] == expected
    assert all(s.status is Status.EN_ROUTE and s.incident_id == "inc-1" for s in statuses)
    assert all(s.ts == ev.at(2) for s in statuses)
    assert deployment_statuses(event) == statuses  # deterministic: a redelivery repeats them


def test_a_redeployment_stands_down_the_officers_it_leaves_out(ev: Any) -> None:
    """An override of a decided incident: the officers it had sent and no longer sends, if
    still en route to it, are available again; one at the scene, or sent elsewhere since,
    is left as they are; one sent again is not stood down."""
    first = ev.deployment("inc-1", ["o1", "o2", "o3", "o4"], ts=ev.at(2), event_id="d-1")
    before = IncidentRecord(
        ev.incident("inc-1", -1.83, 52.56), created_ts=ev.at(0), assigned=first.officer_ids
    )
    officers = {
        "o1": Officer("o1", status=Status.EN_ROUTE, incident_id="inc-1"),
        "o2": Officer("o2", status=Status.AT_SCENE, incident_id="inc-1"),
        "o3": Officer("o3", status=Status.EN_ROUTE, incident_id="inc-9"),
        "o4": Officer("o4", status=Status.EN_ROUTE, incident_id="inc-1"),
    }
    again = ev.deployment(
        "inc-1", ["o4", "o5"], ts=ev.at(5), decision="overridden", event_id="d-2", by="sgt.x"
    )
    statuses = deployment_statuses(again, before, officers)
    assert [(s.event_id, s.officer_id, s.status) for s in statuses] == [
        ("d-2:o4", "o4", Status.EN_ROUTE),
        ("d-2:o5", "o5", Status.EN_ROUTE),
        ("d-2:o1:stood-down", "o1", Status.AVAILABLE),
    ]
    stood = statuses[-1]
    assert stood.incident_id is None and stood.ts == ev.at(5)
    assert stood.note == "stood down by sgt.x: inc-1 redeployed"
    assert deployment_statuses(again, before, officers) == statuses


# -- table storage -----------------------------------------------------------------------


def test_officer_round_trip(ev: Any, areas: Any) -> None:
    """Officer.to_dict survives JSON and from_dict gives the same officer back."""
    o = apply_profile(
        None,
        ev.profile(
            "o1", skills=["taser"], npu="north", neighbourhoods=["N01"], shift_end=ev.at(480)
        ),
    ).state
    o = apply_status(o, ev.status("o1", "en_route", ts=ev.at(1), incident_id="inc-1")).state
    o = apply_location(o, ev.location("o1", -1.8182, 52.5681, ts=ev.at(2)), areas).state
    data = orjson.loads(orjson.dumps(o.to_dict()))
    assert Officer.from_dict(data) == o
    assert Officer.from_dict(Officer("bare").to_dict()) == Officer("bare")


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 12, 6, 8, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 8, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 12, 6, 8, 0, 0, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2026, 6, 1, 12, 30, 5, 7, tzinfo=timezone(timedelta(seconds=3601))),
        datetime(2026, 6, 1, 12, 30),
    ],
)
def test_officer_times_are_stored_as_isoformat_writes_them(when: datetime) -> None:
    """An officer record's times are stored in exactly ``isoformat``'s text (made
    another way for UTC), whatever the offset and the fraction of a second."""
    stored = Officer("o1", fix_ts=when, shift_end=when).to_dict()
    assert stored["fix_ts"] == stored["shift_end"] == when.isoformat()


def test_officer_record_leaves_out_what_is_asked_and_what_is_empty(ev: Any) -> None:
    """``to_dict`` leaves out the fields asked, None and empty tuples, and keeps the
    fields' order."""
    o = Officer("o1", callsign="A1", skills=("taser",), neighbourhoods=(), lat=52.5, lon=-1.8)
    assert list(o.to_dict()) == ["officer_id", "callsign", "skills", "status", "lat", "lon"]
    left = o.to_dict(leave_out=frozenset({"callsign", "lat", "no_such_field"}))
    assert left == {"officer_id": "o1", "skills": ("taser",), "status": Status.OFF_DUTY,
                    "lon": -1.8}  # fmt: skip


def _field_by_field(o: Officer) -> dict[str, Any]:
    """What an officer record holds, by the rule: every field in order, but None and
    empty tuples, times as ISO text."""
    out: dict[str, Any] = {}
    for name, value in zip(Officer._fields, o, strict=True):
        if value is None or value == ():
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


@pytest.mark.parametrize("seed", range(40))
def test_officer_record_is_every_field_by_the_rule(seed: int) -> None:
    """``to_dict`` (written out field by field for speed) against the rule over officers
    with each field set or not, at random: the same keys, in the same order, and values."""
    import random  # noqa: PLC0415

    rng = random.Random(seed)
    when = datetime(2026, 12, 6, 9, 30, 15, rng.choice([0, 250_000]), tzinfo=UTC)
    full = Officer(
        "o1", "A1", Role.RESPONSE, ("taser", "ppu"), Transport.CAR, "north", ("N01",),
        when + timedelta(hours=8), when, "p1", ("p0",), Status.AVAILABLE, "I-1",
        when + timedelta(seconds=1), "s1", ("s0",), 52.5, -1.8, when + timedelta(seconds=2),
        "f1", ("f0",), "N01", "north", "north-1",
    )  # fmt: skip
    bare = Officer("o1")
    o = Officer(*(rng.choice([a, b]) for a, b in zip(full, bare, strict=True)))
    assert list(o.to_dict().items()) == list(_field_by_field(o).items())


def test_deployment_redelivered_at_the_same_time_is_a_duplicate(
    ev: Any, record: IncidentRecord, officers: dict[str, Officer]
) -> None:
    """Two decisions at the very same time, then the first again: the second stands."""
    first = ev.deployment("inc-1", ["o1"], ts=ev.at(2), event_id="d1")
    second = ev.deployment("inc-1", ["o2"], ts=ev.at(2), event_id="d2", decision="overridden")
    held = apply_deployment(apply_deployment(record, first, officers).state, second, officers)
    assert held.state is not None and held.state.decision_seen == ("d1",)
    change = apply_deployment(held.state, first, officers)
    assert (change.ignored, change.state) == ("duplicate", held.state)
    assert held.state.assigned == ("o2",)


def test_incident_record_round_trip(ev: Any, officers: dict[str, Officer]) -> None:
    """IncidentRecord.to_dict survives JSON and from_dict gives the same record back."""
    record = apply_incident(None, _inc(ev, 1, "i1", required_skills=["taser"], grade=2)).state
    assert record is not None
    assert IncidentRecord.from_dict(orjson.loads(orjson.dumps(record.to_dict()))) == record
    deployed = apply_deployment(record, ev.deployment("inc-1", ["o1"], ts=ev.at(2)), officers).state
    assert deployed is not None
    assert IncidentRecord.from_dict(orjson.loads(orjson.dumps(deployed.to_dict()))) == deployed


def test_seen_ids_round_trip(ev: Any, areas: Any, officers: dict[str, Officer]) -> None:
    """The ids seen at an aspect's time are stored with the record and read back."""
    o = None
    for k in range(3):
        o = apply_status(o, ev.status("o1", "available", ts=ev.at(1), event_id=f"s{k}")).state
        o = apply_location(
            o, ev.location("o1", -1.82, 52.57, ts=ev.at(2), event_id=f"f{k}"), areas
        ).state
    assert o is not None and o.status_seen == ("s0", "s1") and o.fix_seen == ("f0", "f1")
    assert Officer.from_dict(orjson.loads(orjson.dumps(o.to_dict()))) == o
    record = apply_incident(None, _inc(ev, 1, "i1")).state
    record = apply_incident(record, _inc(ev, 1, "i2")).state
    assert record is not None
    for d in ("d1", "d2"):
        dep = ev.deployment("inc-1", ["o1"], ts=ev.at(2), event_id=d)
        record = apply_deployment(record, dep, officers).state
        assert record is not None
    assert (record.incident_seen, record.decision_seen) == (("i1",), ("d1",))
    assert IncidentRecord.from_dict(orjson.loads(orjson.dumps(record.to_dict()))) == record


# -- merging records written by another worker -----------------------------------------


def test_merge_takes_newer_aspects_and_keeps_ours_otherwise(ev: Any, areas: Any) -> None:
    """Per aspect: a later time wins; an older one, or our own record again, changes nothing."""
    ours = apply_status(None, ev.status("o1", "available", ts=ev.at(5), event_id="s1")).state
    ours = apply_profile(ours, _profile(ev, "o1", ev.at(5), "p1", "A1")).state
    theirs = apply_status(ours, ev.status("o1", "committed", ts=ev.at(6), event_id="s2")).state
    theirs = apply_profile(theirs, _profile(ev, "o1", ev.at(4), "p0", "Z9")).state  # older: kept
    merged = merge_officer(ours, theirs)
    assert merged.changed
    assert (merged.state.status, merged.state.callsign) == (Status.COMMITTED, "A1")
    assert merge_officer(merged.state, merged.state).ignored == "not_newer"
    assert merge_officer(merged.state, ours).ignored == "not_newer"


def test_merge_at_the_same_time_agrees_and_keeps_every_seen_id(ev: Any) -> None:
    """Two workers applied different statuses at the same time: merged either way round,
    both end with the same record (the greater id wins) and remember both ids, so neither
    applies either event again."""
    base = apply_status(None, ev.status("o1", "available", ts=ev.at(5), event_id="s0")).state
    a = apply_status(base, ev.status("o1", "committed", ts=ev.at(5), event_id="s1")).state
    b = apply_status(base, ev.status("o1", "en_route", ts=ev.at(5), event_id="s2")).state
    ab, ba = merge_officer(a, b).state, merge_officer(b, a).state
    assert ab == ba
    assert (ab.status, ab.status_event, set(ab.status_seen)) == (
        Status.EN_ROUTE,
        "s2",
        {"s0", "s1"},
    )
    for again in ("s0", "s1", "s2"):
        assert apply_status(ab, ev.status("o1", "at_scene", ts=ev.at(5), event_id=again)).ignored
    assert merge_officer(ab, a).ignored == "not_newer"


def test_merge_at_the_same_time_takes_the_side_that_applied_last(ev: Any) -> None:
    """One worker applied s9 then s1 at one time, the other only s9: whichever way round,
    the merge keeps s1 (applied after s9), though s9 is the greater id."""
    base = apply_status(None, ev.status("o1", "available", ts=ev.at(5), event_id="s9")).state
    both = apply_status(base, ev.status("o1", "committed", ts=ev.at(5), event_id="s1")).state
    assert merge_officer(both, base).ignored == "not_newer"
    taken = merge_officer(base, both)
    assert taken.changed and taken.state == both
    assert (taken.state.status_event, taken.state.status_seen) == ("s1", ("s9",))
