"""Fidelity (issue 5): a log replayed through Kafka into a live worker gets exactly the
recommendations ``sdo evaluate`` computes offline for the same log.

The log is published with ``sdo replay`` first and the worker then consumes it, as a
worker does after a restart or a backlog: the event-time scheduler hands it the events in
log order, so the live World and the offline World see the same sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from sdo.broker import EmbeddedBroker
from sdo.cli import main
from sdo.config import Settings
from sdo.evaluation.replay import replay

from .conftest import WorkerProcess
from .kafka import Collector

pytestmark = pytest.mark.integration


def _by_incident(
    lines: list[bytes],
) -> dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]]:
    out: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {}
    for line in lines:
        rec = orjson.loads(line)
        out.setdefault(rec["incident_id"], []).append(
            (
                rec["ts"],
                tuple(rec["recommended"]),
                tuple(c["officer_id"] for c in rec["candidates"]),
            )
        )
    return out


async def test_live_recommendations_equal_offline_evaluation(
    tmp_path: Path,
    broker: EmbeddedBroker,
    topic_prefix: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Same incidents, and for each the same sequence of recommendations: same event time,
    same recommended officers, same ranked candidates."""
    log = tmp_path / "pilot.jsonl"
    common = ["--seed", "5", "--officers", "60", "--start", "2015-12-01T16:00:00Z"]
    assert main(["simulate", "--hours", "1", *common, "--out", str(log)]) == 0
    # open loop: the live worker applies the log's own deployments, as the replay sends them
    offline_args = ["--policy", "thrive", "--open-loop", "--out", str(tmp_path / "eval")]
    assert main(["evaluate", str(log), *offline_args]) == 0
    offline_lines = (tmp_path / "eval" / "recommendations.jsonl").read_bytes().splitlines()
    offline = _by_incident(offline_lines)
    assert len(offline) >= 10, "the simulated hour should hold a fair number of incidents"

    stats = await replay(log, Settings(broker=broker.url, topic_prefix=topic_prefix), speed=None)
    assert stats.sent == sum(1 for line in log.read_bytes().splitlines() if line.strip())
    worker = start_worker()
    async with Collector(broker.bootstrap, worker.topics.recommendation) as c:
        await c.wait_for(
            lambda c: len(c.values(worker.topics.recommendation)) >= len(offline_lines),
            what=f"{len(offline_lines)} live recommendations",
        )
        live_lines = [r.value for r in c.records if r.value is not None]
    live = _by_incident(live_lines)
    assert sorted(live) == sorted(offline)
    for incident_id, expected in offline.items():
        assert live[incident_id] == expected, incident_id
    assert len(live_lines) == len(offline_lines)
