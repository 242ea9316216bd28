"""Poison records (issue 25) through a real worker and a real console at once.

A tombstone on every input topic, and events stamped 9999-12-31, 2100-01-01 and
0001-01-01 on the status, location, incident and deployment topics, each with the Kafka
record time of its ``ts`` (a producer that believes its clock): every one is dead-lettered
by the worker with its reason, the worker goes on to recommend the next valid incident,
and the console, which reads the same topics, shows none of it: its picture and its clock
are what they were. Before the admission rule, one tombstone crashed the worker's only
agent, and one status stamped 9999 froze an officer off duty on every console and moved
its clock to the year 9999.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from sdo.broker import EmbeddedBroker
from sdo.config import Settings
from sdo.console.auth import Users, add_user
from sdo.console.server import Console

from ..test_bad_input import deployment, incident, location, profile, status
from .conftest import WorkerProcess
from .kafka import Collector

pytestmark = pytest.mark.integration

#: The worker and the console apply what they are sent within this.
APPLY_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.05
#: The absurd times, and the record times sent with them (Kafka takes no negative time:
#: the year 1 goes with record time 0, the earliest it has).
ABSURD: Final = {
    "9999": ("9999-12-31T23:59:59Z", 253_402_300_799_000),
    "2100": ("2100-01-01T00:00:00Z", 4_102_444_800_000),
    "0001": ("0001-01-01T00:00:00Z", 0),
}


def _now(seconds: float = 0.0) -> str:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return when.isoformat().replace("+00:00", "Z")


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


async def _send(bootstrap: str, items: list[tuple[str, bytes | None, bytes | None, int]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, key, value, stamp in items:
            await producer.send_and_wait(topic, key=key, value=value, timestamp_ms=stamp)
    finally:
        await producer.stop()


def _js(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def _poison(topics: Any) -> list[tuple[str, str, bytes, bytes | None, int]]:
    """(name, topic, key, value, record time) of every poison record."""
    out: list[tuple[str, str, bytes, bytes | None, int]] = []
    keys = {
        "location": b"victim",
        "status": b"victim",
        "profile": b"victim",
        "incident": b"I-poison",
        "deployment": b"I-open",
    }
    for name in ("location", "status", "profile", "incident", "deployment"):
        out.append((f"tombstone on {name}", getattr(topics, name), keys[name], None, 0))
    for label, (ts, stamp) in ABSURD.items():
        bodies = {
            "location": location(eid=f"p-l-{label}", ts=ts),
            "status": {**status(value="off_duty", eid=f"p-s-{label}"), "ts": ts},
            "incident": {**incident("I-poison", eid=f"p-i-{label}"), "ts": ts},
            "deployment": {**deployment("I-open", eid=f"p-d-{label}"), "ts": ts},
        }
        for name, body in bodies.items():
            out.append((f"{name} at {label}", getattr(topics, name), keys[name], _js(body), stamp))
    return out


def _picture(console: Console) -> dict[str, Any]:
    """What a page is shown: the snapshot, the clock's text and the event time."""
    snap = console.view.snapshot()
    return {
        "officers": snap["officers"],
        "incidents": snap["incidents"],
        "recommendations": snap["recommendations"],
        "alerts": snap["alerts"],
        "deployments": snap["deployments"],
        "event_time": snap["event_time"],
    }


async def test_poison_records_are_dead_lettered_and_shown_by_no_console(
    broker: EmbeddedBroker,
    topic_prefix: str,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Every poison record: one dead letter with its reason; the next valid incident is
    recommended; the console's picture and clock are unchanged."""
    worker = start_worker()
    topics = worker.topics
    users = tmp_path / "users.json"
    add_user(users, "sgt.poison", "sdo")
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    setup = [
        (topics.profile, b"victim", _js({**profile(eid="v-p"), "ts": _now(-60)})),
        (topics.status, b"victim", _js({**status(eid="v-s"), "ts": _now(-60)})),
        (topics.location, b"victim", _js(location(eid="v-l", ts=_now(-59)))),
        (topics.incident, b"I-open", _js({**incident("I-open", eid="o-v1"), "ts": _now(-30)})),
    ]
    await _send(broker.bootstrap, [(t, k, v, _ms(orjson.loads(v)["ts"])) for t, k, v in setup])
    async with Console(settings, Users(users), bind="127.0.0.1:0") as console:
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while not (console.health.caught_up and "I-open" in console.view.recommendations):
            assert time.monotonic() < deadline, "console did not show the setup"
            await asyncio.sleep(POLL_S)
        before = _picture(console)
        poison = _poison(topics)
        await _send(broker.bootstrap, [(t, k, v, stamp) for _, t, k, v, stamp in poison])
        sent_at = time.monotonic()
        following = _js({**incident("I-next", eid="n-v1"), "ts": _now()})
        await _send(broker.bootstrap, [(topics.incident, b"I-next", following, _ms(_now()))])
        async with Collector(broker.bootstrap, topics.deadletter, topics.recommendation) as c:
            await c.wait_for(
                lambda c: any(
                    r["incident_id"] == "I-next" for r in c.values(topics.recommendation)
                ),
                what="the next valid incident recommended",
                limit_s=APPLY_TIMEOUT_S,
            )
            took = time.monotonic() - sent_at
            await c.wait_for(
                lambda c: len(c.values(topics.deadletter)) >= len(poison),
                what=f"{len(poison)} dead letters",
                limit_s=APPLY_TIMEOUT_S,
            )
            letters = c.values(topics.deadletter)
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while "I-next" not in console.view.recommendations:
            assert time.monotonic() < deadline, "the console never showed the next incident"
            await asyncio.sleep(POLL_S)
        after = _picture(console)
    reasons = sorted(d["error"] for d in letters)
    assert len(letters) == len(poison), reasons
    assert sum("tombstone" in r for r in reasons) == 5, reasons
    assert sum("ahead of this process's clock" in r for r in reasons) == 8, reasons
    assert sum("before 2000-01-01" in r for r in reasons) == 4, reasons
    # the console: the same picture but for the next incident and its recommendation
    after["incidents"] = [i for i in after["incidents"] if i["incident_id"] != "I-next"]
    after["recommendations"] = [r for r in after["recommendations"] if r["incident_id"] != "I-next"]
    assert {o["officer_id"]: o["status"] for o in after["officers"]}["victim"] == "available"
    clock = datetime.fromisoformat(after["event_time"])
    assert clock <= datetime.now(UTC) + timedelta(minutes=5), after["event_time"]
    after_clock, before_clock = after.pop("event_time"), before.pop("event_time")
    assert after_clock >= before_clock
    assert after == before
    print(f"\nthe next valid incident was recommended {took:.2f} s after the poison was sent")
