"""The force as sdo knows it, and what each event does to it (pure).

Theory of operation
-------------------
:class:`World` is the one place that applies events. It holds the officer and incident
records (the durable copy lives in Faust tables; a restarted worker restores it with
:meth:`World.restore_officer` / :meth:`World.restore_incident`), the indexes the
recommender reads (grid of positions, role pools, availability buckets, workload), the
current recommendation of every incident awaiting a decision, and the timers that raise
time-driven alerts. :meth:`World.apply` takes one decoded event and returns
:class:`Effects`: which records changed (for the adapter to write), which availability
buckets changed, and which events to publish. It never performs I/O and never reads a
clock: time is the event time, and timers fire when event time passes them.

The same class drives the live worker and ``sdo evaluate``; that is why they agree.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from mypy_extensions import mypyc_attr

from sdo.domain.alarms import WARN_AT, Alarms, Timer
from sdo.domain.contest import SCORE_ROUNDING, Allocation, Contest, Race
from sdo.domain.fleet import Fleet
from sdo.domain.geo import Areas, Placement, haversine_m
from sdo.domain.grading import Grading, Rules, grade
from sdo.domain.recommend import (
    AllocationRule,
    DispatchRule,
    Policy,
    View,
    allocation_roles,
    cover_group,
    dispatches,
    fleet_tags,
    fleet_until,
    recommend,
)
from sdo.domain.state import (
    Change,
    IncidentRecord,
    Officer,
    apply_deployment,
    apply_incident,
    apply_location,
    apply_profile,
    apply_status,
    availability_keys,
    count_officer,
    counted_as,
    deployment_statuses,
    merge_officer,
    moved,
    placed,
)
from sdo.domain.waiting import Waiting
from sdo.errors import Rejected, UnknownOfficers
from sdo.events import (
    Alert,
    Deployment,
    Incident,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
    Role,
    Status,
    Transport,
    to_json_dict,
)

__all__ = ["WARN_AT", "Effects", "World"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Statuses and roles of officers a dispatched incident may take (see DispatchRule).
_CALLABLE: Final = frozenset({Status.AVAILABLE, Status.REFRESHMENT})
_DISPATCHED_ROLES: Final = frozenset({Role.RESPONSE, Role.FORCE_SUPPORT})
#: Where a held officer's fix is measured against (see World.fix_watch).
Drift = tuple[float, float, float, float] | None


@dataclass(slots=True)
class Effects:
    """What one event changed and what to publish because of it."""

    officers: list[Officer] = field(default_factory=list)
    incidents: list[IncidentRecord] = field(default_factory=list)
    availability: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: list[Recommendation | Alert] = field(default_factory=list)
    ignored: str | None = None
    #: earlier events refused now, with why: deployments that waited long enough for
    #: their incident (sdo.domain.waiting); the adapter dead-letters them
    refused: list[tuple[Deployment, str]] = field(default_factory=list)

    @property
    def recommendations(self) -> list[Recommendation]:
        return [o for o in self.outputs if isinstance(o, Recommendation)]

    @property
    def alerts(self) -> list[Alert]:
        return [o for o in self.outputs if isinstance(o, Alert)]


@mypyc_attr(allow_interpreted_subclasses=True)  # (tests subclass it; see sdo.compiled)
class World:
    """All officers and incidents, the indexes over them, and the current recommendations."""

    def __init__(self, areas: Areas, rules: Rules, policy: Policy | None = None) -> None:
        self._areas = areas
        self.rules = rules
        self.policy = policy or Policy.from_mapping("thrive", rules.recommend)
        #: the recommender (a test may count its calls: a compiled module's own globals
        #: are bound at build time)
        self._recommend: Callable[
            [IncidentRecord, Grading, View, Policy, datetime], Recommendation
        ] = recommend
        self._officers: dict[str, Officer] = {}
        self._incidents: dict[str, IncidentRecord] = {}
        self._fleet = Fleet()
        self._roles: dict[Role, set[str]] = {r: set() for r in Role}
        self._on_duty: dict[Role, set[str]] = {r: set() for r in Role}
        self._buckets: dict[str, set[str]] = {}
        self._counts: dict[str, Counter[str]] = {}
        self._load: Counter[str] = Counter()
        self._gradings: dict[str, Grading] = {}
        self._recs: dict[str, Recommendation] = {}
        #: officer id -> (incident id, grade) of the pending dispatch holding them (see
        #: _hold), and incident id -> the officers it holds
        self._holders: dict[str, tuple[str, int]] = {}
        self._held_by: dict[str, set[str]] = {}
        #: incidents whose current recommendation dispatches by ETA (a fix may beat it)
        self._dispatching: set[str] = set()
        #: pending grade 1 dispatches that require skills -> those skills: an officer who
        #: holds them coming available is offered to them wherever they are (the nearest
        #: holder is recommended as an extra unit when nobody eligible holds them)
        self._skilled: dict[str, frozenset[str]] = {}
        #: incident id -> what a moving officer must beat (see _beats), per recommendation
        self._races: dict[str, Race] = {}
        #: incident id -> rule of a pending allocation, and ranks against it (see _could_take)
        self._allocations: dict[str, Allocation] = {}
        #: incidents whose recommendation or record changed since the contest was built:
        #: their races are looked up again (see _current_contest)
        self._unraced: set[str] = set()
        #: the races of the pending dispatches (brought up to date by _current_contest)
        self._contest = Contest(self.policy.detour_factor)
        self._speed_rows: dict[Transport | None, np.ndarray] = {}
        #: the timers and which alerts are raised (sdo.domain.alarms)
        self._alarms = Alarms()
        #: deployments waiting for their incident (sdo.domain.waiting)
        self._waiting = Waiting()
        self.now = _EPOCH
        #: Officers whose record, stale state or stale timer changed, while something keeps
        #: a copy of what plain_fix reads (the evaluator's fix lane, sdo.domain.lane).
        self.touched: set[str] | None = None
        #: Whether an officer is this World's to watch for a stale position (None: every
        #: officer). A worker of several watches those of its partitions: the others'
        #: fixes reach it only at their owner's commits, and working through a backlog
        #: that is minutes of event time late (see arm_stale_timers).
        self.owns: Callable[[str], bool] | None = None
        #: Officers whose hold (see holder) changed, while such a copy is kept: also
        #: those whose holder's race (what drift_of reads) may have changed, since a race
        #: changes only as its incident is recommended again (which holds its officers
        #: anew, the same or others) or dropped (which releases them).
        self.held_touched: set[str] | None = None
        #: Officers whose record lacks their last fix, which a copy holds (the fix lane):
        #: reading their record first has the copy store it (see lag).
        self._lagging: set[str] = set()
        self._fix_source: Callable[[str], None] | None = None
        #: Incidents whose durable form (:meth:`durable_incident`) changed, while someone
        #: keeps it (the live worker writes them to its table at each commit).
        self.dirty_incidents: set[str] | None = None

    # -- the View the recommender reads -----------------------------------------------

    @property
    def areas(self) -> Areas:
        return self._areas

    @property
    def officers(self) -> Mapping[str, Officer]:
        return _CaughtUp(self) if self._lagging else self._officers

    def profile(self, officer_id: str) -> Officer | None:
        """The officer's record, which may lack their last fix (see :meth:`lag`)."""
        return self._officers.get(officer_id)

    def _officer(self, officer_id: str) -> Officer | None:
        """An officer's record, with their last fix (see :meth:`lag`)."""
        if officer_id in self._lagging:
            self._catch_up(officer_id)
        return self._officers.get(officer_id)

    def _catch_up(self, officer_id: str) -> None:
        self._lagging.discard(officer_id)
        assert self._fix_source is not None
        self._fix_source(officer_id)

    def lag(
        self, officer_ids: Iterable[str], fix_source: Callable[[str], None], latest: datetime
    ) -> None:
        """Let these officers' records lack their last fix, for now: a copy holds it.
        ``latest``: the time of the last of those fixes (event time moves on to it).

        The evaluator's fix lane applies most fixes itself, and storing every one in a new
        record is what would cost most. Instead, the first read of a lagging officer's
        record (any method here, or :attr:`officers`) calls ``fix_source(officer_id)``,
        which must store it (:meth:`take_fixes`). The fleet, the place and the
        availability counts must already be current: only the fix's own fields (position,
        time, event id) may lag.
        """
        self._fix_source = fix_source
        self._lagging.update(officer_ids)
        if latest > self.now:  # noqa: PLR1730
            self.now = latest

    def catch_up_all(self) -> None:
        """Store the last fix of every lagging officer (see :meth:`lag`)."""
        for oid in list(self._lagging):
            self._catch_up(oid)

    def caught_up(self, officer_ids: Iterable[str]) -> None:
        """These officers' last fixes are stored (the copy stored them in one go, with
        :meth:`take_fixes`): their records lag no more."""
        self._lagging.difference_update(officer_ids)

    @property
    def incidents(self) -> Mapping[str, IncidentRecord]:
        return self._incidents

    @property
    def fleet(self) -> Fleet:
        return self._fleet

    def load(self, officer_id: str) -> int:
        return self._load[officer_id]

    def holder(self, officer_id: str) -> tuple[str, int] | None:
        """(incident id, grade) of the pending dispatch holding the officer, if any."""
        return self._holders.get(officer_id)

    def held_by(self, incident_id: str) -> Collection[str]:
        return self._held_by.get(incident_id, ())

    def _hold(self, officer_id: str, incident_id: str, grade: int) -> None:
        """The pending dispatch ``incident_id`` holds the officer (from whoever held them)."""
        old = self._holders.get(officer_id)
        if old is not None:
            self._held_by[old[0]].discard(officer_id)
        self._holders[officer_id] = (incident_id, grade)
        self._held_by.setdefault(incident_id, set()).add(officer_id)
        self._fleet.hold(officer_id, grade)
        if self.held_touched is not None:
            self.held_touched.add(officer_id)

    def _release_all(self, incident_id: str) -> set[str]:
        """The incident holds no officer any more: those it held."""
        released = self._held_by.pop(incident_id, set())
        for oid in released:
            del self._holders[oid]
            self._fleet.hold(oid, None)
        if self.held_touched is not None:
            self.held_touched.update(released)
        return released

    def with_role(self, role: Role) -> Iterable[str]:
        return sorted(self._roles[role])

    def on_duty_with_role(self, role: Role) -> Iterable[str]:
        """Officers of ``role`` not off duty (in no particular order)."""
        return self._on_duty[role]

    def cover_count(self, cluster_id: str) -> int:
        counts = self._counts.get(f"cluster:{cluster_id}")
        return counts["role:response"] if counts else 0

    # -- queries -----------------------------------------------------------------------

    def recommendation(self, incident_id: str) -> Recommendation | None:
        return self._recs.get(incident_id)

    def grading(self, incident_id: str) -> Grading | None:
        return self._gradings.get(incident_id)

    def availability(self) -> dict[str, dict[str, int]]:
        return {key: dict(counts) for key, counts in sorted(self._counts.items())}

    def open_recommendations(self) -> Iterator[Recommendation]:
        yield from self._recs.values()

    # -- recovery ----------------------------------------------------------------------

    def restore_officer(self, officer: Officer) -> None:
        """Take an officer record from the durable table (no outputs); newer aspects win."""
        old = self._officer(officer.officer_id)
        change = merge_officer(old, officer)
        if change.changed:
            self._officer_changed(old, change.state, Effects())

    def merge_officer(self, officer: Officer) -> Effects:
        """Take an officer record another worker wrote (the global view), and react to it.

        Only aspects newer than ours change anything, so records this worker wrote itself
        come back as no-ops. The record is not written again (``effects.officers`` stays
        empty): its owner has already. Event time does not move (see the comment below).
        """
        effects = Effects()
        old = self._officer(officer.officer_id)
        change = merge_officer(old, officer)
        if not change.changed:
            effects.ignored = change.ignored
            return effects
        new = change.state
        # Reacted to at this World's own time: its clock is the event time of its own
        # input. Another worker may be minutes of event time ahead (working through a
        # backlog at another pace); moved on by its records, this World's timers would
        # fire before its own officers' fixes of that time were applied (each of them
        # then raised stale, and cleared by the next fix).
        ts = self.now
        self._officer_changed(old, new, effects)
        self._react_to_officer(old, new, ts, effects)
        if old is None:
            self._release_waiting(effects)
        return effects

    def restore_incident(
        self,
        record: IncidentRecord,
        rec: Recommendation | None = None,
        race: Recommendation | None = None,
    ) -> None:
        """Take an incident from the durable table (no outputs): its record and, if it
        awaits a decision, its current recommendation and the computation its race was
        last measured from (see :meth:`durable_incident`). :meth:`resume` follows.

        An incident the World holds already is kept as it is: the table was written from
        it, so it is at least as new (a worker's tables are recovered again on every
        rebalance, while it goes on applying events)."""
        iid = record.incident_id
        if iid in self._incidents:
            return
        self._unraced.add(iid)
        self._incidents[iid] = record
        self._account_load(None, record)
        grading = self._gradings[iid] = grade(record.incident, self.rules)
        if record.awaiting_deployment:
            self._schedule_deadlines(record)
        if rec is None or not record.awaiting_deployment:
            return
        self._recs[iid] = rec
        if dispatches(self.policy, grading):
            self._dispatching.add(iid)
            skills = record.incident.required_skills
            if rec.grade == 1 and skills:
                self._skilled[iid] = frozenset(skills)
            if race is not None:
                published = self._race(rec)
                if published is not None:
                    self._races[iid] = Race.of(
                        race, record.incident, published.rule, self.policy, published=rec
                    )

    def durable_incident(self, incident_id: str) -> dict[str, Any] | None:
        """What the durable table keeps of an incident: its record (:meth:`IncidentRecord
        .to_dict`) and, while it awaits a decision, its current recommendation (``rec``)
        and, when a recomputation since came to the same decision, that computation
        (``race``: what a moving officer must beat). Restored by :meth:`restore_incident`,
        a World continues exactly as it would have (None: the incident is not held)."""
        record = self._incidents.get(incident_id)
        if record is None:
            return None
        out = record.to_dict()
        rec = self._recs.get(incident_id)
        if rec is not None:
            out["rec"] = to_json_dict(rec)
            race = self._races.get(incident_id)
            if race is not None and race.published is rec and race.rec is not rec:
                out["race"] = to_json_dict(race.rec)
        return out

    def give_up_waiting(self) -> list[tuple[Deployment, str]]:
        """Refuse every deployment still waiting for its incident (the end of a log)."""
        return self._waiting.give_up()

    def waiting_ids(self) -> set[str]:
        """The event ids of the deployments waiting for their incident."""
        return self._waiting.ids()

    def forget_incidents(self, incident_ids: Iterable[str]) -> None:
        """Let go of incidents another worker now owns (their partitions were revoked).

        No outputs: the new owner recommends them. Officers stay (every worker knows
        every officer). Their deployments waiting (sdo.domain.waiting) go too: the new
        owner reads them again.
        """
        ids = list(incident_ids)
        self._unraced.update(ids)
        for iid in ids:
            record = self._incidents.pop(iid, None)
            if record is not None and record.is_open:
                self._load.subtract(record.assigned)
            self._gradings.pop(iid, None)
            self._recs.pop(iid, None)
            self._dispatching.discard(iid)
            self._skilled.pop(iid, None)
            self._races.pop(iid, None)
            self._allocations.pop(iid, None)
            self._release_all(iid)
        self._waiting.forget(set(ids))

    def arm_stale_timers(self) -> None:
        """Give every available officer with a fix whom this World :attr:`owns` and who
        has no stale timer one (a worker given their partitions: it had them from the
        other workers' table, unwatched). Before :meth:`resume`, as a restore's are."""
        if self.owns is None:
            return
        alarms = self._alarms
        after = timedelta(seconds=self.policy.stale_after_s)
        for oid in sorted(self._officers):
            o = self._officers[oid]
            if (
                o.status is Status.AVAILABLE
                and o.fix_ts is not None
                and oid not in alarms.stale_timers
                and self.owns(oid)
            ):
                alarms.watch_stale(oid, o.fix_ts + after)
                if self.touched is not None:
                    self.touched.add(oid)

    def resume(self, now: datetime) -> Effects:
        """After recovery, at event time ``now`` (the latest time the restored records
        hold): continue as the World that wrote them would have.

        The restored recommendations hold their officers again (a higher priority last,
        so it keeps an officer two name); timers and alert states catch up with ``now``
        silently (what was due was raised before: not again); a pending incident without
        a restored recommendation gets one (published)."""
        self.now = max(self.now, now)
        for iid in sorted(self._dispatching, key=self._priority, reverse=True):
            rec = self._recs.get(iid)
            grading = self._gradings.get(iid)
            if rec is None or grading is None:
                continue
            for oid in rec.recommended:
                self._hold(oid, iid, grading.grade)
        self.advance(self.now, Effects())  # (silent: raised before the restart)
        effects = Effects()
        pending = sorted(
            (
                r
                for r in self._incidents.values()
                if r.awaiting_deployment and r.incident_id not in self._recs
            ),
            key=lambda r: (self._gradings[r.incident_id].grade, r.created_ts, r.incident_id),
        )
        for record in pending:
            self._rerecommend(record.incident_id, self.now, effects, force=True)
        self._expire_waiting(effects)
        return effects

    # -- applying events -----------------------------------------------------------------

    def apply(self, event: Any) -> Effects:
        """Apply one input event. Raises :class:`Rejected` if it cannot apply at all."""
        if type(event) is OfficerLocation:
            plain = self._plain_fix(event)
            if plain is not None:
                return plain
        effects = Effects()
        ts: datetime = event.ts
        # Timers due before this event fire first, and what it raises carries its time.
        self.advance(ts, effects)
        if isinstance(event, OfficerLocation):
            self._officer_event(
                apply_location(self._officer(event.officer_id), event, self._areas),
                ts,
                effects,
            )
        elif isinstance(event, OfficerStatus):
            self._officer_event(apply_status(self._officer(event.officer_id), event), ts, effects)
        elif isinstance(event, OfficerProfile):
            self._officer_event(apply_profile(self._officer(event.officer_id), event), ts, effects)
        elif isinstance(event, Incident):
            self._incident_event(event, effects)
        elif isinstance(event, Deployment):
            self._deployment_event(event, effects)
        else:
            raise Rejected(f"{getattr(event, 'type', type(event).__name__)} is not an input event")
        self.advance(ts, effects)
        return effects

    def advance(self, now: datetime, effects: Effects | None = None) -> Effects:
        """Move event time forward to ``now`` and fire the timers it passes."""
        effects = effects if effects is not None else Effects()
        self.now = max(self.now, now)
        timers = self._alarms.timers
        while timers and timers[0][0] <= self.now:
            due, _, kind, subject, token = heapq.heappop(timers)
            if kind == "stale":
                self._fire_stale(subject, token, due, effects)
            else:
                self._fire_deadline(kind, subject, token, due, effects)
        self._expire_waiting(effects)
        return effects

    def _expire_waiting(self, effects: Effects) -> None:
        """Apply the deployments whose officers are known now; refuse those that waited
        long enough for their incident or officer."""
        self._release_waiting(effects)
        due = self._waiting.next_due()
        if due is not None and due <= self.now:
            effects.refused.extend(self._waiting.expire(self.now))

    def _release_waiting(self, effects: Effects) -> None:
        """Apply the deployments that waited for officers known now (this worker's own
        events, another's merged, or the table restored)."""
        for waited in self._waiting.arrived(self._officers):
            self._apply_waited(waited, effects)

    def _apply_waited(self, waited: Deployment, effects: Effects) -> None:
        """Apply a deployment that waited (it may wait again, for another officer it
        names); what it is refused for goes with ``effects``, and ``effects.ignored``
        stays that of the event being applied."""
        ignored = effects.ignored
        try:
            self._deployment_event(waited, effects)
        except Rejected as exc:
            effects.refused.append((waited, exc.reason))
        effects.ignored = ignored

    # -- officers ----------------------------------------------------------------------

    def _plain_fix(self, event: OfficerLocation) -> Effects | None:
        """:meth:`plain_fix` of a fix model: its effects, or None (take the general path)."""
        effects = Effects()
        new = self.plain_fix(
            event.officer_id, event.ts, event.event_id, event.lon, event.lat, effects
        )
        if new is None:
            return None
        effects.officers.append(new)
        return effects

    def plain_fix(
        self,
        officer_id: str,
        ts: datetime,
        event_id: str,
        lon: float,
        lat: float,
        effects: Effects | None = None,
    ) -> Officer | None:
        """Apply a fix that can change nothing but the officer's position and place, or
        return None.

        Nearly every event is such a fix: a newer position of an officer, inside the
        neighbourhood of the last one (or outside the force area, as the last), or inside
        another neighbourhood where no cover count can change (the same cluster, or an
        officer not counted available), with no timer due that does anything, no stale
        alert to clear, no stale timer to start, and no pending dispatch it could win or
        recommended officer drifting off. Then the general path would only store the
        record, move the officer in the fleet and, for a new neighbourhood, between
        availability counts (into ``effects``, if given: the live worker publishes them);
        this does exactly that, at a fraction of the cost, and returns the new record.
        Anything else returns None, and the fix must go to :meth:`apply`
        (``tests/domain/test_properties.py`` checks both ways agree). The evaluator calls
        this with a log line's fields, before any model is built.

        Before it returns None it may have moved on stale timers that were due: each
        belonged to an officer whose fix is newer, so firing it changes nothing but the
        timer, exactly as :meth:`apply` (through :meth:`advance`) would have done first.
        """
        old = self._officer(officer_id)
        if old is None:
            return None
        fix_ts = old.fix_ts
        if fix_ts is None or ts <= fix_ts or event_id == old.fix_event:
            return None
        alarms = self._alarms
        if alarms.timers and alarms.timers[0][0] <= ts and not self._quiet_timers(ts):
            return None
        status = old.status
        if officer_id in alarms.stale or (
            status is Status.AVAILABLE and officer_id not in alarms.stale_timers
        ):
            return None
        nbhd = old.neighbourhood
        place = None
        if nbhd is None:
            if self._areas.locate(lon, lat) is not None:
                return None  # placed again: the general path says where
        elif not self._areas.contains(nbhd, lon, lat):
            place = self._areas.locate(lon, lat)
            if place is None or (place.cluster != old.cluster and status is Status.AVAILABLE):
                return None  # out of the force area, or a cluster's cover may change
        new = (
            moved(old, lat, lon, ts, event_id)
            if place is None
            else placed(old, lat, lon, ts, event_id, place)
        )
        held = self._holders.get(officer_id)
        if self._dispatching and status in _CALLABLE and old.role in _DISPATCHED_ROLES:
            for iid in self._contenders(lon, lat, old.transport, 9 if held is None else held[1]):
                rec = self._recs[iid]
                if officer_id not in rec.recommended and self._beats(new, rec, ts, moved_only=True):
                    return None
        if held is not None and self._drifted(new, held[0]):
            return None
        if ts > self.now:  # noqa: PLR1730 (max() is slower here, on every fix)
            self.now = ts
        self._officers[officer_id] = new
        if self.touched is not None:
            self.touched.add(officer_id)
        if status is not Status.OFF_DUTY:
            self._fleet.move(officer_id, lon, lat)
        if place is not None:
            self._recount(old, new, effects)
        return new

    # -- the fix lane's copy (sdo.domain.lane) ----------------------------------------

    def fix_watch(self, officer_id: str) -> tuple[Officer | None, bool, bool, np.ndarray]:
        """What a copy of :meth:`plain_fix`'s checks needs of one officer: (record,
        watched, contends, speeds).

        Watched: a fix of theirs needs more than the checks a copy makes (no fix yet,
        stale, or available without a stale timer). Contends: status and role let them win
        a pending dispatch (plain_fix then asks :meth:`_contenders`), travelling at
        ``speeds`` (m/s by grade 0-4, 0 where they do not travel). (Their status says
        whether a stale timer of theirs may move on: :meth:`_quiet_timers`.)
        """
        o = self._officer(officer_id)
        if o is None:
            return None, True, False, self._speeds_by_grade(None)
        watched = (
            o.fix_ts is None
            or officer_id in self._alarms.stale
            or (o.status is Status.AVAILABLE and officer_id not in self._alarms.stale_timers)
        )
        contends = o.status in _CALLABLE and o.role in _DISPATCHED_ROLES
        return o, watched, contends, self._speeds_by_grade(o.transport)

    def drift_of(self, officer_id: str) -> Drift:
        """For an officer held by a pending dispatch: (lon, lat) of the incident, the ETA
        in seconds beyond which they have drifted off (:meth:`_drifted`) and their speed to
        it in m/s. None if they cannot drift (not held, or no ETA to keep)."""
        held = self._holders.get(officer_id)
        rec = None if held is None else self._recs.get(held[0])
        race = None if rec is None else self._race(rec)
        then = None if race is None else race.etas.get(officer_id)
        o = self._officer(officer_id)
        if race is None or then is None or o is None:
            return None
        speed = self.policy.speed(o.transport, race.rule.grade)
        return (
            None if speed is None else (race.lon, race.lat, then + self.policy.better_by_s, speed)
        )

    def contest_token(self) -> object:
        """The contest of pending dispatches, brought up to date (an opaque token: a new
        one means :meth:`contest_boxes` may have changed)."""
        return self._current_contest().version

    def contest_boxes(
        self,
    ) -> tuple[
        np.ndarray,
        Sequence[tuple[object, str, str | None, DispatchRule] | None],
        set[int],
        Mapping[str, int],
        bool,
    ]:
        """The pending dispatches a moving officer might win, as :meth:`_contenders` tests
        them: a table with a row per slot (south, north, west, east, incident lon, lat,
        best ETA, grade, and more columns; a free slot's row holds no point), longer than
        the slots; per slot, None if free, or its race (an opaque token), incident id,
        first recommended officer (:meth:`_first_eta`) and rule (:meth:`_beats`); the
        slots written since (the caller clears the set when it has copied them); incident
        id -> slot; and whether some must be asked whatever the position. A dispatch keeps
        its slot while it has a box. (The World's own: to be read, not changed.)"""
        contest = self._current_contest()
        return (
            contest.table,
            contest.entries,
            contest.changed,
            contest.slot_of,
            bool(contest.always),
        )

    def timers_head(self, k: int) -> list[Timer]:
        """The ``k`` timers due first, in the order they fire: (due, sequence, kind,
        subject, token) (see :meth:`sdo.domain.alarms.Alarms.head`)."""
        return self._alarms.head(k)

    @property
    def timers_version(self) -> tuple[int, int]:
        """Changes whenever a timer is scheduled or fired."""
        return self._alarms.version

    def fire_quiet(
        self, timer: tuple[datetime, int, str, str, str], stale_at: datetime | None
    ) -> None:
        """Fire the first timer, a stale timer that a copy of :meth:`_quiet_timers` found
        quiet (``timer`` says which, to check), moving it on to ``stale_at`` (None: its
        officer is not available, or has no fix), as _quiet_timers would."""
        fired = heapq.heappop(self._alarms.timers)
        assert fired == timer, (fired, timer)
        self._move_on(timer[3], timer[4], stale_at)

    def _move_on(self, oid: str, token: str, stale_at: datetime | None) -> None:
        """A popped stale timer that raised nothing: due again at ``stale_at`` (None: its
        officer needs none, not being available or having no fix)."""
        alarms = self._alarms
        if stale_at is not None and oid in alarms.stale_timers:
            # still with a stale timer: nothing a copy of plain_fix's checks holds changed
            alarms.schedule(stale_at, "stale", oid, token)
            return
        alarms.stale_timers.discard(oid)
        if self.touched is not None:
            self.touched.add(oid)
        if stale_at is not None:
            alarms.watch_stale(oid, stale_at, token)

    def take_fixes(
        self,
        officer_ids: list[str],
        lons: list[float],
        lats: list[float],
        times: list[datetime],
        event_ids: list[str],
        places: list[Placement | None],
        counts: dict[str, dict[str, int]] | None = None,
    ) -> None:
        """Store the last of a run of plain fixes of each officer (id, lon, lat, time, event
        id, and the new place of those it moved to another neighbourhood, else None), that
        a copy of :meth:`plain_fix` accepted and already moved in the fleet. ``counts``
        (the live worker, which writes them to its table) gets the availability counts
        those moves changed, as an event's effects would."""
        officers = self._officers
        for oid, lon, lat, ts, event_id, place in zip(
            officer_ids, lons, lats, times, event_ids, places, strict=True
        ):
            old = officers[oid]
            if place is None:
                officers[oid] = moved(old, lat, lon, ts, event_id)
            else:
                new = officers[oid] = placed(old, lat, lon, ts, event_id, place)
                self._recount(old, new, None)
                if counts is not None:
                    for key in {*availability_keys(old), *availability_keys(new)}:
                        counts[key] = dict(self._counts.get(key, ()))
        if times:
            latest = max(times)
            if latest > self.now:  # noqa: PLR1730
                self.now = latest

    def _quiet_timers(self, now: datetime) -> bool:
        """Fire the timers due by ``now`` if every one of them is a stale timer that only
        moves on (its officer has a newer fix: see _fire_stale); True if so. Stops at the
        first that would do anything else, and returns False, leaving it due."""
        timers = self._alarms.timers
        stale_after = timedelta(seconds=self.policy.stale_after_s)
        while timers and timers[0][0] <= now:
            due, _, kind, oid, token = timers[0]
            if kind != "stale":
                return False
            o = self._officer(oid)
            if o is not None and o.fix_ts is not None and o.status is Status.AVAILABLE:
                stale_at = o.fix_ts + stale_after
                if stale_at <= due:
                    return False  # the officer goes stale: an alert
            else:
                stale_at = None
            heapq.heappop(timers)
            self._move_on(oid, token, stale_at)
        return True

    def _officer_event(self, change: Change[Officer], ts: datetime, effects: Effects) -> None:
        if not change.changed:
            effects.ignored = change.ignored
            return
        old = self._officer(change.state.officer_id)
        self._officer_changed(old, change.state, effects)
        effects.officers.append(change.state)
        self._react_to_officer(old, change.state, ts, effects)

    def _officer_changed(self, old: Officer | None, new: Officer, effects: Effects) -> None:
        oid = new.officer_id
        self._officers[oid] = new
        if self.touched is not None:
            self.touched.add(oid)
        if old is not None and old.role is not None and old.role is not new.role:
            self._roles[old.role].discard(oid)
        if new.role is not None:
            self._roles[new.role].add(oid)
        if old is not None and old.role is not None and old.status is not Status.OFF_DUTY:
            self._on_duty[old.role].discard(oid)
        if new.role is not None and new.status is not Status.OFF_DUTY:
            self._on_duty[new.role].add(oid)
        if new.has_fix and new.status is not Status.OFF_DUTY:
            assert new.lon is not None and new.lat is not None
            self._fleet.move(oid, new.lon, new.lat)
            self._fleet.tag(oid, fleet_tags(new, self.policy), fleet_until(new))
            covers = new.role is Role.RESPONSE and new.status is Status.AVAILABLE and new.cluster
            self._fleet.set_group(
                oid,
                cover_group(new.cluster) if covers and new.cluster else None,
                self.policy.speed(new.transport, 1) or 0.0,
            )
        else:
            self._fleet.remove(oid)
        # One pending stale timer per officer, moved on lazily when it fires (see
        # _fire_stale): a timer per fix would grow the heap by every AVL fix.
        alarms = self._alarms
        if (
            new.status is Status.AVAILABLE
            and new.fix_ts is not None
            and oid not in alarms.stale_timers
            and (
                old is None or old.fix_event != new.fix_event or old.status is not Status.AVAILABLE
            )
        ):
            alarms.watch_stale(oid, new.fix_ts + timedelta(seconds=self.policy.stale_after_s))
        self._recount(old, new, effects)

    def _recount(self, old: Officer | None, new: Officer, effects: Effects | None) -> None:
        """Move an officer between availability buckets (see ``availability_keys``) and
        check the cover of the clusters that changed: ``effects`` gets the changed counts
        and the cover alerts. Without ``effects`` (a fix's move to another neighbourhood of
        the same cluster, where no cover count changes) the counts only move."""
        oid = new.officer_id
        old_keys = availability_keys(old) if old is not None else ()
        new_keys = availability_keys(new)
        if old_keys == new_keys and (
            old is None or (old.role, old.skills) == (new.role, new.skills)
        ):
            return
        if old_keys:
            assert old is not None
            names = counted_as(old)
            for key in old_keys:
                self._buckets[key].discard(oid)
                self._count(key, names, -1, effects)
        if new_keys:
            names = counted_as(new)
            for key in new_keys:
                self._buckets.setdefault(key, set()).add(oid)
                self._count(key, names, +1, effects)
        if effects is None:
            return
        for key in {*old_keys, *new_keys}:
            if key.startswith("cluster:"):
                self._check_cover(key.removeprefix("cluster:"), effects)

    def _count(self, key: str, names: tuple[str, ...], sign: int, effects: Effects | None) -> None:
        """Count an officer (``names``: see :func:`counted_as`) in or out of a bucket."""
        counts = count_officer(self._counts, key, names, sign)
        if effects is not None:
            effects.availability[key] = dict(counts)

    def _check_cover(self, cluster_id: str, effects: Effects) -> None:
        cluster = self._areas.clusters.get(cluster_id)
        if cluster is None:
            return
        out = self._alarms.cover(
            cluster_id, self.cover_count(cluster_id), cluster.min_cover, self.now
        )
        if out is not None:
            effects.outputs.append(out)

    def _react_to_officer(
        self, old: Officer | None, new: Officer, ts: datetime, effects: Effects
    ) -> None:
        """Re-recommend the incidents whose facts this officer change touches."""
        oid = new.officer_id
        if oid in self._alarms.stale and (
            old is None or old.fix_event != new.fix_event or new.status is not Status.AVAILABLE
        ):
            cleared = self._alarms.stale_clear(oid, new.callsign, new.cluster, self.now)
            if cleared is not None:
                effects.outputs.append(cleared)
        if not self._recs:
            return
        todo: set[str] = set()
        # A first fix is news like a new status: until then the officer could not be
        # placed, so no short dispatch has considered them yet.
        moved_only = old is not None and (
            old.has_fix,
            old.status,
            old.role,
            old.skills,
            old.shift_end,
            old.transport,
        ) == (
            new.has_fix,
            new.status,
            new.role,
            new.skills,
            new.shift_end,
            new.transport,
        )
        held = self._holders.get(oid)
        if held is not None and (not moved_only or self._drifted(new, held[0])):
            todo.add(held[0])
        # Allocations (neighbourhood, investigator, scheduled) take any on-duty officer of
        # their pool: coming on or going off duty, a new profile or a first fix can change
        # them. A job in hand (en_route, at_scene ...) or a drifting ETA does not.
        if _allocation_relevant(old, new):
            for iid, rec in self._recs.items():
                if iid not in self._dispatching and self._could_take(new, rec, ts):
                    todo.add(iid)
        # Dispatches this officer could now win: offered them, in priority order, until
        # one takes them (then the rest would find them held; see _rerecommend's offer).
        offered: set[str] = set()
        if new.has_fix and new.status in _CALLABLE and new.role in _DISPATCHED_ROLES:
            offered = self._contending(new, ts, moved_only=moved_only) - todo
        if self._skilled and not moved_only and new.has_fix and new.status in _CALLABLE:
            for iid, skills in self._skilled.items():
                if skills.issubset(new.skills) and oid not in self._recs[iid].recommended:
                    todo.add(iid)
        self._offer_in_turn(sorted(todo | offered, key=self._priority), (oid,), ts, effects, todo)

    def _could_take(self, officer: Officer, rec: Recommendation, now: datetime) -> bool:
        """Could this officer's change alter who an allocation recommends?

        Yes if they are recommended now (they may have left), or they are its named
        officer (a shortfall names them), or they may now be ranked and the allocation is
        short, or they would now rank before one of the recommended officers. Otherwise a
        recomputation would publish nothing new, and with many pending allocations and a
        shift change it is the costliest thing the World does.

        A short allocation recommends everyone it ranks, so an officer not recommended was
        not ranked: if they still may not be, only its shortfall's "holding <skills>" can
        change (an on-duty officer of the pool without the skills). On the simulated day
        log, 5,209 of these recomputations (of 12,500 in all) followed a record change of
        an officer who was off duty after it, and 31 of them changed anything.
        """
        oid = officer.officer_id
        if oid in rec.recommended:
            return True
        if officer.role not in allocation_roles(rec.response):
            return False
        record = self._incidents.get(rec.incident_id)
        if record is None:
            return False
        allocation = self._allocation(record)
        rule = allocation.rule
        if rule.named == oid:
            return True
        mine = rule.rank(officer, self, self.policy, now)
        if len(rec.recommended) < record.incident.officers_required:
            if mine is not None:
                return True
            return (
                bool(rule.skills)
                and not rec.recommended
                and not rule.skills.issubset(officer.skills)
            )
        if mine is None:
            return False
        for other in rec.recommended:
            theirs = self._rank(allocation, other, now)
            if theirs is None or mine < theirs:
                return True
        return False

    def _allocation(self, record: IncidentRecord) -> Allocation:
        """The allocation rule of a pending incident, kept while incident and grading stay."""
        iid = record.incident_id
        grading = self._gradings[iid]
        kept = self._allocations.get(iid)
        if kept is not None and kept.incident is record.incident and kept.grading is grading:
            return kept
        incident = record.incident
        place = self._areas.locate(incident.lon, incident.lat)
        kept = Allocation(incident, grading, AllocationRule.of(incident, grading, self, place))
        self._allocations[iid] = kept
        return kept

    def _rank(
        self, allocation: Allocation, officer_id: str, now: datetime
    ) -> tuple[float, str] | None:
        """``rule.rank`` of an officer (a recommended one: asked again at every change of
        another officer), measured again only when their record or their load changed.

        A fix replaces the record (and moves the officer in the fleet): the record's
        identity stands for the position too.
        """
        o = self._officer(officer_id)
        if o is None:
            return None
        load = self._load[officer_id]
        kept = allocation.ranks.get(officer_id)
        if kept is not None and kept[0] is o and kept[1] == load:
            rank = kept[2]
        else:
            rank = allocation.rule.rank_on_shift(o, self, self.policy)
            allocation.ranks[officer_id] = (o, load, rank)
        return rank if o.shift_end is None or o.shift_end > now else None

    def _beats(
        self, officer: Officer, rec: Recommendation, now: datetime, *, moved_only: bool
    ) -> bool:
        """Could this officer now be clearly better than the incident's first candidate?

        An incident short of officers takes any newly available one; an officer who was
        available already and only moved was already considered for it.
        """
        if self._held_against(officer.officer_id, rec.incident_id, rec.grade):
            return False  # released, they are offered again (see _wanting)
        race = self._race(rec)
        if race is None or officer.lat is None or officer.lon is None:
            return False
        if race.short:
            return not moved_only and race.rule.admits(officer, self.policy, now)
        if race.best is not None and not (
            race.south <= officer.lat <= race.north and race.west <= officer.lon <= race.east
        ):
            return False  # too far for even the fastest transport to win (see Race.of)
        if not race.rule.admits(officer, self.policy, now):
            return False  # the recommender would not take them: nothing to recompute
        eta = self._eta_to(officer, race)
        if eta is None:
            return False
        if race.best is None:
            return True
        # against where the first recommended officer is now, not where they were: both
        # may have moved since (each by less than better_by_s, or it would have shown)
        return eta + self.policy.better_by_s < self._first_eta(race)

    def _first_eta(self, race: Race) -> float:
        """The first recommended officer's ETA from their current position (else as computed)."""
        assert race.best is not None
        first = race.rec.recommended[0] if race.rec.recommended else None
        o = None if first is None else self._officer(first)
        eta = None if o is None else self._eta_to(o, race)
        return race.best if eta is None else eta

    def _eta_to(self, officer: Officer, race: Race) -> float | None:
        """The officer's ETA to the race's incident from their current position (None if
        they have none, or do not travel)."""
        if officer.lon is None or officer.lat is None:
            return None
        return self.policy.eta_s(
            haversine_m(officer.lon, officer.lat, race.lon, race.lat),
            officer.transport,
            race.rule.grade,
        )

    def _held_against(self, officer_id: str, incident_id: str, grade: int) -> bool:
        """Is the officer held by another pending dispatch of the same or a higher grade?
        Then the recommender passes them over for this one (see recommend's eligible)."""
        held = self._holders.get(officer_id)
        return held is not None and held[0] != incident_id and held[1] <= grade

    def _short_takers(self, officer: Officer, contest: Contest, now: datetime) -> set[str]:
        """Dispatches short of officers that would take this officer: their rule admits
        them, they are not held against it, and it does not recommend them already."""
        oid = officer.officer_id
        out: set[str] = set()
        for rule, iids in contest.short.items():
            if rule.admits(officer, self.policy, now):
                out.update(
                    iid
                    for iid in iids
                    if not self._held_against(oid, iid, rule.grade)
                    and oid not in self._recs[iid].recommended
                )
        return out

    def _contenders(
        self, lon: float, lat: float, transport: Transport | None, held_at: int
    ) -> list[str]:
        """Pending dispatches an officer (travelling by ``transport``, held by a pending
        dispatch of grade ``held_at``, or 9) who only moved to (lon, lat) might now win.

        A superset: every incident for which ``_beats(..., moved_only=True)`` can be true
        is in it (short incidents never are: an officer who only moved was considered;
        nor those of grade ``held_at`` or lower priority: the holder keeps them). The boxes,
        then the distances, are tested in one compiled scan (``scans.box_reach``).
        """
        contest = self._current_contest()
        if not (contest.slot_of or contest.always):
            return []
        return contest.containing(lon, lat, self._speeds_by_grade(transport), held_at)

    def _speeds_by_grade(self, transport: Transport | None) -> np.ndarray:
        """m/s of a transport at grades 0 (unused) to 4; 0 where it does not travel."""
        speeds = self._speed_rows.get(transport)
        if speeds is None:
            speeds = np.array(
                [0.0] + [self.policy.speed(transport, g) or 0.0 for g in (1, 2, 3, 4)]
            )
            self._speed_rows[transport] = speeds
        return speeds

    def _current_contest(self) -> Contest:
        """The contest of the current races of the pending dispatches.

        Only the races of incidents touched since (``_unraced``) are looked up again: a
        race changes with its recommendation or its incident, never by itself.
        """
        contest = self._contest
        if self._unraced:
            for iid in self._unraced:
                rec = self._recs.get(iid) if iid in self._dispatching else None
                contest.put(iid, None if rec is None else self._race(rec))
            self._unraced.clear()
        return contest

    def _contending(self, officer: Officer, now: datetime, *, moved_only: bool) -> set[str]:
        """Pending dispatches for which ``_beats(officer, ...)`` holds (without testing each:
        short ones by rule, the others through their boxes)."""
        assert officer.lon is not None and officer.lat is not None
        oid = officer.officer_id
        contest = self._current_contest()
        out = set() if moved_only else self._short_takers(officer, contest, now)
        held = self._holders.get(oid)
        speeds = self._speeds_by_grade(officer.transport)
        held_at = 9 if held is None else held[1]
        for iid in contest.containing(officer.lon, officer.lat, speeds, held_at):
            rec = self._recs[iid]
            if oid not in rec.recommended and self._beats(officer, rec, now, moved_only=moved_only):
                out.add(iid)
        return out

    def _race(self, rec: Recommendation) -> Race | None:
        """What an officer must beat to change a dispatch recommendation (kept per rec)."""
        record = self._incidents.get(rec.incident_id)
        if record is None:
            return None
        race = self._races.get(rec.incident_id)
        if race is not None and race.published is rec and race.incident is record.incident:
            return race
        # The rule follows from the incident and its grading, and a regrade always issues a
        # new recommendation: keyed on (rec, incident), the race holds the current rule.
        grading = self._gradings[rec.incident_id]
        if not dispatches(self.policy, grading):
            # regraded to a response nobody is dispatched to: no race (the contest may be
            # built while its new recommendation is computed, with the old one in _recs)
            return None
        rule = DispatchRule.of(self.policy, grading, record.incident)
        if rule.grade == 1 and rule.skills:
            # any eligible officer may change it: the nearest are sent without the skills
            # when nobody eligible holds them (CONTRACT §3, recommend._emergency_fallback)
            rule = rule.loosened()
        race = Race.of(rec, record.incident, rule, self.policy, published=rec)
        self._races[rec.incident_id] = race
        return race

    def _recomputed(self, published: Recommendation, fresh: Recommendation) -> None:
        """A dispatch recomputed to the same decision: it is not published again, but what a
        moving officer must beat (and how far its own officers may drift) is the fresh
        computation's, or an officer driving away would look as near as they were."""
        record = self._incidents.get(fresh.incident_id)
        race = self._race(published)
        if record is None or race is None:
            return
        self._unraced.add(fresh.incident_id)  # the contest's boxes follow the races
        self._races[fresh.incident_id] = Race.of(
            fresh, record.incident, race.rule, self.policy, published=published
        )
        if self.dirty_incidents is not None:
            self.dirty_incidents.add(fresh.incident_id)

    def _drifted(self, officer: Officer, incident_id: str) -> bool:
        """Has this officer, recommended for a pending dispatch, moved so far that their ETA
        is now ``better_by_s`` worse than when it was computed? (Then another officer may
        be clearly better, though nobody moved closer.)"""
        rec = self._recs.get(incident_id)
        race = None if rec is None else self._race(rec)
        then = None if race is None else race.etas.get(officer.officer_id)
        if race is None or then is None:
            return False
        now = self._eta_to(officer, race)
        return now is not None and now > then + self.policy.better_by_s

    # -- incidents ---------------------------------------------------------------------

    def _incident_event(self, event: Incident, effects: Effects) -> None:
        if self._areas.locate(event.lon, event.lat) is None:
            raise Rejected(
                f"incident location (lat {event.lat}, lon {event.lon}) is outside the force area"
            )
        old = self._incidents.get(event.incident_id)
        record = self._store(old, apply_incident(old, event), effects)
        if record is None:
            return
        previous = self._gradings.get(record.incident_id)
        self._gradings[record.incident_id] = grade(record.incident, self.rules)
        if record.awaiting_deployment:
            if previous is None or previous.grade != self._gradings[record.incident_id].grade:
                self._schedule_deadlines(record)
            self._rerecommend(record.incident_id, event.ts, effects, force=old is None)
        else:
            self._drop(record.incident_id, event.ts, effects)
        if old is None:
            for waited in self._waiting.release(record.incident_id):
                self._apply_waited(waited, effects)

    def _deployment_event(self, event: Deployment, effects: Effects) -> None:
        old = self._incidents.get(event.incident_id)
        if old is None:
            # late but valid: it waits for its incident (bounded: sdo.domain.waiting)
            why = self._waiting.hold(event)
            if why is not None:
                raise Rejected(why)
            effects.ignored = "waiting_for_incident"
            return
        try:
            change = apply_deployment(old, event, self._officers)
        except UnknownOfficers as exc:
            # or for an officer it names (another worker's, not written to the table yet)
            why = self._waiting.hold(event, officer=exc.officer_ids[0])
            if why is not None:
                raise Rejected(why) from None
            effects.ignored = "waiting_for_officer"
            return
        record = self._store(old, change, effects)
        if record is None:
            return
        self._drop(record.incident_id, event.ts, effects)
        for status in deployment_statuses(event, old, self.officers):
            self._officer_event(
                apply_status(self._officer(status.officer_id), status), event.ts, effects
            )

    def _store(
        self,
        old: IncidentRecord | None,
        change: Change[IncidentRecord | None],
        effects: Effects,
    ) -> IncidentRecord | None:
        """Keep a changed incident record (workload and outputs too); None if unchanged."""
        if not change.changed or change.state is None:
            effects.ignored = change.ignored
            return None
        record = change.state
        self._unraced.add(record.incident_id)
        self._incidents[record.incident_id] = record
        if self.dirty_incidents is not None:
            self.dirty_incidents.add(record.incident_id)
        self._account_load(old, record)
        effects.incidents.append(record)
        return record

    def _account_load(self, old: IncidentRecord | None, new: IncidentRecord) -> None:
        if old is not None and old.is_open:
            self._load.subtract(old.assigned)
        if new.is_open:
            self._load.update(new.assigned)

    def _priority(self, incident_id: str) -> tuple[int, datetime, str]:
        g = self._gradings.get(incident_id)
        record = self._incidents.get(incident_id)
        return (g.grade if g else 9, record.created_ts if record else _EPOCH, incident_id)

    def _drop(self, incident_id: str, ts: datetime, effects: Effects) -> None:
        """The incident no longer awaits a decision: release the officers it held, and
        clear its deadline alerts."""
        record = self._incidents.get(incident_id)
        why = "closed" if record is not None and not record.is_open else "decided"
        effects.outputs.extend(self._alarms.resolved(incident_id, why, self.now))
        self._unraced.add(incident_id)
        if self.dirty_incidents is not None:
            self.dirty_incidents.add(incident_id)
        rec = self._recs.pop(incident_id, None)
        self._dispatching.discard(incident_id)
        self._skilled.pop(incident_id, None)
        self._races.pop(incident_id, None)
        self._allocations.pop(incident_id, None)
        if rec is None:
            return
        released = self._release_all(incident_id)
        if released:
            free = tuple(sorted(released))
            self._offer_in_turn(self._wanting(free, exclude=incident_id, now=ts), free, ts, effects)

    def _wanting(self, released: Iterable[str], *, exclude: str, now: datetime) -> list[str]:
        """Pending dispatches that officers just released by another incident could now
        serve (short of officers, or an ETA within a recommended officer's score; see
        :meth:`_could_serve`), by priority.

        Held, those officers were nobody else's candidates (see :meth:`_beats`); free
        again, they are news like an officer coming available.
        """
        officers = [o for oid in released if (o := self._officer(oid)) is not None]
        if not officers:
            return []
        contest = self._current_contest()
        wanting: set[str] = set()
        reached: set[str] = set()
        for o in officers:
            wanting |= self._short_takers(o, contest, now)
            if o.lon is not None and o.lat is not None:
                speeds = self._speeds_by_grade(o.transport)
                reached.update(contest.within_reach(o.lon, o.lat, speeds))
        for iid in (*contest.always, *reached):  # (a set: sorted by priority below)
            rec = self._recs[iid]
            if any(
                o.officer_id not in rec.recommended and self._could_serve(o, rec, now)
                for o in officers
            ):
                wanting.add(iid)
        wanting.discard(exclude)
        return sorted(wanting, key=self._priority)

    def _could_serve(self, officer: Officer, rec: Recommendation, now: datetime) -> bool:
        """Could this (free, unmoved) officer enter the dispatch's recommended set?

        Yes if the recommender admits them and the dispatch is short, or their ETA is no
        more than the score of a recommended officer (a score is the ETA plus penalties,
        never less: so otherwise they would rank after all of them).
        """
        race = self._race(rec)
        if race is None or officer.lat is None or officer.lon is None:
            return False
        if self._held_against(officer.officer_id, rec.incident_id, rec.grade):
            return False
        if not race.rule.admits(officer, self.policy, now):
            return False
        if race.short or race.worst is None:
            return True
        eta = self._eta_to(officer, race)
        return eta is not None and eta <= race.worst + SCORE_ROUNDING

    def _held_off(self, incident_id: str, grade: int, offer: tuple[str, ...]) -> bool:
        """Is every officer of ``offer`` held against this dispatch of ``grade``? Then the
        recommender would pass them all over: offering them recomputes nothing."""
        for oid in offer:  # noqa: SIM110 (mypyc: a loop, not a generator object per call)
            if not self._held_against(oid, incident_id, grade):
                return False
        return True

    def _holders_of(self, offer: tuple[str, ...]) -> set[str]:
        """The incidents holding the officers of ``offer``."""
        return {held[0] for oid in offer if (held := self._holders.get(oid)) is not None}

    def _offer_in_turn(
        self,
        iids: list[str],
        offer: tuple[str, ...],
        ts: datetime,
        effects: Effects,
        todo: Collection[str] = (),
    ) -> None:
        """Offer the officers of ``offer`` to each of ``iids`` (by priority) in turn; those
        in ``todo`` are recomputed whatever the offer (see :meth:`_rerecommend`).

        Once every officer of the offer is held against one of them (:meth:`_held_off`),
        every later one (a grade no higher) would find them held too, except an incident
        now holding one of those officers: the others are passed over without a call
        (:meth:`_pass_over`), up to the next incident of ``todo``, whose recomputation may
        change the holds. (Passing over changes nothing: the holds stay as they were until
        a recomputation.) Each is its own :meth:`_rerecommend`, chain and all, before the
        next.
        """
        turns: deque[tuple[str, tuple[str, ...] | None]] = deque(
            (iid, None if iid in todo else offer) for iid in iids
        )
        while turns:
            iid, offered = turns.popleft()
            if offered is None:
                self._rerecommend(iid, ts, effects)
                continue
            grading = self._gradings.get(iid)
            if grading is not None and self._held_off(iid, grading.grade, offered):
                self._pass_over(turns, offered)
                continue
            self._rerecommend(iid, ts, effects, offer=offered)

    def _pass_over(
        self, work: deque[tuple[str, tuple[str, ...] | None]], offer: tuple[str, ...]
    ) -> None:
        """After an incident offered ``offer`` was held off: the incidents next in ``work``
        offered the same (queued together, by priority, each with this very tuple) are
        dropped, up to one now holding an officer of the offer (or one not offered it)."""
        holders = self._holders_of(offer)
        while work and work[0][1] is offer and work[0][0] not in holders:
            work.popleft()

    def _rerecommend(
        self,
        incident_id: str,
        ts: datetime,
        effects: Effects,
        *,
        force: bool = False,
        offer: tuple[str, ...] | None = None,
    ) -> None:
        """Recompute one incident's recommendation; publish it if it materially changed.

        ``offer``: the recomputation is only to offer the incident these officers (newly
        free, or nearer); skipped if all of them are already held at the same or a higher
        grade by the time its turn comes, since the recommender would pass them over.
        Incidents this one displaces or releases officers to follow, the same way.

        A recommendation is decided at the World's clock (``now``: the latest event time
        applied, never an older triggering event's), and numbered per incident (``seq``,
        kept in the incident's record), so consumers order them without comparing times.
        """
        now = self.now
        work: deque[tuple[str, tuple[str, ...] | None]] = deque([(incident_id, offer)])
        seen: set[str] = set()
        while work:
            iid, offered = work.popleft()
            if iid in seen:
                continue
            record = self._incidents.get(iid)
            if record is None or not record.awaiting_deployment:
                continue
            grading = self._gradings[iid]
            if offered is not None and self._held_off(iid, grading.grade, offered):
                self._pass_over(work, offered)
                continue
            seen.add(iid)
            rec = self._recommend(record, grading, self, self.policy, now)
            old = self._recs.get(iid)
            released = self._release_all(iid)
            if dispatches(self.policy, grading):
                for oid in rec.recommended:
                    released.discard(oid)
                    displaced = self._holders.get(oid)
                    if displaced is not None and displaced[0] != iid:
                        work.append((displaced[0], None))
                    self._hold(oid, iid, grading.grade)
            if released:
                # officers this incident no longer needs may be what others were denied
                free = tuple(sorted(released))
                work.extend((other, free) for other in self._wanting(free, exclude=iid, now=ts))
            if old is not None and not (force and iid == incident_id) and _same(old, rec):
                if iid in self._dispatching:
                    self._recomputed(old, rec)
                continue
            self._recs[iid] = rec
            numbered = self._incidents[iid] = replace(record, rec_seq=rec.seq)
            effects.incidents.append(numbered)
            if self.dirty_incidents is not None:
                self.dirty_incidents.add(iid)
            self._unraced.add(iid)  # (the contest, read by _wanting, follows the recs)
            if dispatches(self.policy, grading):
                self._dispatching.add(iid)
            else:
                self._dispatching.discard(iid)
            skills = record.incident.required_skills
            if rec.grade == 1 and skills and iid in self._dispatching:
                self._skilled[iid] = frozenset(skills)
            else:
                self._skilled.pop(iid, None)
            effects.outputs.append(rec)

    # -- timers and alerts (sdo.domain.alarms) -----------------------------------------

    def _schedule_deadlines(self, record: IncidentRecord) -> None:
        iid = record.incident_id
        self._alarms.schedule_deadlines(iid, record.created_ts, self._gradings[iid])

    def _fire_deadline(
        self, kind: str, iid: str, token: str, due: datetime, effects: Effects
    ) -> None:
        record = self._incidents.get(iid)
        g = self._gradings.get(iid)
        if record is None or g is None or not record.awaiting_deployment or str(g.grade) != token:
            return
        out = self._alarms.deadline(kind, iid, g, due, record.created_ts, self.now)
        if out is not None:
            effects.outputs.append(out)

    def _fire_stale(self, oid: str, token: str, due: datetime, effects: Effects) -> None:
        alarms = self._alarms
        alarms.stale_timers.discard(oid)
        if self.touched is not None:
            self.touched.add(oid)
        o = self._officer(oid)
        if o is None or o.fix_ts is None or o.status is not Status.AVAILABLE:
            return
        if self.owns is not None and not self.owns(oid):
            return  # (another worker's now: it watches them; arm_stale_timers)
        stale_at = o.fix_ts + timedelta(seconds=self.policy.stale_after_s)
        if stale_at > due:  # a newer fix came in: wait for it to age
            alarms.watch_stale(oid, stale_at, token)  # advance() pops it if already due
            return
        minutes = self.policy.stale_after_s / 60
        out = alarms.stale_raise(oid, o.callsign, o.cluster, minutes, self.now)
        if out is not None:
            effects.outputs.append(out)


