"""Prometheus metrics for ``sdo worker`` and ``sdo console`` (issue #8).

Theory of operation
-------------------
Each process creates **one** :class:`prometheus_client.CollectorRegistry` at start-up
(:func:`new_registry`) and passes it in: there is no module-level registry and no metric
object at import time, so two consoles (or a console and a worker in one test process)
never share counters. :class:`WorkerMetrics` and :class:`ConsoleMetrics` own the metric
families of their process and offer one small method per thing that happens; the worker's
input loop and the console hub call those methods and never touch ``prometheus_client``.

:func:`serve_metrics` exposes a registry at ``http://HOST:PORT/metrics`` with
``prometheus_client``'s WSGI app on a threaded server (a daemon thread, so it suits both
the asyncio console and the Faust worker), and beside it the process's liveness and
readiness probes, ``/healthz`` and ``/readyz`` (:mod:`sdo.health`). It binds 127.0.0.1
unless told otherwise (``--metrics-port 0.0.0.0:9100`` in a container). Metric objects
are thread-safe, so the scrape thread reads while the event loop writes.

Label values are bounded: event types, topics and ignore reasons come from small closed
sets, and anything else passes through :class:`_BoundedLabel`, which folds values beyond
a fixed number into ``other`` (a label fed from input data must not grow without bound).

Metric names (all prefixed ``sdo_``) are part of the operator's contract; see
``docs/run-on-kafka.md`` ("Observability") for what each means and the alerts to set.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from sdo.errors import BadInput, ConfigError
from sdo.health import LoopProbes, probe_response

__all__ = [
    "CONSOLE_ACTION_OUTCOMES",
    "FEED_STATES",
    "LATENCY_BUCKETS",
    "ConsoleMetrics",
    "MetricsServer",
    "WorkerMetrics",
    "exposition",
    "new_registry",
    "parse_address",
    "reason_class",
    "serve_metrics",
]

#: Recommendation latency buckets, seconds: the worker decides in milliseconds; a
#: recommendation slower than a few seconds is an incident in itself.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: Distinct values a label fed from outside may take before the rest become ``other``.
MAX_LABEL_VALUES: Final = 64
OTHER: Final = "other"
#: The console feed's states (:class:`sdo.console.server.FeedHealth`).
FEED_STATES: Final = ("connecting", "catching_up", "live", "lagging", "quiet", "down")
#: Outcomes of a console action: ``ok`` (published) or the error ``code`` of the reply.
CONSOLE_ACTION_OUTCOMES: Final = (
    "ok",
    "forbidden",
    "rate_limited",
    "rejected",
    "unavailable",
    "invalid",
    "confirm",
    "conflict",
)
DEFAULT_HOST: Final = "127.0.0.1"
#: How long :meth:`MetricsServer.close` waits for the server thread.
_CLOSE_TIMEOUT_S: Final = 5.0


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A fresh registry; with ``process``, also the standard process/platform/GC metrics
    (``process_resident_memory_bytes`` is what the sizing guidance is read from)."""
    registry = CollectorRegistry(auto_describe=True)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> str:
    """The text a scrape of ``registry`` returns (for tests and debugging)."""
    return generate_latest(registry).decode("utf-8")


def reason_class(error: BadInput) -> str:
    """The dead-letter reason class of an error: its class name in snake case
    (``InvalidEvent`` → ``invalid_event``, ``Rejected`` → ``rejected``).

    The full reason goes to the dead-letter topic; a label gets only the class, because
    reasons quote ids and would make one time series per bad event.
    """
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


