"""The console's picture of the world, folded from Kafka events (pure: no I/O, no clock).

Theory of operation
-------------------
:class:`ConsoleView` applies every event the console reads (officer profile, status and
location; incidents; deployments; recommendations; alerts) with the same pure transitions
the worker uses (:mod:`sdo.domain.state`), so a console that restarts and re-reads the
topics from the beginning rebuilds exactly the same picture. Duplicates and out-of-order
events change nothing and produce no deltas.

:meth:`ConsoleView.apply` returns the *deltas*: JSON-ready messages (CONTRACT §6,
``docs/console-protocol.md``) that tell a connected page what changed. Each delta carries
the full new state of one thing (an officer, an incident, an availability bucket ...), so
a later delta for the same thing supersedes an earlier one; that is what lets the hub
coalesce them for a slow client. :meth:`ConsoleView.snapshot` is the whole picture.

The deployment topic is the audit trail of SDO decisions. A deployment makes its officers
``en_route`` (via :func:`sdo.domain.state.deployment_statuses`, whose event ids derive
from the deployment's, so a redelivery is a no-op) and the incident ``resourced``. Topics
are read in parallel, so a deployment can be read before its incident; it is held back
(a bounded number per incident) and applied when the incident arrives.

:meth:`ConsoleView.fold` is what the console calls with each event: :meth:`apply`, then,
for what was applied, the call's story (:mod:`sdo.console.timeline`) and the index of
what SDOs have recorded (deployments, notes, acknowledgements and console status
changes, by ``event_id``: :attr:`ConsoleView.recorded`), which answers a request sent
again or asked about after a reconnection. SDOs' notes and alert acknowledgements are
folded like the other events (an acknowledgement holds while its alert stays raised).

:meth:`ConsoleView.decide` validates an SDO decision against the picture and returns the
:class:`~sdo.events.Deployment` to publish (the rules are :mod:`sdo.console.rules`); it
raises :class:`~sdo.errors.Rejected` with a message for the SDO otherwise.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from sdo.console import rules
from sdo.console.timeline import Timelines
from sdo.domain.geo import Areas
from sdo.domain.state import (
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
)
from sdo.domain.waiting import Waiting
from sdo.errors import Rejected, UnknownOfficers
from sdo.events import (
    Alert,
    AlertAck,
    Decision,
    Deployment,
    Incident,
    IncidentNote,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
    rfc3339,
    to_json_dict,
)

__all__ = [
    "ACTIONS",
    "RECENT_DEPLOYMENTS",
    "ConsoleView",
    "Delta",
    "incident_json",
    "officer_json",
]

Delta = dict[str, Any]

#: Client action type -> the deployment decision it records.
ACTIONS: Final[dict[str, Decision]] = rules.DECISIONS
#: Events SDOs recorded, remembered by id (:attr:`ConsoleView.recorded`); the oldest go first.
RECORDED_MAX: Final = 200_000
#: Deployments kept for the snapshot's "recent decisions" list.
RECENT_DEPLOYMENTS: Final = 50
_HIDDEN_OFFICER_FIELDS: Final = frozenset(
    {"profile_event", "status_event", "fix_event", "profile_seen", "status_seen", "fix_seen"}
)


def officer_json(officer: Officer) -> dict[str, Any]:
    """An officer as the page sees it (the bookkeeping event ids left out)."""
    return officer.to_dict(_HIDDEN_OFFICER_FIELDS)


def incident_json(record: IncidentRecord) -> dict[str, Any]:
    """An incident as the page sees it: the handler's fields plus sdo's decision state."""
    out = to_json_dict(record.incident)
    out.pop("type", None)
    out["created_ts"] = rfc3339(record.created_ts)
    out["assigned"] = list(record.assigned)
    out["decision"] = record.decision.value if record.decision else None
    out["decided_by"] = record.decided_by
    out["decision_ts"] = rfc3339(record.decision_ts) if record.decision_ts else None
    out["decision_event"] = record.decision_event
    return out


def _event_json(event: Any) -> dict[str, Any]:
    out = to_json_dict(event)
    out.pop("type", None)
    return out


class ConsoleView:
    """Officers, incidents, recommendations, alerts and availability, from events."""

    def __init__(self, areas: Areas) -> None:
        self.areas = areas
        self.officers: dict[str, Officer] = {}
        self.incidents: dict[str, IncidentRecord] = {}
        self.recommendations: dict[str, Recommendation] = {}
        self.alerts: dict[tuple[str, str], Alert] = {}
        self.deployments: deque[Deployment] = deque(maxlen=RECENT_DEPLOYMENTS)
        #: bucket ("npu:X", "cluster:Y", "nbhd:Z") -> the counts of the available
        #: officers in it (``total``, ``role:``, ``skill:``; a bucket with none is absent)
        self._counts: dict[str, Counter[str]] = {}
        #: deployments read before their incident, waiting for it as the worker's World
        #: lets them (sdo.domain.waiting: the same bounds, so both refuse the same)
        self._waiting = Waiting()
        #: acknowledgements of raised alerts, by (kind, subject)
        self.acks: dict[tuple[str, str], AlertAck] = {}
        #: what SDOs recorded, by event id (see :func:`sdo.console.rules.summary`)
        self.recorded: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.timelines = Timelines()
        #: latest event time seen on any topic (the console's notion of "now")
        self.event_time: datetime | None = None
        self.applied = 0
        self.ignored: Counter[str] = Counter()

    # -- reading -----------------------------------------------------------------------

    def availability(self) -> dict[str, dict[str, int]]:
        """Every non-empty availability bucket with its counts (``total``, ``role:``, ``skill:``).

        Areas with no available officer are listed with ``total: 0`` so the page can
        show the gap (every NPU, cluster and neighbourhood of the area file).
        """
        out: dict[str, dict[str, int]] = {}
        for key in self._area_buckets():
            out[key] = dict(self._counts.get(key, Counter({"total": 0})))
        for key, counts in self._counts.items():
            out.setdefault(key, dict(counts))
        return out

    def _area_buckets(self) -> list[str]:
        keys = [f"npu:{npu}" for npu in self.areas.npus]
        keys += [f"cluster:{cid}" for cid in self.areas.clusters]
        keys += [f"nbhd:{nid}" for nid in self.areas.neighbourhoods]
        return keys

    def min_cover(self) -> dict[str, int]:
        return {cid: c.min_cover for cid, c in self.areas.clusters.items()}

    def snapshot(self) -> dict[str, Any]:
        """The whole picture, as the ``snapshot`` message (open incidents only)."""
        open_ids = [i for i, r in self.incidents.items() if r.is_open]
        return {
            "type": "snapshot",
            "event_time": rfc3339(self.event_time) if self.event_time else None,
            "officers": [officer_json(o) for o in self.officers.values()],
            "incidents": [incident_json(self.incidents[i]) for i in open_ids],
            "recommendations": [
                _event_json(self.recommendations[i]) for i in open_ids if i in self.recommendations
            ],
            "alerts": [_event_json(a) for a in self.alerts.values()],
            "acks": [_event_json(a) for a in self.acks.values()],
            "availability": self.availability(),
            "min_cover": self.min_cover(),
            "deployments": [_event_json(d) for d in self.deployments],
        }

    # -- folding events ----------------------------------------------------------------

    def apply(self, event: object) -> list[Delta]:
        """Fold one decoded event in; return the deltas to broadcast (maybe none)."""
        ts = getattr(event, "ts", None)
        if isinstance(ts, datetime) and (self.event_time is None or ts > self.event_time):
            self.event_time = ts
            due = self._waiting.next_due()
            if due is not None and due <= ts:
                # refused by the worker too, once its clock passes the same bound
                self.ignored["deployment_refused_after_waiting"] += len(self._waiting.expire(ts))
        match event:
            case OfficerLocation():
                officer = self.officers.get(event.officer_id)
                return self._officer(apply_location(officer, event, self.areas))
            case OfficerStatus():
                return self._officer(apply_status(self.officers.get(event.officer_id), event))
            case OfficerProfile():
                return self._officer(apply_profile(self.officers.get(event.officer_id), event))
            case Incident():
                return self._incident(event)
            case Deployment():
                return self._deployment(event)
            case Recommendation():
                return self._recommendation(event)
            case Alert():
                return self._alert(event)
            case IncidentNote():
                return self._note(event)
            case AlertAck():
                return self._ack(event)
        self.ignored["unhandled_type"] += 1
        return []

    def fold(self, event: object) -> list[Delta]:
        """:meth:`apply`, then what an applied event adds to its call's story and to
        :attr:`recorded`; an alert cleared takes its acknowledgement with it."""
        officer_before = (
            self.officers.get(event.officer_id) if isinstance(event, OfficerStatus) else None
        )
        incident_before = (
            self.incidents.get(event.incident_id) if isinstance(event, Incident) else None
        )
        deltas = self.apply(event)
        if not deltas:
            return deltas
        self._record(event)
        if isinstance(event, Alert) and not event.active:
            ack = self.acks.pop((event.kind.value, event.subject), None)
            if ack is not None:
                deltas.append(
                    {
                        "type": "alert_ack",
                        "ack": _event_json(ack),
                        "cleared": True,
                    }
                )
        deltas.extend(
            self.timelines.record(
                event, self, officer_before=officer_before, incident_before=incident_before
            )
        )
        return deltas

    def _record(self, event: object) -> None:
        """Index what an SDO recorded (:attr:`recorded`), once it is applied."""
        done = rules.summary(event)
        if done is not None:
            self.recorded[done["event_id"]] = done
            while len(self.recorded) > RECORDED_MAX:
                self.recorded.popitem(last=False)

    def active_alert(self, kind: str, subject: str) -> Alert | None:
        """The raised alert of that kind about that subject, if any."""
        for alert in self.alerts.values():
            if alert.kind.value == kind and alert.subject == subject and alert.active:
                return alert
        return None

    def _note(self, event: IncidentNote) -> list[Delta]:
        if event.event_id in self.recorded:
            self.ignored["duplicate"] += 1
            return []
        self.applied += 1
        return [{"type": "note", "note": _event_json(event)}]

    def _ack(self, event: AlertAck) -> list[Delta]:
        key = (event.kind.value, event.subject)
        held = self.acks.get(key)
        if held is not None:
            self.ignored["duplicate" if held.event_id == event.event_id else "acknowledged"] += 1
            return []
        if self.active_alert(*key) is None:
            self.ignored["ack_of_inactive_alert"] += 1
            return []
        self.applied += 1
        self.acks[key] = event
        return [{"type": "alert_ack", "ack": _event_json(event)}]

    def _officer(self, change: Any) -> list[Delta]:
        if not change.changed:
            self.ignored[change.ignored or "unchanged"] += 1
            return []
        self.applied += 1
        new: Officer = change.state
        old = self.officers.get(new.officer_id)
        self.officers[new.officer_id] = new
        deltas: list[Delta] = [{"type": "officer", "officer": officer_json(new)}]
        deltas.extend(self._reavail(old, new))
        if old is None:
            for held in self._waiting.arrived(self.officers):
                applied = self._deployment(held)
                if applied:
                    self._record(held)  # (what fold() does for the deployment that waited)
                deltas.extend(applied)
        return deltas

    def _reavail(self, old: Officer | None, new: Officer) -> list[Delta]:
        """The availability buckets an officer's change moved, counted again: kept as
        officers come and go (:func:`count_officer`, as the World keeps its own), so a
        change costs its own counts, not a count of every member (some thousands in a
        cluster)."""
        before = set(availability_keys(old)) if old is not None else set()
        after = set(availability_keys(new))
        # Buckets the officer left or joined; and, if role or skills changed, those stayed in.
        touched = before ^ after
        if old is not None and (old.role, old.skills) != (new.role, new.skills):
            touched |= before & after
        deltas: list[Delta] = []
        for key in sorted(touched):
            if old is not None and key in before:
                count_officer(self._counts, key, counted_as(old), -1)
            if key in after:
                count_officer(self._counts, key, counted_as(new), +1)
            counts = self._counts[key]
            if not counts:
                del self._counts[key]
            deltas.append(
                {"type": "availability", "key": key, "counts": dict(counts) or {"total": 0}}
            )
        return deltas

    def _incident(self, event: Incident) -> list[Delta]:
        try:
            change = apply_incident(self.incidents.get(event.incident_id), event)
        except Rejected:
            self.ignored["closed_incident_update"] += 1
            return []
        if not change.changed or change.state is None:
            self.ignored[change.ignored or "unchanged"] += 1
            return []
        self.applied += 1
        record: IncidentRecord = change.state
        self.incidents[record.incident_id] = record
        deltas: list[Delta] = [{"type": "incident", "incident": incident_json(record)}]
        if not record.is_open:
            self.recommendations.pop(record.incident_id, None)
        for held in self._waiting.release(record.incident_id):
            applied = self._deployment(held)
            if applied:
                self._record(held)  # (what fold() does for the deployment that waited)
            deltas.extend(applied)
        return deltas

    def _deployment(self, event: Deployment) -> list[Delta]:
        record = self.incidents.get(event.incident_id)
        if record is None:
            self._hold(event)
            return []
        try:
            change = apply_deployment(record, event, self.officers)
        except UnknownOfficers as exc:
            self._hold(event, exc.officer_ids[0])
            return []
        except Rejected:
            self.ignored["rejected_deployment"] += 1
            return []
        if not change.changed or change.state is None:
            self.ignored[change.ignored or "unchanged"] += 1
            return []
        self.applied += 1
        new: IncidentRecord = change.state
        self.incidents[new.incident_id] = new
        self.deployments.append(event)
        deltas: list[Delta] = [
            {"type": "deployment", "deployment": _event_json(event)},
            {"type": "incident", "incident": incident_json(new)},
        ]
        for status in deployment_statuses(event, record, self.officers):
            deltas.extend(self._officer(apply_status(self.officers.get(status.officer_id), status)))
        return deltas

    def _hold(self, event: Deployment, officer: str | None = None) -> None:
        """Hold a deployment for its incident, or for an officer it names, as the World
        does (sdo.domain.waiting)."""
        if self._waiting.hold(event, officer) is not None:
            self.ignored["deployment_refused_waiting"] += 1
            return
        self.ignored[
            "deployment_before_incident" if officer is None else "deployment_before_officer"
        ] += 1

    def _recommendation(self, event: Recommendation) -> list[Delta]:
        record = self.incidents.get(event.incident_id)
        if record is not None and not record.is_open:
            self.ignored["recommendation_for_closed"] += 1
            return []
        held = self.recommendations.get(event.incident_id)
        if held is not None and (
            held.recommendation_id == event.recommendation_id or _superseded(event, held)
        ):
            self.ignored["duplicate" if held.event_id == event.event_id else "out_of_order"] += 1
            return []
        self.applied += 1
        self.recommendations[event.incident_id] = event
        return [{"type": "recommendation", "recommendation": _event_json(event)}]

    def _alert(self, event: Alert) -> list[Delta]:
        key = (event.kind.value, event.subject)
        held = self.alerts.get(key)
        if held is not None and (held.event_id == event.event_id or event.ts < held.ts):
            self.ignored["duplicate" if held.event_id == event.event_id else "out_of_order"] += 1
            return []
        if not event.active and held is None:
            self.ignored["cleared_unknown_alert"] += 1
            return []
        self.applied += 1
        if event.active:
            self.alerts[key] = event
        else:
            del self.alerts[key]
        return [{"type": "alert", "alert": _event_json(event)}]

    # -- decisions ---------------------------------------------------------------------

    def decide(
        self, action: Mapping[str, Any], *, by: str, event_id: str, now: datetime
    ) -> Deployment:
        """The deployment an SDO action asks for, checked against the picture.

        ``action`` is the client message (``type`` one of ``accept``, ``override``,
        ``decline``). Raises :class:`Rejected` with a message meant for the SDO
        (:class:`sdo.console.rules.NeedsConfirmation` for an override to confirm).
        """
        return rules.deployment(self, action, by=by, event_id=event_id, now=now)


def _superseded(new: Recommendation, held: Recommendation) -> bool:
    """Whether ``new`` is older than the recommendation ``held`` for the same incident:
    by the incident's sequence number (a newer one may carry an older time: another
    worker's clock), by time where either has none (an older producer) or they tie."""
    if new.seq and held.seq and new.seq != held.seq:
        return new.seq < held.seq
    return new.ts < held.ts
