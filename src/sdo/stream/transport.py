"""Faust's Kafka consumer, with a fetch wait we choose.

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. A Kafka broker answers a
fetch as soon as data arrives, but the embedded broker (Tansu) answers only when the wait
expires, so every hop through it would cost up to 1.5 s of latency. The worker's consumer
therefore waits at most :data:`FETCH_WAIT_MS`; on Apache Kafka the shorter wait only means
more, cheap, empty fetches while idle.

Installed on the app's own transport instance (not globally): :func:`use_short_fetch`.
"""

from __future__ import annotations

from typing import Any, Final

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

__all__ = ["FETCH_WAIT_MS", "use_short_fetch"]

#: Longest a fetch waits for data, ms (a hop's worst-case delay on the embedded broker).
FETCH_WAIT_MS: Final = 20


class _ShortFetchThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its fetcher
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


class _ShortFetchConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortFetchThread(self, loop=self.loop, beacon=self.beacon)


def use_short_fetch(app: faust.App) -> None:
    """Make ``app``'s consumer use :data:`FETCH_WAIT_MS` (before the worker starts)."""
    app.transport.Consumer = _ShortFetchConsumer  # type: ignore[misc]  # this instance only
