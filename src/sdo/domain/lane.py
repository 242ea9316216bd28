"""The evaluator's fix lane: plain AVL fixes parsed and applied in compiled code.

Theory of operation
-------------------
Nearly every line of an event log is an AVL fix that can change nothing but an officer's
position (:meth:`World.plain_fix <sdo.domain.world.World.plain_fix>` says which). Even on
its fast path, Python spends some 15 microseconds on each: reading the JSON, checking it,
then checking the World. :class:`FixLane` does both for a whole block of log lines in one
call of a numba-compiled function, :func:`_scan`, over a copy of what ``plain_fix``
reads, kept in numpy arrays (the compiled functions, :func:`_scan` and those it calls,
are in :mod:`sdo.domain.lane_kernels`):

- per officer: the id, the time and event id of the last fix, the neighbourhood, the
  fleet slot, speeds, role and status tags, skills, shift end, the dispatch holding
  them, and flags: *watched* (a fix of theirs needs more than these checks: see
  :meth:`World.fix_watch <sdo.domain.world.World.fix_watch>`), *contends* (it may win a
  pending dispatch), *available* (their stale timer may move on);
- the point-lookup memo of :class:`~sdo.domain.geo.Areas`: a dense raster of its coarse
  cells and an open-addressing table of its fine ones, learnt a block at a time as
  points need them, and every neighbourhood's rings, for points in cells an edge crosses;
- the first timers, and the pending dispatches a mover could win (boxes, incident,
  best ETA, grade, rule masks and first recommended officer).

:func:`_scan` takes a line only when it is a fix in exactly the form :func:`sdo.events.
encode` writes (every value checked as :func:`sdo.events.plain_fix` checks it, numbers
and times in the forms it can read exactly) and the copy shows that ``plain_fix`` would
apply it: a known, unwatched officer; a newer time and another event id; no timer due
but stale timers that move on (it fires those, as ``World._quiet_timers`` does, and the
World replays them: :meth:`World.fire_quiet <sdo.domain.world.World.fire_quiet>`); the
same neighbourhood (or outside, as before), by a memo cell with one verdict or, near an
edge, by the even-odd test of the neighbourhood's rings (:func:`_inside`), or another
neighbourhood, by a memo cell with one verdict or, near an edge, by the rings of every
neighbourhood in file order (:func:`_locate`, as ``Areas.locate``), where no cover count
can change (the same cluster, or an officer not available); none of the
pending dispatches the officer could win by ``World._beats`` (tested with a margin: near a
limit it refuses); a held officer not drifting off. It then writes the
officer's position into the fleet's columns and its copy, and goes on. At the first line
it does not take it stops, and the caller gives that line the usual way (``decode_line``,
``plain_fix`` or ``apply``) after :meth:`FixLane.sync` has brought the World up to date:
the officers it moved into another neighbourhood are stored (new place, availability
counts moved); the others *lag* (:meth:`World.lag <sdo.domain.world.World.lag>`): the
World stores an officer's last fix when it first reads their record, so the Python path
builds records only for the officers it looks at, not for every officer that moved
(most of them); and the timers it fired are fired. :meth:`FixLane.refresh` then copies
what that line changed. Refusing is always safe: a refused line is decided by the same
Python code as without the lane, so the lane changes how fast, never what
(``tests/domain/test_lane.py`` compares the two on a simulated and a hostile log).

Numbers are read by the exact short path: at most 15 significant digits and a fraction
of at most 22 digits make ``m / 10**k`` one correctly rounded division, which is what
``orjson`` returns; other forms (exponents, integers, longer) are refused. Times are read
in the form ``YYYY-MM-DDTHH:MM:SSZ``, with a fraction of a second of up to 6 digits or
none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from mypy_extensions import mypyc_attr

from sdo.domain.geo import CELL_DEG, CELL_MIXED, CELL_OUTSIDE, FINE_DEG
from sdo.domain.lane_kernels import (
    _AFTER,
    _ALWAYS,
    _APPLIED,
    _AVAILABLE,
    _BLOCK,
    _BOXES,
    _CELL,
    _CONTENDS,
    _DIRTY,
    _DONE,
    _DRIFT_LON,
    _EARLIEST,
    _EMPTY,
    _EPOCH,
    _EVENT_LEN,
    _FIX_US,
    _FIXED,
    _FLAGS,
    _FMASK,
    _HELD_GRADE,
    _HELD_ROW,
    _HMASK,
    _ID_BYTES,
    _ID_LEN,
    _INTS,
    _LAST_US,
    _LAT,
    _LATEST,
    _LINES,
    _LOCATES,
    _LON,
    _MAX_SKILLS,
    _MAX_US,
    _NBHD,
    _NEVER,
    _NO_DRIFT,
    _NOT_HELD,
    _ONE_US,
    _PLACED,
    _REALS,
    _REASON,
    _REPLACED,
    _REPLACES,
    _RULES_KEPT,
    _SHIFT_END,
    _TIMERS,
    _TIMES_MAX,
    _TNEXT,
    _UNKNOWN,
    _UNSYNCED,
    _WATCHED,
    _X0,
    _Y0,
    REASONS,
    _dirty_parts,
    _fine_move,
    _fine_put,
    _hash,
    _scan,
)
from sdo.domain.recommend import fleet_tags
from sdo.domain.state import only_moved
from sdo.events import Status

if TYPE_CHECKING:
    from sdo.domain.geo import Areas, Placement
    from sdo.domain.recommend import DispatchRule
    from sdo.domain.state import Officer
    from sdo.domain.world import World

__all__ = ["REASONS", "FixLane"]


def _ring_arrays(areas: Areas) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every neighbourhood's rings, for points in mixed memo cells (see _inside): the
    vertices, where each ring starts in them, each neighbourhood's first and last ring
    (by index, as Areas.index_of), and its box (west, south, east, north) around them."""
    rings = [areas.rings(k) for k in range(len(areas.neighbourhoods))]
    flat = [ring for nb in rings for ring in nb]
    coords = np.ascontiguousarray(np.concatenate(flat) if flat else np.zeros((0, 2)))
    starts = np.cumsum([0, *[len(ring) for ring in flat]]).astype(np.int64)
    ends = np.cumsum([0, *[len(nb) for nb in rings]]).astype(np.int64)
    boxes = np.zeros((len(rings), 4))
    for k, (first, last) in enumerate(zip(ends[:-1].tolist(), ends[1:].tolist(), strict=True)):
        if last > first:
            vertices = coords[starts[first] : starts[last]]
            boxes[k, :2] = vertices.min(axis=0)
            boxes[k, 2:] = vertices.max(axis=0)
    return coords, starts, np.stack([ends[:-1], ends[1:]], axis=1), boxes


