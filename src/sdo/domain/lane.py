"""The evaluator's fix lane: plain AVL fixes parsed and applied in compiled code.

Theory of operation
-------------------
Nearly every line of an event log is an AVL fix that can change nothing but an officer's
position (:meth:`World.plain_fix <sdo.domain.world.World.plain_fix>` says which). Even on
its fast path, Python spends some 15 microseconds on each: reading the JSON, checking it,
then checking the World. :class:`FixLane` does both for a whole block of log lines in one
call of a numba-compiled function, :func:`_scan`, over a copy of what ``plain_fix``
reads, kept in numpy arrays:

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
in the form ``YYYY-MM-DDTHH:MM:SSZ`` only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

import numpy as np
from numba import njit

from sdo.domain.geo import CELL_DEG, CELL_MIXED, CELL_OUTSIDE, FINE_DEG, haversine_m
from sdo.domain.recommend import fleet_tags
from sdo.domain.state import only_moved
from sdo.events import Status

if TYPE_CHECKING:
    from sdo.domain.geo import Areas, Placement
    from sdo.domain.recommend import DispatchRule
    from sdo.domain.state import Officer
    from sdo.domain.world import World

__all__ = ["REASONS", "FixLane"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
#: Longest officer or event id the lane keeps, in bytes (the contract allows 128 characters).
_ID_BYTES: Final = 128
#: Relative margin kept from a distance or ETA limit (far above the last-bit differences
#: of two haversine implementations, far below anything that matters).
_MARGIN: Final = 1e-7
#: Coarse memo cells are learnt in blocks of this many squared.
_BLOCK: Final = 64
#: Closer than this (degrees, about 0.1 mm) to a neighbourhood's edge, the exact test
#: decides whether a point is in it.
_EDGE_DEG: Final = 1e-9
#: A cell whose verdict the lane has not learnt yet.
_UNKNOWN: Final = -3
_EMPTY: Final = np.iinfo(np.int64).min
_NEVER: Final = np.iinfo(np.int64).max
_NO_DRIFT: Final = (0.0, 0.0, 0.0, 0.0)
#: Fix times kept as datetimes (fixes come in time order: recent ones repeat).
_TIMES_MAX: Final = 4096
#: Rules whose masks are kept (see FixLane._copy_rules).
_RULES_KEPT: Final = 4096
#: More skills than this, and rules are taken to admit whatever the skills.
_MAX_SKILLS: Final = 62

# columns of ints[officer]: flags, memo verdict of their neighbourhood, time (us) and
# length of the id of their last fix, fleet slot, fleet tags, skill bits, shift end (us),
# grade of the dispatch holding them (9 if none) and its row in boxes (-1 if none, or it
# has no row), length of their id, whether the World lacks their last fix
(
    _FLAGS,
    _NBHD,
    _FIX_US,
    _EVENT_LEN,
    _FLEET,
    _TAGS,
    _SKILL_BITS,
    _SHIFT_END,
    _HELD_GRADE,
    _HELD_ROW,
    _ID_LEN,
    _UNSYNCED,
) = range(12)
_INTS: Final = 12
_NOT_HELD: Final = (9, -1)
# columns of reals[officer]: position, speeds (m/s) by grade 0-4, and the incident (lon,
# lat) they are held for, the ETA (s) past which they drift off it and their speed to it
_LON, _LAT, _SPEED = 0, 1, 2
_DRIFT_LON, _DRIFT_LAT, _DRIFT_LIMIT, _DRIFT_SPEED = 7, 8, 9, 10
_REALS: Final = 11
# columns of rules[box]: tag masks of its roles and statuses, skill bits, first officer
_ROLES, _STATUSES, _SKILLS, _FIRST = range(4)

# what the World lacks of an officer (ints[officer, _UNSYNCED]): their last fix, and
# their new place (a neighbourhood other than its record's, at some fix since); and
# whether they are in dirty_list (moved since the last sync)
_FIXED: Final = 1
_REPLACED: Final = 2
_LISTED: Final = 4
# officer flags
_WATCHED: Final = 1
_CONTENDS: Final = 2
_PLACED: Final = 4  # the World knows where they are
_AVAILABLE: Final = 8
#: How many of the first timers the lane may fire (stale timers moving on).
_TIMERS: Final = 12

# _scan's out[] slots
_LINES, _APPLIED, _LAST_US, _REASON, _DIRTY, _REPLACES, _MAX_US, _LOCATES = range(8)
# why it stopped: at the end, or at a line that is not a fix in the plain form, whose
# memo cell it has not learnt, of an officer unknown or watched, not newer than the last
# (or the same event), with a timer due that is not a stale timer moving on, within
# _EDGE_DEG of an edge (where the exact test decides), in another neighbourhood it may
# not take (into or out of the force area, another cluster of an available officer), where
# its officer might win a pending dispatch, or of a held officer drifting off
REASONS: Final = (
    "end",
    "form",
    "cell",
    "officer",
    "order",
    "timer",
    "edge",
    "moved",
    "contest",
    "drift",
)
_DONE, _FORM, _CELL, _OFFICER, _ORDER, _TIMER, _EDGE, _MOVED, _CONTEST, _DRIFT = range(len(REASONS))
# _scan's state[] slots
(
    _TNEXT,  # the next timer of timers[] to fire
    _AFTER,  # a bound on the due time (us) of every timer not in timers[]
    _BOXES,
    _ALWAYS,
    _HMASK,
    _FMASK,
    _X0,
    _Y0,
    _NX,
    _NY,
    _STALE_AFTER,  # us
) = range(11)


def _pattern(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype=np.uint8).copy()


_P_START = _pattern(b'{"type":"officer.location","event_id":"')
_P_TS = _pattern(b'","ts":"')
_P_OFFICER = _pattern(b'","officer_id":"')
_P_LAT = _pattern(b'","lat":')
_P_LON = _pattern(b',"lon":')
_P_ACCURACY = _pattern(b',"accuracy_m":')
_P_SPEED = _pattern(b',"speed_mps":')
_P_HEADING = _pattern(b',"heading_deg":')
_POW10 = np.array([10.0**k for k in range(23)])
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@njit(cache=True)
def _match(buf: np.ndarray, i: int, end: int, pat: np.ndarray) -> bool:
    n = pat.shape[0]
    if i + n > end:
        return False
    for k in range(n):  # noqa: SIM110 (a generator is not compiled as well as a loop)
        if buf[i + k] != pat[k]:
            return False
    return True


@njit(cache=True)
def _ident(buf: np.ndarray, i: int, end: int) -> int:
    """End (the closing quote) of a plain id string starting at ``i``, or -1: 1 to 128
    printable ASCII bytes, no quote or backslash, no space at either end."""
    j = i
    while j < end:
        c = buf[j]
        if c == 34:  # "
            break
        if c < 32 or c > 126 or c == 92:
            return -1
        j += 1
    n = j - i
    if j >= end or n == 0 or n > 128 or buf[i] == 32 or buf[j - 1] == 32:
        return -1
    return j


@njit(cache=True)
def _number(buf: np.ndarray, i: int, end: int) -> tuple[float, int]:
    """(value, end) of a JSON float with a fraction and no exponent at ``i``, read
    exactly, or (0.0, -1) for any other form."""
    negative = False
    if i < end and buf[i] == 45:  # -
        negative = True
        i += 1
    start = i
    mantissa = 0
    significant = 0
    while i < end and 48 <= buf[i] <= 57:
        d = buf[i] - 48
        if significant or d:
            significant += 1
        mantissa = mantissa * 10 + d
        i += 1
    whole = i - start
    if whole == 0 or (whole > 1 and buf[start] == 48):  # no digits, or a leading zero
        return 0.0, -1
    if i >= end or buf[i] != 46:  # .
        return 0.0, -1
    i += 1
    frac_start = i
    while i < end and 48 <= buf[i] <= 57:
        d = buf[i] - 48
        if significant or d:
            significant += 1
        mantissa = mantissa * 10 + d
        i += 1
        if significant > 15:
            return 0.0, -1
    digits = i - frac_start
    if digits == 0 or digits > 22 or significant > 15:
        return 0.0, -1
    if i < end and (buf[i] == 101 or buf[i] == 69):  # e E
        return 0.0, -1
    value = mantissa / _POW10[digits]
    return (-value if negative else value), i


@njit(cache=True)
def _digits(buf: np.ndarray, i: int, n: int) -> int:
    value = 0
    for k in range(i, i + n):
        d = buf[k] - 48
        if d < 0 or d > 9:
            return -1
        value = value * 10 + d
    return value


@njit(cache=True)
def _time_us(buf: np.ndarray, i: int, end: int) -> int:
    """Microseconds since the epoch of ``YYYY-MM-DDTHH:MM:SSZ`` at ``i`` (followed by its
    closing quote), or -1 for anything else, including an impossible date."""
    if i + 21 > end or buf[i + 20] != 34:
        return -1
    if (
        buf[i + 4] != 45
        or buf[i + 7] != 45
        or buf[i + 10] != 84
        or buf[i + 13] != 58
        or buf[i + 16] != 58
        or buf[i + 19] != 90
    ):
        return -1
    year = _digits(buf, i, 4)
    month = _digits(buf, i + 5, 2)
    day = _digits(buf, i + 8, 2)
    hour = _digits(buf, i + 11, 2)
    minute = _digits(buf, i + 14, 2)
    second = _digits(buf, i + 17, 2)
    if year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
        return -1
    if minute < 0 or minute > 59 or second < 0 or second > 59:
        return -1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _MONTH_DAYS[month] + (1 if month == 2 and leap else 0):
        return -1
    # days from 1970-01-01 (Howard Hinnant's days_from_civil)
    y = year - 1 if month <= 2 else year
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return ((days * 24 + hour) * 60 + minute) * 60 * 1_000_000 + second * 1_000_000


#: :func:`sdo.domain.geo.haversine_m`, compiled (LLVM's sin and cos may differ from the
#: C library's in the last bit: the lane compares with a margin and refuses near a limit).
_haversine = njit(cache=True)(haversine_m)


@njit(cache=True)
def _same_bytes(row: np.ndarray, n: int, buf: np.ndarray, start: int, end: int) -> bool:
    """Whether the first ``n`` bytes of ``row`` are ``buf[start:end]``."""
    if n != end - start:
        return False
    for b in range(n):  # noqa: SIM110 (a generator is not compiled as well as a loop)
        if row[b] != buf[start + b]:
            return False
    return True


@njit(cache=True)
def _inside(
    lon: float, lat: float, coords: np.ndarray, rings: np.ndarray, first: int, last: int
) -> int:
    """1 if (lon, lat) lies in the polygon whose rings are ``first`` to ``last`` (ends
    excluded) of ``rings`` (offsets into ``coords``), 0 if not, -1 if it is within
    ``_EDGE_DEG`` of a ring, where only the exact test may say. Away from every edge, the
    even-odd count of crossings of a ray is exact: a crossing's abscissa is off by far
    less than the point's distance to the edge."""
    inside = False
    near = _EDGE_DEG * _EDGE_DEG
    for r in range(first, last):
        for v in range(rings[r], rings[r + 1] - 1):
            x1, y1 = coords[v, 0], coords[v, 1]
            x2, y2 = coords[v + 1, 0], coords[v + 1, 1]
            dx, dy = x2 - x1, y2 - y1
            length = dx * dx + dy * dy
            t = 0.0 if length == 0.0 else ((lon - x1) * dx + (lat - y1) * dy) / length
            t = min(1.0, max(0.0, t))
            ex, ey = x1 + t * dx - lon, y1 + t * dy - lat
            if ex * ex + ey * ey <= near:
                return -1
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * dx / dy:
                inside = not inside
    return 1 if inside else 0


