"""Scans of the fleet's and the contest's arrays, compiled with numba.

:class:`sdo.domain.fleet.Fleet` and the World's contest (``sdo.domain.world._Contest``)
keep their officers and pending dispatches in numpy columns, and ask of them, at every
recommendation, which rows pass a few tests. As numpy expressions a test costs one call
and one temporary array per operator, about 1 µs each however few the rows; here each
scan is one loop. Every distance the recommender ranks by or publishes is still
computed by :func:`sdo.domain.geo.haversine_many_m` (numpy), so those figures do not
depend on this module. Where a scan measures a distance itself (numba's sin and cos may
differ from numpy's in the last bit), it only tests it against a limit: the contest's
reach tests keep a superset, with slack far above such differences (the exact test
follows in the World), and the cover reach of a cluster's officers (:func:`reach_grid`)
could only differ for an officer within a nanometre of the limit.

These functions live in a module of their own because numba compiles them and mypyc
compiles their callers (see :mod:`sdo.compiled`): a module is compiled by one or the
other.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sdo.domain.geo import haversine_m

__all__ = [
    "box_reach",
    "held_nearer",
    "keep",
    "nearest_first",
    "reach_grid",
    "score_reach",
    "split_held",
    "warm_up",
]

#: :func:`sdo.domain.geo.haversine_m`, compiled (see the module docstring on its last bit).
_haversine = njit(cache=True)(haversine_m)


@njit(cache=True)
def keep(
    used: np.ndarray,
    tags: np.ndarray,
    until: np.ndarray,
    n: int,
    any_of: np.ndarray,
    all_of: int,
    until_after: float,
) -> np.ndarray:
    """The slots below ``n`` in use whose tags share a bit with each mask of ``any_of``
    and hold every bit of ``all_of``, and whose ``until`` is after ``until_after``."""
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if not used[i]:
            continue
        t = tags[i]
        ok = True
        for m in any_of:
            if t & m == 0:
                ok = False
                break
        if not ok or (t & all_of) != all_of:
            continue
        if until_after > -np.inf and not until[i] > until_after:
            continue
        out[k] = i
        k += 1
    return out[:k]


@njit(cache=True)
def split_held(
    index: np.ndarray,
    dist: np.ndarray,
    max_m: float,
    held: np.ndarray,
    free_above: int,
    mine: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of the slots ``index`` at distances ``dist``, those within ``max_m``, in two parts
    (order kept): free (held at a grade after ``free_above``, or a slot of ``mine``) and
    held."""
    free_i = np.empty(len(index), dtype=np.int64)
    free_d = np.empty(len(index))
    held_i = np.empty(len(index), dtype=np.int64)
    held_d = np.empty(len(index))
    f = h = 0
    for j in range(len(index)):
        d = dist[j]
        if not d <= max_m:
            continue
        slot = index[j]
        taken = held[slot] <= free_above
        if taken:
            for s in mine:
                if s == slot:
                    taken = False
                    break
        if taken:
            held_i[h] = slot
            held_d[h] = d
            h += 1
        else:
            free_i[f] = slot
            free_d[f] = d
            f += 1
    return free_i[:f], free_d[:f], held_i[:h], held_d[:h]


