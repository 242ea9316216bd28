"""Fixtures for the console tests: the packaged pilot areas and an event factory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sdo.areas import load_areas
from sdo.domain.geo import Areas
from sdo.events import (
    Alert,
    Incident,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
)
from tests.conftest import SYNTHETIC_AREAS

T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
#: A point inside neighbourhood N01 (Mere Green, NPU north, cluster north-1).
N01 = (-1.82, 52.595)


class Events:
    """Builds valid contract events; ``at`` is seconds after T0."""

    def __init__(self, t0: datetime = T0) -> None:
        self.n = 0
        self.t0 = t0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def profile(self, oid: str, at: float = 0, **kw: Any) -> OfficerProfile:
        fields: dict[str, Any] = {
            "callsign": f"CS{oid}",
            "role": "response",
            "skills": ["first_aid"],
            "transport": "car",
            "npu": "north",
        } | kw
        return OfficerProfile(
            event_id=self._id("p"), ts=self.t0 + timedelta(seconds=at), officer_id=oid, **fields
        )

    def status(self, oid: str, status: str, at: float = 0, **kw: Any) -> OfficerStatus:
        return OfficerStatus(
            event_id=self._id("s"),
            ts=self.t0 + timedelta(seconds=at),
            officer_id=oid,
            status=status,
            **kw,
        )

    def location(
        self, oid: str, lonlat: tuple[float, float] = N01, at: float = 0
    ) -> OfficerLocation:
        return OfficerLocation(
            event_id=self._id("l"),
            ts=self.t0 + timedelta(seconds=at),
            officer_id=oid,
            lon=lonlat[0],
            lat=lonlat[1],
        )

    def incident(self, iid: str, at: float = 0, **kw: Any) -> Incident:
        fields: dict[str, Any] = {
            "lat": N01[1],
            "lon": N01[0] + 0.005,
            "category": "burglary",
            "summary": "Burglary in progress",
            "thrive": {
                "threat": "high",
                "harm": "medium",
                "risk": "high",
                "vulnerability": "low",
                "investigation": True,
                "engagement": False,
                "prevention": False,
            },
            "ongoing": True,
            "offender_present": True,
            "persistent": False,
        } | kw
        return Incident(
            event_id=self._id("i"), ts=self.t0 + timedelta(seconds=at), incident_id=iid, **fields
        )

    def recommendation(
        self, iid: str, officers: list[str], at: float = 0, rid: str | None = None
    ) -> Recommendation:
        return Recommendation(
            event_id=self._id("r"),
            ts=self.t0 + timedelta(seconds=at),
            recommendation_id=rid or self._id("rec"),
            incident_id=iid,
            grade=1,
            response="emergency",
            reasons=["threat is high"],
            candidates=[
                {
                    "officer_id": o,
                    "callsign": f"CS{o}",
                    "role": "response",
                    "eta_s": 120.0 + k,
                    "distance_m": 800.0 + k,
                    "score": 0.9 - k / 10,
                    "reasons": ["nearest available"],
                }
                for k, o in enumerate(officers)
            ],
            recommended=officers[:1],
            policy={"name": "thrive", "version": "1"},
        )

    def alert(self, subject: str, at: float = 0, active: bool = True) -> Alert:
        return Alert(
            event_id=self._id("a"),
            ts=self.t0 + timedelta(seconds=at),
            kind="cover_gap",
            severity="warning",
            subject=subject,
            message=f"{subject} below minimum cover",
            area_id=subject,
            active=active,
        )


@pytest.fixture
def ev() -> Events:
    return Events()


@pytest.fixture(scope="session")
def areas() -> Areas:
    return load_areas(SYNTHETIC_AREAS)