#: _locate: the point is within _EDGE_DEG of an edge (only the exact test may say).
_NEAR_EDGE: Final = -4


@njit(cache=True)
def _locate(
    lon: float,
    lat: float,
    coords: np.ndarray,
    rings: np.ndarray,
    nb_rings: np.ndarray,
    nb_box: np.ndarray,
) -> int:
    """What :meth:`Areas.locate <sdo.domain.geo.Areas.locate>` says of (lon, lat), by the
    rings: the first neighbourhood in file order holding it, ``CELL_OUTSIDE`` if none,
    or ``_NEAR_EDGE`` if it is within ``_EDGE_DEG`` of an edge of one before (or of
    that one). Away from every edge, "holds" and "intersects" agree (see _inside)."""
    for k in range(nb_rings.shape[0]):
        if not (
            nb_box[k, 0] - _EDGE_DEG <= lon <= nb_box[k, 2] + _EDGE_DEG
            and nb_box[k, 1] - _EDGE_DEG <= lat <= nb_box[k, 3] + _EDGE_DEG
        ):
            continue
        side = _inside(lon, lat, coords, rings, nb_rings[k, 0], nb_rings[k, 1])
        if side < 0:
            return _NEAR_EDGE
        if side:
            return k
    return CELL_OUTSIDE


