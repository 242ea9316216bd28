"""Recommended deployments (CONTRACT §3): who should go, ranked, with reasons (pure).

Theory of operation
-------------------
:func:`recommend` is a function of an incident, its grading, a read-only :class:`View`
of the force, the :class:`Policy` parameters and the event time ``now``. It never reads
a clock, so the live worker and ``sdo evaluate`` decide identically.

*Dispatch* responses (emergency, priority, and every incident under the ``closest``
policy) pre-select the nearest eligible officers from the fleet
(:class:`sdo.domain.fleet.Fleet`: a compiled scan filtered by role, status and
"travels" tags, nearest first; each officer is then checked in order until enough are
found) — never a scored ETA for everyone — then score each:

``score = ETA + stale-fix penalty + refreshment penalty + shift-end penalty + cover penalty``

ETA is great-circle distance × detour factor ÷ speed (by transport and grade). The cover
penalty is an expected-coverage loss (MEXCLP style): for the officer's response cluster,
each neighbourhood centroid reached within ``cover_time_s`` by *k* available response
officers is covered with probability ``1 - p**k`` (``p`` = chance an officer is busy);
the loss if this officer goes is ``Σ p**(k-1)·(1-p)`` over the centroids they reach,
as a share of the cluster. The loss is weighted by grade — zero for grade 1 (the fastest
suitable officer goes), growing for lower grades — and taking a cluster below its minimum
cover costs a further fixed penalty for grade 2 and below.

*Allocation* responses (neighbourhood, investigator, scheduled) rank a small role pool by
tier (named officer → neighbourhood team → NPU) and open workload. *Signpost* names the
partner service and no officer.

One officer is not recommended to two pending incidents unless the higher grade needs
them: the :class:`View` says which pending incident holds an officer, and an officer held
by an incident of the same or a higher grade is passed over (said in the reasons, which
count the held officers nearer than the last candidate).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, NamedTuple, Protocol

import numpy as np

from sdo.domain.fleet import Fleet, Hit, Nearby
from sdo.domain.geo import Areas, Placement, haversine_m
from sdo.domain.grading import Grading
from sdo.domain.state import IncidentRecord, Officer
from sdo.errors import ConfigError
from sdo.events import (
    Candidate,
    Incident,
    PolicyRef,
    Recommendation,
    Response,
    Role,
    Status,
    Transport,
    trusted,
)

__all__ = [
    "POLICIES",
    "AllocationRule",
    "DispatchRule",
    "Policy",
    "View",
    "allocation_roles",
    "dispatches",
    "recommend",
]

POLICIES: Final = ("thrive", "closest")

_DISPATCH_ROLES: Final[Mapping[Response, frozenset[Role]]] = MappingProxyType(
    {
        Response.EMERGENCY: frozenset({Role.RESPONSE}),
        Response.PRIORITY: frozenset({Role.RESPONSE, Role.FORCE_SUPPORT}),
    }
)
_ALLOCATION_ROLES: Final[Mapping[Response, tuple[Role, ...]]] = MappingProxyType(
    {
        Response.NEIGHBOURHOOD: (Role.NEIGHBOURHOOD, Role.PCSO),
        Response.INVESTIGATOR: (Role.INVESTIGATOR,),
        Response.SCHEDULED: (Role.NEIGHBOURHOOD, Role.RESPONSE),
    }
)
_ON_DUTY: Final = frozenset(s for s in Status if s is not Status.OFF_DUTY)
_AVAILABLE: Final = frozenset({Status.AVAILABLE})
#: Refreshment breaks may be called for grade 1 only.
_AVAILABLE_OR_BREAK: Final = frozenset({Status.AVAILABLE, Status.REFRESHMENT})


class View(Protocol):
    """What the recommender may read about the force (the World provides it)."""

    @property
    def areas(self) -> Areas: ...
    @property
    def officers(self) -> Mapping[str, Officer]: ...
    def profile(self, officer_id: str) -> Officer | None:
        """The officer's record, but its own fix (``lon``, ``lat``, ``fix_ts``,
        ``fix_event``) may be older than their position in :attr:`fleet`: for a reader of
        anything else (it may cost less than :attr:`officers`)."""

    @property
    def fleet(self) -> Fleet: ...
    def load(self, officer_id: str) -> int:
        """Open incidents allocated to the officer."""

    def held_by(self, incident_id: str) -> Collection[str]:
        """Officers the pending incident holds (recommends); the fleet knows at what grade
        (:meth:`Fleet.hold <sdo.domain.fleet.Fleet.hold>`)."""

    def with_role(self, role: Role) -> Iterable[str]:
        """Ids of officers with this role (any status)."""

    def on_duty_with_role(self, role: Role) -> Iterable[str]:
        """Ids of officers with this role and any status but off duty (in no particular order)."""

    def cover_count(self, cluster_id: str) -> int:
        """Available response officers whose last fix is in this cluster."""


def _speeds() -> dict[str, tuple[float, float, float]]:
    # metres/second for (grade 1, grade 2, grade 3+); urban averages, blue lights for 1
    return {
        Transport.CAR.value: (13.0, 11.0, 9.0),
        Transport.VAN.value: (12.0, 10.0, 8.5),
        Transport.MOTORCYCLE.value: (14.0, 12.0, 10.0),
        Transport.BICYCLE.value: (5.0, 4.5, 4.0),
        Transport.FOOT.value: (1.6, 1.4, 1.3),
    }


@dataclass(frozen=True, slots=True)
class Policy:
    """Parameters of the decision; override any of them in the rules file's ``recommend``.

    ``name`` is the decision (one of :data:`POLICIES`); ``label``, if set, what its
    recommendations call it instead (``sdo evaluate``'s variants of a policy with rules of
    their own: ``thrive@faster``), so that variants' recommendations and their ids differ.
    """

    name: str = "thrive"
    version: str = "1"
    label: str = ""
    detour_factor: float = 1.35
    speed_mps: Mapping[str, tuple[float, float, float]] = field(default_factory=_speeds)
    stale_after_s: float = 300.0
    stale_penalty_s: float = 180.0
    refreshment_penalty_s: float = 120.0
    max_candidates: int = 8
    search_radius_m: float = 40_000.0
    cover_time_s: float = 900.0
    cover_busy_p: float = 0.5
    #: seconds of score per whole cluster of expected coverage lost, by grade
    cover_weight_s: Mapping[int, float] = field(
        default_factory=lambda: {1: 0.0, 2: 1200.0, 3: 2400.0, 4: 2400.0}
    )
    #: seconds of score for taking a cluster below minimum cover, by grade
    below_min_penalty_s: Mapping[int, float] = field(
        default_factory=lambda: {1: 0.0, 2: 600.0, 3: 1800.0, 4: 1800.0}
    )
    shift_margin_s: float = 1800.0
    shift_penalty_s: float = 600.0
    #: a new officer must beat the current first candidate by this much to re-issue
    better_by_s: float = 60.0
    _speeds: dict[tuple[Transport | None, int], float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_mapping(cls, name: str, obj: Mapping[str, Any], label: str = "") -> Policy:
        """The policy ``name`` with overrides from a rules file's ``recommend`` section."""
        if name not in POLICIES:
            raise ConfigError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
        known = {f.name for f in fields(cls)} - {"name", "label"}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ConfigError(f"recommend: unknown setting(s) {', '.join(unknown)}")
        values: dict[str, Any] = {"name": name, "label": label}
        for key, value in obj.items():
            if key == "speed_mps":
                values[key] = _speed_table(value)
            elif key in ("cover_weight_s", "below_min_penalty_s"):
                values[key] = _by_grade(key, value)
            elif key == "version":
                values[key] = str(value)
            elif key == "max_candidates":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(
                        f"recommend.max_candidates must be a whole number ≥ 1, not {value!r}"
                    )
                values[key] = value
            else:
                number = _number(f"recommend.{key}", value)
                if key == "detour_factor" and number < 1:
                    raise ConfigError(
                        f"recommend.detour_factor must be at least 1 (a road is never shorter "
                        f"than the straight line), not {value!r}"
                    )
                if key == "cover_busy_p" and number > 1:
                    raise ConfigError(
                        f"recommend.cover_busy_p is a probability (0 to 1), not {value!r}"
                    )
                values[key] = number
        return cls(**values)

    @property
    def shown(self) -> str:
        """What recommendations call the policy: its label, or else its name."""
        return self.label or self.name

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(name=self.shown, version=self.version)

    def __post_init__(self) -> None:
        # (transport, grade) -> m/s, looked up for every candidate: precomputed once
        table = {
            (t, g): speeds[min(g, 3) - 1]
            for t in Transport
            if (speeds := self.speed_mps.get(t.value)) is not None and t is not Transport.DESK
            for g in (1, 2, 3, 4)
        }
        object.__setattr__(self, "_speeds", table)

    def speed(self, transport: Transport | None, grade: int) -> float | None:
        """Travel speed in m/s, or None for officers who do not travel (desk)."""
        # (asked for every candidate: no min/max calls for the grades there are)
        return self._speeds.get((transport, grade if 1 <= grade <= 4 else min(max(grade, 1), 4)))

    def eta_s(self, distance_m: float, transport: Transport | None, grade: int) -> float | None:
        speed = self.speed(transport, grade)
        return None if speed is None else distance_m * self.detour_factor / speed


