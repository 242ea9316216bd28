"""The calls of a simulated log: categories and their THRIVE+ chances
(:data:`CATEGORIES`), when and where calls come in, and what a call needs (skills,
officers) once graded (see :mod:`sdo.evaluation.simulate`).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Final

from sdo.events import (
    Level,
    Response,
    Thrive,
)

__all__ = ["CATEGORIES", "CategoryProfile"]

# ---------------------------------------------------------------------------------------
# Incidents: categories, and THRIVE+ answers drawn per category; grading gives the response.

_E, _P, _S = Response.EMERGENCY, Response.PRIORITY, Response.SCHEDULED
_N, _I, _G = Response.NEIGHBOURHOOD, Response.INVESTIGATOR, Response.SIGNPOST


@dataclass(frozen=True, slots=True)
class CategoryProfile:
    """What a call of one category is like, as chances (illustrative, set by hand from the
    kinds of call a control room takes; the README lists what they grade to).

    ``severity`` and ``vulnerability`` are the chances of none / low / medium / high: each
    of threat, harm and risk is the severity, or one level below it (an even chance each);
    ``offender`` is the chance the offender is present when the incident is ongoing."""

    weight: float
    severity: tuple[float, float, float, float]
    vulnerability: tuple[float, float, float, float]
    ongoing: float
    offender: float
    persistent: float
    investigation: float
    prevention: float
    summary: str


#: category -> its profile; the weights are the category's share of calls.
CATEGORIES: Final[dict[str, CategoryProfile]] = {
    "asb": CategoryProfile(
        14, (0.3, 0.6, 0.09, 0.01), (0.65, 0.3, 0.05, 0.0), 0.1, 0.3, 0.7, 0.1, 0.75,
        "Youths causing annoyance, throwing stones at windows",
    ),
    "noise": CategoryProfile(
        8, (0.5, 0.5, 0.0, 0.0), (0.85, 0.15, 0.0, 0.0), 0.08, 0.1, 0.5, 0.02, 0.45,
        "Loud music from neighbouring address",
    ),
    "criminal_damage": CategoryProfile(
        9, (0.1, 0.75, 0.13, 0.02), (0.75, 0.2, 0.05, 0.0), 0.05, 0.5, 0.35, 0.7, 0.4,
        "Vehicle windows smashed, witness can describe suspect",
    ),
    "burglary": CategoryProfile(
        8, (0.0, 0.6, 0.3, 0.1), (0.5, 0.35, 0.12, 0.03), 0.08, 0.6, 0.05, 0.9, 0.2,
        "Rear door forced, property taken",
    ),
    "theft": CategoryProfile(
        11, (0.25, 0.68, 0.06, 0.01), (0.75, 0.2, 0.05, 0.0), 0.04, 0.4, 0.05, 0.55, 0.1,
        "Bicycle stolen from outside",
    ),
    "shoplifting": CategoryProfile(
        7, (0.1, 0.6, 0.28, 0.02), (0.9, 0.1, 0.0, 0.0), 0.2, 0.5, 0.2, 0.7, 0.1,
        "Store reports theft of goods",
    ),
    "domestic": CategoryProfile(
        10, (0.0, 0.35, 0.5, 0.15), (0.15, 0.4, 0.35, 0.1), 0.25, 0.4, 0.3, 0.6, 0.3,
        "Argument between partners reported",
    ),
    "violence": CategoryProfile(
        9, (0.0, 0.3, 0.5, 0.2), (0.3, 0.4, 0.2, 0.1), 0.25, 0.5, 0.05, 0.7, 0.1,
        "Assault reported",
    ),
    "concern_for_welfare": CategoryProfile(
        9, (0.15, 0.45, 0.3, 0.1), (0.05, 0.35, 0.45, 0.15), 0.25, 0.05, 0.1, 0.05, 0.3,
        "Caller concerned for vulnerable adult",
    ),
    "rtc": CategoryProfile(
        6, (0.3, 0.42, 0.22, 0.06), (0.6, 0.3, 0.08, 0.02), 0.2, 0.2, 0.0, 0.3, 0.05,
        "Road traffic collision",
    ),
    "suspicious_person": CategoryProfile(
        6, (0.3, 0.5, 0.17, 0.03), (0.8, 0.15, 0.05, 0.0), 0.25, 0.4, 0.1, 0.2, 0.2,
        "Person seen trying car door handles",
    ),
    "fraud": CategoryProfile(
        3, (0.3, 0.62, 0.08, 0.0), (0.5, 0.4, 0.08, 0.02), 0.02, 0.1, 0.05, 0.8, 0.1,
        "Caller lost money to online scam",
    ),
}  # fmt: skip
_CATEGORY_NAMES: Final = tuple(CATEGORIES)
_CATEGORY_CUM: Final = tuple(itertools.accumulate(c.weight for c in CATEGORIES.values()))

#: Relative demand by hour of the day (quiet 03-07, peak late afternoon and evening).
_HOURLY: Final = (
    1.00, 0.85, 0.65, 0.45, 0.35, 0.30, 0.40, 0.60, 0.80, 0.90, 1.00, 1.05,
    1.10, 1.15, 1.25, 1.40, 1.50, 1.55, 1.55, 1.50, 1.40, 1.30, 1.20, 1.10,
)  # fmt: skip
_TYPOLOGY_DEMAND: Final = {1: 0.6, 2: 0.8, 3: 1.0, 4: 1.3, 5: 1.6}

_LEVELS: Final = (Level.NONE, Level.LOW, Level.MEDIUM, Level.HIGH)
_GRADE_OF: Final = {_E: 1, _P: 2, _S: 3, _N: 4, _I: 4, _G: 4}


@dataclass(frozen=True, slots=True)
class _Facts:
    thrive: Thrive
    ongoing: bool
    offender_present: bool
    persistent: bool


def _level(rng: random.Random, chances: tuple[float, float, float, float]) -> int:
    x = rng.random()
    for k, p in enumerate(chances):
        if x < p:
            return k
        x -= p
    return len(chances) - 1


def _facts(profile: CategoryProfile, rng: random.Random) -> _Facts:
    """THRIVE+ answers and incident facts for a call of ``profile``'s category."""
    severity = _level(rng, profile.severity)
    t, h, r = (_LEVELS[max(0, severity - (rng.random() < 0.5))] for _ in range(3))
    ongoing = rng.random() < profile.ongoing
    thrive = Thrive(
        threat=t, harm=h, risk=r, vulnerability=_LEVELS[_level(rng, profile.vulnerability)],
        investigation=rng.random() < profile.investigation, engagement=rng.random() < 0.5,
        prevention=rng.random() < profile.prevention,
    )  # fmt: skip
    return _Facts(
        thrive,
        ongoing=ongoing,
        offender_present=ongoing and rng.random() < profile.offender,
        persistent=rng.random() < profile.persistent,
    )


