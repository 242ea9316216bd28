"""Ingest: how fast one ``sdo worker`` works through a backlog, beside its peers (issue 28).

    .venv/bin/python bench/ingest.py [--quick] [--officers 40000] [--fixes 3]
    .venv/bin/python bench/ingest.py --scales 1000,5000,10000,40000
    .venv/bin/python bench/ingest.py --profile 10      # py-spy the worker for 10 s

Method. On a fresh embedded broker and topic prefix, pre-produce every officer's profile
and status, then ``--fixes`` location fixes per officer (one every 5 s of event time), with
record time = event ``ts``. Then, one after the other, the consumers read the same
records from the beginning (``--consumers``; ``--quick`` runs the first three):

* ``raw_aiokafka`` (transport ceiling): an aiokafka consumer in its own process that only
  counts records;
* ``naive_faust`` (``bench/naive_app.py``): one Faust agent, decode each event, one table
  write per event; done when its table changelog holds one record per event;
* ``sdo_worker``: ``sdo worker`` as shipped; done when, in its ``officers`` changelog,
  every officer's latest ``fix_event`` is the last fix produced for them, which is also the
  correctness check (``all_latest_fixes_in_table``);
* ``quix_streams`` and ``bytewax`` (``bench/peer_runs.py``, ``bench/peers/``): the same
  decode and latest profile, status and fix per officer in each framework's own durable
  state, in venvs this script makes; each times itself and is checked from that state.

The naive agent is timed from the first record it is seen to apply to the record that
completes it (seen by a tail in this process); the sdo worker from the moment it reports
itself ready (it writes officer records at each commit, so its first changelog record
comes a commit interval after it started work), which is a little before its first event.
``events_per_s`` counts every input event (profiles,
statuses and fixes, the same work for all); ``location_events_per_s`` is the same
run's rate expressed in fixes only. Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import peer_runs
from common import PYTHON, ROOT, Fleet, Stack, log

TARGET_EVENTS_PER_S = 8000.0
TARGET_VS_NAIVE = 2.3
#: issue 28's target, at 10,000 officers and 10 fixes each (reported for every scale)
TARGET_BATCH_EVENTS_PER_S = 100_000.0
CONSUMERS = ("raw", "naive", "sdo", "quix", "bytewax")
#: What ``--quick`` runs unless ``--consumers`` says otherwise: the peers' venvs take minutes
#: to make, and the quick form only checks that the script works.
QUICK_CONSUMERS = ("raw", "naive", "sdo")


def _timeout(events: int) -> float:
    """A bound on one consumer's run (generous: 150 events/s)."""
    return max(180.0, events / 150)


async def run_raw(stack: Stack, topics: Any, expect: int) -> dict[str, Any]:
    proc = stack.spawn(
        "raw reader",
        [PYTHON, str(ROOT / "bench" / "common.py"), "raw", "--bootstrap", stack.broker.bootstrap,
         "--expect", str(expect), topics.profile, topics.status, topics.location],
    )  # fmt: skip
    line = await asyncio.to_thread(proc.wait_for_line, "RAW ", _timeout(expect))
    stack.stop(proc)
    res = orjson.loads(line.split("RAW ", 1)[1])
    rate = res["timed_records"] / res["seconds"] if res["seconds"] > 0 else None
    return {"seconds": round(res["seconds"], 3), "events_per_s": _r(rate)}


