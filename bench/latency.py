"""Latency: incident produced → recommendation on the SDO's screen, under load (issue 6).

    .venv/bin/python bench/latency.py [--quick] [--officers 5000] [--fix-rate 2000]
                                      [--incidents 200] [--incident-rate 5]

Method. On a fresh embedded broker and topic prefix: every officer's profile, status and
first fix; ``sdo worker`` started and waited for until every officer's fix is in its table;
``sdo console`` started and one authenticated websocket client connected (a viewer), read
until the console reports its feed ``live``. Then, for the measured phase, this process
publishes fixes at ``--fix-rate`` per second (paced every 10 ms, round-robin over the
officers, event time = now) and ``--incidents`` new emergency/priority incidents at
``--incident-rate`` per second, and records for each incident, with one monotonic clock:

* ``websocket``: from just before the incident is handed to the producer to the first
  ``recommendation`` message for it on the websocket (what the SDO sees);
* ``kafka``: the same start to the first record for it on the ``recommendation`` topic
  (the worker alone, without the console's hop).

Prints JSON with p50/p90/p99/max for both, and the targets (p50 ≤ 50 ms, p99 ≤ 250 ms on
the websocket path). The load generator, the websocket client and the Kafka reader share
this process and the machine's two cores with the broker, worker and console.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import Fleet, Stack, log

TARGET_P50_MS = 50.0
TARGET_P99_MS = 250.0
#: A new console replays the preloaded feed before it reports ``live`` (minutes at 40k).
CATCH_UP_TIMEOUT_S = 900.0
#: How long to wait for the last recommendations after the last incident.
DRAIN_S = 15.0
TICK_S = 0.01


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    from sdo.config import Topics  # noqa: PLC0415
    from sdo.console.auth import add_user  # noqa: PLC0415

    prefix = common.new_prefix("latency")
    topics = Topics(prefix)
    bootstrap = stack.broker.bootstrap
    fleet = Fleet(args.officers, datetime.now(UTC), seed=5)
    worker, watch = await common.load_worker(stack, prefix, fleet, 1)
    log(f"worker {worker.pid} holds {len(watch.held)} officers")

    users = stack.tmp / "users.json"
    token, _ = add_user(users, "bench", "viewer")
    console, ws_url = stack.console(prefix, users)
    ws = await common.ws_connect(ws_url, token)
    await common.ws_wait_live(ws, timeout=CATCH_UP_TIMEOUT_S)
    log(f"console {console.pid} live at {ws_url}")

    recs = common.consumer(bootstrap, fetch_max_wait_ms=5)
    await common.assign_all(recs, [topics.recommendation], from_end=True)

    sent: dict[str, float] = {}
    at_ws: dict[str, float] = {}
    at_kafka: dict[str, float] = {}
    stop = asyncio.Event()

    resyncs = 0
    #: from the console's status messages (every few seconds): how far its clock (the
    #: latest event time it applied) is behind its wall clock, ms; the fixes are
    #: stamped with the time they are sent, so this is how far its feed is behind
    feed_behind_ms: list[float] = []

    async def read_ws() -> None:
        nonlocal resyncs
        async for raw in ws:
            if raw.startswith('{"type":"snapshot"'):
                resyncs += 1  # the console's queue for this client overflowed
            if raw.startswith('{"type":"status"') and sent:
                status = orjson.loads(raw)
                if status.get("event_time") and status.get("server_time"):
                    behind = datetime.fromisoformat(status["server_time"]) - datetime.fromisoformat(
                        status["event_time"]
                    )
                    feed_behind_ms.append(behind.total_seconds() * 1000)
            if raw.startswith('{"type":"recommendation"'):
                now = time.monotonic()
                iid = orjson.loads(raw)["recommendation"]["incident_id"]
                if iid in sent and iid not in at_ws:
                    at_ws[iid] = now

    async def read_kafka() -> None:
        while not stop.is_set():
            batches = await recs.getmany(timeout_ms=100)
            now = time.monotonic()
            for batch in batches.values():
                for r in batch:
                    iid = r.key.decode() if r.key else None
                    if iid in sent and iid not in at_kafka:
                        at_kafka[iid] = now

    fix_prod = common.producer(bootstrap)
    inc_prod = common.producer(bootstrap, linger_ms=0)
    await fix_prod.start()
    await inc_prod.start()
    fixes_sent = 0

    async def background_fixes() -> None:
        nonlocal fixes_sent
        per_tick = args.fix_rate * TICK_S
        owed = 0.0
        k = 1
        i = 0
        next_tick = time.monotonic()
        while not stop.is_set():
            owed += per_tick
            now = datetime.now(UTC)
            while owed >= 1:
                r = fleet.fix(topics, i, k, now)
                await fix_prod.send(r.topic, r.value, key=r.key, timestamp_ms=r.ts_ms)
                fixes_sent += 1
                owed -= 1
                i += 1
                if i == fleet.n:
                    i, k = 0, k + 1
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    async def incidents() -> None:
        rng = random.Random(11)
        tag = prefix.split(".")[-2]
        gap = 1.0 / args.incident_rate
        next_at = time.monotonic()
        for n in range(args.incidents):
            r = common.incident(n, rng, fleet.extent, datetime.now(UTC), tag)
            iid = r.key.decode()
            sent[iid] = time.monotonic()
            await inc_prod.send(topics.incident, r.value, key=r.key, timestamp_ms=r.ts_ms)
            next_at += gap
            if n == args.incidents // 2:
                midway.update(cpu_now(), at=time.monotonic())
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    tasks = [asyncio.create_task(t()) for t in (read_ws, read_kafka, background_fixes)]
    procs = {"worker": worker, "console": console}

    def cpu_now() -> dict[str, float]:
        out = {name: common.cpu_seconds(p.pid) for name, p in procs.items()}
        out["broker"] = common.cpu_seconds(stack.broker.pid)  # Tansu's own process
        return out

    cpu0 = cpu_now()
    midway: dict[str, float] = {}  # CPU seconds when half the incidents were sent
    bench_cpu0 = time.process_time()  # this process: load generator and both readers
    log(f"load: {args.fix_rate} fixes/s; {args.incidents} incidents at {args.incident_rate}/s")
    started = time.monotonic()
    # a warm-up second of background fixes before the first incident
    await asyncio.sleep(1.0)
    await incidents()
    deadline = time.monotonic() + DRAIN_S
    # two reader tasks fill the dicts; a bounded poll until both have every incident
    while time.monotonic() < deadline and (len(at_ws) < len(sent) or len(at_kafka) < len(sent)):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    cpu_end = cpu_now()
    cpu = {n: round(cpu_end[n] - cpu0[n], 1) for n in cpu_end}
    cpu["bench"] = round(time.process_time() - bench_cpu0, 1)
    # each process's share of a CPU in each half of the phase (the embedded broker's grows
    # as its logs do: see bench/README.md)
    by_half = (
        {
            n: [
                round((midway[n] - cpu0[n]) / (midway["at"] - started), 2),
                round((cpu_end[n] - midway[n]) / (started + elapsed - midway["at"]), 2),
            ]
            for n in cpu_end
        }
        if midway
        else None
    )
    stop.set()
    rss = {"worker_mb": common.rss_mb(worker.pid), "console_mb": common.rss_mb(console.pid)}
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ws.close()
    await recs.stop()
    await fix_prod.stop()
    await inc_prod.stop()

    ws_ms = [(at_ws[i] - sent[i]) * 1000 for i in sent if i in at_ws]
    kafka_ms = [(at_kafka[i] - sent[i]) * 1000 for i in sent if i in at_kafka]
    ws_stats = common.percentiles(ws_ms)

    def trend(ms: list[float]) -> dict[str, Any]:
        # a worker that does not keep up shows as latency growing through the phase (and
        # the Kafka hop's halves beside the websocket's say whether it is the worker's)
        half = len(ms) // 2
        return {
            "p50_ms_first_half": common.percentiles(ms[:half])["p50_ms"],
            "p50_ms_second_half": common.percentiles(ms[half:])["p50_ms"],
        }

    p50, p99 = ws_stats["p50_ms"], ws_stats["p99_ms"]
    return {
        "benchmark": "latency",
        "officers": args.officers,
        "incidents": len(sent),
        "fix_rate_target_per_s": args.fix_rate,
        "fix_rate_achieved_per_s": round(fixes_sent / elapsed, 1),
        "incident_rate_per_s": args.incident_rate,
        "websocket": {
            **ws_stats,
            "missing": len(sent) - len(ws_ms),
            **trend(ws_ms),
            # snapshots sent to this client after it fell behind (a recommendation that
            # came in one is counted missing: only recommendation messages are timed)
            "resyncs": resyncs,
        },
        "console_feed_behind_ms": {
            "samples": len(feed_behind_ms),
            "median": round(statistics.median(feed_behind_ms), 1) if feed_behind_ms else None,
            "last": round(feed_behind_ms[-1], 1) if feed_behind_ms else None,
        },
        "kafka": {
            **common.percentiles(kafka_ms),
            "missing": len(sent) - len(kafka_ms),
            **trend(kafka_ms),
        },
        "phase_s": round(elapsed, 1),
        "cpu_s_during_phase": cpu,
        "cpu_share_by_half": by_half,
        "rss_after": rss,
        "target": {
            "p50_ms": TARGET_P50_MS,
            "p99_ms": TARGET_P99_MS,
            "p50_met": p50 is not None and p50 <= TARGET_P50_MS,
            "p99_met": p99 is not None and p99 <= TARGET_P99_MS and len(ws_ms) == len(sent),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--officers", type=int, default=5000)
    p.add_argument("--fix-rate", type=float, default=2000.0, help="background fixes per second")
    p.add_argument("--incidents", type=int, default=200)
    p.add_argument("--incident-rate", type=float, default=5.0, help="incidents per second")
    p.add_argument("--quick", action="store_true", help="1,000 officers, 500 fixes/s, 40 incidents")
    args = p.parse_args(argv)
    if args.quick:
        args.officers, args.fix_rate, args.incidents = 1000, 500.0, 40
    started = time.monotonic()
    load_before = common.loadavg()
    with Stack() as stack:  # the broker is started outside the event loop
        result = asyncio.run(run(args, stack))
    result["machine"] = {"cpus": __import__("os").cpu_count(), "loadavg_before": load_before,
                         "loadavg_after": common.loadavg()}  # fmt: skip
    result["wall_s"] = round(time.monotonic() - started, 1)
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