def _number(where: str, value: Any) -> float:
    """A finite, non-negative number from a rules file, or a one-line ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{where} must be a non-negative number, not {value!r}")
    return number


def _by_grade(key: str, value: Any) -> dict[int, float]:
    """``{"1": s, ...}`` seconds by grade 1-4 from a rules file."""
    if not isinstance(value, Mapping):
        raise ConfigError(f'recommend.{key} must map grades to seconds, e.g. {{"2": 600}}')
    out = {}
    for grade, seconds in value.items():
        g = str(grade).strip()
        if g not in ("1", "2", "3", "4"):
            raise ConfigError(f"recommend.{key}: grades are 1 to 4, not {grade!r}")
        out[int(g)] = _number(f"recommend.{key}.{g}", seconds)
    return out


def _speed_table(value: Any) -> dict[str, tuple[float, float, float]]:
    out = _speeds()
    if not isinstance(value, Mapping):
        raise ConfigError(
            'recommend.speed_mps must map transports to speeds, e.g. {"car": [13, 11, 9]}'
        )
    for transport, speeds in value.items():
        if transport not in out:
            raise ConfigError(f"recommend.speed_mps: unknown transport {transport!r}")
        shape = f"recommend.speed_mps.{transport}: three positive speeds in m/s (grades 1, 2, 3+)"
        if not isinstance(speeds, list | tuple) or len(speeds) != 3:
            raise ConfigError(shape)
        triple = tuple(_number(f"recommend.speed_mps.{transport}", s) for s in speeds)
        if min(triple) <= 0:
            raise ConfigError(shape)
        out[transport] = (triple[0], triple[1], triple[2])
    return out


@dataclass(slots=True)
class _Scored:
    officer: Officer
    distance_m: float | None
    eta_s: float | None
    score: float
    reasons: list[str]
    stale: bool = False
    #: the reasons begin with the ETA, by what and how far (:func:`_eta_reason`), written
    #: only for the candidates kept: a dispatch scores more officers than it lists
    eta_first: bool = False
    #: recommended beyond ``officers_required``: the nearest holder of a skill a grade 1
    #: call needs and nobody eligible holds (see _emergency_fallback)
    extra: bool = False


def recommend(
    record: IncidentRecord,
    grading: Grading,
    view: View,
    policy: Policy,
    now: datetime,
) -> Recommendation:
    """The recommendation for one incident at event time ``now``."""
    incident = record.incident
    place = view.areas.locate(incident.lon, incident.lat)
    reasons = list(grading.reasons)
    shortfalls: list[str] = []
    if place is None:
        shortfalls.append("incident location is outside every area of the force")
    service: str | None = None
    if dispatches(policy, grading):
        if policy.name == "closest":
            reasons.append("closest policy: nearest available response officer, no THRIVE+ routing")
        ranked = _dispatch(record, grading, view, policy, now, place, reasons, shortfalls)
    elif grading.response is Response.SIGNPOST:
        service = grading.service
        reasons.append(f"no police deployment: refer to {service}")
        ranked = []
    else:
        ranked = _allocate(record, grading, view, policy, now, place, reasons, shortfalls)

    ranked = ranked[: policy.max_candidates]
    signposted = grading.response is Response.SIGNPOST and policy.name != "closest"
    need = 0 if signposted else incident.officers_required
    if need and any(s.extra for s in ranked[: need + 1]):
        need += 1  # the nearest holder of a missing skill, as an extra unit
    recommended = tuple(s.officer.officer_id for s in ranked[:need])
    if need and len(recommended) < need:
        shortfalls.append(f"only {len(recommended)} of {need} required officers can be recommended")
    # (built from checked records, event times and computed figures: not validated again,
    # a recommendation costs less; tests/domain/test_properties.py checks they would pass)
    candidates = tuple(
        trusted(
            Candidate,
            officer_id=s.officer.officer_id,
            callsign=s.officer.callsign or s.officer.officer_id,
            role=s.officer.role or Role.RESPONSE,
            eta_s=None if s.eta_s is None else round(s.eta_s, 1),
            distance_m=None if s.distance_m is None else round(s.distance_m, 1),
            score=round(s.score, 2),
            reasons=(_eta_reason(s), *s.reasons) if s.eta_first else tuple(s.reasons),
        )
        for s in ranked
    )
    rec_id = _rec_id(incident.incident_id, now, policy, recommended, candidates)
    return trusted(
        Recommendation,
        event_id=rec_id,
        recommendation_id=rec_id,
        ts=now,
        seq=record.rec_seq + 1,
        incident_id=incident.incident_id,
        grade=grading.grade,
        response=grading.response,
        reasons=tuple(reasons),
        candidates=candidates,
        recommended=recommended,
        shortfalls=tuple(dict.fromkeys(shortfalls)),
        service=service,
        policy=policy.ref,
    )


def _rec_id(
    incident_id: str,
    now: datetime,
    policy: Policy,
    recommended: tuple[str, ...],
    candidates: tuple[Candidate, ...],
) -> str:
    # Content-derived: a redelivered event yields the same id; replay and live agree.
    text = "|".join(
        [incident_id, now.isoformat(), policy.shown, ",".join(recommended)]
        + [c.officer_id for c in candidates]
    )
    return "rec-" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]


# -- dispatch (emergency, priority, closest) --------------------------------------------


def allocation_roles(response: Response) -> tuple[Role, ...]:
    """The roles an allocated incident (neighbourhood, investigator, scheduled) may go to,
    in the order they are considered; none for any other response."""
    return _ALLOCATION_ROLES.get(response, ())


def dispatches(policy: Policy, grading: Grading) -> bool:
    """Whether the incident is dispatched (nearest suitable officers, by ETA)."""
    return policy.name == "closest" or grading.response in _DISPATCH_ROLES


#: Tag bits an officer carries in the fleet (see :func:`fleet_tags`): a role, a status, and
#: whether they travel. A rule's masks pick its candidates in one scan of the fleet.
_ROLE_BIT: Final = {role: 1 << i for i, role in enumerate(Role)}
_STATUS_BIT: Final = {status: 1 << (20 + i) for i, status in enumerate(Status)}
_TRAVELS: Final = 1 << 40


def fleet_tags(officer: Officer, policy: Policy) -> int:
    """The fleet tag bits of an officer (role, status, travels) for :meth:`Fleet.near`."""
    tags = _STATUS_BIT[officer.status]
    if officer.role is not None:
        tags |= _ROLE_BIT[officer.role]
    if policy.speed(officer.transport, 1) is not None:  # a transport travels at every grade
        tags |= _TRAVELS
    return tags


def fleet_until(officer: Officer) -> float:
    """The fleet ``until`` of an officer: their shift end (POSIX seconds), or never."""
    return math.inf if officer.shift_end is None else officer.shift_end.timestamp()


def _bits(table: Mapping[Any, int], keys: Iterable[Any]) -> int:
    out = 0
    for key in keys:
        out |= table[key]
    return out


@dataclass(frozen=True, slots=True)
class DispatchRule:
    """Who may be dispatched to one incident (roles, statuses, skills), held or not."""

    roles: frozenset[Role]
    statuses: frozenset[Status]
    skills: frozenset[str]
    grade: int

    @classmethod
    def of(cls, policy: Policy, grading: Grading, incident: Incident) -> DispatchRule:
        """The rule for an incident that :func:`dispatches`."""
        if policy.name == "closest":
            return cls(frozenset({Role.RESPONSE}), _AVAILABLE, frozenset(), grading.grade)
        return cls(
            _DISPATCH_ROLES[grading.response],
            _AVAILABLE_OR_BREAK if grading.grade == 1 else _AVAILABLE,
            frozenset(incident.required_skills),
            grading.grade,
        )

    def loosened(self) -> DispatchRule:
        """The rule without its skills: who a grade 1 call takes when nobody eligible
        holds them (CONTRACT §3; see :func:`fell_back`)."""
        return DispatchRule(self.roles, self.statuses, frozenset(), self.grade)

    def admits(self, o: Officer, policy: Policy, now: datetime) -> bool:
        """Whether ``o`` may be sent (before asking whether another incident holds them)."""
        return (
            o.role in self.roles
            and o.status in self.statuses
            and (not self.skills or self.skills.issubset(o.skills))
            and (o.shift_end is None or o.shift_end > now)
            and policy.speed(o.transport, self.grade) is not None
        )

    @property
    def masks(self) -> tuple[int, int]:
        """Fleet tag masks: one of the rule's roles, one of its statuses."""
        return (_bits(_ROLE_BIT, self.roles), _bits(_STATUS_BIT, self.statuses))

    def nearby(
        self, view: View, lon: float, lat: float, max_m: float, now: datetime, mine: Collection[str]
    ) -> Nearby:
        """Fleet hits nearest first that may pass :meth:`admits` (a superset: the role,
        status and travel bits are exact; the shift end is taken a second early, and
        skills are not tested), for the caller to check one by one; officers held by
        another incident (not in ``mine``) of the rule's grade or a higher one apart:
        the recommender passes them over (:meth:`held_before` counts them)."""
        return view.fleet.nearby(
            lon,
            lat,
            max_m=max_m,
            any_of=self.masks,
            all_of=_TRAVELS,
            until_after=now.timestamp() - 1.0,
            free_above=self.grade,
            mine=mine,
        )

    def held_before(
        self, view: View, nearby: Nearby, before: Hit | None, now: datetime, policy: Policy
    ) -> int:
        """How many held officers of ``nearby`` its hits would have had before ``before``
        (all of them if None), that the rule admits."""
        # the tags are exact but for the shift end (and skills): only those ending about
        # now are asked (all of them if the rule wants skills)
        sure_after = math.inf if self.skills else now.timestamp() + 1.0
        count, ask = nearby.held_before(before, sure_after)
        for oid in view.fleet.ids_of(ask):
            o = view.profile(oid)
            if o is not None and self.admits(o, policy, now):
                count += 1
        return count


