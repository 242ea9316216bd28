"""Joint assignment: an officer released by one pending incident goes to the one denied it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sdo.config import Settings
from sdo.events import Incident, OfficerLocation, OfficerProfile, OfficerStatus, Thrive
from sdo.stream.worker import make_world

T0 = datetime(2015, 12, 1, 9, tzinfo=UTC)
THRIVE = Thrive(
    threat="high",
    harm="low",
    risk="low",
    vulnerability="none",
    investigation=False,
    engagement=False,
    prevention=False,
)


def officer(oid: str, lon: float, lat: float, t: float) -> list[object]:
    ts = T0 + timedelta(seconds=t)
    return [
        OfficerProfile(
            event_id=f"{oid}p",
            ts=ts,
            officer_id=oid,
            callsign=oid,
            role="response",
            transport="car",
        ),
        OfficerStatus(event_id=f"{oid}s", ts=ts, officer_id=oid, status="available"),
        OfficerLocation(event_id=f"{oid}l", ts=ts, officer_id=oid, lon=lon, lat=lat),
    ]


def incident(iid: str, lon: float, lat: float, t: float) -> Incident:
    return Incident(
        event_id=f"{iid}v",
        ts=T0 + timedelta(seconds=t),
        incident_id=iid,
        lon=lon,
        lat=lat,
        category="violence",
        thrive=THRIVE,
        ongoing=True,
        offender_present=True,
        persistent=False,
    )


def test_officer_released_by_one_incident_is_recommended_to_the_one_denied_it() -> None:
    """A (earlier) holds X; B, for which X is nearest, is passed over. When a closer officer
    appears for A, A lets X go, and B is re-recommended X in the same step."""
    world = make_world(Settings())
    for event in officer("X", -1.830, 52.560, 0) + officer("Y", -1.830, 52.575, 0):
        world.apply(event)
    world.apply(incident("A", -1.830, 52.545, 10))  # X 1.7 km, Y 3.3 km
    world.apply(incident("B", -1.830, 52.565, 20))  # X 0.6 km but held by A; Y 1.1 km
    assert world.recommendation("A").recommended == ("X",)
    assert world.recommendation("B").recommended == ("Y",)
    effects = None
    for event in officer("Z", -1.830, 52.546, 30):  # next to A; for B no better than Y
        effects = world.apply(event)
    assert effects is not None
    latest = {r.incident_id: r.recommended for r in effects.recommendations}
    assert latest == {"A": ("Z",), "B": ("X",)}
