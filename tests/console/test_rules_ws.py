"""The server's rules for every console action, over a raw websocket, with the real broker:
nothing the page claims is trusted, and nobody acts beyond their rights."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sdo.broker import EmbeddedBroker
from sdo.cli import main
from sdo.config import Settings
from sdo.console.auth import Users, add_user, remove_user
from sdo.console.server import Console
from sdo.events import Alert
from tests.kafka_io import produce
from tests.waits import wait_until
from tests.ws import messages

pytestmark = pytest.mark.integration

#: Bounds on every wait (the work itself takes well under a second).
READY_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 15.0
KAFKA_TIMEOUT_S = 20.0
#: How long a test waits for a session to be closed (the console checks twice a second).
CLOSE_TIMEOUT_S = 10.0
SDO, SDO2, VIEWER = "sgt.jones", "sgt.khan", "pc.watch"


class Raw:
    """A raw websocket client of the console: sends frames, collects what comes back."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.closed: tuple[int | None, str | None] | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.extend(messages(raw))
        except ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(msg).decode())

    async def reply(self, request_id: str) -> dict[str, Any]:
        """The reply to ``request_id`` (the first not yet taken)."""
        found: list[dict[str, Any]] = []

        def got() -> bool:
            found[:] = [m for m in self.messages if m.get("request_id") == request_id]
            return bool(found)

        await wait_until(got, REPLY_TIMEOUT_S, f"a reply to {request_id}")
        self.messages.remove(found[0])
        return found[0]

    async def ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        await self.send(msg)
        return await self.reply(msg["request_id"])

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


@dataclass
class Desk:
    console: Console
    bootstrap: str
    users: Path
    tokens: dict[str, str]
    ev: Any
    clients: list[Raw] = field(default_factory=list)

    async def join(self, user: str = SDO, **connect_kw: Any) -> Raw:
        ws = await connect(self.console.ws_url, open_timeout=REPLY_TIMEOUT_S, **connect_kw)
        raw = Raw(ws)
        self.clients.append(raw)
        await raw.send({"type": "auth", "token": self.tokens[user]})
        await wait_until(
            lambda: raw.of_type("snapshot") or raw.closed, REPLY_TIMEOUT_S, "a snapshot"
        )
        if raw.closed:
            raise ConnectionRefusedError(f"closed {raw.closed}")
        return raw

    async def produce(self, events: list[Any]) -> None:
        await produce(self.bootstrap, self.console.topics, events)

    async def consume(self, topic: str, count: int) -> list[dict[str, Any]]:
        """The first ``count`` events on ``topic`` (from its start); and, after them, any
        that arrive within a short settling read (a duplicate would be among them)."""
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(KAFKA_TIMEOUT_S):
                while len(out) < count:
                    batch = await consumer.getmany(timeout_ms=200)
                    out += [orjson.loads(r.value) for rs in batch.values() for r in rs]
            # read on for a moment (bounded): what else is there
            batch = await consumer.getmany(timeout_ms=1000)
            out += [orjson.loads(r.value) for rs in batch.values() for r in rs]
        finally:
            await consumer.stop()
        return out


@contextlib.asynccontextmanager
async def console_on(
    broker: EmbeddedBroker, prefix: str, users: Path, **kw: Any
) -> AsyncIterator[Console]:
    settings = Settings(broker=broker.url, topic_prefix=prefix)
    async with Console(settings, Users(users), bind="127.0.0.1:0", **kw) as console:
        await wait_until(lambda: console.health.caught_up, READY_TIMEOUT_S, "the console caught up")
        yield console


@pytest.fixture
async def desk(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path, ev: Any
) -> AsyncIterator[Desk]:
    users = tmp_path / "users.json"
    tokens = {name: add_user(users, name, role)[0] for name, role in
              ((SDO, "sdo"), (SDO2, "sdo"), (VIEWER, "viewer"))}  # fmt: skip
    async with console_on(broker, topic_prefix, users, action_burst=6, action_rate=0.001) as c:
        ev.t0 = datetime.now(UTC) - timedelta(seconds=60)
        d = Desk(c, broker.bootstrap, users, tokens, ev)
        try:
            yield d
        finally:
            for client in d.clients:
                with contextlib.suppress(Exception):
                    await client.close()