def _dispatch(
    record: IncidentRecord,
    grading: Grading,
    view: View,
    policy: Policy,
    now: datetime,
    place: Placement | None,
    reasons: list[str],
    shortfalls: list[str],
) -> list[_Scored]:
    incident = record.incident
    rule = DispatchRule.of(policy, grading, incident)
    skills = rule.skills
    thrive = policy.name != "closest"
    scored, held = _ranked(rule, incident, view, policy, now, place, thrive)
    role_names = "/".join(sorted(r.value for r in rule.roles))
    reasons.append(
        f"{grading.response.value}: {role_names} officers, "
        + (
            "refreshment breaks may be called (grade 1), "
            if Status.REFRESHMENT in rule.statuses
            else ""
        )
        + "ranked by ETA"
        + (f", must hold {', '.join(sorted(skills))}" if skills else "")
    )
    if grading.grade == 1 and skills and len(scored) < incident.officers_required:
        scored, held = _emergency_fallback(
            rule, scored, incident, view, policy, now, place, thrive, shortfalls
        )
    if held:
        reasons.append(
            f"{held} nearer officer(s) held for pending incidents of the same or higher grade"
        )
    if scored:
        _why_not_nearest(scored, reasons)
        if all(s.stale for s in scored):
            shortfalls.append(
                f"all candidate AVL fixes are stale (older than {_mins(policy.stale_after_s)})"
            )
    if len(scored) < incident.officers_required:
        _diagnose(incident.lon, incident.lat, rule, view, policy, shortfalls)
    if place is not None and thrive:
        _cover_shortfall(place.cluster, view, shortfalls)
    return scored


