"""The server's rules for every console action (pure: no I/O, no clock).

Theory of operation
-------------------
A page only *asks*: each action (accept, override, decline, a note, an alert's
acknowledgement, an officer's status change) is checked here against the console's
picture (:class:`~sdo.console.view.ConsoleView`) and turned into the contract event to
publish, or refused with :class:`~sdo.errors.Rejected` and a message meant for the SDO.
Nothing the page claims (an officer's status, what a call needs) is trusted.

An override names officers the SDO chose. One who is off duty, on a refreshment break
(except for a grade 1 call), or en route to, at, or committed to another job is a
*conflict*: the override is refused with :class:`NeedsConfirmation`, listing them, unless
the action says ``send_anyway`` (the page asks the SDO to confirm, with the override's
reason); it is then recorded with each conflict in the deployment's ``shortfalls``. What
the chosen officers lack for the call (a required skill none of them holds, fewer officers
than it needs) is never a refusal: it is shown in the form and recorded as a shortfall.

:func:`summary` is what the console remembers of each event it published (and of every
deployment, note, acknowledgement and console status change it reads back), so a request
sent again, or asked about after a reconnection, is answered from what Kafka holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from sdo.errors import Rejected
from sdo.events import (
    AlertAck,
    AlertKind,
    Decision,
    Deployment,
    IncidentNote,
    IncidentState,
    OfficerStatus,
    Recommendation,
    Status,
)

if TYPE_CHECKING:
    from sdo.console.view import ConsoleView
    from sdo.domain.state import IncidentRecord, Officer

__all__ = [
    "DECISIONS",
    "STATUS_CHANGES",
    "NeedsConfirmation",
    "Review",
    "alert_ack",
    "deployment",
    "grade_of",
    "note",
    "review_officers",
    "status_change",
    "summary",
]

#: Client action type -> the deployment decision it records.
DECISIONS: Final[dict[str, Decision]] = {
    "accept": Decision.ACCEPTED,
    "override": Decision.OVERRIDDEN,
    "decline": Decision.DECLINED,
}
#: Status changes an SDO may make from the console: name -> (the statuses it applies to,
#: the status it sets).
STATUS_CHANGES: Final[dict[str, tuple[frozenset[Status], Status]]] = {
    "at_scene": (frozenset({Status.EN_ROUTE}), Status.AT_SCENE),
    "stand_down": (frozenset({Status.EN_ROUTE, Status.AT_SCENE}), Status.AVAILABLE),
    "available": (
        frozenset({Status.AT_SCENE, Status.COMMITTED, Status.REFRESHMENT}),
        Status.AVAILABLE,
    ),
}
_STATUS_WORDS: Final = {
    Status.OFF_DUTY: "off duty",
    Status.AVAILABLE: "available",
    Status.EN_ROUTE: "en route",
    Status.AT_SCENE: "at scene",
    Status.COMMITTED: "committed",
    Status.REFRESHMENT: "on a refreshment break",
}
MAX_NOTE_CHARS: Final = 1000


class NeedsConfirmation(Rejected):
    """An override the SDO must confirm (``send_anyway``): ``problems`` says why;
    ``decision_event``, if the call was decided since the form was opened, the decision
    the SDO is now shown (sent back as ``seen_decision``, it confirms replacing it)."""

    def __init__(
        self, message: str, problems: tuple[str, ...], decision_event: str | None = None
    ) -> None:
        super().__init__(message)
        self.problems = problems
        self.decision_event = decision_event


def _stale(record: IncidentRecord, action: Mapping[str, Any]) -> None:
    """An override made on a form opened before the call's latest decision (another SDO's,
    or the dispatcher's) must confirm replacing it: ``seen_decision`` is the decision the
    form was opened on (None: undecided). Without the field, nothing is checked."""
    if "seen_decision" not in action:
        return
    seen = action["seen_decision"]
    if seen is not None and not isinstance(seen, str):
        raise Rejected("seen_decision must be a string or null")
    if seen == record.decision_event or record.decision is None:
        return
    problem = (
        f"{record.decision.value} by {record.decided_by} since this form was opened: "
        "sending replaces it"
    )
    raise NeedsConfirmation(f"confirm to replace it: {problem}", (problem,), record.decision_event)


class Review(BaseModel):
    """What sending some officers to a call means: conflicts need confirming; shortfalls
    are recorded."""

    conflicts: tuple[str, ...] = ()
    shortfalls: tuple[str, ...] = ()


def _name(officer: Officer) -> str:
    return officer.callsign or officer.officer_id


def grade_of(view: ConsoleView, incident_id: str) -> int | None:
    """The call's grade: its latest recommendation's, else the handler's."""
    rec = view.recommendations.get(incident_id)
    if rec is not None:
        return rec.grade
    record = view.incidents.get(incident_id)
    return None if record is None else record.incident.grade


