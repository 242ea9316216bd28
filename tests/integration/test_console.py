"""The console against the real embedded broker: auth first, origin check, decisions to Kafka."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sdo.broker import EmbeddedBroker
from sdo.config import Settings
from sdo.console.auth import Users, add_user
from sdo.console.server import Console
from sdo.events import (
    Incident,
    OfficerLocation,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
)
from tests.kafka_io import produce, read_deployments
from tests.waits import wait_until
from tests.ws import messages

pytestmark = pytest.mark.integration

#: Console start-up: topic creation plus reading the (empty) topics to the end.
CONSOLE_READY_TIMEOUT_S = 30.0
#: An event produced to Kafka reaches the console's pages within this.
FEED_TIMEOUT_S = 20.0
#: The console's authentication deadline in these tests, and the margin for it to act.
AUTH_TIMEOUT_S = 1.0
AUTH_MARGIN_S = 5.0
#: A deployment published by the console is readable from Kafka within this.
KAFKA_TIMEOUT_S = 20.0

T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
N01 = (-1.82, 52.595)


def pilot_events() -> list[BaseModel]:
    """One available officer in N01, an emergency incident nearby, and its recommendation."""
    ts = [T0 + timedelta(seconds=s) for s in range(6)]
    return [
        OfficerProfile(
            event_id="p1",
            ts=ts[0],
            officer_id="o1",
            callsign="NR11",
            role="response",
            skills=("first_aid",),
            transport="car",
            npu="north",
        ),
        OfficerStatus(event_id="s1", ts=ts[1], officer_id="o1", status="available"),
        OfficerLocation(event_id="l1", ts=ts[2], officer_id="o1", lon=N01[0], lat=N01[1]),
        Incident(
            event_id="i1",
            ts=ts[3],
            incident_id="I1",
            lon=N01[0] + 0.004,
            lat=N01[1],
            category="burglary",
            summary="Burglary in progress",
            thrive={
                "threat": "high",
                "harm": "medium",
                "risk": "high",
                "vulnerability": "low",
                "investigation": True,
                "engagement": False,
                "prevention": False,
            },
            ongoing=True,
            offender_present=True,
            persistent=False,
        ),
        Recommendation(
            event_id="r1",
            ts=ts[4],
            recommendation_id="R1",
            incident_id="I1",
            grade=1,
            response="emergency",
            reasons=("threat is high",),
            candidates=(
                {
                    "officer_id": "o1",
                    "callsign": "NR11",
                    "role": "response",
                    "eta_s": 95.0,
                    "distance_m": 420.0,
                    "score": 0.93,
                    "reasons": ("nearest available",),
                },
            ),
            recommended=("o1",),
            policy={"name": "thrive", "version": "1"},
        ),
    ]


class Page:
    """A minimal websocket client that keeps the picture the way the page does."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.officers: dict[str, dict[str, Any]] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.recommendations: dict[str, dict[str, Any]] = {}

    async def recv_until(self, condition: Callable[[Page], Any], limit_s: float, what: str) -> Any:
        deadline = time.monotonic() + limit_s
        while not (result := condition(self)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}")
            try:
                async with asyncio.timeout(left):
                    raw = await self.ws.recv()
            except TimeoutError:
                continue
            for msg in messages(raw):
                self._fold(msg)
        return result

    def _fold(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        kind = msg["type"]
        if kind == "snapshot":
            self.officers = {o["officer_id"]: o for o in msg["officers"]}
            self.incidents = {i["incident_id"]: i for i in msg["incidents"]}
            self.recommendations = {r["incident_id"]: r for r in msg["recommendations"]}
        elif kind == "officer":
            self.officers[msg["officer"]["officer_id"]] = msg["officer"]
        elif kind == "incident":
            self.incidents[msg["incident"]["incident_id"]] = msg["incident"]
        elif kind == "recommendation":
            self.recommendations[msg["recommendation"]["incident_id"]] = msg["recommendation"]

    def reply(self, request_id: str) -> dict[str, Any] | None:
        return next(
            (
                m
                for m in self.messages
                if m["type"] in {"ack", "error"} and m.get("request_id") == request_id
            ),
            None,
        )


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "users.json"
    sdo, _ = add_user(path, "sgt.jones", "sdo")
    viewer, _ = add_user(path, "pc.watch", "viewer")
    return {"path": path, "sdo": sdo, "viewer": viewer}


@pytest.fixture
async def console(
    broker: EmbeddedBroker, topic_prefix: str, tokens: dict[str, Any]
) -> AsyncIterator[Console]:
    settings = Settings(broker=broker.url, topic_prefix=topic_prefix)
    async with Console(
        settings, Users(tokens["path"]), bind="127.0.0.1:0", auth_timeout=AUTH_TIMEOUT_S
    ) as c:
        await wait_until(
            lambda: c.health.caught_up, CONSOLE_READY_TIMEOUT_S, "the console to read its topics"
        )
        yield c


async def login(console: Console, token: str) -> Page:
    ws = await connect(console.ws_url, origin=console.origins[0], compression=None)  # type: ignore[arg-type]
    await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
    page = Page(ws)
    await page.recv_until(
        lambda p: any(m["type"] == "snapshot" for m in p.messages), FEED_TIMEOUT_S, "snapshot"
    )
    return page


async def test_unauthenticated_socket_gets_nothing_and_is_closed(
    console: Console, broker: EmbeddedBroker
) -> None:
    """A socket that never authenticates receives no data at all and is closed with 1008."""
    await produce(broker.bootstrap, console.topics, pilot_events())
    await wait_until(
        lambda: "I1" in console.view.incidents, FEED_TIMEOUT_S, "the console to see I1"
    )
    received: list[Any] = []
    async with connect(console.ws_url, origin=console.origins[0]) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(AUTH_TIMEOUT_S + AUTH_MARGIN_S):
                while True:
                    received.append(await ws.recv())
        assert ws.close_code == 1008
        assert ws.close_reason == "authentication required"
    assert received == []


async def test_bad_token_is_closed_without_data(console: Console) -> None:
    async with connect(console.ws_url) as ws:
        await ws.send('{"type": "auth", "token": "guess"}')
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(AUTH_MARGIN_S):
                msg = await ws.recv()
                pytest.fail(f"received {msg!r}")
        assert (ws.close_code, ws.close_reason) == (1008, "authentication failed")


async def test_wrong_origin_is_refused(console: Console) -> None:
    """A page from another site cannot open the socket (403 at the handshake)."""
    with pytest.raises(InvalidStatus) as err:
        async with connect(console.ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert err.value.response.status_code == 403


async def test_page_and_assets_are_served_with_a_strict_policy(console: Console) -> None:
    """The page is served by the console itself, with a CSP that forbids other origins."""
    reader, writer = await asyncio.open_connection(console.host, console.port)
    writer.write(b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(AUTH_MARGIN_S):
        raw = await reader.read()
    writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200")
    assert "text/javascript" in head
    assert "default-src 'none'" in head


async def test_sdo_accept_publishes_a_deployment_and_viewer_is_refused(
    console: Console, broker: EmbeddedBroker, tokens: dict[str, Any]
) -> None:
    """An SDO's accept becomes a deployment on Kafka (user, recommendation id) and comes back
    to every page; a viewer's accept is refused by the server and publishes nothing."""
    sdo = await login(console, tokens["sdo"])
    viewer = await login(console, tokens["viewer"])
    hello = sdo.messages[0]
    assert (hello["type"], hello["user"], hello["role"], hello["can_decide"]) == (
        "hello",
        "sgt.jones",
        "sdo",
        True,
    )
    assert viewer.messages[0]["role"] == "viewer"
    assert sdo.messages[1]["type"] == "areas"

    await produce(broker.bootstrap, console.topics, pilot_events())
    for page in (sdo, viewer):
        await page.recv_until(
            # (the officer may come after the recommendation: the map's deltas wait for
            # the desk's, sdo.console.hub)
            lambda p: (
                p.recommendations.get("I1", {}).get("recommendation_id") == "R1"
                and "o1" in p.officers
            ),
            FEED_TIMEOUT_S,
            "the recommendation",
        )
    assert sdo.officers["o1"]["status"] == "available"

    action = {"type": "accept", "incident_id": "I1", "recommendation_id": "R1"}
    await viewer.ws.send(orjson.dumps({**action, "request_id": "v1"}).decode())
    refused = await viewer.recv_until(lambda p: p.reply("v1"), FEED_TIMEOUT_S, "the viewer's reply")
    assert refused["type"] == "error" and refused["code"] == "forbidden"

    await sdo.ws.send(orjson.dumps({**action, "request_id": "a1"}).decode())
    ack = await sdo.recv_until(lambda p: p.reply("a1"), KAFKA_TIMEOUT_S, "the ack")
    assert ack["type"] == "ack", ack

    consumer = AIOKafkaConsumer(
        console.topics.deployment, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        deployments = await read_deployments(consumer, KAFKA_TIMEOUT_S)
    finally:
        await consumer.stop()
    assert len(deployments) == 1
    dep = deployments[0]
    assert dep["type"] == "deployment"
    assert (
        dep["incident_id"],
        dep["decision"],
        dep["officer_ids"],
        dep["by"],
        dep["recommendation_id"],
    ) == (
        "I1",
        "accepted",
        ["o1"],
        "sgt.jones",
        "R1",
    )
    assert dep["event_id"] == ack["event_id"]

    # Every console sees the decision come back through Kafka.
    for page in (sdo, viewer):
        await page.recv_until(
            lambda p: p.incidents["I1"]["state"] == "resourced", FEED_TIMEOUT_S, "resourced"
        )
        await page.recv_until(
            lambda p: p.officers["o1"]["status"] == "en_route", FEED_TIMEOUT_S, "en route"
        )

    # A second accept of the same incident is refused with a clear reason.
    await sdo.ws.send(orjson.dumps({**action, "request_id": "a2"}).decode())
    again = await sdo.recv_until(lambda p: p.reply("a2"), FEED_TIMEOUT_S, "the second reply")
    assert again["type"] == "error" and "already accepted" in again["error"]
    await sdo.ws.close()
    await viewer.ws.close()


async def test_decision_on_unknown_incident_is_refused(
    console: Console, tokens: dict[str, Any]
) -> None:
    sdo = await login(console, tokens["sdo"])
    await sdo.ws.send(
        orjson.dumps(
            {"type": "decline", "incident_id": "nope", "reason": "x", "request_id": "d1"}
        ).decode()
    )
    reply = await sdo.recv_until(lambda p: p.reply("d1"), FEED_TIMEOUT_S, "the reply")
    assert reply["type"] == "error" and "not known" in reply["error"]
    await sdo.ws.close()


async def test_unreachable_broker_shows_as_down(tmp_path: Path, tokens: dict[str, Any]) -> None:
    """With no broker, the console still serves, and its status says the feed is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = Settings(broker=f"kafka://127.0.0.1:{dead}", topic_prefix="x.")
    async with Console(settings, Users(tokens["path"]), bind="127.0.0.1:0") as c:
        page = await login(c, tokens["sdo"])
        status = await page.recv_until(
            lambda p: next(
                (m for m in p.messages if m["type"] == "status" and m["feed"] == "down"), None
            ),
            CONSOLE_READY_TIMEOUT_S,
            "a down status",
        )
        assert "cannot reach Kafka" in status["detail"]
        await page.ws.close()
