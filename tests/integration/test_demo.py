"""``sdo demo`` end to end: broker, worker, console and simulated feed in one command.

This is also the test of the whole chain: the simulated feed goes through Kafka into the
real worker, whose recommendations reach an SDO's websocket through the console; the SDO
accepts one and the decision comes back as a deployment that the worker applies.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

pytestmark = pytest.mark.integration

#: Broker, worker (group join) and console start-up.
DEMO_READY_TIMEOUT_S = 90.0
#: At 60x the feed brings an incident every few seconds of wall time (fewer at night).
RECOMMENDATION_TIMEOUT_S = 180.0
#: An accepted recommendation comes back from Kafka as a deployment.
DECISION_TIMEOUT_S = 30.0
DEMO_STOP_TIMEOUT_S = 40.0


def _read_until(
    proc: subprocess.Popen[str], pattern: str, limit_s: float, seen: list[str]
) -> re.Match[str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + limit_s
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        match = regex.search(line)
        if match:
            return match
    raise AssertionError(
        f"no line matching {pattern!r} within {limit_s:.0f} s:\n" + "".join(seen[-30:])
    )


async def _messages_until(
    ws: ClientConnection, want: Any, limit_s: float, what: str
) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        while True:
            message = orjson.loads(await ws.recv())
            if want(message):
                return message  # type: ignore[no-any-return]
    raise AssertionError(what)  # pragma: no cover (timeout raises first)


def test_demo_runs_the_whole_chain_and_stops_cleanly() -> None:
    """The demo prints the console URL and a token; an SDO connected with that token sees
    officers and a recommendation from the worker, accepts it, sees the deployment applied
    (incident resourced); Ctrl-C stops everything with exit code 0, every Kafka client
    closed before the broker stops."""
    cmd = [
        sys.executable,
        "-m",
        "sdo",
        "demo",
        "--bind",
        "127.0.0.1:0",
        "--speed",
        "60",
        "--officers",
        "80",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # a group of its own, as in a terminal: Ctrl-C reaches it all
    )
    seen: list[str] = []
    try:
        url = _read_until(proc, r"console ready at (http://\S+)", DEMO_READY_TIMEOUT_S, seen).group(
            1
        )
        token = _read_until(proc, r"login token for \S+ \(role sdo\): (\S+)", 5, seen).group(1)
        asyncio.run(_sdo_session(url, token))
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the demo and the worker it started
        out, _ = proc.communicate(timeout=DEMO_STOP_TIMEOUT_S)
        seen.append(out)
        assert proc.returncode == 0, "".join(seen[-30:])
        assert "demo stopped" in out
        assert "Traceback" not in "".join(seen)
        # every Kafka client closed before the broker stops: an open connection makes the
        # broker wait, and the demo kills it after a warning
        assert "ignored SIGTERM" not in "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


async def _sdo_session(url: str, token: str) -> None:
    ws_url = url.replace("http://", "ws://").rstrip("/") + "/ws"
    async with connect(ws_url, max_size=None, open_timeout=10) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        hello = await _messages_until(ws, lambda m: m["type"] == "hello", 10, "hello")
        assert hello["role"] == "sdo" and hello["can_decide"] is True

        def with_officer(m: dict[str, Any]) -> bool:
            recs = (
                [m["recommendation"]]
                if m["type"] == "recommendation"
                else m.get("recommendations", [])
            )
            return m["type"] in ("recommendation", "snapshot") and any(
                r["recommended"] for r in recs
            )

        message = await _messages_until(
            ws, with_officer, RECOMMENDATION_TIMEOUT_S, "a recommendation naming an officer"
        )
        recs = (
            [message["recommendation"]]
            if message["type"] == "recommendation"
            else message["recommendations"]
        )
        rec = next(r for r in recs if r["recommended"])
        await ws.send(
            orjson.dumps(
                {
                    "type": "accept",
                    "request_id": "demo-1",
                    "incident_id": rec["incident_id"],
                    "recommendation_id": rec["recommendation_id"],
                }
            ).decode()
        )
        reply = await _messages_until(
            ws, lambda m: m.get("request_id") == "demo-1", DECISION_TIMEOUT_S, "ack"
        )
        if reply["type"] == "error":
            # the recommendation was superseded in the meantime: that is the console doing its job
            assert reply["code"] == "rejected", reply
            return
        assert reply["type"] == "ack" and reply["decision"] == "accepted"
        resourced = await _messages_until(
            ws,
            lambda m: (
                m["type"] == "incident"
                and m["incident"]["incident_id"] == rec["incident_id"]
                and m["incident"]["state"] == "resourced"
            ),
            DECISION_TIMEOUT_S,
            "the incident resourced by the worker",
        )
        assert resourced["incident"]["assigned"] == list(rec["recommended"])
