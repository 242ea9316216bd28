"""How long things take on the street: the timing model shared by the simulated dispatcher
(:mod:`sdo.evaluation.simulate`) and the closed-loop evaluation
(:mod:`sdo.evaluation.closed_loop`), so that a policy is judged in the same world the
recorded dispatch ran in.

Theory of operation
-------------------
An attendance is the sum of four parts, each drawn here:

* **dispatch delay** (:meth:`Timing.dispatch_delay_s`): from the incident being logged to
  a unit being assigned. Grade 1 is drawn from the real queue → first dispatch delays of
  the 270 priority 1 calls in ``data/incidents/seattle_police_dispatch_2024_sample.csv``
  (their 5 % quantiles, :data:`G1_DISPATCH_QUANTILES_S`; median 54 s). No public UK
  figure exists; Seattle's priority 2 delays (median 20 min) are mostly a queue for a free
  unit, which the simulation models itself (no unit free: nobody is sent), so grades 2 and
  3 take the grade 1 draw × :data:`SLOWER_HANDLING` (the call is handled, not rushed).
* **mobilisation** (:meth:`Timing.mobilise_s`): from assignment to moving (to the car,
  through the station yard): 30 s to 3 min for grade 1, 1–5 min otherwise.
* **travel** (:meth:`Timing.travel_s`): straight-line distance × a detour factor ÷ a
  speed by transport and grade — urban door-to-door averages with blue lights for grade 1
  (a car 8 m/s, 29 km/h), not motorway speeds.
* **time on scene** (:meth:`Timing.on_scene_s`): by category and grade
  (:data:`ON_SCENE_MIN`), then, for some, a spell ``committed`` (custody, statements,
  hospital; :data:`COMMITTED_P`).

Draws are keyed by the incident (and officer), not taken from one running generator, so
every policy evaluated over a log meets the same delays and times on scene for the same
incident: the comparison is paired. The defaults are calibrated against West Midlands
Police's published figures (README "Calibration"); :class:`Timing` with other values is
what the report's sensitivity rows run.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Final

from sdo.events import Transport

__all__ = [
    "COMMITTED_P",
    "G1_DISPATCH_QUANTILES_S",
    "ON_SCENE_MIN",
    "SLOWER_HANDLING",
    "Timing",
    "draw",
]

#: The 0 %, 5 %, ..., 100 % quantiles of queue → first dispatch (seconds) of the priority 1
#: calls in data/incidents/seattle_police_dispatch_2024_sample.csv (n = 270; a test
#: recomputes them from the file). A draw interpolates between them.
G1_DISPATCH_QUANTILES_S: Final = (
    7, 16, 20, 23, 26, 30, 34, 36, 40, 46, 54, 60, 66, 73, 80, 94, 109, 127, 163, 216, 1755,
)  # fmt: skip
#: Grades 2 and 3: the grade 1 dispatch delay times this.
SLOWER_HANDLING: Final = 2.0
#: Minutes on scene (low, high; drawn uniformly) by category, for grade 1 and 2 calls; a
#: scheduled (grade 3) visit or a neighbourhood call takes the low end to the middle.
ON_SCENE_MIN: Final[dict[str, tuple[int, int]]] = {
    "asb": (20, 60),
    "noise": (15, 40),
    "criminal_damage": (30, 60),
    "burglary": (40, 90),
    "theft": (25, 60),
    "shoplifting": (30, 90),
    "domestic": (45, 120),
    "violence": (45, 150),
    "concern_for_welfare": (30, 120),
    "rtc": (40, 120),
    "suspicious_person": (15, 45),
    "fraud": (30, 60),
}
_ON_SCENE_OTHER: Final = (30, 60)
#: Chance that an officer goes on ``committed`` (custody, statements, hospital) after the
#: scene, by grade; for 1 to 4 hours.
COMMITTED_P: Final[dict[int, float]] = {1: 0.3, 2: 0.15}
_COMMITTED_OTHER: Final = 0.05
#: A scheduled (grade 3) call's appointment: 1 to 8 hours after it was logged.
_APPOINTMENT_S: Final = (3600, 8 * 3600)
_COMMITTED_S: Final = (60 * 60, 240 * 60)


def _default_speeds() -> dict[Transport, tuple[float, float, float]]:
    # door-to-door averages in m/s over the straight line x detour: (grade 1, 2, 3+)
    return {
        Transport.CAR: (8.0, 7.0, 6.0),
        Transport.VAN: (7.5, 6.5, 5.5),
        Transport.MOTORCYCLE: (9.0, 7.5, 6.5),
        Transport.BICYCLE: (4.5, 4.0, 3.5),
        Transport.FOOT: (1.5, 1.4, 1.3),
    }


def draw(*key: object) -> random.Random:
    """A generator seeded by ``key`` alone (the same key, the same draws, in any run)."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))  # noqa: S311 (a simulation)