async def run_naive(stack: Stack, prefix: str, expect: int) -> dict[str, Any]:
    app_id = f"bench-naive-{uuid.uuid4().hex[:6]}"
    topic = common.changelog(app_id, "latest")
    await common.create_topics(stack.broker.bootstrap, prefix, [topic])
    state = {"seen": 0, "first": None, "first_batch": 0, "last": 0.0}

    def on_batch(records: list[Any], now: float) -> bool:
        if records:
            state["seen"] += len(records)
            if state["first"] is None:
                state["first"], state["first_batch"] = now, len(records)
                state["cpu0"] = common.cpu_seconds(proc.pid)
            state["last"] = now
        return state["seen"] >= expect

    proc = stack.spawn(
        "naive faust",
        [PYTHON, str(ROOT / "bench" / "naive_app.py"), "--broker", stack.broker.url,
         "--topic-prefix", prefix, "--app-id", app_id],
    )  # fmt: skip
    await common.tail(
        stack.broker.bootstrap,
        [topic],
        on_batch,
        timeout=_timeout(expect),
        alive=lambda: proc.proc.poll() is None,
        died=lambda: f" (exit {proc.proc.poll()}):\n" + "".join(proc.output[-30:]),
        progress=lambda: f"naive: {state['seen']}/{expect} changelog records",
    )
    cpu = common.cpu_seconds(proc.pid) - state["cpu0"]
    rss = common.rss_mb(proc.pid)
    stack.stop(proc)
    seconds = state["last"] - state["first"]
    timed = state["seen"] - state["first_batch"]
    rate = timed / seconds if seconds > 0 else None
    return {"seconds": round(seconds, 3), "events_per_s": _r(rate), "cpu_s": round(cpu, 1),
            "cpu_us_per_event": round(cpu / timed * 1e6, 1), "rss_mb": rss}  # fmt: skip


async def run_sdo(
    stack: Stack,
    prefix: str,
    expect: int,
    last_fix: dict[str, str],
    profile_s: float,
) -> dict[str, Any]:
    app_id = f"bench-sdo-{uuid.uuid4().hex[:6]}"
    topic = common.changelog(app_id, "officers")
    await common.create_topics(stack.broker.bootstrap, prefix, [topic])
    held: dict[str, str | None] = {}
    state: dict[str, Any] = {"records": 0, "matched": 0, "first": None, "last": 0.0}
    want = len(last_fix)
    prof_path = stack.tmp / f"{app_id}.collapsed"
    spy: list[Any] = []

    proc = stack.worker(prefix, app_id)
    # The clock and the CPU count start when the worker is ready (tables restored, input
    # partitions assigned), not at its first changelog record: it writes officers at each
    # commit, so its first record comes a commit interval after it started processing.
    await asyncio.to_thread(proc.wait_for_line, "worker ready (")
    state["first"] = time.monotonic()
    state["cpu0"] = common.cpu_seconds(proc.pid)
    state["faults0"] = common.faults_and_system_s(proc.pid)
    if profile_s > 0:
        log(f"  py-spy on the worker for {profile_s:.0f} s")
        spy.append(common.py_spy(proc.pid, profile_s, prof_path))

    def on_batch(records: list[Any], now: float) -> bool:
        for r in records:
            oid = orjson.loads(r.key)
            fix = orjson.loads(r.value).get("fix_event") if r.value is not None else None
            old = held.get(oid)
            target = last_fix.get(oid)
            if old == target:
                state["matched"] -= 1
            if fix == target:
                state["matched"] += 1
            held[oid] = fix
        if records:
            state["records"] += len(records)
            state["last"] = now
        return state["matched"] >= want

    await common.tail(
        stack.broker.bootstrap,
        [topic],
        on_batch,
        timeout=_timeout(expect),
        alive=lambda: proc.proc.poll() is None,
        died=lambda: f" (exit {proc.proc.poll()}):\n" + "".join(proc.output[-30:]),
        progress=lambda: (
            f"sdo: {state['matched']}/{want} officers at their last fix, "
            f"{state['records']} changelog records"
        ),
    )
    cpu = common.cpu_seconds(proc.pid) - state["cpu0"]
    faults, system_s = common.faults_and_system_s(proc.pid)
    rss = common.rss_mb(proc.pid)
    seconds = state["last"] - state["first"]
    rate = expect / seconds if seconds > 0 else None
    ok = state["matched"] == want and all(held.get(o) == f for o, f in last_fix.items())
    out = {
        "seconds": round(seconds, 3),
        "events_per_s": _r(rate),
        "all_latest_fixes_in_table": ok,
        "officers_in_table": len(held),
        "officers_changelog_records": state["records"],
        "cpu_s": round(cpu, 1),
        "cpu_us_per_event": round(cpu / expect * 1e6, 1),
        "cpu_system_s": round(system_s - state["faults0"][1], 2),
        "page_faults": faults - state["faults0"][0],
        "rss_mb": rss,
    }
    for p in spy:
        if p is not None:
            await asyncio.to_thread(p.wait, profile_s + 30)
            out["profile"] = common.summarise_profile(prof_path)
    stack.stop(proc)
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


