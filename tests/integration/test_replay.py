"""``sdo replay`` against the real embedded broker (issue #5)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from sdo.areas import load_areas
from sdo.broker import EmbeddedBroker
from sdo.cli import main
from sdo.config import Settings, Topics
from sdo.evaluation.replay import _start_producer, feed, key_of, replay_events
from sdo.evaluation.simulate import simulate
from sdo.events import Incident, OfficerLocation, OfficerStatus, Status, decode, encode

pytestmark = pytest.mark.integration

#: Bound on waiting for replayed events to be readable.
CONSUME_TIMEOUT_S = 30.0
START = datetime(2015, 12, 1, 21, 0, tzinfo=UTC)


async def _consume(bootstrap: str, topics: Topics, expected: int) -> list[Any]:
    """Read the input topics from the start until ``expected`` records (bounded wait)."""
    consumer = AIOKafkaConsumer(
        *topics.inputs, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id=None, enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


def _log_with_a_bad_line(path: Path, bad_at: int) -> list[bytes]:
    areas = load_areas(Settings().areas_path)
    lines = [encode(e) for e in simulate(areas, seed=2, hours=0.5, officers=24, start=START)]
    good = list(lines)
    lines.insert(bad_at - 1, b'{"type": "officer.location", "event_id": "x"}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return good


def test_replay_publishes_every_valid_event_in_key_order(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad line is reported with its number and skipped; the rest arrives, keyed, in order."""
    log = tmp_path / "day.jsonl"
    good = _log_with_a_bad_line(log, bad_at=5)
    argv = [
        "replay",
        str(log),
        "--speed",
        "max",
        "--broker",
        broker.url,
        "--topic-prefix",
        topic_prefix,
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{log}:5: skipped:" in err
    assert f"{len(good)} events sent, 1 skipped" in err

    topics = Topics(topic_prefix)
    records = asyncio.run(_consume(broker.bootstrap, topics, len(good)))
    assert len(records) == len(good)
    expected = [decode(line) for line in good]
    by_topic: dict[str, int] = defaultdict(int)
    for event in expected:
        by_topic[topics.for_type(event.type)] += 1
    got_topic: dict[str, int] = defaultdict(int)
    order: dict[tuple[str, bytes | None], list[str]] = defaultdict(list)
    for rec in records:
        event = decode(rec.value)
        assert rec.key == key_of(event)
        assert rec.topic == topics.for_type(event.type)
        got_topic[rec.topic] += 1
        order[(rec.topic, rec.key)].append(event.event_id)
    assert got_topic == by_topic
    want: dict[tuple[str, bytes | None], list[str]] = defaultdict(list)
    for event in expected:
        want[(topics.for_type(event.type), key_of(event))].append(event.event_id)
    assert order == want


async def _requests_per_record(settings: Settings, events: list[Any]) -> tuple[list[int], int]:
    """Feed ``events`` through the producer ``sdo replay`` makes, and say which produce
    request carried each (1, 2, …, in the order the requests went), and how many went. The
    sender's request method is wrapped to read the batches it is given; they are sent
    unchanged."""
    producer = await _start_producer(settings)
    sender = producer._sender
    send_request = sender._send_produce_req
    request_of: dict[int, int] = {}
    requests = 0

    def counted(node_id: Any, batches: dict[Any, Any]) -> Any:
        nonlocal requests
        requests += 1
        for batch in batches.values():
            for future, _ in batch._msg_futures:
                request_of[id(future)] = requests
        return send_request(node_id, batches)

    sender._send_produce_req = counted
    futures: list[Any] = []
    send = producer.send

    async def kept(*args: Any, **kwargs: Any) -> Any:
        future = await send(*args, **kwargs)
        futures.append(future)
        return future

    producer.send = kept
    try:
        await feed(events, producer, settings.topics, speed=None)
    finally:
        await producer.stop()
    return [request_of[id(f)] for f in futures], requests


def _busy_log() -> list[Any]:
    """Rare incidents among many fixes, more than one request's worth."""
    areas = load_areas(Settings().areas_path)
    return list(simulate(areas, seed=4, hours=1, officers=120, start=START))


def _large_updates_of_one_call() -> list[Any]:
    """Updates of one call with long summaries (one partition, over a megabyte) taking
    turns with fixes (another partition): more than one batch of that partition's."""
    events = _busy_log()
    call = next(e for e in events if isinstance(e, Incident))
    fixes = [e for e in events if isinstance(e, OfficerLocation)][:600]
    out: list[Any] = []
    for n, fix in enumerate(fixes):
        update = call.model_copy(
            update={"event_id": f"big-{n}", "ts": fix.ts, "summary": "x" * 1900}
        )
        out += [update, fix]
    return out


@pytest.mark.parametrize("make", [_busy_log, _large_updates_of_one_call])
def test_replay_writes_no_record_before_one_sent_ahead_of_it(
    broker: EmbeddedBroker, topic_prefix: str, make: Callable[[], list[Any]]
) -> None:
    """Across partitions too: no event goes to the broker in an earlier request than an
    event before it in the log. A worker orders its input across partitions by what each
    has answered (sdo.order); an incident written a request after the fixes that followed
    it would be applied after them."""
    events = make()
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    request_of, requests = asyncio.run(_requests_per_record(settings, events))
    assert len(request_of) == len(events)
    assert requests > 2, f"{len(events)} events went in {requests} requests"
    behind = [n for n in range(1, len(events)) if request_of[n] < request_of[n - 1]]
    assert not behind, (
        f"{len(behind)} events went a request before the event ahead of them, e.g. "
        f"{[(events[n - 1].type, events[n].type) for n in behind[:5]]}"
    )


def test_replay_paces_by_speed(broker: EmbeddedBroker, topic_prefix: str) -> None:
    """At 10x, three events 2 s apart in event time are not sent at once: the replay
    waits for each (0.4 s in all; the schedule itself: ``tests/test_replay.py``)."""
    events = [
        OfficerStatus(event_id=f"p{n}", ts=START + timedelta(seconds=2 * n), officer_id="RP-001",
                      status=Status.AVAILABLE)
        for n in range(3)
    ]  # fmt: skip
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    stats = asyncio.run(replay_events(events, settings, speed=10.0))
    assert stats.sent == 3
    assert stats.seconds >= 0.35  # the loop's clock may wake a hair early; never later matters


def test_missing_log_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No such file: exit 2 and one line, before any broker is contacted."""
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--broker", "kafka://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"sdo replay: error: {tmp_path / 'nope.jsonl'}: no such file"]


def test_unreachable_broker_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A closed port: exit 1 with one broker error line, no traceback."""
    log = tmp_path / "one.jsonl"
    log.write_bytes(
        encode(OfficerStatus(event_id="a", ts=START, officer_id="RP-001", status=Status.AVAILABLE))
    )
    assert main(["replay", str(log), "--broker", "kafka://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("sdo replay: broker error:")


def test_ctrl_c_stops_cleanly_with_the_count_sent(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """SIGINT mid-replay: what was sent is flushed, the count printed, exit 130."""
    log = tmp_path / "slow.jsonl"
    _log_with_a_bad_line(log, bad_at=1)
    cmd = [
        sys.executable, "-m", "sdo", "replay", str(log), "--speed", "20",
        "--broker", broker.url, "--topic-prefix", topic_prefix,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        first = asyncio.run(_consume(broker.bootstrap, Topics(topic_prefix), 1))
        assert first, "nothing replayed before the interrupt"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=CONSUME_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(CONSUME_TIMEOUT_S)
    assert proc.returncode == 130, err
    summary = [line for line in err.splitlines() if "interrupted" in line]
    assert len(summary) == 1 and "events sent" in summary[0], err
    assert "Traceback" not in err
