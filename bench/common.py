"""Shared helpers for the Kafka benchmarks (ingest, latency, memory).

What lives here: an embedded broker and the processes a benchmark starts (``sdo worker``,
``sdo console``, the naive Faust peer, a raw aiokafka reader), all stopped at the end
whatever happens; synthetic officers as ready-encoded Kafka records; a bulk producer; a
changelog tail; RSS from ``/proc``; a py-spy profile summary.

Run as a script it is the raw aiokafka reader used by ``bench/ingest.py`` (the transport
ceiling), so that reader runs in its own process as the other consumers do::

    python bench/common.py raw --bootstrap HOST:PORT --expect N TOPIC...
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import contextlib
import functools
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PARTITIONS = 4
SESSION_TIMEOUT_S = 3.0
#: Bounds on waits (named, never asserted as performance limits).
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0

ROLES = ["response"] * 6 + ["force_support", "neighbourhood", "pcso", "investigator"]
STATUSES = ["available"] * 5 + ["en_route", "at_scene", "committed", "refreshment"]
SKILLS = ["taser", "first_aid", "advanced_driver", "public_order", "ppu", "mental_health"]
FIX_EVERY_S = 5.0


def log(msg: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON result."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(result: Any) -> None:
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()


# -- processes --------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process whose combined output is pumped into a queue (and kept)."""

    name: str
    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for_line(self, needle: str, timeout: float = READY_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if needle in line:
                return line
        raise RuntimeError(
            f"{self.name}: no {needle!r} within {timeout:.0f} s (exit {self.proc.poll()}):\n"
            + "".join(self.output[-30:])
        )

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it")
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        return self.proc.returncode


class Stack:
    """The broker and every process a benchmark starts; ``close()`` stops them all."""

    def __init__(self) -> None:
        from sdo.broker import EmbeddedBroker  # noqa: PLC0415

        self.tmp = Path(tempfile.mkdtemp(prefix="sdo-bench-"))
        self.broker = EmbeddedBroker(log_path=self.tmp / "tansu.log")
        self.procs: list[Proc] = []
        self._closed = False
        atexit.register(self.close)

    def __enter__(self) -> Stack:
        log("starting the embedded broker")
        self.broker.start()
        log(f"broker at {self.broker.bootstrap} (pid {self.broker.pid})")
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(keep=exc_type is not None)

    def close(self, keep: bool = False) -> None:
        """Stop every process, then remove the run's directory (the broker's log, the
        peers' state, profiles), unless ``keep`` (a failed run: its logs are looked at)."""
        if self._closed:
            return
        self._closed = True
        for p in reversed(self.procs):
            p.stop()
        self.broker.stop()
        if keep:
            log(f"kept {self.tmp} (the broker's log, the peers' state)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def spawn(self, name: str, argv: Sequence[str]) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        popen = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        proc = Proc(name, popen)

        def pump() -> None:
            assert popen.stdout is not None
            for line in popen.stdout:
                proc.output.append(line)
                proc.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)

    def worker(self, prefix: str, app_id: str, *, wait: bool = False) -> Proc:
        proc = self.spawn(
            f"sdo worker {app_id}",
            [
                PYTHON, "-m", "sdo", "worker",
                "--broker", self.broker.url,
                "--topic-prefix", prefix,
                "--app-id", app_id,
                "--partitions", str(PARTITIONS),
                "--session-timeout", str(SESSION_TIMEOUT_S),
                # as in production: the metrics on (a free port, not read here)
                "--metrics-port", "0",
                "-l", "warn",
            ],
        )  # fmt: skip
        if wait:
            proc.wait_for_line("worker ready (")
        return proc

    def console(self, prefix: str, users: Path) -> tuple[Proc, str]:
        """Start ``sdo console`` on a free port; returns it and its websocket URL."""
        proc = self.spawn(
            "sdo console",
            [
                PYTHON, "-m", "sdo", "console",
                "--broker", self.broker.url,
                "--topic-prefix", prefix,
                "--users", str(users),
                "--bind", "127.0.0.1:0",
            ],
        )  # fmt: skip
        line = proc.wait_for_line("console ready at ")
        url = line.split("console ready at ", 1)[1].strip()
        return proc, url.replace("http", "ws", 1) + "ws"


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages: how busy the shared machine was."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def faults_and_system_s(pid: int) -> tuple[int, float]:
    """Minor page faults so far of ``pid``, and its system (kernel) CPU seconds: fresh
    memory's cost (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[7]), int(fields[12]) / os.sysconf("SC_CLK_TCK")


# -- topics and records -----------------------------------------------------------------


def new_prefix(tag: str) -> str:
    return f"bench.{tag}.{os.getpid()}.{int(time.time() * 1000) % 10**9}."


async def create_topics(
    bootstrap: str,
    prefix: str,
    changelogs: Iterable[str] = (),
    *,
    retention_ms: int | None = None,
) -> None:
    """The contract topics under ``prefix``, plus changelog topics created ahead of the
    consumer so a tail can be assigned to them before the first record arrives.

    ``retention_ms``: given to every contract topic created without one. The embedded
    broker describes only the configs a topic was created with (Kafka describes them all,
    defaults included), and Quix Streams derives its changelogs' configs from its input
    topics' ``retention.ms``."""
    from sdo.broker import TopicSpec, ensure_topics, topic_specs  # noqa: PLC0415
    from sdo.config import Topics  # noqa: PLC0415

    specs = topic_specs(Topics(prefix), PARTITIONS)
    if retention_ms is not None:
        specs = [s if s.retention_ms is not None else replace(s, retention_ms=retention_ms)
                 for s in specs]  # fmt: skip
    specs += [TopicSpec(name, PARTITIONS, compacted=True) for name in changelogs]
    await ensure_topics(bootstrap, specs, timeout=30.0)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    ts_ms: int


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


@functools.cache
def _pilot_areas() -> Any:
    from sdo.areas import load_areas  # noqa: PLC0415
    from sdo.config import Settings  # noqa: PLC0415

    return load_areas(Settings().areas_path)


def pilot_extent() -> tuple[float, float, float, float]:
    areas = _pilot_areas()
    boxes = [nb.bbox for nb in areas.neighbourhoods.values()]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@dataclass
class Fleet:
    """``n`` synthetic officers spread over the pilot areas (seeded)."""

    n: int
    t0: datetime
    seed: int = 1
    all_available: bool = False
    extent: tuple[float, float, float, float] = field(default_factory=pilot_extent)
    pos: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        lo_lon, lo_lat, hi_lon, hi_lat = self.extent
        self.pos = [
            (self.rng.uniform(lo_lon, hi_lon), self.rng.uniform(lo_lat, hi_lat))
            for _ in range(self.n)
        ]

    @staticmethod
    def oid(i: int) -> str:
        return f"o{i:06d}"

    def shift_start(self, topics: Any) -> list[Record]:
        """A profile and a status per officer, at ``t0``."""
        out = []
        ts = _iso(self.t0)
        ms = int(self.t0.timestamp() * 1000)
        rng = self.rng
        for i in range(self.n):
            oid = self.oid(i)
            role = rng.choice(ROLES)
            transport = (
                "desk" if role == "investigator" else rng.choice(["car", "car", "van", "foot"])
            )
            profile = {
                "type": "officer.profile",
                "event_id": f"{oid}-p",
                "ts": ts,
                "officer_id": oid,
                "callsign": f"C{i}",
                "role": role,
                "skills": rng.sample(SKILLS, rng.randint(0, 3)),
                "transport": transport,
            }
            status = "available" if self.all_available else rng.choice(STATUSES)
            st = {
                "type": "officer.status",
                "event_id": f"{oid}-s",
                "ts": ts,
                "officer_id": oid,
                "status": status,
            }
            key = oid.encode()
            out.append(Record(topics.profile, key, orjson.dumps(profile), ms))
            out.append(Record(topics.status, key, orjson.dumps(st), ms))
        return out

    def fix(self, topics: Any, i: int, k: int, ts: datetime) -> Record:
        """Officer ``i``'s ``k``-th fix (event id ``<oid>-l<k>``), a small step from the last."""
        lon, lat = self.pos[i]
        lo_lon, lo_lat, hi_lon, hi_lat = self.extent
        lon = min(hi_lon, max(lo_lon, lon + self.rng.uniform(-2e-4, 2e-4)))
        lat = min(hi_lat, max(lo_lat, lat + self.rng.uniform(-2e-4, 2e-4)))
        self.pos[i] = (lon, lat)
        oid = self.oid(i)
        value = {
            "type": "officer.location",
            "event_id": f"{oid}-l{k}",
            "ts": _iso(ts),
            "officer_id": oid,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "accuracy_m": 8.0,
            "speed_mps": 3.0,
        }
        ts_ms = int(ts.timestamp() * 1000)
        return Record(topics.location, oid.encode(), orjson.dumps(value), ts_ms)

    def fixes(self, topics: Any, rounds: int) -> list[Record]:
        """``rounds`` fixes per officer, one every 5 s of event time, in event-time order."""
        out = []
        for k in range(rounds):
            base = self.t0 + timedelta(seconds=1 + k * FIX_EVERY_S)
            for i in range(self.n):
                ts = base + timedelta(milliseconds=FIX_EVERY_S * 1000 * i / self.n)
                out.append(self.fix(topics, i, k, ts))
        return out

    def last_fix_events(self, rounds: int) -> dict[str, str]:
        return {self.oid(i): f"{self.oid(i)}-l{rounds - 1}" for i in range(self.n)}


def incident(i: int, rng: random.Random, extent: Sequence[float], ts: datetime, tag: str) -> Record:
    """An emergency or priority call at a random place in the pilot areas.

    Drawn in ``extent`` until it falls inside a neighbourhood: the worker dead-letters an
    incident outside the force area, and it would never get a recommendation.
    """
    iid = f"{tag}-I{i}"
    level = rng.choice(["high", "medium"])
    while True:
        lat = round(rng.uniform(extent[1], extent[3]), 6)
        lon = round(rng.uniform(extent[0], extent[2]), 6)
        if _pilot_areas().locate(lon, lat) is not None:
            break
    value = {
        "type": "incident",
        "event_id": f"{iid}-v1",
        "ts": _iso(ts),
        "incident_id": iid,
        "lat": lat,
        "lon": lon,
        "category": "violence",
        "state": "open",
        "thrive": {
            "threat": level,
            "harm": "medium",
            "risk": "medium",
            "vulnerability": "low",
            "investigation": True,
            "engagement": False,
            "prevention": False,
        },
        "ongoing": True,
        "offender_present": level == "high",
        "persistent": False,
    }
    return Record("", iid.encode(), orjson.dumps(value), int(ts.timestamp() * 1000))


def producer(bootstrap: str, **kw: Any) -> Any:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    opts: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "acks": 1,
    }
    opts.update(kw)
    return AIOKafkaProducer(**opts)