async def one_scale(
    stack: Stack, officers: int, fixes: int, consumers: tuple[str, ...], profile_s: float
) -> dict[str, Any]:
    from sdo.config import Topics  # noqa: PLC0415

    prefix = common.new_prefix(f"ingest{officers}")
    topics = Topics(prefix)
    # retention.ms on every input topic: Quix derives its changelogs' configs from it
    await common.create_topics(stack.broker.bootstrap, prefix, retention_ms=-1)
    fleet = Fleet(officers, datetime.now(UTC).replace(microsecond=0), seed=officers)
    log(f"{officers} officers x {fixes} fixes: building records")
    records = fleet.shift_start(topics) + fleet.fixes(topics, fixes)
    total = len(records)
    produce_s = await common.produce(stack.broker.bootstrap, records, "events")
    log(f"produced {total} events in {produce_s:.1f} s")
    row: dict[str, Any] = {
        "officers": officers,
        "fixes_per_officer": fixes,
        "input_events": {
            "total": total,
            "location": officers * fixes,
            "profile": officers,
            "status": officers,
        },
        "produce_s": round(produce_s, 1),
    }
    del records
    if "raw" in consumers:
        log("raw aiokafka reader ...")
        row["raw_aiokafka"] = await run_raw(stack, topics, total)
        log(f"  raw: {row['raw_aiokafka']}")
    if "naive" in consumers:
        log("naive Faust agent ...")
        row["naive_faust"] = await run_naive(stack, prefix, total)
        log(f"  naive: {row['naive_faust']}")
    if "sdo" in consumers:
        log("sdo worker ...")
        sdo = await run_sdo(stack, prefix, total, fleet.last_fix_events(fixes), profile_s)
        if sdo["events_per_s"]:
            sdo["location_events_per_s"] = _r(officers * fixes / sdo["seconds"])
        row["sdo_worker"] = sdo
        log(f"  sdo: { {k: v for k, v in sdo.items() if k != 'profile'} }")
    peer_topics = [topics.profile, topics.status, topics.location]
    for name, key, runner in (
        ("quix", "quix_streams", peer_runs.run_quix),
        ("bytewax", "bytewax", peer_runs.run_bytewax),
    ):
        if name in consumers:
            log(f"{name} peer ...")
            last_fix = fleet.last_fix_events(fixes)
            row[key] = await runner(stack, peer_topics, total, last_fix, _timeout(total))
            log(f"  {name}: {row[key]}")
    sdo_rate = row.get("sdo_worker", {}).get("events_per_s")
    naive_rate = row.get("naive_faust", {}).get("events_per_s")
    raw_rate = row.get("raw_aiokafka", {}).get("events_per_s")
    ratios = {}
    if sdo_rate and naive_rate:
        ratios["sdo_over_naive"] = round(sdo_rate / naive_rate, 2)
    if sdo_rate and raw_rate:
        ratios["sdo_over_raw"] = round(sdo_rate / raw_rate, 3)
    sdo_cpu = row.get("sdo_worker", {}).get("cpu_us_per_event")
    naive_cpu = row.get("naive_faust", {}).get("cpu_us_per_event")
    if sdo_cpu and naive_cpu:
        # CPU per event is less sensitive than wall time to other load on a shared machine
        ratios["naive_cpu_over_sdo_cpu"] = round(naive_cpu / sdo_cpu, 2)
    for key, short in (("quix_streams", "quix"), ("bytewax", "bytewax")):
        peer = row.get(key, {})
        if sdo_rate and peer.get("events_per_s"):
            ratios[f"sdo_over_{short}"] = round(sdo_rate / peer["events_per_s"], 2)
        if sdo_cpu and peer.get("cpu_us_per_event"):
            ratios[f"{short}_cpu_over_sdo_cpu"] = round(peer["cpu_us_per_event"] / sdo_cpu, 2)
    row["ratios"] = ratios
    if sdo_rate:
        vs = ratios.get("sdo_over_naive")
        quix_rate = row.get("quix_streams", {}).get("events_per_s")
        row["target"] = {
            "events_per_s": TARGET_EVENTS_PER_S,
            "vs_naive": TARGET_VS_NAIVE,
            "events_per_s_met": sdo_rate >= TARGET_EVENTS_PER_S,
            "vs_naive_met": None if vs is None else vs >= TARGET_VS_NAIVE,
            "correct": row["sdo_worker"]["all_latest_fixes_in_table"],
            # issue 28: ahead of Quix Streams in the same run (None: Quix not run), and
            # 100,000 events/s
            "ahead_of_quix": None if quix_rate is None else sdo_rate > quix_rate,
            "batch_events_per_s": TARGET_BATCH_EVENTS_PER_S,
            "batch_events_per_s_met": sdo_rate >= TARGET_BATCH_EVENTS_PER_S,
        }
    return row


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    if args.consumers is None:
        consumers = QUICK_CONSUMERS if args.quick else CONSUMERS
    else:
        consumers = tuple(c for c in args.consumers.split(",") if c)
    bad = set(consumers) - set(CONSUMERS)
    if bad:
        raise SystemExit(f"unknown consumers {sorted(bad)}; choose from {CONSUMERS}")
    if args.scales:
        scales = [int(x) for x in args.scales.split(",")]
        rows = [await one_scale(stack, n, args.fixes, consumers, 0.0) for n in scales]
        return {"benchmark": "ingest-scaling", "rows": rows}
    row = await one_scale(stack, args.officers, args.fixes, consumers, args.profile)
    return {"benchmark": "ingest", **row}


