"""Officer and incident state, and how events change it (pure).

Theory of operation
-------------------
Each officer record folds three independent feeds: the profile (who they are), the
status (what they are doing) and the AVL fix (where they are). Kafka delivers each feed
in order per officer but the three feeds interleave freely, and any event may be
redelivered. So every aspect keeps the ``ts`` and ``event_id`` of the event that set it,
the ids of the other events it applied at that same ``ts`` (``*_seen``), and an event is
applied only if it is newer than what the record holds for that aspect:

* same ``event_id`` as the one held, or one seen at the held ``ts`` → duplicate, ignored;
* earlier ``ts`` than the one held → out of order, ignored;
* equal ``ts`` with an id not seen yet → applied (log order breaks the tie), and the id it
  replaces joins the seen ones.

So an event redelivered after another of its aspect with the very same time changes
nothing either (a status then a deployment at one instant, redelivered, stay the
deployment). The seen ids are bounded (:data:`SEEN_MAX`, the latest kept): a producer that
stamps more events of one aspect alike than that loses the guarantee for the oldest.

Transitions are functions ``(state, event, ...) -> Change`` that never raise for
ordinary input; a :class:`Change` says whether anything changed and, if not, why.
Events that cannot apply to the state at all (a deployment for an unknown incident)
raise :class:`sdo.errors.Rejected` so the adapter dead-letters them with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Final, Generic, NamedTuple, TypeVar

import orjson
from mypy_extensions import mypyc_attr

from sdo.domain.geo import Areas, Placement
from sdo.errors import Rejected, UnknownOfficers
from sdo.events import (
    Decision,
    Deployment,
    Incident,
    IncidentState,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Role,
    Status,
    Transport,
)

__all__ = [
    "SEEN_MAX",
    "Change",
    "IncidentRecord",
    "Officer",
    "apply_deployment",
    "apply_incident",
    "apply_location",
    "apply_profile",
    "apply_status",
    "availability_keys",
    "availability_of",
    "deployment_statuses",
    "merge_officer",
    "moved",
]


def _iso(value: datetime) -> str:
    """``value.isoformat()``; for UTC made by orjson, the same text in a third of the time
    (an officer record has four times, and the worker writes thousands of records a
    second)."""
    if value.tzinfo is UTC:
        return orjson.dumps(value)[1:-1].decode()
    return value.isoformat()


def _dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class Officer(NamedTuple):
    """Everything known about one officer: profile, status, last fix, derived place.

    A named tuple, not a dataclass: one is built for nearly every event (each AVL fix),
    and a tuple is built by one C call where a frozen dataclass takes one per field.
    """

    officer_id: str
    # profile
    callsign: str | None = None
    role: Role | None = None
    skills: tuple[str, ...] = ()
    transport: Transport | None = None
    home_npu: str | None = None
    neighbourhoods: tuple[str, ...] = ()
    shift_end: datetime | None = None
    profile_ts: datetime | None = None
    profile_event: str | None = None
    profile_seen: tuple[str, ...] = ()
    # status
    status: Status = Status.OFF_DUTY
    incident_id: str | None = None
    status_ts: datetime | None = None
    status_event: str | None = None
    status_seen: tuple[str, ...] = ()
    # last AVL fix and where it falls
    lat: float | None = None
    lon: float | None = None
    fix_ts: datetime | None = None
    fix_event: str | None = None
    fix_seen: tuple[str, ...] = ()
    neighbourhood: str | None = None
    npu: str | None = None
    cluster: str | None = None

    @property
    def has_profile(self) -> bool:
        return self.role is not None

    @property
    def has_fix(self) -> bool:
        return self.lat is not None and self.lon is not None

    def to_dict(self, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Plain JSON-ready data, for table storage (``leave_out``: fields not wanted:
        the console's page does without the event ids)."""
        # Field by field, in order (the layout is checked below the class), rather than a
        # loop over the fields testing each value's type: a flush writes every officer who
        # moved, and this took 2.5 us of the 2.9 each record cost to build and encode.
        (
            officer_id,
            callsign,
            role,
            skills,
            transport,
            home_npu,
            neighbourhoods,
            shift_end,
            profile_ts,
            profile_event,
            profile_seen,
            status,
            incident_id,
            status_ts,
            status_event,
            status_seen,
            lat,
            lon,
            fix_ts,
            fix_event,
            fix_seen,
            neighbourhood,
            npu,
            cluster,
        ) = self
        out: dict[str, Any] = {"officer_id": officer_id}
        if callsign is not None:
            out["callsign"] = callsign
        if role is not None:
            out["role"] = role
        if skills:
            out["skills"] = skills
        if transport is not None:
            out["transport"] = transport
        if home_npu is not None:
            out["home_npu"] = home_npu
        if neighbourhoods:
            out["neighbourhoods"] = neighbourhoods
        if shift_end is not None:
            out["shift_end"] = _iso(shift_end)
        if profile_ts is not None:
            out["profile_ts"] = _iso(profile_ts)
        if profile_event is not None:
            out["profile_event"] = profile_event
        if profile_seen:
            out["profile_seen"] = profile_seen
        if status is not None:
            out["status"] = status
        if incident_id is not None:
            out["incident_id"] = incident_id
        if status_ts is not None:
            out["status_ts"] = _iso(status_ts)
        if status_event is not None:
            out["status_event"] = status_event
        if status_seen:
            out["status_seen"] = status_seen
        if lat is not None:
            out["lat"] = lat
        if lon is not None:
            out["lon"] = lon
        if fix_ts is not None:
            out["fix_ts"] = _iso(fix_ts)
        if fix_event is not None:
            out["fix_event"] = fix_event
        if fix_seen:
            out["fix_seen"] = fix_seen
        if neighbourhood is not None:
            out["neighbourhood"] = neighbourhood
        if npu is not None:
            out["npu"] = npu
        if cluster is not None:
            out["cluster"] = cluster
        for name in leave_out:
            out.pop(name, None)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Officer:
        return cls(**_decode_fields(cls, data, _OFFICER_CODECS))


