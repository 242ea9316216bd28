"""Builders shared by the pure domain tests: the packaged areas and rules, event factories
and a small driver around :class:`sdo.domain.world.World`.

Everything here is deterministic: event ids derive from the event's content (the same
event built twice is the same event, exactly as a Kafka redelivery), time is event time
counted from :data:`T0`, and places are offsets in metres from a neighbourhood centroid of
the packaged pilot area file. No broker, no clock, no randomness.

Test modules get these through fixtures (``areas``, ``rules``, ``ev``, ``force``), never
by importing this file: two ``conftest`` modules live in the tree and share a name.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pytest

from sdo.areas import load_areas
from sdo.config import DEFAULT_RULES, package_data
from sdo.domain.geo import Areas, haversine_m
from sdo.domain.grading import Rules
from sdo.domain.recommend import Policy
from sdo.domain.world import Effects, World
from sdo.events import (
    Alert,
    Deployment,
    Incident,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
)
from sdo.grade import load_rules
from tests.conftest import SYNTHETIC_AREAS

#: Event time zero of every scenario.
T0: Final = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
_M_PER_DEG_LAT: Final = 111_195.0

#: THRIVE+ answers that the packaged rules grade to each response (no handler override).
GRADED_AS: Final[dict[str, dict[str, Any]]] = {
    "emergency": {"threat": "high"},
    "priority": {"risk": "medium"},
    "scheduled": {"vulnerability": "low"},
    "neighbourhood": {"persistent": True, "prevention": True},
    "investigator": {"investigation": True},
    "signpost": {"category": "noise"},
}


def _content_id(kind: str, body: dict[str, Any]) -> str:
    digest = hashlib.sha1(
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str), usedforsecurity=False
    )
    return f"{kind}-{digest.hexdigest()[:16]}"


def _envelope(
    kind: str, ts: datetime, event_id: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if v is not None}
    full = {"ts": ts.isoformat(), **body}
    return {"event_id": event_id or _content_id(kind, full), **full}


class Events:
    """Factories for valid input events; every keyword has a quiet default."""

    t0: Final = T0

    @staticmethod
    def at(minutes: float = 0.0, seconds: float = 0.0) -> datetime:
        """Event time ``minutes``/``seconds`` after :data:`T0`."""
        return T0 + timedelta(minutes=minutes, seconds=seconds)

    @staticmethod
    def profile(
        officer_id: str,
        *,
        ts: datetime = T0,
        role: str = "response",
        skills: Sequence[str] = (),
        transport: str = "car",
        npu: str | None = None,
        neighbourhoods: Sequence[str] = (),
        shift_end: datetime | None = None,
        callsign: str | None = None,
        event_id: str | None = None,
    ) -> OfficerProfile:
        body = {
            "officer_id": officer_id,
            "callsign": callsign or f"CS-{officer_id}",
            "role": role,
            "skills": list(skills),
            "transport": transport,
            "npu": npu,
            "neighbourhoods": list(neighbourhoods),
            "shift_end": None if shift_end is None else shift_end.isoformat(),
        }
        return OfficerProfile.model_validate(_envelope("profile", ts, event_id, body))

    @staticmethod
    def status(
        officer_id: str,
        status: str,
        *,
        ts: datetime = T0,
        incident_id: str | None = None,
        event_id: str | None = None,
    ) -> OfficerStatus:
        body = {"officer_id": officer_id, "status": status, "incident_id": incident_id}
        return OfficerStatus.model_validate(_envelope("status", ts, event_id, body))

    @staticmethod
    def location(
        officer_id: str,
        lon: float,
        lat: float,
        *,
        ts: datetime = T0,
        event_id: str | None = None,
    ) -> OfficerLocation:
        body = {"officer_id": officer_id, "lon": lon, "lat": lat}
        return OfficerLocation.model_validate(_envelope("location", ts, event_id, body))

    @staticmethod
    def incident(
        incident_id: str,
        lon: float,
        lat: float,
        *,
        ts: datetime = T0,
        graded_as: str | None = None,
        category: str = "other",
        state: str = "open",
        grade: int | None = None,
        officers_required: int = 1,
        required_skills: Sequence[str] = (),
        ongoing: bool = False,
        offender_present: bool = False,
        persistent: bool = False,
        event_id: str | None = None,
        **thrive: Any,
    ) -> Incident:
        """An incident; ``graded_as`` picks THRIVE+ answers from :data:`GRADED_AS`."""
        flags = {"ongoing": ongoing, "offender_present": offender_present, "persistent": persistent}
        answers: dict[str, Any] = {
            "threat": "low",
            "harm": "low",
            "risk": "low",
            "vulnerability": "none",
            "investigation": False,
            "engagement": False,
            "prevention": False,
        }
        for key, value in {**GRADED_AS.get(graded_as or "", {}), **thrive}.items():
            if key == "category":
                category = value
            elif key in flags:
                flags[key] = value
            else:
                answers[key] = value
        body = {
            "incident_id": incident_id,
            "lon": lon,
            "lat": lat,
            "category": category,
            "state": state,
            "thrive": answers,
            **flags,
            "required_skills": list(required_skills),
            "officers_required": officers_required,
            "grade": grade,
        }
        return Incident.model_validate(_envelope("incident", ts, event_id, body))

    @staticmethod
    def deployment(
        incident_id: str,
        officer_ids: Sequence[str] = (),
        *,
        ts: datetime = T0,
        decision: str = "accepted",
        by: str = "sdo-1",
        reason: str | None = None,
        event_id: str | None = None,
    ) -> Deployment:
        if decision != "accepted" and reason is None:
            reason = f"{decision} in a test"
        body = {
            "incident_id": incident_id,
            "decision": decision,
            "officer_ids": list(officer_ids),
            "by": by,
            "reason": reason,
        }
        return Deployment.model_validate(_envelope("deployment", ts, event_id, body))


def offset(
    point: tuple[float, float], east_m: float = 0.0, north_m: float = 0.0
) -> tuple[float, float]:
    """(lon, lat) ``east_m`` east and ``north_m`` north of ``point`` (flat-earth; metres)."""
    lon, lat = point
    d_lat = north_m / _M_PER_DEG_LAT
    d_lon = east_m / (_M_PER_DEG_LAT * math.cos(math.radians(lat)))
    return (lon + d_lon, lat + d_lat)


class Force:
    """A :class:`World` on the packaged areas and rules, with helpers to staff it.

    Every output the world emits is also kept, in order, in :attr:`outputs`.
    """

    def __init__(self, areas: Areas, rules: Rules, policy: Policy | None = None) -> None:
        self.areas = areas
        self.world = World(areas, rules, policy)
        self.outputs: list[Recommendation | Alert] = []

    def place(
        self, neighbourhood: str, east_m: float = 0.0, north_m: float = 0.0
    ) -> tuple[float, float]:
        """A point at an offset from a neighbourhood's centroid; asserted to fall inside it."""
        point = offset(self.areas.neighbourhoods[neighbourhood].centroid, east_m, north_m)
        found = self.areas.locate(*point)
        assert found is not None and found.neighbourhood == neighbourhood, (
            neighbourhood,
            point,
            found,
        )
        return point

    def apply(self, event: Any) -> Effects:
        effects = self.world.apply(event)
        self.outputs.extend(effects.outputs)
        return effects

    def apply_all(self, events: Iterable[Any]) -> list[Effects]:
        return [self.apply(e) for e in events]

    def advance(self, ts: datetime) -> Effects:
        effects = self.world.advance(ts)
        self.outputs.extend(effects.outputs)
        return effects

    def officer(
        self,
        officer_id: str,
        where: tuple[float, float] | None,
        *,
        ts: datetime = T0,
        status: str = "available",
        fix_ts: datetime | None = None,
        **profile: Any,
    ) -> Effects:
        """Profile, status and (if ``where``) a fix for one officer; returns the last effects.

        ``fix_ts`` dates the fix (default ``ts``); an older fix makes a stale position.
        """
        effects = self.apply(Events.profile(officer_id, ts=ts, **profile))
        effects = self.apply(Events.status(officer_id, status, ts=ts))
        if where is not None:
            effects = self.apply(Events.location(officer_id, *where, ts=fix_ts or ts))
        return effects

    def recommendation(self, incident_id: str) -> Recommendation:
        rec = self.world.recommendation(incident_id)
        assert rec is not None, f"no current recommendation for {incident_id}"
        return rec

    def recs_for(self, incident_id: str, since: int = 0) -> list[Recommendation]:
        """Recommendations published for an incident, from output index ``since`` on."""
        return [
            o
            for o in self.outputs[since:]
            if isinstance(o, Recommendation) and o.incident_id == incident_id
        ]

    def alerts(self, kind: str | None = None, since: int = 0) -> list[Alert]:
        return [
            o
            for o in self.outputs[since:]
            if isinstance(o, Alert) and (kind is None or o.kind == kind)
        ]


@pytest.fixture(scope="session")
def areas() -> Areas:
    """The synthetic test area file (its ids and shapes), loaded the way the CLI loads it."""
    return load_areas(SYNTHETIC_AREAS)


@pytest.fixture(scope="session")
def rules() -> Rules:
    """The packaged grading rules, loaded the way the CLI loads them."""
    return load_rules(package_data(DEFAULT_RULES))


@pytest.fixture
def ev() -> type[Events]:
    """The event factories."""
    return Events


@pytest.fixture
def force(areas: Areas, rules: Rules) -> Callable[..., Force]:
    """``force(policy=None)``: a fresh :class:`Force` on the packaged areas and rules."""

    def make(policy: Policy | None = None) -> Force:
        return Force(areas, rules, policy)

    return make


@pytest.fixture
def distance() -> Callable[[tuple[float, float], tuple[float, float]], float]:
    """Great-circle metres between two (lon, lat) points."""
    return lambda a, b: haversine_m(a[0], a[1], b[0], b[1])