def _ranked(
    rule: DispatchRule,
    incident: Incident,
    view: View,
    policy: Policy,
    now: datetime,
    place: Placement | None,
    thrive: bool,
) -> tuple[list[_Scored], int]:
    """The officers ``rule`` admits near the incident, scored and ranked best first, and
    how many nearer ones are held for other incidents of the same or higher grade."""
    grade = rule.grade
    officers = view.officers
    mine = view.held_by(incident.incident_id)
    pool = policy.max_candidates + incident.officers_required + 6
    # Nearest first; officers held for other incidents are apart (see DispatchRule.nearby)
    nearby = rule.nearby(view, incident.lon, incident.lat, policy.search_radius_m, now, mine)
    hits: list[Hit] = []
    for hit in nearby.hits():
        o = view.profile(hit.officer_id)
        if o is not None and rule.admits(o, policy, now):
            hits.append(hit)
            if len(hits) == pool:
                break
    # the held officers nearer than the last of the pool (or within the radius)
    held = rule.held_before(view, nearby, hits[-1] if len(hits) == pool else None, now, policy)
    skills = rule.skills
    scored: list[_Scored] = []
    for hit in hits:
        o = view.profile(hit.officer_id)
        assert o is not None
        eta = policy.eta_s(hit.distance_m, o.transport, grade)
        assert eta is not None  # (the rule admits only officers who travel)
        if _shift_ends_first(o, eta, now):
            continue
        why: list[str] = []  # (the ETA comes first, written if kept: eta_first)
        score = eta
        stale = False
        if thrive:  # (the age of their fix: their whole record)
            score, stale = _penalties(officers[o.officer_id], eta, grade, policy, now, why, score)
        if skills:
            why.append(f"holds {', '.join(sorted(skills))}")
        if o.cluster and place and o.cluster != place.cluster:
            why.append(f"from cluster {o.cluster} (borderless)")
        scored.append(_Scored(o, hit.distance_m, eta, score, why, stale, eta_first=True))
    if thrive:
        _cover(scored, grade, view, policy)
    scored.sort(key=lambda s: (s.score, s.officer.officer_id))
    return scored, held