_OFFICER_FIELDS: Final = Officer._fields

_OFFICER_CODECS: Final[dict[str, Callable[[Any], Any]]] = {
    "role": Role,
    "transport": Transport,
    "status": Status,
    "skills": tuple,
    "neighbourhoods": tuple,
    "shift_end": _dt,
    "profile_ts": _dt,
    "status_ts": _dt,
    "fix_ts": _dt,
    "profile_seen": tuple,
    "status_seen": tuple,
    "fix_seen": tuple,
}


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """The latest state of one incident plus what sdo has learnt about it."""

    incident: Incident
    created_ts: datetime
    #: officers assigned by the last accepted/overridden deployment
    assigned: tuple[str, ...] = ()
    decision: Decision | None = None
    decision_ts: datetime | None = None
    decision_event: str | None = None
    decided_by: str | None = None
    #: ids of the other versions taken at the held version's ``ts`` (see the module doc)
    incident_seen: tuple[str, ...] = ()
    #: ids of the other deployments taken at ``decision_ts``
    decision_seen: tuple[str, ...] = ()
    #: the ``seq`` of the last recommendation published for it (0: none yet)
    rec_seq: int = 0

    @property
    def incident_id(self) -> str:
        return self.incident.incident_id

    @property
    def ts(self) -> datetime:
        return self.incident.ts

    @property
    def state(self) -> IncidentState:
        return self.incident.state

    @property
    def is_open(self) -> bool:
        return self.incident.state is not IncidentState.CLOSED

    @property
    def awaiting_deployment(self) -> bool:
        """Open, not resourced, not declined: the SDO still has to act."""
        return self.incident.state is IncidentState.OPEN and self.decision is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "incident": self.incident.model_dump(mode="json", exclude_none=True),
            "created_ts": self.created_ts.isoformat(),
        }
        if self.assigned:
            out["assigned"] = list(self.assigned)
        for name in ("decision", "decision_ts", "decision_event", "decided_by"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        for name in ("incident_seen", "decision_seen"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        if self.rec_seq:
            out["rec_seq"] = self.rec_seq
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IncidentRecord:
        return cls(
            incident=Incident.model_validate(data["incident"]),
            created_ts=datetime.fromisoformat(data["created_ts"]),
            assigned=tuple(data.get("assigned", ())),
            decision=Decision(data["decision"]) if data.get("decision") else None,
            decision_ts=_dt(data.get("decision_ts")),
            decision_event=data.get("decision_event"),
            decided_by=data.get("decided_by"),
            incident_seen=tuple(data.get("incident_seen", ())),
            decision_seen=tuple(data.get("decision_seen", ())),
            rec_seq=int(data.get("rec_seq", 0)),
        )


def _decode_fields(
    cls: type[Any], data: Mapping[str, Any], codecs: Mapping[str, Callable[[Any], Any]]
) -> dict[str, Any]:
    names = set(cls._fields) if hasattr(cls, "_fields") else {f.name for f in fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in names:
            continue
        codec = codecs.get(key)
        out[key] = codec(value) if codec is not None and value is not None else value
    return out


T = TypeVar("T")


@mypyc_attr(native_class=False)  # (mypyc: a generic dataclass stays a Python class)
@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """The outcome of a transition: the new state, or why nothing changed."""

    state: T
    changed: bool
    ignored: str | None = None

    @classmethod
    def ignore(cls, state: T, why: str) -> Change[T]:
        return cls(state, changed=False, ignored=why)


#: At most this many ids are kept as seen at an aspect's time (the latest ones).
SEEN_MAX: Final = 32


def _stale(
    held_ts: datetime | None,
    held_event: str | None,
    seen: tuple[str, ...],
    ts: datetime,
    event_id: str,
) -> str | None:
    """Why an event must not change an aspect, or None when it may."""
    if held_event == event_id:
        return "duplicate"
    if held_ts is not None:
        if ts < held_ts:
            return "out_of_order"
        if ts == held_ts and event_id in seen:
            return "duplicate"
    return None


def _seen_after(
    held_ts: datetime | None, held_event: str | None, seen: tuple[str, ...], ts: datetime
) -> tuple[str, ...]:
    """The seen ids once an event at ``ts`` replaces ``held_event`` (not stale)."""
    if held_ts is None or held_event is None or ts != held_ts:
        return ()
    return (*seen, held_event)[-SEEN_MAX:]


# -- officers -----------------------------------------------------------------------------

#: Where each aspect's fields sit in an Officer tuple: the officer's id, its profile, its
#: status, then its last fix (lat, lon, fix_ts, fix_event, fix_seen) and the place it
#: falls in. Each transition builds the tuple from slices and the new values, in this
#: order (checked here, so that a field added elsewhere fails at import).
_STATUS_AT: Final = _OFFICER_FIELDS.index("status")
_FIX_AT: Final = _OFFICER_FIELDS.index("lat")
if _OFFICER_FIELDS != (
    "officer_id",
    "callsign",
    "role",
    "skills",
    "transport",
    "home_npu",
    "neighbourhoods",
    "shift_end",
    "profile_ts",
    "profile_event",
    "profile_seen",
    "status",
    "incident_id",
    "status_ts",
    "status_event",
    "status_seen",
    "lat",
    "lon",
    "fix_ts",
    "fix_event",
    "fix_seen",
    "neighbourhood",
    "npu",
    "cluster",
):
    raise ImportError("Officer: its fields are not in the order its transitions build")
_FIX_END: Final = _FIX_AT + 5
_new_tuple = tuple.__new__


def apply_profile(officer: Officer | None, event: OfficerProfile) -> Change[Officer]:
    current = officer or Officer(event.officer_id)
    held_ts, held_event, seen = current.profile_ts, current.profile_event, current.profile_seen
    why = _stale(held_ts, held_event, seen, event.ts, event.event_id)
    if why:
        return Change.ignore(current, why)
    # (a tuple built from slices: Officer._replace, by name, cost 1.5-2 us an event)
    new = _new_tuple(
        Officer,
        (
            current[0],
            event.callsign,
            event.role,
            event.skills,
            event.transport,
            event.npu,
            event.neighbourhoods,
            event.shift_end,
            event.ts,
            event.event_id,
            _seen_after(held_ts, held_event, seen, event.ts),
            *current[_STATUS_AT:],
        ),
    )
    return Change(new, changed=True)


def apply_status(officer: Officer | None, event: OfficerStatus) -> Change[Officer]:
    """Apply a status change.

    The status feed is authoritative: any status may follow any other (officers
    self-deploy, radio updates are missed). Statuses that commit an officer to an
    incident keep its id; every other status clears it.
    """
    current = officer or Officer(event.officer_id)
    held_ts, held_event, seen = current.status_ts, current.status_event, current.status_seen
    why = _stale(held_ts, held_event, seen, event.ts, event.event_id)
    if why:
        return Change.ignore(current, why)
    incident_id = event.incident_id if event.status in _KEEPS_INCIDENT else None
    new = _new_tuple(
        Officer,
        (
            *current[:_STATUS_AT],
            event.status,
            incident_id,
            event.ts,
            event.event_id,
            _seen_after(held_ts, held_event, seen, event.ts),
            *current[_FIX_AT:],
        ),
    )
    return Change(new, changed=True)


_KEEPS_INCIDENT: Final = frozenset({Status.EN_ROUTE, Status.AT_SCENE, Status.COMMITTED})


def apply_location(
    officer: Officer | None, event: OfficerLocation, areas: Areas
) -> Change[Officer]:
    """Record a fix and where it falls. A fix outside every area is kept, unplaced."""
    current = officer or Officer(event.officer_id)
    held_ts, held_event, seen = current.fix_ts, current.fix_event, current.fix_seen
    why = _stale(held_ts, held_event, seen, event.ts, event.event_id)
    if why:
        return Change.ignore(current, why)
    place = _placement(current, event, areas)
    new = _new_tuple(
        Officer,
        (
            *current[:_FIX_AT],
            event.lat,
            event.lon,
            event.ts,
            event.event_id,
            _seen_after(held_ts, held_event, seen, event.ts),
            place.neighbourhood if place else None,
            place.npu if place else None,
            place.cluster if place else None,
        ),
    )
    return Change(new, changed=True)


def moved(officer: Officer, lat: float, lon: float, ts: datetime, event_id: str) -> Officer:
    """``officer`` with a fix at (lat, lon) and the same place (the caller knows it is),
    at a ``ts`` later than its fix's (so no id is seen at it yet).

    The hottest transition of all (nearly every event is a fix within the neighbourhood of
    the last): two slices and a tuple, no per-field work.
    """
    return _new_tuple(
        Officer, (*officer[:_FIX_AT], lat, lon, ts, event_id, (), *officer[_FIX_END:])
    )


def placed(
    officer: Officer, lat: float, lon: float, ts: datetime, event_id: str, place: Placement
) -> Officer:
    """``officer`` with a fix at (lat, lon) in ``place`` (another neighbourhood), at a
    ``ts`` later than its fix's."""
    return _new_tuple(
        Officer,
        (
            *officer[:_FIX_AT],
            lat,
            lon,
            ts,
            event_id,
            (),
            place.neighbourhood,
            place.npu,
            place.cluster,
        ),
    )


def only_moved(old: Officer, new: Officer) -> bool:
    """Whether ``new`` differs from ``old`` in its fix alone (position, time, event ids)."""
    return old[:_FIX_AT] == new[:_FIX_AT] and old[_FIX_END:] == new[_FIX_END:]


def _evolve(officer: Officer, **changes: Any) -> Officer:
    """``officer`` with ``changes`` (field name -> value)."""
    return officer._replace(**changes)


def _placement(current: Officer, event: OfficerLocation, areas: Areas) -> Placement | None:
    # Most fixes stay inside the neighbourhood of the previous one: test it first.
    if current.neighbourhood is not None and areas.contains(
        current.neighbourhood, event.lon, event.lat
    ):
        return Placement(current.neighbourhood, current.npu or "", current.cluster or "")
    return areas.locate(event.lon, event.lat)


#: The fields each aspect of an officer record owns: (time field, event field, seen ids
#: field, the rest).
_ASPECTS: Final = (
    (
        "profile_ts",
        "profile_event",
        "profile_seen",
        ("callsign", "role", "skills", "transport", "home_npu", "neighbourhoods", "shift_end"),
    ),
    ("status_ts", "status_event", "status_seen", ("status", "incident_id")),
    ("fix_ts", "fix_event", "fix_seen", ("lat", "lon", "neighbourhood", "npu", "cluster")),
)


def merge_officer(current: Officer | None, incoming: Officer) -> Change[Officer]:
    """Fold a record written elsewhere (another worker, a table) into ours, per aspect.

    An aspect is taken when it is newer: a later ``ts``; at the same ``ts``, the one that
    applied after the other (its seen ids hold the other's event), else the greater event
    id (so two workers merging each other's records agree, whatever the order). At the
    same ``ts`` the ids seen by either side are kept, whichever wins, so neither worker
    applies again an event the other applied. A record we wrote ourselves comes back
    unchanged.
    """
    if current is None:
        return Change(incoming, changed=True)
    changes: dict[str, Any] = {}
    for ts_field, event_field, seen_field, rest in _ASPECTS:
        theirs, ours = getattr(incoming, ts_field), getattr(current, ts_field)
        if theirs is None:
            continue
        their_id, our_id = getattr(incoming, event_field), getattr(current, event_field)
        their_seen, our_seen = getattr(incoming, seen_field), getattr(current, seen_field)
        if ours is None or theirs > ours:
            take = True
        elif theirs < ours or their_id == our_id or their_id in our_seen:
            take = False
        else:
            take = our_id in their_seen or (their_id or "") > (our_id or "")
        if take:
            for name in (ts_field, event_field, seen_field, *rest):
                changes[name] = getattr(incoming, name)
        if theirs == ours:
            winner = changes.get(event_field, our_id)
            ids = _union(our_seen, their_seen, (our_id, their_id))
            seen = tuple(i for i in ids if i != winner)[-SEEN_MAX:]
            if seen != our_seen:
                changes[seen_field] = seen
            else:
                changes.pop(seen_field, None)
    if not changes:
        return Change.ignore(current, "not_newer")
    return Change(_evolve(current, **changes), changed=True)


def _union(*groups: Iterable[str | None]) -> tuple[str, ...]:
    """The ids of ``groups`` in order, each once (None left out)."""
    out: dict[str, None] = {}
    for group in groups:
        for i in group:
            if i is not None:
                out[i] = None
    return tuple(out)


# -- availability ----------------------------------------------------------------------


def availability_keys(officer: Officer) -> tuple[str, ...]:
    """The availability buckets an officer counts in: ``nbhd:``, ``npu:``, ``cluster:``.

    Only available officers with a known profile count, in the areas their last fix
    places them. An available officer with no fix yet counts in their home NPU.
    """
    if officer.status is not Status.AVAILABLE or not officer.has_profile:
        return ()
    if officer.neighbourhood is not None:
        return (
            f"nbhd:{officer.neighbourhood}",
            f"npu:{officer.npu}",
            f"cluster:{officer.cluster}",
        )
    if officer.home_npu is not None and not officer.has_fix:
        return (f"npu:{officer.home_npu}",)
    return ()


def counted_as(officer: Officer) -> tuple[str, ...]:
    """The counts an officer adds to in an availability bucket (see :func:`availability_of`):
    ``total``, their role, each of their skills."""
    role = () if officer.role is None else (f"role:{officer.role.value}",)
    return ("total", *role, *[f"skill:{skill}" for skill in officer.skills])


def count_officer(
    buckets: dict[str, Counter[str]], key: str, names: tuple[str, ...], sign: int
) -> Counter[str]:
    """Count an officer (``names``: :func:`counted_as`) in (``sign`` +1) or out (-1) of a
    bucket's counts, kept as the officers come and go; a count at zero is dropped (the
    bucket's counter may be left empty). Returns the bucket's counts."""
    counts = buckets.get(key)
    if counts is None:  # (not setdefault: that builds a Counter at every call)
        counts = buckets[key] = Counter()
    for name in names:
        counts[name] += sign
    if sign < 0:
        # only what was just counted down can reach zero (no count is kept at zero)
        for name in names:
            if name in counts and counts[name] <= 0:
                del counts[name]
    return counts


def availability_of(officers: Iterable[Officer]) -> Counter[str]:
    """Counts for one bucket: ``total``, ``role:<role>``, ``skill:<skill>``."""
    counts: Counter[str] = Counter()
    for officer in officers:
        counts["total"] += 1
        if officer.role is not None:
            counts[f"role:{officer.role.value}"] += 1
        for skill in officer.skills:
            counts[f"skill:{skill}"] += 1
    return counts


# -- incidents -------------------------------------------------------------------------


def apply_incident(record: IncidentRecord | None, event: Incident) -> Change[IncidentRecord | None]:
    """Take the handler's latest version of an incident.

    A closed incident is final: later updates are rejected, not applied.
    """
    if record is None:
        # A closed incident seen first is kept (as closed): a stray open version that
        # arrives later must not bring it back.
        return Change(IncidentRecord(event, created_ts=event.ts), changed=True)
    held = record.incident
    why = _stale(held.ts, held.event_id, record.incident_seen, event.ts, event.event_id)
    if why:
        return Change.ignore(record, why)
    if held.state is IncidentState.CLOSED:
        raise Rejected(f"incident {event.incident_id} is closed; updates are not accepted")
    seen = _seen_after(held.ts, held.event_id, record.incident_seen, event.ts)
    return Change(replace(record, incident=event, incident_seen=seen), changed=True)


def apply_deployment(
    record: IncidentRecord | None,
    event: Deployment,
    officers: Mapping[str, Officer],
) -> Change[IncidentRecord | None]:
    """Record an SDO decision on an incident.

    Raises :class:`Rejected` for an unknown or closed incident, :class:`UnknownOfficers`
    (a Rejected) for officers not known.
    An accepted or overridden deployment makes the incident ``resourced``.
    """
    if record is None:
        raise Rejected(f"deployment for unknown incident {event.incident_id}")
    held_ts, held_event, seen = record.decision_ts, record.decision_event, record.decision_seen
    why = _stale(held_ts, held_event, seen, event.ts, event.event_id)
    if why:
        return Change.ignore(record, why)
    if record.incident.state is IncidentState.CLOSED:
        raise Rejected(f"incident {event.incident_id} is closed")
    unknown = tuple(oid for oid in event.officer_ids if oid not in officers)
    if unknown:
        raise UnknownOfficers(
            f"deployment names unknown officer(s): {', '.join(unknown[:5])}", unknown
        )
    if event.decision is Decision.DECLINED:
        incident = record.incident
        assigned: tuple[str, ...] = ()
    else:
        incident = record.incident.model_copy(update={"state": IncidentState.RESOURCED})
        assigned = event.officer_ids
    new = replace(
        record,
        incident=incident,
        assigned=assigned,
        decision=event.decision,
        decision_ts=event.ts,
        decision_event=event.event_id,
        decided_by=event.by,
        decision_seen=_seen_after(held_ts, held_event, seen, event.ts),
    )
    return Change(new, changed=True)


def deployment_statuses(
    event: Deployment,
    previous: IncidentRecord | None = None,
    officers: Mapping[str, Officer] | None = None,
) -> list[OfficerStatus]:
    """The status events a deployment implies: each deployed officer is ``en_route``; and
    on a redeployment (an override of a decided incident, ``previous`` its record before),
    each officer it had sent who is left out and still ``en_route`` to it is stood down:
    ``available`` again (one already at the scene stays until they clear).

    Event ids derive from the deployment's, so a redelivered deployment yields the same
    status events, which the officer state then ignores as duplicates.
    """
    if event.decision is Decision.DECLINED:
        return []
    out = [
        OfficerStatus(
            event_id=f"{event.event_id}:{oid}",
            ts=event.ts,
            officer_id=oid,
            status=Status.EN_ROUTE,
            incident_id=event.incident_id,
            note=f"deployed by {event.by}",
        )
        for oid in event.officer_ids
    ]
    if previous is None or officers is None:
        return out
    for oid in previous.assigned:
        officer = officers.get(oid)
        if (
            oid not in event.officer_ids
            and officer is not None
            and officer.status is Status.EN_ROUTE
            and officer.incident_id == event.incident_id
        ):
            out.append(
                OfficerStatus(
                    event_id=f"{event.event_id}:{oid}:stood-down",
                    ts=event.ts,
                    officer_id=oid,
                    status=Status.AVAILABLE,
                    note=f"stood down by {event.by}: {event.incident_id} redeployed",
                )
            )
    return out
