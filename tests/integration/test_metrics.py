"""The console's /metrics against the real embedded broker: clients, actions, feed state.

In-process: ``run_console`` with ``metrics_port`` (what ``sdo console --metrics-port``
calls), a websocket client logging in with a real token, and plain HTTP scrapes.
Then the same through the command line, as a subprocess with JSON logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from sdo.broker import EmbeddedBroker
from sdo.config import Settings
from sdo.console.auth import Users, add_user
from sdo.console.server import Console, run_console
from sdo.events import Incident, OfficerLocation, OfficerProfile, OfficerStatus, Thrive
from tests.waits import wait_until

from .conftest import WorkerProcess
from .kafka import produce, produce_raw

pytestmark = pytest.mark.integration

#: Console start-up: topic creation and reading the (empty) topics.
CONSOLE_READY_TIMEOUT_S = 30.0
#: A change (a login, an action) shows in a scrape within this.
METRIC_TIMEOUT_S = 10.0
#: One scrape of a local endpoint.
SCRAPE_TIMEOUT_S = 5.0
#: The console subprocess: start (imports, Kafka) and stop.
PROCESS_READY_TIMEOUT_S = 60.0
PROCESS_STOP_TIMEOUT_S = 20.0
#: A line the worker wrote reaches the test's reader within this.
OUTPUT_TIMEOUT_S = 10.0


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        body: bytes = response.read()
    return body.decode()


def sample(text: str, name: str, labels: str = "") -> float | None:
    """The value of ``name{labels}`` in exposition ``text`` (``labels`` as printed)."""
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else None


async def scrape_until(
    url: str, condition: Callable[[str], bool], what: str, limit_s: float = METRIC_TIMEOUT_S
) -> str:
    deadline = time.monotonic() + limit_s
    while True:
        text = await asyncio.to_thread(scrape, url)
        if condition(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}:\n{text}")
        await asyncio.sleep(0.05)


async def caught_up(console: Console) -> None:
    """Wait (bounded) until the console has read its topics to the end."""
    deadline = time.monotonic() + CONSOLE_READY_TIMEOUT_S
    while not console.health.caught_up:
        if time.monotonic() > deadline:
            raise AssertionError(f"console not caught up within {CONSOLE_READY_TIMEOUT_S:g} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def served(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Console, str]]:
    """A console from ``run_console(..., metrics_port="127.0.0.1:0")`` and an SDO token."""
    users = tmp_path / "users.json"
    token, _ = add_user(users, "sgt.jones", "sdo")
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    ready: asyncio.Future[Console] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_console(
            settings,
            users,
            "127.0.0.1:0",
            ready=ready.set_result,
            stop=stop,
            metrics_port="127.0.0.1:0",
        )
    )
    try:
        async with asyncio.timeout(CONSOLE_READY_TIMEOUT_S):
            console = await asyncio.shield(ready)
        await caught_up(console)
        yield console, token
    finally:
        stop.set()
        async with asyncio.timeout(CONSOLE_READY_TIMEOUT_S):
            await task


async def login(console: Console, token: str) -> ClientConnection:
    ws = await connect(console.ws_url, origin=console.origins[0], compression=None)  # type: ignore[arg-type,unused-ignore]
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    async with asyncio.timeout(METRIC_TIMEOUT_S):
        while orjson.loads(await ws.recv())["type"] != "snapshot":
            pass
    return ws


async def test_metrics_count_connected_consoles_and_actions(served: tuple[Console, str]) -> None:
    """A logged-in page makes connected clients 1 (0 after it leaves); an action on an
    unknown incident counts as accept/rejected; the feed reports live, lag 0."""
    console, token = served
    assert console.metrics_server is not None
    url = console.metrics_server.url
    assert url.startswith("http://127.0.0.1:")
    before = await asyncio.to_thread(scrape, url)
    assert sample(before, "sdo_console_connected_clients") == 0
    assert "process_resident_memory_bytes" in before

    ws = await login(console, token)
    try:
        text = await scrape_until(
            url, lambda t: sample(t, "sdo_console_connected_clients") == 1, "1 client"
        )
        assert sample(text, "sdo_console_feed_lag") == 0
        action = {
            "type": "accept",
            "incident_id": "NOPE",
            "recommendation_id": "R0",
            "request_id": "a1",
        }
        await ws.send(orjson.dumps(action).decode())
        labels = 'kind="accept",outcome="rejected"'
        await scrape_until(
            url,
            lambda t: sample(t, "sdo_console_actions_total", labels) == 1,
            "the rejected action",
        )
    finally:
        await ws.close()
    text = await scrape_until(
        url, lambda t: sample(t, "sdo_console_connected_clients") == 0, "0 clients"
    )
    state = 'sdo_console_feed_state="{}"'
    assert sample(text, "sdo_console_feed_state", state.format("live")) == 1 or (
        sample(text, "sdo_console_feed_state", state.format("quiet")) == 1
    )


async def test_metrics_server_stops_with_the_console(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """Stopping the console releases the metrics port (here while its feed may still be
    connecting: no Kafka connection is left open either, see broker.start_client)."""
    users = tmp_path / "users.json"
    add_user(users, "a", "viewer")
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    console = Console(settings, Users(users), bind="127.0.0.1:0", metrics_port="127.0.0.1:0")
    async with asyncio.timeout(CONSOLE_READY_TIMEOUT_S):
        await console.start()
    server = console.metrics_server
    assert server is not None
    assert "sdo_console_connected_clients" in await asyncio.to_thread(scrape, server.url)
    async with asyncio.timeout(CONSOLE_READY_TIMEOUT_S):
        await console.stop()
    assert console.metrics_server is None
    with pytest.raises(OSError):
        await asyncio.to_thread(scrape, server.url)


def test_sdo_console_command_serves_metrics_and_json_logs(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """`sdo console --metrics-port 127.0.0.1:0 --log-format json` announces its metrics URL,
    answers a scrape, and logs JSON lines on stderr."""
    users = tmp_path / "users.json"
    add_user(users, "a", "viewer")
    cmd = [
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
        "--metrics-port",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + PROCESS_READY_TIMEOUT_S
        while url is None and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=0.5)
                if line.startswith("metrics at "):
                    url = line.split()[-1]
            if proc.poll() is not None:
                break
        assert url is not None, f"no metrics line (exit {proc.poll()})"
        text = scrape(url)
        assert sample(text, "sdo_console_connected_clients") == 0
        assert "process_resident_memory_bytes" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=PROCESS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err
    logged = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert logged, f"no JSON log lines on stderr:\n{err}"
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in logged)
    assert not [line for line in err.splitlines() if line and not line.startswith("{")], err


async def test_worker_metrics_count_events_dead_letters_and_latency(
    broker: EmbeddedBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """`sdo worker --metrics-port` serves events processed by type, dead letters by reason
    class, the recommendation latency histogram and consumer lag."""
    worker = start_worker(None, "--metrics-port", "127.0.0.1:0", "--log-format", "json")
    url = next(
        m.group(1) for line in worker.output if (m := re.search(r"^metrics at (http://\S+)", line))
    )
    # what the worker prints is its own output, not a record of Faust's logger at WARNING;
    # and a log store gets a record of its being ready, at INFO, with where its metrics are
    # (logged just after the ready line the fixture waited for: wait for it to be read too)
    await wait_until(
        lambda: any(line.startswith("{") and "worker ready (" in line for line in worker.output),
        OUTPUT_TIMEOUT_S,
        "the worker's ready record",
    )
    said = [line for line in worker.output if "worker ready (" in line or "metrics at " in line]
    printed = [line for line in said if not line.startswith("{")]
    assert [line.split(" ")[0] for line in printed] == ["metrics", "worker"], said
    records = [orjson.loads(line) for line in said if line.startswith("{")]
    assert [(r["level"], r["message"]) for r in records] == [
        ("INFO", f"worker ready ({worker.app_id}); metrics at {url}")
    ], said
    t0 = datetime(2015, 12, 1, 9, tzinfo=UTC)
    events = [
        OfficerProfile(
            event_id="p", ts=t0, officer_id="m1", callsign="M1", role="response", transport="car"
        ),
        OfficerStatus(event_id="s", ts=t0, officer_id="m1", status="available"),
        OfficerLocation(event_id="l", ts=t0, officer_id="m1", lon=-1.83, lat=52.56),
        Incident(
            event_id="i",
            ts=t0,
            incident_id="mi1",
            lon=-1.83,
            lat=52.55,
            category="violence",
            thrive=Thrive(
                threat="high",
                harm="low",
                risk="low",
                vulnerability="none",
                investigation=False,
                engagement=False,
                prevention=False,
            ),
            ongoing=True,
            offender_present=True,
            persistent=False,
        ),
    ]
    await produce(broker.bootstrap, worker.topics, events)
    await produce_raw(broker.bootstrap, worker.topics.location, b"m1", b"not json")

    def total(text: str, name: str, label: str) -> float:
        lines = re.findall(rf"^{re.escape(name)}{{([^}}]*)}} (\S+)$", text, re.M)
        return sum(float(value) for labels, value in lines if label in labels)

    def ready(text: str) -> bool:
        return (sample(text, "sdo_events_processed_total", 'type="incident"') or 0) >= 1 and (
            total(text, "sdo_dead_letters_total", 'reason="invalid_event"') >= 1
        )

    text = await scrape_until(url, ready, "events and a dead letter counted")
    assert (sample(text, "sdo_events_processed_total", 'type="officer.location"') or 0) >= 1
    assert (sample(text, "sdo_recommendation_latency_seconds_count") or 0) >= 1
    assert "sdo_consumer_lag" in text
