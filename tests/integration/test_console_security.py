"""Console security (issue 7 §4) beyond ``test_console.py``: actions before auth, more
wrong origins, viewers and every action, tokens never logged nor echoed, hashed storage,
the per-connection action rate limit, the message size cap, decisions on closed
incidents, the audit trail's user and time, and TLS with a self-signed certificate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from sdo.broker import EmbeddedBroker
from sdo.console.auth import add_user, hash_token
from sdo.console.server import ACTION_BURST, MAX_MESSAGE_BYTES, Console
from sdo.events import Incident, IncidentState

from .test_console import (
    AUTH_MARGIN_S,
    AUTH_TIMEOUT_S,
    FEED_TIMEOUT_S,
    KAFKA_TIMEOUT_S,
    T0,
    Page,
    console,  # noqa: F401  (fixture)
    login,
    pilot_events,
    produce,
    tokens,  # noqa: F401  (fixture)
    wait_until,
)

pytestmark = pytest.mark.integration

#: `sdo console` start-up as a subprocess (imports, topics, first read of the topics).
CONSOLE_PROCESS_TIMEOUT_S: Final = 60.0
#: Validity of the test certificate (days).
CERT_DAYS: Final = 2


async def deployments(bootstrap: str, topic: str, at_least: int) -> list[dict[str, Any]]:
    """Every deployment on the topic, read to its end (and until ``at_least`` are there)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(KAFKA_TIMEOUT_S):
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                out.extend(
                    {**orjson.loads(r.value), "_record_ms": r.timestamp}
                    for rs in batch.values()
                    for r in rs
                )
                ends = await consumer.end_offsets(list(consumer.assignment()))
                positions = {tp: await consumer.position(tp) for tp in ends}
                if len(out) >= at_least and all(positions[tp] >= ends[tp] for tp in ends):
                    return out
    finally:
        await consumer.stop()


async def ask(page: Page, message: dict[str, Any]) -> dict[str, Any]:
    await page.ws.send(orjson.dumps(message).decode())
    rid = message["request_id"]
    reply: dict[str, Any] = await page.recv_until(
        lambda p: p.reply(rid), FEED_TIMEOUT_S, f"reply {rid}"
    )
    return reply


async def test_action_before_authentication_gets_nothing_and_is_closed(console: Console) -> None:
    """A first message that is an action, not ``auth``, is not acted on: nothing is
    received and the socket is closed with 1008."""
    received: list[Any] = []
    async with connect(console.ws_url, origin=console.origins[0]) as ws:  # type: ignore[arg-type]
        await ws.send(
            orjson.dumps(
                {"type": "decline", "incident_id": "I1", "reason": "x", "request_id": "r"}
            ).decode()
        )
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(AUTH_TIMEOUT_S + AUTH_MARGIN_S):
                while True:
                    received.append(await ws.recv())
        assert (ws.close_code, ws.close_reason) == (1008, "authentication required")
    assert received == []


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:{other}",
        "https://127.0.0.1:{port}",
        "null",
        "http://127.0.0.1.evil.example:{port}",
        "http://localhost:{port}.evil.example",
    ],
)
async def test_other_origins_are_refused(console: Console, origin: str) -> None:
    """Look-alike origins (other port, other scheme, ``null``, suffixed hosts) get 403."""
    value = origin.format(port=console.port, other=console.port + 1)
    with pytest.raises(InvalidStatus) as err:
        async with connect(console.ws_url, origin=value):  # type: ignore[arg-type]
            pass
    assert err.value.response.status_code == 403


async def test_viewer_can_do_no_action_and_nothing_is_published(
    console: Console,
    broker: EmbeddedBroker,
    tokens: dict[str, Any],
) -> None:
    """A viewer's accept, override and decline are all refused as forbidden, and the
    deployment topic stays empty."""
    await produce(broker.bootstrap, console.topics, pilot_events())
    viewer = await login(console, tokens["viewer"])
    await viewer.recv_until(
        lambda p: "I1" in p.recommendations, FEED_TIMEOUT_S, "the recommendation"
    )
    actions = [
        {"type": "accept", "incident_id": "I1", "recommendation_id": "R1"},
        {"type": "override", "incident_id": "I1", "officer_ids": ["o1"], "reason": "nearer"},
        {"type": "decline", "incident_id": "I1", "reason": "no"},
    ]
    for n, action in enumerate(actions):
        reply = await ask(viewer, {**action, "request_id": f"v{n}"})
        assert (reply["type"], reply.get("code")) == ("error", "forbidden"), reply
    assert await deployments(broker.bootstrap, console.topics.deployment, 0) == []
    await viewer.ws.close()


