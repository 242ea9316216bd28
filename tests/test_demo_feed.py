"""The demo's simulated dispatcher leaves each call to the SDO, and never redeploys one an
SDO decided (``sdo.demo_feed.SdoWindow``), on hand-made events and on a simulated shift."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sdo.areas import load_areas
from sdo.config import DEFAULT_AREAS, Settings, package_data
from sdo.console.auth import Users, add_user
from sdo.console.server import Console
from sdo.demo import _decision_clock, _sdo_window
from sdo.demo_feed import SdoWindow
from sdo.evaluation.simulate import DISPATCHER, simulate
from sdo.events import (
    Decision,
    Deployment,
    Incident,
    IncidentState,
    OfficerLocation,
    OfficerStatus,
    Status,
)

T0 = datetime(2025, 1, 6, 18, 0, tzinfo=UTC)
THRIVE = {
    "threat": "high", "harm": "high", "risk": "high", "vulnerability": "low",
    "investigation": False, "engagement": False, "prevention": False,
}  # fmt: skip


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def incident(iid: str, s: float, state: IncidentState = IncidentState.OPEN) -> Incident:
    return Incident(
        event_id=f"{iid}-{state.value}-{s}", ts=at(s), incident_id=iid, lat=52.5, lon=-1.8,
        category="assault", thrive=THRIVE, ongoing=True, offender_present=True,
        persistent=False, state=state,
    )  # fmt: skip


def dispatch(iid: str, s: float, *officers: str) -> Deployment:
    return Deployment(
        event_id=f"d-{iid}", ts=at(s), incident_id=iid, decision=Decision.ACCEPTED,
        officer_ids=officers, by=DISPATCHER,
    )  # fmt: skip


def status(oid: str, s: float, st: Status, iid: str | None = None) -> OfficerStatus:
    return OfficerStatus(
        event_id=f"s-{oid}-{s}", ts=at(s), officer_id=oid, status=st, incident_id=iid
    )


def fix(oid: str, s: float) -> OfficerLocation:
    return OfficerLocation(event_id=f"l-{oid}-{s}", ts=at(s), officer_id=oid, lat=52.5, lon=-1.8)


def paced(events: list[Any], clock: Clock, wall: dict[str, float]) -> Iterator[Any]:
    """Hand out events, moving the wall clock to the time given for each event id."""
    for event in events:
        clock.now = wall.get(event.event_id, clock.now)
        yield event


def test_a_simulated_deployment_waits_for_the_window_then_follows_in_time_order() -> None:
    """Dispatched 3 s after the call appeared, the simulated deployment and what follows
    from it (its officer's status changes, the call's "resourced") are held, positions
    pass, until the call has been shown 60 s; then they come, in order, stamped no older
    than what was already sent."""
    clock, decided = Clock(), set[str]()
    window = SdoWindow(60.0, DISPATCHER, decided.__contains__, lambda _: (), clock)
    events = [
        incident("I1", 0), dispatch("I1", 90, "o1"), status("o1", 90, Status.EN_ROUTE, "I1"),
        fix("o1", 100), incident("I1", 120, IncidentState.RESOURCED), fix("o1", 200),
        status("o1", 300, Status.AT_SCENE, "I1"), fix("o2", 2000),
    ]  # fmt: skip
    wall = {"I1-open-0": 0.0, "d-I1": 3.0, "l-o1-200": 50.0, "l-o2-2000": 61.0}
    out = list(window(paced(events, clock, wall)))
    assert [e.event_id for e in out] == [
        "I1-open-0", "l-o1-100", "l-o1-200",
        "d-I1", "s-o1-90", "I1-resourced-120", "s-o1-300", "l-o2-2000",
    ]  # fmt: skip
    assert [e.ts for e in out[3:]] == [at(200), at(200), at(200), at(300), at(2000)]
    assert (window.held, window.released, window.dropped) == (1, 1, 0)


def test_a_call_an_sdo_decided_is_never_deployed_by_the_simulation() -> None:
    """Decided before the simulated dispatch, or while it was held: the simulated
    deployment, its "resourced" and its officers' changes are dropped, except those of
    the officer the SDO sent too; the call still closes."""
    clock, decided = Clock(), set[str]()
    sent = {"I1": ("o1",), "I2": ("o3",)}
    window = SdoWindow(60.0, DISPATCHER, decided.__contains__, lambda i: sent.get(i, ()), clock)

    def run() -> Iterator[Any]:
        yield incident("I1", 0)
        yield incident("I2", 0)
        decided.add("I1")  # the SDO accepted I1 (sending o1) before the simulation acts
        yield dispatch("I1", 60, "o1", "o2")
        yield status("o1", 60, Status.EN_ROUTE, "I1")
        yield status("o2", 60, Status.EN_ROUTE, "I1")
        yield incident("I1", 60, IncidentState.RESOURCED)
        yield status("o1", 400, Status.AT_SCENE, "I1")
        yield status("o2", 400, Status.AT_SCENE, "I1")
        clock.now = 5.0
        yield dispatch("I2", 500, "o4")  # held
        yield status("o4", 500, Status.EN_ROUTE, "I2")
        decided.add("I2")  # the SDO overrode I2 (sending o3) while it was held
        yield status("o4", 900, Status.AT_SCENE, "I2")
        clock.now = 70.0
        yield fix("o9", 1000)
        yield incident("I1", 3000, IncidentState.CLOSED)

    out = [e.event_id for e in window(run())]
    assert out == [
        "I1-open-0", "I2-open-0", "s-o1-60", "s-o1-400", "l-o9-1000", "I1-closed-3000",
    ]  # fmt: skip
    assert (window.held, window.released, window.dropped) == (1, 0, 2)


def test_a_simulated_shift_leaves_every_call_to_the_sdo_for_the_window() -> None:
    """Two simulated hours at 30× (wall time = simulated time / 30), an SDO deciding every
    third grade 1 or 2 call as it appears: no simulated deployment is sent for a call an
    SDO decided, none sooner than 60 s of wall time after its call was sent (except those
    still held when the shift ends, released with its end), event times never go back, and
    every other event is sent."""
    areas = load_areas(package_data(DEFAULT_AREAS))
    events = list(simulate(areas, seed=3, hours=2, officers=60, start=T0))
    clock, decided = Clock(), set[str]()
    window = SdoWindow(60.0, DISPATCHER, decided.__contains__, lambda _: (), clock)
    shown: dict[str, float] = {}

    def fed() -> Iterator[Any]:
        for n, event in enumerate(events):
            clock.now = (event.ts - T0).total_seconds() / 30
            if isinstance(event, Incident) and event.incident_id not in shown and n % 3 == 0:
                decided.add(event.incident_id)
            yield event

    out = []
    ended = False
    for event in window(fed()):
        if isinstance(event, Incident):
            shown.setdefault(event.incident_id, clock.now)
        ended = ended or event.event_id == events[-1].event_id
        out.append((clock.now, ended, event))
    deployments = [(t, end, e) for t, end, e in out if isinstance(e, Deployment)]
    assert deployments, "the simulation dispatched nothing to check"
    assert all(e.incident_id not in decided for _, _, e in deployments)
    early = [e.incident_id for t, end, e in deployments if t < shown[e.incident_id] + 60.0]
    at_the_end = [e.incident_id for t, end, e in deployments if end]
    assert set(early) <= set(at_the_end), early
    assert len(at_the_end) < len(deployments)
    out = [(t, e) for t, _, e in out]
    times = [e.ts for _, e in out]
    assert times == sorted(times)
    simulated_dispatches = [e for e in events if isinstance(e, Deployment)]
    assert window.dropped == sum(1 for e in simulated_dispatches if e.incident_id in decided)
    assert window.released + window.dropped >= window.held
    positions = sum(1 for e in events if isinstance(e, OfficerLocation))
    assert sum(1 for _, e in out if isinstance(e, OfficerLocation)) == positions


def test_in_the_demo_an_sdo_decision_sorts_after_what_the_feed_sent_and_holds_the_call(
    tmp_path: Path,
) -> None:
    """The demo's console stamps a decision with the latest time the feed has sent, not
    only what it has read: a simulated deployment released just before the SDO decided
    (sent, not yet read by the console) must not sort after the SDO's decision and win.
    And while the SDO's decision is on its way to Kafka, the simulated dispatcher does not
    take the call."""
    users = tmp_path / "users.json"
    add_user(users, "sgt.demo", "sdo")
    console = Console(Settings(broker="kafka://127.0.0.1:1"), Users(users))
    consoles = [console]
    window = _sdo_window(0.0, consoles)
    clock = _decision_clock(window, consoles)
    before = datetime.now(UTC)
    assert before <= clock() <= datetime.now(UTC)  # nothing sent or read: the wall clock

    sent = list(window(iter([incident("I1", 0), incident("I2", 0), fix("o1", 120)])))
    assert [e.event_id for e in sent][-1] == "l-o1-120"
    console.view.fold(sent[0])  # the console has read only the first call
    assert console.view.event_time == at(0)
    assert clock() == at(120)  # the feed sent up to 120 s: the decision sorts after it
    console.view.fold(fix("o1", 300))  # a time the console read and the feed did not send
    assert clock() == at(300)

    console._inflight["I2"] = time.monotonic() + 15  # the SDO's decision on I2, in flight
    out = list(window(iter([dispatch("I1", 400, "o1"), dispatch("I2", 400, "o2")])))
    assert [e.event_id for e in out] == ["d-I1"]  # I2's simulated deployment dropped
    assert window.dropped == 1
