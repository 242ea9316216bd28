"""Test helpers shared by the console's tests: events into Kafka, deployments back out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sdo.config import Topics
from sdo.evaluation.replay import key_of
from sdo.events import encode


async def produce(bootstrap: str, topics: Topics, events: Iterable[Any]) -> None:
    """Send events to their topics in order, keyed as CONTRACT §1 says."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                topics.for_type(event.type), key=key_of(event), value=encode(event)
            )
    finally:
        await producer.stop()


async def read_deployments(
    consumer: AIOKafkaConsumer, timeout_s: float, until: str | None = None
) -> list[dict[str, Any]]:
    """The deployment events ``consumer`` reads, once there is one (within ``timeout_s``);
    with ``until``, every one read up to one for that incident (any sent before it is
    among them: one broker, each fetch takes what every partition holds)."""
    deployments: list[dict[str, Any]] = []

    def done() -> bool:
        if until is None:
            return bool(deployments)
        return any(d["incident_id"] == until for d in deployments)

    async def read() -> None:
        while not done():
            batch = await consumer.getmany(timeout_ms=200)
            deployments.extend(orjson.loads(r.value) for rs in batch.values() for r in rs)

    await asyncio.wait_for(read(), timeout_s)
    return deployments
