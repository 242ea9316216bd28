"""Time to recommend one incident at 1k, 10k and 50k officers (issue 3). Prints JSON.

    .venv/bin/python bench/recommend.py [--sizes 1000,10000,50000] [--incidents 300]

Officers are spread uniformly over the pilot areas' extent (the densest case for the
grid index: every officer is near every incident), a realistic role/status mix; incidents
are emergency and priority calls at random places. The figure is the pure domain call
(:func:`sdo.domain.recommend.recommend`), as the worker and ``sdo evaluate`` make it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from sdo.areas import load_areas
from sdo.config import Settings
from sdo.domain.grading import grade
from sdo.domain.recommend import recommend
from sdo.domain.scans import warm_up
from sdo.domain.state import IncidentRecord
from sdo.domain.world import World
from sdo.events import Incident, OfficerLocation, OfficerProfile, OfficerStatus, Thrive
from sdo.grade import load_rules

T0 = datetime(2015, 12, 1, 9, tzinfo=UTC)
ROLES = ["response"] * 6 + ["force_support", "neighbourhood", "pcso", "investigator"]
STATUSES = ["available"] * 5 + ["en_route", "at_scene", "committed", "refreshment"]
SKILLS = ["taser", "first_aid", "advanced_driver", "public_order", "ppu", "mental_health"]


def build(n: int, rng: random.Random) -> tuple[World, tuple[float, float, float, float]]:
    settings = Settings()
    areas = load_areas(settings.areas_path)
    world = World(areas, load_rules(settings.rules_path))
    boxes = [nb.bbox for nb in areas.neighbourhoods.values()]
    lo_lon, lo_lat = min(b[0] for b in boxes), min(b[1] for b in boxes)
    hi_lon, hi_lat = max(b[2] for b in boxes), max(b[3] for b in boxes)
    for i in range(n):
        oid = f"o{i}"
        role = rng.choice(ROLES)
        world.apply(
            OfficerProfile(
                event_id=f"p{i}",
                ts=T0,
                officer_id=oid,
                callsign=f"C{i}",
                role=role,
                skills=tuple(rng.sample(SKILLS, rng.randint(0, 3))),
                transport="desk"
                if role == "investigator"
                else rng.choice(["car", "car", "van", "foot", "bicycle"]),
            )
        )
        world.apply(
            OfficerStatus(event_id=f"s{i}", ts=T0, officer_id=oid, status=rng.choice(STATUSES))
        )
        world.apply(
            OfficerLocation(
                event_id=f"l{i}",
                ts=T0 + timedelta(seconds=rng.uniform(0, 60)),
                officer_id=oid,
                lon=rng.uniform(lo_lon, hi_lon),
                lat=rng.uniform(lo_lat, hi_lat),
            )
        )
    return world, (lo_lon, lo_lat, hi_lon, hi_lat)


def incident(i: int, rng: random.Random, extent: tuple[float, float, float, float]) -> Incident:
    level = rng.choice(["high", "medium"])
    return Incident(
        event_id=f"i{i}",
        ts=T0 + timedelta(minutes=2),
        incident_id=f"I{i}",
        lon=rng.uniform(extent[0], extent[2]),
        lat=rng.uniform(extent[1], extent[3]),
        category="violence",
        state="open",
        thrive=Thrive(
            threat=level,
            harm="low",
            risk="low",
            vulnerability="none",
            investigation=False,
            engagement=False,
            prevention=False,
        ),
        ongoing=False,
        offender_present=False,
        persistent=False,
        required_skills=("taser",) if rng.random() < 0.2 else (),
    )


def measure(n: int, count: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    world, extent = build(n, rng)
    samples = []
    for i in range(count):
        inc = incident(i, rng, extent)
        record = IncidentRecord(inc, created_ts=inc.ts)
        g = grade(inc, world.rules)
        start = time.perf_counter()
        rec = recommend(record, g, world, world.policy, inc.ts)
        samples.append(time.perf_counter() - start)
        assert rec.candidates or rec.shortfalls
    samples.sort()
    return {
        "officers": n,
        "incidents": count,
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
        "p50_ms": round(samples[len(samples) // 2] * 1000, 3),
        "p90_ms": round(samples[int(len(samples) * 0.9)] * 1000, 3),
        "max_ms": round(samples[-1] * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--incidents", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    warm_up()  # as the worker does at start: numba's compiled scans loaded before timing
    rows = [measure(n, args.incidents, args.seed) for n in sizes]
    base = rows[0]
    for row in rows:
        # growth of cost relative to growth of officers: < 1 means sub-linear
        row["cost_growth_per_officer_growth"] = (
            round((row["p50_ms"] / base["p50_ms"]) / (row["officers"] / base["officers"]), 3)
            if base["p50_ms"]
            else 0.0
        )
    target = next((r for r in rows if r["officers"] == 10000), None)
    json.dump(
        {
            "benchmark": "recommend",
            "python": sys.version.split()[0],
            "results": rows,
            "target": {
                "officers": 10000,
                "p50_ms_max": 5.0,
                "met": bool(target and target["p50_ms"] <= 5.0),
            },
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
