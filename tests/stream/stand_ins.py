"""Plain stand-ins for the Kafka parts the worker's runtime reads (its tests pass these
where a real consumer or Faust topic would be; a real broker: ``tests/integration``)."""

from __future__ import annotations

from typing import Any, NamedTuple


class TP(NamedTuple):
    """A topic partition, as aiokafka's: hashable, with ``topic`` and ``partition``."""

    topic: str
    partition: int


class Record(NamedTuple):
    """The fields of an aiokafka ConsumerRecord the worker reads."""

    key: bytes | None
    value: bytes | None
    offset: int
    timestamp: int
    headers: tuple[tuple[str, bytes], ...]


class Recorder:
    """An output topic that records what is sent (the shape of a Faust topic's ``send``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None = None, value: bytes, **_: Any) -> None:
        self.sent.append((key, value))