def _required_skills(category: str, response: Response, hour: int, rng: random.Random) -> list[str]:
    skills: list[str] = []
    urgent = response in (_E, _P)
    x = rng.random()
    if category == "domestic" and x < 0.3:
        skills.append("ppu")
    elif category == "concern_for_welfare" and x < 0.35:
        skills.append("mental_health")
    elif category == "violence" and response is _E:
        if x < 0.4:
            skills.append("taser")
        if (hour >= 22 or hour < 3) and rng.random() < 0.3:
            skills.append("public_order")
    elif category == "rtc" and urgent:
        if x < 0.5:
            skills.append("first_aid")
        if rng.random() < 0.15:
            skills.append("roads_policing")
    elif category == "burglary" and response is _E and x < 0.15:
        skills.append("dog")
    if response not in (_I, _G) and rng.random() < 0.04:
        skills.append("language:urdu" if rng.random() < 0.7 else "language:punjabi")
    return skills


def _officers_required(category: str, response: Response, rng: random.Random) -> int:
    p = {
        ("domestic", _E): 0.6, ("domestic", _P): 0.4, ("violence", _E): 0.6,
        ("violence", _P): 0.3, ("burglary", _E): 0.4, ("suspicious_person", _E): 0.3,
    }.get((category, response), 0.0)  # fmt: skip
    return 2 if rng.random() < p else 1
