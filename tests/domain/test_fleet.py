"""sdo.domain.fleet: the grid index answers exactly what a brute-force scan answers."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from sdo.domain.fleet import Fleet, Hit
from sdo.domain.geo import haversine_m

Point = tuple[float, float]

# (name, centre lon, centre lat, half-width in degrees): a city, a county, high latitude
REGIONS = [
    ("birmingham", -1.82, 52.52, 0.08),
    ("west-midlands", -1.9, 52.5, 0.4),
    ("shetland", -1.2, 60.3, 0.3),
]

ACCEPT: dict[str, Callable[[str], bool]] = {
    "all": lambda oid: True,
    "even": lambda oid: int(oid[1:]) % 2 == 0,
    "one-in-seven": lambda oid: int(oid[1:]) % 7 == 0,
    "none": lambda oid: False,
}


def _scatter(seed: int, lon: float, lat: float, half: float, n: int) -> dict[str, Point]:
    rng = random.Random(seed)
    return {
        f"o{i:04d}": (lon + rng.uniform(-half, half), lat + rng.uniform(-half, half))
        for i in range(n)
    }


def _brute(
    points: dict[str, Point],
    lon: float,
    lat: float,
    k: int,
    accept: Callable[[str], bool],
    max_m: float,
) -> list[tuple[str, float]]:
    hits = [(oid, haversine_m(p[0], p[1], lon, lat)) for oid, p in points.items() if accept(oid)]
    hits = [h for h in hits if h[1] <= max_m]
    hits.sort(key=lambda h: (h[1], h[0]))
    return hits[:k] if k > 0 else []


def _check(
    fleet: Fleet, points: dict[str, Point], query: Point, k: int, accept: str, max_m: float
) -> None:
    got = fleet.nearest(query[0], query[1], k=k, accept=ACCEPT[accept], max_m=max_m)
    want = _brute(points, query[0], query[1], k, ACCEPT[accept], max_m)
    assert [h.officer_id for h in got] == [w[0] for w in want], (query, k, accept, max_m)
    for h, (_, d) in zip(got, want, strict=True):
        assert h.distance_m == pytest.approx(d, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(("region", "lon", "lat", "half"), REGIONS, ids=[r[0] for r in REGIONS])
@pytest.mark.parametrize(
    ("k", "max_m", "accept"),
    [
        (1, math.inf, "all"),
        (5, math.inf, "all"),
        (8, 3_000.0, "all"),
        (20, 10_000.0, "even"),
        (3, math.inf, "one-in-seven"),
        (50, 1_500.0, "all"),
        (400, math.inf, "all"),  # more than there are: everyone accepted, sorted
        (4, math.inf, "none"),
        (0, math.inf, "all"),
    ],
)
def test_nearest_equals_brute_force(
    region: str, lon: float, lat: float, half: float, k: int, max_m: float, accept: str
) -> None:
    """nearest() equals a haversine scan of everyone sorted by (distance, id), on random points."""
    seed = sum(map(ord, region)) + k
    points = _scatter(seed, lon, lat, half, 300)
    fleet = Fleet()
    for oid, (x, y) in points.items():
        fleet.move(oid, x, y)
    rng = random.Random(seed + 1)
    queries = [
        (lon + rng.uniform(-1.3, 1.3) * half, lat + rng.uniform(-1.3, 1.3) * half)
        for _ in range(25)
    ]
    queries.append((lon + 3 * half, lat - 3 * half))  # far outside the occupied cells
    for query in queries:
        _check(fleet, points, query, k, accept, max_m)


def test_moves_across_cells_and_removals_keep_answers_exact() -> None:
    """After random moves (within and across cells) and removals, answers match brute force."""
    rng = random.Random(42)
    points = _scatter(7, -1.82, 52.52, 0.1, 250)
    fleet = Fleet()
    for oid, (x, y) in points.items():
        fleet.move(oid, x, y)
    for step in range(600):
        oid = f"o{rng.randrange(250):04d}"
        if step % 5 == 0:
            fleet.remove(oid)
            points.pop(oid, None)
        else:
            # a small move (usually same cell) or a jump (another cell)
            spread = 0.001 if step % 2 else 0.05
            base = points.get(oid, (-1.82, 52.52))
            new = (base[0] + rng.uniform(-spread, spread), base[1] + rng.uniform(-spread, spread))
            fleet.move(oid, *new)
            points[oid] = new
        if step % 50 == 0:
            for _ in range(5):
                q = (-1.82 + rng.uniform(-0.12, 0.12), 52.52 + rng.uniform(-0.12, 0.12))
                _check(fleet, points, q, 6, "all", math.inf)
                _check(fleet, points, q, 3, "even", 4_000.0)
    assert len(fleet) == len(points)
    assert all(fleet.position(oid) == p for oid, p in points.items())


def test_group_reach_follows_moves_joins_and_leaves() -> None:
    """group_reach answers from current positions: officers moved while in a group, moved
    while outside it and then joined, removed and re-added (brute force alongside)."""
    rng = random.Random(7)
    fleet = Fleet()
    points: dict[str, Point] = {}
    groups: dict[str, tuple[str, float]] = {}
    centroids = [(-1.82, 52.52), (-1.75, 52.48), (-1.9, 52.55)]
    for step in range(1500):
        oid = f"o{rng.randrange(60):02d}"
        roll = rng.random()
        if roll < 0.1:
            fleet.remove(oid)
            points.pop(oid, None)
            groups.pop(oid, None)
        elif roll < 0.3 and oid in points:
            group = rng.choice([None, "cover:a", "cover:b"])
            speed = rng.choice([5.0, 13.0])
            fleet.set_group(oid, group, speed)
            if group is None:
                groups.pop(oid, None)
            else:
                groups[oid] = (group, speed)
        else:
            p = (-1.82 + rng.uniform(-0.1, 0.1), 52.52 + rng.uniform(-0.06, 0.06))
            fleet.move(oid, *p)
            points[oid] = p
        if step % 100 == 99:
            for group in ("cover:a", "cover:b"):
                members, reach = fleet.group_reach(group, centroids, 300.0, 1.35)
                expected = sorted(o for o, (g, _) in groups.items() if g == group)
                assert sorted(members) == expected
                for i, oid in enumerate(members):
                    limit = groups[oid][1] * 300.0 / 1.35
                    x, y = points[oid]
                    want = [haversine_m(x, y, cx, cy) <= limit for cx, cy in centroids]
                    assert list(reach[i]) == want, (step, oid)


def test_move_position_contains_remove() -> None:
    """move() indexes an officer, moving again replaces the position, remove() forgets it."""
    fleet = Fleet()
    fleet.move("a", -1.82, 52.52)
    assert "a" in fleet and len(fleet) == 1 and fleet.position("a") == (-1.82, 52.52)
    fleet.move("a", -1.70, 52.40)  # another cell
    assert fleet.position("a") == (-1.70, 52.40)
    assert [h.officer_id for h in fleet.nearest(-1.82, 52.52, k=5, accept=ACCEPT["all"])] == ["a"]
    fleet.remove("a")
    fleet.remove("a")  # removing twice is harmless
    assert "a" not in fleet and len(fleet) == 0 and fleet.position("a") is None
    assert fleet.nearest(-1.82, 52.52, k=5, accept=ACCEPT["all"]) == []


@pytest.mark.parametrize("count", [3, 30])  # below and above the vectorised threshold
def test_ties_break_on_officer_id(count: int) -> None:
    """Officers at the same distance come back in id order, whatever the insertion order."""
    ids = [f"o{i:04d}" for i in range(count)]
    fleet = Fleet()
    for oid in reversed(ids):
        fleet.move(oid, -1.82, 52.52)
    fleet.move("a-nearer", -1.8201, 52.5201)
    got = fleet.nearest(-1.8201, 52.5201, k=count, accept=ACCEPT["all"])
    assert got[0] == Hit("a-nearer", 0.0)
    assert [h.officer_id for h in got[1:]] == ids[: count - 1]
    assert len({h.distance_m for h in got[1:]}) == 1


def test_near_filters_by_tags_and_until_like_a_scan() -> None:
    """near(): the officers whose tags pass every mask and whose until is later, within
    the radius, by (distance, id): what filtering and sorting everyone would give."""
    rng = random.Random(7)
    points = _scatter(3, -1.82, 52.52, 0.2, 500)
    fleet = Fleet()
    tags: dict[str, int] = {}
    until: dict[str, float] = {}
    for oid, (lon, lat) in points.items():
        fleet.move(oid, lon, lat)
        tags[oid] = rng.getrandbits(6)
        until[oid] = rng.choice([math.inf, 100.0, 200.0])
        fleet.tag(oid, tags[oid], until[oid])
    for oid in list(points)[::9]:  # some leave; their slots are reused below
        fleet.remove(oid)
        del points[oid]
    for n in range(20):
        oid = f"new{n}"
        points[oid] = (-1.82 + n / 1000, 52.52)
        fleet.move(oid, *points[oid])
        tags[oid], until[oid] = 0b111111, math.inf
        fleet.tag(oid, tags[oid], until[oid])
    for any_of, all_of, after, max_m in [
        ((), 0, -math.inf, math.inf),
        ((0b11, 0b1100), 0, -math.inf, math.inf),
        ((0b1,), 0b100000, 150.0, 10_000.0),
        ((0b10000,), 0, 250.0, 2_000.0),
    ]:
        got = [
            (h.officer_id, h.distance_m)
            for h in fleet.near(
                -1.83, 52.51, max_m=max_m, any_of=any_of, all_of=all_of, until_after=after
            )
        ]
        want = sorted(
            (haversine_m(lon, lat, -1.83, 52.51), oid)
            for oid, (lon, lat) in points.items()
            if all(tags[oid] & m for m in any_of)
            and tags[oid] & all_of == all_of
            and until[oid] > after
        )
        want = [(oid, d) for d, oid in want if d <= max_m]
        assert [g[0] for g in got] == [w[0] for w in want], (any_of, all_of, after)
        assert all(g[1] == pytest.approx(w[1], rel=1e-9) for g, w in zip(got, want, strict=True))


def test_a_new_officer_has_no_tags_until_tagged() -> None:
    """move() of a new officer indexes them untagged: found with no mask, not with one."""
    fleet = Fleet()
    fleet.move("a", -1.82, 52.52)
    assert [h.officer_id for h in fleet.near(-1.82, 52.52)] == ["a"]
    assert list(fleet.near(-1.82, 52.52, any_of=(1,))) == []
    fleet.tag("a", 1)
    assert [h.officer_id for h in fleet.near(-1.82, 52.52, any_of=(1,))] == ["a"]
