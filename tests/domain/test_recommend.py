"""sdo.domain.recommend through a World on the packaged areas and rules (CONTRACT §3).

Incidents sit at the centroid of Wylde Green (N06, cluster north-1) unless a test says
otherwise; officers are placed by offsets in metres, so distances are known. Event time
is the ``ts`` of the events fed to :meth:`World.apply`; no clock is read.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from sdo.domain.grading import grade
from sdo.domain.recommend import Policy
from sdo.events import Response

NOISE_TEAM = "Local authority environmental health noise team"
_NO_COVER = {
    "cover_weight_s": dict.fromkeys("1234", 0),
    "below_min_penalty_s": dict.fromkeys("1234", 0),
}
#: The default policy without the cover terms: isolates the rule under test for grade 2+.
NO_COVER = Policy.from_mapping("thrive", _NO_COVER)


def _reasons(rec: Any, officer_id: str) -> list[str]:
    return next(list(c.reasons) for c in rec.candidates if c.officer_id == officer_id)


def _ids(rec: Any) -> list[str]:
    return [c.officer_id for c in rec.candidates]


@pytest.mark.parametrize(
    "response", ["emergency", "priority", "scheduled", "neighbourhood", "investigator", "signpost"]
)
def test_builders_grade_as_named(ev: Any, rules: Any, response: str) -> None:
    """The THRIVE+ answers the tests use for each response grade to that response."""
    incident = ev.incident("i1", -1.83, 52.54, graded_as=response)
    assert grade(incident, rules).response is Response(response)


# -- emergency / priority ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("nearest", "why"),
    [
        ({"role": "pcso"}, "pcso"),
        ({"role": "neighbourhood"}, "neighbourhood officer"),
        ({"role": "investigator"}, "investigator"),
        ({"role": "supervisor"}, "supervisor"),
        ({"role": "force_support"}, "force_support is not sent to emergencies"),
        ({"status": "en_route"}, "en_route"),
        ({"status": "at_scene"}, "at_scene"),
        ({"status": "committed"}, "committed"),
        ({"status": "off_duty"}, "off_duty"),
        ({"transport": "desk"}, "desk officers do not travel"),
        ({"shift_end_min": -5}, "shift already over"),
        ({"shift_end_min": 0.2}, "shift ends before arrival (ETA 21 s)"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_emergency_picks_nearest_suitable_response_officer(
    force: Any, ev: Any, nearest: dict[str, Any], why: str
) -> None:
    """Emergency goes to the nearest available response officer; a nearer unsuitable one is
    not even a candidate."""
    f = force()
    now = ev.at(10)
    kw = dict(nearest)
    if "shift_end_min" in kw:
        kw["shift_end"] = now + timedelta(minutes=kw.pop("shift_end_min"))
    f.officer("x-near", f.place("N06", east_m=200), **kw)
    f.officer("resp", f.place("N06", east_m=-600))
    f.officer("resp-far", f.place("N03"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=now, graded_as="emergency"))
    rec = f.recommendation("i1")
    assert (rec.grade, rec.response) == (1, Response.EMERGENCY)
    assert rec.recommended == ("resp",), why
    assert _ids(rec) == ["resp", "resp-far"], why


def test_force_support_eligible_for_priority_only(force: Any, ev: Any) -> None:
    """force_support officers are candidates for priority (grade 2), never for emergency."""
    f = force(NO_COVER)
    f.officer("fs", f.place("N06", east_m=200), role="force_support")
    f.officer("resp", f.place("N06", east_m=-900))
    f.apply(ev.incident("p1", *f.place("N06"), ts=ev.at(1), graded_as="priority"))
    f.apply(ev.incident("e1", *f.place("N10"), ts=ev.at(2), graded_as="emergency"))
    assert f.recommendation("p1").recommended == ("fs",)
    assert "fs" not in _ids(f.recommendation("e1"))


@pytest.mark.parametrize(
    ("skills", "holder", "officers_required", "recommended", "shortfalls"),
    [
        # nobody eligible holds dog; a force-support dog handler is on duty: sent as well
        (
            ["dog"],
            "dog-unit",
            1,
            ("near", "dog-unit"),
            ["no eligible officer available holds dog", "nearest holder of dog: CS-dog-unit"],
        ),
        (["dog"], None, 1, ("near",), ["nobody available holds dog"]),
        # two required: both nearest, and the holder
        (["dog"], "dog-unit", 2, ("near", "far", "dog-unit"), ["nearest holder of dog"]),
        # one eligible holder of two: it, the nearest other, and no extra unit is needed
        # for what the holder brings (the extra unit is the nearest *other* holder)
        (
            ["language:urdu"],
            "far",
            2,
            ("far", "near", "urdu-2"),
            ["no eligible officer available holds language:urdu"],
        ),
    ],
)
def test_grade_1_is_never_unanswered_for_want_of_a_skill(
    force: Any,
    ev: Any,
    skills: list[str],
    holder: str | None,
    officers_required: int,
    recommended: tuple[str, ...],
    shortfalls: list[str],
) -> None:
    """CONTRACT §3: a grade 1 call whose skills no eligible officer holds gets the nearest
    eligible officers anyway, a shortfall naming the missing skill, and the nearest holder
    of it (any role), if one is available, as an extra unit."""
    f = force()
    f.officer("near", f.place("N06", east_m=200))
    f.officer("far", f.place("N03"), skills=skills if holder == "far" else [])
    if holder == "dog-unit":
        f.officer("dog-unit", f.place("E12"), role="force_support", skills=skills)
    if holder == "far":
        f.officer("urdu-2", f.place("E12"), role="neighbourhood", skills=skills)
    f.apply(
        ev.incident(
            "i1",
            *f.place("N06"),
            ts=ev.at(1),
            graded_as="emergency",
            required_skills=skills,
            officers_required=officers_required,
        )
    )
    rec = f.recommendation("i1")
    assert rec.grade == 1
    assert rec.recommended == recommended, rec.shortfalls
    for expected in shortfalls:
        assert any(expected in s for s in rec.shortfalls), rec.shortfalls
    if holder in recommended and holder != "far":
        assert any("extra unit" in r for r in _reasons(rec, holder))


def test_a_skill_holder_coming_on_duty_is_offered_to_a_grade_1_call_that_fell_back(
    force: Any, ev: Any
) -> None:
    """A grade 1 call sent the nearest officers for want of a skill gets the holder as its
    extra unit as soon as one comes available, wherever they are."""
    f = force()
    f.officer("near", f.place("N06", east_m=200))
    f.apply(
        ev.incident(
            "i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency", required_skills=["dog"]
        )
    )
    assert f.recommendation("i1").recommended == ("near",)
    f.officer("dog-unit", f.place("E12"), ts=ev.at(2), role="force_support", skills=["dog"])
    assert f.recommendation("i1").recommended == ("near", "dog-unit")


@pytest.mark.parametrize(
    ("skills_required", "near_skills", "far_skills", "recommended", "shortfall"),
    [
        (["taser"], [], ["taser"], ("far",), None),
        (["taser"], ["taser"], ["taser", "first_aid"], ("near",), None),
        (["taser", "first_aid"], ["taser"], ["taser", "first_aid"], ("far",), None),
        (["firearms"], ["taser"], [], (), "nobody with skill firearms"),
        (["taser", "dog"], ["taser"], ["taser"], (), "nobody with skill dog"),
    ],
)
def test_required_skill_is_a_hard_constraint(
    force: Any,
    ev: Any,
    skills_required: list[str],
    near_skills: list[str],
    far_skills: list[str],
    recommended: tuple[str, ...],
    shortfall: str | None,
) -> None:
    """Below grade 1, officers without every required skill are never candidates; a
    missing skill is named. (Grade 1 falls back: see the test after.)"""
    f = force()
    f.officer("near", f.place("N06", east_m=200), skills=near_skills)
    f.officer("far", f.place("N03"), skills=far_skills)
    f.apply(
        ev.incident(
            "i1",
            *f.place("N06"),
            ts=ev.at(1),
            graded_as="priority",
            required_skills=skills_required,
        )
    )
    rec = f.recommendation("i1")
    assert rec.recommended == recommended
    if recommended:
        assert any("holds" in r for r in _reasons(rec, recommended[0]))
    if shortfall is None:
        assert not any("skill" in s for s in rec.shortfalls)
    else:
        assert any(shortfall in s for s in rec.shortfalls), rec.shortfalls
        assert rec.candidates == ()


@pytest.mark.parametrize(("graded_as", "candidate"), [("emergency", True), ("priority", False)])
def test_refreshment_break_called_for_grade_1_only(
    force: Any, ev: Any, graded_as: str, candidate: bool
) -> None:
    """An officer on a meal break may be called for grade 1 (with a reason), never for grade 2."""
    f = force(NO_COVER)
    f.officer("meal", f.place("N06", east_m=100), status="refreshment")
    f.officer("resp", f.place("N03"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as=graded_as))
    rec = f.recommendation("i1")
    assert ("meal" in _ids(rec)) is candidate
    if candidate:
        assert any("refreshment" in r for r in _reasons(rec, "meal"))


def test_stale_fix_flagged_and_penalised(force: Any, ev: Any) -> None:
    """A closer officer with a 10-min-old fix ranks below a fresh one; the reasons say why."""
    f = force()
    now = ev.at(10)
    f.officer("stale", f.place("N06", east_m=300), fix_ts=ev.at(0), callsign="STALE")
    f.officer("fresh", f.place("N06", east_m=-1000), ts=ev.at(9))
    f.apply(ev.incident("i1", *f.place("N06"), ts=now, graded_as="emergency"))
    rec = f.recommendation("i1")
    assert _ids(rec) == ["fresh", "stale"]
    assert rec.recommended == ("fresh",)
    assert any("last fix 10 min old" in r for r in _reasons(rec, "stale"))
    assert not any("last fix" in r for r in _reasons(rec, "fresh"))
    assert any(
        r.startswith("nearest eligible officer STALE") and "is ranked 2" in r and "last fix" in r
        for r in rec.reasons
    ), rec.reasons
    assert not any("stale" in s for s in rec.shortfalls)
    # each candidate's reasons begin with the ETA, by what and how far; the reason the
    # nearest is not first gives their other reasons only
    assert re.fullmatch(r"ETA \S+ (min|s) by car \(0\.3 km\)", _reasons(rec, "stale")[0])
    assert re.fullmatch(r"ETA \S+ (min|s) by car \(1\.0 km\)", _reasons(rec, "fresh")[0])
    nearest = next(r for r in rec.reasons if r.startswith("nearest eligible officer"))
    assert "ETA" not in nearest and nearest.endswith(": " + "; ".join(_reasons(rec, "stale")[1:]))


def test_all_fixes_stale_is_a_shortfall(force: Any, ev: Any) -> None:
    """When every candidate's fix is stale, the recommendation says so (and still ranks them)."""
    f = force()
    f.officer("a", f.place("N06", east_m=300))
    f.officer("b", f.place("N03"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(8), graded_as="emergency"))
    rec = f.recommendation("i1")
    assert rec.recommended == ("a",)
    assert any("all candidate AVL fixes are stale" in s for s in rec.shortfalls), rec.shortfalls


