"""sdo.domain.scans: each numba scan selects what its numpy expression selected."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from sdo.domain.geo import haversine_many_m
from sdo.domain.scans import (
    box_reach,
    held_nearer,
    keep,
    nearest_first,
    reach_grid,
    score_reach,
    split_held,
)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("any_of", "all_of", "until_after"),
    [((), 0, -math.inf), ((0b11, 0b1100), 0, 1_000.0), ((0b1,), 0b10000, 500.0)],
)
def test_keep_is_the_mask_expression(
    seed: int, any_of: tuple[int, ...], all_of: int, until_after: float
) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    used = rng.random(n + 20) < 0.8
    tags = rng.integers(0, 1 << 6, n + 20)
    until = rng.choice([math.inf, 400.0, 1_000.0, 2_000.0], n + 20)
    expected = used[:n].copy()
    for mask in any_of:
        expected &= (tags[:n] & mask) != 0
    if all_of:
        expected &= (tags[:n] & all_of) == all_of
    if until_after > -math.inf:
        expected &= until[:n] > until_after
    got = keep(used, tags, until, n, np.array(any_of, dtype=np.int64), all_of, until_after)
    assert got.tolist() == np.flatnonzero(expected).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_split_held_parts_the_slots_in_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(500, 120, replace=False)).astype(np.int64)
    dist = rng.uniform(0, 10_000, len(index))
    held = rng.choice([1, 2, 3, 4, 99], 500).astype(np.int64)
    mine = index[rng.choice(len(index), 3, replace=False)]
    free, free_d, taken, taken_d = split_held(index, dist, 8_000.0, held, 2, mine)
    inside = dist <= 8_000.0
    i, d = index[inside], dist[inside]
    is_held = (held[i] <= 2) & ~np.isin(i, mine)
    assert free.tolist() == i[~is_held].tolist() and free_d.tolist() == d[~is_held].tolist()
    assert taken.tolist() == i[is_held].tolist() and taken_d.tolist() == d[is_held].tolist()


@pytest.mark.parametrize("seed", range(5))
def test_nearest_first_is_a_stable_sort_within_the_radius(seed: int) -> None:
    rng = np.random.default_rng(seed)
    index = rng.permutation(400)[:150].astype(np.int64)
    dist = rng.integers(0, 60, 150).astype(float) * 100.0  # (many equal distances)
    for max_m in (math.inf, 3_000.0):
        inside = dist <= max_m
        order = np.argsort(dist[inside], kind="stable")
        got, got_d, ties = nearest_first(index, dist, max_m)
        assert got.tolist() == index[inside][order].tolist()
        assert got_d.tolist() == dist[inside][order].tolist()
        assert ties
    distinct = np.arange(5.0)[::-1].copy()
    got, got_d, ties = nearest_first(np.arange(5, dtype=np.int64), distinct, math.inf)
    assert (got.tolist(), got_d.tolist(), ties) == ([4, 3, 2, 1, 0], [0, 1, 2, 3, 4], False)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("sure_after", [500.0, math.inf])
def test_held_nearer_counts_the_sure_and_lists_the_rest(seed: int, sure_after: float) -> None:
    rng = np.random.default_rng(seed)
    index = rng.permutation(300)[:80].astype(np.int64)
    dist = rng.integers(0, 40, 80).astype(float) * 100.0
    until = rng.choice([math.inf, 400.0, 600.0], 300)
    for limit in (math.inf, 2_000.0):
        count, ask, ties = held_nearer(index, dist, limit, until, sure_after)
        nearer = index[dist < limit]
        sure = until[nearer] > sure_after
        assert count == int(sure.sum())
        assert ask.tolist() == nearer[~sure].tolist()
        assert ties.tolist() == index[dist == limit].tolist()


@pytest.mark.parametrize("seed", range(5))
def test_reach_grid_is_the_distance_test(seed: int) -> None:
    """Who reaches which point (a cluster's neighbourhood centroids) in time, as the
    vectorised distance says, for a subset of the slots, in its order."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-2.1, -1.7, 400), rng.uniform(52.3, 52.7, 400)
    speed = rng.choice([0.0, 1.4, 4.0, 13.0], 400)
    index = rng.permutation(400)[:90].astype(np.int64)
    plons, plats = rng.uniform(-2.1, -1.7, 12), rng.uniform(52.3, 52.7, 12)
    got = reach_grid(lon, lat, speed, index, plons, plats, 900.0, 1.35)
    assert got.shape == (90, 12) and got.dtype == np.bool_
    limit = speed[index] * 900.0 / 1.35
    for j in range(12):
        dist = haversine_many_m(lon[index], lat[index], float(plons[j]), float(plats[j]))
        assert got[:, j].tolist() == (dist <= limit).tolist()
    assert 0 < got.sum() < got.size
    assert reach_grid(lon, lat, speed, index, plons[:0], plats[:0], 900.0, 1.35).shape == (90, 0)


def _table(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Contest rows around Birmingham: boxes, sites, best ETAs, grades, worst scores, with
    free rows (see sdo.domain.contest.FREE_ROW) and rows with no worst score."""
    lat, lon = rng.uniform(52.4, 52.6, rows), rng.uniform(-2.0, -1.7, rows)
    half = rng.uniform(0.005, 0.05, rows)
    best = rng.uniform(30, 900, rows)
    grade = rng.integers(1, 5, rows).astype(float)
    worst = best + rng.uniform(0, 300, rows)
    worst[rng.random(rows) < 0.1] = math.inf
    t = np.column_stack(
        [lat - half, lat + half, lon - 2 * half, lon + 2 * half, lon, lat, best, grade, worst]
    )
    t[rng.random(rows) < 0.1] = (math.inf, -math.inf, math.inf, -math.inf, 0, 0, 0, 0, -math.inf)
    return t


@pytest.mark.parametrize("seed", range(5))
def test_reach_scans_select_what_the_numpy_formulas_did(seed: int) -> None:
    """The contest's two scans against the vectorised formulas they replace (the same
    slack; a point on a limit to within the last bit is too unlikely to draw here)."""
    rng = np.random.default_rng(seed)
    t = _table(rng, 300)
    speeds = np.array([0.0, 17.0, 13.0, 0.0, 9.0])  # (grade 3: the transport does not travel)
    for _ in range(50):
        lon, lat = float(rng.uniform(-2.0, -1.7)), float(rng.uniform(52.4, 52.6))
        held_at = int(rng.integers(2, 10))
        dist = haversine_many_m(t[:, 4], t[:, 5], lon, lat)
        speed = speeds[t[:, 7].astype(np.int64)]
        box = (t[:, 0] <= lat) & (lat <= t[:, 1]) & (t[:, 2] <= lon) & (lon <= t[:, 3])
        reaches = t[:, 6] * speed / 1.3
        expected = np.flatnonzero(box & (t[:, 7] < held_at) & (dist <= reaches * (1 + 1e-9)))
        assert box_reach(t, len(t), lon, lat, speeds, 1.3, held_at).tolist() == expected.tolist()
        with np.errstate(invalid="ignore"):
            reach = (t[:, 8] + 0.01) * speed / 1.3
        expected = np.flatnonzero(dist <= reach * (1 + 1e-9) + 1e-6)
        assert score_reach(t, len(t), lon, lat, speeds, 1.3, 0.01).tolist() == expected.tolist()
    # a table longer than its rows: the rest is not read
    assert score_reach(t, 0, -1.9, 52.5, speeds, 1.3, 0.01).tolist() == []


def test_warm_up_compiles_every_scan() -> None:
    """In a fresh interpreter, warm_up leaves each scan compiled (a worker's first
    recommendation does not wait for numba); before it, none is."""
    code = (
        "import json\n"
        "from sdo.domain import scans\n"
        "fns = [getattr(scans, name) for name in scans.__all__ if name != 'warm_up']\n"
        "before = [len(f.signatures) for f in fns]\n"
        "scans.warm_up()\n"
        "print(json.dumps([before, [len(f.signatures) for f in fns]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout)
    assert len(before) == 7
    assert (before, after) == ([0] * 7, [1] * 7)
