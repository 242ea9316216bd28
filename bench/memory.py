"""Memory: worker RSS by officer count, console RSS with 50 clients (issue 6).

    .venv/bin/python bench/memory.py [--quick] [--scales 1000,5000,10000,40000]
                                     [--fixes 1] [--clients 50]

Method. For each scale, on a fresh topic prefix of one embedded broker: every officer's
profile, status and ``--fixes`` fixes are produced, a fresh ``sdo worker`` is started and
waited for until every officer's last fix is in its ``officers`` table; then its ``VmRSS``
(and ``VmHWM``, the peak) is read from ``/proc/<pid>/status`` and the worker is stopped.
After the largest scale, ``sdo console`` is started on the same topics, its RSS read once
it has caught up with no client, then again with ``--clients`` authenticated websocket
clients connected (each has received its snapshot). Target: worker RSS at 40,000 officers
≤ 1 GiB. Prints JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import Fleet, Stack, log

TARGET_WORKER_MB_AT_40K = 1024.0
#: Let allocator and Faust settle after the load before reading RSS.
SETTLE_S = 3.0


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for pid {pid}")


async def worker_at(stack: Stack, n: int, fixes: int) -> tuple[dict[str, Any], str, Fleet]:
    prefix = common.new_prefix(f"memory{n}")
    fleet = Fleet(n, datetime.now(UTC).replace(microsecond=0), seed=n)
    started = time.monotonic()
    worker, watch = await common.load_worker(stack, prefix, fleet, fixes)
    load_s = time.monotonic() - started
    await asyncio.sleep(SETTLE_S)
    row = {
        "officers": n,
        "events": n * (2 + fixes),
        "worker_rss_mb": vm(worker.pid, "VmRSS"),
        "worker_peak_rss_mb": vm(worker.pid, "VmHWM"),
        "all_latest_fixes_in_table": watch.all_correct,
        "load_s": round(load_s, 1),
    }
    stack.stop(worker)
    return row, prefix, fleet


#: A new console replays the whole feed of the largest scale before it reports ``live``.
CATCH_UP_TIMEOUT_S = 900.0


async def console_with_clients(stack: Stack, prefix: str, n_clients: int) -> dict[str, Any]:
    from websockets.exceptions import ConnectionClosed  # noqa: PLC0415

    from sdo.console.auth import add_user  # noqa: PLC0415

    users = stack.tmp / "users.json"
    token, _ = add_user(users, "bench", "viewer")
    console, url = stack.console(prefix, users)
    started = time.monotonic()
    dropped = 0
    while True:  # a console busy catching up may drop a client (keepalive); reconnect
        first = await common.ws_connect(url, token)
        try:
            await common.ws_wait_live(first, timeout=CATCH_UP_TIMEOUT_S)
            break
        except ConnectionClosed as exc:
            dropped += 1
            log(f"console dropped the client while catching up ({exc}); reconnecting")
            if dropped > 5:
                raise
    catch_up_s = time.monotonic() - started
    await first.close()
    await asyncio.sleep(SETTLE_S)
    idle = vm(console.pid, "VmRSS")
    log(f"console caught up in {catch_up_s:.1f} s, {idle} MiB; connecting {n_clients} clients")
    # one at a time: each gets a full snapshot
    clients = [await common.ws_connect(url, token) for _ in range(n_clients)]
    await asyncio.sleep(SETTLE_S)
    with_clients = vm(console.pid, "VmRSS")
    peak = vm(console.pid, "VmHWM")
    for ws in clients:
        await ws.close()
    stack.stop(console)
    return {
        "clients": n_clients,
        "console_rss_mb_no_clients": idle,
        "console_rss_mb_with_clients": with_clients,
        "per_client_mb": round((with_clients - idle) / max(1, n_clients), 2),
        "console_peak_rss_mb": peak,
        "catch_up_s": round(catch_up_s, 1),
        "clients_dropped_during_catch_up": dropped,
    }


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    scales = [int(x) for x in args.scales.split(",")]
    rows = []
    prefix = ""
    for n in scales:
        log(f"worker at {n} officers")
        row, prefix, _ = await worker_at(stack, n, args.fixes)
        log(f"  {row}")
        rows.append(row)
        gc.collect()
    base = rows[0]
    for row in rows:
        growth = row["officers"] / base["officers"]
        row["rss_over_smallest"] = round(row["worker_rss_mb"] / base["worker_rss_mb"], 2)
        row["officers_over_smallest"] = round(growth, 1)
    if len(rows) > 1:
        a, b = rows[-2], rows[-1]
        per = (b["worker_rss_mb"] - a["worker_rss_mb"]) / (b["officers"] - a["officers"])
        marginal_kb = round(per * 1024, 2)
    else:
        marginal_kb = None
    console = await console_with_clients(stack, prefix, args.clients)
    console["officers"] = scales[-1]
    largest = rows[-1]
    return {
        "benchmark": "memory",
        "fixes_per_officer": args.fixes,
        "worker": rows,
        "worker_marginal_kb_per_officer": marginal_kb,
        "console": console,
        "target": {
            "worker_rss_mb_at_40000": TARGET_WORKER_MB_AT_40K,
            "measured_at": largest["officers"],
            "met": largest["officers"] >= 40_000
            and largest["worker_rss_mb"] <= TARGET_WORKER_MB_AT_40K,
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", default="1000,5000,10000,40000")
    p.add_argument("--fixes", type=int, default=1, help="fixes per officer (default 1)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="500 and 2,000 officers, 5 clients")
    args = p.parse_args(argv)
    if args.quick:
        args.scales, args.clients, args.fixes = "500,2000", 5, 1
    started = time.monotonic()
    with Stack() as stack:  # the broker is started outside the event loop
        result = asyncio.run(run(args, stack))
    result["wall_s"] = round(time.monotonic() - started, 1)
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
