"""Where officers are: an incrementally maintained grid index (pure).

Theory of operation
-------------------
Officers are bucketed into cells of a fixed lon/lat grid (``CELL_DEG`` ≈ 1.1 km north–south).
A fix moves an officer between at most two cells: O(1), no rebuild. A nearest-officer
query visits rings of cells around the incident, nearest ring first, and stops once
the ring's inner edge is farther than the k-th best distance found and the caller's
radius; so the work depends on how many officers are *near*, not on how many there are.
Distances are great-circle metres (:func:`sdo.domain.geo.haversine_m`), computed for the
officers in the visited cells only, vectorised when there are many.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from sdo.domain.geo import haversine_m, haversine_many_m

__all__ = ["CELL_DEG", "Fleet", "Hit"]

#: Grid cell size in degrees of latitude (and of longitude before the cos(lat) widening).
CELL_DEG: Final = 0.01
_M_PER_DEG_LAT: Final = 111_195.0
_VECTOR_FROM: Final = 24  # below this many points a Python loop beats numpy set-up


@dataclass(frozen=True, slots=True)
class Hit:
    officer_id: str
    distance_m: float


class Fleet:
    """Officer positions, indexed for "who is nearest to this point"."""

    __slots__ = (
        "_bounds",
        "_cells",
        "_free",
        "_group_of",
        "_groups",
        "_ids",
        "_lat",
        "_lon",
        "_pos",
        "_slot",
        "_speed",
    )

    def __init__(self) -> None:
        self._pos: dict[str, tuple[float, float, tuple[int, int]]] = {}
        self._cells: dict[tuple[int, int], set[str]] = {}
        # occupied-cell bounds; only ever grow, so they bound the search conservatively
        self._bounds: list[int] | None = None
        # Column store for vectorised group queries (cover): one slot per officer.
        self._slot: dict[str, int] = {}
        self._free: list[int] = []
        self._lon = np.zeros(64)
        self._lat = np.zeros(64)
        self._speed = np.zeros(64)
        self._ids: list[str | None] = []
        self._groups: dict[str, set[int]] = {}
        self._group_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, officer_id: object) -> bool:
        return officer_id in self._pos

    @staticmethod
    def _cell(lon: float, lat: float) -> tuple[int, int]:
        return (math.floor(lon / CELL_DEG), math.floor(lat / CELL_DEG))

    def position(self, officer_id: str) -> tuple[float, float] | None:
        """(lon, lat) of the officer's last indexed fix."""
        entry = self._pos.get(officer_id)
        return None if entry is None else (entry[0], entry[1])

    def move(self, officer_id: str, lon: float, lat: float) -> None:
        cell = self._cell(lon, lat)
        old = self._pos.get(officer_id)
        if old is not None and old[2] != cell:
            bucket = self._cells[old[2]]
            bucket.discard(officer_id)
            if not bucket:
                del self._cells[old[2]]
        if old is None or old[2] != cell:
            self._cells.setdefault(cell, set()).add(officer_id)
            b = self._bounds
            if b is None:
                self._bounds = [cell[0], cell[1], cell[0], cell[1]]
            else:
                b[0], b[1] = min(b[0], cell[0]), min(b[1], cell[1])
                b[2], b[3] = max(b[2], cell[0]), max(b[3], cell[1])
        self._pos[officer_id] = (lon, lat, cell)
        # The columns are read for group members only (set_group fills them on joining):
        # most moves are of officers in no group, and skip two numpy stores.
        if old is None:
            self._slot_of(officer_id)
        elif officer_id in self._group_of:
            slot = self._slot[officer_id]
            self._lon[slot] = lon
            self._lat[slot] = lat

    def _slot_of(self, officer_id: str) -> int:
        slot = self._slot.get(officer_id)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                slot = len(self._slot)
                if slot >= len(self._lon):
                    size = len(self._lon) * 2
                    self._lon = np.resize(self._lon, size)
                    self._lat = np.resize(self._lat, size)
                    self._speed = np.resize(self._speed, size)
            self._slot[officer_id] = slot
            if slot == len(self._ids):
                self._ids.append(officer_id)
            else:
                self._ids[slot] = officer_id
        return slot

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
            lon, lat, _ = self._pos[officer_id]
            self._lon[slot] = lon
            self._lat[slot] = lat

    def group_reach(
        self, group: str, points: list[tuple[float, float]], seconds: float, detour: float
    ) -> tuple[list[str], np.ndarray]:
        """Members of ``group`` and, per member and point, whether they reach it in time.

        Vectorised over the group's members: (members × points) booleans.
        """
        slots = self._groups.get(group)
        if not slots:
            return [], np.zeros((0, len(points)), dtype=bool)
        index = np.fromiter(slots, dtype=np.int64, count=len(slots))
        index.sort()
        lons, lats, speed = self._lon[index], self._lat[index], self._speed[index]
        reach = np.empty((len(index), len(points)), dtype=bool)
        limit = speed * seconds / detour
        for j, (plon, plat) in enumerate(points):
            reach[:, j] = haversine_many_m(lons, lats, plon, plat) <= limit
        ids = self._ids
        return [ids[int(i)] or "" for i in index], reach

    def remove(self, officer_id: str) -> None:
        self.set_group(officer_id, None)
        slot = self._slot.pop(officer_id, None)
        if slot is not None:
            self._ids[slot] = None
            self._free.append(slot)
        old = self._pos.pop(officer_id, None)
        if old is not None:
            bucket = self._cells[old[2]]
            bucket.discard(officer_id)
            if not bucket:
                del self._cells[old[2]]

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

        Ties break on officer id, so the answer never depends on insertion order.
        """
        if k <= 0 or not self._pos:
            return []
        cx, cy = self._cell(lon, lat)
        # one cell of longitude is narrower than one of latitude away from the equator
        lon_cell_m = CELL_DEG * _M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 0.05)
        lat_cell_m = CELL_DEG * _M_PER_DEG_LAT
        min_cell_m = min(lon_cell_m, lat_cell_m)
        best: list[Hit] = []
        max_ring = self._max_ring(cx, cy)
        for ring in range(max_ring + 1):
            # every officer in ring r is at least (r - 1) cells away in the narrower axis
            inner_m = max(ring - 1, 0) * min_cell_m
            if inner_m > max_m or (len(best) >= k and inner_m > best[-1].distance_m):
                break
            ids = [oid for oid in self._ring_ids(cx, cy, ring) if accept(oid)]
            if not ids:
                continue
            best.extend(self._distances(ids, lon, lat))
            best = sorted((h for h in best if h.distance_m <= max_m), key=_order)[:k]
        return best

    def _max_ring(self, cx: int, cy: int) -> int:
        # farthest cell that may be occupied, in rings
        b = self._bounds
        if b is None:
            return 0
        return max(abs(b[0] - cx), abs(b[2] - cx), abs(b[1] - cy), abs(b[3] - cy))

    def _ring_ids(self, cx: int, cy: int, ring: int) -> Iterator[str]:
        cells = self._cells
        if ring == 0:
            yield from cells.get((cx, cy), ())
            return
        for x in range(cx - ring, cx + ring + 1):
            for y in (cy - ring, cy + ring):
                yield from cells.get((x, y), ())
        for y in range(cy - ring + 1, cy + ring):
            for x in (cx - ring, cx + ring):
                yield from cells.get((x, y), ())

    def _distances(self, ids: list[str], lon: float, lat: float) -> list[Hit]:
        pos = self._pos
        if len(ids) < _VECTOR_FROM:
            return [Hit(oid, haversine_m(pos[oid][0], pos[oid][1], lon, lat)) for oid in ids]
        lons = np.fromiter((pos[oid][0] for oid in ids), dtype=np.float64, count=len(ids))
        lats = np.fromiter((pos[oid][1] for oid in ids), dtype=np.float64, count=len(ids))
        dist = haversine_many_m(lons, lats, lon, lat)
        return [Hit(oid, float(d)) for oid, d in zip(ids, dist, strict=True)]


def _order(hit: Hit) -> tuple[float, str]:
    return (hit.distance_m, hit.officer_id)