async def produce(bootstrap: str, records: Sequence[Record], what: str = "records") -> float:
    """Publish ``records`` (keys, values, record time = event time); returns seconds taken."""
    prod = producer(bootstrap)
    await prod.start()
    started = time.monotonic()
    try:
        pending: list[Any] = []
        for n, r in enumerate(records, 1):
            pending.append(await prod.send(r.topic, r.value, key=r.key, timestamp_ms=r.ts_ms))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                log(f"  produced {n}/{len(records)} {what}")
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return time.monotonic() - started


# -- reading ----------------------------------------------------------------------------


def consumer(bootstrap: str, **kw: Any) -> Any:
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    opts: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 32 * 1024 * 1024,
        # Tansu answers a fetch only when this wait expires (it does not wake a long poll
        # when data arrives), so a reader's own latency is about this long: keep it short
        "fetch_max_wait_ms": 20,
    }
    opts.update(kw)
    return AIOKafkaConsumer(**opts)


async def assign_all(cons: Any, topics: Iterable[str], *, from_end: bool = False) -> None:
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    await cons.start()
    tps = []
    for topic in topics:
        parts = None
        for _ in range(100):
            parts = cons.partitions_for_topic(topic)
            if parts:
                break
            await cons._client.force_metadata_update()
            await asyncio.sleep(0.1)
        if not parts:
            raise RuntimeError(f"topic {topic} has no partitions")
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    cons.assign(tps)
    if from_end:
        await cons.seek_to_end(*tps)
    else:
        await cons.seek_to_beginning(*tps)


