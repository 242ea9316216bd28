"""The demo's simulated feed, made to serve the SDO at the console.

Theory of operation
-------------------
The simulator (:func:`sdo.evaluation.simulate.simulate`) writes a whole shift ahead of time,
including its own dispatcher's decisions (``deployment`` events by ``sim-dispatcher``, the
status quo it models): left alone, it decides a grade 1 call a minute or two of simulated
time after it appears, which at the demo's speed is a few seconds, and it sends officers
to calls an SDO already decided. :class:`SdoWindow` filters that stream, as it is fed, so
the SDO at the console decides:

* a simulated deployment is *held* until its call has been on the console for
  ``window_s`` seconds of wall time, with everything that follows from it (the status
  changes of its officers, the call's own updates); then, if no SDO decided the call
  meanwhile, it is released, each event stamped with the feed's time then (never older
  than the events already sent, so the officers' later changes still follow it);
* a simulated deployment for a call an SDO decided (accepted, overrode or declined) is
  *dropped*, and so are the status changes it would have caused, except those of
  officers the SDO sent there too (they still arrive at the scene and clear).

Officers' positions and everything else pass through unchanged. The simulator is not
told: an officer the SDO sent who was not the simulator's choice patrols on (the SDO
marks them at the scene, or available, from the officer board).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sdo.events import Deployment, Incident, IncidentState, OfficerStatus

__all__ = ["DEFAULT_WINDOW_S", "SdoWindow"]

#: Wall-clock seconds a new call is left to the SDO before the simulated dispatcher acts.
DEFAULT_WINDOW_S: Final = 60.0


@dataclass
class _Held:
    release_at: float
    officers: frozenset[str]
    events: list[Any] = field(default_factory=list)


class SdoWindow:
    """Filters a simulated event stream (see the module doc).

    ``decided(incident_id)`` says whether an SDO decided the call; ``assigned(incident_id)``
    which officers the SDO sent; ``clock`` is the wall clock (monotonic seconds).
    """

    def __init__(
        self,
        window_s: float,
        dispatcher: str,
        decided: Callable[[str], bool],
        assigned: Callable[[str], Iterable[str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.dispatcher = dispatcher
        self._decided = decided
        self._assigned = assigned
        self._clock = clock
        self._shown: dict[str, float] = {}
        self._held: dict[str, _Held] = {}
        self._held_officers: dict[str, str] = {}
        self._taken: set[str] = set()
        self._last_ts: datetime | None = None
        self.held = 0
        self.released = 0
        self.dropped = 0

    def __call__(self, events: Iterable[Any]) -> Iterator[Any]:
        for event in events:
            yield from self._release_due()
            for out in self._route(event):
                if self._last_ts is None or out.ts > self._last_ts:
                    self._last_ts = out.ts
                yield out
        yield from self._release_due(everything=True)

    @property
    def last_ts(self) -> datetime | None:
        """The latest event time the window has let through (None before the first)."""
        return self._last_ts

    @property
    def holding(self) -> int:
        """Calls whose simulated deployment is held now."""
        return len(self._held)

    def _route(self, event: Any) -> list[Any]:
        match event:
            case Deployment() if event.by == self.dispatcher:
                return self._deployment(event)
            case OfficerStatus():
                iid = self._held_officers.get(event.officer_id)
                if iid is not None:
                    self._held[iid].events.append(event)
                    return []
                if event.incident_id in self._taken and event.officer_id not in set(
                    self._assigned(event.incident_id)
                ):
                    return []
            case Incident():
                iid = event.incident_id
                self._shown.setdefault(iid, self._clock())
                if iid in self._held:
                    self._held[iid].events.append(event)
                    return []
                if iid in self._taken:
                    if event.state is IncidentState.CLOSED:
                        self._taken.discard(iid)
                        self._shown.pop(iid, None)
                        return [event]
                    return []  # the simulator's "resourced": the SDO's decision said that
                if event.state is IncidentState.CLOSED:
                    self._shown.pop(iid, None)
        return [event]

    def _deployment(self, event: Deployment) -> list[Any]:
        iid = event.incident_id
        if self._decided(iid):
            self._taken.add(iid)
            self.dropped += 1
            return []
        shown = self._shown.get(iid, self._clock())
        due = shown + self.window_s
        if self._clock() >= due:
            return [event]
        held = _Held(due, frozenset(event.officer_ids), [event])
        self._held[iid] = held
        for oid in held.officers:
            self._held_officers[oid] = iid
        self.held += 1
        return []

    def _release_due(self, *, everything: bool = False) -> Iterator[Any]:
        if not self._held:
            return
        now = self._clock()
        for iid in [i for i, h in self._held.items() if everything or h.release_at <= now]:
            held = self._held.pop(iid)
            for oid in held.officers:
                self._held_officers.pop(oid, None)
            if self._decided(iid):
                self._taken.add(iid)
                self.dropped += 1
                mine = set(self._assigned(iid))
                # what the SDO's own officers do there still happens, and the call closes
                events = [
                    e
                    for e in held.events
                    if (
                        isinstance(e, OfficerStatus)
                        and (e.officer_id in mine or e.incident_id != iid)
                    )
                    or (isinstance(e, Incident) and e.state is IncidentState.CLOSED)
                ]
            else:
                self.released += 1
                events = held.events
            for event in events:
                ts = (
                    event.ts if self._last_ts is None or event.ts > self._last_ts else self._last_ts
                )
                out = event if ts == event.ts else event.model_copy(update={"ts": ts})
                self._last_ts = ts
                yield out