@njit(cache=True)
def _hash(buf: np.ndarray, i: int, j: int) -> int:
    """FNV-1a of buf[i:j], as a non-negative int64."""
    h = np.uint64(14695981039346656037)
    for k in range(i, j):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    return int(np.int64(h >> np.uint64(1)))


@njit(cache=True)
def _cell_key(x: int, y: int) -> int:
    return ((x + 2_147_483_648) << 32) | (y + 2_147_483_648)


@njit(cache=True)
def _spot(key: int, mask: int) -> int:
    """Where a cell key's probe starts in a table of ``mask + 1`` (the finaliser of
    MurmurHash3: x and y both reach the low bits)."""
    z = np.uint64(key)
    z ^= z >> np.uint64(33)
    z *= np.uint64(0xFF51AFD7ED558CCD)
    z ^= z >> np.uint64(33)
    return int(np.int64(z & np.uint64(mask)))


@njit(cache=True)
def _fine_put(fkeys: np.ndarray, fvals: np.ndarray, x0: int, y0: int, verdicts: np.ndarray) -> int:
    """Enter a block of fine cell verdicts (keys from x0, y0); return how many were new."""
    mask = fkeys.shape[0] - 1
    new = 0
    for i in range(verdicts.shape[0]):
        for j in range(verdicts.shape[1]):
            key = _cell_key(x0 + i, y0 + j)
            k = _spot(key, mask)
            while fkeys[k] != _EMPTY and fkeys[k] != key:
                k = (k + 1) & mask
            if fkeys[k] == _EMPTY:
                new += 1
            fkeys[k] = key
            fvals[k] = verdicts[i, j]
    return new


