"""Publish an event log to Kafka (``sdo replay LOG --speed X|max``, issue #5).

Theory of operation
-------------------
:func:`read_log` streams a JSON-lines log (``.gz`` read transparently) and turns each line
into its model with :func:`sdo.events.decode`; an invalid line is reported with its line
number, counted and skipped. :func:`feed` sends models to their CONTRACT §1 topics, keyed
by officer or incident, through one aiokafka producer, in log order.

Per-key order: aiokafka keeps at most one request in flight per broker and mutes a
partition while its batch is in flight (a retried batch goes back to the head of its
queue), so with ``acks=1`` records of one partition are written in the order they were
sent. The embedded broker supports neither idempotence nor several in-flight requests, so
nothing else is needed — and nothing here reorders: events are sent one by one in log
order, and the futures are awaited in batches so a failure surfaces promptly.

Order across partitions: a consumer that applies records in one order across partitions
(:mod:`sdo.order`) releases a record once every other partition has answered a fetch
with nothing older, so it relies on no record reaching the broker before one sent ahead
of it. aiokafka does not promise that: each request takes every partition's first batch
that is full or has lingered ``linger_ms``, so a partition whose batch was opened last
(an incident among thousands of fixes) went a request later than fixes sent after it,
and a worker reading the replay could apply those fixes first (measured on the busy log
of ``tests/integration/test_backlog.py``: 26–38 such steps in 43,446 records). So the
producer does not linger: every request takes every partition's pending batch, and a
send to a partition whose batch is full waits until a request has taken it (aiokafka
keeps one open batch per partition). Each request then holds only records sent after
all of the previous request's.

Pacing: with ``speed`` X, the gap between two events' ``ts`` becomes gap / X of real time
(measured on the loop's monotonic clock from the first event); ``speed=None`` sends as
fast as the broker takes it. The wall clock never influences *what* is sent.

:func:`replay_events` accepts any (async) iterable of models, so ``sdo demo`` can feed the
simulator straight into the broker: ``replay_events(simulate(...), settings, speed=10)``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import signal
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

from isal import igzip, isal_zlib

from sdo.config import SEQ_HEADER, Settings, Topics
from sdo.errors import BrokerError, ConfigError, InvalidEvent
from sdo.events import Fix, decode_line, encode, kafka_key
from sdo.progress import REFRESH_S, LineReporter, ProgressLine, eta_text

__all__ = [
    "LogReader",
    "ReplayStats",
    "feed",
    "key_of",
    "pace_s",
    "parse_speed",
    "replay",
    "replay_events",
]

#: Bytes read (decompressed) at a time; lines are split from these blocks.
READ_BLOCK: Final = 1 << 20
#: What reading a damaged log raises (isal's stub types its error as an instance).
_READ_ERRORS: Final = (OSError, EOFError, cast("type[Exception]", isal_zlib.error))
#: Futures awaited together: big enough to keep the pipe full, small enough to fail fast.
SEND_BATCH: Final = 2000
#: Bound on connecting to the broker and creating the topics.
CONNECT_TIMEOUT_S: Final = 15.0

Progress = Callable[["ReplayStats", "float | None"], None]


@dataclass(slots=True)
class ReplayStats:
    """What a replay did. ``sent`` counts events the broker acknowledged."""

    sent: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Events sent per second of wall time."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def key_of(event: Any) -> bytes | None:
    """The Kafka key of an event (CONTRACT §1: :func:`sdo.events.kafka_key`)."""
    return kafka_key(event)


def parse_speed(text: str) -> float | None:
    """``"max"`` -> ``None`` (no pacing); ``"60"`` -> 60.0 (60x real time)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ConfigError(f"--speed {text!r} is not a number or 'max'") from None
    if not speed > 0 or speed == float("inf"):
        raise ConfigError(f"--speed {text!r} must be a positive number or 'max'")
    return speed


# -- reading ------------------------------------------------------------------------------