def _conflict(officer: Officer, incident_id: str, grade: int | None, now: datetime) -> str | None:
    name, status = _name(officer), officer.status
    if status is Status.OFF_DUTY:
        return f"{name} is off duty"
    if status in (Status.EN_ROUTE, Status.AT_SCENE, Status.COMMITTED):
        if officer.incident_id == incident_id:
            return None  # already on this call
        where = f" ({officer.incident_id})" if officer.incident_id else ""
        return f"{name} is {_STATUS_WORDS[status]}{where}"
    if status is Status.REFRESHMENT and grade != 1:
        return f"{name} is on a refreshment break (only a grade 1 call may take them)"
    if officer.shift_end is not None and officer.shift_end <= now:
        return f"{name}'s shift has ended"
    return None


def review_officers(
    view: ConsoleView, record: IncidentRecord, officer_ids: tuple[str, ...], now: datetime
) -> Review:
    """Conflicts and shortfalls of sending ``officer_ids`` (all known) to ``record``."""
    incident = record.incident
    grade = grade_of(view, incident.incident_id)
    officers = [view.officers[o] for o in officer_ids]
    conflicts = tuple(
        c for o in officers if (c := _conflict(o, incident.incident_id, grade, now)) is not None
    )
    held = {skill for o in officers for skill in o.skills}
    shortfalls = [
        f"nobody sent holds {skill.replace('_', ' ')}"
        for skill in incident.required_skills
        if skill not in held
    ]
    if len(officers) < incident.officers_required:
        shortfalls.append(f"{len(officers)} officer(s) sent, {incident.officers_required} needed")
    return Review(conflicts=conflicts, shortfalls=tuple(shortfalls))


def _incident(view: ConsoleView, action: Mapping[str, Any]) -> IncidentRecord:
    incident_id = action.get("incident_id")
    if not isinstance(incident_id, str) or not incident_id:
        raise Rejected("incident_id is required")
    record = view.incidents.get(incident_id)
    if record is None:
        raise Rejected(f"incident {incident_id} is not known to this console")
    return record


def _text(action: Mapping[str, Any], name: str) -> str | None:
    value = action.get(name)
    if value is not None and not isinstance(value, str):
        raise Rejected(f"{name} must be a string")
    return (value.strip() or None) if value else None


def _officer_ids(action: Mapping[str, Any]) -> tuple[str, ...]:
    raw = action.get("officer_ids")
    if raw is not None and (not isinstance(raw, list) or not all(isinstance(o, str) for o in raw)):
        raise Rejected("officer_ids must be a list of strings")
    return tuple(dict.fromkeys(raw or ()))


_M = TypeVar("_M", bound=BaseModel)