async def test_tokens_are_never_logged_nor_echoed(
    console: Console,
    tokens: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Across a good login, a wrong token and a repeated ``auth`` after login, no token
    (good or wrong) appears in any log record or in any message sent to a client."""
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + tokens["sdo"][::-1]
    sdo = await login(console, tokens["sdo"])
    await sdo.ws.send(
        orjson.dumps({"type": "auth", "token": tokens["sdo"], "request_id": "again"}).decode()
    )
    await sdo.recv_until(lambda p: p.reply("again"), FEED_TIMEOUT_S, "the reply to a second auth")
    async with connect(console.ws_url) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": wrong}).decode())
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(AUTH_MARGIN_S):
                await ws.recv()
        assert wrong not in (ws.close_reason or "")
    await sdo.ws.close()
    # The console's side only: this test's own websocket client logs its frames at DEBUG.
    server_side = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in server_side)
    assert caplog.records, "expected the console to log the connections"
    sent = orjson.dumps(sdo.messages).decode()
    for secret in (tokens["sdo"], wrong, tokens["viewer"]):
        leaks = [line[:160] for line in logged.splitlines() if secret in line]
        assert not leaks, f"token in the console's logs: {leaks}"
        assert secret not in sent


def test_users_file_holds_only_hashes(tokens: dict[str, Any]) -> None:
    """The users file has each token's SHA-256, never the token, and is private (0600)."""
    text = tokens["path"].read_text()
    for role in ("sdo", "viewer"):
        assert tokens[role] not in text
        assert hash_token(tokens[role]) in text
    assert tokens["path"].stat().st_mode & 0o077 == 0


async def test_actions_are_rate_limited_per_user(console: Console, tokens: dict[str, Any]) -> None:
    """A burst of actions beyond ``ACTION_BURST`` is refused as rate limited; another
    connection of the same user shares the allowance (five sockets get no more than
    one); another user has their own."""
    first = await login(console, tokens["sdo"])
    burst = ACTION_BURST + 5
    for n in range(burst):
        await first.ws.send(
            orjson.dumps(
                {"type": "decline", "incident_id": "nope", "reason": "x", "request_id": f"b{n}"}
            ).decode()
        )
    replies = [
        await first.recv_until(lambda p, n=n: p.reply(f"b{n}"), FEED_TIMEOUT_S, f"reply b{n}")
        for n in range(burst)
    ]
    codes = [r.get("code") for r in replies]
    assert "rate_limited" not in codes[:ACTION_BURST], codes
    assert codes[ACTION_BURST:].count("rate_limited") >= 4, codes
    second = await login(console, tokens["sdo"])
    again = [
        await ask(
            second,
            {"type": "decline", "incident_id": "nope", "reason": "x", "request_id": f"s{n}"},
        )
        for n in range(5)
    ]
    # (the allowance refills at ACTION_RATE a second: a token or two may have come back)
    assert [r.get("code") for r in again].count("rate_limited") >= 3, again
    other_token, _ = add_user(tokens["path"], "sgt.khan", "sdo")
    other = await login(console, other_token)
    reply = await ask(
        other, {"type": "decline", "incident_id": "nope", "reason": "x", "request_id": "o0"}
    )
    assert reply.get("code") != "rate_limited", reply
    for page in (first, second, other):
        await page.ws.close()


async def test_oversized_message_closes_with_1009(console: Console, tokens: dict[str, Any]) -> None:
    """A client message above the size cap closes the connection with 1009 (too big)."""
    page = await login(console, tokens["sdo"])
    await page.ws.send("x" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(AUTH_MARGIN_S):
            while True:
                await page.ws.recv()
    assert page.ws.close_code == 1009


async def test_decision_on_closed_incident_is_refused(
    console: Console,
    broker: EmbeddedBroker,
    tokens: dict[str, Any],
) -> None:
    """Once an incident is closed, accept/override/decline on it are refused saying so."""
    events = pilot_events()
    incident = next(e for e in events if isinstance(e, Incident))
    closed = incident.model_copy(
        update={
            "event_id": "i1-closed",
            "ts": T0 + timedelta(minutes=5),
            "state": IncidentState.CLOSED,
        }
    )
    await produce(broker.bootstrap, console.topics, [*events, closed])
    await wait_until(
        lambda: (r := console.view.incidents.get("I1")) and not r.is_open,
        FEED_TIMEOUT_S,
        "I1 closed",
    )
    sdo = await login(console, tokens["sdo"])
    for n, action in enumerate(
        [
            {"type": "accept", "incident_id": "I1", "recommendation_id": "R1"},
            {"type": "override", "incident_id": "I1", "officer_ids": ["o1"], "reason": "r"},
            {"type": "decline", "incident_id": "I1", "reason": "r"},
        ]
    ):
        reply = await ask(sdo, {**action, "request_id": f"c{n}"})
        assert reply["type"] == "error" and "closed" in reply["error"], reply
    assert await deployments(broker.bootstrap, console.topics.deployment, 0) == []
    await sdo.ws.close()


async def test_every_action_is_audited_with_user_and_time(
    console: Console,
    broker: EmbeddedBroker,
    tokens: dict[str, Any],
) -> None:
    """Override and decline each become one deployment on Kafka naming the user, the time
    of the decision (the console's feed clock when it was made: the latest event time it
    had read, so the decision sorts after what the SDO saw; also its Kafka record time),
    the reason and the same event id as the ack."""
    await produce(broker.bootstrap, console.topics, pilot_events())
    sdo = await login(console, tokens["sdo"])
    await sdo.recv_until(lambda p: "I1" in p.recommendations, FEED_TIMEOUT_S, "the recommendation")
    before = console.view.event_time
    assert before is not None
    over = await ask(
        sdo,
        {
            "type": "override",
            "incident_id": "I1",
            "officer_ids": ["o1"],
            "reason": "knows the area",
            "request_id": "o",
        },
    )
    assert over["type"] == "ack", over
    await sdo.recv_until(
        lambda p: p.incidents["I1"]["decision"] == "overridden", FEED_TIMEOUT_S, "override seen"
    )
    # a decision on the same incident is blocked only while the first one is in flight
    await wait_until(lambda: "I1" not in console._inflight, FEED_TIMEOUT_S, "the override recorded")
    dec = await ask(
        sdo,
        {
            "type": "override",
            "incident_id": "I1",
            "officer_ids": ["o1"],
            "reason": "still best",
            "request_id": "o2",
        },
    )
    after = console.view.event_time
    assert dec["type"] == "ack", dec
    found = await deployments(broker.bootstrap, console.topics.deployment, 2)
    by_id = {d["event_id"]: d for d in found}
    assert set(by_id) == {over["event_id"], dec["event_id"]}
    for ack, reason in ((over, "knows the area"), (dec, "still best")):
        dep = by_id[ack["event_id"]]
        assert (dep["by"], dep["decision"], dep["reason"], dep["incident_id"]) == (
            "sgt.jones",
            "overridden",
            reason,
            "I1",
        )
        ts = datetime.fromisoformat(dep["ts"])
        assert ts.tzinfo is not None
        assert before <= ts <= after
        assert dep["_record_ms"] == round(ts.timestamp() * 1000)  # record time = ts
    await sdo.ws.close()


# -- TLS ----------------------------------------------------------------------------------


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the openssl command line."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            str(CERT_DAYS),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_tls_console_with_a_self_signed_certificate(
    broker: EmbeddedBroker,
    topic_prefix: str,
    tokens: dict[str, Any],
    tmp_path: Path,
) -> None:
    """``sdo console --cert --key`` serves wss:// and https://: a client trusting the
    certificate logs in and gets its snapshot; a plain ws:// client cannot talk to it;
    a client that does not trust the certificate is refused at the handshake."""
    cert, key = self_signed(tmp_path)
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
            str(tokens["path"]),
            "--bind",
            "127.0.0.1:0",
            "--cert",
            str(cert),
            "--key",
            str(key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + CONSOLE_PROCESS_TIMEOUT_S
        while url is None:
            assert time.monotonic() < deadline and proc.poll() is None, (
                "console not ready:\n" + "".join(output)
            )
            try:
                line = await asyncio.to_thread(lines.get, True, 0.5)
            except queue.Empty:
                continue
            if line.startswith("console ready at "):
                url = line.removeprefix("console ready at ").strip()
        assert url.startswith("https://127.0.0.1:")
        ws_url = url.replace("https", "wss", 1) + "ws"
        trusting = ssl.create_default_context(cafile=str(cert))
        async with connect(ws_url, ssl=trusting, origin=url.rstrip("/")) as ws:  # type: ignore[arg-type]
            await ws.send(orjson.dumps({"type": "auth", "token": tokens["sdo"]}).decode())
            page = Page(ws)
            await page.recv_until(
                lambda p: any(m["type"] == "snapshot" for m in p.messages),
                FEED_TIMEOUT_S,
                "snapshot over TLS",
            )
            assert page.messages[0]["type"] == "hello"
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(ws_url, ssl=ssl.create_default_context()):
                pass
        with pytest.raises((ConnectionClosed, InvalidHandshake, OSError, TimeoutError)):
            async with asyncio.timeout(AUTH_MARGIN_S):
                async with connect(url.replace("https", "ws", 1) + "ws") as plain:
                    await plain.send(
                        orjson.dumps({"type": "auth", "token": tokens["sdo"]}).decode()
                    )
                    await plain.recv()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            int(url.rsplit(":", 1)[1].strip("/")),
            ssl=trusting,
            server_hostname="127.0.0.1",
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        async with asyncio.timeout(AUTH_MARGIN_S):
            head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        try:
            proc.wait(CONSOLE_PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert tokens["sdo"] not in "".join(output)