async def tail(
    bootstrap: str,
    topics: Sequence[str],
    on_batch: Callable[[list[Any], float], bool],
    *,
    timeout: float,  # noqa: ASYNC109  (one bound for the whole read)
    alive: Callable[[], bool] = lambda: True,
    progress: Callable[[], str] | None = None,
    on_start: Callable[[float], None] | None = None,
    died: Callable[[], str] = str,
) -> None:
    """Read ``topics`` from the beginning, handing each fetched batch and the monotonic time
    it arrived to ``on_batch`` until it returns True; RuntimeError after ``timeout``."""
    cons = consumer(bootstrap)
    await assign_all(cons, topics)
    if on_start is not None:
        on_start(time.monotonic())
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 10
    try:
        while True:
            batches = await cons.getmany(timeout_ms=200, max_records=20_000)
            now = time.monotonic()
            records = [r for batch in batches.values() for r in batch]
            if on_batch(records, now):
                return
            if now > deadline:
                raise RuntimeError(f"gave up after {timeout:.0f} s reading {topics}")
            if not alive():
                raise RuntimeError(f"the process feeding {topics} exited{died()}")
            if progress is not None and now > next_note:
                next_note = now + 10
                log(f"  {progress()}")
    finally:
        await cons.stop()


async def read_to_end(
    bootstrap: str,
    topics: Sequence[str],
    on_records: Callable[[list[Any]], None],
    *,
    timeout: float = READY_TIMEOUT_S,  # noqa: ASYNC109  (one bound for the whole read)
) -> int:
    """Read ``topics`` from the beginning to their end offsets as of the call, handing each
    fetched batch to ``on_records``; returns the number of records read."""
    cons = consumer(bootstrap)
    await assign_all(cons, topics)
    n = 0
    try:
        tps = sorted(cons.assignment())
        ends = await cons.end_offsets(tps)
        async with asyncio.timeout(timeout):
            while any([await cons.position(tp) < ends[tp] for tp in tps]):
                batches = await cons.getmany(timeout_ms=200, max_records=20_000)
                for records in batches.values():
                    n += len(records)
                    on_records(records)
    finally:
        await cons.stop()
    return n