def test_shift_ending_soon_penalised_for_grade_2(force: Any, ev: Any) -> None:
    """For grade 2 a nearer officer whose shift ends within the margin ranks below one who stays."""
    f = force(NO_COVER)
    now = ev.at(1)
    f.officer("leaving", f.place("N06", east_m=200), shift_end=now + timedelta(minutes=20))
    f.officer("staying", f.place("N06", east_m=-900), shift_end=now + timedelta(hours=6))
    f.apply(ev.incident("p1", *f.place("N06"), ts=now, graded_as="priority"))
    rec = f.recommendation("p1")
    assert _ids(rec) == ["staying", "leaving"]
    assert any("shift ends in 20 min" in r for r in _reasons(rec, "leaving"))


def test_shift_ending_soon_not_penalised_for_grade_1(force: Any, ev: Any) -> None:
    """Grade 1 takes the fastest officer even if their shift ends soon (but before arrival: no)."""
    f = force()
    now = ev.at(1)
    f.officer("leaving", f.place("N06", east_m=200), shift_end=now + timedelta(minutes=20))
    f.officer("staying", f.place("N06", east_m=-900))
    f.apply(ev.incident("e1", *f.place("N06"), ts=now, graded_as="emergency"))
    assert f.recommendation("e1").recommended == ("leaving",)


