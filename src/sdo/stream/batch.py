"""The worker's batch lane: AVL fixes applied a run at a time by the compiled fix lane.

Theory of operation
-------------------
Nearly all of the worker's input is AVL fixes, and nearly all of those are plain moves.
Faust's per-message path (a message object, a stream, an acknowledgement per record)
costs some 170 microseconds of CPU per record; the evaluator's fix lane
(:class:`sdo.domain.lane.FixLane`) decides a plain fix in about one. So the worker does
not hand its input to a Faust stream: the consumer gives it each released batch
(:meth:`sdo.stream.app.Runtime.take`), merged in the one order of :mod:`sdo.order`, and
every run of consecutive location records in that order goes through :meth:`BatchLane.take`:

* the run's values are joined into one block of lines, as a log's, up to the first record
  the lane cannot read as one line of its own: a tombstone, a value that is not a single
  line starting as an encoded fix, or a Kafka key that is not the fix's ``officer_id``
  (the admission rule's key check, which the lane's scan does not make);
* :meth:`FixLane.scan <sdo.domain.lane.FixLane.scan>` applies the plain fixes of the
  block, with the admission rule's window of event times (it moves with the wall clock),
  and stops at the first line it refuses;
* :meth:`BatchLane.take` returns how many records were applied; the caller gives the
  next record the general way (admission, ``World.apply``, dead letter), after
  :meth:`BatchLane.sync`, and marks the lane :attr:`~BatchLane.stale` (it copies what
  changed before its next scan), so the lane changes how fast, never what
  (``tests/stream/test_batch.py`` compares the two).

The officers table stays the changelogged truth: the lane names the officers it moved
(:attr:`FixLane.moved`) and the availability counts that changed
(:attr:`FixLane.counts`); :meth:`BatchLane.changes` stores their last fixes in the World
and hands both to the flush that precedes each commit (``Runtime.flush``), which writes
them coalesced per officer, as it writes the general path's changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from sdo.admission import Admission
    from sdo.domain.state import Officer
    from sdo.domain.world import World

__all__ = ["BatchLane"]

#: How an encoded fix starts (sdo.events.encode; the lane's scan checks the rest).
_FIX_START: Final = b'{"type":"officer.location","event_id":"'
_OFFICER: Final = b'","officer_id":"'
_AFTER_OFFICER: Final = b'","lat":'
_NEWLINE: Final = b"\n"
#: After this many scans in a row that took nothing, the lane looks once in 2**6 records.
_MAX_MISSES: Final = 6


class BatchLane:
    """A :class:`~sdo.domain.lane.FixLane` over Kafka records (module docstring)."""

    __slots__ = (
        "_admit",
        "_base",
        "_block",
        "_buf",
        "_lane",
        "_misses",
        "_run",
        "_scanned",
        "_skip",
        "_starts",
        "_world",
        "applied",
        "refused",
        "stale",
    )

    def __init__(self, world: World, admit: Admission) -> None:
        from sdo.domain.lane import FixLane  # noqa: PLC0415 (numba: only a worker needs it)

        self._world = world
        self._admit = admit
        lane = self._lane = FixLane(world, window_us=admit.window_us())
        lane.learn_area()  # (else the first fix in each cell would go the general way)
        # (else the first batch would wait seconds for numba, once a machine; a block is
        # a read-only array over bytes, see _make)
        lane.compile(np.frombuffer(b"", dtype=np.uint8))
        lane.moved = set()
        lane.counts = {}
        #: records applied by the lane, and records it left to the general way
        self.applied = 0
        self.refused = 0
        #: whether the World changed since the lane's copy of it (copied before a scan):
        #: set by the caller after a record went the general way, or the mirror merged
        self.stale = True
        #: scans in a row that refused their first line, and records to leave to the
        #: general way before the next scan (see take)
        self._misses = 0
        self._skip = 0
        #: whether a scan ran since the last sync (see sync)
        self._scanned = False
        #: the run the last block was made of, from its record ``_base`` on: the block,
        #: as an array, and where each of its lines starts (and the end)
        self._run: Sequence[tuple[Any, Any]] | None = None
        self._base = 0
        self._starts: list[int] = [0]
        self._block = b""
        self._buf = np.frombuffer(self._block, dtype=np.uint8)

    def take(self, run: Sequence[tuple[Any, Any]], start: int, stop: int) -> int:
        """Apply ``run[start:stop]`` (location records, in the one order) from the start,
        up to the first record the lane does not take; return how many it applied. The
        World may lag (see :meth:`sync`). Call on with the same ``run`` after a record
        went the general way: the block already made of it is scanned on."""
        if self._skip:
            # (it refused the first line of its last scans: while records keep going
            # the general way, look less often)
            self._skip -= 1
            self.refused += 1
            return 0
        if self.stale:
            self._lane.refresh()
            self.stale = False
        first = start - self._base
        if run is not self._run or not 0 <= first < len(self._starts) - 1:
            self._make(run, start, stop)
            first = 0
        starts = self._starts
        lines = len(starts) - 1
        if not lines:
            self.refused += 1
            return 0  # (not a miss: it did not look)
        lane = self._lane
        lane.window(self._admit.window_us())
        at = starts[first]
        self._scanned = True
        pos = lane.scan(self._buf, at)
        if pos >= starts[-1]:
            taken = lines - first
        else:
            taken = self._block.count(_NEWLINE, at, pos)
            self.refused += 1
        self.applied += taken
        if taken:
            self._misses = 0
        else:
            self._misses = misses = min(self._misses + 1, _MAX_MISSES)
            self._skip = (1 << misses) - 1
        return taken

    def _make(self, run: Sequence[tuple[Any, Any]], start: int, stop: int) -> None:
        """The block of lines of ``run[start:stop]``, up to the first record that is not
        one line starting as an encoded fix, keyed by its officer."""
        values: list[bytes] = []
        for i in range(start, stop):
            record = run[i][1]
            value, key = record.value, record.key
            if (
                value is None
                or key is None
                or not value.startswith(_FIX_START)
                or _NEWLINE in value
                or (_OFFICER + key + _AFTER_OFFICER) not in value
            ):
                break
            values.append(value)
        self._run, self._base = run, start
        self._starts = [0, *accumulate(len(v) + 1 for v in values)]
        values.append(b"")
        self._block = _NEWLINE.join(values)
        self._buf = np.frombuffer(self._block, dtype=np.uint8)

    def release(self) -> None:
        """Forget the last block (the batch it was made of is applied)."""
        self._run, self._starts, self._block = None, [0], b""
        self._buf = np.frombuffer(self._block, dtype=np.uint8)

    def sync(self, counts: dict[str, dict[str, int]]) -> None:
        """Bring the World up to date before anything else reads or changes it; the
        availability counts the lane's moves changed go into ``counts`` (for the table,
        in the order they changed in: a later event's counts win)."""
        if not self._scanned:
            return  # (nothing applied since the last sync)
        self._scanned = False
        lane = self._lane
        lane.sync()
        changed = lane.counts
        if changed:
            counts.update(changed)
            changed.clear()

    def changes(self, counts: dict[str, dict[str, int]]) -> list[Officer]:
        """The records of the officers the lane moved since the last call, with their last
        fixes (stored in the World now, in one go), to write to the table; availability
        counts as :meth:`sync`."""
        lane = self._lane
        self._scanned = True  # (store_lagging syncs: its counts are taken below)
        lane.store_lagging()
        self.sync(counts)
        moved = lane.moved
        assert moved is not None
        if not moved:
            return []
        lane.moved = set()
        profile = self._world.profile
        return [o for o in map(profile, sorted(moved)) if o is not None]


def compile_kernels() -> None:
    """Have numba compile, into its cache, the kernels a worker's input runs: the fix
    lane's (made as a worker makes it), the one order's merge, and the fleet's scans that
    making a World runs. ``scripts/setup`` calls this, so that the first worker on a
    machine does not spend some 15 s of its start on them (each worker would otherwise
    compile them before it reports ready, once a machine)."""
    from sdo.admission import Admission  # noqa: PLC0415  (a worker's imports, on use)
    from sdo.config import Settings  # noqa: PLC0415
    from sdo.merge import warm_up  # noqa: PLC0415
    from sdo.stream.worker import make_world  # noqa: PLC0415

    settings = Settings()
    world = make_world(settings)
    BatchLane(world, Admission(max_ahead_s=settings.max_ahead_s, areas=world.areas, keyed=True))
    warm_up()
