"""The hub: bounded per-client queues, coalescing, resync, and slow-client disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from sdo.console.hub import CLOSE_TOO_SLOW, MAP_BATCH, Hub, delta_key
from tests.ws import messages

#: Bound on every wait in this module (the work itself takes milliseconds).
STEP_TIMEOUT_S = 5.0


class FakeSocket:
    """A websocket stand-in that records messages; ``gate`` blocks sends while cleared."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []  # (the messages of a batch, each)
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.arrived = asyncio.Event()

    async def send(self, message: bytes, *, text: bool | None = None) -> None:
        assert text is True
        await self.gate.wait()
        self.frames.append(orjson.loads(message))
        self.sent.extend(messages(message))
        self.arrived.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


async def _until(condition: Any, what: str) -> None:
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while not condition():  # noqa: ASYNC110  (polling a plain condition, bounded above)
            await asyncio.sleep(0.001)
    assert condition(), what


def _pos(oid: str, lon: float) -> dict[str, Any]:
    return {"type": "officer", "officer": {"officer_id": oid, "lon": lon}}


def test_delta_keys_name_what_a_message_is_the_state_of() -> None:
    assert delta_key(_pos("o1", 1.0)) == "officer:o1"
    assert (
        delta_key({"type": "availability", "key": "npu:north", "counts": {}})
        == "availability:npu:north"
    )
    assert delta_key({"type": "incident", "incident": {"incident_id": "I1"}}) == "incident:I1"
    assert (
        delta_key({"type": "alert", "alert": {"kind": "cover_gap", "subject": "c1"}})
        == "alert:cover_gap:c1"
    )
    assert delta_key({"type": "deployment", "deployment": {}}) is None
    assert delta_key({"type": "status"}) == "status"


async def test_initial_messages_come_first_then_broadcasts() -> None:
    """A client gets its initial messages (hello, snapshot) before any delta."""
    hub = Hub()
    sock = FakeSocket()
    client = hub.register(
        sock, name="a", initial=[{"type": "hello"}, {"type": "snapshot"}], resync=list
    )
    hub.broadcast([_pos("o1", 1.0)])
    task = asyncio.create_task(client.run())
    await _until(lambda: len(sock.sent) == 3, "three messages")
    assert [m["type"] for m in sock.sent] == ["hello", "snapshot", "officer"]
    task.cancel()


async def test_waiting_officer_positions_are_coalesced() -> None:
    """While a client is behind, only each officer's latest position waits for it."""
    hub = Hub(queue_size=100)
    sock = FakeSocket()
    sock.gate.clear()
    client = hub.register(sock, name="slow", initial=[], resync=list)
    for k in range(50):
        hub.broadcast([_pos("o1", float(k)), _pos("o2", -float(k))])
    hub.broadcast([{"type": "deployment", "deployment": {"incident_id": "I1"}}])
    assert len(client) == 3
    task = asyncio.create_task(client.run())
    sock.gate.set()
    await _until(lambda: len(sock.sent) == 3, "three messages")
    assert sock.sent[0]["type"] == "deployment"  # (the desk's queue goes first)
    assert [m.get("officer", {}).get("lon") for m in sock.sent[1:]] == [49.0, -49.0]
    assert client.coalesced == 98
    task.cancel()


async def test_calls_and_recommendations_never_wait_behind_the_map() -> None:
    """A client behind by more officers' positions than its desk's queue holds: nothing
    is dropped and no snapshot is needed (one state per officer waits), and what the SDO
    acts on (calls, recommendations, alerts, replies) is sent before any of them, in the
    order it came; then every officer's latest position, and the availability counts."""
    hub = Hub(queue_size=10)
    sock = FakeSocket()
    sock.gate.clear()
    client = hub.register(sock, name="behind", initial=[{"type": "hello"}], resync=list)
    for k in range(3):
        hub.broadcast([_pos(f"o{i}", float(k)) for i in range(500)])
        hub.broadcast([{"type": "availability", "key": "npu:north", "counts": {"total": k}}])
    hub.broadcast([{"type": "incident", "incident": {"incident_id": "I1"}}])
    hub.broadcast([{"type": "recommendation", "recommendation": {"incident_id": "I1"}}])
    hub.broadcast([_pos("o7", 99.0)])
    hub.broadcast([{"type": "alert", "alert": {"kind": "cover_gap", "subject": "c1"}}])
    assert not client.needs_resync and len(client) == 1 + 501 + 3
    task = asyncio.create_task(client.run())
    sock.gate.set()
    await _until(lambda: len(sock.sent) == 505, "every message")
    assert [m["type"] for m in sock.sent[:4]] == ["hello", "incident", "recommendation", "alert"]
    positions = {m["officer"]["officer_id"]: m["officer"]["lon"] for m in sock.sent[4:504]}
    assert positions == {f"o{i}": (99.0 if i == 7 else 2.0) for i in range(500)}
    assert sock.sent[504]["counts"] == {"total": 2}
    assert client.resyncs == 0
    # the map's 501 deltas came in batches of MAP_BATCH, the desk's 4 messages one by one
    assert [len(f.get("messages", [f])) for f in sock.frames] == [1] * 4 + [MAP_BATCH] * 2 + [
        501 - 2 * MAP_BATCH
    ]
    assert client.sent == 505
    task.cancel()