@pytest.mark.parametrize(
    ("required", "recommended", "shortfall"),
    [
        (1, ("a",), None),
        (2, ("a", "b"), None),
        (3, ("a", "b", "c"), None),
        (4, ("a", "b", "c"), "only 3 of 4 required officers"),
    ],
)
def test_officers_required_filled(
    force: Any, ev: Any, required: int, recommended: tuple[str, ...], shortfall: str | None
) -> None:
    """officers_required picks that many, nearest first, and names a shortfall when short."""
    f = force()
    f.officer("a", f.place("N06", east_m=100))
    f.officer("b", f.place("N06", east_m=-500))
    f.officer("c", f.place("N03"))
    f.apply(
        ev.incident(
            "i1", *f.place("N06"), ts=ev.at(1), graded_as="emergency", officers_required=required
        )
    )
    rec = f.recommendation("i1")
    assert rec.recommended == recommended
    assert (shortfall is None) == (not any("required officers" in s for s in rec.shortfalls))
    if shortfall:
        assert any(shortfall in s for s in rec.shortfalls)


# -- cover ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graded_as", "first"),
    [
        ("emergency", "lone"),  # grade 1: the fastest, regardless of cover
        ("priority", "ne-0"),  # grade 2: do not take the last unit of north-1
    ],
)
def test_cover_protected_for_grade_2_not_grade_1(
    force: Any, ev: Any, graded_as: str, first: str
) -> None:
    """Taking the last officer of a cluster below minimum cover is penalised for grade 2 and
    said in the reasons; grade 1 takes the fastest regardless."""
    f = force()
    # north-1 (minimum 4) has one officer, close to the incident; north-east (minimum 5) has 6.
    f.officer("lone", f.place("N06", east_m=200), callsign="LONE")
    f.officer("ne-0", f.place("N10"))
    for i, nb in enumerate(["N08", "N09", "N11", "N12", "E01"], start=1):
        f.officer(f"ne-{i}", f.place(nb))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as=graded_as))
    rec = f.recommendation("i1")
    assert rec.recommended == (first,)
    lone = " ".join(_reasons(rec, "lone"))
    assert "cluster north-1" in lone and "below minimum" in lone
    if graded_as == "emergency":
        assert "grade 1 takes the fastest officer regardless" in lone
        assert not any(r.startswith("nearest eligible officer") for r in rec.reasons)
    else:
        assert _ids(rec).index("lone") > 0
        assert any(
            r.startswith("nearest eligible officer LONE") and "below minimum" in r
            for r in rec.reasons
        ), rec.reasons
        assert not any("below minimum" in r for r in _reasons(rec, "ne-0"))
    assert any(
        "cluster north-1 below minimum cover (1 of 4 available)" in s for s in rec.shortfalls
    )


