"""``Runtime.flush`` and ``Runtime.hold``: which officer records are written at a commit,
and how far the consumer may commit while some are not.

The runtime's Kafka parts are plain stand-ins here (a dict for the officers table, a
highwater per partition); that the consumer obeys ``hold`` against a real broker is shown by
the crash test in ``tests/integration/test_faults.py`` (no fix lost after SIGKILL).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sdo.domain.state import Officer
from sdo.domain.world import Effects
from sdo.events import Status
from sdo.stream.app import Runtime

TP = ("sdo.officer.location", 0)
STATUS_TP = ("sdo.officer.status", 0)


def runtime(highwater: dict[Any, int]) -> tuple[Runtime, dict[str, Any]]:
    table: dict[str, Any] = {}
    app = SimpleNamespace(consumer=SimpleNamespace(highwater=highwater.get))
    rt = Runtime(
        world=None,  # type: ignore[arg-type]  # flush does not read the World
        app=app,  # type: ignore[arg-type]
        officers=table,
        incidents={},
        availability={},
        outputs={},
    )
    return rt, table


T0 = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)


def fix(o: Officer, n: int, neighbourhood: str = "N1") -> Officer:
    """The officer at their n-th fix: one every 5 s of event time."""
    return o._replace(
        lat=52.5 + n / 1000,
        lon=-1.9,
        fix_ts=T0 + timedelta(seconds=5 * n),
        fix_event=f"f{n}",
        neighbourhood=neighbourhood,
    )


def apply(rt: Runtime, officer: Officer, tp: Any, offset: int) -> None:
    rt.positions[tp] = offset
    rt.write(Effects(officers=[officer]), tp, offset)


BASE = Officer("o1", status=Status.AVAILABLE, status_event="s1", neighbourhood="N1")


def test_behind_a_moving_officer_is_held_back_until_the_checkpoint() -> None:
    rt, table = runtime({TP: 100})  # far behind the partition's end
    apply(rt, fix(BASE, 1), TP, 10)
    rt.flush()
    assert table["o1"]["fix_event"] == "f1"  # the first record is always written
    assert rt.hold(TP) is None

    apply(rt, fix(BASE, 2), TP, 11)
    apply(rt, fix(BASE, 3), TP, 12)
    rt.flush()
    assert table["o1"]["fix_event"] == "f1"  # moved only: deferred ...
    assert rt.hold(TP) == 11  # ... and the consumer commits no further than its first fix

    rt.checkpoint_s = 0.0
    rt.flush()
    assert table["o1"]["fix_event"] == "f3"
    assert rt.hold(TP) is None


def test_more_than_movement_is_written_at_once() -> None:
    rt, table = runtime({TP: 100, STATUS_TP: 100})
    apply(rt, fix(BASE, 1), TP, 10)
    rt.flush()
    apply(rt, fix(BASE, 2, neighbourhood="N2"), TP, 11)  # into another neighbourhood
    rt.flush()
    assert table["o1"]["neighbourhood"] == "N2"
    moved = fix(BASE, 3, neighbourhood="N2")
    apply(rt, moved, TP, 12)
    apply(rt, moved._replace(status=Status.EN_ROUTE, status_event="s2"), STATUS_TP, 5)
    rt.flush()
    assert table["o1"]["status"] == "en_route"
    assert rt.hold(TP) is None and rt.hold(STATUS_TP) is None


def test_caught_up_or_handing_over_writes_everything() -> None:
    highwater = {TP: 100}
    rt, table = runtime(highwater)
    apply(rt, fix(BASE, 1), TP, 10)
    rt.flush()
    apply(rt, fix(BASE, 2), TP, 11)
    rt.flush()
    assert rt.hold(TP) == 11
    highwater[TP] = 12  # offset 11 was the last record of the partition
    rt.flush()
    assert table["o1"]["fix_event"] == "f2"
    assert rt.hold(TP) is None

    highwater[TP] = 100
    apply(rt, fix(BASE, 3), TP, 12)
    rt.flush()
    assert rt.hold(TP) == 12
    rt.flush(everything=True)  # partitions revoked
    assert table["o1"]["fix_event"] == "f3"
    assert rt.hold(TP) is None


def test_hold_is_the_earliest_unwritten_offset_across_officers() -> None:
    rt, _ = runtime({TP: 100})
    other = BASE._replace(officer_id="o2")
    for n, (officer, offset) in enumerate([(BASE, 10), (other, 11)]):
        apply(rt, fix(officer, n), TP, offset)
    rt.flush()
    apply(rt, fix(other, 2), TP, 20)  # all within the checkpoint of the written fixes
    apply(rt, fix(BASE, 1), TP, 21)
    apply(rt, fix(other, 3), TP, 22)
    rt.flush()
    assert rt.hold(TP) == 20
    assert rt.hold(STATUS_TP) is None


def test_availability_counts_are_coalesced_to_the_commit() -> None:
    """A bucket that changes several times between commits is written once, with its
    latest counts, at the next flush (the table is compacted by key: only the last value
    of a key matters to a reader)."""
    rt, _ = runtime({TP: 100})
    rt.write(Effects(availability={"nbhd:N1": {"total": 1}, "npu:north": {"total": 1}}))
    rt.write(Effects(availability={"nbhd:N1": {"total": 2}}))
    assert rt.availability == {}  # nothing until the commit
    rt.flush()
    assert rt.availability == {"nbhd:N1": {"total": 2}, "npu:north": {"total": 1}}
    rt.availability.clear()
    rt.flush()
    assert rt.availability == {}  # written once


def test_a_busy_worker_defers_moving_officers_even_when_caught_up() -> None:
    """Keeping up with a steady feed, the worker is caught up at nearly every commit;
    moving officers still wait for the checkpoint, and are all written once the input
    goes quiet (a flush with nothing processed since the one before)."""
    highwater = {TP: 11}
    rt, table = runtime(highwater)
    apply(rt, fix(BASE, 1), TP, 10)
    rt.flush()
    apply(rt, fix(BASE, 2), TP, 11)
    highwater[TP] = 12  # caught up: offset 11 is the last record
    rt.flush()
    assert table["o1"]["fix_event"] == "f1"  # busy: deferred
    assert rt.hold(TP) == 11
    rt.flush()  # the next commit, nothing new: quiet
    assert table["o1"]["fix_event"] == "f2"
    assert rt.hold(TP) is None


def test_the_checkpoint_is_event_time_not_wall_time() -> None:
    """A moving officer is written once their fix is checkpoint_s of event time newer than
    the one written, however fast or slow the worker goes through the feed: a worker far
    behind writes no more per fix than one keeping up."""
    rt, table = runtime({TP: 10_000})  # far behind, and staying so
    apply(rt, fix(BASE, 1), TP, 10)
    rt.flush()
    for n in (2, 3):  # 5 and 10 s after the written fix
        apply(rt, fix(BASE, n), TP, 10 + n)
        rt.flush()
        assert table["o1"]["fix_event"] == "f1"
    apply(rt, fix(BASE, 4), TP, 14)  # 15 s after the written fix
    rt.flush()
    assert table["o1"]["fix_event"] == "f4"
    assert rt.hold(TP) is None


def test_an_officer_whose_fixes_stop_is_written_after_the_wall_checkpoint() -> None:
    """A deferred fix with no newer one to follow (the AVL unit went quiet) while the
    worker stays busy is written once wall_checkpoint_s has passed since the officer's last
    write, so the commit is not held back for ever."""
    rt, table = runtime({TP: 10_000})  # far behind, and staying so
    apply(rt, fix(BASE, 1), TP, 10)
    rt.flush()
    apply(rt, fix(BASE, 2), TP, 11)
    other = BASE._replace(officer_id="o2")
    for n in range(3, 6):  # the input stays busy with another officer
        apply(rt, fix(other, n), TP, 10 + n)
        rt.flush()
    assert table["o1"]["fix_event"] == "f1"
    assert rt.hold(TP) == 11
    rt.wall_checkpoint_s = 0.0  # as if a minute had passed
    apply(rt, fix(other, 6), TP, 16)
    rt.flush()
    assert table["o1"]["fix_event"] == "f2"
    assert rt.hold(TP) is None