@njit(cache=True)
def _fine_move(
    keys: np.ndarray, values: np.ndarray, into: np.ndarray, into_values: np.ndarray
) -> None:
    """Enter every cell of one table into a larger, empty one."""
    mask = into.shape[0] - 1
    for n in range(keys.shape[0]):
        key = keys[n]
        if key != _EMPTY:
            k = _spot(key, mask)
            while into[k] != _EMPTY:
                k = (k + 1) & mask
            into[k] = key
            into_values[k] = values[n]


@njit(cache=True)
def _fine_verdict(fkeys: np.ndarray, fvals: np.ndarray, mask: int, key: int) -> int:
    k = _spot(key, mask)
    while True:
        found = fkeys[k]
        if found == key:
            return int(fvals[k])
        if found == _EMPTY:
            return _UNKNOWN
        k = (k + 1) & mask


@njit(cache=True)
def _scan(  # noqa: PLR0915 (one compiled loop: splitting it costs calls)
    buf: np.ndarray,
    pos: int,
    end: int,
    state: np.ndarray,
    timers: np.ndarray,
    fired: np.ndarray,
    hkeys: np.ndarray,
    hslots: np.ndarray,
    ids: np.ndarray,
    events: np.ndarray,
    ints: np.ndarray,
    reals: np.ndarray,
    flon: np.ndarray,
    flat: np.ndarray,
    raster: np.ndarray,
    fkeys: np.ndarray,
    fvals: np.ndarray,
    boxes: np.ndarray,
    rules: np.ndarray,
    coords: np.ndarray,
    rings: np.ndarray,
    nb_rings: np.ndarray,
    nb_box: np.ndarray,
    nb_cluster: np.ndarray,
    detour: float,
    better_by: float,
    dirty_list: np.ndarray,
    out: np.ndarray,
    where: np.ndarray,
) -> int:
    """Apply the plain fixes from ``pos`` on; return where the first line it refuses
    starts (or ``end``). Counts go to ``out``; see the module docstring."""
    ntimers = timers.shape[0]
    stale_after = state[_STALE_AFTER]
    nboxes = state[_BOXES]
    always = state[_ALWAYS]
    hmask = state[_HMASK]
    fmask = state[_FMASK]
    x0 = state[_X0]
    y0 = state[_Y0]
    nx = state[_NX]
    ny = state[_NY]
    out[_REASON] = _DONE
    while pos < end:
        stop = pos
        while stop < end and buf[stop] != 10:
            stop += 1
        # a blank line (ASCII whitespace only) is skipped, as the reader skips it
        blank = True
        for k in range(pos, stop):
            c = buf[k]
            if c != 32 and (c < 9 or c > 13):
                blank = False
                break
        if blank:
            out[_LINES] += 1
            pos = stop + 1
            continue
        out[_REASON] = _FORM
        # -- the line: {"type":"officer.location","event_id":"…","ts":"…","officer_id":"…",
        #    "lat":…,"lon":…[,"accuracy_m":…][,"speed_mps":…][,"heading_deg":…]}
        if not _match(buf, pos, stop, _P_START):
            return pos
        i = pos + _P_START.shape[0]
        ev0 = i
        ev1 = _ident(buf, i, stop)
        if ev1 < 0 or not _match(buf, ev1, stop, _P_TS):
            return pos
        i = ev1 + _P_TS.shape[0]
        ts = _time_us(buf, i, stop)
        if ts < 0 or not _match(buf, i + 20, stop, _P_OFFICER):
            return pos
        i = i + 20 + _P_OFFICER.shape[0]
        id0 = i
        id1 = _ident(buf, i, stop)
        if id1 < 0 or not _match(buf, id1, stop, _P_LAT):
            return pos
        lat, i = _number(buf, id1 + _P_LAT.shape[0], stop)
        if i < 0 or not _match(buf, i, stop, _P_LON):
            return pos
        lon, i = _number(buf, i + _P_LON.shape[0], stop)
        if i < 0 or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            return pos
        if _match(buf, i, stop, _P_ACCURACY):
            value, i = _number(buf, i + _P_ACCURACY.shape[0], stop)
            if i < 0 or not value >= 0.0:
                return pos
        if _match(buf, i, stop, _P_SPEED):
            value, i = _number(buf, i + _P_SPEED.shape[0], stop)
            if i < 0 or not value >= 0.0:
                return pos
        if _match(buf, i, stop, _P_HEADING):
            value, i = _number(buf, i + _P_HEADING.shape[0], stop)
            if i < 0 or not 0.0 <= value < 360.0:
                return pos
        if i >= stop or buf[i] != 125:  # }
            return pos
        for k in range(i + 1, stop):  # then only JSON whitespace (a CRLF log's \r)
            c = buf[k]
            if c not in (32, 9, 13):
                return pos
        # -- the officer, as plain_fix would find them
        h = _hash(buf, id0, id1)
        k = h & hmask
        slot = -1
        while hkeys[k] != _EMPTY:
            s = hslots[k]
            if hkeys[k] == h and _same_bytes(ids[s], ints[s, _ID_LEN], buf, id0, id1):
                slot = s
                break
            k = (k + 1) & hmask
        if slot < 0 or ints[slot, _FLAGS] & _WATCHED:
            out[_REASON] = _OFFICER
            return pos
        out[_REASON] = _ORDER
        if ts <= ints[slot, _FIX_US]:
            return pos
        if _same_bytes(events[slot], ints[slot, _EVENT_LEN], buf, ev0, ev1):
            return pos  # the same event again: plain_fix says no
        # -- the timers due by now, in heap order: World._quiet_timers fires the stale
        #    timers of officers with a newer fix; so does the lane, and the World replays
        #    it (World.fire_quiet). Anything else due, and the line goes the Python way.
        while True:
            t = state[_TNEXT]
            nxt = timers[t, 0] if t < ntimers else _NEVER
            if nxt > ts or state[_AFTER] < nxt:
                if state[_AFTER] <= ts:
                    out[_REASON] = _TIMER
                    return pos  # a timer the lane does not know of is due
                break
            s = timers[t, 1]
            if s < 0:
                out[_REASON] = _TIMER
                return pos  # not a stale timer, or of an officer the lane does not know
            moved_on = -1
            if ints[s, _FLAGS] & _PLACED and ints[s, _FLAGS] & _AVAILABLE:
                moved_on = ints[s, _FIX_US] + stale_after
                if moved_on <= nxt or moved_on <= ts:
                    out[_REASON] = _TIMER
                    return pos  # the officer goes stale (an alert), or due again now
                state[_AFTER] = min(state[_AFTER], moved_on)
            fired[t] = moved_on
            state[_TNEXT] = t + 1
        # -- the same neighbourhood, by a memo cell with one verdict
        x = math.floor(lon / CELL_DEG)
        y = math.floor(lat / CELL_DEG)
        if x0 <= x < x0 + nx and y0 <= y < y0 + ny:
            verdict = int(raster[x - x0, y - y0])
        else:
            verdict = CELL_OUTSIDE  # beyond every neighbourhood's bounds, with a margin
        if verdict == CELL_MIXED:
            fx = math.floor(lon / FINE_DEG)
            fy = math.floor(lat / FINE_DEG)
            verdict = _fine_verdict(fkeys, fvals, fmask, _cell_key(fx, fy))
        if verdict == _UNKNOWN:
            out[_REASON] = _CELL
            where[0] = lon
            where[1] = lat
            return pos
        nbhd = ints[slot, _NBHD]
        place = verdict  # the memo's: a neighbourhood, outside, or mixed
        mixed = verdict == CELL_MIXED
        if mixed:
            # an edge crosses the cell: the point in their neighbourhood's polygon?
            if nbhd < 0:
                out[_REASON] = _EDGE
                return pos  # (outside the force area before: locate decides)
            side = _inside(lon, lat, coords, rings, nb_rings[nbhd, 0], nb_rings[nbhd, 1])
            if side < 0:
                out[_REASON] = _EDGE
                return pos  # on the edge, or nearly: the exact test decides
            if side:
                verdict = nbhd
            else:  # not theirs: whose, as Areas.locate says (or outside every one)
                verdict = _locate(lon, lat, coords, rings, nb_rings, nb_box)
                if verdict == _NEAR_EDGE:
                    out[_REASON] = _EDGE
                    return pos
                place = verdict
        if verdict != nbhd and (
            place < 0
            or nbhd < 0
            or (ints[slot, _FLAGS] & _AVAILABLE and nb_cluster[place] != nb_cluster[nbhd])
        ):
            # into or out of the force area, or where a cluster's cover may change
            out[_REASON] = _MOVED
            return pos
        # -- no pending dispatch a mover could win from here: _Contest.containing, then
        #    _beats (where a limit is near, it refuses: never fewer than plain_fix)
        out[_REASON] = _CONTEST
        if ints[slot, _FLAGS] & _CONTENDS:
            if always:
                return pos
            tags = ints[slot, _TAGS]
            for b in range(nboxes):
                if not (boxes[b, 0] <= lat <= boxes[b, 1] and boxes[b, 2] <= lon <= boxes[b, 3]):
                    continue
                grade = int(boxes[b, 7])
                if grade >= ints[slot, _HELD_GRADE]:
                    continue  # held at this grade or higher: the holder keeps them
                speed = reals[slot, _SPEED + grade]
                if speed <= 0.0:
                    continue  # no ETA: they cannot beat anyone
                site_lon, site_lat = boxes[b, 4], boxes[b, 5]
                distance = _haversine(lon, lat, site_lon, site_lat)
                if distance > boxes[b, 6] * speed / detour * (1 + _MARGIN):
                    continue  # beyond reach of the best ETA
                if ints[slot, _HELD_ROW] == b:
                    continue  # recommended for it already
                if not (tags & rules[b, _ROLES] and tags & rules[b, _STATUSES]):
                    continue  # the rule does not admit them
                if rules[b, _SKILLS] & ~ints[slot, _SKILL_BITS]:
                    continue
                if ints[slot, _SHIFT_END] <= ts:
                    continue
                eta = distance * detour / speed
                first = int(rules[b, _FIRST])
                if first == -2:
                    return pos  # a first officer the lane does not know: ask
                limit = boxes[b, 6]  # the best ETA when computed, unless they have moved
                if (
                    first >= 0
                    and ints[first, _FLAGS] & _PLACED
                    and reals[first, _SPEED + grade] > 0.0
                ):
                    limit = (
                        _haversine(reals[first, _LON], reals[first, _LAT], site_lon, site_lat)
                        * detour
                        / reals[first, _SPEED + grade]
                    )
                if eta + better_by < limit + abs(limit) * _MARGIN + _MARGIN:
                    return pos
        # -- a held officer still within their ETA when recommended (see World._drifted)
        if reals[slot, _DRIFT_SPEED] > 0.0:
            eta = (
                _haversine(lon, lat, reals[slot, _DRIFT_LON], reals[slot, _DRIFT_LAT])
                * detour
                / reals[slot, _DRIFT_SPEED]
            )
            if eta * (1 + _MARGIN) > reals[slot, _DRIFT_LIMIT]:
                out[_REASON] = _DRIFT
                return pos
        # -- plain: apply it
        ints[slot, _FIX_US] = ts
        events[slot, : ev1 - ev0] = buf[ev0:ev1]
        ints[slot, _EVENT_LEN] = ev1 - ev0
        reals[slot, _LON] = lon
        reals[slot, _LAT] = lat
        f = ints[slot, _FLEET]
        if f >= 0:
            flon[f] = lon
            flat[f] = lat
        if not ints[slot, _UNSYNCED] & _LISTED:
            dirty_list[out[_DIRTY]] = slot
            out[_DIRTY] += 1
        if verdict != nbhd:  # another neighbourhood of the same cluster (or not available)
            ints[slot, _NBHD] = place
            ints[slot, _UNSYNCED] = _FIXED | _REPLACED | _LISTED
            out[_REPLACES] += 1
            if mixed:
                out[_LOCATES] += 1
        else:
            ints[slot, _UNSYNCED] |= _FIXED | _LISTED
        out[_MAX_US] = max(out[_MAX_US], ts)
        out[_LINES] += 1
        out[_APPLIED] += 1
        out[_LAST_US] = ts
        out[_REASON] = _DONE
        pos = stop + 1
    return pos


