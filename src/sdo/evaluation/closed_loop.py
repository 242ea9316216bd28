"""The closed loop of ``sdo evaluate --closed-loop``: a policy's recommendations carried out
as an SDO accepting every one of them would, so that response times, cover gaps, workload
and unresourced calls are outcomes of the policy rather than of the recorded dispatch.

Theory of operation
-------------------
A discrete-event simulation (as JEMSS.jl, after Jagtenberg et al. 2017) wrapped around the
unchanged :class:`~sdo.domain.world.World`. The log supplies what no policy changes:
demand (the incidents as logged), the officers, their shifts, breaks and work that is not
a call, and where they patrol (AVL). What the recorded dispatch caused is dropped
(:meth:`ClosedLoop.admit`): its deployments, the statuses of officers on its jobs
(``en_route``, ``at_scene``, a ``committed`` that names an incident, and the
``available`` that ends one) and the incidents' ``resourced``/``closed`` updates. In their
place the loop makes the events the policy's decisions cause, and feeds them back
through ``World.apply`` at their time, in order with the log:

1. when an incident is first recommended for, the SDO acts on the recommendation in force
   after the dispatch delay (:class:`~sdo.evaluation.timing.Timing`; a scheduled call at
   its appointment): an ``accepted`` deployment of the officers it names (the World puts
   them ``en_route``); a signpost's names nobody and closes the call; a recommendation
   naming nobody for want of officers waits for the next one that names someone;
2. each officer arrives after mobilising and travelling there (the timing model's detour
   and speeds: what the street does, not what the policy believes), is ``at_scene`` for
   the time on scene, sometimes then ``committed`` (custody, statements, hospital), and is
   ``available`` again where the call was; an investigator on the desk takes the call on
   and stays available;
3. the incident is ``closed`` when the last officer leaves (a desk allocation after the
   handover). A call the policy never gets anyone to stays open: the log's closing of it
   (the recorded dispatch's doing) is not applied, and it counts as not reached.

A shift's end, a meal break or other duties that fall while the loop holds an officer on
a call wait until the officer is free, as the simulated dispatch does. The officer's AVL
fixes still come from the log (the loop adds none): a fix moves an officer the loop holds
on a call, which changes nothing the loop measures (times come from the timing model),
and the first fix after the call puts them back on their patrol. Each draw is keyed by
the incident (:func:`~sdo.evaluation.timing.draw`), so every policy meets the same delays
and times on scene for the same call.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sdo.domain.geo import haversine_m
from sdo.domain.world import World
from sdo.evaluation.timing import Timing, draw
from sdo.events import (
    Decision,
    Deployment,
    Incident,
    IncidentState,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
    Response,
    Status,
    Transport,
)

__all__ = ["BY", "ClosedLoop", "Workload"]

#: The ``by`` of every deployment the loop makes (the SDO accepting the recommendation).
BY: Final = "closed-loop"
_BREAK_S: Final = 45 * 60
_HOUR_S: Final = 3600
#: A desk allocation (investigator) or signpost leaves the control room's queue after this.
_HANDOVER_S: Final = (30 * 60, 120 * 60)


@dataclass(slots=True)
class Workload:
    """What the loop had officers do, per role."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    by_officer: dict[str, float] = field(default_factory=dict)
    #: calls allocated to each officer on the desk (investigators)
    allocated: Counter[str] = field(default_factory=Counter)
    role_of: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Per role: calls taken, officer-hours on calls, the busiest officer's hours; on
        the desk, how many officers took calls and the most any one took."""
        out: dict[str, Any] = {}
        for role in sorted(set(self.calls) | set(self.seconds)):
            mine = [s for o, s in self.by_officer.items() if self.role_of.get(o) == role]
            desk = [n for o, n in self.allocated.items() if self.role_of.get(o) == role]
            out[role] = {
                "calls": self.calls[role],
                "officer_hours_on_calls": round(self.seconds.get(role, 0.0) / _HOUR_S, 1),
                "officers": len(mine),
                "busiest_officer_hours": round(max(mine, default=0) / _HOUR_S, 1),
                "desk_officers": len(desk),
                "busiest_desk_officer_calls": max(desk, default=0),
            }
        return out


@dataclass(slots=True)
class _Call:
    """An incident the loop has deployed officers to."""

    grade: int
    officers: set[str]


class ClosedLoop:
    """The loop around one World (see the module docstring). It acts on every incident the
    World is given (``closest`` is given the calls the force attended only: the pass leaves
    the others out before the World sees them)."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self._heap: list[tuple[datetime, int, str, Any]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._seen: set[str] = set()  # incidents the loop has scheduled an action for
        self._waiting: set[str] = set()  # due, but no recommendation has named anyone yet
        self._calls: dict[str, _Call] = {}
        self._held: dict[str, str] = {}  # officer -> the call the loop holds them on
        self._since: dict[str, datetime] = {}  # officer -> when the loop took them
        self._log_job: set[str] = set()  # officers the log has on a recorded job
        self._pending_break: set[str] = set()
        self._pending_off: set[str] = set()
        self._shift_end: dict[str, datetime] = {}
        self.workload = Workload()
        self.deployed = 0

    # -- the log, as the loop lets it through -----------------------------------------

    def admit(self, event: Any) -> Any | None:
        """``event`` as the closed loop applies it, or None where the recorded dispatch
        caused it (see the module docstring)."""
        if isinstance(event, OfficerStatus):
            return self._status(event)
        if isinstance(event, Deployment):
            return None
        if isinstance(event, Incident):
            if event.state is IncidentState.OPEN:
                return event
            # the recorded dispatch's resourced/closed: once the policy has the call (it
            # was recommended for), the loop decides those; a call it never had is closed
            # as the log says
            if event.state is IncidentState.CLOSED and event.incident_id not in self._seen:
                return event
            return None
        if isinstance(event, OfficerProfile):
            if event.shift_end is not None:
                self._shift_end[event.officer_id] = event.shift_end
                self._at(event.shift_end, "shift_end", event.officer_id)
            self.workload.role_of[event.officer_id] = event.role.value
        return event

    def _status(self, event: OfficerStatus) -> OfficerStatus | None:
        oid = event.officer_id
        if event.incident_id is not None:
            self._log_job.add(oid)  # the recorded dispatch's job: not this policy's
            return None
        if event.status is Status.AVAILABLE and oid in self._log_job:
            self._log_job.discard(oid)  # the end of a recorded job
            return None
        self._log_job.discard(oid)
        if oid not in self._held:
            return event
        # the loop has this officer on a call: what the log says waits until they are free
        if event.status is Status.REFRESHMENT:
            self._pending_break.add(oid)
        elif event.status is Status.OFF_DUTY:
            self._pending_off.add(oid)
        return None

    # -- the policy's recommendations, acted on ---------------------------------------

    def react(self, world: World, outputs: Iterable[Any]) -> None:
        """Hear what the World published: a first recommendation schedules the SDO's
        action; one naming officers for a call that has waited is acted on now."""
        for out in outputs:
            if type(out) is not Recommendation:
                continue
            iid = out.incident_id
            if iid in self._waiting and out.recommended:
                self._waiting.discard(iid)
                self._at(out.ts, "accept", iid)
            elif iid not in self._seen:
                self._seen.add(iid)
                record = world.incidents.get(iid)
                if record is None:
                    continue
                when = record.created_ts + timedelta(seconds=self._delay_s(iid, out))
                self._at(max(when, out.ts), "accept", iid)

    def _delay_s(self, iid: str, rec: Recommendation) -> int:
        if rec.response is Response.SCHEDULED:
            return self.timing.appointment_s(iid)
        return self.timing.dispatch_delay_s(iid, rec.grade)

    # -- the loop's own events ----------------------------------------------------------

    @property
    def next_time(self) -> datetime | None:
        """When the loop next has something to do (None: nothing pending)."""
        return self._heap[0][0] if self._heap else None

    def pop(self, world: World, until: datetime) -> list[Any] | None:
        """Run the loop's next action if it is due by ``until``: the events it causes (to
        apply now, in order), or None when nothing is due. Each action looks at the World
        as it stands, so apply its events before the next call."""
        heap = self._heap
        if not heap or heap[0][0] > until:
            return None
        when, _, kind, subject = heapq.heappop(heap)
        events: list[Any] = getattr(self, f"_on_{kind}")(world, when, subject)
        return events

    def _at(self, when: datetime, kind: str, subject: Any) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), kind, subject))

    def _eid(self) -> str:
        return f"{BY}-{next(self._ids)}"

    def _set(self, oid: str, ts: datetime, status: Status, iid: str | None = None) -> Any:
        return OfficerStatus(
            event_id=self._eid(), ts=ts, officer_id=oid, status=status, incident_id=iid,
            note=f"{BY}: {status.value}",
        )  # fmt: skip

    def _on_accept(self, world: World, ts: datetime, iid: str) -> list[Any]:
        record = world.incidents.get(iid)
        rec = world.recommendation(iid)
        if record is None or not record.awaiting_deployment or iid in self._calls:
            return []
        if rec is None or (not rec.recommended and rec.service is None):
            self._waiting.add(iid)  # acted on when a recommendation names someone
            return []
        deployment = Deployment(
            event_id=self._eid(), ts=ts, incident_id=iid, decision=Decision.ACCEPTED,
            officer_ids=rec.recommended, by=BY, recommendation_id=rec.recommendation_id,
        )  # fmt: skip
        self.deployed += 1
        out: list[Any] = [deployment]
        call = self._calls[iid] = _Call(rec.grade, set())
        officers = world.officers
        incident = record.incident
        for oid in rec.recommended:
            officer = officers.get(oid)
            role = officer.role.value if officer is not None and officer.role else "unknown"
            self.workload.calls[role] += 1
            self.workload.role_of.setdefault(oid, role)
            if officer is None or officer.transport in (None, Transport.DESK):
                # a desk allocation: the investigator takes it on and stays available
                self.workload.allocated[oid] += 1
                out.append(self._set(oid, ts, Status.AVAILABLE))
                continue
            lon, lat = officer.lon, officer.lat
            distance = (
                0.0
                if lon is None or lat is None
                else haversine_m(lon, lat, incident.lon, incident.lat)
            )
            travel = self.timing.travel_s(distance, officer.transport, rec.grade) or 0.0
            leave = self.timing.mobilise_s(iid, oid, rec.grade)
            call.officers.add(oid)
            self._held[oid] = iid
            self._since[oid] = ts
            self._at(ts + timedelta(seconds=leave + max(30.0, travel)), "arrive", (oid, iid))
        if not call.officers:
            handover = draw(iid, "handover").randint(*_HANDOVER_S)
            self._at(ts + timedelta(seconds=handover), "close", iid)
        return out

    def _on_arrive(self, world: World, ts: datetime, subject: tuple[str, str]) -> list[Any]:
        oid, iid = subject
        record = world.incidents.get(iid)
        category = record.incident.category if record is not None else ""
        grade = self._calls[iid].grade
        scene = self.timing.on_scene_s(iid, oid, category, grade)
        self._at(ts + timedelta(seconds=scene), "clear", subject)
        return [self._set(oid, ts, Status.AT_SCENE, iid)]

    def _on_clear(self, world: World, ts: datetime, subject: tuple[str, str]) -> list[Any]:
        oid, iid = subject
        call = self._calls[iid]
        call.officers.discard(oid)
        out: list[Any] = []
        if not call.officers:
            out += self._on_close(world, ts, iid)
        committed = self.timing.committed_s(iid, oid, call.grade)
        if committed:
            out.append(self._set(oid, ts, Status.COMMITTED, iid))
            self._at(ts + timedelta(seconds=committed), "free", oid)
        else:
            out += self._on_free(world, ts, oid)
        return out

    def _on_close(self, world: World, ts: datetime, iid: str) -> list[Any]:
        record = world.incidents.get(iid)
        if record is None or record.incident.state is IncidentState.CLOSED:
            return []
        closed = record.incident.model_copy(
            update={"event_id": self._eid(), "ts": ts, "state": IncidentState.CLOSED}
        )
        return [closed]

    def _on_free(self, world: World, ts: datetime, oid: str) -> list[Any]:
        self._held.pop(oid, None)
        since = self._since.pop(oid, ts)
        role = self.workload.role_of.get(oid, "unknown")
        seconds = (ts - since).total_seconds()
        work = self.workload
        work.seconds[role] = work.seconds.get(role, 0.0) + seconds
        work.by_officer[oid] = work.by_officer.get(oid, 0.0) + seconds
        end = self._shift_end.get(oid)
        if oid in self._pending_off or (end is not None and ts >= end):
            self._pending_off.discard(oid)
            self._pending_break.discard(oid)
            return [self._set(oid, ts, Status.OFF_DUTY)]
        if oid in self._pending_break:
            self._pending_break.discard(oid)
            if end is None or (end - ts).total_seconds() > _HOUR_S:
                self._at(ts + timedelta(seconds=_BREAK_S), "break_end", oid)
                return [self._set(oid, ts, Status.REFRESHMENT)]
        return [self._set(oid, ts, Status.AVAILABLE)]

    def _on_break_end(self, world: World, ts: datetime, oid: str) -> list[Any]:
        officer = world.officers.get(oid)
        if oid in self._held or officer is None or officer.status is not Status.REFRESHMENT:
            return []
        return [self._set(oid, ts, Status.AVAILABLE)]

    def _on_shift_end(self, world: World, ts: datetime, oid: str) -> list[Any]:
        """An officer the log kept on past their shift for a recorded job goes off duty at
        the shift's end, unless the loop holds them (then when free)."""
        officer = world.officers.get(oid)
        if officer is None or self._shift_end.get(oid) != ts:
            return []
        if oid in self._held:
            self._pending_off.add(oid)
            return []
        if officer.status in (Status.AVAILABLE, Status.REFRESHMENT) and oid in self._log_job:
            return [self._set(oid, ts, Status.OFF_DUTY)]
        return []


