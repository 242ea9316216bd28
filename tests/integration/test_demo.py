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
import threading
import time
from datetime import UTC, datetime
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


def _start_demo() -> subprocess.Popen[str]:
    """``sdo demo`` at speed 60 with 80 officers, its output on a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "sdo", "demo", "--bind", "127.0.0.1:0",
         "--speed", "60", "--officers", "80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # a group of its own, as in a terminal: Ctrl-C reaches it all
    )  # fmt: skip


def test_demo_runs_the_whole_chain_and_stops_cleanly() -> None:
    """The demo prints the console URL and a token; an SDO connected with that token sees
    officers and a recommendation from the worker, accepts it, sees the deployment applied
    (incident resourced); Ctrl-C stops everything with exit code 0, every Kafka client
    closed before the broker stops."""
    proc = _start_demo()
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


#: The demo's feed runs this far ahead of the clock before the decisions are taken.
AHEAD_S = 2 * 3600.0
#: At --speed 60 the feed is AHEAD_S ahead after two minutes, and start-up.
AHEAD_TIMEOUT_S = 300.0


def test_decisions_with_the_feed_two_hours_ahead_are_applied_by_the_worker() -> None:
    """``sdo demo --speed 60`` for over two minutes, so that its feed runs two hours ahead
    of the clock: an SDO's accept, override and decline then are each acknowledged,
    published, applied by the demo's worker (its incidents table records the decision, by
    the SDO) and never dead-lettered. (The admission rule judges event time against the
    clock, and the demo lets its worker and console admit the feed it makes.)"""
    proc = _start_demo()
    seen: list[str] = []
    try:
        bootstrap = _read_until(proc, r"broker ready at (\S+)", DEMO_READY_TIMEOUT_S, seen).group(1)
        url = _read_until(proc, r"console ready at (http://\S+)", DEMO_READY_TIMEOUT_S, seen).group(
            1
        )
        token = _read_until(proc, r"login token for \S+ \(role sdo\): (\S+)", 5, seen).group(1)
        drain = threading.Thread(target=_drain, args=(proc, seen), daemon=True)
        drain.start()
        decided = asyncio.run(_decide_when_ahead(url, token))
        asyncio.run(_applied_by_the_worker(bootstrap, decided))
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(DEMO_STOP_TIMEOUT_S)
        drain.join(DEMO_STOP_TIMEOUT_S)
        assert proc.returncode == 0, "".join(seen[-30:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _drain(proc: subprocess.Popen[str], seen: list[str]) -> None:
    assert proc.stdout is not None
    seen.extend(proc.stdout)  # (appends line by line, until the demo ends)


async def _decide_when_ahead(url: str, token: str) -> dict[str, tuple[str, str]]:
    """Once the feed's clock is AHEAD_S past the wall clock: one accept, one override, one
    decline, each on a call still waiting; incident id -> (decision, event id)."""
    ws_url = url.replace("http://", "ws://").rstrip("/") + "/ws"
    async with connect(ws_url, max_size=None, open_timeout=10) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        pending: dict[str, dict[str, Any]] = {}
        decided: set[str] = set()
        done: dict[str, tuple[str, str]] = {}
        ahead = False
        deadline = time.monotonic() + AHEAD_TIMEOUT_S
        asked: dict[str, tuple[str, str]] = {}
        while len(done) < 3:
            assert time.monotonic() < deadline, (
                f"decisions {done} of 3 within {AHEAD_TIMEOUT_S:.0f} s (feed ahead: {ahead})"
            )
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                m = orjson.loads(await ws.recv())
            kind = m["type"]
            if kind == "status" and m.get("event_time"):
                clock = datetime.fromisoformat(m["event_time"])
                ahead = (clock - datetime.now(UTC)).total_seconds() >= AHEAD_S
            recs = m.get("recommendations", []) if kind == "snapshot" else []
            if kind == "recommendation":
                recs = [m["recommendation"]]
            for rec in recs:
                pending[rec["incident_id"]] = rec
            if kind == "incident" and m["incident"].get("decision"):
                decided.add(m["incident"]["incident_id"])
            if kind in ("ack", "error") and m.get("request_id") in asked:
                iid, decision = asked.pop(m["request_id"])
                if kind == "ack":
                    done[iid] = (decision, m["event_id"])
                decided.add(iid)
            if not ahead or asked:
                continue
            left = [
                d
                for d in ("accepted", "overridden", "declined")
                if d not in {v[0] for v in done.values()}
            ]
            for iid, rec in list(pending.items()):
                if iid in decided or iid in done or not left:
                    continue
                decision = left[0]
                if decision != "declined" and not rec["recommended"]:
                    continue
                message: dict[str, Any] = {
                    "request_id": f"ahead-{iid}",
                    "incident_id": iid,
                    "recommendation_id": rec["recommendation_id"],
                }
                if decision == "accepted":
                    message["type"] = "accept"
                elif decision == "overridden":
                    message |= {
                        "type": "override",
                        "officer_ids": list(rec["recommended"]),
                        "reason": "test: the feed is two hours ahead",
                    }
                else:
                    message |= {"type": "decline", "reason": "test: the feed is two hours ahead"}
                await ws.send(orjson.dumps(message).decode())
                asked[message["request_id"]] = (iid, decision)
                break
        return done


async def _applied_by_the_worker(bootstrap: str, decided: dict[str, tuple[str, str]]) -> None:
    """The worker's incidents table records each decision, by the demo's SDO; no dead
    letter carries any of them."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        "sdo-demo-incidents-changelog",
        "sdo.deadletter",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    letters: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + DECISION_TIMEOUT_S
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.value is None:
                        continue
                    if r.topic == "sdo.deadletter":
                        letters.append(orjson.loads(r.value))
                    else:
                        latest[orjson.loads(r.key)] = orjson.loads(r.value)
            applied = {
                iid
                for iid, (decision, _) in decided.items()
                if latest.get(iid, {}).get("decision") == decision
                and latest[iid].get("decided_by") == "demo-sdo"
            }
            if applied == set(decided):
                break
            assert time.monotonic() < deadline, (
                f"the worker applied {sorted(applied)} of {sorted(decided)}; dead letters: "
                + str([d["error"] for d in letters][:5])
                + "; the others as the table has them: "
                + str(
                    {
                        iid: {k: latest.get(iid, {}).get(k) for k in ("decision", "decided_by")}
                        for iid in set(decided) - applied
                    }
                )
            )
    finally:
        await consumer.stop()
    ours = {event_id for _, event_id in decided.values()}
    refused = [d for d in letters if any(e in d.get("raw", "") for e in ours)]
    assert refused == [], [d["error"] for d in refused]
