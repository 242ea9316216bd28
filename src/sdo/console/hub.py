"""Fan-out of console messages to websocket clients, without ever blocking the feed.

Theory of operation
-------------------
The Kafka feed calls :meth:`Hub.broadcast` (synchronous, O(clients)), which encodes each
message once and puts it on every client's queue. Each client has its own sender task
(:meth:`Client.run`) that drains its queue onto its websocket. The feed never awaits a
client, so a slow or stuck browser cannot slow the feed or the other clients.

Queues are bounded. Every delta carries the full new state of one thing (an officer, an
incident, a bucket ...), named by :func:`delta_key`, so:

* a delta whose key is still waiting in the queue *replaces* the waiting one in place
  (latest state wins: a slow client gets each officer's latest position, not every fix);
* each client has two queues: the *map's* (officers' positions and states, availability
  counts: thousands of keys, each fix a delta) and the *desk's* (everything else: calls,
  recommendations, alerts, decisions, replies), sent first. A recommendation never waits
  behind the map's backlog (at 5,000 fixes a second a client a few hundred milliseconds
  behind has thousands of officer deltas waiting), and the map's queue, holding one
  state per officer or bucket, may be as long as the force is large (``map_size``)
  without dropping anything. The map lags the desk by what is queued, at most; the
  page reads both as states, so the order between them does not matter. What waits on
  the map's queue goes in one ``batch`` message (up to :data:`MAP_BATCH` of them, their
  encoded forms joined: nothing is encoded again), not a websocket message each;
* when a queue is full anyway (``queue_size`` on the desk's, ``map_size`` on the map's),
  the client's queued deltas are dropped and it is marked for *resync*: once its sender
  catches up it gets a fresh snapshot instead (the picture stays right, only
  intermediate states are skipped);
* a client whose queue has been overflowing for longer than ``slow_limit`` seconds, or
  whose socket does not take one message within ``send_timeout`` seconds, is closed with
  code 1013 ("try again later") and a reason. The page reconnects and gets a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import orjson

__all__ = [
    "CLOSE_TOO_SLOW",
    "DEFAULT_MAP_SIZE",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_SEND_TIMEOUT",
    "DEFAULT_SLOW_LIMIT",
    "MAP_BATCH",
    "Client",
    "Hub",
    "HubObserver",
    "Sink",
    "delta_key",
]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE: Final = 2000
#: Bound of a client's queue of map deltas (one per officer or bucket at most).
DEFAULT_MAP_SIZE: Final = 50_000
#: Most map deltas sent in one ``batch`` message, and most bytes (a few hundred each).
MAP_BATCH: Final = 200
MAP_BATCH_BYTES: Final = 128 * 1024
_BATCH_START: Final = b'{"type":"batch","messages":['
#: Delta keys that go on the map's queue (see the module docstring).
_MAP_KEYS: Final = ("officer:", "availability:")
#: Seconds a client's queue may keep overflowing before the client is disconnected.
DEFAULT_SLOW_LIMIT: Final = 10.0
#: Seconds one websocket send may take before the client is disconnected.
DEFAULT_SEND_TIMEOUT: Final = 10.0
#: Close code for a client that cannot keep up (RFC 6455 1013 "Try Again Later").
CLOSE_TOO_SLOW: Final = 1013

_KEYED: Final = {
    "officer": ("officer", "officer_id"),
    "incident": ("incident", "incident_id"),
    "recommendation": ("recommendation", "incident_id"),
}


class Sink(Protocol):
    """What the hub needs of a websocket connection."""

    async def send(self, message: bytes, *, text: bool | None = None) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class HubObserver(Protocol):
    """Who is told what the hub does, for metrics (:class:`sdo.metrics.ConsoleMetrics`).

    Called synchronously from the event loop; implementations must not block.
    """

    def clients(self, n: int) -> None: ...

    def dropped(self, n: int) -> None: ...

    def overflowed(self) -> None: ...

    def disconnected_slow(self) -> None: ...


class _NoObserver:
    """The default :class:`HubObserver`: ignores everything."""

    def clients(self, n: int) -> None:
        pass

    def dropped(self, n: int) -> None:
        pass

    def overflowed(self) -> None:
        pass

    def disconnected_slow(self) -> None:
        pass


def delta_key(message: dict[str, Any]) -> str | None:
    """The identity of the thing a message is the latest state of, or ``None``.

    Two messages with the same key: the later one makes the earlier one obsolete.
    """
    kind = message.get("type")
    if not isinstance(kind, str):
        return None
    if kind in _KEYED:
        field, ident = _KEYED[kind]
        body = message.get(field)
        return f"{kind}:{body.get(ident)}" if isinstance(body, dict) else None
    if kind == "availability":
        return f"availability:{message.get('key')}"
    if kind == "alert":
        body = message.get("alert")
        if isinstance(body, dict):
            return f"alert:{body.get('kind')}:{body.get('subject')}"
    if kind == "alert_ack":
        body = message.get("ack")
        if isinstance(body, dict):
            return f"alert_ack:{body.get('kind')}:{body.get('subject')}"
    if kind in {"status", "presence"}:
        return kind
    return None


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


class _Slot:
    __slots__ = ("key", "payload")

    def __init__(self, key: str | None, payload: bytes) -> None:
        self.key = key
        self.payload = payload


class Client:
    """One authenticated websocket and its bounded outgoing queue."""

    def __init__(
        self,
        sink: Sink,
        *,
        name: str,
        queue_size: int,
        resync: Callable[[], Iterable[dict[str, Any]]],
        clock: Callable[[], float],
        send_timeout: float,
        observer: HubObserver | None = None,  # metrics hook
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> None:
        self.sink = sink
        self._observer: HubObserver = observer or _NoObserver()  # metrics hook
        self.name = name
        self.queue_size = queue_size
        self.map_size = map_size
        self._resync_fn = resync
        self._clock = clock
        self._send_timeout = send_timeout
        #: the desk's queue and the map's (module docstring); waiting keyed deltas
        self._queue: deque[_Slot] = deque()
        self._map: deque[_Slot] = deque()
        self._index: dict[str, _Slot] = {}
        self._wakeup = asyncio.Event()
        self.needs_resync = False
        #: monotonic time the queue first overflowed and has not drained since
        self.overflow_since: float | None = None
        self.closed: tuple[int, str] | None = None
        self.sent = 0
        self.coalesced = 0
        self.resyncs = 0
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue) + len(self._map)

    def put(self, key: str | None, payload: bytes) -> None:
        """Queue one encoded message (never blocks)."""
        if self.closed is not None:
            return
        if self.needs_resync:
            self._observer.dropped(1)  # metrics hook
            return  # a snapshot is coming; intermediate deltas are moot
        if key is not None:
            slot = self._index.get(key)
            if slot is not None:
                slot.payload = payload
                self.coalesced += 1
                return
        on_map = key is not None and key.startswith(_MAP_KEYS)
        queue = self._map if on_map else self._queue
        if len(queue) >= (self.map_size if on_map else self.queue_size):
            self._observer.overflowed()  # metrics hook
            self._observer.dropped(len(self) + 1)  # metrics hook
            self._queue.clear()
            self._map.clear()
            self._index.clear()
            self.needs_resync = True
            if self.overflow_since is None:
                self.overflow_since = self._clock()
            self._wakeup.set()
            return
        slot = _Slot(key, payload)
        queue.append(slot)
        if key is not None:
            self._index[key] = slot
        self._wakeup.set()

    def kick(self, code: int, reason: str) -> None:
        """Close this client (from synchronous code): stop its sender, then close."""
        if self.closed is not None:
            return
        self.closed = (code, reason)
        self._queue.clear()
        self._map.clear()
        self._index.clear()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        self._wakeup.set()

    async def run(self) -> None:
        """Send queued messages until the client is kicked or the socket fails."""
        self._task = asyncio.current_task()
        try:
            await self._drain()
        except asyncio.CancelledError:
            if self.closed is None:
                raise  # cancelled from outside (shutdown): not ours to swallow
        except Exception as exc:
            log.debug("client %s: send failed: %r", self.name, exc)
            return
        if self.closed is not None:
            code, reason = self.closed
            with contextlib.suppress(Exception):
                await self.sink.close(code, reason)

    async def _drain(self) -> None:
        while self.closed is None:
            if self.needs_resync:
                self.needs_resync = False
                self.resyncs += 1
                batch = [_Slot(None, encode(m)) for m in self._resync_fn()]
                self._queue.extendleft(reversed(batch))
            if self._queue:
                payload, count = self._take(self._queue), 1
            elif self._map:
                payload, count = self._map_batch()
            else:
                self.overflow_since = None
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                async with asyncio.timeout(self._send_timeout):
                    await self.sink.send(payload, text=True)
            except TimeoutError:
                self.closed = (CLOSE_TOO_SLOW, "client too slow: a message took too long to send")
                self._observer.disconnected_slow()  # metrics hook
                return
            self.sent += count

    def _take(self, queue: deque[_Slot]) -> bytes:
        slot = queue.popleft()
        if slot.key is not None and self._index.get(slot.key) is slot:
            del self._index[slot.key]
        return slot.payload

    def _map_batch(self) -> tuple[bytes, int]:
        """What waits on the map's queue, as one message: alone, or a ``batch`` of up to
        :data:`MAP_BATCH` (and about :data:`MAP_BATCH_BYTES`)."""
        queue = self._map
        first = self._take(queue)
        if not queue:
            return first, 1
        parts, size = [first], len(first)
        while queue and len(parts) < MAP_BATCH and size < MAP_BATCH_BYTES:
            payload = self._take(queue)
            parts.append(payload)
            size += len(payload)
        return _BATCH_START + b",".join(parts) + b"]}", len(parts)


class Hub:
    """The registry of connected clients."""

    def __init__(
        self,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        map_size: int = DEFAULT_MAP_SIZE,
        slow_limit: float = DEFAULT_SLOW_LIMIT,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        observer: HubObserver | None = None,  # metrics hook
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.map_size = map_size
        self.slow_limit = slow_limit
        self.send_timeout = send_timeout
        self._clock = clock
        self.clients: set[Client] = set()
        self.disconnected_slow = 0
        self.observer: HubObserver = observer or _NoObserver()  # metrics hook

    def register(
        self,
        sink: Sink,
        *,
        name: str,
        initial: Iterable[dict[str, Any]],
        resync: Callable[[], Iterable[dict[str, Any]]],
    ) -> Client:
        """Add a client whose first messages are ``initial`` (hello, snapshot ...).

        Synchronous: no delta can slip in between ``initial`` and the deltas that follow.
        """
        client = Client(
            sink,
            name=name,
            queue_size=self.queue_size,
            map_size=self.map_size,
            resync=resync,
            clock=self._clock,
            send_timeout=self.send_timeout,
            observer=self.observer,  # metrics hook
        )
        for message in initial:
            client._queue.append(_Slot(None, encode(message)))
        client._wakeup.set()
        self.clients.add(client)
        self.observer.clients(len(self.clients))  # metrics hook
        return client

    def unregister(self, client: Client) -> None:
        self.clients.discard(client)
        self.observer.clients(len(self.clients))  # metrics hook

    def send_to(self, client: Client, message: dict[str, Any]) -> None:
        """Queue one message for one client (e.g. a reply to its action)."""
        client.put(None, encode(message))

    def broadcast(self, messages: Iterable[dict[str, Any]]) -> None:
        """Queue messages for every client. Never blocks; kicks clients too slow to keep up."""
        encoded = [(delta_key(m), encode(m)) for m in messages]
        if not encoded or not self.clients:
            return
        now = self._clock()
        for client in list(self.clients):
            for key, payload in encoded:
                client.put(key, payload)
            since = client.overflow_since
            if since is not None and now - since > self.slow_limit:
                self.disconnected_slow += 1
                log.info("disconnecting slow client %s", client.name)
                client.kick(CLOSE_TOO_SLOW, "client too slow: queue full for too long")
                self.clients.discard(client)
                self.observer.disconnected_slow()  # metrics hook
                self.observer.clients(len(self.clients))  # metrics hook