class _CaughtUp(Mapping[str, Officer]):
    """:attr:`World.officers` while some officers lag (see :meth:`World.lag`): each record
    is read through ``World._officer``."""

    __slots__ = ("_world",)

    def __init__(self, world: World) -> None:
        self._world = world

    def __getitem__(self, officer_id: str) -> Officer:
        o = self._world._officer(officer_id)
        if o is None:
            raise KeyError(officer_id)
        return o

    def get(self, officer_id: str, default: Any = None) -> Any:
        o = self._world._officer(officer_id)
        return default if o is None else o

    def __contains__(self, officer_id: object) -> bool:
        return officer_id in self._world._officers

    def __iter__(self) -> Iterator[str]:
        return iter(self._world._officers)

    def __len__(self) -> int:
        return len(self._world._officers)


def _allocation_relevant(old: Officer | None, new: Officer) -> bool:
    """Whether an officer change can change who an allocation goes to."""
    if old is None:
        return True
    duty = (old.status is Status.OFF_DUTY) != (new.status is Status.OFF_DUTY)
    # a first fix turns "ETA unknown" into an ETA, which ranks (later fixes only drift)
    located = old.has_fix != new.has_fix
    profile = (old.role, old.skills, old.neighbourhoods, old.home_npu, old.shift_end) != (
        new.role,
        new.skills,
        new.neighbourhoods,
        new.home_npu,
        new.shift_end,
    )
    return duty or located or profile


def _same(a: Recommendation, b: Recommendation) -> bool:
    """Nothing the SDO acts on differs (ETAs drift with every fix; those alone are not news)."""
    return (a.response, a.grade, a.recommended, a.shortfalls, a.service) == (
        b.response,
        b.grade,
        b.recommended,
        b.shortfalls,
        b.service,
    )