class _BoundedLabel:
    """Folds label values beyond the first ``limit`` distinct ones into ``other``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class WorkerMetrics:
    """The metrics of one ``sdo worker`` process. Create once, pass to the worker's Runtime.

    Every method is cheap (a dict lookup and a locked add) and safe to call per event.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._processed = Counter(
            "sdo_events_processed",
            "Input events decoded and applied, by event type.",
            ["type"],
            registry=registry,
        )
        self._dead = Counter(
            "sdo_dead_letters",
            "Input events sent to the dead-letter topic, by reason class and source topic.",
            ["reason", "topic"],
            registry=registry,
        )
        self._ignored = Counter(
            "sdo_events_ignored",
            "Valid events that changed nothing (duplicate, out of order ...), by reason.",
            ["reason"],
            registry=registry,
        )
        self._published = Counter(
            "sdo_outputs_published",
            "Output events handed to the producer, by type (recommendation, alert).",
            ["type"],
            registry=registry,
        )
        self._latency = Histogram(
            "sdo_recommendation_latency_seconds",
            "From the worker taking an event off its stream to the recommendation it caused "
            "being handed to the producer.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._lag = Gauge(
            "sdo_consumer_lag",
            "Records behind the end of the log, summed over this worker's partitions, by topic.",
            ["topic"],
            registry=registry,
        )
        self._internal = Counter(
            "sdo_internal_errors",
            "Input events whose application raised an unexpected exception (a bug in sdo; "
            "each is logged with its traceback and dead-lettered), by source topic.",
            ["topic"],
            registry=registry,
        )
        self._order_forced = Counter(
            "sdo_order_forced",
            "Input records released before every partition could show it had nothing "
            "older (an input partition unanswered for longer than --order-idle).",
            registry=registry,
        )
        self._partition_lag: dict[tuple[str, int], int] = {}
        self._type = _BoundedLabel()
        self._reason = _BoundedLabel()
        self._topic = _BoundedLabel()

    def processed(self, event_type: str, n: int = 1) -> None:
        """``n`` events of ``event_type`` were applied (including ones then ignored)."""
        self._processed.labels(self._type(event_type)).inc(n)

    def dead(self, error: BadInput | str, topic: str) -> None:
        """One event from ``topic`` went to the dead-letter topic because of ``error``.

        Pass the exception: its class is the label. A plain string counts as ``bad_input``.
        """
        reason = reason_class(error) if isinstance(error, BadInput) else "bad_input"
        self._dead.labels(reason, self._topic(topic)).inc()

    def internal_error(self, topic: str) -> None:
        """Applying one event from ``topic`` raised an unexpected exception (sdo's bug)."""
        self._internal.labels(self._topic(topic)).inc()

    def order_forced(self, n: int) -> None:
        """``n`` input records were released out of certain order (see sdo.stream.ordering)."""
        if n:
            self._order_forced.inc(n)

    def ignored(self, reason: str) -> None:
        """One valid event changed nothing, for ``reason`` (``Effects.ignored``)."""
        self._ignored.labels(self._reason(reason)).inc()

    def published(self, output_type: str, n: int = 1) -> None:
        """``n`` outputs of ``output_type`` (``recommendation``, ``alert``) were sent."""
        self._published.labels(self._type(output_type)).inc(n)

    def latency(self, seconds: float) -> None:
        """One recommendation took ``seconds`` from its event's arrival to being sent."""
        self._latency.observe(max(0.0, seconds))

    def lag(self, topic: str, records: int) -> None:
        """Set the lag of ``topic`` as a whole (when the caller already sums partitions)."""
        self._lag.labels(self._topic(topic)).set(max(0, records))

    def partition_lag(self, topic: str, partition: int, records: int) -> None:
        """Record the lag of one partition; the topic's gauge is the sum over partitions."""
        self._partition_lag[(topic, partition)] = max(0, records)
        self._set_topic(topic)

    def position(self, topic: str, partition: int, offset: int, highwater: int | None) -> None:
        """After processing the record at ``offset``: lag = ``highwater - offset - 1``.

        ``highwater`` is the partition's log end offset as the consumer last saw it
        (Faust: ``app.consumer.highwater(event.message.tp)``); ``None`` (not known yet,
        before the first fetch answer) changes nothing.
        """
        if highwater is not None:
            self.partition_lag(topic, partition, highwater - offset - 1)

    def revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget partitions this worker no longer owns (call on rebalance)."""
        topics = set()
        for tp in partitions:
            if self._partition_lag.pop(tp, None) is not None:
                topics.add(tp[0])
        for topic in topics:
            self._set_topic(topic)

    def _set_topic(self, topic: str) -> None:
        total = sum(n for (t, _), n in self._partition_lag.items() if t == topic)
        self._lag.labels(self._topic(topic)).set(total)


class ConsoleMetrics:
    """The metrics of one ``sdo console`` process.

    Implements :class:`sdo.console.hub.HubObserver` (clients, dropped, overflowed,
    disconnected_slow), so the hub reports to it without importing Prometheus.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._clients = Gauge(
            "sdo_console_connected_clients",
            "Authenticated console websockets currently connected.",
            registry=registry,
        )
        self._drops = Counter(
            "sdo_console_queue_drops",
            "Messages a slow client did not get: dropped from its full queue (it then gets "
            "a fresh snapshot instead).",
            registry=registry,
        )
        self._overflows = Counter(
            "sdo_console_queue_overflows",
            "Times a client's queue was full (each one is followed by a resync).",
            registry=registry,
        )
        self._slow = Counter(
            "sdo_console_slow_disconnects",
            "Clients closed (1013) because they could not keep up.",
            registry=registry,
        )
        self._actions = Counter(
            "sdo_console_actions",
            "SDO actions received, by kind (accept, override, decline) and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self._feed_state = Enum(
            "sdo_console_feed_state",
            "The console's Kafka feed state.",
            states=list(FEED_STATES),
            registry=registry,
        )
        self._feed_lag = Gauge(
            "sdo_console_feed_lag",
            "Records the console's feed is behind the end of its topics.",
            registry=registry,
        )
        self._feed_records = Counter(
            "sdo_console_feed_records",
            "Records read by the console's feed.",
            registry=registry,
        )
        self._feed_invalid = Counter(
            "sdo_console_feed_invalid",
            "Records the console's feed could not decode (the worker dead-letters them).",
            registry=registry,
        )
        self._kind = _BoundedLabel(limit=16)

    # -- sdo.console.hub.HubObserver --------------------------------------------------

    def clients(self, n: int) -> None:
        """``n`` authenticated clients are connected now."""
        self._clients.set(n)

    def dropped(self, n: int) -> None:
        """``n`` messages for a slow client were dropped."""
        self._drops.inc(n)

    def overflowed(self) -> None:
        """A client's queue was full."""
        self._overflows.inc()

    def disconnected_slow(self) -> None:
        """A client was closed for being too slow."""
        self._slow.inc()

    # -- the console server -----------------------------------------------------------

    def action(self, kind: str, outcome: str) -> None:
        """An action of ``kind`` ended with ``outcome`` (``ok`` or an error code)."""
        if outcome not in CONSOLE_ACTION_OUTCOMES:
            outcome = OTHER
        self._actions.labels(self._kind(kind), outcome).inc()

    def feed_state(self, state: str) -> None:
        if state in FEED_STATES:
            self._feed_state.state(state)

    def feed_lag(self, records: int) -> None:
        self._feed_lag.set(max(0, records))

    def feed_records(self, n: int) -> None:
        self._feed_records.inc(n)

    def feed_invalid(self) -> None:
        self._feed_invalid.inc()


