"""``sdo console``: the page over HTTP and the live picture over one websocket, one port.

Theory of operation
-------------------
One asyncio process, three parts:

* **The feed** (:meth:`Console._feed`): an aiokafka consumer without a group, assigned
  every partition of the officer, incident, deployment, recommendation and alert topics
  and started from the beginning, so a restarted console rebuilds its picture from Kafka.
  Records are decoded by :func:`sdo.events.decode` (one place for bytes → models), folded
  into the :class:`~sdo.console.view.ConsoleView`, and the resulting deltas handed to the
  :class:`~sdo.console.hub.Hub`, which never blocks. The feed's health (connecting,
  catching up, live, quiet, down) is measured, not assumed, and sent to every page each
  second as a ``status`` message.
* **The websocket** (``/ws``): a client must send ``{"type": "auth", "token": ...}``
  first, within ``auth_timeout`` seconds, or it is closed (1008) having received nothing.
  Connections waiting to authenticate are capped, overall and per address. Authenticated
  clients get ``hello``, ``areas``, ``snapshot``, ``status``, ``presence``, then deltas.
  SDO actions (accept / override / decline, notes, alert acknowledgements, officers'
  status changes) are checked by the server's rules (:mod:`sdo.console.rules`),
  idempotent per user and ``request_id`` and rate limited per user
  (:mod:`sdo.console.requests`), published to Kafka (the audit trail) and acknowledged.
  The page then sees the event come back through the feed, like every other page. A
  session whose user was changed or removed in the users file is closed within a second
  (checked twice a second).
* **Static files**: ``process_request`` answers plain HTTP GETs for the page's three files
  (packaged, nothing from a CDN) on the same port.

The websocket only accepts the console's own origins (plus ``--origin``), and requests
without an Origin header (non-browser clients, which still need a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import signal
import socket
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from sdo import heap
from sdo.admission import Admission
from sdo.areas import load_areas
from sdo.config import Settings, Topics
from sdo.console import rules
from sdo.console.auth import Session, Users
from sdo.console.hub import Client, Hub
from sdo.console.requests import Bucket, Ledger, event_id_for, fingerprint
from sdo.console.view import ConsoleView
from sdo.domain.geo import Areas
from sdo.errors import ConfigError, InvalidEvent, Rejected
from sdo.events import encode, rfc3339
from sdo.events import kafka_key as key_of
from sdo.health import LoopProbes
from sdo.metrics import ConsoleMetrics, MetricsServer, new_registry, serve_metrics
from sdo.order import DEFAULT_IDLE_S, HOLD_MAX, Merger, partition_states

if TYPE_CHECKING:
    import argparse

__all__ = [
    "AUTH_TIMEOUT",
    "DEADLINES_S",
    "MAX_MESSAGE_BYTES",
    "Console",
    "FeedHealth",
    "cli",
    "parse_bind",
    "run_console",
]

#: Longest a feed fetch waits for data, ms (each fetch's worst-case delay).
FETCH_WAIT_MS = 20
#: Records taken from Kafka per step of the feed; small enough that client senders get
#: the event loop often under load.
FEED_BATCH = 500
log = logging.getLogger(__name__)

_TOKEN_IN_TEXT = re.compile(r'("token"\s*:\s*")[^"]*(")')


class _RedactTokens(logging.Filter):
    """Blank the value of any ``"token"`` in a log record (websockets frame logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if '"token"' in text:
            record.msg = _TOKEN_IN_TEXT.sub(r"\1[redacted]\2", text)
            record.args = None
        return True


def _redacting_logger() -> logging.Logger:
    logger = logging.getLogger("sdo.console.websockets")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())
    return logger


