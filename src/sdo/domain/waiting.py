"""Late but valid: deployments that arrive before their incident, or before an officer
they name, wait for it (pure).

Kafka orders records within a partition only, and a deployment can reach a consumer
before the incident it decides (another partition, a worker catching up, a console that
reads topics side by side), or before an officer it sends is known (with several workers,
an officer of another worker's partitions is known once that worker has written them to
the officers table: sdo.stream.mirror). Refusing it at once would lose an SDO's decision.
So it waits, bounded two ways, and the same way in the worker's World and in every
console's view:

* by event time: a deployment waits until event time is :data:`WAIT` past its own ``ts``;
  then it is refused ("deployment for unknown incident ...: waited ...", or "deployment
  names unknown officer ...: waited ...");
* by count: at most :data:`PER_INCIDENT` per incident or officer and :data:`INCIDENTS`
  incidents and officers waited for; one more is refused at once.

When its incident (:meth:`Waiting.release`) or officer (:meth:`Waiting.arrived`) is
known, the deployments waiting for it are handed back in arrival order, to be applied
then (one naming another unknown officer then waits for that one, until the same time).
A redelivered deployment already waiting is not held twice.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Container
from datetime import datetime, timedelta
from typing import Final

from sdo.events import Deployment

__all__ = ["INCIDENTS", "PER_INCIDENT", "WAIT", "Waiting"]

#: Event time a deployment waits for its incident or officer.
WAIT: Final = timedelta(minutes=10)
#: Deployments held per incident or officer not yet seen, and those waited for at once.
PER_INCIDENT: Final = 8
INCIDENTS: Final = 1000

#: What a deployment waits for: its incident, or an officer it names.
_INCIDENT: Final = "incident"
_OFFICER: Final = "officer"


def _unknown(kind: str, subject: str) -> str:
    if kind == _OFFICER:
        return f"deployment names unknown officer {subject}"
    return f"deployment for unknown incident {subject}"


class Waiting:
    """Deployments waiting for their incident or an officer (see the module docstring)."""

    __slots__ = ("_due", "_held", "_officers")

    def __init__(self) -> None:
        #: (what, incident or officer id) -> the deployments waiting for it
        self._held: dict[tuple[str, str], list[Deployment]] = {}
        #: (refused at, what, id, event id), earliest first
        self._due: list[tuple[datetime, str, str, str]] = []
        #: the officers waited for, in the order first waited for (looked at on every
        #: event the World applies: usually empty)
        self._officers: dict[str, None] = {}

    def __len__(self) -> int:
        return sum(len(h) for h in self._held.values())

    def hold(self, event: Deployment, officer: str | None = None) -> str | None:
        """Hold ``event`` for its incident, or for ``officer`` (named by it, not known);
        None if held (or held already), else why it cannot wait (then it is refused now)."""
        key = (_INCIDENT, event.incident_id) if officer is None else (_OFFICER, officer)
        held = self._held.get(key)
        if held is None:
            if len(self._held) >= INCIDENTS:
                return f"{_unknown(*key)} ({INCIDENTS} incidents or officers already awaited)"
            held = self._held[key] = []
            if officer is not None:
                self._officers[officer] = None
        if any(h.event_id == event.event_id for h in held):
            return None
        if len(held) >= PER_INCIDENT:
            return f"{_unknown(*key)} ({PER_INCIDENT} deployments already wait for it)"
        held.append(event)
        heapq.heappush(self._due, (event.ts + WAIT, key[0], key[1], event.event_id))
        return None

    def release(self, incident_id: str) -> list[Deployment]:
        """The deployments that waited for ``incident_id`` (now seen), in arrival order."""
        return self._held.pop((_INCIDENT, incident_id), [])

    def arrived(self, known: Container[str]) -> list[Deployment]:
        """The deployments that waited for an officer now in ``known``, in arrival order
        per officer (officers in the order they were first waited for)."""
        if not self._officers:
            return []
        out: list[Deployment] = []
        for oid in [oid for oid in self._officers if oid in known]:
            del self._officers[oid]
            out.extend(self._held.pop((_OFFICER, oid), []))
        return out

    def expire(self, now: datetime) -> list[tuple[Deployment, str]]:
        """The deployments that waited their time by event time ``now``, with the reason."""
        out: list[tuple[Deployment, str]] = []
        due = self._due
        minutes = WAIT.total_seconds() / 60
        while due and due[0][0] <= now:
            _, kind, subject, event_id = heapq.heappop(due)
            key = (kind, subject)
            held = self._held.get(key)
            if held is None:
                continue  # released meanwhile
            for n, event in enumerate(held):
                if event.event_id == event_id:
                    del held[n]
                    whom = "them" if kind == _OFFICER else "it"
                    out.append(
                        (
                            event,
                            f"{_unknown(kind, subject)} (waited {minutes:.0f} min of event "
                            f"time for {whom})",
                        )
                    )
                    break
            if not held:
                del self._held[key]
                if kind == _OFFICER:
                    del self._officers[subject]
        return out

    def give_up(self) -> list[tuple[Deployment, str]]:
        """Every deployment still waiting, refused: what it waits for will not come (the
        end of a log), in arrival order per incident or officer."""
        out = [
            (
                event,
                f"{_unknown(kind, subject)} "
                + (
                    "(that officer never appeared)"
                    if kind == _OFFICER
                    else "(its incident never came)"
                ),
            )
            for (kind, subject), held in self._held.items()
            for event in held
        ]
        self._held.clear()
        self._due.clear()
        self._officers.clear()
        return out

    def forget(self, incident_ids: Collection[str]) -> None:
        """Drop the deployments of ``incident_ids`` (another worker's now: it reads them
        again from its partitions' committed offsets)."""
        for key in list(self._held):
            held = [d for d in self._held[key] if d.incident_id not in incident_ids]
            if held:
                self._held[key] = held
                continue
            del self._held[key]
            if key[0] == _OFFICER:
                del self._officers[key[1]]

    def ids(self) -> set[str]:
        """The event ids of the deployments waiting."""
        return {d.event_id for held in self._held.values() for d in held}

    def next_due(self) -> datetime | None:
        """When the first waiting deployment is refused (None: none waits)."""
        return self._due[0][0] if self._due else None