def _built(factory: type[_M], **fields: Any) -> _M:
    try:
        return factory(**fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise Rejected(f"invalid {factory.__name__.lower()}: {first['msg']}") from None


def deployment(
    view: ConsoleView, action: Mapping[str, Any], *, by: str, event_id: str, now: datetime
) -> Deployment:
    """The deployment an accept / override / decline asks for (see the module doc)."""
    kind = action.get("type")
    decision = DECISIONS.get(kind) if isinstance(kind, str) else None
    if decision is None:
        raise Rejected(f"unknown action {kind!r}")
    record = _incident(view, action)
    incident_id = record.incident_id
    if record.state is IncidentState.CLOSED:
        raise Rejected(f"incident {incident_id} is closed")
    if decision is not Decision.OVERRIDDEN and record.decision is not None:
        raise Rejected(
            f"incident {incident_id} was already {record.decision.value} by "
            f"{record.decided_by}; override to redeploy"
        )
    rec_id = _text(action, "recommendation_id")
    reason = _text(action, "reason")
    officer_ids = _officer_ids(action)
    rec = view.recommendations.get(incident_id)
    shortfalls: tuple[str, ...] = ()
    if decision is Decision.ACCEPTED:
        officer_ids = _accepted_officers(rec, rec_id, officer_ids, incident_id)
        shortfalls = rec.shortfalls if rec is not None else ()
    elif decision is Decision.OVERRIDDEN:
        if not officer_ids:
            raise Rejected("override needs at least one officer")
        if not reason:
            raise Rejected("override needs a reason")
        unknown = [o for o in officer_ids if o not in view.officers]
        if unknown:
            raise Rejected(f"unknown officer(s): {', '.join(unknown[:5])}")
        _stale(record, action)
        review = review_officers(view, record, officer_ids, now)
        if review.conflicts and action.get("send_anyway") is not True:
            raise NeedsConfirmation(
                "confirm to send anyway: " + "; ".join(review.conflicts), review.conflicts
            )
        shortfalls = review.shortfalls + tuple(f"sent anyway: {c}" for c in review.conflicts)
    else:
        if not reason:
            raise Rejected("decline needs a reason")
        officer_ids = ()
    return _built(
        Deployment,
        event_id=event_id,
        ts=now,
        incident_id=incident_id,
        decision=decision,
        officer_ids=officer_ids,
        by=by,
        reason=reason,
        recommendation_id=rec_id or (rec.recommendation_id if rec else None),
        shortfalls=shortfalls,
    )


def _accepted_officers(
    rec: Recommendation | None,
    rec_id: str | None,
    officer_ids: tuple[str, ...],
    incident_id: str,
) -> tuple[str, ...]:
    if rec is None:
        raise Rejected(f"there is no recommendation for incident {incident_id} yet")
    if rec_id != rec.recommendation_id:
        raise Rejected("that recommendation has been superseded; review the current one")
    if not rec.recommended and rec.service is None:
        raise Rejected("the recommendation names no officers; override or decline")
    if officer_ids and officer_ids != rec.recommended:
        raise Rejected("accept takes the recommended officers as given; use override")
    return rec.recommended


def note(
    view: ConsoleView, action: Mapping[str, Any], *, by: str, event_id: str, now: datetime
) -> IncidentNote:
    """A note on a known incident (open or closed: a call's story may be finished later)."""
    record = _incident(view, action)
    text = _text(action, "text")
    if not text:
        raise Rejected("a note needs some text")
    if len(text) > MAX_NOTE_CHARS:
        raise Rejected(f"a note is at most {MAX_NOTE_CHARS} characters")
    return _built(
        IncidentNote, event_id=event_id, ts=now, incident_id=record.incident_id, text=text, by=by
    )


def alert_ack(
    view: ConsoleView, action: Mapping[str, Any], *, by: str, event_id: str, now: datetime
) -> AlertAck:
    """The acknowledgement of an alert that is raised and not yet acknowledged."""
    kind, subject = action.get("kind"), action.get("subject")
    if kind not in {k.value for k in AlertKind} or not isinstance(subject, str):
        raise Rejected("an acknowledgement names the alert's kind and subject")
    alert = view.active_alert(str(kind), subject)
    if alert is None:
        raise Rejected(f"there is no {str(kind).replace('_', ' ')} alert for {subject} now")
    held = view.acks.get((str(kind), subject))
    if held is not None:
        raise Rejected(f"already acknowledged by {held.by}")
    return _built(
        AlertAck,
        event_id=event_id,
        ts=now,
        kind=kind,
        subject=subject,
        alert_event_id=alert.event_id,
        by=by,
    )


def status_change(
    view: ConsoleView, action: Mapping[str, Any], *, by: str, event_id: str, now: datetime
) -> OfficerStatus:
    """An officer's status changed from the console: ``change`` is one of
    :data:`STATUS_CHANGES` (at scene; stand down, back to available; available)."""
    officer_id, change = action.get("officer_id"), action.get("change")
    if not isinstance(officer_id, str) or officer_id not in view.officers:
        raise Rejected(f"officer {officer_id!r} is not known to this console")
    if change not in STATUS_CHANGES:
        raise Rejected(f"change must be one of {', '.join(STATUS_CHANGES)}")
    officer = view.officers[officer_id]
    applies_to, new = STATUS_CHANGES[str(change)]
    if officer.status not in applies_to:
        raise Rejected(
            f"{_name(officer)} is {_STATUS_WORDS[officer.status]}: "
            f"{str(change).replace('_', ' ')} does not apply"
        )
    incident_id = officer.incident_id if new is Status.AT_SCENE else None
    note_text = (
        f"stood down from {officer.incident_id}"
        if change == "stand_down" and officer.incident_id
        else None
    )
    return _built(
        OfficerStatus,
        event_id=event_id,
        ts=now,
        officer_id=officer_id,
        status=new,
        incident_id=incident_id,
        note=note_text,
        by=by,
    )


def summary(event: Any) -> dict[str, Any] | None:
    """What an ``ack`` says of a published event (and what a ``resolve`` answers), or
    ``None`` for events the console does not answer for."""
    match event:
        case Deployment():
            return {
                "action": "decision",
                "event_id": event.event_id,
                "incident_id": event.incident_id,
                "decision": event.decision.value,
                "officer_ids": list(event.officer_ids),
                "shortfalls": list(event.shortfalls),
                "by": event.by,
            }
        case IncidentNote():
            return {
                "action": "note",
                "event_id": event.event_id,
                "incident_id": event.incident_id,
                "by": event.by,
            }
        case AlertAck():
            return {
                "action": "ack_alert",
                "event_id": event.event_id,
                "kind": event.kind.value,
                "subject": event.subject,
                "by": event.by,
            }
        case OfficerStatus() if event.by is not None:
            return {
                "action": "set_status",
                "event_id": event.event_id,
                "officer_id": event.officer_id,
                "status": event.status.value,
                "by": event.by,
            }
    return None
