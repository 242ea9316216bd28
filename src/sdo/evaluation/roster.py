"""Who is on duty in a simulated log (:func:`roster`): officers by role, shift pattern,
beat, transport and skills, for ``officers`` on duty at once (see
:mod:`sdo.evaluation.simulate`, "What is modelled").
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from sdo.errors import ConfigError
from sdo.events import (
    Role,
    Transport,
)

__all__ = ["OFFICERS_ON_DUTY", "ROLE_SHARE", "AreasLike", "OfficerPlan", "roster"]

# ---------------------------------------------------------------------------------------
# What the simulation needs of an area file (``sdo.domain.geo.Areas`` satisfies it).


class _Neighbourhood(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def npu(self) -> str: ...
    @property
    def cluster(self) -> str: ...
    @property
    def typology(self) -> int: ...
    @property
    def named_officer(self) -> str | None: ...
    @property
    def centroid(self) -> tuple[float, float]: ...
    @property
    def bbox(self) -> tuple[float, float, float, float]: ...


class AreasLike(Protocol):
    @property
    def neighbourhoods(self) -> Mapping[str, _Neighbourhood]: ...
    def contains(self, neighbourhood_id: str, lon: float, lat: float) -> bool: ...


# ---------------------------------------------------------------------------------------
# Officers

#: (start hour, length in hours) of each shift pattern.
_SHIFTS: Final[dict[str, tuple[int, int]]] = {
    "early": (7, 9),
    "late": (15, 9),
    "night": (22, 9),
    "day": (8, 8),
    "nbh_late": (14, 8),
    "desk_day": (8, 10),
    "desk_late": (12, 10),
}
_ROLE_SHIFTS: Final[dict[Role, tuple[str, ...]]] = {
    Role.RESPONSE: ("early", "late", "night"),
    Role.FORCE_SUPPORT: ("early", "late", "night"),
    Role.SUPERVISOR: ("early", "late", "night"),
    Role.NEIGHBOURHOOD: ("day", "nbh_late"),
    Role.PCSO: ("day", "nbh_late"),
    Role.INVESTIGATOR: ("desk_day", "desk_late"),
}
#: Share of the officers on duty at once, by role (``--officers`` is that count, per
#: shift); neighbourhood officers take the rest (about 15 %). Illustrative: West Midlands
#: had 368-543 response officers on duty force-wide across its NPUs (so 90-135 in two),
#: the default's 66 of 120 is the pilot's lower end.
ROLE_SHARE: Final[tuple[tuple[Role, float], ...]] = (
    (Role.RESPONSE, 0.55),
    (Role.PCSO, 0.08),
    (Role.INVESTIGATOR, 0.12),
    (Role.FORCE_SUPPORT, 0.06),
    (Role.SUPERVISOR, 0.04),
)
#: ``sdo simulate --officers``'s default: officers on duty at once in the two NPUs.
OFFICERS_ON_DUTY: Final = 120
_ID_PREFIX: Final[dict[Role, str]] = {
    Role.RESPONSE: "RP",
    Role.NEIGHBOURHOOD: "NH",
    Role.PCSO: "CS",
    Role.INVESTIGATOR: "IV",
    Role.FORCE_SUPPORT: "FS",
    Role.SUPERVISOR: "SG",
}
_CALLSIGN_LETTER: Final[dict[Role, str]] = {
    Role.RESPONSE: "R",
    Role.NEIGHBOURHOOD: "N",
    Role.PCSO: "C",
    Role.INVESTIGATOR: "I",
    Role.FORCE_SUPPORT: "F",
    Role.SUPERVISOR: "S",
}
#: (patrol, blue-light) speed in m/s, before the road factor.
_SPEED: Final[dict[Transport, tuple[float, float]]] = {
    Transport.CAR: (7.0, 15.0),
    Transport.VAN: (6.0, 13.0),
    Transport.MOTORCYCLE: (8.0, 16.0),
    Transport.BICYCLE: (4.0, 5.5),
    Transport.FOOT: (1.3, 2.2),
    Transport.DESK: (0.0, 0.0),
}
#: Optional skills by role: (skill, probability).
_SKILLS: Final[dict[Role, tuple[tuple[str, float], ...]]] = {
    Role.RESPONSE: (
        ("taser", 0.35),
        ("first_aid", 0.9),
        ("advanced_driver", 0.3),
        ("public_order", 0.2),
        ("mental_health", 0.1),
        ("ppu", 0.08),
        ("search", 0.05),
    ),
    Role.NEIGHBOURHOOD: (("first_aid", 0.9), ("mental_health", 0.15), ("public_order", 0.1)),
    Role.PCSO: (("first_aid", 0.7),),
    Role.INVESTIGATOR: (("ppu", 0.3),),
    Role.FORCE_SUPPORT: (("first_aid", 0.9), ("advanced_driver", 0.8), ("taser", 0.5)),
    Role.SUPERVISOR: (("first_aid", 0.9), ("taser", 0.4), ("public_order", 0.5)),
}
_LANGUAGES: Final = (("language:urdu", 0.07), ("language:punjabi", 0.04), ("language:polish", 0.02))


@dataclass(frozen=True, slots=True)
class OfficerPlan:
    """Who an officer is in the simulation: the profile plus where and when they work."""

    officer_id: str
    callsign: str
    role: Role
    skills: tuple[str, ...]
    transport: Transport
    npu: str | None
    neighbourhoods: tuple[str, ...]  # named responsibility
    beat: tuple[str, ...]  # where they patrol (empty on the desk)
    shift: str


def roster(areas: AreasLike, officers: int, rng: random.Random) -> list[OfficerPlan]:
    """The officer plans over ``areas`` for ``officers`` on duty at once, in a fixed order.

    Each role has its share of ``officers`` (:data:`ROLE_SHARE`) on every one of its
    shift patterns (:data:`_ROLE_SHIFTS`): so many plans per pattern, and the roster
    holds the role's count times its patterns (response: three, about 2.9x the officers
    on duty at once in all). Every neighbourhood's ``named_officer`` is a neighbourhood
    officer on the day pattern while the count has room for them.
    """
    if officers < 1:
        raise ConfigError("--officers must be at least 1")
    nbhds = list(areas.neighbourhoods.values())
    npus = list(dict.fromkeys(n.npu for n in nbhds))
    clusters = list(dict.fromkeys(n.cluster for n in nbhds))
    by_npu = {p: tuple(n.id for n in nbhds if n.npu == p) for p in npus}
    by_cluster = {c: tuple(n.id for n in nbhds if n.cluster == c) for c in clusters}
    npu_of_cluster = {c: next(n.npu for n in nbhds if n.cluster == c) for c in clusters}
    named: dict[str, list[str]] = {}
    for n in nbhds:
        if n.named_officer:
            named.setdefault(n.named_officer, []).append(n.id)

    on_duty = {role: max(1, round(officers * share)) for role, share in ROLE_SHARE}
    if officers < sum(on_duty.values()) + 1:  # tiny rosters: response first
        on_duty = {role: 0 for role, _ in ROLE_SHARE}
        on_duty[Role.RESPONSE] = max(1, officers - 1) if officers > 1 else 1
    on_duty[Role.NEIGHBOURHOOD] = officers - sum(on_duty.values())
    counts = {role: n * len(_ROLE_SHIFTS[role]) for role, n in on_duty.items()}

    plans: list[OfficerPlan] = []
    serial: dict[Role, int] = {}

    def add(
        role: Role,
        oid: str | None,
        npu: str | None,
        beat: tuple[str, ...],
        own: tuple[str, ...] = (),
        shift: str | None = None,
    ) -> None:
        k = serial[role] = serial.get(role, 0) + 1
        transport = _transport(role, k, rng)
        skills = [s for s, p in _SKILLS[role] if rng.random() < p]
        if role is Role.FORCE_SUPPORT:
            skills.append("dog" if k == 1 else "roads_policing")
        skills += [s for s, p in _LANGUAGES if rng.random() < p]
        shifts = _ROLE_SHIFTS[role]
        letter = (npu or "force")[0].upper()
        plans.append(
            OfficerPlan(
                officer_id=oid or f"{_ID_PREFIX[role]}-{k:03d}",
                callsign=f"{letter}{_CALLSIGN_LETTER[role]}{k:02d}",
                role=role,
                skills=tuple(skills),
                transport=transport,
                npu=npu,
                neighbourhoods=own,
                beat=() if transport is Transport.DESK else beat,
                shift=shift or shifts[(k - 1) % len(shifts)],
            )
        )

    response_shifts = len(_ROLE_SHIFTS[Role.RESPONSE])
    turns = _interleaved([n.cluster for n in nbhds])
    for i in range(counts[Role.RESPONSE]):
        # shifts go round-robin too (see add()): step the cluster once per round of shifts
        # so every cluster has officers on every shift; a cluster's turn comes once per
        # neighbourhood of it, so its officers are in proportion to its neighbourhoods
        cluster = turns[(i // response_shifts) % len(turns)]
        add(Role.RESPONSE, None, npu_of_cluster[cluster], by_cluster[cluster])
    named_ids = list(named)[: on_duty[Role.NEIGHBOURHOOD]]
    for oid in named_ids:
        own = tuple(named[oid])
        add(Role.NEIGHBOURHOOD, oid, areas.neighbourhoods[own[0]].npu, own, own, "day")
    for i in range(counts[Role.NEIGHBOURHOOD] - len(named_ids)):
        nb = nbhds[i % len(nbhds)]
        add(Role.NEIGHBOURHOOD, None, nb.npu, (nb.id,), (nb.id,))
    for i in range(counts[Role.PCSO]):
        nb = nbhds[(i * 5) % len(nbhds)]
        add(Role.PCSO, None, nb.npu, (nb.id,))
    for i in range(counts[Role.INVESTIGATOR]):
        add(Role.INVESTIGATOR, None, npus[i % len(npus)], ())
    every = tuple(n.id for n in nbhds)
    for _ in range(counts[Role.FORCE_SUPPORT]):
        add(Role.FORCE_SUPPORT, None, None, every)
    for i in range(counts[Role.SUPERVISOR]):
        npu = npus[i % len(npus)]
        add(Role.SUPERVISOR, None, npu, by_npu[npu])
    return plans


def _interleaved(names: list[str]) -> list[str]:
    """``names`` reordered so that each name's turns are spread evenly (a smooth weighted
    round-robin: the name furthest behind its share goes next)."""
    weights = {n: names.count(n) for n in dict.fromkeys(names)}
    total = len(names)
    credit = dict.fromkeys(weights, 0)
    out = []
    for _ in range(total):
        for n, w in weights.items():
            credit[n] += w
        best = max(credit, key=lambda n: credit[n])
        credit[best] -= total
        out.append(best)
    return out


def _transport(role: Role, k: int, rng: random.Random) -> Transport:
    r = rng.random()
    if role is Role.RESPONSE:
        return Transport.CAR if r < 0.7 else Transport.VAN if r < 0.95 else Transport.MOTORCYCLE
    if role is Role.NEIGHBOURHOOD:
        return Transport.FOOT if r < 0.4 else Transport.BICYCLE if r < 0.7 else Transport.CAR
    if role is Role.PCSO:
        return Transport.FOOT if r < 0.6 else Transport.BICYCLE
    if role is Role.INVESTIGATOR:
        return Transport.DESK
    if role is Role.FORCE_SUPPORT:
        return Transport.VAN if k == 1 else Transport.MOTORCYCLE if r < 0.3 else Transport.CAR
    return Transport.CAR
