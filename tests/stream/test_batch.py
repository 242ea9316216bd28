"""The worker's batch lane decides exactly as the general way (sdo.stream.batch).

``Runtime.take`` applies a batch of Kafka records in the one order; location records go
through the compiled fix lane as far as it takes them. The lane changes how fast, never
what: over a simulated log, with hostile Kafka records mixed in (tombstones, wrong keys,
empty values, values of several lines, fractions of a second, a clock far ahead), the
same batches with and without the lane publish the same outputs and dead letters and
leave the same World and tables. And the one order is the heap merge's, whichever way
``merged`` computes it.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import random
import re
from collections import defaultdict
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from sdo.admission import KEY_FIELDS, Admission
from sdo.areas import load_areas
from sdo.config import SEQ_HEADER, Settings
from sdo.evaluation.simulate import simulate
from sdo.events import encode
from sdo.stream import ordering
from sdo.stream.batch import BatchLane
from tests.stream.stand_ins import TP, Record, Recorder

START = datetime(2015, 12, 1, 6, tzinfo=UTC)
_CLOCK = re.compile(r"clock \([^;]*;")
PARTITIONS = 4
TOPICS = {
    "officer.location": "sdo.location",
    "officer.status": "sdo.status",
    "officer.profile": "sdo.profile",
    "incident": "sdo.incident",
    "deployment": "sdo.deployment",
}


@pytest.fixture(scope="module")
def log() -> list[tuple[str, bytes | None, bytes | None, int]]:
    """Six simulated hours (150 officers, seed 2) as (event type, key, value, record time
    in ms), with hostile records mixed in."""
    events = simulate(load_areas(Settings().areas_path), seed=2, hours=6, officers=150, start=START)
    rng = random.Random(5)
    out: list[tuple[str, bytes | None, bytes | None, int]] = []
    for event in events:
        value = encode(event)
        key = str(getattr(event, KEY_FIELDS[event.type])).encode()
        ms = int(event.ts.timestamp() * 1000)
        out.append((event.type, key, value, ms))
        if event.type != "officer.location" or rng.random() > 0.03:
            continue
        fix = orjson.loads(value)
        variant = rng.randrange(8)
        if variant == 0:
            out.append((event.type, key, None, ms))  # a tombstone
        elif variant == 1:
            # not its key (a fix the lane would take, but for its key)
            fix["ts"] = fix["ts"].replace("Z", ".5Z")
            fix["event_id"] += "-key"
            out.append((event.type, b"someone-else", orjson.dumps(fix), ms))
        elif variant == 2:
            out.append((event.type, key, b"", ms))
        elif variant == 3:
            out.append((event.type, key, value.replace(b',"lat":', b',\n"lat":'), ms))
        elif variant == 4:
            fix["ts"] = fix["ts"].replace("Z", ".5Z")
            fix["event_id"] += "-half"
            out.append((event.type, key, orjson.dumps(fix), ms))
        elif variant == 5:
            fix["ts"] = "2100-01-01T00:00:00Z"  # far ahead of the clock: refused
            fix["event_id"] += "-ahead"
            out.append((event.type, key, orjson.dumps(fix), ms))
        elif variant == 6:
            out.append((event.type, key, value, ms))  # again: a duplicate
        else:
            fix["officer_id"] = "ZZ-" + fix["officer_id"]  # nobody, keyed as such
            out.append((event.type, fix["officer_id"].encode(), orjson.dumps(fix), ms))
    return out


def _batches(
    log: list[tuple[str, bytes | None, bytes | None, int]], seed: int
) -> list[dict[TP, list[Record]]]:
    """The log as Kafka would hand it over: per topic partition, in offset order, in
    batches of random sizes, each stamped with its log position (as ``sdo replay``)."""
    from sdo.stream.app import _partition_of  # noqa: PLC0415 (imports Faust)

    rng = random.Random(seed)
    offsets: dict[TP, int] = defaultdict(int)
    out: list[dict[TP, list[Record]]] = []
    i = 0
    while i < len(log):
        size = rng.choice((1, 7, 200, 3000))
        batch: dict[TP, list[Record]] = defaultdict(list)
        for n, (kind, key, value, ms) in enumerate(log[i : i + size], start=i):
            subject = key.decode() if key else ""
            tp = TP(TOPICS[kind], _partition_of(subject, PARTITIONS))
            header = ((SEQ_HEADER, str(n).encode()),)
            batch[tp].append(Record(key, value, offsets[tp], ms, header))
            offsets[tp] += 1
        out.append(dict(batch))
        i += size
    return out


def _runtime(lane: bool) -> Any:
    from sdo.stream.app import Runtime  # noqa: PLC0415 (imports Faust)
    from sdo.stream.worker import make_world  # noqa: PLC0415

    settings = Settings()
    world = make_world(settings)
    world.dirty_incidents = set()
    admit = Admission(max_ahead_s=settings.max_ahead_s, areas=world.areas, keyed=True)
    runtime = Runtime(
        world=world,
        admit=admit,
        app=SimpleNamespace(consumer=SimpleNamespace(highwater=lambda tp: None)),
        officers={},
        incidents={},
        availability={},
        outputs={"recommendation": Recorder(), "alert": Recorder(), "deadletter": Recorder()},
        topic_kinds={topic: kind for kind, topic in TOPICS.items()},
        topic_of=TOPICS,
        location_topic=TOPICS["officer.location"],
        instance="same",
    )
    if lane:
        runtime.lane = BatchLane(world, admit)
    return runtime


def _run(log: list[Any], lane: bool) -> tuple[Any, dict[str, Any]]:
    runtime = _runtime(lane)

    async def main() -> None:
        for n, batch in enumerate(_batches(log, seed=11)):
            await runtime.take(batch)
            if n % 5 == 0:
                runtime.flush()  # (a commit)
        runtime.flush()

    asyncio.run(main())
    world = runtime.world
    letters = [orjson.loads(v) for _, v in runtime.outputs["deadletter"].sent]
    state = {
        "recommendations": runtime.outputs["recommendation"].sent,
        "alerts": runtime.outputs["alert"].sent,
        # (a dead letter's id and times, and the clock in a reason, are the wall clock's)
        "dead": [(d["source_topic"], _CLOCK.sub("", d["error"]), d["raw"]) for d in letters],
        "tables": copy.deepcopy([runtime.officers, runtime.incidents, runtime.availability]),
        "officers": {k: v.to_dict() for k, v in world.officers.items()},
        "incidents": {k: v.to_dict() for k, v in world.incidents.items()},
        "availability": world.availability(),
        "open": sorted(encode(r) for r in world.open_recommendations()),
        "now": world.now,
        "positions": dict(runtime.positions),
        "processed": dict(runtime.processed),
        "ignored": dict(runtime.ignored),
    }
    return runtime, state


def test_the_batch_lane_decides_as_the_general_way(log: list[Any]) -> None:
    fast, with_lane = _run(log, lane=True)
    _, without = _run(log, lane=False)
    for name in with_lane:
        assert with_lane[name] == without[name], name
    # a lane that refused everything would pass the above: this one takes nearly all
    fixes = sum(1 for kind, *_ in log if kind == "officer.location")
    assert fast.lane.applied > 0.8 * fixes
    assert len(with_lane["recommendations"]) > 20
    assert len(with_lane["alerts"]) > 5
    assert len(with_lane["dead"]) > 20  # every hostile record, but the duplicates
    reasons = " ".join(error for _, error, _ in with_lane["dead"])
    for what in ("Kafka key", "no value", "ahead"):
        assert what in reasons, what


def _records(rng: random.Random, n: int, *, ordered: bool, seq: bool) -> list[Record]:
    stamps = sorted(rng.randrange(40) for _ in range(n)) if ordered else None
    out = []
    for k in range(n):
        ts = stamps[k] if stamps is not None else rng.randrange(40)
        header = ((SEQ_HEADER, str(rng.randrange(5)).encode()),) if seq else ()
        out.append(Record(b"k", b"v", k, ts, header))
    if seq and ordered:  # (time, sequence) in order within the partition
        out.sort(key=lambda r: (r.timestamp, int(r.headers[0][1])))
        out = [r._replace(offset=k) for k, r in enumerate(out)]
    return out


@pytest.mark.parametrize("trial", range(60))
def test_merged_is_the_heap_merge(trial: int) -> None:
    rng = random.Random(trial)
    ordered, seq = trial % 3 != 0, trial % 2 == 0
    batch = {
        TP(topic, p): _records(rng, rng.randrange(0, 30), ordered=ordered, seq=seq)
        for topic in ("sdo.location", "sdo.incident")
        for p in range(rng.randrange(1, 4))
    }
    batch = {tp: records for tp, records in batch.items() if records}
    if not batch:
        return
    streams = [
        [(ordering.order_key(tp, r), tp, r) for r in records] for tp, records in batch.items()
    ]
    expected = [(tp, r) for _, tp, r in heapq.merge(*streams, key=lambda item: item[0])]
    assert ordering.merged(batch) == expected


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "general"])
def test_the_metrics_count_what_each_batch_applied(log: list[Any], lane: bool) -> None:
    """The events applied by type and each input topic's lag are brought up to date once
    a batch (not once a record): after each batch they are what the runtime counted, and
    the lag what is left of the log behind the records applied."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from sdo.metrics import WorkerMetrics  # noqa: PLC0415

    batches = _batches(log, seed=3)
    ends: dict[TP, int] = defaultdict(int)  # per partition, the offset after its last
    for batch in batches:
        for tp, records in batch.items():
            ends[tp] = records[-1].offset + 1
    runtime = _runtime(lane)
    runtime.app = SimpleNamespace(consumer=SimpleNamespace(highwater=ends.__getitem__))
    registry = CollectorRegistry()
    runtime.metrics = WorkerMetrics(registry)

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    async def main() -> None:
        checked = 0
        for n, batch in enumerate(batches):
            await runtime.take(batch)
            if n % 7:
                continue
            for kind, count in runtime.processed.items():
                assert sample("sdo_events_processed_total", type=kind) == count, kind
            for topic in TOPICS.values():
                behind = sum(
                    ends[tp] - offset - 1
                    for tp, offset in runtime.positions.items()
                    if tp.topic == topic
                )
                assert sample("sdo_consumer_lag", topic=topic) == behind, topic
                checked += behind > 0
        assert checked  # (a lag never set would read 0)

    asyncio.run(main())
    total = sum(sample("sdo_events_processed_total", type=kind) for kind in TOPICS)
    assert total == sum(runtime.processed.values()) > 0.9 * len(log)


