"""How current the World keeps its pending dispatch recommendations. Prints JSON.

    .venv/bin/python bench/freshness.py [--days 0.1] [--officers 370] [--policy thrive]
                                        [--every 500] [--events N]

Replays a simulated log (the one ``bench/evaluate.py`` generates and caches, same seed and
arguments) through a :class:`~sdo.domain.world.World`, and every ``--every`` events
recomputes every pending dispatch from scratch against the current state (the recommender
on its own, as a fresh incident would get it). Counted, over all checks:

* ``missed``: the fresh first officer's ETA beats the current first officer's ETA (from
  where they are now) by more than ``better_by_s``: the World should have re-recommended;
* ``unavailable``: the current first officer may not be dispatched any more;
* ``short_but_free``: nobody is recommended, but the fresh computation finds someone.

This measures the re-recommendation triggers (which changes recompute what), not speed.
Small numbers of ``unavailable`` are expected at shift ends: a shift ends on the second its
officer's ``off_duty`` status arrives, and a check may fall between.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sdo.areas import load_areas
from sdo.config import Settings
from sdo.domain.geo import haversine_m
from sdo.domain.recommend import DispatchRule, Policy, recommend
from sdo.domain.world import World
from sdo.errors import BadInput
from sdo.evaluation.replay import read_log
from sdo.evaluation.simulate import INCIDENTS_PER_DAY, simulate, write_log
from sdo.grade import load_rules

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import PILOT_OFFICERS, SIMULATOR, START  # the same cached log as bench/evaluate.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=0.1)
    ap.add_argument("--officers", type=int, default=370)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sdo-bench"))
    ap.add_argument("--policy", default="thrive")
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--events", type=int, default=0, help="stop after N events (0: all)")
    args = ap.parse_args()
    settings = Settings()
    areas = load_areas(settings.areas_path)
    rules = load_rules(settings.rules_path)
    per_day = INCIDENTS_PER_DAY * args.officers / PILOT_OFFICERS
    args.dir.mkdir(parents=True, exist_ok=True)
    name = f"{SIMULATOR}-s{args.seed}-d{args.days:g}-o{args.officers}-i{per_day:.0f}.jsonl.gz"
    log = args.dir / name
    if not log.exists():
        part = log.with_name(f"part-{log.name}")
        write_log(
            simulate(
                areas,
                seed=args.seed,
                hours=24 * args.days,
                officers=args.officers,
                start=START,
                incidents_per_day=per_day,
            ),
            part,
        )
        part.rename(log)
    world = World(areas, rules, Policy.from_mapping(args.policy, rules.recommend))
    policy = world.policy
    checks = missed = unavailable = short_but_free = events = 0
    reader = read_log(log)
    try:
        for event in reader:
            events += 1
            try:
                world.apply(event)
            except BadInput:
                continue
            if events % args.every == 0:
                for iid in sorted(world._dispatching):  # a probe of the World's own state
                    record = world.incidents[iid]
                    grading = world.grading(iid)
                    current = world.recommendation(iid)
                    assert grading is not None and current is not None
                    fresh = recommend(record, grading, world, policy, world.now)
                    checks += 1
                    site = record.incident
                    if not current.recommended:
                        short_but_free += bool(fresh.recommended)
                        continue
                    first = world.officers.get(current.recommended[0])
                    rule = DispatchRule.of(policy, grading, site)
                    if first is None or not rule.admits(first, policy, world.now):
                        unavailable += 1
                        continue
                    if not fresh.recommended or first.lon is None or first.lat is None:
                        continue
                    best = world.officers[fresh.recommended[0]]
                    assert best.lon is not None and best.lat is not None
                    now_eta = policy.eta_s(
                        haversine_m(first.lon, first.lat, site.lon, site.lat),
                        first.transport,
                        grading.grade,
                    )
                    fresh_eta = policy.eta_s(
                        haversine_m(best.lon, best.lat, site.lon, site.lat),
                        best.transport,
                        grading.grade,
                    )
                    if (
                        now_eta is not None
                        and fresh_eta is not None
                        and fresh_eta + policy.better_by_s < now_eta
                    ):
                        missed += 1
            if args.events and events >= args.events:
                break
    finally:
        reader.close()
    print(
        json.dumps(
            {
                "benchmark": "re-recommendation freshness",
                "log": str(log),
                "policy": args.policy,
                "events": events,
                "every": args.every,
                "checks": checks,
                "missed": missed,
                "unavailable": unavailable,
                "short_but_free": short_but_free,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
