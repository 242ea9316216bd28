"""Offline evaluation throughput (issue 5): ``sdo evaluate`` over a simulated log. Prints JSON.

    .venv/bin/python bench/evaluate.py [--days 7] [--officers 370] [--dir /tmp/sdo-bench]
                                       [--policy thrive --policy closest] [--profile 15]
                                       [--python] [--together] [--closed-loop]

The log is generated once with :func:`sdo.evaluation.simulate.simulate` into ``--dir`` (reused when
present; same seed and arguments give the same bytes) at force scale: ``--officers`` is
officers on duty at once, as ``sdo simulate`` takes it (370: a roster of about 1,000), and
incidents grow with it (400 a day per 120 on duty, the pilot's) unless
``--incidents-per-day`` says otherwise. Then, for each policy, one timed streaming pass
of :func:`sdo.evaluation.evaluate.evaluate` — the function ``sdo evaluate`` runs — with the
recommendations written to ``/dev/null``. Each pass reports how many fixes the compiled
fix lane (:mod:`sdo.domain.lane`) applied and the lines it left to Python, by reason.
``--python`` also times each policy without the lane (every line decoded and applied in
Python, as before the lane), and a decode-only pass of that path (every line read and
checked, a plain AVL fix into a ``Fix``, anything else into its model; no domain): its
ceiling. Peak RSS is the process's high-water mark (``resource.getrusage``): the log is
streamed, so it stays bounded by the live state.

``--closed-loop`` runs each pass in closed loop (:mod:`sdo.evaluation.closed_loop`: the
policy's recommendations carried out), ``closest`` on the calls the log's dispatch
attended, as ``sdo evaluate`` does by default on a simulated log; target 100,000 events/s.

``--together`` also times one call evaluating every policy at once, a process each (what
``sdo evaluate`` does by default): its wall time against the sum of the passes.

``--profile N`` also prints the N functions with the most own time during the first
policy's pass (cProfile) to stderr; that pass is then slower and not reported. cProfile
does not see into the compiled decision core: run with ``SDO_PURE=1`` to profile it from
source (see :mod:`sdo.compiled`; the JSON's ``decision_core`` says which ran).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sdo import compiled
from sdo.areas import load_areas
from sdo.config import Settings
from sdo.evaluation.closed_loop import attended
from sdo.evaluation.evaluate import default_jobs, evaluate
from sdo.evaluation.replay import read_log
from sdo.evaluation.simulate import INCIDENTS_PER_DAY, simulate, write_log

TARGET_EVENTS_PER_S = {"thrive": 200_000, "closest": 80_000}
TARGET_CLOSED_LOOP_EVENTS_PER_S = 100_000
START = datetime(2015, 12, 1, 6, tzinfo=UTC)
PILOT_OFFICERS = 120
#: The simulator's version in the log's name: a log of an older simulator is not reused.
SIMULATOR = "sim2"


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--officers", type=int, default=370, help="on duty at once")
    ap.add_argument("--incidents-per-day", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/sdo-bench"))
    ap.add_argument("--policy", action="append", default=None)
    ap.add_argument("--profile", type=int, default=0, metavar="N")
    ap.add_argument("--python", action="store_true", help="also time the path without the lane")
    ap.add_argument(
        "--together", action="store_true", help="also time all policies at once (--jobs)"
    )
    ap.add_argument("--closed-loop", action="store_true", help="each pass in closed loop")
    args = ap.parse_args()
    policies = args.policy or ["thrive", "closest"]
    per_day = args.incidents_per_day or INCIDENTS_PER_DAY * args.officers / PILOT_OFFICERS
    settings = Settings()

    args.dir.mkdir(parents=True, exist_ok=True)
    name = f"{SIMULATOR}-s{args.seed}-d{args.days:g}-o{args.officers}-i{per_day:.0f}.jsonl.gz"
    log = args.dir / name
    generated_s = None
    if not log.exists():
        began = time.perf_counter()
        part = log.with_name(f"part-{log.name}")  # still ends in .gz: written compressed
        events = simulate(
            load_areas(settings.areas_path),
            seed=args.seed,
            hours=24 * args.days,
            officers=args.officers,
            start=START,
            incidents_per_day=per_day,
        )
        write_log(events, part)
        part.rename(log)
        generated_s = round(time.perf_counter() - began, 1)

    began = time.perf_counter()
    reader = read_log(log)
    lines_n = sum(block.count(b"\n") for block in reader.blocks())
    reader.close()
    read_s = time.perf_counter() - began
    sys.stderr.write(f"read only: {lines_n} lines in {read_s:.1f} s\n")
    seen = None
    if args.closed_loop:
        began = time.perf_counter()
        reader = read_log(log)
        seen = attended(reader)
        reader.close()
        sys.stderr.write(
            f"attended: {len(seen)} incidents in {time.perf_counter() - began:.1f} s\n"
        )
    loop = {"closed_loop": args.closed_loop, "attended": seen}
    decode: dict[str, float | int] | None = None
    if args.python:
        began = time.perf_counter()
        reader = read_log(log)
        decoded = sum(1 for _ in reader.items())  # plain fixes as Fix, the rest as models
        reader.close()
        took = time.perf_counter() - began
        decode = {"seconds": round(took, 2), "events_per_s": round(decoded / took)}
        sys.stderr.write(f"decode only: {json.dumps(decode)}\n")

    results: dict[str, dict[str, float | int]] = {}
    if args.profile:
        profiler = cProfile.Profile()
        with open(os.devnull, "wb") as sink:  # noqa: PTH123
            profiler.runcall(evaluate, log, settings, policies[:1], sink=sink, **loop)
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
        stats.print_stats(args.profile)
        sys.stderr.write(text.getvalue())
    events_n = 0
    for name in policies:
        began = time.perf_counter()
        lane: dict[str, dict[str, object]] = {}
        with open(os.devnull, "wb") as sink:  # noqa: PTH123
            metrics = evaluate(log, settings, [name], sink=sink, lane_stats=lane, **loop)[name]
        took = time.perf_counter() - began
        events_n = metrics["events"] + metrics["invalid_lines"]
        results[name] = {
            "seconds": round(took, 2),
            "events_per_s": round(events_n / took),
            "recommendations": metrics["recommendations"],
            "incidents": metrics["incidents"],
            "lane": lane[name],
            "peak_rss_mb_so_far": _rss_mb(),
        }
        if args.python:
            began = time.perf_counter()
            with open(os.devnull, "wb") as sink:  # noqa: PTH123
                evaluate(log, settings, [name], sink=sink, lane=False, **loop)
            took = time.perf_counter() - began
            results[name]["without_lane"] = {
                "seconds": round(took, 2),
                "events_per_s": round(events_n / took),
            }
        # a long run stopped later still leaves each finished pass on record
        sys.stderr.write(f"{name}: {json.dumps(results[name])}\n")
    together = None
    if args.together:
        jobs = default_jobs(len(policies))
        began = time.perf_counter()
        with open(os.devnull, "wb") as sink:  # noqa: PTH123
            evaluate(log, settings, policies, sink=sink, jobs=jobs, **loop)
        took = time.perf_counter() - began
        together = {
            "jobs": jobs,
            "seconds": round(took, 2),
            "one_after_the_other_s": round(sum(float(r["seconds"]) for r in results.values()), 2),
        }
        sys.stderr.write(f"together: {json.dumps(together)}\n")
    targets = {
        name: TARGET_CLOSED_LOOP_EVENTS_PER_S
        if args.closed_loop
        else TARGET_EVENTS_PER_S.get(name.split("@")[0], TARGET_EVENTS_PER_S["thrive"])
        for name in results
    }
    print(
        json.dumps(
            {
                "benchmark": "sdo evaluate throughput",
                "log": str(log),
                "log_mb": round(log.stat().st_size / 2**20, 1),
                "generated_s": generated_s,
                "days": args.days,
                "officers": args.officers,
                "incidents_per_day": round(per_day),
                "events": events_n,
                "read_only": {
                    "seconds": round(read_s, 2),
                    "lines_per_s": round(lines_n / read_s),
                },
                "decode_only_without_lane": decode,
                "policies": results,
                "all_policies_at_once": together,
                "peak_rss_mb": _rss_mb(),
                "closed_loop": args.closed_loop,
                "target_events_per_s": targets,
                "met": all(results[n]["events_per_s"] >= targets[n] for n in results),
                "cpus": os.cpu_count(),
                # which build of sdo.domain ran (scripts/setup compiles it; see sdo.compiled)
                "decision_core": "compiled" if compiled.in_use() else "source",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