def _cluster_numbers(areas: Areas) -> np.ndarray:
    """Every neighbourhood's cluster (by index, as Areas.index_of), as a number."""
    numbers: dict[str, int] = {}
    return np.array(
        [
            numbers.setdefault(areas.placement_at(k).cluster, len(numbers))
            for k in range(len(areas.neighbourhoods))
        ],
        dtype=np.int64,
    )


def _us(when: datetime) -> int:
    return (when - _EPOCH) // _ONE_US


@mypyc_attr(allow_interpreted_subclasses=True)  # (a test wraps its __init__: see sdo.compiled)
def _first_state(
    world: World, grid: tuple[int, int, int, int], window_us: tuple[int, int]
) -> np.ndarray:
    """The kernel's ``state`` (see lane_kernels' slots) before the first scan."""
    stale_after = timedelta(seconds=world.policy.stale_after_s) // _ONE_US
    return np.array([0, _NEVER, 0, 0, 255, (1 << 16) - 1, *grid, stale_after, *window_us], np.int64)


class FixLane:
    """The World's plain-fix checks over numpy copies, for whole blocks of log lines.

    Attach it to a fresh or restored World; it keeps its copy current through
    ``World.touched``. Use: :meth:`scan` a block; at a line it refuses, :meth:`sync`, give
    the line the usual way, then :meth:`refresh`; :meth:`finish` at the end.
    """

    def __init__(  # noqa: PLR0915 (one statement per array of the copy)
        self, world: World, window_us: tuple[int, int] = (0, 2**62)
    ) -> None:
        """``window_us``: the event times (microseconds since the epoch, both included)
        the lane may apply; a fix outside goes the general way (the evaluator passes the
        admission rule's, :meth:`sdo.admission.Admission.window_us`)."""
        self._world = world
        world.touched = set(world.officers)
        world.held_touched = set()  # (touched: each officer's hold is copied with them)
        self._slots: dict[str, int] = {}
        self._names: list[str] = []
        self._ids = np.zeros((0, _ID_BYTES), dtype=np.uint8)
        self._events = np.zeros((0, _ID_BYTES), dtype=np.uint8)
        self._ints = np.zeros((0, _INTS), dtype=np.int64)
        self._reals = np.zeros((0, _REALS))
        self._dirty_list = np.zeros(0, dtype=np.int64)
        self._grow_officers(64)
        self._hkeys = np.full(256, _EMPTY, dtype=np.int64)
        self._hslots = np.zeros(256, dtype=np.int64)
        west, south, east, north = world.areas.bounds
        x0 = math.floor(west / CELL_DEG) - 2
        y0 = math.floor(south / CELL_DEG) - 2
        nx = math.floor(east / CELL_DEG) + 3 - x0
        ny = math.floor(north / CELL_DEG) + 3 - y0
        self._raster = np.full((nx, ny), _UNKNOWN, dtype=np.int32)
        self._fkeys = np.full(1 << 16, _EMPTY, dtype=np.int64)
        self._fvals = np.zeros(1 << 16, dtype=np.int32)
        self._fine_count = 0
        self._coords, self._rings, self._nb_rings, self._nb_box = _ring_arrays(world.areas)
        self._nb_cluster = _cluster_numbers(world.areas)
        self._state = _first_state(world, (x0, y0, nx, ny), window_us)
        self._timer_list: list[tuple[datetime, int, str, str, str]] = []
        self._timers = np.zeros((0, 2), dtype=np.int64)
        self._fired = np.zeros(0, dtype=np.int64)
        self._replayed = 0  # timers of _timer_list the World has fired
        self._timers_version = (-1, -1)
        self._boxes = np.zeros((0, 8))
        self._rules = np.zeros((0, 4), dtype=np.int64)
        self._detour = float(world.policy.detour_factor)
        self._better_by = float(world.policy.better_by_s)
        self._contest: object = None  # World.contest_token when last copied
        #: slots of the contest whose first officer the lane did not know (see _copy_rules)
        self._unknown_first: set[int] = set()
        self._row_of: Mapping[str, int] = {}  # the World's: incident id -> slot
        self._records: list[Officer | None] = []  # per slot: the record copied last
        self._skills: dict[str, int] = {}
        # id(rule) -> (rule, role mask, status mask, skill mask): see _copy_rules
        self._rule_masks: dict[int, tuple[DispatchRule, int, int, int]] = {}
        self._times: dict[int, datetime] = {}
        self._out = np.zeros(8, dtype=np.int64)
        self._where = np.zeros(2)
        self.lines = 0
        self.applied = 0
        #: of the fixes applied, those into another neighbourhood than the officer's last
        self.replaced = 0
        #: of those, the ones near an edge, placed by the polygons' rings (see _locate)
        self.located = 0
        #: lines refused, by reason (see REASONS; "end" counts the blocks finished)
        self.refused = [0] * len(REASONS)
        #: the live worker's, which writes what changed to its tables (None: not kept):
        #: the officers the lane moved, as :meth:`sync` hands them to the World, and the
        #: availability counts their moves into another neighbourhood changed
        self.moved: set[str] | None = None
        self.counts: dict[str, dict[str, int]] | None = None
        self.refresh()

    # -- the scan ------------------------------------------------------------------------

    def scan(self, buf: np.ndarray, pos: int) -> int:
        """Apply the plain fixes of ``buf`` (whole lines) from ``pos`` on; return where the
        first refused line starts, or ``len(buf)``. ``lines`` and ``applied`` count on."""
        out = self._out
        out[_LINES] = out[_APPLIED] = out[_REPLACES] = out[_LOCATES] = 0
        flon, flat = self._world.fleet.columns()
        pos = _scan(
            buf,
            pos,
            len(buf),
            self._state,
            self._timers,
            self._fired,
            self._hkeys,
            self._hslots,
            self._ids,
            self._events,
            self._ints,
            self._reals,
            flon,
            flat,
            self._raster,
            self._fkeys,
            self._fvals,
            self._boxes,
            self._rules,
            self._coords,
            self._rings,
            self._nb_rings,
            self._nb_box,
            self._nb_cluster,
            self._detour,
            self._better_by,
            self._dirty_list,
            out,
            self._where,
        )
        self.lines += int(out[_LINES])
        self.applied += int(out[_APPLIED])
        self.replaced += int(out[_REPLACES])
        self.located += int(out[_LOCATES])
        self.refused[int(out[_REASON])] += 1
        return int(pos)

    def compile(self, block: np.ndarray) -> None:
        """Have numba compile the kernels of a scan and a sync now (or load them from its
        cache), with an empty ``block`` of the kind the caller scans (a read-only array,
        over bytes, is another type to numba than a writable one): the first time on a
        machine that takes seconds, which the live worker spends before it reports ready,
        not on its first AVL fixes. Counts nothing."""
        out, refused = self._out.copy(), list(self.refused)
        self.scan(block[:0], 0)
        _dirty_parts(self._dirty_list, 0, self._ints)
        self._out[:] = out
        self.refused = refused

    def window(self, window_us: tuple[int, int]) -> None:
        """The event times the lane may apply from now on (see ``__init__``): the live
        worker's admission window moves with the wall clock."""
        self._state[_EARLIEST], self._state[_LATEST] = window_us

    @property
    def last_applied(self) -> datetime | None:
        """Time of the last fix the last :meth:`scan` applied (None if it applied none)."""
        if not self._out[_APPLIED]:
            return None
        return self._when(int(self._out[_LAST_US]))

    def sync(self) -> None:
        """Bring the World up to date for a line that goes the Python way.

        The officers the lane moved into another neighbourhood since are stored (place,
        availability counts, last fix); the last fix of the others lags
        (:meth:`World.lag <sdo.domain.world.World.lag>`: each is stored when the World
        first reads their record, by :meth:`_catch_up`); event time moves on to the last
        fix; the timers the lane fired are fired."""
        out = self._out
        count = int(out[_DIRTY])
        if count:
            replaced, slots = _dirty_parts(self._dirty_list, count, self._ints)
            if len(replaced):
                self._store(replaced)
            names = self._names
            lagging = [names[s] for s in slots.tolist()]
            self._world.lag(lagging, self._catch_up, self._when(int(out[_MAX_US])))
            moved = self.moved
            if moved is not None:
                moved.update(lagging)
                moved.update([names[s] for s in replaced.tolist()])
            out[_DIRTY] = 0
            out[_MAX_US] = 0
        self._replay_timers()

    def finish(self) -> None:
        """At the end of the log: :meth:`sync`, and store every lagging fix."""
        self.sync()
        self._world.catch_up_all()

    def store_lagging(self) -> None:
        """:meth:`sync`, and store every lagging fix now, in one go (the live worker,
        before it writes its officers' records: :meth:`finish` without the end)."""
        self.sync()
        ints = self._ints
        slots = np.flatnonzero(ints[: len(self._names), _UNSYNCED] & _FIXED)
        if len(slots):
            self._store(slots)
            names = self._names
            self._world.caught_up([names[s] for s in slots.tolist()])

    def _when(self, us: int) -> datetime:
        """The datetime of ``us`` microseconds since the epoch (recent ones are kept)."""
        times = self._times
        when = times.get(us)
        if when is None:
            if len(times) >= _TIMES_MAX:
                times.clear()
            when = times[us] = _EPOCH + timedelta(microseconds=us)
        return when

    def _catch_up(self, oid: str) -> None:
        """Store the last fix of a lagging officer (the World asks, see :meth:`sync`)."""
        slot = self._slots[oid]
        ints = self._ints
        if not ints[slot, _UNSYNCED] & _FIXED:
            return  # stored since (moved into another neighbourhood)
        assert not ints[slot, _UNSYNCED] & _REPLACED  # (sync stores those)
        n = int(ints[slot, _EVENT_LEN])
        reals = self._reals
        self._world.take_fixes(
            [oid],
            [float(reals[slot, _LON])],
            [float(reals[slot, _LAT])],
            [self._when(int(ints[slot, _FIX_US]))],
            [self._events[slot, :n].tobytes().decode()],
            [None],
        )
        ints[slot, _UNSYNCED] = 0

    def _store(self, slots: np.ndarray) -> None:
        """Store in the World the last fix (and place) of the officers in ``slots``."""
        count = len(slots)
        rows = self._ints[slots]
        reals = self._reals[slots]
        raw = self._events[slots].tobytes()  # one copy; each id is a slice of it
        when = [self._when(us) for us in rows[:, _FIX_US].tolist()]
        names = self._names
        place_at = self._world.areas.placement_at
        places: list[Placement | None] = []
        for slot, what, nbhd in zip(
            slots.tolist(), rows[:, _UNSYNCED].tolist(), rows[:, _NBHD].tolist(), strict=True
        ):
            if what & _REPLACED:
                places.append(place_at(nbhd))
                # the record copied last is no longer the World's but for the fix: the
                # next copy must be whole (see _copy)
                self._records[slot] = None
            else:
                places.append(None)
        self._world.take_fixes(
            [names[s] for s in slots.tolist()],
            reals[:, _LON].tolist(),
            reals[:, _LAT].tolist(),
            when,
            [
                raw[at : at + n].decode()
                for at, n in zip(
                    range(0, count * _ID_BYTES, _ID_BYTES),
                    rows[:, _EVENT_LEN].tolist(),
                    strict=True,
                )
            ],
            places,
            self.counts,
        )
        self._ints[slots, _UNSYNCED] = 0

    def _replay_timers(self) -> None:
        """Have the World fire the timers the lane fired (in the same order)."""
        upto = int(self._state[_TNEXT])
        if upto == self._replayed:
            return
        world = self._world
        for t in range(self._replayed, upto):
            moved_on = int(self._fired[t])
            world.fire_quiet(self._timer_list[t], None if moved_on < 0 else self._when(moved_on))
        self._replayed = upto
        self._timers_version = world.timers_version  # as the lane knows it

    def refresh(self) -> None:
        """Copy what the World changed since: touched officers, holders, timers, boxes,
        and the memo cell a refused line needed."""
        world = self._world
        if self._out[_REASON] == _CELL:
            self._learn(float(self._where[0]), float(self._where[1]))
            self._out[_REASON] = _DONE
        touched = world.touched
        assert touched is not None
        contest = world.contest_token()
        if contest != self._contest:
            self._contest = contest
            self._boxes, slots, changed, self._row_of, always = world.contest_boxes()
            self._copy_rules(slots, changed)
            changed.clear()
            self._state[_BOXES] = len(slots)
            self._state[_ALWAYS] = always
        # who holds whom, and what a held officer may drift from, follow the
        # recommendations, too
        held = world.held_touched
        assert held is not None
        if held:
            for oid in held:
                slot = self._slots.get(oid)
                if slot is not None:
                    self._copy_hold(oid, slot)
            held.clear()
        while touched:  # (a new skill touches every officer)
            batch = list(touched)
            touched.clear()
            for oid in batch:
                self._copy(oid)
        if world.timers_version != self._timers_version:
            self._copy_timers()

    def _copy_timers(self) -> None:
        """The first timers, as (due, officer slot of a stale timer or -1)."""
        world = self._world
        head = world.timers_head(_TIMERS + 1)
        self._timer_list = head[:_TIMERS]
        self._timers = np.array(
            [
                (_us(due), self._slots.get(subject, -1) if kind == "stale" else -1)
                for due, _, kind, subject, _ in self._timer_list
            ],
            dtype=np.int64,
        ).reshape(len(self._timer_list), 2)
        self._fired = np.zeros(len(self._timer_list), dtype=np.int64)
        self._state[_TNEXT] = 0
        self._state[_AFTER] = _us(head[_TIMERS][0]) if len(head) > _TIMERS else _NEVER
        self._replayed = 0
        self._timers_version = world.timers_version

    def _copy(self, oid: str) -> None:
        world = self._world
        record, watched, contends, speeds = world.fix_watch(oid)
        slot = self._slots.get(oid)
        if slot is None:
            raw = oid.encode()
            if record is None or len(raw) > _ID_BYTES:
                return  # unknown to the World, or never in a line the lane takes
            slot = self._add(oid, raw)
        ints = self._ints[slot]
        # the record copied last, if whole (a record without a fix is not)
        last, self._records[slot] = self._records[slot], None
        if record is None or record.fix_ts is None or record.lon is None or record.lat is None:
            ints[_FLAGS] = _WATCHED
            return
        self._records[slot] = record
        flags = (
            _PLACED
            | (_WATCHED if watched else 0)
            | (_CONTENDS if contends else 0)
            | (_AVAILABLE if record.status is Status.AVAILABLE else 0)
        )
        if record is last:  # touched by a timer or a stale alert: the flags say it
            ints[_FLAGS] = flags
            return
        event = (record.fix_event or "").encode()
        if len(event) > _ID_BYTES:
            event = b""  # no line the lane takes can carry it: none equals it
        self._events[slot, : len(event)] = np.frombuffer(event, dtype=np.uint8)
        if last is not None and only_moved(last, record):
            # a fix (plain_fix's), or a timer: what the fix and the stale state say
            ints[_FLAGS : _EVENT_LEN + 1] = (flags, ints[_NBHD], _us(record.fix_ts), len(event))
            self._reals[slot, _LON : _LAT + 1] = (record.lon, record.lat)
            return
        if record.neighbourhood is None:
            nbhd = CELL_OUTSIDE
        else:
            known = world.areas.index_of(record.neighbourhood)
            nbhd = CELL_MIXED if known is None else known  # CELL_MIXED: never plain
        ints[_FLAGS : _SHIFT_END + 1] = (
            flags,
            nbhd,
            _us(record.fix_ts),
            len(event),
            world.fleet.slot_of(oid),
            fleet_tags(record, world.policy),
            self._skill_bits(record.skills),
            _NEVER if record.shift_end is None else _us(record.shift_end),
        )
        self._reals[slot, :_DRIFT_LON] = (record.lon, record.lat, *speeds)
        self._copy_hold(oid, slot)

    def _copy_hold(self, oid: str, slot: int) -> None:
        """Which pending dispatch holds the officer (and its slot), and how far they may
        drift off."""
        hold = self._world.holder(oid)
        self._ints[slot, _HELD_GRADE : _HELD_ROW + 1] = (
            _NOT_HELD if hold is None else (hold[1], self._row_of.get(hold[0], -1))
        )
        self._reals[slot, _DRIFT_LON:] = self._world.drift_of(oid) or _NO_DRIFT

    def _skill_bits(self, skills: Iterable[str]) -> int:
        """An officer's skills as bits (a skill seen for the first time gets one, and every
        officer is copied again: they may hold it)."""
        bits = 0
        for skill in skills:
            bit = self._skills.get(skill)
            if bit is None:
                if len(self._skills) >= _MAX_SKILLS:
                    continue  # rules are taken to admit whatever the skills (see _skill_mask)
                bit = self._skills[skill] = 1 << len(self._skills)
                assert self._world.touched is not None
                self._world.touched.update(self._names)
            bits |= bit
        return bits

    def _copy_rules(
        self,
        slots: Sequence[tuple[object, str, str | None, DispatchRule] | None],
        changed: Iterable[int],
    ) -> None:
        """``rules[slot]`` of the contest's ``changed`` slots (see World.contest_boxes),
        and of those whose first officer the lane did not know: the rule's role and status
        tag masks and skill mask, and the slot of the first officer. (A free slot's box
        holds no point: its rules are not read.)

        A race keeps its rule, so the masks are kept per rule object (by identity: hashing
        a rule is dearer than computing its masks), a bounded number of them."""
        rules = self._rules
        if len(rules) < len(self._boxes):
            rules = np.zeros((len(self._boxes), 4), dtype=np.int64)
            rules[: len(self._rules)] = self._rules
            self._rules = rules
        kept = self._rule_masks
        if len(kept) > _RULES_KEPT:
            kept.clear()
        officer_slots = self._slots
        unknown = self._unknown_first
        todo = set(changed) | unknown if unknown else changed
        unknown.clear()
        for k in todo:
            entry = slots[k]
            if entry is None:
                continue
            _, _, first, rule = entry
            masks = kept.get(id(rule))
            if masks is None or masks[0] is not rule:
                masks = kept[id(rule)] = (rule, *rule.masks, self._skill_mask(rule.skills))
            at = -1 if first is None else officer_slots.get(first, -2)
            if at == -2:
                unknown.add(k)
            rules[k] = (*masks[1:], at)

    def _skill_mask(self, skills: frozenset[str]) -> int:
        """A rule's skills as bits, or 0 (nothing required) if one has none: a rule's
        mask may only admit more than the rule."""
        bits = self._skill_bits(skills)
        return bits if all(skill in self._skills for skill in skills) else 0

    def _add(self, oid: str, raw: bytes) -> int:
        slot = len(self._names)
        if slot >= len(self._ints):
            self._grow_officers(2 * len(self._ints))
        self._names.append(oid)
        self._records.append(None)
        self._slots[oid] = slot
        self._ids[slot, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        self._ints[slot, _ID_LEN] = len(raw)
        if 2 * len(self._names) > len(self._hkeys):
            self._rehash(4 * len(self._hkeys))
        else:
            self._insert(oid, slot)
        return slot

    def _insert(self, oid: str, slot: int) -> None:
        raw = np.frombuffer(oid.encode(), dtype=np.uint8)
        h = int(_hash(raw, 0, len(raw)))
        mask = len(self._hkeys) - 1
        k = h & mask
        while self._hkeys[k] != _EMPTY:
            k = (k + 1) & mask
        self._hkeys[k] = h
        self._hslots[k] = slot

    def _rehash(self, size: int) -> None:
        self._hkeys = np.full(size, _EMPTY, dtype=np.int64)
        self._hslots = np.zeros(size, dtype=np.int64)
        self._state[_HMASK] = size - 1
        for oid, slot in self._slots.items():
            self._insert(oid, slot)

    def _grow_officers(self, size: int) -> None:
        old = len(self._ints)

        def grown(array: np.ndarray) -> np.ndarray:
            new = np.zeros((size, *array.shape[1:]), dtype=array.dtype)
            new[:old] = array
            return new

        self._ids = grown(self._ids)
        self._events = grown(self._events)
        self._reals = grown(self._reals)
        self._dirty_list = grown(self._dirty_list)
        ints = grown(self._ints)
        ints[old:, _FLAGS] = _WATCHED
        ints[old:, _HELD_GRADE : _HELD_ROW + 1] = _NOT_HELD
        self._ints = ints

    def _learn(self, lon: float, lat: float) -> None:
        """Copy the memo's verdicts on the cells around a point, learning them a block at
        a time (:meth:`Areas.learn_cells <sdo.domain.geo.Areas.learn_cells>`): the coarse
        block of ``_BLOCK`` x ``_BLOCK`` cells holding it, and if its cell is mixed, the
        fine cells of the block of 10 x 10 holding its fine cell."""
        areas = self._world.areas
        x0, y0 = int(self._state[_X0]), int(self._state[_Y0])
        x = math.floor(lon / CELL_DEG) - x0
        y = math.floor(lat / CELL_DEG) - y0
        nx, ny = self._raster.shape
        if 0 <= x < nx and 0 <= y < ny:
            if self._raster[x, y] == _UNKNOWN:
                bx, by = x - x % _BLOCK, y - y % _BLOCK
                wx, wy = min(_BLOCK, nx - bx), min(_BLOCK, ny - by)
                self._raster[bx : bx + wx, by : by + wy] = areas.learn_cells(
                    x0 + bx, y0 + by, wx, wy
                )
            if self._raster[x, y] != CELL_MIXED:
                return
        fx, fy = math.floor(lon / FINE_DEG), math.floor(lat / FINE_DEG)
        self._learn_fine(fx - fx % 10, fy - fy % 10)

    def learn_area(self, blocks: int = 20_000) -> None:
        """Learn the memo's verdicts on every cell of the area now, rather than a block at
        a time as fixes need them (the live worker, when it starts: a fix that needs a
        cell learnt goes the general way, so a cold memo slows the first minutes). Fine
        cells, where a coarse cell is mixed, for at most ``blocks`` mixed cells (some 0.4
        ms each; the West Midlands area has 2,190); the rest are learnt as needed."""
        areas = self._world.areas
        x0, y0 = int(self._state[_X0]), int(self._state[_Y0])
        nx, ny = self._raster.shape
        self._raster[:, :] = areas.learn_cells(x0, y0, nx, ny)
        ratio = round(CELL_DEG / FINE_DEG)
        for x, y in np.argwhere(self._raster == CELL_MIXED)[:blocks].tolist():
            self._learn_fine((x0 + x) * ratio, (y0 + y) * ratio)

    def _learn_fine(self, bx: int, by: int) -> None:
        """Copy the verdicts on the 10 x 10 fine cells from key ``(bx, by)``."""
        verdicts = self._world.areas.learn_cells(bx, by, 10, 10, fine=True)
        if 2 * (self._fine_count + verdicts.size) > len(self._fkeys):
            keys, values = self._fkeys, self._fvals
            self._fkeys = np.full(4 * len(keys), _EMPTY, dtype=np.int64)
            self._fvals = np.zeros(4 * len(keys), dtype=np.int32)
            self._state[_FMASK] = len(self._fkeys) - 1
            _fine_move(keys, values, self._fkeys, self._fvals)
        self._fine_count += _fine_put(self._fkeys, self._fvals, bx, by, verdicts)