# -- allocation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_duty", "expected", "named_shortfall"),
    [
        (["N-0101", "team", "npu", "east"], "N-0101", False),
        (["team", "npu", "east"], "team", True),
        (["npu", "east"], "npu", True),
        (["east"], None, True),
    ],
)
def test_neighbourhood_named_then_team_then_npu(
    force: Any, ev: Any, on_duty: list[str], expected: str | None, named_shortfall: bool
) -> None:
    """Neighbourhood: the area file's named officer if on duty, else the team, else the NPU's."""
    f = force()
    staff = {
        "N-0101": {"npu": "north", "neighbourhoods": ["N01"], "role": "neighbourhood"},
        "team": {"npu": "north", "neighbourhoods": ["N01"], "role": "pcso"},
        "npu": {"npu": "north", "neighbourhoods": ["N02"], "role": "neighbourhood"},
        "east": {"npu": "east", "neighbourhoods": ["E01"], "role": "neighbourhood"},
    }
    for oid, profile in staff.items():
        status = "committed" if oid in on_duty else "off_duty"  # busy but on duty still counts
        f.officer(oid, None, status=status, transport="foot", **profile)
    f.apply(ev.incident("i1", *f.place("N01"), ts=ev.at(1), graded_as="neighbourhood"))
    rec = f.recommendation("i1")
    assert rec.response is Response.NEIGHBOURHOOD
    assert rec.recommended == ((expected,) if expected else ())
    assert "east" not in _ids(rec)
    assert (
        any("named officer N-0101 is not on duty" in s for s in rec.shortfalls) is named_shortfall
    )
    if expected == "N-0101":
        assert any("named officer for N01" in r for r in _reasons(rec, "N-0101"))
    if expected is None:
        assert any("no neighbourhood/pcso officer on duty" in s for s in rec.shortfalls)


