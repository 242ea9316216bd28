"""Late but valid: deployments that arrive before their incident wait for it (pure).

Kafka orders records within a partition only, and a deployment can reach a consumer
before the incident it decides (another partition, a worker catching up, a console that
reads topics side by side). Refusing it at once would lose an SDO's decision. So it waits,
bounded two ways, and the same way in the worker's World and in every console's view:

* by event time: a deployment waits until event time is :data:`WAIT` past its own ``ts``;
  then it is refused ("deployment for unknown incident ...: waited ...");
* by count: at most :data:`PER_INCIDENT` per incident and :data:`INCIDENTS` incidents
  waited for; one more is refused at once.

When its incident arrives, the deployments waiting for it are handed back in arrival
order, to be applied then. A redelivered deployment already waiting is not held twice.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import Final

from sdo.events import Deployment

__all__ = ["INCIDENTS", "PER_INCIDENT", "WAIT", "Waiting"]

#: Event time a deployment waits for its incident.
WAIT: Final = timedelta(minutes=10)
#: Deployments held per incident not yet seen, and incidents waited for at once.
PER_INCIDENT: Final = 8
INCIDENTS: Final = 1000


class Waiting:
    """Deployments waiting for their incident (see the module docstring)."""

    __slots__ = ("_due", "_held")

    def __init__(self) -> None:
        self._held: dict[str, list[Deployment]] = {}
        #: (refused at, incident id, event id), earliest first
        self._due: list[tuple[datetime, str, str]] = []

    def __len__(self) -> int:
        return sum(len(h) for h in self._held.values())

    def hold(self, event: Deployment) -> str | None:
        """Hold ``event`` for its incident; None if held (or held already), else why it
        cannot wait (then it is refused now)."""
        held = self._held.get(event.incident_id)
        if held is None:
            if len(self._held) >= INCIDENTS:
                return (
                    f"deployment for unknown incident {event.incident_id} "
                    f"({INCIDENTS} incidents already awaited)"
                )
            held = self._held[event.incident_id] = []
        if any(h.event_id == event.event_id for h in held):
            return None
        if len(held) >= PER_INCIDENT:
            return (
                f"deployment for unknown incident {event.incident_id} "
                f"({PER_INCIDENT} deployments already wait for it)"
            )
        held.append(event)
        heapq.heappush(self._due, (event.ts + WAIT, event.incident_id, event.event_id))
        return None

    def release(self, incident_id: str) -> list[Deployment]:
        """The deployments that waited for ``incident_id`` (now seen), in arrival order."""
        return self._held.pop(incident_id, [])

    def expire(self, now: datetime) -> list[tuple[Deployment, str]]:
        """The deployments that waited their time by event time ``now``, with the reason."""
        out: list[tuple[Deployment, str]] = []
        due = self._due
        while due and due[0][0] <= now:
            _, iid, event_id = heapq.heappop(due)
            held = self._held.get(iid)
            if held is None:
                continue  # released meanwhile
            for n, event in enumerate(held):
                if event.event_id == event_id:
                    del held[n]
                    minutes = WAIT.total_seconds() / 60
                    out.append(
                        (
                            event,
                            f"deployment for unknown incident {iid} (waited {minutes:.0f} min "
                            "of event time for it)",
                        )
                    )
                    break
            if not held:
                del self._held[iid]
        return out

    def give_up(self) -> list[tuple[Deployment, str]]:
        """Every deployment still waiting, refused: their incidents will not come (the
        end of a log), in arrival order per incident."""
        out = [
            (event, f"deployment for unknown incident {iid} (its incident never came)")
            for iid, held in self._held.items()
            for event in held
        ]
        self._held.clear()
        self._due.clear()
        return out

    def ids(self) -> set[str]:
        """The event ids of the deployments waiting."""
        return {d.event_id for held in self._held.values() for d in held}

    def next_due(self) -> datetime | None:
        """When the first waiting deployment is refused (None: none waits)."""
        return self._due[0][0] if self._due else None