def _ring_arrays(areas: Areas) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every neighbourhood's rings, for points in mixed memo cells (see _inside): the
    vertices, where each ring starts in them, each neighbourhood's first and last ring
    (by index, as Areas.index_of), and its box (west, south, east, north) around them."""
    rings = [areas.rings(k) for k in range(len(areas.neighbourhoods))]
    flat = [ring for nb in rings for ring in nb]
    coords = np.ascontiguousarray(np.concatenate(flat) if flat else np.zeros((0, 2)))
    starts = np.cumsum([0, *(len(ring) for ring in flat)]).astype(np.int64)
    ends = np.cumsum([0, *(len(nb) for nb in rings)]).astype(np.int64)
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


class FixLane:
    """The World's plain-fix checks over numpy copies, for whole blocks of log lines.

    Attach it to a fresh or restored World; it keeps its copy current through
    ``World.touched``. Use: :meth:`scan` a block; at a line it refuses, :meth:`sync`, give
    the line the usual way, then :meth:`refresh`; :meth:`finish` at the end.
    """

    def __init__(self, world: World) -> None:
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
        stale_after = timedelta(seconds=world.policy.stale_after_s) // _ONE_US
        self._state = np.array(
            [0, _NEVER, 0, 0, 255, (1 << 16) - 1, x0, y0, nx, ny, stale_after], np.int64
        )
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
            slots = self._dirty_list[:count]
            replaced = (self._ints[slots, _UNSYNCED] & _REPLACED) != 0
            if replaced.any():
                self._store(slots[replaced])
                slots = slots[~replaced]
            self._ints[slots, _UNSYNCED] = _FIXED  # (no longer listed)
            names = self._names
            self._world.lag(
                [names[s] for s in slots.tolist()], self._catch_up, self._when(int(out[_MAX_US]))
            )
            out[_DIRTY] = 0
            out[_MAX_US] = 0
        self._replay_timers()

    def finish(self) -> None:
        """At the end of the log: :meth:`sync`, and store every lagging fix."""
        self.sync()
        self._world.catch_up_all()

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
        bx, by = fx - fx % 10, fy - fy % 10
        verdicts = areas.learn_cells(bx, by, 10, 10, fine=True)
        if 2 * (self._fine_count + verdicts.size) > len(self._fkeys):
            keys, values = self._fkeys, self._fvals
            self._fkeys = np.full(4 * len(keys), _EMPTY, dtype=np.int64)
            self._fvals = np.zeros(4 * len(keys), dtype=np.int32)
            self._state[_FMASK] = len(self._fkeys) - 1
            _fine_move(keys, values, self._fkeys, self._fvals)
        self._fine_count += _fine_put(self._fkeys, self._fvals, bx, by, verdicts)