async def test_a_map_queue_longer_than_its_bound_resyncs() -> None:
    """The map's queue is bounded too (``map_size``): past it, a snapshot."""
    hub = Hub(queue_size=10, map_size=100)
    sock = FakeSocket()
    sock.gate.clear()
    client = hub.register(
        sock, name="far behind", initial=[], resync=lambda: [{"type": "snapshot"}]
    )
    hub.broadcast([_pos(f"o{i}", 1.0) for i in range(101)])
    assert client.needs_resync and len(client) == 0
    task = asyncio.create_task(client.run())
    sock.gate.set()
    await _until(lambda: sock.sent, "the snapshot")
    assert sock.sent == [{"type": "snapshot"}]
    task.cancel()


async def test_overflow_drops_deltas_and_resyncs_with_a_snapshot() -> None:
    """A full queue is replaced by a fresh snapshot: the picture stays right, memory bounded."""
    hub = Hub(queue_size=5)
    sock = FakeSocket()
    sock.gate.clear()
    client = hub.register(
        sock, name="slow", initial=[], resync=lambda: [{"type": "snapshot", "n": 1}]
    )
    for k in range(20):
        hub.broadcast([{"type": "deployment", "deployment": {"n": k}}])
        assert len(client) <= 5
    assert client.needs_resync
    task = asyncio.create_task(client.run())
    sock.gate.set()
    await _until(lambda: sock.sent, "the resync snapshot")
    assert sock.sent[0] == {"type": "snapshot", "n": 1}
    hub.broadcast([{"type": "deployment", "deployment": {"n": 99}}])
    await _until(lambda: len(sock.sent) == 2, "the next delta")
    assert client.overflow_since is None
    task.cancel()


async def test_client_full_for_too_long_is_disconnected_and_others_are_not_slowed() -> None:
    """A stuck client is closed with 1013; a healthy one keeps receiving everything."""
    now = [0.0]
    hub = Hub(queue_size=3, slow_limit=10.0, clock=lambda: now[0])
    stuck, healthy = FakeSocket(), FakeSocket()
    stuck.gate.clear()
    slow = hub.register(stuck, name="stuck", initial=[], resync=list)
    fast = hub.register(healthy, name="ok", initial=[], resync=list)
    tasks = [asyncio.create_task(slow.run()), asyncio.create_task(fast.run())]
    await _until(lambda: True, "start")
    for k in range(10):
        hub.broadcast([{"type": "deployment", "deployment": {"n": k}}])
        await _until(lambda k=k: len(healthy.sent) == k + 1, "the healthy client keeps up")
    assert slow.overflow_since == 0.0
    now[0] = 11.0
    hub.broadcast([{"type": "deployment", "deployment": {"n": 10}}])
    assert slow not in hub.clients and fast in hub.clients
    await _until(lambda: stuck.closed is not None, "the slow client closed")
    assert stuck.closed is not None and stuck.closed[0] == CLOSE_TOO_SLOW
    assert "too slow" in stuck.closed[1]
    await _until(lambda: len(healthy.sent) == 11, "all messages for the healthy client")
    assert hub.disconnected_slow == 1
    for t in tasks:
        t.cancel()


async def test_send_that_never_completes_closes_the_client() -> None:
    hub = Hub(send_timeout=0.05)
    sock = FakeSocket()
    sock.gate.clear()
    client = hub.register(sock, name="stuck", initial=[{"type": "hello"}], resync=list)
    await asyncio.wait_for(client.run(), STEP_TIMEOUT_S)
    assert sock.closed is not None and sock.closed[0] == CLOSE_TOO_SLOW
