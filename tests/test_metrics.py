"""``sdo.metrics``: what the worker and console count, and the /metrics endpoint."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sdo.cli import build_parser
from sdo.console.hub import Hub
from sdo.errors import BadInput, ConfigError, InvalidEvent, Rejected
from sdo.metrics import (
    MAX_LABEL_VALUES,
    ConsoleMetrics,
    WorkerMetrics,
    exposition,
    new_registry,
    parse_address,
    reason_class,
    serve_metrics,
)

#: A scrape of a local endpoint answers well within this.
SCRAPE_TIMEOUT_S = 5.0

WORKER_NAMES = (
    "sdo_events_processed_total",
    "sdo_dead_letters_total",
    "sdo_events_ignored_total",
    "sdo_outputs_published_total",
    "sdo_recommendation_latency_seconds_bucket",
    "sdo_recommendation_latency_seconds_count",
    "sdo_consumer_lag",
)
CONSOLE_NAMES = (
    "sdo_console_connected_clients",
    "sdo_console_queue_drops_total",
    "sdo_console_queue_overflows_total",
    "sdo_console_slow_disconnects_total",
    "sdo_console_actions_total",
    "sdo_console_feed_state",
    "sdo_console_feed_lag",
    "sdo_console_feed_records_total",
    "sdo_console_feed_invalid_total",
)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


class Sink:
    """A websocket stand-in that takes every message."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, message: bytes, *, text: bool | None = None) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        pass


# -- worker ---------------------------------------------------------------------------------


def test_worker_counts_events_by_type_reason_and_topic() -> None:
    """Processed by type, dead letters by reason class and topic, ignored by reason."""
    reg = new_registry(process=False)
    m = WorkerMetrics(reg)
    m.processed("incident")
    m.processed("incident")
    m.processed("officer.location", 5)
    m.dead(InvalidEvent("malformed JSON: x"), "sdo.incident")
    m.dead(Rejected("deployment for unknown incident I9"), "sdo.deployment")
    m.dead("some text", "sdo.incident")
    m.ignored("duplicate")
    m.published("recommendation", 2)
    assert value(reg, "sdo_events_processed_total", type="incident") == 2
    assert value(reg, "sdo_events_processed_total", type="officer.location") == 5
    assert value(reg, "sdo_dead_letters_total", reason="invalid_event", topic="sdo.incident") == 1
    assert value(reg, "sdo_dead_letters_total", reason="rejected", topic="sdo.deployment") == 1
    assert value(reg, "sdo_dead_letters_total", reason="bad_input", topic="sdo.incident") == 1
    assert value(reg, "sdo_events_ignored_total", reason="duplicate") == 1
    assert value(reg, "sdo_outputs_published_total", type="recommendation") == 2


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidEvent("x"), "invalid_event"),
        (Rejected("incident I1 is closed"), "rejected"),
        (BadInput("x"), "bad_input"),
        (ConfigError("x"), "config_error"),
    ],
)
def test_reason_class_is_the_error_class_not_the_message(error: BadInput, expected: str) -> None:
    """Reasons quote ids; the label is the class, so it cannot grow with the data."""
    assert reason_class(error) == expected


def test_latency_histogram_observes_seconds() -> None:
    reg = new_registry(process=False)
    m = WorkerMetrics(reg)
    for seconds in (0.002, 0.02, 0.2, -1.0):
        m.latency(seconds)
    name = "sdo_recommendation_latency_seconds"
    assert value(reg, f"{name}_count") == 4
    assert value(reg, f"{name}_sum") == pytest.approx(0.222)
    assert value(reg, f"{name}_bucket", le="0.005") == 2  # -1 is clamped to 0
    assert value(reg, f"{name}_bucket", le="+Inf") == 4


def test_lag_is_summed_over_owned_partitions_and_forgotten_on_revoke() -> None:
    """Per-partition lag adds up per topic; a revoked partition no longer counts."""
    reg = new_registry(process=False)
    m = WorkerMetrics(reg)
    m.partition_lag("sdo.incident", 0, 10)
    m.partition_lag("sdo.incident", 1, 5)
    m.position("sdo.officer.location", 0, offset=99, highwater=150)  # 50 after this one
    m.position("sdo.officer.location", 0, offset=120, highwater=None)  # not known: no change
    assert value(reg, "sdo_consumer_lag", topic="sdo.incident") == 15
    assert value(reg, "sdo_consumer_lag", topic="sdo.officer.location") == 50
    m.revoked([("sdo.incident", 1), ("sdo.status", 3)])
    assert value(reg, "sdo_consumer_lag", topic="sdo.incident") == 10
    m.lag("sdo.alert", -3)
    assert value(reg, "sdo_consumer_lag", topic="sdo.alert") == 0


def test_label_values_from_outside_are_bounded() -> None:
    """Past MAX_LABEL_VALUES distinct values, the rest are counted as `other`."""
    reg = new_registry(process=False)
    m = WorkerMetrics(reg)
    for i in range(MAX_LABEL_VALUES + 10):
        m.ignored(f"why-{i}")
    assert value(reg, "sdo_events_ignored_total", reason="other") == 10
    assert value(reg, "sdo_events_ignored_total", reason="why-0") == 1