async def picture(desk: Desk) -> None:
    """Officers in every state an override meets, and a call that needs two with a taser."""
    ev = desk.ev
    events = [
        ev.profile("o1", callsign="NR11", skills=["taser"]), ev.status("o1", "available", at=1),
        ev.location("o1", at=2),
        ev.profile("o2", callsign="NR12"), ev.status("o2", "off_duty", at=1),
        ev.profile("o3", callsign="NR13"), ev.status("o3", "available", at=1),
        ev.location("o3", at=2),
        ev.profile("o4", callsign="NR14"), ev.status("o4", "available", at=1),
        ev.incident("I9", at=2),
        ev.status("o4", "en_route", at=3, incident_id="I9"),
        ev.incident("I1", at=3, required_skills=["taser"], officers_required=2),
        ev.recommendation("I1", ["o1", "o3"], at=4, rid="R1"),
    ]  # fmt: skip
    await desk.produce(events)
    view = desk.console.view
    await wait_until(
        lambda: "I1" in view.recommendations and view.officers.get("o4") is not None
        and view.officers["o4"].incident_id == "I9",
        KAFKA_TIMEOUT_S, "the picture",
    )  # fmt: skip


def override(request_id: str, officers: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "type": "override", "request_id": request_id, "incident_id": "I1",
        "recommendation_id": "R1", "officer_ids": officers, "reason": "knows the area", **kw,
    }  # fmt: skip


async def test_the_same_request_id_is_one_deployment_published_once(desk: Desk) -> None:
    """The same override frame sent three times on one socket, and twice more at once on
    two sockets of the same user, gets the same ack (the same event id) every time, and
    Kafka holds one deployment. The id is the user's: another SDO's request with the same
    id is another deployment; the same id for another request is refused (conflict)."""
    await picture(desk)
    a, b = await desk.join(), await desk.join()
    frame = override("same-1", ["o3"])
    first = await a.ask(frame)
    assert first["type"] == "ack" and first["already_recorded"] is False
    replies = [await a.ask(frame), await a.ask(frame)]
    await asyncio.gather(a.send(frame), b.send(frame))
    replies += [await a.reply("same-1"), await b.reply("same-1")]
    assert {r["type"] for r in replies} == {"ack"}
    assert {r["event_id"] for r in replies} == {first["event_id"]}
    assert all(r.get("repeat") for r in replies)
    conflict = await a.ask(override("same-1", ["o1"]))
    assert (conflict["type"], conflict["code"]) == ("error", "conflict")
    other = await (await desk.join(SDO2)).ask(frame)
    assert other["type"] == "ack" and other["event_id"] != first["event_id"]
    published = await desk.consume(desk.console.topics.deployment, 2)
    assert sorted(d["by"] for d in published) == [SDO, SDO2]
    assert [d["event_id"] for d in published if d["by"] == SDO] == [first["event_id"]]


async def test_an_override_to_an_officer_off_duty_or_busy_needs_send_anyway(desk: Desk) -> None:
    """Overriding to an officer off duty, or en route to another call, is refused with the
    problems listed (``confirm``) unless the SDO sends anyway; then it is recorded with
    those as shortfalls beside what the officers lack (the call's skill, its count). An
    override to a free officer records only what it lacks; an unknown officer is refused."""
    await picture(desk)
    sdo = await desk.join()
    refused = await sdo.ask(override("r1", ["o2", "o4"]))
    assert (refused["type"], refused["code"]) == ("error", "confirm")
    assert refused["problems"] == ["NR12 is off duty", "NR14 is en route (I9)"]
    unknown = await sdo.ask(override("r2", ["ghost"]))
    assert unknown["code"] == "rejected" and "unknown officer" in unknown["error"]
    # a refused request may be sent again, confirmed, under the same id
    sent = await sdo.ask(override("r1", ["o2", "o4"], send_anyway=True))
    assert sent["type"] == "ack"
    assert sent["shortfalls"] == [
        "nobody sent holds taser",
        "sent anyway: NR12 is off duty",
        "sent anyway: NR14 is en route (I9)",
    ]
    # (one decision per incident at a time: the next once this one is back from Kafka)
    await wait_until(
        lambda: desk.console.view.incidents["I1"].decision is not None,
        KAFKA_TIMEOUT_S,
        "the deployment back from Kafka",
    )
    free = await sdo.ask(override("r3", ["o3"]))
    assert free["shortfalls"] == ["nobody sent holds taser", "1 officer(s) sent, 2 needed"]
    published = await desk.consume(desk.console.topics.deployment, 2)
    assert [(d["officer_ids"], d["shortfalls"]) for d in published] == [
        (["o2", "o4"], sent["shortfalls"]),
        (["o3"], free["shortfalls"]),
    ]