# -- the HTTP endpoint -------------------------------------------------------------------


def parse_address(value: str | int) -> tuple[str, int]:
    """``--metrics-port`` value → (host, port): ``PORT`` binds 127.0.0.1, ``HOST:PORT``
    (``[v6]:PORT``) binds HOST. ``0`` picks a free port."""
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--metrics-port {text!r} is not PORT or HOST:PORT")
    return host, int(port)


@dataclass
class MetricsServer:
    """A running metrics endpoint; :meth:`close` stops it (also a context manager)."""

    host: str
    port: int
    _httpd: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        if not self._thread.is_alive():
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(_CLOSE_TIMEOUT_S)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(
    registry: CollectorRegistry, address: str | int, probes: LoopProbes | None = None
) -> MetricsServer:
    """Serve ``registry`` at ``http://ADDRESS/metrics`` from a daemon thread, and with
    ``probes`` the liveness and readiness probes ``/healthz`` and ``/readyz``
    (:mod:`sdo.health`).

    ``address`` is a ``--metrics-port`` value (see :func:`parse_address`). A port that
    cannot be bound is a :class:`~sdo.errors.ConfigError` (one line from the CLI).
    """
    host, port = parse_address(address)
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        answer = probe_response(probes, environ.get("PATH_INFO", ""))
        if answer is None:
            served: list[bytes] = metrics_app(environ, start_response)
            return served
        status, body = answer
        payload = json.dumps(body).encode()
        reason = "OK" if status == 200 else "Service Unavailable"
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        )
        return [payload]

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        httpd = make_server(host, port, app, Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(target=httpd.serve_forever, name="sdo-metrics", daemon=True)
    thread.start()
    return MetricsServer(host, int(httpd.server_port), httpd, thread)


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes and probes come every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:  # the base's name
        pass