_COMPILED_AT_START = """
import json
from numba.core.registry import CPUDispatcher
import sdo.domain.lane_kernels as kernels
from sdo.admission import Admission
from sdo.config import Settings
from sdo.stream.batch import BatchLane
from sdo.stream.worker import make_world

from datetime import UTC, datetime
from types import SimpleNamespace
from sdo.events import OfficerLocation, encode


def compiled():
    return {name: len(f.signatures) for name, f in vars(kernels).items()
            if isinstance(f, CPUDispatcher)}


settings = Settings()
world = make_world(settings)
lane = BatchLane(world, Admission(max_ahead_s=settings.max_ahead_s, areas=world.areas, keyed=True))
made = compiled()
fix = OfficerLocation(event_id="f1", ts=datetime.now(UTC), officer_id="o1", lat=52.48, lon=-1.89)
record = SimpleNamespace(key=b"o1", value=encode(fix), offset=0, timestamp=0, headers=())
lane.take([(SimpleNamespace(topic="loc", partition=0), record)], 0, 1)
lane.sync({})
print(json.dumps({"made": made, "after_a_batch": compiled()}))
"""


def test_the_lane_is_compiled_before_its_first_batch(tmp_path: Any) -> None:
    """Made (as the worker makes it, before it reports ready), the batch lane has its scan
    and sync kernels compiled, even on a machine where numba has compiled nothing yet (an
    empty cache: here its own directory), and its first batch compiles nothing more: a
    fresh worker's first AVL fixes waited seconds for numba (a user's first benchmark run
    after set-up)."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    done = subprocess.run(
        [sys.executable, "-c", _COMPILED_AT_START],
        env=env,
        capture_output=True,
        text=True,
        timeout=_COMPILE_TIMEOUT_S,
        check=True,
    )
    compiled = json.loads(done.stdout.strip().splitlines()[-1])
    made = compiled["made"]
    assert made["_scan"] >= 1 and made["_dirty_parts"] >= 1, made
    assert compiled["after_a_batch"] == made, "a batch had numba compile a kernel"


#: Generous: numba compiling the lane's kernels from nothing takes several seconds.
_COMPILE_TIMEOUT_S = 300