#: Seconds a new connection has to authenticate.
AUTH_TIMEOUT: Final = 5.0
#: Largest message accepted from a client (actions are < 1 KiB).
MAX_MESSAGE_BYTES: Final = 64 * 1024
#: Attendance deadlines by grade, seconds from the incident's creation (CONTRACT §2).
DEADLINES_S: Final = {1: 15 * 60, 2: 60 * 60}
#: Actions a user may send (all their connections together): a burst of this many,
#: refilled at ACTION_RATE per second.
ACTION_BURST: Final = 20
ACTION_RATE: Final = 1.0
#: Connections that have not authenticated yet: at most this many, and this many from one
#: address; more are refused (HTTP 503 at the handshake, or closed 1013).
MAX_UNAUTHENTICATED: Final = 128
MAX_UNAUTHENTICATED_PER_ADDRESS: Final = 16
#: How often open sessions are checked against the users file, seconds.
USERS_CHECK_EVERY: Final = 0.5
#: How long a ``resolve`` waits for a (re)started console to read Kafka to its end.
RESOLVE_WAIT_S: Final = 10.0
#: Requests one ``resolve`` may ask about.
RESOLVE_MAX: Final = 100
CLOSE_REVOKED_REASON: Final = "access changed or removed: log in again"
CLOSE_BUSY: Final = 1013
#: Without a feed message for this long, the feed is reported ``quiet`` (stale).
QUIET_AFTER: Final = 15.0
#: Consumer lag (records) above which a live feed is reported ``lagging``.
LAG_LIMIT: Final = 5000
#: Bounds on talking to Kafka.
KAFKA_TIMEOUT: Final = 10.0
PROBE_TIMEOUT: Final = 3.0
PROBE_EVERY: Final = 2.0
STATUS_EVERY: Final = 1.0
#: How long a published decision blocks another one on the same incident while it comes
#: back through the feed.
INFLIGHT_S: Final = 15.0
CLOSE_POLICY: Final = 1008

#: Content types of the page's files, by suffix.
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the page (``static/``, the vendored map library included), by URL
    path; ``/`` is the page. Files of other kinds (a licence, a read-me) are not served."""
    root = resources.files("sdo.console") / "static"
    out: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Any, prefix: str) -> None:
        for item in folder.iterdir():
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
            elif (ctype := _TYPES.get(Path(item.name).suffix)) is not None:
                out[f"{prefix}{item.name}"] = (item.read_bytes(), ctype)

    walk(root, "/")
    out["/"] = out["/index.html"]
    return out


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port)."""
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--bind {bind!r} is not HOST:PORT")
    return host, int(port)


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else rfc3339(ts)


@dataclass
class FeedHealth:
    """What the console knows about its Kafka feed."""

    state: str = "connecting"  # connecting | catching_up | live | lagging | quiet | down
    detail: str | None = None
    last_message: float | None = None  # monotonic
    connected_at: float | None = None  # monotonic, when the feed last (re)connected
    lag: int | None = None
    records: int = 0
    invalid: int = 0
    caught_up: bool = False


@dataclass
class _Seat:
    """One authenticated connection: who, from where, and what part of the area they work."""

    session: Session
    address: str
    client: Client
    #: "npu:ID" or "cluster:ID" the user works (None: all of it)
    scope: str | None = None
    connected: float = field(default_factory=time.monotonic)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _address(ws: ServerConnection) -> str:
    remote = ws.remote_address
    return str(remote[0]) if isinstance(remote, tuple) and remote else "?"


def _error(request_id: str | None, text: str, code: str = "rejected") -> dict[str, Any]:
    return {"type": "error", "request_id": request_id, "error": text, "code": code}


#: What builds the event of each action (:mod:`sdo.console.rules`).
_BUILDERS: Final[dict[str, Callable[..., Any]]] = {
    "accept": rules.deployment,
    "override": rules.deployment,
    "decline": rules.deployment,
    "note": rules.note,
    "ack_alert": rules.alert_ack,
    "set_status": rules.status_change,
}


