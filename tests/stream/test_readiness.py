"""The worker's readiness (``Runtime.problems``, served as ``/readyz``): a crashed agent and
a stalled one are reported, as the issue asks; the broker-facing checks are exercised
against a real broker by ``tests/integration/test_health.py``."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from sdo.stream.app import STALLED_S, Runtime

TP = ("sdo.officer.location", 0)


def runtime(highwater: dict[Any, int]) -> Runtime:
    app = SimpleNamespace(
        should_stop=False, rebalancing=False, consumer=SimpleNamespace(highwater=highwater.get)
    )
    rt = Runtime(
        world=None,  # type: ignore[arg-type]  # problems() does not read the World
        app=app,  # type: ignore[arg-type]
        officers={},
        incidents={},
        availability={},
        outputs={},
    )
    rt.ready.set()
    rt.ready_at = time.monotonic()
    return rt


def test_a_worker_whose_input_failed_is_not_ready_until_it_applies_again() -> None:
    """Until it has applied a record since applying its input raised, the probe names
    the failure and why."""
    rt = runtime({TP: 1})
    rt.handled_at = time.monotonic() - 5
    rt.crashed = ("KafkaTimeoutError: no broker", time.monotonic() - 1)
    assert any("input failed" in p and "KafkaTimeoutError" in p for p in rt.problems())
    rt.handled_at = time.monotonic()
    assert not any("crashed" in p for p in rt.problems())


def test_records_waiting_and_none_applied_for_long_is_stalled() -> None:
    """Records on the broker past the last one applied, and none applied for longer than
    the stall bound: not ready; caught up, or applying, it is."""
    rt = runtime({TP: 101})
    rt.positions[TP] = 40  # 60 records wait
    rt.handled_at = time.monotonic() - STALLED_S - 1
    stalled = [p for p in rt.problems() if p.startswith("stalled")]
    assert stalled and "60 input record(s)" in stalled[0], rt.problems()
    rt.handled_at = time.monotonic()
    assert not any(p.startswith("stalled") for p in rt.problems())
    rt.positions[TP] = 100  # caught up: quiet is not stalled
    rt.handled_at = time.monotonic() - 10 * STALLED_S
    assert not any(p.startswith("stalled") for p in rt.problems())


def test_a_worker_that_has_applied_nothing_while_records_wait_is_stalled() -> None:
    """Records wait on partitions none of whose records were applied yet (the consumer's
    count: ``Runtime.unapplied``): a worker that applied nothing at all for longer than
    the stall bound since it was ready is stalled (before, only partitions it had applied
    records of counted, so it looked idle)."""
    rt = runtime({})
    rt.ready_at = time.monotonic() - STALLED_S - 1
    rt.unapplied = lambda applied: 0
    assert not any(p.startswith("stalled") for p in rt.problems())
    rt.unapplied = lambda applied: 25 if TP not in applied else 0
    stalled = [p for p in rt.problems() if p.startswith("stalled")]
    assert stalled and "25 input record(s)" in stalled[0], rt.problems()
    rt.handled_at = time.monotonic()  # applying
    assert not any(p.startswith("stalled") for p in rt.problems())