def test_registries_are_independent() -> None:
    """No global state: two processes' worth of metrics in one interpreter do not mix."""
    a, b = new_registry(process=False), new_registry(process=False)
    WorkerMetrics(a).processed("incident")
    WorkerMetrics(b)
    assert value(a, "sdo_events_processed_total", type="incident") == 1
    assert value(b, "sdo_events_processed_total", type="incident") is None


def test_exposition_names_every_metric() -> None:
    """The scrape text carries every documented metric name, and process metrics."""
    reg = new_registry()
    worker = WorkerMetrics(reg)
    worker.processed("incident")
    worker.dead(InvalidEvent("x"), "sdo.incident")
    worker.ignored("duplicate")
    worker.published("alert")
    worker.latency(0.01)
    worker.lag("sdo.incident", 3)
    console = ConsoleMetrics(reg)
    console.action("accept", "ok")
    text = exposition(reg)
    for name in (*WORKER_NAMES, *CONSOLE_NAMES, "process_resident_memory_bytes"):
        assert f"\n{name}" in text or text.startswith(name), name


# -- console --------------------------------------------------------------------------------


def test_console_actions_by_kind_and_outcome() -> None:
    reg = new_registry(process=False)
    m = ConsoleMetrics(reg)
    m.action("accept", "ok")
    m.action("decline", "forbidden")
    m.action("override", "something new")
    assert value(reg, "sdo_console_actions_total", kind="accept", outcome="ok") == 1
    assert value(reg, "sdo_console_actions_total", kind="decline", outcome="forbidden") == 1
    assert value(reg, "sdo_console_actions_total", kind="override", outcome="other") == 1


def test_console_feed_state_is_one_of_the_known_states() -> None:
    reg = new_registry(process=False)
    m = ConsoleMetrics(reg)
    m.feed_state("live")
    m.feed_state("nonsense")  # ignored
    assert value(reg, "sdo_console_feed_state", sdo_console_feed_state="live") == 1
    assert value(reg, "sdo_console_feed_state", sdo_console_feed_state="down") == 0
    m.feed_lag(42)
    m.feed_records(3)
    m.feed_invalid()
    assert value(reg, "sdo_console_feed_lag") == 42
    assert value(reg, "sdo_console_feed_records_total") == 3
    assert value(reg, "sdo_console_feed_invalid_total") == 1


async def test_hub_reports_clients_and_drops() -> None:
    """The hub tells its observer how many clients are connected and what it dropped."""
    reg = new_registry(process=False)
    hub = Hub(queue_size=2, observer=ConsoleMetrics(reg))
    client = hub.register(Sink(), name="a", initial=[], resync=list)
    assert value(reg, "sdo_console_connected_clients") == 1
    # no sender task runs, so the queue fills: 2 queued, the 3rd overflows (3 dropped),
    # the 4th arrives while a resync is pending (1 more dropped)
    hub.broadcast([{"type": "x", "n": i} for i in range(4)])
    assert value(reg, "sdo_console_queue_overflows_total") == 1
    assert value(reg, "sdo_console_queue_drops_total") == 4
    hub.unregister(client)
    assert value(reg, "sdo_console_connected_clients") == 0


async def test_hub_counts_slow_disconnects() -> None:
    reg = new_registry(process=False)
    now = [0.0]
    hub = Hub(queue_size=1, slow_limit=1.0, clock=lambda: now[0], observer=ConsoleMetrics(reg))
    hub.register(Sink(), name="slow", initial=[], resync=list)
    hub.broadcast([{"type": "x"}, {"type": "y"}])
    now[0] = 5.0
    hub.broadcast([{"type": "z"}])
    assert value(reg, "sdo_console_slow_disconnects_total") == 1
    assert value(reg, "sdo_console_connected_clients") == 0


# -- the endpoint -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("9100", ("127.0.0.1", 9100)),
        (0, ("127.0.0.1", 0)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:9100", ("::1", 9100)),
    ],
)
def test_parse_address(given: Any, expected: tuple[str, int]) -> None:
    """A bare port binds loopback; HOST:PORT binds HOST."""
    assert parse_address(given) == expected


@pytest.mark.parametrize("bad", ["", "x", "host:", "1:2:x", "70000"])
def test_parse_address_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ConfigError, match="--metrics-port"):
        parse_address(bad)


def test_endpoint_serves_the_registry_on_loopback() -> None:
    """serve_metrics binds 127.0.0.1 on a free port, answers a scrape, then lets go."""
    reg = new_registry(process=False)
    WorkerMetrics(reg).processed("incident")
    with serve_metrics(reg, 0) as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=SCRAPE_TIMEOUT_S) as response:
            body = response.read().decode()
        assert 'sdo_events_processed_total{type="incident"} 1.0' in body
    server.close()  # twice is fine
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", server.port), timeout=SCRAPE_TIMEOUT_S).close()


def test_endpoint_on_a_taken_port_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot serve metrics"):
            serve_metrics(new_registry(process=False), port)


@pytest.mark.parametrize(
    "argv",
    [
        ["worker", "--metrics-port", "9100", "--log-format", "json"],
        ["console", "--metrics-port", "0.0.0.0:9100", "--log-format", "text"],
        ["demo", "--log-format", "json"],
    ],
)
def test_cli_has_the_observability_flags(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.log_format in {"text", "json"}
    assert getattr(args, "metrics_port", None) == (argv[2] if argv[1] == "--metrics-port" else None)