class Console:
    """The console server. ``async with Console(...) as c:`` runs it until the block ends."""

    def __init__(
        self,
        settings: Settings,
        users: Users,
        *,
        bind: str = "127.0.0.1:0",
        areas: Areas | None = None,
        ssl_context: ssl.SSLContext | None = None,
        origins: Sequence[str] = (),
        auth_timeout: float = AUTH_TIMEOUT,
        quiet_after: float = QUIET_AFTER,
        hub: Hub | None = None,
        decision_clock: Callable[[], datetime] | None = None,
        metrics: ConsoleMetrics | None = None,
        metrics_port: str | int | None = None,
        insecure_http: bool = False,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
        max_unauthenticated_per_address: int = MAX_UNAUTHENTICATED_PER_ADDRESS,
        action_burst: float = ACTION_BURST,
        action_rate: float = ACTION_RATE,
        users_check_every: float = USERS_CHECK_EVERY,
    ) -> None:
        self.settings = settings
        self.topics: Topics = settings.topics
        self.users = users
        self.host, self._port = parse_bind(bind)
        if ssl_context is None and not insecure_http and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve the console on {self.host} over plain HTTP: tokens and "
                "call details would cross the network in clear; give --cert and --key, or "
                "--insecure-http when a TLS proxy in front of it does the encryption"
            )
        self.areas = areas if areas is not None else load_areas(settings.areas_path)
        self.view = ConsoleView(self.areas)
        # metrics hook: a private registry when none is given (nothing global); served
        # at http://HOST:PORT/metrics from start() when metrics_port is given
        self.metrics = metrics or ConsoleMetrics(new_registry(process=metrics_port is not None))
        self._metrics_port = metrics_port
        self.metrics_server: MetricsServer | None = None
        self.hub = hub or Hub(observer=self.metrics)
        self.ssl_context = ssl_context
        self.extra_origins = tuple(origins)
        self.auth_timeout = auth_timeout
        self.quiet_after = quiet_after
        #: time stamped on deployments: the feed's clock (the latest event time read), so
        #: a decision sorts after what the SDO saw, in a live feed as in a replayed one
        #: (the wall clock before anything is read)
        self.decision_clock = decision_clock or self._feed_clock
        #: the admission rule every record read passes (sdo.admission): what the worker
        #: refuses, this console does not show
        self.admit = Admission(max_ahead_s=settings.max_ahead_s, areas=self.areas, keyed=True)
        self.order_idle_s = DEFAULT_IDLE_S
        #: what the feed has read and holds back to release in order (sdo.order)
        self._merger: Merger | None = None
        self.health = FeedHealth()
        self._static = _static_files()
        self._areas_message = {
            "type": "areas",
            "geojson": self.areas.to_geojson(),
            "min_cover": self.view.min_cover(),
        }
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: Any = None
        self._consumer: Any = None
        self._inflight: dict[str, float] = {}
        self.max_unauthenticated = max_unauthenticated
        self.max_unauthenticated_per_address = max_unauthenticated_per_address
        #: connections waiting to authenticate, by remote address
        self._unauthenticated: Counter[str] = Counter()
        self._seats: dict[Client, _Seat] = {}
        self._buckets: dict[str, Bucket] = {}
        self.action_burst, self.action_rate = action_burst, action_rate
        self.users_check_every = users_check_every
        self.ledger = Ledger()
        self.origins: list[str] = []
        self._type_of = {
            self.topics.location: "officer.location",
            self.topics.status: "officer.status",
            self.topics.profile: "officer.profile",
            self.topics.incident: "incident",
            self.topics.deployment: "deployment",
            self.topics.recommendation: "recommendation",
            self.topics.alert: "alert",
            self.topics.note: "incident.note",
            self.topics.alert_ack: "alert.ack",
        }

    def _feed_clock(self) -> datetime:
        return self.view.event_time or datetime.now(UTC)

    def deciding(self, incident_id: str) -> bool:
        """Whether a decision on the incident was sent to Kafka and not yet read back."""
        return self._inflight.get(incident_id, 0.0) > time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self._port}/"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "ws"

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.create_server((self.host, self._port), family=family)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.host}:{self._port}: {exc.strerror}"
            ) from None
        self._port = sock.getsockname()[1]
        self.origins = self._default_origins()
        if self._metrics_port is not None:  # metrics hook
            try:
                probes = LoopProbes(self.problems, asyncio.get_running_loop())
                self.metrics_server = serve_metrics(
                    self.metrics.registry, self._metrics_port, probes
                )
            except ConfigError:
                sock.close()
                raise
        self._server = await serve(
            self._handle,
            sock=sock,
            ssl=self.ssl_context,
            origins=[*(Origin(o) for o in self.origins), None],
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=16,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
            compression=None,
            server_header="sdo-console",
            # websockets logs frames at DEBUG, the auth frame included: redact tokens
            logger=_redacting_logger(),
        )
        self._tasks = [
            asyncio.create_task(self._feed(), name="sdo-console-feed"),
            asyncio.create_task(self._status_loop(), name="sdo-console-status"),
            asyncio.create_task(self._watch_users(), name="sdo-console-users"),
        ]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # closes every websocket with 1001 (going away)
            await self._server.wait_closed()
            self._server = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._close_kafka()
        metrics_server, self.metrics_server = self.metrics_server, None  # metrics hook
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.close)

    async def __aenter__(self) -> Console:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _default_origins(self) -> list[str]:
        hosts = [self.host]
        if self.host in {"127.0.0.1", "::1", "localhost"}:
            hosts += ["127.0.0.1", "localhost", "[::1]"]
        elif self.host in {"0.0.0.0", "::"}:  # noqa: S104  (describing a bind, not binding)
            hosts = ["127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()]
        hosts = [f"[{h}]" if ":" in h and not h.startswith("[") else h for h in hosts]
        default_port = 443 if self.ssl_context else 80
        out: list[str] = []
        for h in dict.fromkeys(hosts):
            out.append(f"{self.scheme}://{h}:{self._port}")
            if self._port == default_port:
                out.append(f"{self.scheme}://{h}")
        return [*out, *self.extra_origins]

    # -- HTTP --------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            if self._too_many_waiting(_address(connection)):
                return connection.respond(
                    HTTPStatus.SERVICE_UNAVAILABLE, "too many connections waiting to log in\n"
                )
            return None
        found = self._static.get(path)
        if found is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        body, ctype = found
        headers = Headers(
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("Content-Security-Policy", _CSP),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("X-Frame-Options", "DENY"),
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, body)

    # -- websocket ---------------------------------------------------------------------

    def _too_many_waiting(self, address: str) -> bool:
        return (
            self._unauthenticated.total() >= self.max_unauthenticated
            or self._unauthenticated[address] >= self.max_unauthenticated_per_address
        )

    async def _handle(self, ws: ServerConnection) -> None:
        address = _address(ws)
        if self._too_many_waiting(address):
            await ws.close(CLOSE_BUSY, "too many connections waiting to log in")
            return
        self._unauthenticated[address] += 1
        try:
            session = await self._authenticate(ws)
        finally:
            self._unauthenticated[address] -= 1
            if self._unauthenticated[address] <= 0:
                del self._unauthenticated[address]
        if session is None:
            return
        user = session.user
        client = self.hub.register(
            ws,
            name=user.name,
            initial=[
                {
                    "type": "hello",
                    "user": user.name,
                    "role": user.role.value,
                    "can_decide": user.can_decide,
                    "deadlines_s": {str(g): s for g, s in DEADLINES_S.items()},
                    "stale_after_s": self.quiet_after,
                    "status_changes": list(rules.STATUS_CHANGES),
                },
                self._areas_message,
                self.view.snapshot(),
                self._status(),
            ],
            resync=lambda: [self.view.snapshot(), self._status(), self._presence()],
        )
        self._seats[client] = _Seat(session, address, client)
        self.hub.broadcast([self._presence()])
        sender = asyncio.create_task(client.run(), name=f"sdo-console-send-{user.name}")
        try:
            async for raw in ws:
                reply = await self._on_message(self._seats[client], raw)
                if reply is not None:
                    self.hub.send_to(client, reply)
        except ConnectionClosed:
            pass
        finally:
            self.hub.unregister(client)
            self._seats.pop(client, None)
            self.hub.broadcast([self._presence()])
            if client.closed is None:
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _authenticate(self, ws: ServerConnection) -> Session | None:
        try:
            async with asyncio.timeout(self.auth_timeout):
                raw = await ws.recv()
        except TimeoutError:
            await ws.close(CLOSE_POLICY, "authentication required")
            return None
        except ConnectionClosed:
            return None
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict) or msg.get("type") != "auth":
            await ws.close(CLOSE_POLICY, "authentication required")
            return None
        session = self.users.login(msg.get("token"))
        if session is None:
            log.info("console: failed authentication from %s", ws.remote_address)
            await ws.close(CLOSE_POLICY, "authentication failed")
            return None
        log.info("console: %s (%s) connected", session.user.name, session.user.role.value)
        return session

    def _presence(self) -> dict[str, Any]:
        """Who is connected and what part of the area each works (``work``)."""
        seats = sorted(self._seats.values(), key=lambda s: (s.session.user.name, s.connected))
        return {
            "type": "presence",
            "sessions": [
                {
                    "user": seat.session.user.name,
                    "role": seat.session.user.role.value,
                    "scope": seat.scope,
                }
                for seat in seats
            ],
        }

    async def _on_message(self, seat: _Seat, raw: str | bytes) -> dict[str, Any] | None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {"type": "error", "request_id": None, "error": "message is not JSON"}
        if not isinstance(msg, dict):
            return {"type": "error", "request_id": None, "error": "message is not an object"}
        kind = msg.get("type")
        request_id = msg.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
            request_id = None
        if kind == "ping":
            return {"type": "pong", "request_id": request_id}
        if kind == "timeline":
            incident_id = msg.get("incident_id")
            if not isinstance(incident_id, str):
                return _error(request_id, "timeline needs an incident_id", "invalid")
            return {
                "type": "timeline",
                "request_id": request_id,
                "incident_id": incident_id,
                "entries": self.view.timelines.entries(incident_id),
            }
        if kind == "work":
            return self._work(seat, msg.get("scope"), request_id)
        if kind == "resolve":
            return await self._resolve(seat, msg.get("request_ids"), request_id)
        if kind not in _BUILDERS:
            return _error(request_id, f"unknown type {kind!r}", "invalid")
        reply = await self._act(seat, msg, request_id)
        error_code = reply.get("code", "invalid") if reply["type"] == "error" else "ok"
        self.metrics.action(str(kind), error_code)  # metrics hook
        return reply

    def _work(self, seat: _Seat, scope: object, request_id: str | None) -> dict[str, Any]:
        """Work one NPU or response cluster (``npu:ID``, ``cluster:ID``) or all (null)."""
        if scope is not None:
            kind, _, ident = str(scope).partition(":")
            known = self.areas.npus if kind == "npu" else self.areas.clusters
            if kind not in {"npu", "cluster"} or ident not in known:
                return _error(request_id, f"no NPU or cluster {scope!r}", "invalid")
        seat.scope = None if scope is None else str(scope)
        self.hub.broadcast([self._presence()])
        return {"type": "work", "request_id": request_id, "scope": seat.scope}

    def _check_sessions(self) -> None:
        """Close every session whose user was changed or removed in the users file."""
        self.users.refresh()
        for client, seat in list(self._seats.items()):
            if not self.users.holds(seat.session):
                log.info("console: %s's access changed; session closed", seat.session.user.name)
                client.kick(CLOSE_POLICY, CLOSE_REVOKED_REASON)

    async def _watch_users(self) -> None:
        while True:
            await asyncio.sleep(self.users_check_every)
            self._check_sessions()

    async def _act(
        self, seat: _Seat, msg: dict[str, Any], request_id: str | None
    ) -> dict[str, Any]:
        """An action: who may, once per ``request_id``, within the user's rate, then
        :meth:`_perform`."""
        if request_id is None:
            return _error(None, "request_id is required", "invalid")
        session = seat.session
        self.users.refresh()
        if not self.users.holds(session):
            # (refused now; the session itself is closed by the next check, after this reply)
            return _error(request_id, "your access was changed or removed", "forbidden")
        if not session.user.can_decide:
            return _error(request_id, "viewers cannot make decisions", "forbidden")
        name = session.user.name
        print_ = fingerprint(msg)
        entry = self.ledger.find(name, request_id)
        if entry is not None:
            if entry.fingerprint != print_:
                return _error(
                    request_id, "that request_id was already used for another request", "conflict"
                )
            return {**await asyncio.shield(entry.outcome), "repeat": True}
        bucket = self._buckets.setdefault(name, Bucket(self.action_burst, self.action_rate))
        if not bucket.take(time.monotonic()):
            return _error(request_id, "too many actions; wait a moment", "rate_limited")
        self.ledger.begin(name, request_id, print_)
        reply = _error(request_id, "the console stopped before recording it", "unavailable")
        try:
            reply = await self._perform(session, msg, request_id)
        finally:
            self.ledger.end(name, request_id, reply)
        return reply

    async def _perform(
        self, session: Session, msg: dict[str, Any], request_id: str
    ) -> dict[str, Any]:
        """Check an action by the rules, publish its event (Kafka record time = its
        ``ts``), and say so; a request Kafka already holds is not published again."""
        by = session.user.name
        event_id = event_id_for(by, request_id)
        known = self.view.recorded.get(event_id)
        if known is not None:
            return {"type": "ack", "request_id": request_id, **known, "already_recorded": True}
        kind = str(msg["type"])
        incident_id = msg.get("incident_id")
        now = time.monotonic()
        decision = kind in rules.DECISIONS
        if decision and isinstance(incident_id, str) and self._inflight.get(incident_id, 0.0) > now:
            return _error(
                request_id, f"a decision on incident {incident_id} is already being recorded"
            )
        try:
            event = _BUILDERS[kind](
                self.view, msg, by=by, event_id=event_id, now=self.decision_clock()
            )
        except rules.NeedsConfirmation as exc:
            reply = {**_error(request_id, exc.reason, "confirm"), "problems": list(exc.problems)}
            if exc.decision_event is not None:
                reply["decision_event"] = exc.decision_event
            return reply
        except Rejected as exc:
            return _error(request_id, exc.reason)
        producer = self._producer
        if producer is None:
            return _error(request_id, "not connected to Kafka; nothing was recorded", "unavailable")
        if decision:
            self._inflight[event.incident_id] = now + INFLIGHT_S
        try:
            async with asyncio.timeout(KAFKA_TIMEOUT):
                await producer.send_and_wait(
                    self.topics.for_type(event.type),
                    value=encode(event),
                    key=key_of(event),
                    timestamp_ms=round(event.ts.timestamp() * 1000),
                )
        except Exception as exc:
            if decision:
                self._inflight.pop(event.incident_id, None)
            log.warning("console: publishing a %s failed: %r", event.type, exc)
            return _error(request_id, "Kafka did not take it; nothing was recorded", "unavailable")
        done = rules.summary(event) or {"event_id": event.event_id}
        log.info("console: %s %s (%s)", by, kind, event.event_id)
        return {"type": "ack", "request_id": request_id, **done, "already_recorded": False}

    async def _resolve(
        self, seat: _Seat, request_ids: object, request_id: str | None
    ) -> dict[str, Any]:
        """Which of ``request_ids`` (this user's, unanswered when the page lost its
        connection) Kafka holds: ``recorded`` (with what), ``not_recorded``, or ``unknown``
        (the console has not read Kafka to its end within :data:`RESOLVE_WAIT_S`)."""
        if (
            not isinstance(request_ids, list)
            or len(request_ids) > RESOLVE_MAX
            or not all(isinstance(r, str) and 0 < len(r) <= 128 for r in request_ids)
        ):
            return _error(
                request_id, f"request_ids: a list of at most {RESOLVE_MAX} ids", "invalid"
            )
        name = seat.session.user.name
        deadline = time.monotonic() + RESOLVE_WAIT_S
        # (the feed marks caught_up in its health record; a short poll, bounded, reads it)
        while not self.health.caught_up and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        results = []
        for rid in request_ids:
            pending = self.ledger.pending(name, rid)
            if pending is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(pending), KAFKA_TIMEOUT)
            entry = self.ledger.find(name, rid)
            acked = (
                entry.outcome.result()
                if entry is not None and entry.outcome.done() and not entry.outcome.cancelled()
                else None
            )
            known = self.view.recorded.get(event_id_for(name, rid))
            if known is not None:
                results.append({"request_id": rid, "outcome": "recorded", **known})
            elif acked is not None and acked.get("type") == "ack":
                done = {k: v for k, v in acked.items() if k not in {"type", "request_id"}}
                results.append({**done, "request_id": rid, "outcome": "recorded"})
            elif self.health.caught_up:
                results.append({"request_id": rid, "outcome": "not_recorded"})
            else:
                results.append({"request_id": rid, "outcome": "unknown"})
        return {"type": "resolved", "request_id": request_id, "results": results}

    # -- feed --------------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        h = self.health
        age = None if h.last_message is None else round(time.monotonic() - h.last_message, 1)
        return {
            "type": "status",
            "feed": h.state,
            "detail": h.detail,
            "last_message_age_s": age,
            "event_time": _iso(self.view.event_time),
            "server_time": _iso(datetime.now(UTC)),
            "lag": h.lag,
            "records": h.records,
            "invalid": h.invalid,
            "clients": len(self.hub.clients),
        }

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            now = time.monotonic()
            h = self.health
            if h.state in {"live", "lagging", "quiet"}:
                since = h.last_message or h.connected_at or now
                quiet = now - since > self.quiet_after
                if quiet:
                    h.state = "quiet"
                    h.detail = "no feed messages recently"
                elif h.state == "quiet":
                    h.state, h.detail = "live", None
                self.metrics.feed_state(h.state)  # metrics hook
            self._inflight = {k: v for k, v in self._inflight.items() if v > now}
            self.hub.broadcast([self._status()])

    def problems(self) -> list[str]:
        """Why this console should not be given SDOs (empty: it may): the readiness
        probe. Not before its feed has been read to the end once (its pages would show
        an incomplete picture), nor while the feed is down; a lagging or quiet feed is
        shown on the page, and the console stays ready."""
        h = self.health
        if h.state == "down":
            return [f"its Kafka feed is down ({h.detail or 'no detail'})"]
        if not h.caught_up:
            return [f"its Kafka feed is {h.state.replace('_', ' ')}, not read to the end yet"]
        return []

    def _set_health(self, state: str, detail: str | None = None) -> None:
        changed = (self.health.state, self.health.detail) != (state, detail)
        self.health.state, self.health.detail = state, detail
        self.metrics.feed_state(state)  # metrics hook
        if changed:
            self.hub.broadcast([self._status()])

    async def _feed(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._connect()
                backoff = 0.5
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from sdo.broker import tls_problem  # noqa: PLC0415

                why = await tls_problem(self.settings)  # (aiokafka says only "cannot connect")
                log.warning("console: Kafka feed failed: %s", why or exc)
                where = f"cannot reach Kafka at {self.settings.bootstrap}"
                self._set_health("down", f"{where}: {why}" if why else where)
                await self._close_kafka()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: PLC0415 (heavy)
        from aiokafka.structs import TopicPartition  # noqa: PLC0415

        from sdo.broker import ensure_topics, start_client, topic_specs  # noqa: PLC0415

        bootstrap = self.settings.bootstrap
        self._set_health("connecting", f"connecting to Kafka at {bootstrap}")
        await ensure_topics(
            bootstrap,
            topic_specs(self.topics),
            timeout=KAFKA_TIMEOUT,
            security=self.settings.kafka.client_options(),
        )
        consumer = AIOKafkaConsumer(
            **self.settings.client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(KAFKA_TIMEOUT * 1000),
            client_id="sdo-console",
            # the embedded broker answers a fetch only when its wait expires: keep it short
            fetch_max_wait_ms=FETCH_WAIT_MS,
        )
        self._consumer = consumer
        await start_client(consumer.start, consumer.stop, timeout=KAFKA_TIMEOUT)
        async with asyncio.timeout(KAFKA_TIMEOUT):
            await consumer.topics()  # loads metadata for every topic
        tps = []
        for topic in self._type_of:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise ConfigError(f"topic {topic} has no partitions")
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.settings.client_options(),
                acks="all",
                request_timeout_ms=int(KAFKA_TIMEOUT * 1000),
                client_id="sdo-console",
            )
            await start_client(producer.start, producer.stop, timeout=KAFKA_TIMEOUT)
            self._producer = producer
        self.health.caught_up = False
        self.health.connected_at = time.monotonic()
        self._set_health("catching_up", "reading the topics from the beginning")

    async def _close_kafka(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        for client in (consumer, producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def _consume(self) -> None:
        """Read the topics in one order across their partitions (sdo.order, as the
        worker reads its input), folding each record into the view."""
        consumer = self._consumer
        tps = list(consumer.assignment())
        merger = self._merger = Merger(self.order_idle_s)
        next_probe = 0.0
        while True:
            pull = [tp for tp in tps if merger.held(tp) < HOLD_MAX]
            held = len(merger)
            if pull:
                batches = await consumer.getmany(
                    *pull, timeout_ms=5 if held else 250, max_records=FEED_BATCH
                )
            else:
                batches = {}
                await asyncio.sleep(0.005)
            pulled = time.time()
            for tp, batch in batches.items():
                merger.add(tp, batch, pulled)
            records: list[Any] = []
            if len(merger):
                states = partition_states(consumer, tps)
                released, forced = merger.release(states, time.time())
                if forced:
                    log.warning(
                        "console: %d record(s) read before every partition answered", forced
                    )
                records = [r for _, r in released.order]
            if records:
                self.hub.broadcast(self._apply(records))
                # let the clients' senders run between batches: fan-out must keep up
                await asyncio.sleep(0)
                self.health.last_message = time.monotonic()
                self.health.records += len(records)
                self.metrics.feed_records(len(records))  # metrics hook
                if self.health.state == "quiet":
                    self._set_health("live")
            if time.monotonic() >= next_probe:
                next_probe = time.monotonic() + PROBE_EVERY
                await self._probe(consumer, tps)

    def _apply(self, records: Iterable[Any]) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = []
        admit = self.admit
        for record in records:
            try:
                event = admit(record.value, self._type_of[record.topic], record.key)
            except InvalidEvent:
                # The worker dead-letters what the admission rule refuses (the same rule):
                # the console shows none of it and only counts it.
                self.health.invalid += 1
                self.metrics.feed_invalid()  # metrics hook
                continue
            deltas.extend(self.view.fold(event))
            if getattr(event, "type", None) == "deployment":
                self._inflight.pop(event.incident_id, None)
        return deltas

    async def _probe(self, consumer: Any, tps: list[Any]) -> None:
        """Measure lag; a broker that does not answer makes the feed ``down``."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                ends = await consumer.end_offsets(tps)
        except Exception:
            self._set_health("down", f"Kafka at {self.settings.bootstrap} is not answering")
            return
        # (records read but held back to be put in order are not applied yet either; those
        # held for less than the idle bound are ordering as usual, not lag: a live feed
        # over several partitions always holds a few)
        merger = self._merger
        lag = 0 if merger is None else merger.overdue(time.time())
        for tp in tps:
            lag += max(0, ends[tp] - await consumer.position(tp))
        h = self.health
        h.lag = lag
        self.metrics.feed_lag(lag)  # metrics hook
        if not h.caught_up and lag == 0:
            h.caught_up = True
        if not h.caught_up:
            self._set_health("catching_up", f"{lag} records behind")
        elif lag > LAG_LIMIT:
            self._set_health("lagging", f"{lag} records behind")
        elif h.state != "quiet":
            self._set_health("live")


# -- entry points --------------------------------------------------------------------------


def _ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("TLS needs both --cert and --key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate/key: {exc}") from None
    return context


async def run_console(
    settings: Settings,
    users_path: Path,
    bind: str,
    *,
    ready: Callable[[Console], Awaitable[None] | None] | None = None,
    stop: asyncio.Event | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    origins: Sequence[str] = (),
    decision_clock: Callable[[], datetime] | None = None,
    metrics_port: str | int | None = None,
    insecure_http: bool = False,
) -> None:
    """Run a console until ``stop`` is set (or forever). ``ready(console)`` runs once it listens.

    With ``metrics_port`` (``PORT`` or ``HOST:PORT``) Prometheus metrics are served at
    ``console.metrics_server.url``.
    """
    console = Console(
        settings,
        Users(users_path),
        bind=bind,
        ssl_context=_ssl_context(cert, key),
        origins=origins,
        decision_clock=decision_clock,
        metrics_port=metrics_port,
        insecure_http=insecure_http,
    )
    async with console:
        if ready is not None:
            result = ready(console)
            if result is not None:
                await result
        await (stop or asyncio.Event()).wait()


def cli(args: argparse.Namespace) -> int:
    """``sdo console``."""
    from sdo.cli import settings_from  # noqa: PLC0415 (cli imports this module lazily)

    settings = settings_from(args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def announce(console: Console) -> None:
            heap.settle()
            sys.stdout.write(f"console ready at {console.url}\n")
            if console.metrics_server is not None:  # metrics hook
                sys.stdout.write(f"metrics at {console.metrics_server.url}\n")
            sys.stdout.flush()

        try:
            await run_console(
                settings,
                args.users,
                args.bind,
                ready=announce,
                stop=stop,
                cert=args.cert,
                key=args.key,
                origins=args.origin or (),
                metrics_port=getattr(args, "metrics_port", None),  # metrics hook
                insecure_http=args.insecure_http,
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(main())
    return 0