# ---------------------------------------------------------------------------------------
# Driving a pass: the log and the loop's events, in time order, into the World

#: How long after the log's last event the loop runs on, so that the calls of the last
#: hour get their officers there (no demand, shifts or fixes come in that hour).
DRAIN: Final = timedelta(hours=1)

Step = Callable[[World, Any, Any, Any], None]


def drive(
    world: World,
    metrics: Any,
    reader: Any,
    sink: Any,
    step: Step,
    admit: Callable[[Any], Any | None],
    loop: ClosedLoop | None,
    *,
    lane: bool,
    tick: Callable[[], None] | None = None,
    window_us: tuple[int, int] = (0, 2**62),
) -> dict[str, Any] | None:
    """One pass over the log through ``step`` (``sdo evaluate``'s), each log item first
    through ``admit`` (None: left out), with the ``loop``'s events (if any) applied at
    their times between the log's; plain fixes through the compiled fix lane if ``lane``.
    Returns the lane's stats (None without it). ``window_us``: the event times the lane
    may apply (:meth:`sdo.admission.Admission.window_us`; a fix outside goes to ``step``).
    """
    if not lane:
        for read in reader.items():
            if loop is not None:
                _run(world, metrics, sink, step, loop, read.ts)
            item = admit(read)
            if item is not None:
                step(world, metrics, item, sink)
            if tick is not None and metrics.events % 8192 == 0:
                tick()
        if loop is not None and metrics.last_ts is not None:
            _drain(world, metrics, sink, step, loop)
        return None
    return _drive_lane(world, metrics, reader, sink, step, admit, loop, tick, window_us)


