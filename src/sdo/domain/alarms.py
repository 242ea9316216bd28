"""The World's timers, and the raise and clear of every alert (pure).

Theory of operation
-------------------
Some alerts are raised by event time passing (CONTRACT §1): an incident's deadline (and
the early warning before it) with no deployment, an available officer's last AVL fix
growing stale. They wait here as timers, a heap of ``(due, sequence, kind, subject,
token)``, fired by the World as event time passes them (:meth:`World.advance`); a stale
timer is moved on lazily when it fires (one per officer, not one per fix). Cover gaps are
raised and cleared as availability counts change.

Every alert has an identity, its kind and subject (:func:`sdo.events.alert_key`, its
Kafka key, so a raise and its clear share a partition), and is raised once and cleared
once: :class:`Alarms` keeps what is raised (clusters in a gap, officers stale, incidents
past a deadline) and builds an alert only on a change. An incident's deadline alerts are
cleared when it no longer awaits a decision (deployed, declined, closed). Every alert
carries the World's clock (``now``), never an older triggering time; the moment a
deadline passed is in its message.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import Final

from sdo.domain.grading import Grading
from sdo.events import Alert, AlertKind, Severity

__all__ = ["WARN_AT", "Alarms", "Timer", "alert"]

#: Share of the grade deadline at which an early warning is raised (grade 2: 40 of 60 min).
WARN_AT: Final = 2 / 3
#: A timer: (due, sequence, kind: "stale" | "warn" | "deadline", subject, token).
Timer = tuple[datetime, int, str, str, str]
_KIND: Final = {"warn": AlertKind.UNRESOURCED_WARNING, "deadline": AlertKind.UNRESOURCED}


def alert(
    kind: AlertKind,
    severity: Severity,
    subject: str,
    message: str,
    now: datetime,
    *,
    area_id: str | None = None,
    active: bool = True,
) -> Alert:
    """An alert (a clear when not ``active``, always of severity info), stamped ``now``."""
    return Alert(
        event_id=f"alert:{kind.value}:{subject}:{now.isoformat()}:{int(active)}",
        ts=now,
        kind=kind,
        severity=severity if active else Severity.INFO,
        subject=subject,
        message=message,
        area_id=area_id,
        active=active,
    )


class Alarms:
    """Timers, and which alerts are raised (see the module docstring)."""

    __slots__ = ("deadlines", "gaps", "seq", "stale", "stale_timers", "timers")

    def __init__(self) -> None:
        self.timers: list[Timer] = []
        self.seq = 0
        #: officers with a stale-location alert raised
        self.stale: set[str] = set()
        #: officers with a stale timer waiting (one each)
        self.stale_timers: set[str] = set()
        #: clusters with a cover-gap alert raised
        self.gaps: set[str] = set()
        #: incident id -> the deadline alerts raised for it (kind + grade token)
        self.deadlines: dict[str, set[str]] = {}

    # -- timers -------------------------------------------------------------------------

    def schedule(self, due: datetime, kind: str, subject: str, token: str) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (due, self.seq, kind, subject, token))

    def watch_stale(self, officer_id: str, due: datetime, token: str = "") -> None:
        """Give an officer their one pending stale timer, due at ``due``."""
        self.stale_timers.add(officer_id)
        self.schedule(due, "stale", officer_id, token)

    def schedule_deadlines(self, incident_id: str, created: datetime, grading: Grading) -> None:
        """The early-warning and deadline timers of an incident awaiting a decision."""
        if grading.deadline_s is None:
            return
        token = str(grading.grade)
        self.schedule(
            created + timedelta(seconds=grading.deadline_s * WARN_AT), "warn", incident_id, token
        )
        self.schedule(
            created + timedelta(seconds=grading.deadline_s), "deadline", incident_id, token
        )

    def head(self, k: int) -> list[Timer]:
        """The ``k`` timers due first, in the order they fire. Read off the heap from its
        root (a parent fires before its children), in O(k log k) however many wait."""
        timers = self.timers
        out: list[Timer] = []
        front = [(timers[0], 0)] if timers else []
        while front and len(out) < k:
            timer, at = heapq.heappop(front)
            out.append(timer)
            for child in (2 * at + 1, 2 * at + 2):
                if child < len(timers):
                    heapq.heappush(front, (timers[child], child))
        return out

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever a timer is scheduled or fired."""
        return self.seq, len(self.timers)

    # -- alerts -------------------------------------------------------------------------

    def cover(self, cluster_id: str, count: int, min_cover: int, now: datetime) -> Alert | None:
        """The cover-gap alert of a cluster whose count changed, if its gap opened or
        closed (None: no change)."""
        in_gap = count < min_cover
        if in_gap == (cluster_id in self.gaps):
            return None
        if in_gap:
            self.gaps.add(cluster_id)
            message = (
                f"cluster {cluster_id}: {count} response officers available, "
                f"minimum cover {min_cover}"
            )
        else:
            self.gaps.discard(cluster_id)
            message = f"cluster {cluster_id}: cover restored ({count} of {min_cover})"
        return alert(
            AlertKind.COVER_GAP,
            Severity.CRITICAL,
            cluster_id,
            message,
            now,
            area_id=cluster_id,
            active=in_gap,
        )

    def stale_raise(
        self,
        officer_id: str,
        callsign: str | None,
        cluster: str | None,
        minutes: float,
        now: datetime,
    ) -> Alert | None:
        """An officer's last fix is stale: the alert, unless raised already."""
        if officer_id in self.stale:
            return None
        self.stale.add(officer_id)
        return alert(
            AlertKind.STALE_LOCATION,
            Severity.WARNING,
            officer_id,
            f"{callsign or officer_id} available but last AVL fix is over {minutes:.0f} min old",
            now,
            area_id=cluster,
        )

    def stale_clear(
        self, officer_id: str, callsign: str | None, cluster: str | None, now: datetime
    ) -> Alert | None:
        """An officer's location is current again (or they are no longer available): the
        clear of their stale-location alert, if one is raised."""
        if officer_id not in self.stale:
            return None
        self.stale.discard(officer_id)
        return alert(
            AlertKind.STALE_LOCATION,
            Severity.INFO,
            officer_id,
            f"{callsign or officer_id}: location current again",
            now,
            area_id=cluster,
            active=False,
        )

    def deadline(
        self,
        kind: str,
        incident_id: str,
        grading: Grading,
        due: datetime,
        created: datetime,
        now: datetime,
    ) -> Alert | None:
        """A deadline timer of an incident still awaiting a decision fired: its alert,
        unless raised already (once per incident, kind and grade)."""
        mark = kind + str(grading.grade)
        raised = self.deadlines.setdefault(incident_id, set())
        if mark in raised:
            return None
        raised.add(mark)
        minutes = (due - created).total_seconds() / 60
        deadline_min = grading.deadline_s // 60 if grading.deadline_s else 0
        if kind == "warn":
            return alert(
                AlertKind.UNRESOURCED_WARNING,
                Severity.WARNING,
                incident_id,
                f"grade {grading.grade} incident {incident_id} unresourced after "
                f"{minutes:.0f} min (deadline {deadline_min} min)",
                now,
            )
        return alert(
            AlertKind.UNRESOURCED,
            Severity.CRITICAL,
            incident_id,
            f"grade {grading.grade} incident {incident_id} past its {minutes:.0f} min "
            "deadline with no deployment",
            now,
        )

    def resolved(self, incident_id: str, why: str, now: datetime) -> list[Alert]:
        """The incident no longer awaits a decision: the clears of its deadline alerts."""
        raised = self.deadlines.pop(incident_id, None)
        if not raised:
            return []
        kinds = sorted({_KIND[mark.rstrip("0123456789")] for mark in raised})
        return [
            alert(
                kind, Severity.INFO, incident_id, f"incident {incident_id} {why}", now, active=False
            )
            for kind in kinds
        ]
