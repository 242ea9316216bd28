"""The story of each call, told from its events (pure: no I/O, no clock).

Theory of operation
-------------------
:class:`Timelines` keeps, per incident, a list of entries in event-time order: the call
received and each update the contact handler made, each recommendation (the grade and
whom it sends), each SDO decision (who, what, why, what it lacks), the status changes of
the officers on the call (and who made them, when made at a console), the alerts about it
and their acknowledgements, and SDOs' notes. :meth:`Timelines.record` is called by
:meth:`sdo.console.view.ConsoleView.fold` with each event the view *applied* (a duplicate
or stale event changes nothing and tells nothing), and returns the ``timeline`` deltas
for the pages. An entry arriving late (topics are read in parallel) is put in its place
by time. Entries are plain text made here, with callsigns as they were at the time, so
every page tells the same story.

Bounded: at most :data:`PER_INCIDENT` entries per call and :data:`INCIDENTS` calls (the
oldest call's story is forgotten first). A restarted console re-reads the topics and so
tells the same stories again.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sdo.events import (
    Alert,
    AlertAck,
    Decision,
    Deployment,
    Incident,
    IncidentNote,
    IncidentState,
    OfficerStatus,
    Recommendation,
    Status,
    rfc3339,
)

if TYPE_CHECKING:
    from sdo.console.view import ConsoleView
    from sdo.domain.state import IncidentRecord, Officer

__all__ = ["INCIDENTS", "PER_INCIDENT", "Timelines", "words"]

PER_INCIDENT: Final = 200
INCIDENTS: Final = 5000

_STATUS: Final = {
    Status.OFF_DUTY: "off duty",
    Status.AVAILABLE: "available",
    Status.EN_ROUTE: "en route",
    Status.AT_SCENE: "at scene",
    Status.COMMITTED: "committed",
    Status.REFRESHMENT: "on refreshment",
}


_ACRONYMS: Final = frozenset({"asb", "rtc", "ppu", "pcso", "npu", "cctv", "avl"})


def words(name: str) -> str:
    """A raw enumeration name as words (``criminal_damage`` -> ``criminal damage``,
    ``asb`` -> ``ASB``)."""
    return " ".join(w.upper() if w in _ACRONYMS else w for w in name.split("_"))


def _mmss(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


class Timelines:
    """Every incident's story (see the module doc)."""

    def __init__(self, per_incident: int = PER_INCIDENT, incidents: int = INCIDENTS) -> None:
        self.per_incident = per_incident
        self.max_incidents = incidents
        self._lines: OrderedDict[str, list[tuple[datetime, int, dict[str, Any]]]] = OrderedDict()
        self._seq = 0

    def entries(self, incident_id: str) -> list[dict[str, Any]]:
        """The story of one call, oldest first (empty if unknown)."""
        return [entry for _, _, entry in self._lines.get(incident_id, [])]

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self._lines

    def add(
        self,
        incident_id: str,
        ts: datetime,
        kind: str,
        text: str,
        *,
        event_id: str,
        by: str | None = None,
    ) -> dict[str, Any]:
        """Put one entry in its place; return its ``timeline`` delta."""
        entry: dict[str, Any] = {
            "ts": rfc3339(ts),
            "kind": kind,
            "text": text,
            "event_id": event_id,
        }
        if by is not None:
            entry["by"] = by
        lines = self._lines.get(incident_id)
        if lines is None:
            lines = self._lines[incident_id] = []
            while len(self._lines) > self.max_incidents:
                self._lines.popitem(last=False)
        self._seq += 1
        # by time; the sequence keeps arrival order among entries of one instant
        bisect.insort(lines, (ts, self._seq, entry), key=lambda row: row[:2])
        if len(lines) > self.per_incident:
            del lines[0]
        return {"type": "timeline", "incident_id": incident_id, "entry": entry}

    # -- what each event tells -----------------------------------------------------------

    def record(
        self,
        event: object,
        view: ConsoleView,
        *,
        officer_before: Officer | None = None,
        incident_before: IncidentRecord | None = None,
    ) -> list[dict[str, Any]]:
        """The entries an applied ``event`` adds (as ``timeline`` deltas)."""
        match event:
            case Incident():
                return self._incident(event, incident_before)
            case Recommendation():
                return [self._recommendation(event, view)]
            case Deployment():
                return [self._deployment(event, view)]
            case OfficerStatus():
                return self._status(event, view, officer_before)
            case Alert():
                return self._alert(event)
            case AlertAck():
                if event.subject not in view.incidents:
                    return []
                return [
                    self.add(
                        event.subject,
                        event.ts,
                        "ack",
                        f"{event.by} acknowledged the {words(event.kind.value)} alert",
                        event_id=event.event_id,
                        by=event.by,
                    )
                ]
            case IncidentNote():
                return [
                    self.add(
                        event.incident_id,
                        event.ts,
                        "note",
                        event.text,
                        event_id=event.event_id,
                        by=event.by,
                    )
                ]
        return []

    def _incident(self, event: Incident, before: IncidentRecord | None) -> list[dict[str, Any]]:
        iid = event.incident_id
        if before is None:
            parts = [f"Call received: {words(event.category)}"]
            if event.summary:
                parts[0] += f" — {event.summary}"
            if event.grade is not None:
                parts.append(f"handler's grade {event.grade}")
            if event.required_skills:
                parts.append("needs " + ", ".join(words(s) for s in event.required_skills))
            if event.officers_required > 1:
                parts.append(f"{event.officers_required} officers needed")
            return [self.add(iid, event.ts, "call", "; ".join(parts), event_id=event.event_id)]
        old = before.incident
        if event.state is not old.state:
            text = {
                IncidentState.OPEN: "Reopened",
                IncidentState.RESOURCED: "Resourced",
                IncidentState.CLOSED: "Closed",
            }[event.state]
            return [self.add(iid, event.ts, "call", text, event_id=event.event_id)]
        changes = []
        if event.grade != old.grade:
            changes.append(f"handler's grade {old.grade or '–'} → {event.grade or '–'}")
        if event.required_skills != old.required_skills:
            skills = ", ".join(words(s) for s in event.required_skills) or "none"
            changes.append(f"needs {skills}")
        if event.officers_required != old.officers_required:
            changes.append(f"{event.officers_required} officer(s) needed")
        if event.thrive != old.thrive:
            changes.append("THRIVE+ answers changed")
        if event.summary != old.summary and event.summary:
            changes.append(f"“{event.summary}”")
        if (event.lat, event.lon) != (old.lat, old.lon):
            changes.append("location moved")
        text = "Updated by the contact handler" + (": " + "; ".join(changes) if changes else "")
        return [self.add(iid, event.ts, "call", text, event_id=event.event_id)]

    def _recommendation(self, event: Recommendation, view: ConsoleView) -> dict[str, Any]:
        first = not any(entry["kind"] == "grade" for entry in self.entries(event.incident_id))
        head = "Graded" if first else "Recommendation revised: grade"
        text = f"{head} {event.grade} ({words(event.response.value)})"
        if event.reasons:
            text += ": " + "; ".join(event.reasons[:2])
        if event.recommended:
            sent = []
            for oid in event.recommended:
                cand = next((c for c in event.candidates if c.officer_id == oid), None)
                name = cand.callsign if cand is not None else _callsign(view, oid)
                eta = f" (ETA {_mmss(cand.eta_s)})" if cand and cand.eta_s is not None else ""
                sent.append(name + eta)
            text += " · recommends " + ", ".join(sent)
        elif event.service:
            text += f" · refer to {event.service}"
        else:
            text += " · no officer to recommend"
        if event.shortfalls:
            text += " · short: " + "; ".join(event.shortfalls)
        return self.add(event.incident_id, event.ts, "grade", text, event_id=event.event_id)

    def _deployment(self, event: Deployment, view: ConsoleView) -> dict[str, Any]:
        names = ", ".join(_callsign(view, o) for o in event.officer_ids)
        if event.decision is Decision.ACCEPTED:
            text = f"Accepted: {names} sent" if names else "Accepted: referred, nobody sent"
        elif event.decision is Decision.OVERRIDDEN:
            text = f"Overridden: {names} sent instead"
        else:
            text = "Declined: nobody sent"
        if event.reason:
            text += f" — “{event.reason}”"
        if event.shortfalls:
            text += " · " + "; ".join(event.shortfalls)
        return self.add(
            event.incident_id,
            event.ts,
            "decision",
            f"{event.by}: {text}",
            event_id=event.event_id,
            by=event.by,
        )

    def _status(
        self, event: OfficerStatus, view: ConsoleView, before: Officer | None
    ) -> list[dict[str, Any]]:
        calls = {event.incident_id, before.incident_id if before is not None else None} - {None}
        name = _callsign(view, event.officer_id)
        text = f"{name} {_STATUS[event.status]}"
        if event.note:
            text += f" ({event.note})"
        if event.by:
            text += f" — set by {event.by}"
        return [
            self.add(iid, event.ts, "officer", text, event_id=event.event_id, by=event.by)
            for iid in sorted(c for c in calls if c is not None and c in view.incidents)
        ]

    def _alert(self, event: Alert) -> list[dict[str, Any]]:
        if event.subject not in self._lines:
            return []  # about an area or an officer, not a call
        text = (
            f"Alert ({event.severity.value}): {event.message}"
            if event.active
            else f"Alert cleared: {words(event.kind.value)}"
        )
        return [self.add(event.subject, event.ts, "alert", text, event_id=event.event_id)]


def _callsign(view: ConsoleView, officer_id: str) -> str:
    officer = view.officers.get(officer_id)
    return (officer.callsign if officer is not None else None) or officer_id