def _emergency_fallback(
    rule: DispatchRule,
    holders: list[_Scored],
    incident: Incident,
    view: View,
    policy: Policy,
    now: datetime,
    place: Placement | None,
    thrive: bool,
    shortfalls: list[str],
) -> tuple[list[_Scored], int]:
    """A grade 1 call too few eligible officers with its skills can take is never left
    unanswered for want of a skill (CONTRACT §3): those who hold them, then the nearest
    eligible officers without, up to the number required; and the nearest officer of any
    role who holds the skills, if one is available, as an extra unit. The shortfalls
    name the missing skills and that holder."""
    need = incident.officers_required
    missing = ", ".join(sorted(rule.skills))
    loose, held = _ranked(rule.loosened(), incident, view, policy, now, place, thrive)
    taken = {s.officer.officer_id for s in holders}
    others = [s for s in loose if s.officer.officer_id not in taken]
    chosen = [*holders, *others[: need - len(holders)]]
    for s in chosen[len(holders) :]:
        s.reasons.append(f"does not hold {missing}: the nearest, as grade 1 is never unanswered")
    rest = others[need - len(holders) :]
    if len(chosen) > len(holders):
        shortfalls.append(
            f"no eligible officer available holds {missing}: the nearest are recommended"
        )
    anyone = DispatchRule(frozenset(Role), rule.statuses, rule.skills, rule.grade)
    skilled, _ = _ranked(anyone, incident, view, policy, now, place, thrive=False)
    chosen_ids = {s.officer.officer_id for s in chosen}
    unit = next((s for s in skilled if s.officer.officer_id not in chosen_ids), None)
    if unit is None:
        shortfalls.append(f"nobody available holds {missing}")
        return [*chosen, *rest], held
    unit.extra = True
    unit.reasons.append(f"holds {missing}: sent as an extra unit")
    callsign = unit.officer.callsign or unit.officer.officer_id
    eta = _mins(unit.eta_s) if unit.eta_s is not None else "unknown"
    shortfalls.append(
        f"nearest holder of {missing}: {callsign} ({eta} away), recommended as an extra unit"
    )
    return [
        *chosen,
        unit,
        *(s for s in rest if s.officer.officer_id != unit.officer.officer_id),
    ], held


