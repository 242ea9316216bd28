"""A deterministic synthetic pilot event log (``sdo simulate``, issue #5).

Theory of operation
-------------------
A discrete-event simulation over whole seconds. A heap holds the pending actions as
``(second, sequence, action)``; the sequence number breaks ties in the order actions were
scheduled, so the run never depends on comparing payloads, on set order or on the clock.
Popping an action advances the simulated time, mutates a little state (an officer, an
incident) and emits the events that action causes, all stamped with that second: the
stream is therefore in non-decreasing ``ts`` order and :func:`simulate` can yield it as it
goes. Only pending work is in memory (one AVL action per on-duty officer, the live
incidents), never the log.

Every random draw comes from one ``random.Random(seed)``, in a fixed order, so the same
seed and arguments give the same events — and :func:`write_log` the same bytes (gzip
header with ``mtime=0`` and no file name).

What is modelled
----------------
* **Officers** (:mod:`sdo.evaluation.roster`): ``officers`` is how many are on duty at
  once, on every shift; ``ROLE_SHARE`` splits them: 55 % response (cars and vans,
  patrolling their response cluster; each cluster's share in proportion to its
  neighbourhoods), 12 % investigators on the desk (no location), 8 % PCSOs on foot or
  bicycle, 6 % force support (roads policing, one dog van), 4 % supervisors, and the rest
  neighbourhood officers, the named officer of every neighbourhood among them (their
  ``officer_id`` is that name; on days). Response, force support and supervisors work
  earlies (07-16), lates (15-24) or nights (22-07), each pattern with the full count, so
  the roster is about 2.7 times the officers on duty at once and the changeover hours
  have more; neighbourhood teams and PCSOs days (08-16) or lates (14-22); investigators
  08-18 or 12-22. Hours are those of ``ts`` (UTC, which is UK time in winter).
* **Shifts**: an ``officer.profile`` (with ``shift_end``) and ``available`` at the start,
  ``off_duty`` at the end (or when the job in hand is finished), a 45-minute
  ``refreshment`` break around mid-shift (taken when next free). Response officers also
  spend one to three spells of 30-90 min ``committed`` with no incident (paperwork,
  prisoners, enquiries: work that is not a call). Officers already on shift at the start
  of the run book on at its first second.
* **AVL**: a fix every 5-15 s while moving (20 s on foot or bicycle), every 30 s when
  stationary, for every on-duty officer with a physical transport; now and then a unit
  drops out for 1-25 min (:data:`_OUTAGE_P`), long enough, sometimes, to show as stale.
  Patrol is a walk between random waypoints inside the officer's beat
  (rejection-sampled inside the neighbourhood polygons) at transport speed, with stops.
  Fixes carry GPS noise.
* **Incidents**: a non-homogeneous Poisson process (~400 a day by default) with a
  time-of-day profile (quiet 03-07, peaking 16-20), placed more often in neighbourhoods of
  higher typology (1 affluent ... 5 deprived). Each has a category, and THRIVE+ answers
  drawn from that category's chances (``CATEGORIES`` in :mod:`sdo.evaluation.calls`); the
  response is what the rules in force grade them to (never chosen first), and the skills
  and officers needed follow from it. Under the default rules about 12 % emergency, 30 %
  priority, 12 % scheduled, 9 % neighbourhood, 22 % investigator, 14 % signpost. A few
  carry a handler ``grade`` (the one the rules give).
* **Dispatch** (the recorded dispatch, the status quo): emergency and priority incidents
  after a dispatch delay, and scheduled ones at their appointment time, get the closest
  available response officer(s) by great-circle distance (emergencies may break a
  refreshment break), preferring those with the required skills; a ``deployment``
  (accepted, by ``sim-dispatcher``), ``en_route``, ``at_scene`` on arrival, sometimes
  ``committed`` (custody, statements, hospital), then ``available``. Delays, mobilisation,
  travel and time on scene come from :mod:`sdo.evaluation.timing` (calibrated; the closed
  loop of ``sdo evaluate`` uses the same model). The incident goes ``resourced``, then
  ``closed`` when the last officer leaves. Signposted, investigator and neighbourhood
  incidents are closed from the control-room queue after a handover delay: the status
  quo sends nobody to them.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import heapq
import io
import itertools
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sdo.domain.geo import haversine_m
from sdo.domain.grading import Rules, grade
from sdo.errors import ConfigError
from sdo.evaluation.calls import (
    _CATEGORY_CUM,
    _CATEGORY_NAMES,
    _E,
    _G,
    _GRADE_OF,
    _HOURLY,
    _P,
    _S,
    _TYPOLOGY_DEMAND,
    CATEGORIES,
    _facts,
    _officers_required,
    _required_skills,
)
from sdo.evaluation.roster import (
    _SHIFTS,
    _SPEED,
    AreasLike,
    OfficerPlan,
    roster,
)
from sdo.evaluation.timing import Timing
from sdo.events import (
    Decision,
    Deployment,
    Incident,
    IncidentState,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Response,
    Role,
    Status,
    Transport,
    encode,
)
from sdo.progress import ProgressLine, eta_text

__all__ = [
    "DISPATCHER",
    "INCIDENTS_PER_DAY",
    "LogCounts",
    "OfficerPlan",
    "cli",
    "roster",
    "simulate",
    "write_log",
]

#: The ``by`` of every deployment the simulated dispatcher makes.
DISPATCHER: Final = "sim-dispatcher"
#: Default demand across the pilot area.
INCIDENTS_PER_DAY: Final = 400.0

_DAY: Final = 86_400
_SLOW: Final = frozenset({Transport.FOOT, Transport.BICYCLE})
_HOUR: Final = 3_600
_M_PER_DEG: Final = 111_320.0
#: Straight-line distance x this = road distance while patrolling (urban grid).
_ROAD_FACTOR: Final = 1.35
#: Response officers' work that is not a call, per shift: how many spells (drawn
#: uniformly), each ``committed`` for a while (seconds), at random times when free.
#: Paperwork, prisoners, court and enquiries take a third or more of a response shift
#: in published work studies; here about two hours of nine.
_DUTIES: Final = (1, 3)
_DUTY_S: Final = (30 * 60, 90 * 60)
_DUTY_NOTES: Final = ("other duties: paperwork", "other duties: prisoner", "other duties: enquiry")
#: AVL drop-outs: after any fix, with this chance, the unit sends nothing for a spell
#: (seconds, drawn uniformly): about one drop-out per unit every hour or two, a few of
#: them long enough for the unit to show as stale (no fix for 10 min).
_OUTAGE_P: Final = 0.004
_OUTAGE_S: Final = (60, 1500)

# ---------------------------------------------------------------------------------------
# Simulation state


@dataclass(slots=True)
class _Officer:
    plan: OfficerPlan
    status: Status = Status.OFF_DUTY
    lon: float = 0.0
    lat: float = 0.0
    last_t: int = 0
    target: tuple[float, float] | None = None
    speed: float = 0.0  # effective m/s toward target
    park_until: int = 0
    heading: float = 0.0
    incident: str | None = None
    shift_end: int = 0
    shift_no: int = 0  # invalidates the previous shift's pending actions
    break_at: int = 0
    break_no: int = 0
    break_taken: bool = False
    breaking: bool = False

    @property
    def on_duty(self) -> bool:
        return self.status is not Status.OFF_DUTY

    @property
    def fixes(self) -> bool:
        return self.plan.transport is not Transport.DESK


@dataclass(slots=True)
class _Incident:
    event: Incident
    response: Response
    officers: list[str] = field(default_factory=list)
    on_scene: int = 0


class _Sim:
    """The heap, the state and the event factory of one run (see the module docstring)."""

    def __init__(
        self,
        areas: AreasLike,
        *,
        seed: int,
        hours: float,
        officers: int,
        start: datetime,
        incidents_per_day: float,
        rules: Rules,
        timing: Timing,
    ) -> None:
        if hours <= 0:
            raise ConfigError("--hours must be positive")
        if start.tzinfo is None:
            raise ConfigError("--start needs a time zone, e.g. 2015-12-01T06:00:00Z")
        if not areas.neighbourhoods:
            raise ConfigError("the area file has no neighbourhoods")
        self.areas = areas
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311  (a simulation, not security)
        self.start = start.astimezone(UTC).replace(microsecond=0)
        self.end = round(hours * _HOUR)
        self.incidents_per_day = incidents_per_day
        self.rules = rules
        self.timing = timing
        self.heap: list[tuple[int, int, str, Any]] = []
        self.seq = itertools.count()
        self.ids = itertools.count(1)
        self.incident_no = itertools.count(1)
        self.out: list[Any] = []
        self.officers = [_Officer(p) for p in roster(areas, officers, self.rng)]
        self.by_id = {o.plan.officer_id: o for o in self.officers}
        self.incidents: dict[str, _Incident] = {}
        nbhds = list(areas.neighbourhoods.values())
        self.demand_ids = tuple(n.id for n in nbhds)
        self.demand_cum = tuple(
            itertools.accumulate(_TYPOLOGY_DEMAND.get(n.typology, 1.0) for n in nbhds)
        )
        self.hour0 = self.start.hour + self.start.minute / 60 + self.start.second / _HOUR

    # -- plumbing ------------------------------------------------------------------------

    def at(self, t: int, kind: str, payload: Any = None) -> None:
        if t < self.end:
            heapq.heappush(self.heap, (t, next(self.seq), kind, payload))

    def ts(self, t: int) -> datetime:
        return self.start + timedelta(seconds=t)

    def eid(self) -> str:
        return f"sim-{self.seed}-{next(self.ids)}"

    def hour_of(self, t: int) -> int:
        return int(self.hour0 + t / _HOUR) % 24

    def run(self) -> Iterator[Any]:
        for o in self.officers:
            self.plan_shifts(o)
        self.next_incident(0)
        handlers: dict[str, Callable[[int, Any], None]] = {
            "fix": self.on_fix, "shift_start": self.on_shift_start,
            "shift_end": self.on_shift_end, "break": self.on_break,
            "break_end": self.on_break_end, "incident": self.on_incident,
            "dispatch": self.on_dispatch, "arrive": self.on_arrive, "clear": self.on_clear,
            "free": self.on_free, "close": self.on_close, "duty": self.on_duty,
        }  # fmt: skip
        heap, out = self.heap, self.out
        while heap:
            t, _, kind, payload = heapq.heappop(heap)
            handlers[kind](t, payload)
            if out:
                yield from out
                out.clear()

    # -- geometry ------------------------------------------------------------------------

    def point_in(self, nbhd_id: str) -> tuple[float, float]:
        nb = self.areas.neighbourhoods[nbhd_id]
        x0, y0, x1, y1 = nb.bbox
        uniform = self.rng.uniform
        for _ in range(40):
            lon, lat = uniform(x0, x1), uniform(y0, y1)
            if self.areas.contains(nbhd_id, lon, lat):
                return lon, lat
        return nb.centroid

    def waypoint(self, o: _Officer) -> tuple[float, float]:
        return self.point_in(self.rng.choice(o.plan.beat))

    def advance(self, o: _Officer, t: int) -> None:
        """Move ``o`` along its straight line from ``o.last_t`` to ``t``."""
        dt = t - o.last_t
        o.last_t = t
        if o.target is None or dt <= 0:
            return
        tx, ty = o.target
        kx = _M_PER_DEG * math.cos(math.radians(o.lat))
        dx, dy = (tx - o.lon) * kx, (ty - o.lat) * _M_PER_DEG
        dist = math.hypot(dx, dy)
        if dist > 0.5:
            o.heading = math.degrees(math.atan2(dx, dy)) % 360.0
        step = o.speed * dt
        if step >= dist:
            o.lon, o.lat = tx, ty
            if o.status is Status.AVAILABLE:  # patrol waypoint reached: stop or go on
                o.target = None
                if self.rng.random() < 0.4:
                    o.park_until = t + self.rng.randint(180, 900)
        else:
            f = step / dist
            o.lon += dx * f / kx
            o.lat += dy * f / _M_PER_DEG

    def patrol(self, o: _Officer, t: int) -> None:
        if o.status is Status.AVAILABLE and o.target is None and t >= o.park_until and o.plan.beat:
            o.target = self.waypoint(o)
            o.speed = _SPEED[o.plan.transport][0] * self.rng.uniform(0.7, 1.1) / _ROAD_FACTOR

    # -- shifts --------------------------------------------------------------------------

    def plan_shifts(self, o: _Officer) -> None:
        begin, length = _SHIFTS[o.plan.shift]
        midnight = self.start.replace(hour=0, minute=0, second=0)
        base = int((midnight - self.start).total_seconds())
        for day in range(-1, math.ceil(self.end / _DAY) + 2):
            s = base + day * _DAY + begin * _HOUR
            e = s + length * _HOUR
            if e > 0 and s < self.end:
                self.at(max(0, s), "shift_start", (o, e))

    def on_shift_start(self, t: int, payload: tuple[_Officer, int]) -> None:
        o, end = payload
        o.shift_no += 1
        o.shift_end = end
        o.break_taken = o.breaking = False
        o.break_at = 0
        o.incident = None
        p = o.plan
        self.out.append(OfficerProfile(
            event_id=self.eid(), ts=self.ts(t), officer_id=p.officer_id, callsign=p.callsign,
            role=p.role, skills=p.skills, transport=p.transport, npu=p.npu,
            neighbourhoods=p.neighbourhoods, shift_end=self.ts(end),
        ))  # fmt: skip
        self.set_status(o, t, Status.AVAILABLE, note="on duty")
        if o.fixes:
            o.lon, o.lat = self.waypoint(o)
            o.last_t, o.target, o.park_until = t, None, 0
            self.at(t, "fix", (o, o.shift_no))
        mid = (t + end) // 2 + self.rng.randint(-45 * 60, 45 * 60)
        if mid > t + _HOUR and mid < end - _HOUR:
            self.at(mid, "break", (o, o.shift_no))
        if p.role is Role.RESPONSE:
            for _ in range(self.rng.randint(*_DUTIES)):
                self.at(self.rng.randint(t + 600, max(t + 601, end - _HOUR)), "duty",
                        (o, o.shift_no))  # fmt: skip
        self.at(end, "shift_end", (o, o.shift_no))

    def on_duty(self, t: int, payload: tuple[_Officer, int]) -> None:
        """Work that is not a call (paperwork, a prisoner to book in, a court warrant):
        ``committed`` with no incident, if free."""
        o, no = payload
        if no != o.shift_no or o.status is not Status.AVAILABLE:
            return
        o.target = None
        note = self.rng.choice(_DUTY_NOTES)
        self.set_status(o, t, Status.COMMITTED, note=note)
        self.at(t + self.rng.randint(*_DUTY_S), "free", o)

    def on_shift_end(self, t: int, payload: tuple[_Officer, int]) -> None:
        o, no = payload
        if no == o.shift_no and o.status in (Status.AVAILABLE, Status.REFRESHMENT):
            self.off_duty(o, t)

    def off_duty(self, o: _Officer, t: int) -> None:
        o.breaking = False
        o.target = None
        self.set_status(o, t, Status.OFF_DUTY, note="end of shift")

    def on_break(self, t: int, payload: tuple[_Officer, int]) -> None:
        o, no = payload
        if no != o.shift_no or o.break_taken:
            return
        if o.status is Status.AVAILABLE:
            self.start_break(o, t)
        else:
            o.break_at = t  # taken when next free

    def start_break(self, o: _Officer, t: int) -> None:
        o.break_taken = o.breaking = True
        o.break_no += 1
        o.target = None
        self.set_status(o, t, Status.REFRESHMENT, note="meal break")
        self.at(t + 45 * 60, "break_end", (o, o.break_no))

    def on_break_end(self, t: int, payload: tuple[_Officer, int]) -> None:
        o, no = payload
        if no == o.break_no and o.breaking and o.status is Status.REFRESHMENT:
            o.breaking = False
            self.set_status(o, t, Status.AVAILABLE)

    def set_status(
        self,
        o: _Officer,
        t: int,
        status: Status,
        *,
        incident: str | None = None,
        note: str | None = None,
    ) -> None:
        o.status = status
        self.out.append(OfficerStatus(
            event_id=self.eid(), ts=self.ts(t), officer_id=o.plan.officer_id, status=status,
            incident_id=incident, note=note,
        ))  # fmt: skip

    # -- AVL -----------------------------------------------------------------------------

    def on_fix(self, t: int, payload: tuple[_Officer, int]) -> None:
        o, no = payload
        if no != o.shift_no or not o.on_duty:
            return
        self.advance(o, t)
        self.patrol(o, t)
        rnd = self.rng.random
        moving = o.target is not None
        # GPS noise: uniform within ~ the reported accuracy (cheaper than gauss, as plausible)
        acc = round(4.0 + 11.0 * rnd(), 1)
        noise = acc / _M_PER_DEG
        lat = o.lat + (rnd() - 0.5) * noise
        lon = o.lon + (rnd() - 0.5) * noise / math.cos(math.radians(o.lat))
        # Built unvalidated for speed (a fix is ~all of the log): every field is in range by
        # construction here, and the tests decode whole logs to hold that true.
        self.out.append(OfficerLocation.model_construct(
            event_id=f"sim-{self.seed}-{next(self.ids)}", ts=self.start + timedelta(seconds=t),
            officer_id=o.plan.officer_id, lat=round(lat, 6), lon=round(lon, 6),
            accuracy_m=acc, speed_mps=round(o.speed, 1) if moving else 0.0,
            heading_deg=round(o.heading, 1) % 360.0,
        ))  # fmt: skip
        if not moving:
            gap = 30
        elif o.plan.transport in _SLOW:
            gap = 20
        else:
            gap = 5 + int(rnd() * 11)
        if rnd() < _OUTAGE_P:  # the unit drops out: tunnel, flat battery, a fault
            gap += int(_OUTAGE_S[0] + rnd() * (_OUTAGE_S[1] - _OUTAGE_S[0]))
        self.at(t + gap, "fix", payload)

    # -- incidents -----------------------------------------------------------------------

    def next_incident(self, t: int) -> None:
        """Schedule the next arrival by thinning a Poisson process at the peak rate."""
        peak = max(_HOURLY)
        mean = sum(_HOURLY) / 24
        rate = self.incidents_per_day / _DAY * peak / mean
        if rate <= 0:
            return
        while True:
            t += max(1, round(self.rng.expovariate(rate)))
            if t >= self.end:
                return
            if self.rng.random() * peak < _HOURLY[self.hour_of(t)]:
                self.at(t, "incident")
                return

    def on_incident(self, t: int, _: None) -> None:
        rng = self.rng
        k = bisect.bisect_right(_CATEGORY_CUM, rng.random() * _CATEGORY_CUM[-1])
        category = _CATEGORY_NAMES[min(k, len(_CATEGORY_NAMES) - 1)]
        profile = CATEGORIES[category]
        facts = _facts(profile, rng)
        j = bisect.bisect_right(self.demand_cum, rng.random() * self.demand_cum[-1])
        lon, lat = self.point_in(self.demand_ids[min(j, len(self.demand_ids) - 1)])
        iid = f"INC-{self.seed}-{next(self.incident_no):05d}"
        event = Incident(
            event_id=self.eid(), ts=self.ts(t), incident_id=iid, lat=round(lat, 6),
            lon=round(lon, 6), category=category, summary=profile.summary,
            thrive=facts.thrive, ongoing=facts.ongoing, offender_present=facts.offender_present,
            persistent=facts.persistent,
        )  # fmt: skip
        # The response follows from grading the answers (the rules in force), never the
        # reverse; what the response needs (skills, officers) follows from the response.
        response = grade(event, self.rules).response
        if rng.random() < 0.03:  # the handler confirms the grade by hand now and then
            event = event.model_copy(update={"grade": _GRADE_OF[response]})
        event = event.model_copy(
            update={
                "required_skills": tuple(
                    _required_skills(category, response, self.hour_of(t), rng)
                ),
                "officers_required": _officers_required(category, response, rng),
            }
        )
        self.out.append(event)
        self.incidents[iid] = _Incident(event, response)
        if response in (_E, _P):
            delay = self.timing.dispatch_delay_s(iid, _GRADE_OF[response])
            self.at(t + delay, "dispatch", iid)
        elif response is _S:
            self.at(t + self.timing.appointment_s(iid), "dispatch", iid)
        elif response is _G:
            self.at(t + rng.randint(300, 1200), "close", iid)
        else:
            self.at(t + rng.randint(1800, 7200), "close", iid)
        self.next_incident(t)

    def update_incident(self, t: int, inc: _Incident, state: IncidentState) -> None:
        inc.event = inc.event.model_copy(
            update={"event_id": self.eid(), "ts": self.ts(t), "state": state}
        )
        self.out.append(inc.event)

    def on_close(self, t: int, iid: str) -> None:
        inc = self.incidents.pop(iid, None)
        if inc is not None:
            self.update_incident(t, inc, IncidentState.CLOSED)

    def on_dispatch(self, t: int, iid: str) -> None:
        inc = self.incidents.get(iid)
        if inc is None:
            return
        chosen = self.closest(inc)
        if not chosen:
            retry = {_E: 60, _P: 180}.get(inc.response, 1800)
            self.at(t + retry, "dispatch", iid)
            return
        ev = inc.event
        self.out.append(Deployment(
            event_id=self.eid(), ts=self.ts(t), incident_id=iid, decision=Decision.ACCEPTED,
            officer_ids=tuple(o.plan.officer_id for o in chosen), by=DISPATCHER,
        ))  # fmt: skip
        g = _GRADE_OF[inc.response]
        for o in chosen:
            self.advance(o, t)
            o.breaking = False
            o.incident = iid
            oid = o.plan.officer_id
            inc.officers.append(oid)
            self.set_status(o, t, Status.EN_ROUTE, incident=iid)
            dist = haversine_m(o.lon, o.lat, ev.lon, ev.lat)
            travel = self.timing.travel_s(dist, o.plan.transport, g) or 0.0
            leave = self.timing.mobilise_s(iid, oid, g)
            took = leave + max(30, math.ceil(travel))
            o.target = (ev.lon, ev.lat)
            o.speed = dist / took  # along the straight line the fixes show
            self.at(t + took, "arrive", (o, iid))
        self.update_incident(t, inc, IncidentState.RESOURCED)

    def closest(self, inc: _Incident) -> list[_Officer]:
        """The closest available response officers, those with the skills first."""
        ok = (Status.AVAILABLE, Status.REFRESHMENT) if inc.response is _E else (Status.AVAILABLE,)
        ev = inc.event
        need = set(ev.required_skills)
        ranked = sorted(
            (
                (not need.issubset(o.plan.skills), haversine_m(o.lon, o.lat, ev.lon, ev.lat), n, o)
                for n, o in enumerate(self.officers)
                if o.plan.role is Role.RESPONSE and o.status in ok and o.fixes
            ),
            key=lambda row: row[:3],
        )
        return [row[3] for row in ranked[: ev.officers_required]]

    def on_arrive(self, t: int, payload: tuple[_Officer, str]) -> None:
        o, iid = payload
        if o.incident != iid or o.status is not Status.EN_ROUTE:
            return
        inc = self.incidents[iid]
        o.lon, o.lat, o.last_t, o.target = inc.event.lon, inc.event.lat, t, None
        inc.on_scene += 1
        self.set_status(o, t, Status.AT_SCENE, incident=iid)
        g, oid = _GRADE_OF[inc.response], o.plan.officer_id
        self.at(t + self.timing.on_scene_s(iid, oid, inc.event.category, g), "clear", (o, iid))

    def on_clear(self, t: int, payload: tuple[_Officer, str]) -> None:
        o, iid = payload
        inc = self.incidents.get(iid)
        if inc is None or o.incident != iid:
            return
        inc.officers.remove(o.plan.officer_id)
        if not inc.officers:
            self.on_close(t, iid)
        committed = self.timing.committed_s(iid, o.plan.officer_id, _GRADE_OF[inc.response])
        if committed:
            note = self.rng.choice(("custody", "statements", "hospital"))
            self.set_status(o, t, Status.COMMITTED, incident=iid, note=note)
            self.at(t + committed, "free", o)
        else:
            self.on_free(t, o)

    def on_free(self, t: int, o: _Officer) -> None:
        o.incident = None
        o.target = None
        o.last_t = t
        if t >= o.shift_end:
            self.off_duty(o, t)
        elif o.break_at and not o.break_taken and t < o.shift_end - _HOUR:
            self.set_status(o, t, Status.AVAILABLE)
            self.start_break(o, t)
        else:
            self.set_status(o, t, Status.AVAILABLE)


def simulate(
    areas: AreasLike,
    *,
    seed: int,
    hours: float,
    officers: int,
    start: datetime,
    incidents_per_day: float = INCIDENTS_PER_DAY,
    rules: Rules | None = None,
    timing: Timing | None = None,
) -> Iterator[Any]:
    """The synthetic pilot events, one model at a time, in non-decreasing ``ts`` order.

    Deterministic in its arguments (see the module docstring). Raises
    :class:`~sdo.errors.ConfigError` on unusable arguments before yielding anything.
    """
    if rules is None:
        from sdo.config import DEFAULT_RULES, package_data  # noqa: PLC0415
        from sdo.grade import load_rules  # noqa: PLC0415

        rules = load_rules(package_data(DEFAULT_RULES))
    sim = _Sim(areas, seed=seed, hours=hours, officers=officers, start=start,
               incidents_per_day=incidents_per_day, rules=rules,
               timing=timing or Timing())  # fmt: skip
    return sim.run()


# ---------------------------------------------------------------------------------------
# Writing a log


@dataclass(slots=True)
class LogCounts:
    """What :func:`write_log` wrote."""

    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    incidents: int = 0
    officers: int = 0


def check_new(out: Path, *, force: bool) -> None:
    """A log is data: writing over an existing file takes ``--force``."""
    if out.is_dir():
        raise ConfigError(f"{out} is a directory, not a log file")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; give --force to replace it")


def write_log(
    events: Iterator[Any],
    out: Path,
    progress: Callable[[int, datetime], None] | None = None,
) -> LogCounts:
    """Write ``events`` as JSON lines to ``out`` (gzip if it ends in ``.gz``), streaming.

    The gzip header carries no file name and ``mtime=0``, so equal events give equal bytes.
    The log is written beside ``out`` and takes its name only when whole: an interrupted
    run leaves no truncated log (and an earlier one at ``out`` as it was).
    ``progress(events written, time of the last)`` is called every few thousand events.
    """
    partial = out.with_name(f".{out.name}.partial")
    try:
        raw = partial.open("wb")
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with raw:
            counts = _write_lines(events, raw, gz=out.name.endswith(".gz"), progress=progress)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counts


def _write_lines(
    events: Iterator[Any],
    raw: io.BufferedIOBase,
    *,
    gz: bool,
    progress: Callable[[int, datetime], None] | None,
) -> LogCounts:
    counts = LogCounts()
    officers: dict[str, None] = {}
    written = 0
    sink: io.BufferedIOBase = (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) if gz else raw
    )
    with sink:
        chunk: list[bytes] = []
        for event in events:
            chunk.append(encode(event))
            kind = event.type
            counts.by_type[kind] = counts.by_type.get(kind, 0) + 1
            if kind == "incident" and event.state is IncidentState.OPEN:
                counts.incidents += 1
            elif kind == "officer.profile":
                officers[event.officer_id] = None
            if len(chunk) >= 4096:
                sink.write(b"\n".join(chunk) + b"\n")
                written += len(chunk)
                chunk.clear()
                if progress is not None:
                    progress(written, event.ts)
        if chunk:
            sink.write(b"\n".join(chunk) + b"\n")
    counts.events = sum(counts.by_type.values())
    counts.officers = len(officers)
    return counts


def _parse_start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--start {text!r} is not an RFC 3339 time") from None
    if start.tzinfo is None:
        raise ConfigError(f"--start {text!r} needs a time zone, e.g. 2015-12-01T06:00:00Z")
    return start


def cli(args: argparse.Namespace) -> int:
    """``sdo simulate``: write the log, print one summary line on stderr."""
    from sdo.areas import load_areas  # noqa: PLC0415  (shapely only when the command runs)
    from sdo.cli import settings_from  # noqa: PLC0415  (cli imports this module lazily)

    settings = settings_from(args)
    check_new(args.out, force=args.force)
    areas = load_areas(settings.areas_path)
    start = _parse_start(args.start)
    per_day = getattr(args, "incidents_per_day", None) or INCIDENTS_PER_DAY
    began = time.perf_counter()
    events = simulate(areas, seed=args.seed, hours=args.hours, officers=args.officers,
                      start=start, incidents_per_day=per_day)  # fmt: skip
    line = ProgressLine(sys.stderr)
    span_s = args.hours * 3600.0

    def progress(written: int, ts: datetime) -> None:
        if not line.due():
            return
        fraction = min(1.0, max(0.0, (ts - start).total_seconds() / span_s))
        seconds = time.perf_counter() - began
        eta = eta_text(seconds, fraction)
        line.show(
            f"sdo simulate: {fraction:.0%} of {args.hours:g} h, {written:,} events "
            f"({written / seconds:,.0f}/s){eta}"
        )

    try:
        counts = write_log(events, args.out, progress)
    finally:
        line.clear()
    took = time.perf_counter() - began
    print(  # noqa: T201  (the command's one summary line)
        f"sdo simulate: {counts.events} events, {counts.incidents} incidents, "
        f"{args.officers} officers on duty at once ({counts.officers} came on duty in the log) -> "
        f"{args.out} ({took:.1f}s)",
        file=sys.stderr,
    )
    return 0
