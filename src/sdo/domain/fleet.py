"""Where officers are: a column store of positions and tags, scanned in numba (pure).

Theory of operation
-------------------
Every indexed officer has a slot in a few numpy columns: longitude, latitude, a word of
tag bits and an ``until`` time (what they are is the caller's business; the recommender
puts role, status and "can travel" in the bits and the shift end in ``until``). A fix
writes two cells of its slot: O(1), no index to maintain.

"Who is nearest to this point" filters the columns by tags first (one compiled scan over
all slots, :mod:`sdo.domain.scans`), then computes great-circle distances
(:func:`haversine_many_m`) for the survivors only, and sorts them. On the pilot's and a
force's scale (hundreds to some thousands on duty) one query is tens of microseconds,
and it costs the same however many of the nearest officers are busy or held by other
incidents; a ring search around the point, which this replaced, had to visit them all
one by one in Python.

Results are ordered by (distance, officer id), so they never depend on slot order.

The fleet also knows which officers a pending incident holds, and at what grade
(:meth:`Fleet.hold`): the recommender passes over officers held at its grade or higher,
and with many incidents pending (every call dispatched, as under the ``closest`` policy)
most of the nearest officers are held. :meth:`Fleet.nearby` sets them apart in one scan,
to be counted, not asked about one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator
from typing import Final, NamedTuple

import numpy as np

from sdo.domain.geo import haversine_many_m
from sdo.domain.scans import held_nearer, keep, nearest_first, reach_grid, split_held

__all__ = ["NOT_HELD", "Fleet", "Hit", "Nearby"]

_START: Final = 64  # initial column length; doubled as needed
#: The held grade of an officer no incident holds (grades are 1-4; later than any).
NOT_HELD: Final = 99


class Hit(NamedTuple):
    """An officer :meth:`Fleet.near` found, and how far away (a named tuple: a query
    may yield hundreds, one C call each)."""

    officer_id: str
    distance_m: float


class Nearby:
    """Officers near a point, the free apart from the held (see :meth:`Fleet.nearby`)."""

    __slots__ = ("_fleet", "_free", "_free_dist", "_held", "_held_dist")

    def __init__(
        self,
        fleet: Fleet,
        free: np.ndarray,
        free_dist: np.ndarray,
        held: np.ndarray,
        held_dist: np.ndarray,
    ) -> None:
        self._fleet = fleet
        self._free, self._free_dist = free, free_dist
        self._held, self._held_dist = held, held_dist

    def hits(self) -> Iterator[Hit]:
        """The free officers, nearest first, ties by id (lazily, as :meth:`Fleet.near`)."""
        return self._fleet._hits(self._free, self._free_dist, math.inf)

    def held_before(self, before: Hit | None, sure_after: float) -> tuple[int, np.ndarray]:
        """Of the held officers :meth:`hits` would have yielded before ``before`` (all of
        them if None), had they been free: how many have an ``until`` after
        ``sure_after``, and the slots of the others (see :meth:`Fleet.ids_of`), in no
        particular order."""
        fleet = self._fleet
        limit = math.inf if before is None else before.distance_m
        count, ask, ties = held_nearer(self._held, self._held_dist, limit, fleet._until, sure_after)
        if len(ties) and before is not None:
            # ties with ``before`` go in id order, as hits yields them
            ids = fleet._ids
            first = [i for i in ties.tolist() if (ids[i] or "") < before.officer_id]
            unsure = [i for i in first if not fleet._until[i] > sure_after]
            count += len(first) - len(unsure)
            ask = np.concatenate([ask, np.array(unsure, dtype=np.int64)])
        return count, ask


class Fleet:
    """Officer positions and tags, for "who is nearest to this point"."""

    __slots__ = (
        "_free",
        "_group_of",
        "_groups",
        "_held",
        "_held_grade",
        "_ids",
        "_lat",
        "_lon",
        "_masks",
        "_slot",
        "_speed",
        "_tags",
        "_until",
        "_used",
    )

    def __init__(self) -> None:
        self._slot: dict[str, int] = {}
        self._free: list[int] = []
        self._ids: list[str | None] = []
        self._lon = np.zeros(_START)
        self._lat = np.zeros(_START)
        self._speed = np.zeros(_START)
        self._tags = np.zeros(_START, dtype=np.int64)
        self._until = np.zeros(_START)
        self._used = np.zeros(_START, dtype=bool)
        self._held = np.full(_START, NOT_HELD, dtype=np.int64)
        #: officer id -> grade of the incident holding them (indexed or not)
        self._held_grade: dict[str, int] = {}
        self._groups: dict[str, set[int]] = {}
        self._group_of: dict[str, str] = {}
        #: the tag masks of near's ``any_of``, as the arrays the scan takes
        self._masks: dict[tuple[int, ...], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, officer_id: object) -> bool:
        return officer_id in self._slot

    def position(self, officer_id: str) -> tuple[float, float] | None:
        """(lon, lat) of the officer's last indexed fix."""
        slot = self._slot.get(officer_id)
        return None if slot is None else (float(self._lon[slot]), float(self._lat[slot]))

    def slot_of(self, officer_id: str) -> int:
        """The officer's slot in :meth:`columns`, or -1 if not indexed."""
        return self._slot.get(officer_id, -1)

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """The longitude and latitude columns, by slot, for a caller that moves officers
        itself (``sdo.domain.lane``); they are replaced when the fleet grows."""
        return self._lon, self._lat

    def move(self, officer_id: str, lon: float, lat: float) -> None:
        slot = self._slot.get(officer_id)
        if slot is None:
            slot = self._new_slot(officer_id)
        self._lon[slot] = lon
        self._lat[slot] = lat

    def tag(self, officer_id: str, tags: int, until: float = math.inf) -> None:
        """Set an indexed officer's tag bits and ``until`` time (see :meth:`near`)."""
        slot = self._slot.get(officer_id)
        if slot is not None:
            self._tags[slot] = tags
            self._until[slot] = until

    def held_grade(self, officer_id: str) -> int | None:
        """The grade of the incident holding the officer (see :meth:`hold`), if one does;
        for an indexed officer, what their slot says."""
        slot = self._slot.get(officer_id)
        if slot is None:
            return self._held_grade.get(officer_id)
        grade = int(self._held[slot])
        return None if grade == NOT_HELD else grade

    def hold(self, officer_id: str, grade: int | None) -> None:
        """Note that a pending incident of ``grade`` holds the officer, or (None) none does.
        Kept while the officer is not indexed, for when they are again."""
        if grade is None:
            self._held_grade.pop(officer_id, None)
        else:
            self._held_grade[officer_id] = grade
        slot = self._slot.get(officer_id)
        if slot is not None:
            self._held[slot] = NOT_HELD if grade is None else grade

    def _new_slot(self, officer_id: str) -> int:
        if self._free:
            slot = self._free.pop()
            self._ids[slot] = officer_id
        else:
            slot = len(self._ids)
            if slot >= len(self._lon):
                size = len(self._lon) * 2
                self._lon = np.resize(self._lon, size)
                self._lat = np.resize(self._lat, size)
                self._speed = np.resize(self._speed, size)
                self._tags = np.resize(self._tags, size)
                self._until = np.resize(self._until, size)
                self._used = np.resize(self._used, size)
                self._held = np.resize(self._held, size)
            self._ids.append(officer_id)
        self._slot[officer_id] = slot
        self._used[slot] = True
        self._tags[slot] = 0
        self._until[slot] = math.inf
        self._held[slot] = self._held_grade.get(officer_id, NOT_HELD)
        return slot

    def remove(self, officer_id: str) -> None:
        self.set_group(officer_id, None)
        slot = self._slot.pop(officer_id, None)
        if slot is not None:
            self._ids[slot] = None
            self._used[slot] = False
            self._free.append(slot)

    def near(
        self,
        lon: float,
        lat: float,
        *,
        max_m: float = math.inf,
        any_of: tuple[int, ...] = (),
        all_of: int = 0,
        until_after: float = -math.inf,
    ) -> Iterator[Hit]:
        """Indexed officers within ``max_m`` of (lon, lat), nearest first, ties by id.

        Only officers whose tags share a bit with every mask in ``any_of``, hold every bit
        of ``all_of``, and whose ``until`` is later than ``until_after``. Lazy: a caller
        that stops after the first few pays for the scan and the sort, nothing more.
        """
        index = self._keep(any_of, all_of, until_after)
        dist = haversine_many_m(self._lon[index], self._lat[index], lon, lat)
        return self._hits(index, dist, max_m)

    def nearby(
        self,
        lon: float,
        lat: float,
        *,
        max_m: float,
        any_of: tuple[int, ...],
        all_of: int,
        until_after: float,
        free_above: int,
        mine: Collection[str],
    ) -> Nearby:
        """The officers :meth:`near` gives, in two parts: those no incident holds at grade
        ``free_above`` or a lower one (see :meth:`hold`), or held but in ``mine``
        (:meth:`Nearby.hits`), and the others (:meth:`Nearby.held_before`)."""
        index = self._keep(any_of, all_of, until_after)
        dist = haversine_many_m(self._lon[index], self._lat[index], lon, lat)
        slots = [s for oid in mine if (s := self._slot.get(oid)) is not None]
        free, free_dist, held, held_dist = split_held(
            index, dist, max_m, self._held, free_above, np.array(slots, dtype=np.int64)
        )
        return Nearby(self, free, free_dist, held, held_dist)

    def _hits(self, index: np.ndarray, dist: np.ndarray, max_m: float) -> Iterator[Hit]:
        """The slots of ``index`` (at distances ``dist``) within ``max_m``, as hits nearest
        first, ties by id."""
        index, dist, ties = nearest_first(index, dist, max_m)
        ids = self._ids
        if ties:
            # equal distances (rare but real: officers at one station) go in id order
            pairs = sorted(zip(dist.tolist(), [ids[i] or "" for i in index.tolist()], strict=True))
            for d, oid in pairs:
                yield Hit(oid, d)
            return
        # (a generator, not a generator expression: compiled, one would be a whole list)
        for i, d in zip(index.tolist(), dist.tolist(), strict=True):
            yield Hit(ids[i] or "", d)

    def ids_of(self, slots: np.ndarray) -> list[str]:
        """The officer ids of these slots (as :meth:`Nearby.held_before` gives them)."""
        ids = self._ids
        return [ids[i] or "" for i in slots.tolist()]

    def _keep(self, any_of: tuple[int, ...], all_of: int, until_after: float) -> np.ndarray:
        """The slots holding an officer passing the tag and ``until`` tests (see near)."""
        masks = self._masks.get(any_of)
        if masks is None:
            masks = self._masks[any_of] = np.array(any_of, dtype=np.int64)
        return keep(self._used, self._tags, self._until, len(self._ids), masks, all_of, until_after)

    def nearest(
        self,
        lon: float,
        lat: float,
        *,
        k: int,
        accept: Callable[[str], bool],
        max_m: float = math.inf,
    ) -> list[Hit]:
        """Up to ``k`` accepted officers nearest to (lon, lat) within ``max_m``, nearest first.

        ``accept`` is asked in order of distance, and no further than the k-th accepted.
        """
        if k <= 0:
            return []
        best: list[Hit] = []
        for hit in self.near(lon, lat, max_m=max_m):
            if accept(hit.officer_id):
                best.append(hit)
                if len(best) == k:
                    break
        return best

    # -- groups (cover) -------------------------------------------------------------------

    def set_group(self, officer_id: str, group: str | None, speed_mps: float = 0.0) -> None:
        """Put an indexed officer in one named group (e.g. a cluster's cover), or none."""
        slot = self._slot.get(officer_id)
        if slot is None:
            return
        old = self._group_of.pop(officer_id, None)
        if old is not None:
            self._groups[old].discard(slot)
        if group is not None:
            self._groups.setdefault(group, set()).add(slot)
            self._group_of[officer_id] = group
            self._speed[slot] = speed_mps

    def group_reach(
        self, group: str, points: list[tuple[float, float]], seconds: float, detour: float
    ) -> tuple[list[str], np.ndarray]:
        """Members of ``group`` and, per member and point, whether they reach it in time.

        One compiled scan (:func:`sdo.domain.scans.reach_grid`): (members × points) booleans.
        """
        slots = self._groups.get(group)
        if not slots:
            return [], np.zeros((0, len(points)), dtype=bool)
        members = sorted(slots)
        points_at = np.array(points, dtype=np.float64).reshape(len(points), 2)
        reach = reach_grid(
            self._lon,
            self._lat,
            self._speed,
            np.array(members, dtype=np.int64),
            points_at[:, 0],
            points_at[:, 1],
            seconds,
            detour,
        )
        ids = self._ids
        return [ids[i] or "" for i in members], reach