async def test_an_override_on_a_form_opened_before_another_decision_must_confirm_it(
    desk: Desk,
) -> None:
    """One SDO opens the override form on an undecided call (``seen_decision`` null);
    another accepts it meanwhile. The first's override is refused (``confirm``) naming the
    decision it would replace, with that decision's event id; sent again with that id as
    ``seen_decision`` it is recorded (the page does that once the SDO confirms)."""
    await picture(desk)
    jones, khan = await desk.join(), await desk.join(SDO2)
    accepted = await khan.ask(
        {"type": "accept", "request_id": "k1", "incident_id": "I1", "recommendation_id": "R1"}
    )
    assert accepted["type"] == "ack", accepted
    view = desk.console.view
    await wait_until(
        lambda: view.incidents["I1"].decision is not None,
        KAFKA_TIMEOUT_S,
        "the accept back from Kafka",
    )
    stale = await jones.ask(override("j1", ["o3"], seen_decision=None))
    assert (stale["type"], stale["code"]) == ("error", "confirm"), stale
    decided = view.incidents["I1"].decision_event
    assert stale["decision_event"] == decided
    assert stale["problems"] == [
        "accepted by sgt.khan since this form was opened: sending replaces it"
    ]
    confirmed = await jones.ask(override("j1", ["o3"], seen_decision=decided))
    assert confirmed["type"] == "ack", confirmed
    published = await desk.consume(desk.console.topics.deployment, 2)
    assert [(d["decision"], d["by"]) for d in published] == [
        ("accepted", SDO2),
        ("overridden", SDO),
    ]


async def test_the_action_rate_is_per_user_not_per_connection(desk: Desk) -> None:
    """Five sockets of one SDO share one budget (a burst of 6 here, hardly refilled): six
    notes are recorded, the rest refused ``rate_limited``; another SDO has their own."""
    await picture(desk)
    sockets = [await desk.join() for _ in range(5)]
    replies = []
    for n in range(10):
        frame = {"type": "note", "request_id": f"n{n}", "incident_id": "I1", "text": f"n{n}"}
        replies.append(await sockets[n % 5].ask(frame))
    assert [r["type"] for r in replies].count("ack") == 6
    assert {r.get("code") for r in replies if r["type"] == "error"} == {"rate_limited"}
    other = await (await desk.join(SDO2)).ask(
        {"type": "note", "request_id": "x", "incident_id": "I1", "text": "mine"}
    )
    assert other["type"] == "ack"


async def test_a_removed_or_changed_user_loses_their_rights(desk: Desk) -> None:
    """Removing a user, or replacing their token (a demotion to viewer), closes their open
    sessions (1008, saying why) at the console's next check; a user left alone keeps
    theirs, and the old token opens nothing."""
    await picture(desk)
    jones, khan, viewer = await desk.join(), await desk.join(SDO2), await desk.join(VIEWER)
    add_user(desk.users, SDO2, "viewer")  # a new token and role for sgt.khan
    remove_user(desk.users, VIEWER)
    await wait_until(lambda: khan.closed and viewer.closed, CLOSE_TIMEOUT_S, "sessions closed")
    for client in (khan, viewer):
        assert client.closed == (1008, "access changed or removed: log in again")
    kept = await jones.ask({"type": "note", "request_id": "j1", "incident_id": "I1", "text": "y"})
    assert kept["type"] == "ack"
    assert jones.closed is None
    with pytest.raises(ConnectionRefusedError, match="authentication failed"):
        await desk.join(VIEWER)  # the old token opens nothing


async def test_a_changed_user_is_refused_before_their_session_is_closed(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path, ev: Any
) -> None:
    """Between two checks of the sessions (here an hour apart), the action of a user whose
    token was replaced is refused at once (``forbidden``): every action checks the file."""
    users = tmp_path / "users.json"
    token, _ = add_user(users, SDO, "sdo")
    ev.t0 = datetime.now(UTC) - timedelta(seconds=60)
    async with console_on(broker, topic_prefix, users, users_check_every=3600) as console:
        desk = Desk(console, broker.bootstrap, users, {SDO: token}, ev)
        await picture(desk)
        sdo = await desk.join()
        note = {"type": "note", "request_id": "k0", "incident_id": "I1", "text": "x"}
        assert (await sdo.ask(note))["type"] == "ack"
        add_user(users, SDO, "viewer")
        refused = await sdo.ask({**note, "request_id": "k1"})
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        assert refused["error"] == "your access was changed or removed"
        await sdo.close()