def changelog(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def percentiles(samples_ms: list[float]) -> dict[str, float | int | None]:
    if not samples_ms:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(samples_ms)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, round(p * (len(s) - 1)))], 1)

    return {
        "n": len(s),
        "p50_ms": q(0.50),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "max_ms": round(s[-1], 1),
    }


class FixWatch:
    """Follows an ``officers`` changelog: how many officers hold their expected last fix.

    Feed it every batch of the changelog (``on_batch``); the latest record per key wins,
    as it does in the table.
    """

    def __init__(self, last_fix: dict[str, str]) -> None:
        self.last_fix = last_fix
        self.held: dict[str, str | None] = {}
        self.matched = 0
        self.records = 0
        self.first: float | None = None
        self.last = 0.0
        self.on_first: Callable[[float], None] | None = None

    def on_batch(self, records: list[Any], now: float) -> bool:
        for r in records:
            oid = orjson.loads(r.key)
            fix = orjson.loads(r.value).get("fix_event") if r.value is not None else None
            target = self.last_fix.get(oid)
            if self.held.get(oid) == target:
                self.matched -= 1
            if fix == target:
                self.matched += 1
            self.held[oid] = fix
        if records:
            self.records += len(records)
            if self.first is None:
                self.first = now
                if self.on_first is not None:
                    self.on_first(now)
            self.last = now
        return self.done

    @property
    def done(self) -> bool:
        return self.matched >= len(self.last_fix)

    @property
    def all_correct(self) -> bool:
        return all(self.held.get(o) == f for o, f in self.last_fix.items())

    def progress(self) -> str:
        return (
            f"{self.matched}/{len(self.last_fix)} officers at their last fix, "
            f"{self.records} changelog records"
        )