def _load(f: Any, ev: Any, officer_id: str, n: int, start: float) -> float:
    """Give an officer ``n`` open allocations (accepted deployments on open incidents)."""
    t = start
    for k in range(n):
        iid = f"load-{officer_id}-{k}"
        f.apply(ev.incident(iid, *f.place("E12"), ts=ev.at(t), graded_as="investigator"))
        f.apply(ev.deployment(iid, [officer_id], ts=ev.at(t + 0.1), decision="overridden"))
        t += 0.2
    return t


def test_investigator_least_loaded_of_the_npu(force: Any, ev: Any) -> None:
    """Investigator: the least-loaded investigator of the incident's NPU, no location needed."""
    f = force()
    for oid, npu in [("inv-busy", "north"), ("inv-light", "north"), ("inv-idle-east", "east")]:
        f.officer(oid, None, role="investigator", transport="desk", npu=npu)
    t = _load(f, ev, "inv-busy", 2, 1)
    t = _load(f, ev, "inv-light", 1, t)
    loads = [f.world.load(oid) for oid in ("inv-busy", "inv-light", "inv-idle-east")]
    assert loads == [2, 1, 0]
    f.apply(ev.incident("i1", *f.place("N03"), ts=ev.at(t + 1), graded_as="investigator"))
    rec = f.recommendation("i1")
    assert rec.response is Response.INVESTIGATOR
    assert _ids(rec) == ["inv-light", "inv-busy", "inv-idle-east"]
    assert rec.recommended == ("inv-light",)
    assert any("1 open allocation" in r for r in _reasons(rec, "inv-light"))


def test_scheduled_lightest_loaded(force: Any, ev: Any) -> None:
    """Scheduled: an appointment with the lightest-loaded suitable officer of the NPU."""
    f = force()
    f.officer("nb-busy", f.place("N03", east_m=100), role="neighbourhood", npu="north")
    f.officer("resp-idle", f.place("N02"), role="response", npu="north")
    f.officer("inv", f.place("N03"), role="investigator", npu="north")  # not a scheduled role
    _load(f, ev, "nb-busy", 1, 1)
    f.apply(ev.incident("s1", *f.place("N03"), ts=ev.at(5), graded_as="scheduled"))
    rec = f.recommendation("s1")
    assert rec.response is Response.SCHEDULED
    assert rec.recommended == ("resp-idle",)
    assert "inv" not in _ids(rec)


def test_signpost_names_service_and_no_officer(force: Any, ev: Any) -> None:
    """Signpost: no officer, the partner service for the category from the rules file."""
    f = force()
    f.officer("resp", f.place("N06", east_m=100))
    f.apply(ev.incident("n1", *f.place("N06"), ts=ev.at(1), graded_as="signpost"))
    rec = f.recommendation("n1")
    assert (rec.response, rec.grade, rec.service) == (Response.SIGNPOST, 4, NOISE_TEAM)
    assert rec.recommended == () and rec.candidates == ()
    assert any(NOISE_TEAM in r for r in rec.reasons)