def _drain(world: World, metrics: Any, sink: Any, step: Step, loop: ClosedLoop) -> None:
    """The loop's actions of the hour after the log (:data:`DRAIN`); the period measured
    stays the log's own (its last event's time)."""
    end = metrics.last_ts
    _run(world, metrics, sink, step, loop, end + DRAIN)
    metrics.last_ts = end


def _run(
    world: World, metrics: Any, sink: Any, step: Step, loop: ClosedLoop, until: datetime
) -> None:
    while (events := loop.pop(world, until)) is not None:
        for event in events:
            step(world, metrics, event, sink)


def _drive_lane(
    world: World,
    metrics: Any,
    reader: Any,
    sink: Any,
    step: Step,
    admit: Callable[[Any], Any | None],
    loop: ClosedLoop | None,
    tick: Callable[[], None] | None,
    window_us: tuple[int, int] = (0, 2**62),
) -> dict[str, Any]:
    """:func:`drive` with the fix lane: it takes runs of plain fixes, stopped at the next
    line it refuses or, with a loop, at the first line of the loop's next action's time or later."""
    import numpy as np  # noqa: PLC0415

    from sdo.domain.lane import REASONS, FixLane  # noqa: PLC0415 (numba is slow to import)

    fast = FixLane(world, window_us=window_us)  # (the admission rule's event times)
    lineno = 0
    for block in reader.blocks():
        buf = np.frombuffer(block, dtype=np.uint8)
        pos, end = 0, len(block)
        while True:
            limit = end
            due = loop.next_time if loop is not None else None
            if due is not None:
                limit = _first_due(block, pos, end, due)
            lines, applied = fast.lines, fast.applied
            pos = fast.scan(buf if limit == end else buf[:limit], pos)
            lineno += fast.lines - lines
            if fast.applied != applied:
                metrics.events += fast.applied - applied
                metrics.last_ts = fast.last_applied
            if pos >= end:
                break
            fast.sync()
            if pos >= limit:  # the loop's turn (due is set: limit < end)
                assert loop is not None and due is not None
                _run(world, metrics, sink, step, loop, due)
                fast.refresh()
                continue
            stop = block.index(b"\n", pos)
            lineno += 1
            item = reader.decode(lineno, block[pos:stop])
            if item is not None:
                if loop is not None:
                    _run(world, metrics, sink, step, loop, item.ts)
                item = admit(item)
                if item is not None:
                    step(world, metrics, item, sink)
            fast.refresh()
            pos = stop + 1
        if tick is not None:
            tick()
    if loop is not None and metrics.last_ts is not None:
        fast.sync()
        _drain(world, metrics, sink, step, loop)
        fast.refresh()
    fast.finish()
    reader.lines = lineno
    return {
        "applied": fast.applied,
        "into_another_neighbourhood": fast.replaced,
        "near_an_edge": fast.located,
        "refused": dict(zip(REASONS, fast.refused, strict=True)),
    }


