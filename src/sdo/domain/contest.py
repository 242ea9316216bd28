"""The contest of pending dispatches: what a moving officer must beat (pure).

Theory of operation
-------------------
A dispatch recommendation (emergency, priority, closest) names the officers with the best
ETAs. An AVL fix can make another officer clearly better (by ``better_by_s``), and the
World must then recompute; with hundreds of pending dispatches and thousands of fixes a
second, asking each dispatch about each fix would cost most of a pass. So each dispatch is
kept as a :class:`Race`: the ETA to beat and a lat/lon box outside which nobody can beat
it; the :class:`Contest` holds every race's box as a row of a numpy table, scanned in one
compiled loop per fix (:func:`sdo.domain.scans.box_reach`). A pending *allocation*
(neighbourhood, investigator, scheduled) keeps its rule and the ranks of the officers
asked about (:class:`Allocation`).

The World (:mod:`sdo.domain.world`) owns the races and the contest and keeps them up to
date; the evaluator's fix lane (:mod:`sdo.domain.lane`) keeps a copy of the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from sdo.domain.geo import EARTH_RADIUS_M
from sdo.domain.grading import Grading
from sdo.domain.recommend import AllocationRule, DispatchRule, Policy
from sdo.domain.scans import box_reach, score_reach
from sdo.domain.state import Officer
from sdo.events import Incident, Recommendation, Transport

__all__ = ["FREE_ROW", "SCORE_ROUNDING", "Allocation", "Contest", "Entry", "Race", "Row"]

#: Candidate scores are published rounded to 0.01: compare with that much slack.
SCORE_ROUNDING: Final = 0.01


@dataclass(frozen=True, slots=True)
class Allocation:
    """A pending allocation's rule (kept while its incident and grading stay), and the
    ranks against it of the officers asked about (see World._rank)."""

    incident: Incident
    grading: Grading
    rule: AllocationRule
    #: officer id -> (their record, their load, :meth:`AllocationRule.rank_on_shift`)
    ranks: dict[str, tuple[Officer, int, tuple[float, str] | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Race:
    """One dispatch recommendation as a moving officer sees it: the ETA to beat, and a
    lat/lon box outside which nobody can beat it (a cheap test before the exact one)."""

    rec: Recommendation  # the computation the figures below come from
    published: Recommendation  # the current recommendation (the same, or an equal older one)
    incident: Incident
    rule: DispatchRule
    short: bool
    best: float | None
    #: recommended officer -> their ETA when last computed (to notice one driving away)
    etas: dict[str, float]
    #: the highest score among the recommended officers (None if none has one)
    worst: float | None
    lon: float
    lat: float
    south: float
    north: float
    west: float
    east: float
    #: its row in the contest (see Contest.rows), None if short or with no best ETA
    row: Row | None

    @classmethod
    def of(
        cls,
        rec: Recommendation,
        incident: Incident,
        rule: DispatchRule,
        policy: Policy,
        *,
        published: Recommendation,
    ) -> Race:
        best = rec.candidates[0].eta_s if rec.candidates else None
        short = len(rec.recommended) < incident.officers_required
        chosen = set(rec.recommended)
        etas = {
            c.officer_id: c.eta_s
            for c in rec.candidates
            if c.officer_id in chosen and c.eta_s is not None
        }
        worst = max((c.score for c in rec.candidates if c.officer_id in chosen), default=None)
        lat, lon = incident.lat, incident.lon
        box = (lat, lat, lon, lon)
        if best is not None and not short:
            fastest = max(
                (s for t in Transport if (s := policy.speed(t, rule.grade)) is not None),
                default=0.0,
            )
            # Farther than this, even the fastest officer's ETA is not better_by_s better.
            # The first officer's ETA is at most best + better_by_s (further drift triggers
            # a recomputation, which resets best): to beat it by better_by_s takes < best.
            reach_m = best * fastest / policy.detour_factor
            # Great-circle distance >= R * |dlat|; and >= R * cos(lat) * |dlon| * 2/pi
            # for points within the latitude band; the box adds a margin to both.
            dlat = math.degrees(reach_m / EARTH_RADIUS_M) * 1.01 + 1e-9
            edge = min(abs(lat) + dlat, 89.0)
            dlon = dlat * (math.pi / 2) / math.cos(math.radians(edge)) * 1.01
            box = (lat - dlat, lat + dlat, lon - dlon, lon + dlon)
        row = None
        if best is not None and not short:
            grade = min(max(rule.grade, 1), 4)
            row = (*box, lon, lat, best, grade, math.inf if worst is None else worst)
        return cls(rec, published, incident, rule, short, best, etas, worst, lon, lat, *box, row)


#: A dispatch in the contest: (south, north, west, east, incident lon, lat, best ETA s,
#: grade 1-4, worst recommended score or inf)
Row = tuple[float, float, float, float, float, float, float, int, float]


#: A slot of the contest: (race, incident id, first recommended officer, rule)
Entry = tuple[Race, str, str | None, DispatchRule]

#: The row of a free slot of the contest's table: no point is in its box, and nobody
#: reaches it (grade 0: no speed; worst score -inf).
FREE_ROW: Final = (math.inf, -math.inf, math.inf, -math.inf, 0.0, 0.0, 0.0, 0, -math.inf)


class Contest:
    """The pending dispatches a moving officer could win, as boxes (see _contenders).

    Kept up to date one race at a time (:meth:`put`). A dispatch with a box has a slot,
    its row in :attr:`table`; a race replaced by another with a box keeps the slot (the
    last slot freed is taken first), so a copy of the table (the fix lane's) changes
    only where races did. ``version`` counts the changes."""

    __slots__ = (
        "always",
        "changed",
        "detour",
        "entries",
        "free",
        "races",
        "short",
        "slot_of",
        "table",
        "version",
    )

    def __init__(self, detour: float) -> None:
        #: dispatches with no best ETA to beat: every officer is asked
        self.always: dict[str, None] = {}
        #: per slot: None if free, or (race, incident id, first recommended officer, rule),
        #: what a copy of the table needs besides the row (see World.contest_boxes)
        self.entries: list[Entry | None] = []
        #: incident id -> slot, of the dispatches with a box
        self.slot_of: dict[str, int] = {}
        self.free: list[int] = []
        #: the rows by slot, for the scans (free slots: FREE_ROW); its length
        #: (doubled as needed) may exceed the slots'
        self.table = np.empty((0, 9))
        #: dispatches short of officers, by rule: any officer the rule admits may fill them
        self.short: dict[DispatchRule, dict[str, None]] = {}
        #: incident id -> race, of every pending dispatch
        self.races: dict[str, Race] = {}
        #: for the distance test: detour factor of the policy
        self.detour = detour
        self.version = 0
        #: slots written since a copy of the table last took them (see World.contest_boxes)
        self.changed: set[int] = set()

    def put(self, incident_id: str, race: Race | None) -> None:
        """The incident's race is now ``race`` (None: it is no pending dispatch)."""
        old = self.races.get(incident_id)
        if old is race:
            return
        self.version += 1
        if old is not None:
            self._take_out(incident_id, old)
        if race is None:
            self.races.pop(incident_id, None)
            return
        self.races[incident_id] = race
        if race.short:
            self.short.setdefault(race.rule, {})[incident_id] = None
        elif race.row is None:
            self.always[incident_id] = None
        else:
            slot = self.free.pop() if self.free else self._new_slot()
            self.slot_of[incident_id] = slot
            self.table[slot] = race.row
            first = race.rec.recommended[0] if race.rec.recommended else None
            self.entries[slot] = (race, incident_id, first, race.rule)
            self.changed.add(slot)

    def _take_out(self, incident_id: str, race: Race) -> None:
        if race.short:
            iids = self.short[race.rule]
            del iids[incident_id]
            if not iids:
                del self.short[race.rule]
        elif race.row is None:
            del self.always[incident_id]
        else:
            slot = self.slot_of.pop(incident_id)
            self.entries[slot] = None
            self.table[slot] = FREE_ROW
            self.changed.add(slot)
            self.free.append(slot)

    def _new_slot(self) -> int:
        slot = len(self.entries)
        self.entries.append(None)
        if slot >= len(self.table):
            table = np.empty((max(16, 2 * len(self.table)), 9))
            table[:slot] = self.table
            table[slot:] = FREE_ROW
            self.table = table
        return slot

    def containing(self, lon: float, lat: float, speeds: np.ndarray, held_at: int = 9) -> list[str]:
        """Ids whose box holds (lon, lat), of a grade before ``held_at``, that an officer
        travelling at ``speeds`` [m/s by grade] could reach in less than the best ETA
        (the first officer's ETA is at most best + better_by_s, see Race.of); and the
        ids with no best to beat."""
        entries = self.entries
        # (1e-9 relative slack: the exact test, in _beats, decides)
        inside = box_reach(self.table, len(entries), lon, lat, speeds, self.detour, held_at)
        return [*self.always, *_ids(entries, inside)]

    def within_reach(self, lon: float, lat: float, speeds: np.ndarray) -> list[str]:
        """Ids an officer at (lon, lat) travelling at ``speeds`` [m/s by grade] may reach
        within the worst recommended score (plus the rounding: see World._could_serve).

        A superset, for the caller to test exactly (the scan's distance, with some slack:
        see :mod:`sdo.domain.scans`).
        """
        rows = score_reach(
            self.table, len(self.entries), lon, lat, speeds, self.detour, SCORE_ROUNDING
        )
        return _ids(self.entries, rows)


def _ids(entries: list[Entry | None], slots: np.ndarray) -> list[str]:
    """The incident ids in these (taken) slots of the contest."""
    return [entry[1] for k in slots.tolist() if (entry := entries[k]) is not None]