async def test_connections_waiting_to_log_in_are_capped(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """At most 3 connections from one address and 5 in all may wait to authenticate; the
    next is refused at the handshake (HTTP 503); one that logs in frees its place."""
    users = tmp_path / "users.json"
    token, _ = add_user(users, SDO, "sdo")
    async with console_on(
        broker, topic_prefix, users, max_unauthenticated=5, max_unauthenticated_per_address=3
    ) as console:
        url, held = console.ws_url, []

        async def hold(source: str) -> ClientConnection:
            ws = await connect(url, local_addr=(source, 0), open_timeout=REPLY_TIMEOUT_S)
            held.append(ws)
            return ws

        try:
            first = await hold("127.0.0.1")
            for _ in range(2):
                await hold("127.0.0.1")
            with pytest.raises(InvalidStatus) as per_address:
                await hold("127.0.0.1")
            assert per_address.value.response.status_code == 503
            await hold("127.0.0.2")
            await hold("127.0.0.2")
            with pytest.raises(InvalidStatus) as overall:
                await hold("127.0.0.3")
            assert overall.value.response.status_code == 503
            await first.send(orjson.dumps({"type": "auth", "token": token}).decode())
            assert orjson.loads(await first.recv())["type"] == "hello"
            await hold("127.0.0.3")  # a place is free again
        finally:
            for ws in held:
                await ws.close()


def test_console_refuses_plain_http_beyond_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sdo console --bind 0.0.0.0:PORT`` without TLS is one line and exit 2 (tokens would
    cross the network in clear), unless ``--insecure-http`` is given."""
    users = tmp_path / "users.json"
    add_user(users, SDO, "sdo")
    code = main(["console", "--users", str(users), "--bind", "0.0.0.0:0"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "refusing to serve the console on 0.0.0.0 over plain HTTP" in err
    assert "--insecure-http" in err
    settings = Settings(broker="kafka://127.0.0.1:1")
    Console(settings, Users(users), bind="0.0.0.0:0", insecure_http=True)  # accepted
    Console(settings, Users(users), bind="[::1]:0")  # loopback: accepted


async def test_a_request_is_resolved_against_kafka_after_a_restart(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path, ev: Any
) -> None:
    """A decision recorded by a console that then stops: a console started afresh on the
    same topics answers ``resolve`` for it (``recorded``, with what), and for a request it
    never got (``not_recorded``); the same request sent again is acknowledged as already
    recorded and not published again."""
    users = tmp_path / "users.json"
    token, _ = add_user(users, SDO, "sdo")
    ev.t0 = datetime.now(UTC) - timedelta(seconds=60)
    async with console_on(broker, topic_prefix, users) as first:
        desk = Desk(first, broker.bootstrap, users, {SDO: token}, ev)
        await picture(desk)
        sdo = await desk.join()
        sent = await sdo.ask(override("before-restart", ["o3"]))
        assert sent["type"] == "ack"
        await sdo.close()
    async with console_on(broker, topic_prefix, users) as second:
        desk = Desk(second, broker.bootstrap, users, {SDO: token}, ev)
        sdo = await desk.join()
        resolved = await sdo.ask(
            {"type": "resolve", "request_id": "q1", "request_ids": ["before-restart", "lost"]}
        )
        assert [(r["request_id"], r["outcome"]) for r in resolved["results"]] == [
            ("before-restart", "recorded"),
            ("lost", "not_recorded"),
        ]
        assert resolved["results"][0]["event_id"] == sent["event_id"]
        assert resolved["results"][0]["officer_ids"] == ["o3"]
        again = await sdo.ask(override("before-restart", ["o3"]))
        assert again["type"] == "ack" and again["already_recorded"] is True
        assert again["event_id"] == sent["event_id"]
        published = await desk.consume(second.topics.deployment, 1)
        assert [d["event_id"] for d in published] == [sent["event_id"]]
        await sdo.close()


async def test_notes_acknowledgements_and_status_changes_are_events_with_who(
    desk: Desk,
) -> None:
    """A note, an alert's acknowledgement and an officer's status change are published
    (with who, and Kafka record time = ``ts``), come back to every page (the note and
    the status change in the call's timeline, the acknowledgement as ``alert_ack``), and
    are refused to a viewer; an acknowledged alert cannot be acknowledged twice; a status
    change that does not fit the officer's status is refused."""
    await picture(desk)
    ev = desk.ev
    alert = Alert(
        event_id="a-I1", ts=ev.t0 + timedelta(seconds=5), kind="unresourced",
        severity="critical", subject="I1", message="grade 1 incident I1 unresourced",
    )  # fmt: skip
    await desk.produce([alert])
    await wait_until(
        lambda: desk.console.view.active_alert("unresourced", "I1"), KAFKA_TIMEOUT_S, "alert"
    )
    sdo, viewer = await desk.join(), await desk.join(VIEWER)
    denied = await viewer.ask({"type": "note", "request_id": "v", "incident_id": "I1", "text": "x"})
    assert denied["code"] == "forbidden"
    note = await sdo.ask(
        {"type": "note", "request_id": "n1", "incident_id": "I1", "text": "caller rang again"}
    )
    assert note["type"] == "ack"
    ack = {"type": "ack_alert", "request_id": "a1", "kind": "unresourced", "subject": "I1"}
    assert (await sdo.ask(ack))["type"] == "ack"
    await wait_until(
        lambda: ("unresourced", "I1") in desk.console.view.acks,
        KAFKA_TIMEOUT_S,
        "the acknowledgement back from Kafka",
    )
    twice = await sdo.ask({**ack, "request_id": "a2"})
    assert twice["code"] == "rejected" and "already acknowledged by sgt.jones" in twice["error"]
    at_scene = {"type": "set_status", "request_id": "s1", "officer_id": "o4", "change": "at_scene"}
    assert (await sdo.ask(at_scene))["type"] == "ack"
    wrong = await sdo.ask({**at_scene, "request_id": "s2", "officer_id": "o1"})
    assert wrong["code"] == "rejected" and wrong["error"] == (
        "NR11 is available: at scene does not apply"
    )
    # every page hears of them
    for page in (sdo, viewer):
        await wait_until(lambda p=page: p.of_type("alert_ack"), REPLY_TIMEOUT_S, "alert_ack")
        assert page.of_type("alert_ack")[0]["ack"]["by"] == SDO
        await wait_until(
            lambda p=page: any(
                m["incident_id"] == "I9"
                and "NR14 at scene — set by sgt.jones" in m["entry"]["text"]
                for m in p.of_type("timeline")
            ),
            REPLY_TIMEOUT_S,
            "the status change in I9's timeline",
        )
    story = await sdo.ask({"type": "timeline", "request_id": "t1", "incident_id": "I1"})
    texts = [e["text"] for e in story["entries"]]
    assert texts[0].startswith("Call received: burglary — Burglary in progress; needs taser")
    assert any(t.startswith("Graded 1 (emergency)") for t in texts)
    assert "caller rang again" in texts
    assert "sgt.jones acknowledged the unresourced alert" in texts
    notes = await desk.consume(desk.console.topics.note, 1)
    assert notes[0]["by"] == SDO and notes[0]["text"] == "caller rang again"
    statuses = await desk.consume(desk.console.topics.status, 1)
    mine = [s for s in statuses if s.get("by")]
    assert [(s["officer_id"], s["status"], s["incident_id"]) for s in mine] == [
        ("o4", "at_scene", "I9")
    ]


async def test_each_console_shows_who_works_what(desk: Desk) -> None:
    """``work`` sets the part of the area a session works (an NPU or a cluster, or all);
    every page gets ``presence`` naming each session's user, role and scope; an unknown
    area is refused."""
    jones, khan = await desk.join(), await desk.join(SDO2)
    assert (await jones.ask({"type": "work", "request_id": "w1", "scope": "npu:north"}))[
        "scope"
    ] == "npu:north"
    bad = await khan.ask({"type": "work", "request_id": "w2", "scope": "npu:atlantis"})
    assert bad["code"] == "invalid"

    def shown() -> bool:
        latest = khan.of_type("presence")
        return bool(latest) and {
            (s["user"], s["role"], s["scope"]) for s in latest[-1]["sessions"]
        } == {(SDO, "sdo", "npu:north"), (SDO2, "sdo", None)}

    await wait_until(shown, REPLY_TIMEOUT_S, "presence with sgt.jones on north")