def _cover_shortfall(cluster_id: str, view: View, shortfalls: list[str]) -> None:
    cluster = view.areas.clusters.get(cluster_id)
    if cluster is None:
        return
    count = view.cover_count(cluster.id)
    if count < cluster.min_cover:
        shortfalls.append(
            f"cluster {cluster.id} below minimum cover ({count} of {cluster.min_cover} available)"
        )


def _eta_reason(s: _Scored) -> str:
    """A dispatch candidate's first reason: "ETA 4 min by car (1.6 km)"."""
    transport = s.officer.transport.value if s.officer.transport else "?"
    return f"ETA {_mins(s.eta_s or 0.0)} by {transport} ({(s.distance_m or 0.0) / 1000:.1f} km)"


def _why_not_nearest(scored: list[_Scored], reasons: list[str]) -> None:
    """When the nearest eligible officer is not ranked first, say why."""
    nearest = min(scored, key=lambda s: (s.distance_m or 0.0, s.officer.officer_id))
    if nearest is scored[0]:
        return
    pos = scored.index(nearest) + 1
    extra = nearest.reasons  # (its ETA is not among them: see _Scored.eta_first)
    reasons.append(
        f"nearest eligible officer {nearest.officer.callsign} "
        f"({(nearest.distance_m or 0) / 1000:.1f} km) is ranked {pos}: "
        + ("; ".join(extra) if extra else "slower transport")
    )


def _shift_ends_first(o: Officer, eta_s: float, now: datetime) -> bool:
    """An officer whose shift ends before they could arrive is not sent."""
    return o.shift_end is not None and (o.shift_end - now).total_seconds() <= eta_s


def _penalties(
    o: Officer, eta: float, grade: int, policy: Policy, now: datetime, why: list[str], score: float
) -> tuple[float, bool]:
    stale = False
    if o.fix_ts is not None:
        age = (now - o.fix_ts).total_seconds()
        if age > policy.stale_after_s:
            stale = True
            score += policy.stale_penalty_s
            why.append(
                f"last fix {_mins(age)} old: position uncertain (+{_mins(policy.stale_penalty_s)})"
            )
    if o.status is Status.REFRESHMENT:
        score += policy.refreshment_penalty_s
        why.append("on refreshment break: called for grade 1")
    if o.shift_end is not None:
        left = (o.shift_end - now).total_seconds()
        if grade >= 2 and left < eta + policy.shift_margin_s:
            score += policy.shift_penalty_s
            why.append(f"shift ends in {_mins(left)}")
    return score, stale


def _cover(scored: list[_Scored], grade: int, view: View, policy: Policy) -> None:
    """Add each candidate's expected-coverage loss to its score, weighted by grade."""
    weight = policy.cover_weight_s.get(grade, max(policy.cover_weight_s.values(), default=0.0))
    below = policy.below_min_penalty_s.get(grade, 0.0)
    by_cluster: dict[str, list[_Scored]] = {}
    for s in scored:
        if (
            s.officer.cluster
            and s.officer.role is Role.RESPONSE
            and s.officer.status is Status.AVAILABLE
        ):
            by_cluster.setdefault(s.officer.cluster, []).append(s)
    for cluster_id, members in by_cluster.items():
        cluster = view.areas.clusters.get(cluster_id)
        if cluster is None or not cluster.neighbourhoods:
            continue
        losses, count = _coverage_losses(
            cluster_id, [m.officer.officer_id for m in members], view, policy
        )
        for m in members:
            loss = losses.get(m.officer.officer_id, 0.0)
            left = count - 1
            penalty = weight * loss
            words = (
                f"cluster {cluster_id} expected cover -{loss * 100:.0f}%, "
                f"{left} left (minimum {cluster.min_cover})"
            )
            if left < cluster.min_cover:
                penalty += below
                words += " (below minimum)"
            if grade == 1:
                words += "; grade 1 takes the fastest officer regardless"
            elif penalty > 0:
                words += f" (+{_mins(penalty)})"
            m.score += penalty
            m.reasons.append(words)


