"""Small helpers for talking to the embedded broker from tests (real aiokafka clients)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from pydantic import BaseModel

from sdo.config import Topics
from sdo.events import encode

#: How long a test waits for something the worker should do within a second or two.
EVENT_TIMEOUT_S = 30.0


def key_of(event: BaseModel) -> bytes:
    """The Kafka key of an input event (CONTRACT §1)."""
    for name in ("officer_id", "incident_id"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            return value.encode()
    raise AssertionError(f"no key field on {event!r}")


async def produce(bootstrap: str, topics: Topics, events: Iterable[BaseModel]) -> None:
    """Publish contract events to their topics, in order, and wait for the acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            topic = topics.for_type(event.type)  # type: ignore[attr-defined]
            # record time = ts, as producers of sdo's events do (the order consumers read)
            stamp = int(event.ts.timestamp() * 1000)  # type: ignore[attr-defined]
            await producer.send_and_wait(
                topic, key=key_of(event), value=encode(event), timestamp_ms=stamp
            )
    finally:
        await producer.stop()


async def produce_raw(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


class Collector:
    """Reads topics from the beginning and keeps every record, for condition waits."""

    def __init__(self, bootstrap: str, *topics: str, **security: Any) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **security,  # (KafkaAuth.client_options(): TLS, SASL)
        )
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def __aenter__(self) -> Collector:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    def values(self, topic: str) -> list[Any]:
        """JSON values seen on ``topic`` so far, in arrival order."""
        return [
            orjson.loads(r.value) for r in self.records if r.topic == topic and r.value is not None
        ]

    async def wait_for(
        self,
        condition: Callable[[Collector], Any],
        what: str = "",
        limit_s: float = EVENT_TIMEOUT_S,
    ) -> Any:
        """Poll until ``condition(self)`` is truthy; fail naming ``what`` after ``limit_s``."""
        timeout = limit_s
        deadline = time.monotonic() + timeout
        while True:
            result = condition(self)
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what or condition}"
                )
            batch = await self._consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batch.values():
                self.records.extend(records)
            await asyncio.sleep(0)
