"""sdo.heap: the collector settled once start-up is done."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from sdo import heap


@pytest.fixture
def restored() -> Iterator[None]:
    """Give the test process its collector back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored")
def test_settle_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    """What exists when settled is frozen (out of every collection's scan), and young
    collections come every YOUNG_THRESHOLD allocations, the older generations' as they
    were."""
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    tracked = len(gc.get_objects())
    frozen = heap.settle()
    assert frozen == gc.get_freeze_count() >= tracked // 2
    assert len(gc.get_objects()) < tracked // 2
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored")
def test_settled_collector_still_frees_cycles() -> None:
    """Reference cycles made after settling are still collected."""
    heap.settle()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2