def cover_group(cluster_id: str) -> str:
    """The fleet group of a cluster's available response officers (maintained by the World)."""
    return f"cover:{cluster_id}"


def _coverage_losses(
    cluster_id: str, ids: list[str], view: View, policy: Policy
) -> tuple[dict[str, float], int]:
    """Expected-coverage loss (share of the cluster) if each of ``ids`` leaves.

    Vectorised over the cluster's available response officers (a fleet group kept up to
    date by the World), so a big cluster costs array arithmetic, not Python loops.
    """
    cluster = view.areas.clusters[cluster_id]
    centroids = [view.areas.neighbourhoods[n].centroid for n in cluster.neighbourhoods]
    members, reach = view.fleet.group_reach(
        cover_group(cluster_id), centroids, policy.cover_time_s, policy.detour_factor
    )
    if not members:
        return {}, 0
    k = reach.sum(axis=0)
    p = policy.cover_busy_p
    # marginal loss of one reacher at a centroid covered by k reachers
    marginal = np.where(k > 0, p ** np.maximum(k - 1, 0) * (1 - p), 0.0) / len(centroids)
    wanted = set(ids)
    losses = {
        oid: float((reach[i] * marginal).sum()) for i, oid in enumerate(members) if oid in wanted
    }
    return losses, len(members)


def _diagnose(
    lon: float,
    lat: float,
    rule: DispatchRule,
    view: View,
    policy: Policy,
    shortfalls: list[str],
) -> None:
    """Say why there are too few candidates: which skill is missing, or nobody at all."""
    radius = f"{policy.search_radius_m / 1000:.0f} km"
    officers = view.officers
    # role and status as the rule has them; the tag bits say exactly that
    masks = rule.masks
    if next(view.fleet.near(lon, lat, max_m=policy.search_radius_m, any_of=masks), None) is None:
        shortfalls.append(
            f"no available {'/'.join(sorted(r.value for r in rule.roles))} officer within {radius}"
        )
        return
    fleet = view.fleet
    shortfalls.extend(
        f"nobody with skill {skill} available within {radius}"
        for skill in sorted(rule.skills)
        if not any(
            skill in officers[h.officer_id].skills
            for h in fleet.near(lon, lat, max_m=policy.search_radius_m, any_of=masks)
        )
    )


# -- allocation (neighbourhood, investigator, scheduled) --------------------------------


@dataclass(frozen=True, slots=True)
class AllocationRule:
    """Who may take one allocated incident (neighbourhood, investigator, scheduled), and
    how they rank: tier (named officer, team, NPU ...), then open allocations, then ETA."""

    response: Response
    roles: tuple[Role, ...]
    skills: frozenset[str]
    place: Placement | None
    named: str | None
    lon: float
    lat: float
    grade: int

    @classmethod
    def of(
        cls, incident: Incident, grading: Grading, view: View, place: Placement | None
    ) -> AllocationRule:
        """The rule for an incident at ``place`` (``view.areas.locate`` of its position)."""
        response = grading.response
        named = None
        if place is not None and response is Response.NEIGHBOURHOOD:
            named = view.areas.neighbourhoods[place.neighbourhood].named_officer
        return cls(
            response,
            allocation_roles(response),
            frozenset(incident.required_skills),
            place,
            named,
            incident.lon,
            incident.lat,
            grading.grade,
        )

    def on_duty(self, o: Officer, now: datetime) -> bool:
        return o.status in _ON_DUTY and (o.shift_end is None or o.shift_end > now)

    def measure(self, o: Officer, view: View, policy: Policy) -> _Measure | None:
        """Where the officer sorts in the ranking and the figures behind it (no reasons),
        or None if their tier excludes them.

        The caller has checked the role, :meth:`on_duty` and the skills. Cheap: a pool is
        measured whole, and only the first few entries get their reasons (:meth:`entry`).
        """
        tier = _tier(o, self.response, self.place, self.named)
        if tier is None:
            return None
        oid = o.officer_id
        load = view.load(oid)
        distance = eta = None
        speed = policy.speed(o.transport, self.grade)  # None: they do not travel
        if speed is not None and o.has_fix:
            pos = view.fleet.position(oid)
            if pos is not None:
                distance = haversine_m(pos[0], pos[1], self.lon, self.lat)
                eta = distance * policy.detour_factor / speed  # (as Policy.eta_s)
        score = tier * 100_000.0 + load * 1_000.0 + (eta if eta is not None else 900.0)
        return _Measure(score, oid, tier, load, distance, eta)

    def entry(self, o: Officer, m: _Measure) -> _Scored:
        """The officer's entry in the ranking, with its reasons, from :meth:`measure`."""
        why = [_tier_reason(m.tier, o, self.response, self.place), f"{m.load} open allocation(s)"]
        return _Scored(o, m.distance_m, m.eta_s, m.score, why)

    def rank(
        self, o: Officer, view: View, policy: Policy, now: datetime
    ) -> tuple[float, str] | None:
        """Where the officer would sort now (lower first), or None if they may not take it."""
        if o.shift_end is not None and o.shift_end <= now:
            return None
        return self.rank_on_shift(o, view, policy)

    def rank_on_shift(self, o: Officer, view: View, policy: Policy) -> tuple[float, str] | None:
        """:meth:`rank` at a time before the officer's shift ends: a function of their
        record, their load and their fleet position only (so a caller may keep it)."""
        if o.role not in self.roles or o.status not in _ON_DUTY:
            return None
        if self.skills and not self.skills.issubset(o.skills):
            return None
        m = self.measure(o, view, policy)
        return None if m is None else (m.score, o.officer_id)