@njit(cache=True)
def nearest_first(
    index: np.ndarray, dist: np.ndarray, max_m: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The slots ``index`` at distances ``dist`` within ``max_m``, nearest first (a stable
    sort: equal distances keep their order), and whether two distances are equal."""
    inside = np.flatnonzero(dist <= max_m)
    d = dist[inside]
    order = np.argsort(d, kind="mergesort")
    d = d[order]
    ties = False
    for k in range(1, len(d)):
        if d[k] == d[k - 1]:
            ties = True
            break
    return index[inside][order], d, ties


@njit(cache=True)
def held_nearer(
    index: np.ndarray, dist: np.ndarray, limit: float, until: np.ndarray, sure_after: float
) -> tuple[int, np.ndarray, np.ndarray]:
    """Of the slots ``index`` at distances ``dist``, those nearer than ``limit``: how many
    have an ``until`` after ``sure_after``, and the others' slots; and apart, the slots
    at exactly ``limit`` (the caller breaks those ties)."""
    ask = np.empty(len(index), dtype=np.int64)
    ties = np.empty(len(index), dtype=np.int64)
    count = a = t = 0
    for j in range(len(index)):
        slot = index[j]
        if dist[j] == limit:
            ties[t] = slot
            t += 1
        elif dist[j] < limit:
            if until[slot] > sure_after:
                count += 1
            else:
                ask[a] = slot
                a += 1
    return count, ask[:a], ties[:t]


@njit(cache=True)
def reach_grid(
    lon: np.ndarray,
    lat: np.ndarray,
    speed: np.ndarray,
    index: np.ndarray,
    plons: np.ndarray,
    plats: np.ndarray,
    seconds: float,
    detour: float,
) -> np.ndarray:
    """Per slot of ``index`` and point, whether the officer there reaches the point in
    ``seconds`` at their ``speed`` (m/s) over the great-circle distance times ``detour``:
    (slots x points) booleans. (Only a point within the last bit of the limit could be
    judged otherwise than by numpy's formula.)"""
    out = np.zeros((len(index), len(plons)), dtype=np.bool_)
    for i in range(len(index)):
        slot = index[i]
        limit = speed[slot] * seconds / detour
        for j in range(len(plons)):
            out[i, j] = _haversine(lon[slot], lat[slot], plons[j], plats[j]) <= limit
    return out


#: Relative slack of the reach tests (the exact test, in the World, decides).
_SLACK = 1e-9


@njit(cache=True)
def box_reach(
    table: np.ndarray,
    rows: int,
    lon: float,
    lat: float,
    speeds: np.ndarray,
    detour: float,
    held_at: int,
) -> np.ndarray:
    """Rows of the contest's table (south, north, west, east, lon, lat, best ETA, grade,
    worst score) whose box holds (lon, lat), of a grade before ``held_at``, whose
    incident an officer travelling at ``speeds`` [m/s by grade] reaches within the best
    ETA (with slack)."""
    out = np.empty(rows, dtype=np.int64)
    k = 0
    for r in range(rows):
        if not (
            table[r, 0] <= lat <= table[r, 1]
            and table[r, 2] <= lon <= table[r, 3]
            and table[r, 7] < held_at
        ):
            continue
        reach = table[r, 6] * speeds[int(table[r, 7])] / detour
        if _haversine(table[r, 4], table[r, 5], lon, lat) <= reach * (1 + _SLACK):
            out[k] = r
            k += 1
    return out[:k]


@njit(cache=True)
def score_reach(
    table: np.ndarray,
    rows: int,
    lon: float,
    lat: float,
    speeds: np.ndarray,
    detour: float,
    rounding: float,
) -> np.ndarray:
    """Rows of the contest's table whose incident an officer at (lon, lat) travelling at
    ``speeds`` reaches within the worst recommended score plus ``rounding`` (with
    slack). A row with no worst score (inf) is reached at any distance, unless the
    officer does not travel at its grade (inf x 0: NaN, as a free row's -inf x 0)."""
    out = np.empty(rows, dtype=np.int64)
    k = 0
    for r in range(rows):
        reach = (table[r, 8] + rounding) * speeds[int(table[r, 7])] / detour
        if _haversine(table[r, 4], table[r, 5], lon, lat) <= reach * (1 + _SLACK) + 1e-6:
            out[k] = r
            k += 1
    return out[:k]


def warm_up() -> None:
    """Have numba compile every scan now (or load it from its cache, in milliseconds):
    a worker calls this at start, so its first recommendation does not wait about a
    second for the compiler."""
    table = np.zeros((1, 9))
    speeds = np.zeros(5)
    slots = np.zeros(1, dtype=np.int64)
    keep(np.zeros(1, dtype=np.bool_), slots, np.zeros(1), 1, slots, 0, -np.inf)
    split_held(slots, np.zeros(1), 1.0, slots, 1, slots)
    nearest_first(slots, np.zeros(1), np.inf)
    held_nearer(slots, np.zeros(1), np.inf, np.zeros(1), 0.0)
    reach_grid(np.zeros(1), np.zeros(1), np.zeros(1), slots, np.zeros(1), np.zeros(1), 1.0, 1.0)
    box_reach(table, 1, 0.0, 0.0, speeds, 1.0, 9)
    score_reach(table, 1, 0.0, 0.0, speeds, 1.0, 0.0)
