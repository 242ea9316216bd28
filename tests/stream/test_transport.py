"""The worker's consumer commits no further than ``hold(tp)`` and loses no acked offset.

Faust's own offset bookkeeping (``Consumer._new_offset``) runs here unchanged on a consumer
instance without a connection; only its acked-offset state is set up by hand.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import faust
from faust.types import TP
from intervaltree import IntervalTree

from sdo.stream.transport import install_consumer

PART = TP("sdo.officer.location", 0)


def consumer(holds: dict[Any, int], **options: Any) -> Any:
    """The worker's consumer class (``install_consumer(app, hold=..., **options)``), on an
    instance without a connection: only its acked-offset state is set up."""
    app = faust.App("sdo-test-hold", broker="kafka://127.0.0.1:9", autodiscover=False)
    install_consumer(app, hold=holds.get, **options)
    c = object.__new__(app.transport.Consumer)
    c._acked = defaultdict(list)
    c._acked_index = defaultdict(set)
    c._gap = defaultdict(IntervalTree)
    c._committed_offset = defaultdict(lambda: None)
    return c


def ack(c: Any, *offsets: int) -> None:
    c._acked[PART].extend(offsets)
    c._acked_index[PART].update(offsets)


def test_commit_stops_at_the_hold_and_resumes_past_it() -> None:
    holds: dict[Any, int] = {}
    c = consumer(holds)
    ack(c, *range(10))
    holds[PART] = 4
    assert c._new_offset(PART) == 4  # offsets 4.. are read again after a crash
    assert c._acked[PART] == list(range(4, 10))  # and not forgotten
    c._committed_offset[PART] = 4

    ack(c, 10, 11)
    assert c._new_offset(PART) is None  # still held at 4: nothing new to commit
    assert c._acked[PART] == list(range(4, 12))

    del holds[PART]  # written
    assert c._new_offset(PART) == 12
    assert c._acked[PART] == []


def test_without_a_hold_faust_decides() -> None:
    c = consumer({})
    ack(c, 0, 1, 2, 5, 6)  # a gap at 3
    assert c._new_offset(PART) == 3
    assert c._acked[PART] == [5, 6]


async def _never(records: Any) -> None:
    raise AssertionError  # (no batch is taken here)


def batch_consumer(applied: dict[Any, int], holds: dict[Any, int]) -> Any:
    """The worker's consumer: records of its input topics are applied in batches (no
    Faust message, no acknowledgement), so what a commit covers is what was applied."""
    return consumer(holds, ordered={PART.topic}, take=_never, position=applied.get)


def test_a_commit_covers_what_was_applied_but_for_the_hold() -> None:
    applied: dict[Any, int] = {}
    holds: dict[Any, int] = {}
    c = batch_consumer(applied, holds)
    assert c._new_offset(PART) is None  # nothing applied since it was assigned
    applied[PART] = 10  # records 0..9 applied
    holds[PART] = 4  # a deployment at 4 waits for its incident
    assert c._new_offset(PART) == 4
    c._committed_offset[PART] = 4
    assert c._new_offset(PART) is None  # still held: nothing new
    del holds[PART]
    assert c._new_offset(PART) == 10
    c._committed_offset[PART] = 10
    assert c._new_offset(PART) is None
    # another topic's records (a changelog) are Faust's to acknowledge
    other = TP("sdo-worker-officers-changelog", 0)
    c._acked[other].extend([0, 1, 2])
    c._acked_index[other].update([0, 1, 2])
    assert c._new_offset(other) == 3