class LogReader:
    """The valid events of a JSON-lines log, streamed; invalid lines go to ``on_invalid``.

    ``fraction`` is how far through the (possibly compressed) file reading has got, for
    progress and ETA. Blank lines are ignored.
    """

    def __init__(self, path: Path, on_invalid: Callable[[int, str], None] | None = None) -> None:
        self.path = path
        self.on_invalid = on_invalid
        self.skipped = 0
        self.lines = 0
        try:
            self._raw: io.BufferedIOBase = path.open("rb")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a directory, not an event log") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        self._size = max(1, path.stat().st_size)
        gz = self._raw.read(2) == b"\x1f\x8b"
        self._raw.seek(0)
        # (ISA-L's inflate: the same bytes as the gzip module's in under a third of the
        # time, measured 1.5 s against 5.0 s on the bench's week log)
        self._lines: io.BufferedIOBase = (
            igzip.IGzipFile(fileobj=self._raw, mode="rb")  # type: ignore[no-untyped-call]
            if gz
            else self._raw
        )

    @property
    def fraction(self) -> float:
        try:
            return min(1.0, self._raw.tell() / self._size)
        except (OSError, ValueError):
            return 1.0

    def close(self) -> None:
        self._lines.close()
        self._raw.close()

    def __iter__(self) -> Iterator[Any]:
        """The models, in log order."""
        for item in self.items():
            yield item.model() if type(item) is Fix else item

    def items(self) -> Iterator[Any]:
        """The models, in log order, with plain AVL fixes as :class:`~sdo.events.Fix`
        (see :func:`~sdo.events.decode_line`): the evaluator's fast path."""
        for lineno, line in self._numbered():
            item = self.decode(lineno, line)
            if item is not None:
                yield item

    def decode(self, lineno: int, line: bytes) -> Any:
        """:func:`~sdo.events.decode_line` of line ``lineno``; None (counted in ``skipped``
        and reported) if it is invalid, or blank."""
        self.lines = lineno
        if not line or line.isspace():
            return None
        try:
            return decode_line(line)
        except InvalidEvent as exc:
            self.skipped += 1
            if self.on_invalid is not None:
                self.on_invalid(lineno, exc.reason)
            return None

    def _numbered(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line without its newline) of every non-blank line."""
        lineno = 0
        for block in self.blocks():
            lines = block.split(b"\n")
            lines.pop()  # after the last newline
            for line in lines:
                lineno += 1
                if line and not line.isspace():
                    yield lineno, line

    def blocks(self) -> Iterator[bytes]:
        """The log as blocks of whole lines, each ending with a newline (one is added to a
        last line without), read a block at a time: iterating the file line by line costs
        more than decoding a fix. Line numbers count every line, blank ones too."""
        tail: list[bytes] = []  # the start of a line whose end is not read yet
        read = 0  # whole lines read (for the message of a file cut short)
        try:
            while block := self._lines.read(READ_BLOCK):
                cut = block.rfind(b"\n") + 1
                if not cut:
                    tail.append(block)
                    continue
                read += block.count(b"\n", 0, cut)
                if tail:
                    tail.append(block[:cut])
                    yield b"".join(tail)
                    tail = []
                else:
                    yield block if cut == len(block) else block[:cut]
                if cut < len(block):
                    tail.append(block[cut:])
        except _READ_ERRORS as exc:
            raise ConfigError(
                f"{self.path}: after line {max(self.lines, read):,}: cannot read: {exc}"
            ) from None
        if tail:
            yield b"".join(tail) + b"\n"


def read_log(path: Path, on_invalid: Callable[[int, str], None] | None = None) -> LogReader:
    """Open ``path`` for :class:`LogReader` iteration (a missing file raises ConfigError)."""
    return LogReader(path, on_invalid)


# -- sending ------------------------------------------------------------------------------


async def _aiter(events: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(events, AsyncIterable):
        async for event in events:
            yield event
    else:
        for event in events:
            yield event


async def _drain(pending: list[Any], stats: ReplayStats) -> None:
    if not pending:
        return
    from aiokafka.errors import KafkaError  # noqa: PLC0415  (aiokafka only when sending)

    try:
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise BrokerError(f"the broker did not take an event: {exc}") from exc
    stats.sent += len(pending)
    pending.clear()


def pace_s(first: datetime, ts: datetime, speed: float) -> float:
    """When an event stamped ``ts`` is due, in seconds after the first event (stamped
    ``first``) was sent, at ``speed`` times real time: the event time between them / speed."""
    return (ts - first).total_seconds() / speed


async def feed(
    events: Iterable[Any] | AsyncIterable[Any],
    producer: Any,
    topics: Topics,
    *,
    speed: float | None,
    stats: ReplayStats | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[ReplayStats], None] | None = None,
) -> ReplayStats:
    """Send ``events`` (models) through a started aiokafka ``producer``, in order.

    The producer is made as :func:`_start_producer` makes it (no linger): then records
    reach the broker in the order sent, across partitions too (module docstring). Paced
    by ``speed``. Returns when the events run out or ``stop`` is set, with every sent
    event acknowledged. ``progress(stats)`` is called at most every
    :data:`sdo.progress.REFRESH_S`.
    """
    stats = stats if stats is not None else ReplayStats()
    loop = asyncio.get_running_loop()
    began = loop.time()
    next_tick = began + REFRESH_S
    origin: tuple[Any, float] | None = None
    pending: list[Any] = []
    topic_of: dict[str, str] = {}
    try:
        async for event in _aiter(events):
            if stop is not None and stop.is_set():
                stats.interrupted = True
                break
            if speed is not None:
                if origin is None:
                    origin = (event.ts, loop.time())
                due = origin[1] + pace_s(origin[0], event.ts, speed)
                if due > loop.time():
                    await _drain(pending, stats)
                    if await _sleep_until(loop, due, stop):
                        stats.interrupted = True
                        break
            kind = event.type
            topic = topic_of.get(kind) or topic_of.setdefault(kind, topics.for_type(kind))
            stats_seq = stats.sent + len(pending)
            pending.append(
                await producer.send(
                    topic,
                    encode(event),
                    key=key_of(event),
                    # record time = event time, and the log position for ties: the
                    # worker applies a fetched batch in this order (sdo.stream.ordering)
                    timestamp_ms=int(event.ts.timestamp() * 1000),
                    headers=[(SEQ_HEADER, str(stats_seq).encode())],
                )
            )
            if len(pending) >= SEND_BATCH:
                await _drain(pending, stats)
            if progress is not None and loop.time() >= next_tick:
                stats.seconds = loop.time() - began
                progress(stats)
                next_tick = loop.time() + REFRESH_S
        # At the end or on a stop: everything handed to the producer is acknowledged.
        await _drain(pending, stats)
    finally:
        stats.seconds = loop.time() - began
    return stats


async def _sleep_until(
    loop: asyncio.AbstractEventLoop, due: float, stop: asyncio.Event | None
) -> bool:
    """Wait until loop time ``due``; ``True`` if ``stop`` was set meanwhile."""
    delay = due - loop.time()
    if stop is None:
        await asyncio.sleep(delay)
        return False
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        return False
    return True


async def _start_producer(settings: Settings) -> Any:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415  (heavy; only when sending)
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from sdo.broker import ensure_topics, start_client, tls_problem, topic_specs  # noqa: PLC0415

    bootstrap = settings.bootstrap
    producer = AIOKafkaProducer(
        **settings.client_options(),
        acks=1,
        linger_ms=0,  # every request takes every pending batch (module docstring)
        max_batch_size=512 * 1024,
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
    )
    try:
        await start_client(producer.start, producer.stop, timeout=CONNECT_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError) as exc:
        why = await tls_problem(settings) or exc
        raise BrokerError(f"cannot reach the broker at {bootstrap}: {why}") from exc
    try:
        await ensure_topics(
            bootstrap,
            topic_specs(settings.topics),
            timeout=CONNECT_TIMEOUT_S,
            security=settings.kafka.client_options(),
        )
    except BaseException:
        await producer.stop()
        raise
    return producer


async def replay_events(
    events: Iterable[Any] | AsyncIterable[Any],
    settings: Settings,
    *,
    speed: float | None,
    progress: Callable[[ReplayStats], None] | None = None,
    stop: asyncio.Event | None = None,
    stats: ReplayStats | None = None,
) -> ReplayStats:
    """Create the topics if needed, connect, :func:`feed` ``events``, disconnect.

    Raises :class:`~sdo.errors.BrokerError` if the broker cannot be reached.
    """
    producer = await _start_producer(settings)
    try:
        return await feed(
            events, producer, settings.topics, speed=speed, stats=stats, stop=stop,
            progress=progress,
        )  # fmt: skip
    finally:
        await producer.stop()


async def replay(
    path: Path,
    settings: Settings,
    *,
    speed: float | None,
    progress: Progress | None = None,
    on_invalid: Callable[[int, str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> ReplayStats:
    """Replay the log at ``path`` (see the module docstring).

    ``on_invalid(lineno, reason)`` hears of each invalid line (default: one line on
    stderr for the first :data:`sdo.progress.MAX_REPORTED`). ``progress(stats,
    fraction)`` is called at most twice a second with how far through the file the
    replay is.
    """
    reader = LogReader(
        path, on_invalid if on_invalid is not None else LineReporter("sdo replay", path)
    )
    stats = ReplayStats()

    def tick(s: ReplayStats) -> None:
        s.skipped = reader.skipped
        if progress is not None:
            progress(s, reader.fraction)

    try:
        await replay_events(reader, settings, speed=speed, progress=tick, stop=stop, stats=stats)
    finally:
        stats.skipped = reader.skipped
        reader.close()
    return stats


# -- the command --------------------------------------------------------------------------


def _progress_text(stats: ReplayStats, fraction: float | None) -> str:
    eta = eta_text(stats.seconds, fraction)
    pct = f" ({fraction:.0%})" if fraction is not None else ""
    text = f"sdo replay: {stats.sent} sent{pct}, {stats.rate:,.0f}/s{eta}"
    if stats.skipped:
        text += f", {stats.skipped} skipped"
    return text


async def _run(args: argparse.Namespace, speed: float | None) -> ReplayStats:
    from sdo.cli import settings_from  # noqa: PLC0415  (cli imports this module lazily)

    settings = settings_from(args)
    line = ProgressLine(sys.stderr)
    reporter = LineReporter("sdo replay", args.log, line)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
        handled = False
    try:
        return await replay(
            args.log,
            settings,
            speed=speed,
            progress=lambda stats, fraction: line.show(_progress_text(stats, fraction)),
            on_invalid=reporter,
            stop=stop,
        )
    finally:
        line.clear()
        if handled:
            loop.remove_signal_handler(signal.SIGINT)


def cli(args: argparse.Namespace) -> int:
    """``sdo replay LOG``: exit 0, 130 when interrupted; errors via :mod:`sdo.cli`."""
    speed = parse_speed(str(args.speed))
    # aiokafka logs each failed connection attempt; the command reports one line itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    stats = asyncio.run(_run(args, speed))
    summary = (
        f"{stats.sent} events sent, {stats.skipped} skipped, in {stats.seconds:.1f}s "
        f"({stats.rate:,.0f} events/s)"
    )
    if stats.interrupted:
        print(f"sdo replay: interrupted: {summary}", file=sys.stderr)  # noqa: T201
        return 130
    print(f"sdo replay: {summary}", file=sys.stderr)  # noqa: T201  (the summary line)
    return 0