@pytest.mark.parametrize("graded_as", ["signpost", "investigator", "priority"])
def test_closest_policy_sends_nearest_available_response_officer(
    force: Any, ev: Any, graded_as: str
) -> None:
    """The `closest` baseline recommends the nearest available response officer, whatever
    the grading (signpost included)."""
    f = force(Policy.from_mapping("closest", {}))
    f.officer("pcso", f.place("N06", east_m=50), role="pcso")
    f.officer("resp", f.place("N06", east_m=300))
    f.officer("resp-far", f.place("N03"))
    f.apply(ev.incident("i1", *f.place("N06"), ts=ev.at(1), graded_as=graded_as))
    rec = f.recommendation("i1")
    assert rec.policy.name == "closest"
    assert _ids(rec)[:2] == ["resp", "resp-far"]
    assert rec.recommended == ("resp",)


# -- joint solving -------------------------------------------------------------------------


def test_one_officer_not_recommended_to_two_incidents(force: Any, ev: Any) -> None:
    """Two pending grade-2 incidents near one officer: only the earlier gets them; a later
    grade 1 takes them and the grade-2 incident is re-recommended."""
    f = force(NO_COVER)
    f.officer("x", f.place("N06", east_m=100))
    f.officer("y", f.place("N11"))
    f.apply(ev.incident("p-early", *f.place("N06"), ts=ev.at(1), graded_as="priority"))
    f.apply(ev.incident("p-late", *f.place("N06", east_m=200), ts=ev.at(2), graded_as="priority"))
    assert f.recommendation("p-early").recommended == ("x",)
    late = f.recommendation("p-late")
    assert late.recommended == ("y",)
    assert any("held for pending incidents" in r for r in late.reasons)

    mark = len(f.outputs)
    f.apply(ev.incident("e1", *f.place("N06", east_m=-100), ts=ev.at(3), graded_as="emergency"))
    assert f.recommendation("e1").recommended == ("x",)
    reissued = f.recs_for("p-early", since=mark)
    assert reissued, "the grade-2 incident that lost its officer must be re-recommended"
    assert "x" not in reissued[-1].recommended
    assert f.recommendation("p-early") == reissued[-1]


def test_dispatch_rule_near_is_a_superset_of_admits(force: Any, ev: Any) -> None:
    """The fleet's tag test leaves out nobody DispatchRule.admits takes: filtered by admits,
    rule.nearby() is every admitted officer by (distance, id)."""
    import random  # noqa: PLC0415

    from sdo.domain.geo import haversine_m  # noqa: PLC0415
    from sdo.domain.recommend import DispatchRule  # noqa: PLC0415
    from sdo.events import Role, Status, Transport  # noqa: PLC0415

    rng = random.Random(11)
    f = force()
    places = ["N03", "N06", "E11", "E12"]
    for n in range(120):
        f.officer(
            f"o{n:03d}",
            f.place(rng.choice(places), east_m=rng.uniform(-300, 300)),
            status=rng.choice([s.value for s in Status if s is not Status.OFF_DUTY]),
            role=rng.choice([r.value for r in Role]),
            transport=rng.choice([t.value for t in Transport]),
            skills=rng.sample(["taser", "first_aid", "dog"], rng.randint(0, 2)),
            shift_end=rng.choice([None, ev.at(30), ev.at(90)]),
        )
    for n in range(0, 120, 4):  # status changes reach the fleet's tags too
        f.apply(ev.status(f"o{n:03d}", rng.choice(["available", "committed"]), ts=ev.at(1)))
    world = f.world
    policy = world.policy
    lon, lat = f.place("N06")
    for roles, statuses, skills, grade_ in [
        ({Role.RESPONSE}, {Status.AVAILABLE}, set(), 2),
        ({Role.RESPONSE, Role.FORCE_SUPPORT}, {Status.AVAILABLE, Status.REFRESHMENT}, {"taser"}, 1),
        ({Role.NEIGHBOURHOOD, Role.PCSO}, {Status.AVAILABLE}, set(), 3),
    ]:
        rule = DispatchRule(frozenset(roles), frozenset(statuses), frozenset(skills), grade_)
        for now in (ev.at(0), ev.at(60), ev.at(120)):
            got = [
                h.officer_id
                for h in rule.nearby(world, lon, lat, 40_000.0, now, ()).hits()
                if rule.admits(world.officers[h.officer_id], policy, now)
            ]
            want = sorted(
                (haversine_m(o.lon, o.lat, lon, lat), oid)
                for oid, o in world.officers.items()
                if rule.admits(o, policy, now)
            )
            assert got == [oid for _, oid in want], (roles, now)
            assert got  # the case is not vacuous