@dataclass(frozen=True, slots=True)
class Timing:
    """The timing model (see the module docstring); the defaults are the calibrated ones."""

    detour_factor: float = 1.4
    speed_mps: dict[Transport, tuple[float, float, float]] = field(default_factory=_default_speeds)
    #: what ``sdo evaluate`` calls this model in the report ("calibrated", "detour 1.2")
    label: str = "calibrated"

    def scaled(self, *, detour: float | None = None, speed: float = 1.0, label: str) -> Timing:
        """This model with another detour factor and/or every speed times ``speed``."""
        speeds = {t: (a * speed, b * speed, c * speed) for t, (a, b, c) in self.speed_mps.items()}
        return Timing(detour or self.detour_factor, speeds, label)

    def dispatch_delay_s(self, incident_id: str, grade: int) -> int:
        """Seconds from the incident being logged to a unit being assigned."""
        u = draw(incident_id, "dispatch").random() * (len(G1_DISPATCH_QUANTILES_S) - 1)
        k = min(int(u), len(G1_DISPATCH_QUANTILES_S) - 2)
        low, high = G1_DISPATCH_QUANTILES_S[k], G1_DISPATCH_QUANTILES_S[k + 1]
        seconds = low + (high - low) * (u - k)
        return round(seconds if grade <= 1 else seconds * SLOWER_HANDLING)

    def appointment_s(self, incident_id: str) -> int:
        """Seconds from logging to the appointment of a scheduled (grade 3) call."""
        return draw(incident_id, "appointment").randint(*_APPOINTMENT_S)

    def mobilise_s(self, incident_id: str, officer_id: str, grade: int) -> int:
        """Seconds from assignment to moving."""
        low, high = (30, 180) if grade <= 1 else (60, 300)
        return draw(incident_id, officer_id, "mobilise").randint(low, high)

    def travel_s(self, distance_m: float, transport: Transport, grade: int) -> float | None:
        """Seconds to cover ``distance_m`` (straight line); None for a desk."""
        speeds = self.speed_mps.get(transport)
        if speeds is None:
            return None
        return distance_m * self.detour_factor / speeds[min(max(grade, 1), 3) - 1]

    def on_scene_s(self, incident_id: str, officer_id: str, category: str, grade: int) -> int:
        """Seconds at the scene."""
        low, high = ON_SCENE_MIN.get(category, _ON_SCENE_OTHER)
        if grade >= 3:
            high = (low + high) // 2
        return draw(incident_id, officer_id, "scene").randint(low * 60, high * 60)

    def committed_s(self, incident_id: str, officer_id: str, grade: int) -> int:
        """Seconds ``committed`` after the scene (custody, statements, hospital), or 0."""
        rng = draw(incident_id, officer_id, "committed")
        if rng.random() >= COMMITTED_P.get(grade, _COMMITTED_OTHER):
            return 0
        return rng.randint(*_COMMITTED_S)