def machine() -> dict[str, Any]:
    import os  # noqa: PLC0415
    import platform  # noqa: PLC0415

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "broker": "embedded Tansu (memory storage)",
        "partitions": common.PARTITIONS,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--officers", type=int, default=40_000, help="officers (default 40,000)")
    p.add_argument("--fixes", type=int, default=3, help="fixes per officer (default 3)")
    p.add_argument(
        "--scales", default=None, help="officer counts, e.g. 1000,5000,10000,40000 (each in turn)"
    )
    p.add_argument(
        "--consumers",
        default=None,
        help=f"subset of {','.join(CONSUMERS)} (default: all; --quick: "
        f"{','.join(QUICK_CONSUMERS)})",
    )
    p.add_argument("--profile", type=float, default=0.0, help="py-spy the worker for N s")
    p.add_argument("--quick", action="store_true", help="2,000 officers x 3 fixes")
    args = p.parse_args(argv)
    if args.quick:
        args.officers = 2000
        if args.scales:
            args.scales = "500,2000"
    started = time.monotonic()
    load_before = common.loadavg()
    with Stack() as stack:  # the broker is started outside the event loop
        result = asyncio.run(run(args, stack))
    result["machine"] = {**machine(), "loadavg_before": load_before,
                         "loadavg_after": common.loadavg()}  # fmt: skip
    result["wall_s"] = round(time.monotonic() - started, 1)
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
