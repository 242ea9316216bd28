"""``sdo simulate``: deterministic, ordered, valid, and shaped like the pilot (issue #5)."""

from __future__ import annotations

import gzip
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sdo.areas import load_areas
from sdo.cli import main
from sdo.config import Settings
from sdo.domain.geo import Areas
from sdo.domain.grading import Rules, grade
from sdo.evaluation.calls import CATEGORIES, _facts
from sdo.evaluation.roster import ROLE_SHARE
from sdo.evaluation.simulate import DISPATCHER, simulate, write_log
from sdo.events import Incident, IncidentState, Response, Role, Status, decode
from sdo.grade import load_rules

START = datetime(2015, 12, 1, 6, 0, tzinfo=UTC)
_G = Response.SIGNPOST


@pytest.fixture(scope="module")
def areas() -> Areas:
    return load_areas(Settings().areas_path)


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(Settings().rules_path)


def _run(tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / name
    assert main(["simulate", "--out", str(out), *args]) == 0
    return out.read_bytes()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    """Same seed and arguments give byte-identical gzip logs; another seed does not."""
    args = ("--hours", "2", "--officers", "30", "--start", "2015-12-01T16:00:00Z")
    first = _run(tmp_path, "a.jsonl.gz", "--seed", "7", *args)
    again = _run(tmp_path, "b.jsonl.gz", "--seed", "7", *args)
    other = _run(tmp_path, "c.jsonl.gz", "--seed", "8", *args)
    assert first == again
    assert first != other
    assert gzip.decompress(first) != b""


def test_plain_log_matches_gzip_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ``.jsonl`` log holds the same lines as the ``.gz`` one; one summary line on stderr."""
    args = ("--seed", "3", "--hours", "1", "--officers", "20")
    plain = _run(tmp_path, "p.jsonl", *args)
    packed = _run(tmp_path, "p.jsonl.gz", *args)
    assert gzip.decompress(packed) == plain
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "events" in err[0] and "incidents" in err[0] and "20 officers" in err[0]


def test_the_log_takes_its_name_only_when_whole(areas: Areas, tmp_path: Path) -> None:
    """Interrupted half way (a KeyboardInterrupt from the events), the writer leaves the
    log that was at OUT as it was, and nothing beside it; whole, it reports its progress
    in order and replaces it."""
    out = tmp_path / "day.jsonl.gz"
    out.write_bytes(b"an earlier log")

    def interrupted() -> Any:
        for n, event in enumerate(simulate(areas, seed=1, hours=3, officers=120, start=START)):
            if n == 5_000:
                raise KeyboardInterrupt
            yield event

    with pytest.raises(KeyboardInterrupt):
        write_log(interrupted(), out)
    assert [p.name for p in tmp_path.iterdir()] == ["day.jsonl.gz"]
    assert out.read_bytes() == b"an earlier log"

    heard: list[tuple[int, datetime]] = []
    events = simulate(areas, seed=1, hours=3, officers=120, start=START)
    counts = write_log(events, out, lambda n, ts: heard.append((n, ts)))
    assert [p.name for p in tmp_path.iterdir()] == ["day.jsonl.gz"]
    assert gzip.decompress(out.read_bytes()).count(b"\n") == counts.events
    assert len(heard) >= 2 and heard == sorted(heard)
    assert heard[-1][0] <= counts.events and START <= heard[-1][1] <= START + timedelta(hours=3)


def test_events_decode_and_are_in_time_order(tmp_path: Path) -> None:
    """Every line decodes under the contract, ts never goes backwards, ids are unique."""
    raw = _run(tmp_path, "o.jsonl", "--seed", "5", "--hours", "4", "--officers", "40")
    last = None
    ids = set()
    kinds: Counter[str] = Counter()
    for line in raw.splitlines():
        event = decode(line)
        assert last is None or event.ts >= last
        last = event.ts
        ids.add(event.event_id)
        kinds[event.type] += 1
    assert len(ids) == sum(kinds.values())
    assert set(kinds) == {
        "officer.profile",
        "officer.status",
        "officer.location",
        "incident",
        "deployment",
    }


def test_answers_are_drawn_per_category_and_the_response_follows_from_grading(
    rules: Rules,
) -> None:
    """The THRIVE+ answers come from the category's chances (CATEGORIES), not from a
    response chosen first: calls of one category grade to several responses, a burglary
    is never signposted more often than investigated, a domestic is mostly urgent."""
    rng = random.Random(3)
    by_category: dict[str, Counter[Response]] = {}
    for category, profile in CATEGORIES.items():
        seen: Counter[Response] = Counter()
        for n in range(400):
            facts = _facts(profile, rng)
            incident = Incident(
                event_id=f"e{n}", ts=START, incident_id=f"i{n}", lat=52.5, lon=-1.8,
                category=category, thrive=facts.thrive, ongoing=facts.ongoing,
                offender_present=facts.offender_present, persistent=facts.persistent,
            )  # fmt: skip
            seen[grade(incident, rules).response] += 1
        by_category[category] = seen
        assert len(seen) >= 3, (category, seen)
    assert by_category["burglary"][Response.INVESTIGATOR] > by_category["burglary"][_G]
    urgent = (Response.EMERGENCY, Response.PRIORITY)
    assert sum(by_category["domestic"][r] for r in urgent) > 0.7 * 400
    assert by_category["asb"][Response.NEIGHBOURHOOD] > 0.15 * 400


def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zone-less start, or no hours, exit 2 with one line on stderr."""
    out = str(tmp_path / "x.jsonl")
    assert main(["simulate", "--out", out, "--start", "2015-12-01T06:00:00"]) == 2
    assert main(["simulate", "--out", out, "--hours", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all(line.startswith("sdo simulate: error:") for line in err)


@dataclass
class DayStats:
    kinds: Counter[str] = field(default_factory=Counter)
    responses: Counter[Response] = field(default_factory=Counter)
    incidents: int = 0
    fixes_sampled: int = 0
    fixes_inside: int = 0
    on_duty_max: int = 0
    ever_on_duty: set[str] = field(default_factory=set)
    night_incidents: int = 0
    evening_incidents: int = 0
    skills: int = 0
    pairs: int = 0
    statuses: Counter[Status] = field(default_factory=Counter)
    dispatchers: set[str] = field(default_factory=set)
    closed: int = 0
    deployed_officers: int = 0
    #: per hour of the run, the fewest response officers on duty at once in it
    response_on_duty_min: dict[int, int] = field(default_factory=dict)
    #: minutes from logging to the first officer at the scene, of grade 1 calls
    grade_1_attend_min: list[float] = field(default_factory=list)
    grade_1_calls: int = 0
    #: the longest gap between two fixes of one on-duty unit, and how many gaps > 10 min
    longest_fix_gap_s: float = 0.0
    stale_gaps: int = 0
    dispatched_responses: set[Response] = field(default_factory=set)


@pytest.fixture(scope="module")
def day(areas: Areas, rules: Rules) -> DayStats:
    """One simulated pilot day (24 h, 120 officers), summarised in one streaming pass."""
    stats = DayStats()
    on_duty: set[str] = set()
    response: set[str] = set()
    role: dict[str, Role] = {}
    created: dict[str, datetime] = {}
    graded: dict[str, Response] = {}
    last_fix: dict[str, datetime] = {}
    for n, event in enumerate(simulate(areas, seed=11, hours=24, officers=120, start=START)):
        kind = event.type
        stats.kinds[kind] += 1
        hour = int((event.ts - START).total_seconds() // 3600)
        if kind == "officer.location":
            if n % 20 == 0:
                stats.fixes_sampled += 1
                stats.fixes_inside += areas.locate(event.lon, event.lat) is not None
            before = last_fix.get(event.officer_id)
            if before is not None:
                gap = (event.ts - before).total_seconds()
                stats.longest_fix_gap_s = max(stats.longest_fix_gap_s, gap)
                stats.stale_gaps += gap > 600
            last_fix[event.officer_id] = event.ts
        elif kind == "officer.profile":
            role[event.officer_id] = event.role
        elif kind == "officer.status":
            stats.statuses[event.status] += 1
            oid = event.officer_id
            if event.status is Status.OFF_DUTY:
                on_duty.discard(oid)
                response.discard(oid)
                last_fix.pop(oid, None)
            else:
                on_duty.add(oid)
                stats.ever_on_duty.add(oid)
                if role[oid] is Role.RESPONSE:
                    response.add(oid)
            stats.on_duty_max = max(stats.on_duty_max, len(on_duty))
            iid = event.incident_id
            if event.status is Status.AT_SCENE and graded.get(iid) is Response.EMERGENCY:
                since = created.pop(iid, None)
                if since is not None:
                    stats.grade_1_attend_min.append((event.ts - since).total_seconds() / 60)
        elif kind == "incident":
            if event.state is IncidentState.OPEN:
                stats.incidents += 1
                graded[event.incident_id] = grade(event, rules).response
                stats.responses[graded[event.incident_id]] += 1
                stats.grade_1_calls += graded[event.incident_id] is Response.EMERGENCY
                created[event.incident_id] = event.ts
                local = event.ts.hour
                stats.night_incidents += 3 <= local < 7
                stats.evening_incidents += 16 <= local < 20
                stats.skills += bool(event.required_skills)
                stats.pairs += event.officers_required == 2
            elif event.state is IncidentState.CLOSED:
                stats.closed += 1
        elif kind == "deployment":
            stats.dispatchers.add(event.by)
            stats.deployed_officers += len(event.officer_ids)
            stats.dispatched_responses.add(graded[event.incident_id])
        if hour < 24 and event.ts > START:  # (everyone on shift books on at the first second)
            low = stats.response_on_duty_min.get(hour, len(response))
            stats.response_on_duty_min[hour] = min(low, len(response))
    return stats


def test_a_day_has_pilot_demand_and_all_six_responses(day: DayStats) -> None:
    """~400 incidents a day, every response option graded, about 12 % emergency."""
    assert 250 <= day.incidents <= 600
    assert set(day.responses) == set(Response)
    assert all(day.responses[r] >= 10 for r in Response), day.responses
    assert 0.07 <= day.responses[Response.EMERGENCY] / day.incidents <= 0.18
    assert 0.2 <= day.responses[Response.PRIORITY] / day.incidents <= 0.4
    assert day.skills > 0 and day.pairs > 0
    assert day.closed > 0


def test_a_day_has_a_time_of_day_profile(day: DayStats) -> None:
    """Four evening hours see far more incidents than four small hours."""
    assert day.evening_incidents > 2.5 * day.night_incidents


def test_a_day_has_shifts_breaks_and_dispatches(day: DayStats) -> None:
    """--officers 120 is 120 on duty at once: 66 of them response, never fewer than 60
    response officers on duty in any hour (more at the changeovers, when shifts overlap);
    the roster is about 2.7 times that. Breaks and the job cycle happen; the recorded
    dispatcher sends officers to graded 1-3 calls only (the others it routes elsewhere)."""
    response = round(120 * dict(ROLE_SHARE)[Role.RESPONSE])
    assert response == 66
    assert len(day.response_on_duty_min) == 24
    assert all(n >= 60 for n in day.response_on_duty_min.values()), day.response_on_duty_min
    assert min(day.response_on_duty_min.values()) <= response + 2
    assert 300 <= len(day.ever_on_duty) <= 340
    assert 110 <= day.on_duty_max <= 250
    for status in Status:
        assert day.statuses[status] > 0, status
    assert day.statuses[Status.EN_ROUTE] == day.deployed_officers
    assert day.dispatchers == {DISPATCHER}
    assert day.dispatched_responses == {
        Response.EMERGENCY,
        Response.PRIORITY,
        Response.SCHEDULED,
    }


def test_a_day_is_calibrated_to_the_published_figures(day: DayStats) -> None:
    """The recorded dispatch's grade 1 attendance (logging to first officer at the scene)
    falls in the stated bands around West Midlands Police's published figures: 92 % within
    15 min (2011) and a mean of about 12 min from the call (2016; the call's handling
    before it is logged, 2-4 min, is not in the log): mean 6-12 min, 85-98 % within 15."""
    times = day.grade_1_attend_min
    assert len(times) >= 0.95 * day.grade_1_calls >= 20
    mean = sum(times) / len(times)
    within = sum(t <= 15 for t in times) / day.grade_1_calls
    assert 6 <= mean <= 12, mean
    assert 0.85 <= within <= 0.98, within


def test_units_drop_out_of_avl_now_and_then(day: DayStats) -> None:
    """Fixes have gaps as real units do: some longer than the 10 minutes after which an
    available unit shows as stale, none longer than the longest drop-out (25 min + a
    fix interval)."""
    assert day.stale_gaps >= 5
    assert day.longest_fix_gap_s <= 25 * 60 + 60


def test_a_day_keeps_officers_inside_the_areas(day: DayStats) -> None:
    """At least 95 % of AVL fixes fall inside a neighbourhood; fixes dominate the log."""
    assert day.fixes_sampled > 1000
    assert day.fixes_inside / day.fixes_sampled >= 0.95
    assert day.kinds["officer.location"] > 0.9 * sum(day.kinds.values())


def test_an_existing_log_is_replaced_only_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log is data: --out naming an existing file is one line and exit 2, the file left
    as it was; with --force it is replaced. A directory is never a log."""
    out = tmp_path / "recorded.jsonl"
    out.write_bytes(b"the pilot's recorded log\n")
    args = ["simulate", "--hours", "1", "--officers", "10", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sdo simulate: error: {out} exists; give --force to replace it"]
    assert out.read_bytes() == b"the pilot's recorded log\n"
    assert main([*args, "--force"]) == 0
    assert out.read_bytes().startswith(b'{"type":')
    assert main(["simulate", "--hours", "1", "--out", str(tmp_path), "--force"]) == 2
    assert "is a directory, not a log file" in capsys.readouterr().err