async def load_worker(
    stack: Stack, prefix: str, fleet: Fleet, rounds: int
) -> tuple[Proc, FixWatch]:
    """Produce ``fleet``'s shift start and ``rounds`` fixes, start a worker, wait until every
    officer's last fix is in its ``officers`` table. Returns the running worker."""
    from sdo.config import Topics  # noqa: PLC0415

    topics = Topics(prefix)
    app_id = f"bench-sdo-{os.urandom(3).hex()}"
    topic = changelog(app_id, "officers")
    await create_topics(stack.broker.bootstrap, prefix, [topic])
    records = fleet.shift_start(topics) + fleet.fixes(topics, rounds)
    secs = await produce(stack.broker.bootstrap, records, "events")
    log(f"produced {len(records)} events for {fleet.n} officers in {secs:.1f} s")
    proc = stack.worker(prefix, app_id)
    watch = FixWatch(fleet.last_fix_events(rounds))
    await tail(
        stack.broker.bootstrap,
        [topic],
        watch.on_batch,
        timeout=max(180.0, len(records) / 150),
        alive=lambda: proc.proc.poll() is None,
        progress=watch.progress,
        died=lambda: f" (exit {proc.proc.poll()}):\n" + "".join(proc.output[-30:]),
    )
    await asyncio.to_thread(proc.wait_for_line, "worker ready (")
    return proc, watch


async def ws_connect(url: str, token: str, *, until: str = "snapshot") -> Any:
    """An authenticated console websocket, returned once a message of type ``until`` came."""
    from websockets.asyncio.client import connect  # noqa: PLC0415

    # max_queue=None: frames are always read, so pongs go out even when we read slowly
    ws = await connect(url, max_size=None, max_queue=None, open_timeout=30, ping_interval=None)
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            msg = orjson.loads(await ws.recv())
            if msg.get("type") == until:
                return ws


async def ws_wait_live(ws: Any, timeout: float = READY_TIMEOUT_S) -> None:  # noqa: ASYNC109
    """Read ``ws`` until the console reports its feed caught up (``live``)."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await ws.recv()
            if raw.startswith('{"type":"status"'):
                msg = orjson.loads(raw)
                if msg.get("feed") == "live":
                    return


# -- profiling --------------------------------------------------------------------------


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Start ``py-spy record`` (collapsed stacks) on ``pid`` for ``seconds``, if available."""
    exe = Path(PYTHON).with_name("py-spy")
    if not exe.exists():
        log("py-spy not installed in the venv; no profile")
        return None
    argv = [str(exe), "record", "--pid", str(pid), "--duration", str(int(seconds)),
            "--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares by function from py-spy's collapsed stacks."""
    if not path.exists():
        return {"error": "no profile written"}
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {"error": "no samples"}

    def share(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)]

    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(incl)}


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(file).parts
    if "site-packages" in parts:
        file = "/".join(parts[parts.index("site-packages") + 1 :][:2])
    elif "sdo" in parts:
        file = "/".join(parts[parts.index("sdo") :])
    else:
        file = Path(file).name
    return f"{name} ({file})"


# -- the raw reader (script mode) -------------------------------------------------------


async def _raw(
    bootstrap: str,
    topics: list[str],
    expect: int,
    timeout: float,  # noqa: ASYNC109  (passed on to tail)
) -> dict[str, Any]:
    seen = 0
    start = 0.0
    last = 0.0

    def on_start(now: float) -> None:
        nonlocal start
        start = now

    def on_batch(records: list[Any], now: float) -> bool:
        nonlocal seen, last
        if records:
            seen += len(records)
            last = now
        return seen >= expect

    # timed from the first fetch request (the reader is assigned and positioned) to the
    # batch holding the last record: the first batch would otherwise come "for free"
    await tail(bootstrap, topics, on_batch, timeout=timeout, on_start=on_start)
    return {"records": seen, "timed_records": seen, "seconds": last - start}


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="raw aiokafka reader (transport ceiling)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("raw")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--expect", type=int, required=True)
    r.add_argument("--timeout", type=float, default=600.0)
    r.add_argument("topics", nargs="+")
    args = p.parse_args(argv)
    result = asyncio.run(_raw(args.bootstrap, args.topics, args.expect, args.timeout))
    print("RAW " + json.dumps(result), flush=True)
    return 0


def iter_chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


if __name__ == "__main__":
    sys.exit(_main())