class _Measure(NamedTuple):
    """An officer's place in an allocation's ranking: (score, officer id) sorts it."""

    score: float
    officer_id: str
    tier: int
    load: int
    distance_m: float | None
    eta_s: float | None


def _allocate(
    record: IncidentRecord,
    grading: Grading,
    view: View,
    policy: Policy,
    now: datetime,
    place: Placement | None,
    reasons: list[str],
    shortfalls: list[str],
) -> list[_Scored]:
    """The ranked candidates of an allocation: its first ``policy.max_candidates`` only
    (the rest are measured, not given reasons: the recommendation keeps no more)."""
    rule = AllocationRule.of(record.incident, grading, view, place)
    skills = rule.skills
    officers = view.officers
    response = grading.response
    measured: list[_Measure] = []
    missing_skill = 0
    for role in rule.roles:
        for oid in view.on_duty_with_role(role):
            o = view.profile(oid)  # (measure reads their position in the fleet)
            if o is None or not rule.on_duty(o, now):
                continue
            if skills and not skills.issubset(o.skills):
                missing_skill += 1
                continue
            m = rule.measure(o, view, policy)
            if m is not None:
                measured.append(m)
    # (score, officer id) is unique per officer: the pool's order does not matter
    measured.sort(key=_score_then_id)
    scored = [rule.entry(officers[m.officer_id], m) for m in measured[: policy.max_candidates]]
    named = rule.named
    if response is Response.NEIGHBOURHOOD:
        if named and (not measured or measured[0].officer_id != named):
            shortfalls.append(f"named officer {named} is not on duty: next in line recommended")
        reasons.append(
            "neighbourhood: the named officer if on duty, "
            "else the neighbourhood team, else the NPU's"
        )
    elif response is Response.INVESTIGATOR:
        reasons.append("investigator: least-loaded investigator of the NPU, no attendance needed")
    else:
        reasons.append("scheduled: appointment with the lightest-loaded suitable officer")
    if not measured:
        what = "/".join(r.value for r in rule.roles)
        shortfalls.append(
            f"no {what} officer on duty"
            + (f" holding {', '.join(sorted(skills))}" if missing_skill else "")
        )
    return scored


def _score_then_id(m: _Measure) -> tuple[float, str]:
    return (m.score, m.officer_id)


def _tier(o: Officer, response: Response, place: Placement | None, named: str | None) -> int | None:
    """Rank band of an officer for an allocation: lower is better, None is ineligible."""
    npu = place.npu if place else None
    if response is Response.NEIGHBOURHOOD:
        if named is not None and o.officer_id == named:
            return 0
        if place is not None and place.neighbourhood in o.neighbourhoods:
            return 1
        if npu is not None and o.home_npu == npu:
            return 2
        return None
    if response is Response.INVESTIGATOR:
        return 0 if npu is not None and o.home_npu == npu else 1
    # scheduled
    return 0 if npu is not None and npu in (o.home_npu, o.npu) else 1


def _tier_reason(tier: int, o: Officer, response: Response, place: Placement | None) -> str:
    """Why the officer is in that band (see :func:`_tier`)."""
    npu = place.npu if place else None
    if response is Response.NEIGHBOURHOOD:
        nbhd = place.neighbourhood if place else None
        return (
            f"named officer for {nbhd}",
            f"{nbhd} neighbourhood team",
            f"{npu} NPU neighbourhood officer",
        )[tier]
    if response is Response.INVESTIGATOR:
        return f"{npu} NPU investigator" if tier == 0 else "investigator from another NPU"
    if tier == 0:
        return f"{npu} NPU {o.role.value if o.role else ''} officer"
    return "officer from another NPU"


def _mins(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