_TS: Final = b'"ts":"'


def _line_ts(block: bytes, start: int) -> datetime | None:
    """The ``ts`` of the line starting at ``start`` (None if it has none that parses)."""
    at = block.find(_TS, start, block.find(b"\n", start))
    if at < 0:
        return None
    at += len(_TS)
    try:
        return datetime.fromisoformat(block[at : block.index(b'"', at)].decode())
    except (ValueError, UnicodeDecodeError):
        return None


def _first_due(block: bytes, lo: int, hi: int, when: datetime) -> int:
    """Where the first line of ``block[lo:hi]`` (whole lines, in time order) whose ``ts``
    is ``when`` or later starts, or ``hi``: a binary search. The loop's actions go before
    log lines of their own time, as without the lane. A line without a readable time
    counts as earlier (it goes first and is refused as it would be anyway)."""
    while lo < hi:
        mid = (lo + hi) // 2
        start = block.rfind(b"\n", lo, mid)
        start = lo if start < 0 else start + 1
        ts = _line_ts(block, start)
        if ts is not None and ts >= when:
            hi = start
        else:
            lo = block.index(b"\n", start) + 1
    return lo


def attended(reader: Any) -> frozenset[str]:
    """The incidents the log's own deployments sent someone to (accepted or overridden),
    read from the raw lines (a quick pass: only deployment lines are parsed)."""
    import orjson  # noqa: PLC0415

    seen: set[str] = set()
    marker = b'"type":"deployment"'
    for block in reader.blocks():
        at = block.find(marker)
        while at >= 0:
            start = block.rfind(b"\n", 0, at) + 1
            stop = block.index(b"\n", at)
            try:
                obj = orjson.loads(block[start:stop])
            except orjson.JSONDecodeError:
                obj = None
            if (
                isinstance(obj, dict)
                and obj.get("decision") != "declined"
                and obj.get("officer_ids")
            ):
                seen.add(str(obj.get("incident_id")))
            at = block.find(marker, stop)
    return frozenset(seen)
