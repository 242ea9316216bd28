"""sdo.domain.world: live re-recommendation, availability, alerts and determinism (pure).

Every scenario runs on event time only: the ``ts`` of the events fed to
:meth:`World.apply`, and :meth:`World.advance` to let time pass without an event.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from sdo.domain.state import Officer, availability_keys, availability_of
from sdo.domain.world import World
from sdo.errors import Rejected
from sdo.events import AlertKind, IncidentState, Recommendation, Status, Transport, encode


def _count_recommendations(monkeypatch: pytest.MonkeyPatch, world: World) -> list[str]:
    """From now on, the id of every incident the World's recommender computes, in order."""
    real = world._recommend
    computed: list[str] = []

    def counted(record: Any, *args: Any) -> Recommendation:
        computed.append(record.incident_id)
        return real(record, *args)

    monkeypatch.setattr(world, "_recommend", counted)
    return computed


# -- live re-recommendation ----------------------------------------------------------------


@pytest.fixture
def staffed(force: Any, ev: Any) -> Any:
    """An emergency at Wylde Green's centroid, recommended to ``a`` (0.2 km) over ``b`` (2.7 km)."""
    f = force()
    f.officer("a", f.place("N06", east_m=200))
    f.officer("b", f.place("N03"))
    f.officer("c", f.place("E12"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    assert f.recommendation("i1").recommended == ("a",)
    return f


@pytest.mark.parametrize(
    ("status", "recommended"),
    [
        ("off_duty", ("b",)),
        ("committed", ("b",)),
        ("en_route", ("b",)),
        # a meal break may still be called for grade 1: a stays first (penalised, said so)
        ("refreshment", None),
    ],
)
def test_recommended_officer_unavailable_reissues(
    staffed: Any, ev: Any, status: str, recommended: tuple[str, ...] | None
) -> None:
    """When the recommended officer stops being available, a new recommendation leaves them out."""
    effects = staffed.apply(ev.status("a", status, ts=ev.at(2), incident_id="other"))
    recs = [r for r in effects.recommendations if r.incident_id == "i1"]
    if recommended is None:
        current = staffed.recommendation("i1")
        assert current.recommended == ("a",)
        assert any("refreshment" in r for r in current.candidates[0].reasons)
        return
    assert len(recs) == 1
    assert recs[0].recommended == recommended
    assert "a" not in [c.officer_id for c in recs[0].candidates]
    assert staffed.recommendation("i1") == recs[0]


@pytest.mark.parametrize("how", ["status", "fix", "new_officer"])
def test_clearly_closer_officer_reissues(staffed: Any, ev: Any, how: str) -> None:
    """A suitable officer who becomes available much closer than the first is recommended."""
    f = staffed
    f.apply(ev.status("a", "off_duty", ts=ev.at(2)))
    assert f.recommendation("i1").recommended == ("b",)
    near = f.place("N06", east_m=-150)
    if how == "status":  # was busy nearby, comes free
        f.officer("d", near, ts=ev.at(3), status="committed")
        effects = f.apply(ev.status("d", "available", ts=ev.at(4)))
    elif how == "fix":  # was available far away, drives close
        f.officer("d", f.place("E11"), ts=ev.at(3))
        effects = f.apply(ev.location("d", *near, ts=ev.at(4)))
    else:
        effects = f.officer("d", near, ts=ev.at(4))
    recs = [r for r in effects.recommendations if r.incident_id == "i1"]
    assert len(recs) == 1, how
    assert recs[0].recommended == ("d",)


def test_first_fix_of_an_available_officer_reaches_a_short_dispatch(force: Any, ev: Any) -> None:
    """An officer who books on (available) before their first AVL fix cannot be placed;
    the fix that places them is news to a dispatch short of officers, as a new status is,
    not a mere move that leaves the incident waiting for an unrelated change."""
    f = force()
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    assert f.recommendation("i1").recommended == ()
    f.officer("d", None, ts=ev.at(2))  # profile and available, no fix yet
    assert f.recommendation("i1").recommended == ()
    effects = f.apply(ev.location("d", *f.place("N03"), ts=ev.at(3)))
    assert [r.recommended for r in effects.recommendations if r.incident_id == "i1"] == [("d",)]


def _towards(
    start: tuple[float, float], end: tuple[float, float], steps: int
) -> list[tuple[float, float]]:
    return [
        (start[0] + (end[0] - start[0]) * k / steps, start[1] + (end[1] - start[1]) * k / steps)
        for k in range(1, steps + 1)
    ]


@pytest.mark.parametrize("fixes", [1, 4])
def test_recommended_officer_driving_away_reissues(force: Any, ev: Any, fixes: int) -> None:
    """The recommended officer moves away until another, who never moved, is clearly
    nearer: the recommendation follows, after one long move or several shorter ones."""
    f = force()
    f.officer("a", f.place("N06", east_m=200))
    f.officer("b", f.place("N03"))  # 2.7 km away
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    assert f.recommendation("i1").recommended == ("a",)
    published = []
    for n, (lon, lat) in enumerate(_towards(f.place("N06"), f.place("E11"), fixes)):
        effects = f.apply(ev.location("a", lon, lat, ts=ev.at(2 + n)))
        published += [r.recommended for r in effects.recommendations if r.incident_id == "i1"]
    assert published == [("b",)]
    assert f.recommendation("i1").recommended == ("b",)


def _at_eta(world: Any, centre: tuple[float, float], eta_s: float, *, bearing: str) -> Any:
    """A point from which a car's grade-1 ETA to ``centre`` is ``eta_s`` (east or north)."""
    from tests.domain.conftest import offset  # noqa: PLC0415

    metres = eta_s * world.policy.speed(Transport.CAR, 1) / world.policy.detour_factor
    return offset(centre, **{"east_m" if bearing == "east" else "north_m": metres})


def test_a_mover_is_compared_with_where_the_first_officer_is_now(force: Any, ev: Any) -> None:
    """The recommended officer drifts away by less than better_by_s, another comes closer by
    less than better_by_s: neither alone triggers anything, but together the newcomer is
    clearly nearer than the first is now, and the recommendation follows."""
    f = force()
    centre = f.place("N06")
    f.officer("a", _at_eta(f.world, centre, 150, bearing="east"))
    f.officer("c", _at_eta(f.world, centre, 400, bearing="north"))
    f.apply(ev.incident("i1", *centre, ts=ev.at(1), graded_as="emergency"))
    assert f.recommendation("i1").recommended == ("a",)
    drift = f.apply(ev.location("a", *_at_eta(f.world, centre, 190, bearing="east"), ts=ev.at(2)))
    assert drift.recommendations == []  # 40 s worse: not enough on its own
    closer = f.apply(ev.location("c", *_at_eta(f.world, centre, 110, bearing="north"), ts=ev.at(3)))
    # 40 s better than a's first ETA (not 60), but 80 s better than a's ETA now
    assert [r.recommended for r in closer.recommendations] == [("c",)]


def test_an_officer_held_elsewhere_moving_closer_costs_nothing(
    force: Any, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An officer held by a pending dispatch of the same or a higher grade cannot be given
    to another: their moves near it recompute nothing (with the closest policy, where
    every incident is a pending dispatch, that was most of an evaluation's work). Released,
    they are offered again (tests/domain/test_joint.py)."""
    f = force()
    centre = f.place("N06")
    f.officer("x", _at_eta(f.world, centre, 100, bearing="east"))
    f.officer("y", _at_eta(f.world, centre, 500, bearing="north"))
    f.apply(ev.incident("A", *centre, ts=ev.at(1), graded_as="emergency"))
    f.apply(
        ev.incident(
            "B", *_at_eta(f.world, centre, 60, bearing="north"), ts=ev.at(2), graded_as="emergency"
        )
    )
    assert f.recommendation("A").recommended == ("x",)
    assert f.recommendation("B").recommended == ("y",)  # x is nearer, but held by A
    computed = _count_recommendations(monkeypatch, f.world)
    for n in range(3):  # x wanders between A and B, never far from A
        f.apply(
            ev.location(
                "x", *_at_eta(f.world, centre, 20 + 10 * n, bearing="north"), ts=ev.at(3 + n)
            )
        )
    assert computed == []
    assert f.recommendation("B").recommended == ("y",)


def test_an_officer_taken_by_the_first_of_an_offer_still_reaches_a_later_allocation(
    force: Any, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An officer coming on duty is offered to the short dispatches (an emergency, then a
    priority call) and counted for a scheduled call, all by priority. The emergency takes
    them; the priority call, finding them held, is passed over without being computed
    (World._offer_in_turn); the scheduled call after it is still recomputed, and
    recommends them."""
    f = force()
    centre = f.place("N06")
    f.officer("o", _at_eta(f.world, centre, 200, bearing="east"), status="off_duty")
    f.apply(ev.incident("e", *centre, ts=ev.at(1), graded_as="emergency"))
    f.apply(ev.incident("p", *centre, ts=ev.at(2), graded_as="priority"))
    f.apply(ev.incident("s", *centre, ts=ev.at(3), graded_as="scheduled"))
    assert [f.recommendation(i).recommended for i in "eps"] == [(), (), ()]
    computed = _count_recommendations(monkeypatch, f.world)
    effects = f.apply(ev.status("o", "available", ts=ev.at(4)))
    assert computed == ["e", "s"]
    assert {r.incident_id: r.recommended for r in effects.recommendations} == {
        "e": ("o",),
        "s": ("o",),
    }


def test_drift_is_measured_from_the_last_computation(
    force: Any, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drift that changes nothing is recomputed once; the next small moves compare with
    that computation, not with the first, so they cost nothing."""
    f = force()
    f.officer("a", f.place("N06", east_m=200))
    f.officer("b", f.place("E11"))  # far: a stays first however a drifts here
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    computed = _count_recommendations(monkeypatch, f.world)
    away = f.place("N03")  # minutes further for a car at blue lights, still the nearest
    effects = f.apply(ev.location("a", *away, ts=ev.at(2)))
    assert computed == ["i1"] and effects.recommendations == []
    for n in range(3):
        f.apply(ev.location("a", away[0], away[1] + 0.0001 * (n + 1), ts=ev.at(3 + n)))
    assert computed == ["i1"]
    assert f.recommendation("i1").recommended == ("a",)


@pytest.mark.parametrize(
    "event",
    [
        lambda ev, f: ev.location("c", *f.place("E11"), ts=ev.at(2)),  # far officer moves
        lambda ev, f: ev.location("a", *f.place("N06", east_m=250), ts=ev.at(2)),  # ETA drift
        lambda ev, f: ev.location("b", *f.place("N03", north_m=100), ts=ev.at(2)),  # 2nd moves
        lambda ev, f: ev.status("c", "committed", ts=ev.at(2)),  # far officer busy
        lambda ev, f: ev.profile("c", ts=ev.at(2), skills=["dog"]),  # far officer's profile
        lambda ev, f: ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"),
    ],
    ids=[
        "far-fix",
        "recommended-drifts",
        "second-drifts",
        "far-status",
        "far-profile",
        "redelivery",
    ],
)
def test_irrelevant_change_does_not_reissue(staffed: Any, ev: Any, event: Any) -> None:
    """A change that alters nothing the SDO acts on publishes no new recommendation."""
    effects = staffed.apply(event(ev, staffed))
    assert effects.recommendations == []
    assert staffed.recommendation("i1").recommended == ("a",)


@pytest.mark.parametrize(("lon", "lat"), [(-1.8, 52.5), (-1.2, 60.3), (25.0, 70.5), (0.0, 0.0)])
def test_race_box_never_excludes_an_officer_who_would_win(
    staffed: Any, ev: Any, lon: float, lat: float
) -> None:
    """The lat/lon box a moving officer is tested against first (World._beats) holds every
    point from which some transport's ETA beats the first candidate by better_by_s, even
    after the first has drifted by up to better_by_s (more triggers a recomputation), at
    any latitude (the box widens in longitude with 1/cos(lat))."""
    from sdo.domain.contest import Race  # noqa: PLC0415
    from sdo.domain.geo import haversine_m  # noqa: PLC0415
    from sdo.domain.recommend import DispatchRule  # noqa: PLC0415

    staffed.apply(ev.status("a", "off_duty", ts=ev.at(2)))  # b, 2.7 km away, is first
    world = staffed.world
    policy = world.policy
    rec = world.recommendation("i1")
    assert rec.recommended == ("b",)
    incident = ev.incident("far", lon, lat, graded_as="emergency")
    rule = DispatchRule.of(policy, world.grading("i1"), world.incidents["i1"].incident)
    race = Race.of(rec, incident, rule, policy, published=rec)
    assert race.best is not None and not race.short
    rng = random.Random(3)
    reach_deg = 0.05 / max(math.cos(math.radians(lat)), 0.05)
    inside = winners = 0
    for _ in range(20_000):
        plon = lon + rng.uniform(-reach_deg, reach_deg)
        plat = lat + rng.uniform(-0.05, 0.05)
        d = haversine_m(plon, plat, lon, lat)
        fastest = min(eta for t in Transport if (eta := policy.eta_s(d, t, rec.grade)) is not None)
        boxed = race.south <= plat <= race.north and race.west <= plon <= race.east
        inside += boxed
        if fastest + policy.better_by_s < race.best + policy.better_by_s:
            winners += 1
            assert boxed, (plon, plat, d)
    assert winners > 100 and inside < 20_000  # both sides of the edge were sampled


@pytest.mark.parametrize("incidents", [6, 30])  # the Python loop, and all at once (numpy)
def test_contenders_hold_every_dispatch_a_mover_could_win(
    force: Any, ev: Any, rules: Any, incidents: int
) -> None:
    """World._contenders (boxes, then distances against the best ETA) leaves out no pending
    dispatch that World._beats would say a moving officer wins, wherever they move and
    whatever their transport, with recommended officers drifted by up to better_by_s."""
    from sdo.domain.recommend import Policy  # noqa: PLC0415
    from tests.domain.conftest import offset  # noqa: PLC0415

    f = force(Policy.from_mapping("closest", rules.recommend))
    world = f.world
    rng = random.Random(5)
    hoods = sorted(f.areas.neighbourhoods)
    for n in range(3 * incidents):
        f.officer(f"r{n:03d}", f.place(rng.choice(hoods)), transport=rng.choice(["car", "van"]))
    for n in range(incidents):
        where = f.place(rng.choice(hoods))
        f.apply(ev.incident(f"i{n:02d}", *where, ts=ev.at(1), grade=rng.choice([1, 2, 3])))
    assert len(world._dispatching) == incidents
    # each first officer drifts away by 90% of better_by_s: no recomputation yet
    policy = world.policy
    for iid in sorted(world._dispatching):
        rec = world.recommendation(iid)
        if not rec.recommended:
            continue
        first = world.officers[rec.recommended[0]]
        site = world.incidents[iid].incident
        speed = policy.speed(first.transport, rec.grade)
        metres = 0.9 * policy.better_by_s * speed / policy.detour_factor
        d = math.hypot(first.lon - site.lon, first.lat - site.lat) or 1.0
        lon = first.lon + (first.lon - site.lon) / d * metres / 68_000
        lat = first.lat + (first.lat - site.lat) / d * metres / 111_000
        effects = f.apply(ev.location(first.officer_id, lon, lat, ts=ev.at(1, seconds=30)))
        assert effects.recommendations == []
    assert sum(not r.short for r in world._races.values()) >= 16 or incidents < 16
    wins = 0
    for step in range(1500):
        hood = rng.choice(hoods)
        lon, lat = offset(
            f.place(hood), east_m=rng.uniform(-3000, 3000), north_m=rng.uniform(-3000, 3000)
        )
        transport = rng.choice([Transport.CAR, Transport.FOOT, Transport.MOTORCYCLE])
        who = f"r{rng.randrange(3 * incidents):03d}"  # held by a dispatch, or not
        mover = world.officers[who]._replace(lon=lon, lat=lat, transport=transport)
        held = world.holder(who)
        contenders = set(world._contenders(lon, lat, transport, 9 if held is None else held[1]))
        for iid in world._dispatching:
            rec = world.recommendation(iid)
            if who not in rec.recommended and world._beats(mover, rec, ev.at(2), moved_only=True):
                wins += 1
                assert iid in contenders, (step, iid, lon, lat, transport)
    assert wins > 20  # the case is not vacuous


# -- allocations (neighbourhood, investigator) when officers come and go -------------------


@pytest.fixture
def investigations(force: Any, ev: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An investigator incident in the north NPU, recommended to ``inv-n`` (north, no load);
    ``f.computed`` counts the World's recommender calls from here on."""
    f = force()
    f.officer("inv-n", None, role="investigator", transport="desk", npu="north")
    f.apply(ev.incident("i1", *f.place("N03"), ts=ev.at(1), graded_as="investigator"))
    assert f.recommendation("i1").recommended == ("inv-n",)
    f.computed = _count_recommendations(monkeypatch, f.world)
    return f


@pytest.mark.parametrize(
    ("newcomer", "recomputed"),
    [
        ({"npu": "east"}, False),  # another NPU's investigator ranks after inv-n
        ({"npu": "north", "role": "response", "transport": "car"}, False),  # not the pool
        ({"npu": "north", "skills": ["dog"]}, False),  # same tier, same load: id breaks the tie
    ],
)
def test_officer_who_cannot_rank_first_does_not_recompute_an_allocation(
    investigations: Any, ev: Any, newcomer: dict[str, Any], recomputed: bool
) -> None:
    """An officer coming on duty who would rank behind the recommended one changes nothing,
    so the allocation is not recomputed (with many open allocations at a shift change,
    recomputing them all was the costliest step of an evaluation)."""
    f = investigations
    profile = {"role": "investigator", "transport": "desk", **newcomer}
    f.officer("inv-z", None, ts=ev.at(2), **profile)
    assert bool(f.computed) is recomputed
    assert f.recommendation("i1").recommended == ("inv-n",)


def test_officer_who_ranks_first_recomputes_an_allocation(investigations: Any, ev: Any) -> None:
    """A same-NPU investigator with a lighter load coming on duty takes the allocation."""
    f = investigations
    t = 2.0
    for k in range(2):  # inv-n takes two other open allocations
        iid = f"load-{k}"
        f.apply(ev.incident(iid, *f.place("E12"), ts=ev.at(t), graded_as="investigator"))
        f.apply(ev.deployment(iid, ["inv-n"], ts=ev.at(t + 0.1), decision="overridden"))
        t += 0.2
    mark = len(f.outputs)
    f.computed.clear()
    f.officer("inv-a", None, ts=ev.at(t + 1), role="investigator", transport="desk", npu="north")
    assert "i1" in f.computed
    assert [r.recommended for r in f.recs_for("i1", since=mark)] == [("inv-a",)]


def test_recommended_officer_going_off_duty_recomputes_an_allocation(
    investigations: Any, ev: Any
) -> None:
    """The recommended investigator going off duty leaves the allocation short: re-issued."""
    f = investigations
    f.officer("inv-e", None, ts=ev.at(2), role="investigator", transport="desk", npu="east")
    mark = len(f.outputs)
    f.apply(ev.status("inv-n", "off_duty", ts=ev.at(3)))
    assert [r.recommended for r in f.recs_for("i1", since=mark)] == [("inv-e",)]
    f.apply(ev.status("inv-e", "off_duty", ts=ev.at(4)))
    assert f.recommendation("i1").recommended == ()
    f.computed.clear()
    f.apply(ev.status("inv-e", "available", ts=ev.at(5)))  # short: anyone eligible counts
    assert f.recommendation("i1").recommended == ("inv-e",)


def test_short_allocation_is_not_recomputed_for_an_officer_it_cannot_rank(
    force: Any, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An allocation short of officers (no investigator on duty) recommends everyone it
    ranks: an investigator who appears off duty changes nothing and recomputes nothing;
    the same investigator coming on duty is recommended."""
    f = force()
    f.apply(ev.incident("i1", *f.place("N03"), ts=ev.at(1), graded_as="investigator"))
    assert f.recommendation("i1").recommended == ()
    computed = _count_recommendations(monkeypatch, f.world)
    f.officer("inv-z", None, ts=ev.at(2), status="off_duty", role="investigator", npu="north")
    assert computed == []
    f.apply(ev.status("inv-z", "available", ts=ev.at(3)))
    assert computed == ["i1"]
    assert f.recommendation("i1").recommended == ("inv-z",)


def test_short_allocation_says_when_the_officers_on_duty_lack_its_skills(
    force: Any, ev: Any
) -> None:
    """An investigator without the skill an allocation needs cannot be ranked, but their
    coming on or going off duty changes what its shortfall says."""
    f = force()
    f.officer("inv-a", None, status="off_duty", role="investigator", npu="north")
    where = f.place("N03")
    f.apply(
        ev.incident("i1", *where, ts=ev.at(1), graded_as="investigator", required_skills=["dog"])
    )
    nobody = "no investigator officer on duty"
    assert f.recommendation("i1").shortfalls[0] == nobody
    f.apply(ev.status("inv-a", "available", ts=ev.at(2)))
    assert f.recommendation("i1").shortfalls[0] == f"{nobody} holding dog"
    f.apply(ev.status("inv-a", "off_duty", ts=ev.at(3)))
    assert f.recommendation("i1").shortfalls[0] == nobody


def test_named_officer_coming_on_duty_takes_the_neighbourhood_incident(force: Any, ev: Any) -> None:
    """The area's named officer coming on duty is recommended over the team member."""
    f = force()
    team = {"npu": "north", "neighbourhoods": ["N01"], "transport": "foot"}
    f.officer("N-0101", None, status="off_duty", role="neighbourhood", **team)
    f.officer("team", None, role="pcso", **team)
    f.apply(ev.incident("i1", *f.place("N01"), ts=ev.at(1), graded_as="neighbourhood"))
    assert f.recommendation("i1").recommended == ("team",)
    mark = len(f.outputs)
    f.apply(ev.status("N-0101", "available", ts=ev.at(2)))
    assert [r.recommended for r in f.recs_for("i1", since=mark)] == [("N-0101",)]


def test_accepted_deployment_resources_and_stops_recommending(staffed: Any, ev: Any) -> None:
    """Accepted: officers en_route to it, incident resourced, no more recommendations for it."""
    f = staffed
    effects = f.apply(ev.deployment("i1", ["a"], ts=ev.at(2)))
    assert f.world.incidents["i1"].state is IncidentState.RESOURCED
    assert (f.world.officers["a"].status, f.world.officers["a"].incident_id) == (
        Status.EN_ROUTE,
        "i1",
    )
    assert [o.officer_id for o in effects.officers] == ["a"]
    assert f.world.recommendation("i1") is None
    assert effects.recommendations == []
    mark = len(f.outputs)
    f.officer("d", f.place("N06", east_m=-50), ts=ev.at(3))  # a closer officer appears
    f.apply(ev.status("a", "available", ts=ev.at(4)))
    f.apply(ev.status("b", "off_duty", ts=ev.at(5)))
    assert f.recs_for("i1", since=mark) == []
    assert f.world.load("a") == 1


def test_declined_deployment_stops_recommending(staffed: Any, ev: Any) -> None:
    """Declined: the incident stays open but awaits nothing, so it is not recommended again."""
    f = staffed
    f.apply(ev.deployment("i1", ts=ev.at(2), decision="declined"))
    assert f.world.incidents["i1"].state is IncidentState.OPEN
    assert f.world.recommendation("i1") is None
    mark = len(f.outputs)
    f.apply(ev.status("a", "off_duty", ts=ev.at(3)))
    assert f.recs_for("i1", since=mark) == []


def test_deployment_before_its_incident_waits_and_applies_when_it_arrives(
    force: Any, ev: Any
) -> None:
    """A deployment read before its incident (another partition, a console's decision
    overtaking the feed) is not refused: it waits, changes nothing meanwhile, and applies
    when the incident arrives (officer en route, incident resourced)."""
    f = force()
    f.officer("a", f.place("N06"))
    waiting = f.apply(ev.deployment("i1", ["a"], ts=ev.at(2)))
    assert waiting.ignored == "waiting_for_incident"
    assert waiting.refused == [] and waiting.officers == [] and waiting.incidents == []
    arrived = f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    record = f.world.incidents["i1"]
    assert record.decision is not None and record.decision.value == "accepted"
    assert record.state.value == "resourced" and record.assigned == ("a",)
    assert f.world.officers["a"].status.value == "en_route"
    assert arrived.refused == []


def test_a_deployment_waits_for_its_incident_ten_minutes_of_event_time(force: Any, ev: Any) -> None:
    """One whose incident never comes is refused (Effects.refused: the worker dead-letters
    it) once event time is WAIT past its ts, not before; one more than PER_INCIDENT for the
    same incident is refused at once."""
    from sdo.domain.waiting import PER_INCIDENT, WAIT  # noqa: PLC0415

    f = force()
    f.officer("a", f.place("N06"))
    f.apply(ev.deployment("nope", ["a"], ts=ev.at(1)))
    wait_min = WAIT.total_seconds() / 60
    assert f.advance(ev.at(1 + wait_min - 0.01)).refused == []
    refused = f.advance(ev.at(1 + wait_min)).refused
    assert [(d.incident_id, why.split(" (")[0]) for d, why in refused] == [
        ("nope", "deployment for unknown incident nope")
    ]
    for n in range(PER_INCIDENT):
        f.apply(ev.deployment("later", ["a"], ts=ev.at(20), event_id=f"d{n}"))
    with pytest.raises(Rejected, match="unknown incident later"):
        f.apply(ev.deployment("later", ["a"], ts=ev.at(20), event_id="one-too-many"))


def test_a_deployment_naming_officers_not_known_yet_waits_for_each_and_applies(
    force: Any, ev: Any
) -> None:
    """With several workers an officer of another's partitions is known once that worker
    wrote them to the table: a deployment naming them waits (nothing changes, nothing is
    refused), waits again for the next officer not known, and applies when the last is
    known, whether by an event of this World or by a record merged from the table."""
    f = force()
    f.officer("a", f.place("N06"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    waiting = f.apply(ev.deployment("i1", ["a", "x", "y"], ts=ev.at(2)))
    assert waiting.ignored == "waiting_for_officer" and waiting.refused == []
    assert waiting.officers == [] and waiting.incidents == []
    assert f.world.incidents["i1"].decision is None
    came = f.apply(ev.profile("x", ts=ev.at(3)))
    assert came.ignored is None and came.refused == [] and came.incidents == []
    assert f.world.incidents["i1"].decision is None, "y is not known yet"
    other = World(f.areas, f.world.rules)
    other.apply(ev.profile("y", ts=ev.at(4)))
    merged = f.world.merge_officer(other.officers["y"])
    record = f.world.incidents["i1"]
    assert record.state.value == "resourced" and record.assigned == ("a", "x", "y")
    assert [r.incident_id for r in merged.incidents] == ["i1"] and merged.refused == []
    assert {o: f.world.officers[o].status.value for o in "axy"} == dict.fromkeys("axy", "en_route")
    assert f.world.waiting_ids() == set()


def test_a_deployment_waits_for_an_officer_ten_minutes_of_event_time(force: Any, ev: Any) -> None:
    """One naming an officer who never appears is refused once event time is WAIT past its
    ts (from its own ts, however many officers it waited for), and the incident still
    awaits a decision."""
    from sdo.domain.waiting import WAIT  # noqa: PLC0415

    f = force()
    f.officer("a", f.place("N06"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency"))
    f.apply(ev.deployment("i1", ["x", "ghost"], ts=ev.at(2)))
    f.apply(ev.profile("x", ts=ev.at(5)))
    wait_min = WAIT.total_seconds() / 60
    assert f.advance(ev.at(2 + wait_min - 0.01)).refused == []
    refused = f.advance(ev.at(2 + wait_min)).refused
    assert [(d.incident_id, why) for d, why in refused] == [
        ("i1", f"deployment names unknown officer ghost (waited {wait_min:.0f} min of event "
         "time for them)")
    ]  # fmt: skip
    assert f.world.incidents["i1"].awaiting_deployment
    assert f.world.officers["x"].status.value == "off_duty", "not sent: still as profiled"


# -- availability --------------------------------------------------------------------------


def _implied(officers: dict[str, Officer] | Any) -> dict[str, dict[str, int]]:
    groups: dict[str, list[Officer]] = {}
    for o in officers.values():
        for key in availability_keys(o):
            groups.setdefault(key, []).append(o)
    return {key: dict(availability_of(group)) for key, group in groups.items()}


def _random_events(ev: Any, f: Any, seed: int, n: int, start_min: float = 0.0) -> list[Any]:
    rng = random.Random(seed)
    nbhds = sorted(f.areas.neighbourhoods)
    roles = ["response", "response", "neighbourhood", "pcso", "force_support", "investigator"]
    skills = ["taser", "first_aid", "dog", "public_order"]
    statuses = [s.value for s in Status]
    events: list[Any] = []
    for step in range(n):
        ts = ev.at(start_min, seconds=step * 7)
        oid = f"o{rng.randrange(12)}"
        roll = rng.random()
        if roll < 0.2:
            events.append(
                ev.profile(
                    oid,
                    ts=ts,
                    role=rng.choice(roles),
                    npu=rng.choice(["north", "east", None]),
                    skills=rng.sample(skills, rng.randrange(3)),
                )
            )
        elif roll < 0.5:
            events.append(ev.status(oid, rng.choice(statuses), ts=ts))
        elif roll < 0.9:
            nb = rng.choice(nbhds)
            where = f.place(nb) if rng.random() < 0.9 else (-1.5, 52.2)  # sometimes outside
            events.append(ev.location(oid, *where, ts=ts))
        else:
            late = ts - timedelta(minutes=3)
            events.append(ev.status(oid, rng.choice(statuses), ts=late))
        if rng.random() < 0.1:
            events.append(events[rng.randrange(len(events))])  # a redelivery
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_availability_counts_equal_what_officers_imply(force: Any, ev: Any, seed: int) -> None:
    """After every event the availability buckets equal a recount from the officer records."""
    f = force()
    for event in _random_events(ev, f, seed, 250):
        f.apply(event)
        implied = _implied(f.world.officers)
        held = f.world.availability()
        for key in implied.keys() | held.keys():
            assert held.get(key, {}) == implied.get(key, {}), (key, event)


# -- alerts --------------------------------------------------------------------------------


def _east2(f: Any, ev: Any) -> None:
    """Staff east-2 (minimum cover 4) one by one, then take one unit away and give it back."""
    for i, nb in enumerate(["E06", "E07", "E08", "E09"]):
        f.officer(f"e{i}", f.place(nb), ts=ev.at(i))
    f.officer("pcso", f.place("E10"), ts=ev.at(5), role="pcso")  # not a response officer
    f.apply(ev.status("e0", "committed", ts=ev.at(6)))
    f.apply(ev.status("e0", "available", ts=ev.at(7)))


def test_cover_gap_raised_and_cleared(force: Any, ev: Any) -> None:
    """cover_gap is raised when a cluster drops below its minimum and cleared (active false) when
    restored."""
    f = force()
    _east2(f, ev)
    gaps = [a for a in f.alerts("cover_gap") if a.subject == "east-2"]
    assert [a.active for a in gaps] == [True, False, True, False]
    assert all(a.area_id == "east-2" for a in gaps)
    assert "1 response officers available, minimum cover 4" in gaps[0].message
    assert "3 response officers available" in gaps[2].message


def test_alert_is_dated_at_the_event_that_caused_it(force: Any, ev: Any) -> None:
    """An event-driven alert carries the ts of the event that raised it, not the previous one's."""
    f = force()
    _east2(f, ev)
    gaps = [a.ts for a in f.alerts("cover_gap") if a.subject == "east-2"]
    # raised by e0's fix (0), cleared by e3's fix (3), raised by e0 committed (6), cleared (7)
    assert gaps == [ev.at(0), ev.at(3), ev.at(6), ev.at(7)]


def test_stale_location_after_five_minutes(force: Any, ev: Any) -> None:
    """An available officer with no fix for 5 min of event time is flagged, and cleared by a fix."""
    f = force()
    f.officer("a", f.place("N06"), ts=ev.at(0), callsign="A1")
    f.officer("busy", f.place("N03"), ts=ev.at(0), status="committed")
    assert f.advance(ev.at(4, 59)).alerts == []
    raised = f.advance(ev.at(5)).alerts
    assert [(a.kind, a.subject, a.active) for a in raised] == [
        (AlertKind.STALE_LOCATION, "a", True)
    ]
    assert f.advance(ev.at(30)).alerts == []  # raised once
    cleared = f.apply(ev.location("a", *f.place("N06", east_m=50), ts=ev.at(31))).alerts
    assert [(a.kind, a.subject, a.active) for a in cleared] == [
        (AlertKind.STALE_LOCATION, "a", False)
    ]


def test_a_world_watches_only_the_officers_it_owns_for_a_stale_position(
    force: Any, ev: Any
) -> None:
    """A worker of several (World.owns): the other workers' officers reach it late, so
    it raises no stale-position alert of theirs, as their owner does; given one of their
    partitions, it watches their officers from then on (arm_stale_timers)."""
    f = force()
    mine = {"a"}
    f.world.owns = mine.__contains__
    f.officer("a", f.place("N06"), ts=ev.at(0), callsign="A1")
    f.officer("b", f.place("N03"), ts=ev.at(0), callsign="B1")
    raised = f.advance(ev.at(5)).alerts
    assert [(a.kind, a.subject) for a in raised] == [(AlertKind.STALE_LOCATION, "a")]
    assert f.advance(ev.at(20)).alerts == []
    mine.add("b")  # b's partition is this worker's now
    f.world.arm_stale_timers()
    raised = f.advance(ev.at(21)).alerts
    assert [(a.kind, a.subject) for a in raised] == [(AlertKind.STALE_LOCATION, "b")]


def test_a_merged_record_does_not_move_this_worlds_clock(force: Any, ev: Any) -> None:
    """Another worker's officer, ten minutes of event time ahead of this World (it works
    through a backlog faster): taken, and this World's own officer, whose fixes it has
    applied to minute 2, is not raised stale by that worker's time."""
    f = force()
    f.officer("a", f.place("N06"), ts=ev.at(0))
    f.apply(ev.location("a", *f.place("N06", east_m=20), ts=ev.at(2)))
    other = World(f.areas, f.world.rules)
    other.apply(ev.profile("b", ts=ev.at(0)))
    other.apply(ev.status("b", "available", ts=ev.at(0)))
    other.apply(ev.location("b", *f.place("N03"), ts=ev.at(12)))
    merged = f.world.merge_officer(other.officers["b"])
    assert f.world.now == ev.at(2)
    assert merged.alerts == [] and f.world.officers["b"].fix_ts == ev.at(12)
    assert f.apply(ev.location("a", *f.place("N06", east_m=40), ts=ev.at(3))).alerts == []


def test_an_officer_given_away_raises_nothing_here_when_their_timer_comes(
    force: Any, ev: Any
) -> None:
    """Watched while theirs, then another worker's (a rebalance): the timer set before
    fires and raises nothing here."""
    f = force()
    mine = {"a"}
    f.world.owns = mine.__contains__
    f.officer("a", f.place("N06"), ts=ev.at(0))
    mine.clear()
    assert f.advance(ev.at(6)).alerts == []


@pytest.mark.parametrize(
    "second_fix",
    [("N06", 100.0), ("N03", 0.0)],
    ids=["same-neighbourhood", "other-neighbourhood"],
)
def test_stale_location_counts_from_the_latest_fix(
    force: Any, ev: Any, second_fix: tuple[str, float]
) -> None:
    """The 5 minutes run from the last fix, wherever it falls: a later fix moves the deadline."""
    f = force()
    f.officer("a", f.place("N06"), ts=ev.at(0))
    f.apply(ev.location("a", *f.place(second_fix[0], east_m=second_fix[1]), ts=ev.at(2)))
    assert f.advance(ev.at(6)).alerts == []
    raised = f.advance(ev.at(7)).alerts
    assert [(a.kind, a.subject, a.active) for a in raised] == [
        (AlertKind.STALE_LOCATION, "a", True)
    ]


@pytest.mark.parametrize(
    ("graded_as", "warn_min", "deadline_min"),
    [("emergency", 10, 15), ("priority", 40, 60)],
)
def test_unresourced_warning_then_deadline(
    force: Any, ev: Any, graded_as: str, warn_min: int, deadline_min: int
) -> None:
    """An incident with no deployment is warned about at 2/3 of its deadline and flagged at it."""
    f = force()
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(0), graded_as=graded_as))
    assert f.advance(ev.at(warn_min - 0.01)).alerts == []
    warn = f.advance(ev.at(warn_min)).alerts
    assert [(a.kind, a.subject, a.ts) for a in warn] == [
        (AlertKind.UNRESOURCED_WARNING, "i1", ev.at(warn_min))
    ]
    assert f.advance(ev.at(deadline_min - 0.01)).alerts == []
    # a late tick: the alert carries the World's clock; its message says the deadline
    late = f.advance(ev.at(deadline_min + 30)).alerts
    assert [(a.kind, a.subject, a.ts) for a in late] == [
        (AlertKind.UNRESOURCED, "i1", ev.at(deadline_min + 30))
    ]
    assert f"past its {deadline_min} min deadline" in late[0].message
    assert f.advance(ev.at(deadline_min + 60)).alerts == []


@pytest.mark.parametrize(
    ("deploy_at", "tick_at", "expected"),
    [
        (5, None, []),
        # an unrelated event at 11 fires the 10-min timer, and so must the deployment's own ts
        (12, 11, [AlertKind.UNRESOURCED_WARNING]),
        (12, None, [AlertKind.UNRESOURCED_WARNING]),
    ],
)
def test_no_unresourced_after_deployment(
    force: Any, ev: Any, deploy_at: int, tick_at: int | None, expected: list[AlertKind]
) -> None:
    """Once deployed an incident raises no further unresourced alerts; those already due fire.

    Alerts due before an event's ts must not depend on whether some unrelated event happened
    to arrive in between: replay and live would disagree.
    """
    f = force()
    f.officer("a", f.place("N06", east_m=200))
    f.officer("far", f.place("E12"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(0), graded_as="emergency"))
    if tick_at is not None:
        f.apply(ev.location("far", *f.place("E12", east_m=50), ts=ev.at(tick_at)))
    f.apply(ev.deployment("i1", ["a"], ts=ev.at(deploy_at)))
    f.advance(ev.at(60))
    mine = [a for a in f.alerts() if a.subject == "i1"]
    assert [a.kind for a in mine if a.active] == expected
    # each raised alert is cleared once, when the deployment decides the call
    assert [(a.kind, a.ts) for a in mine if not a.active] == [
        (kind, ev.at(deploy_at)) for kind in expected
    ]


# -- determinism and idempotence -------------------------------------------------------------


def _scenario(ev: Any, f: Any) -> list[Any]:
    events = _random_events(ev, f, 11, 120)
    t = events[-1].ts
    events += [
        ev.incident("i1", *f.place("N06"), ts=t + timedelta(seconds=1), graded_as="emergency"),
        ev.incident("i2", *f.place("N10"), ts=t + timedelta(seconds=2), graded_as="priority"),
        ev.incident("i3", *f.place("E03"), ts=t + timedelta(seconds=3), graded_as="neighbourhood"),
        ev.incident("i4", *f.place("E10"), ts=t + timedelta(seconds=4), graded_as="signpost"),
        ev.incident("i5", *f.place("N01"), ts=t + timedelta(seconds=5), graded_as="scheduled"),
    ]
    events += _random_events(ev, f, 12, 120, start_min=60)
    return events


def test_same_events_same_outputs(force: Any, ev: Any) -> None:
    """Two worlds fed the same events emit byte-identical outputs (replay decides as live did)."""
    a, b = force(), force()
    events = _scenario(ev, a)
    ts = [e.ts for e in events]
    out_a = [encode(o) for e in events for o in a.apply(e).outputs] + [
        encode(o) for o in a.advance(max(ts) + timedelta(hours=1)).outputs
    ]
    out_b = [encode(o) for e in events for o in b.apply(e).outputs] + [
        encode(o) for o in b.advance(max(ts) + timedelta(hours=1)).outputs
    ]
    assert any(isinstance(o, Recommendation) for o in a.outputs)
    assert out_a == out_b


def test_redelivered_events_change_nothing(force: Any, ev: Any) -> None:
    """Replaying every event again (Kafka redelivery) emits nothing and changes no state."""
    f = force()
    events = _scenario(ev, f)
    f.apply_all(events)
    officers = dict(f.world.officers)
    incidents = dict(f.world.incidents)
    availability = f.world.availability()
    recs = {iid: f.world.recommendation(iid) for iid in incidents}
    for event in events:
        effects = f.apply(event)
        assert effects.outputs == [] and effects.officers == [] and effects.incidents == [], event
    assert dict(f.world.officers) == officers
    assert dict(f.world.incidents) == incidents
    assert f.world.availability() == availability
    assert {iid: f.world.recommendation(iid) for iid in incidents} == recs
    assert Counter(type(o).__name__ for o in f.outputs)["Recommendation"] >= 4


@pytest.mark.parametrize("regraded_as", ["investigator", "neighbourhood", "scheduled", "signpost"])
def test_a_dispatch_regraded_to_another_response_releases_its_officer(
    staffed: Any, ev: Any, regraded_as: str
) -> None:
    """An emergency whose update grades it as no dispatch at all: its new recommendation
    says so, and the officer it held goes to the other emergency waiting nearby (found
    through the contest of pending dispatches, built while the update is applied)."""
    f = staffed
    f.apply(ev.incident("i2", *f.place("N06", east_m=100), ts=ev.at(2), graded_as="emergency"))
    assert f.recommendation("i2").recommended == ("b",)  # a is held by i1
    effects = f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(3), graded_as=regraded_as))
    recs = {r.incident_id: r for r in effects.recommendations}
    assert recs["i1"].response.value == regraded_as
    assert recs["i2"].recommended == ("a",)