def test_held_officers_are_left_out_and_counted_as_one_by_one(force: Any, ev: Any) -> None:
    """DispatchRule.nearby keeps apart the officers held by another incident at the rule's
    grade or a higher one, and held_before counts those its hits would have met before a
    given hit: together, what asking each officer in turn (admitted? held?) gives."""
    import random  # noqa: PLC0415

    from sdo.domain.geo import haversine_m  # noqa: PLC0415
    from sdo.domain.recommend import DispatchRule  # noqa: PLC0415
    from sdo.events import Role, Status, Transport  # noqa: PLC0415

    rng = random.Random(5)
    f = force()
    for n in range(150):
        f.officer(
            f"o{n:03d}",
            # some at one spot: equal distances go in id order, held or not
            f.place("N06") if n % 10 == 0 else f.place("N06", east_m=rng.uniform(-900, 900)),
            status=rng.choice(["available", "available", "refreshment", "committed"]),
            role=rng.choice([Role.RESPONSE.value, Role.RESPONSE.value, Role.FORCE_SUPPORT.value]),
            transport=rng.choice([t.value for t in Transport]),
            skills=rng.sample(["taser", "first_aid"], rng.randint(0, 2)),
            shift_end=rng.choice([None, ev.at(30), ev.at(90)]),
        )
    world = f.world
    policy = world.policy
    lon, lat = f.place("N06", north_m=50)
    checked = 0
    for trial in range(40):
        holds = {f"o{n:03d}": rng.choice([1, 2, 3, 4]) for n in rng.sample(range(150), 90)}
        mine = set(list(holds)[:5])
        for oid in world.officers:
            world.fleet.hold(oid, holds.get(oid))
        rule = DispatchRule(
            frozenset({Role.RESPONSE} | ({Role.FORCE_SUPPORT} if trial % 2 else set())),
            frozenset({Status.AVAILABLE} | ({Status.REFRESHMENT} if trial % 3 == 0 else set())),
            frozenset({"taser"} if trial % 4 == 0 else set()),
            1 + trial % 4,
        )
        now = rng.choice([ev.at(0), ev.at(30), ev.at(60)])
        pool = rng.choice([3, 8, 200])
        radius = rng.choice([400.0, 40_000.0])
        # one by one, as the recommender once asked
        want: list[str] = []
        want_held = 0
        for _, oid in sorted(
            (haversine_m(o.lon, o.lat, lon, lat), oid) for oid, o in world.officers.items()
        ):
            o = world.officers[oid]
            if haversine_m(o.lon, o.lat, lon, lat) > radius or not rule.admits(o, policy, now):
                continue
            if oid not in mine and holds.get(oid, 99) <= rule.grade:
                want_held += 1
                continue
            want.append(oid)
            if len(want) == pool:
                break
        got = []
        nearby = rule.nearby(world, lon, lat, radius, now, mine)
        for h in nearby.hits():
            if rule.admits(world.officers[h.officer_id], policy, now):
                got.append(h)
                if len(got) == pool:
                    break
        last = got[-1] if len(got) == pool else None
        assert [h.officer_id for h in got] == want
        assert rule.held_before(world, nearby, last, now, policy) == want_held
        checked += want_held > 0 and len(got) == pool
    assert checked > 5  # the cut by the last hit is exercised, not only "all of them"
