"""The fix lane's compiled loop (numba) and the layout of its arrays.

:class:`sdo.domain.lane.FixLane` keeps the arrays and calls :func:`_scan` on blocks of
log lines; its module docstring says what the loop checks and why. The loop is here, in
a module of its own, because numba compiles these functions and mypyc compiles
``FixLane`` (see :mod:`sdo.compiled`): a module is compiled by one or the other.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
from numba import njit

from sdo.domain.geo import CELL_DEG, CELL_MIXED, CELL_OUTSIDE, FINE_DEG, haversine_m

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
    _EARLIEST,  # us: the admission rule's window of event times (sdo.admission);
    _LATEST,  # a line outside it goes the general way, which refuses it
) = range(13)


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
def _time_us(buf: np.ndarray, i: int, end: int) -> tuple[int, int]:
    """``YYYY-MM-DDTHH:MM:SS[.f]Z`` at ``i`` (a fraction of 1 to 6 digits), followed by its
    closing quote: (microseconds since the epoch, where that quote is), or (-1, -1) for
    anything else, including an impossible date."""
    if i + 21 > end:
        return -1, -1
    if (
        buf[i + 4] != 45
        or buf[i + 7] != 45
        or buf[i + 10] != 84
        or buf[i + 13] != 58
        or buf[i + 16] != 58
    ):
        return -1, -1
    j = i + 19
    fraction = 0
    if buf[j] == 46:  # "."
        j += 1
        k = 0
        while j < end and k < 7 and 48 <= buf[j] <= 57:
            fraction = fraction * 10 + (buf[j] - 48)
            j += 1
            k += 1
        if k == 0 or k > 6:
            return -1, -1
        for _ in range(6 - k):
            fraction *= 10
    if j + 1 >= end or buf[j] != 90 or buf[j + 1] != 34:
        return -1, -1
    year = _digits(buf, i, 4)
    month = _digits(buf, i + 5, 2)
    day = _digits(buf, i + 8, 2)
    hour = _digits(buf, i + 11, 2)
    minute = _digits(buf, i + 14, 2)
    second = _digits(buf, i + 17, 2)
    if year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23:
        return -1, -1
    if minute < 0 or minute > 59 or second < 0 or second > 59:
        return -1, -1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _MONTH_DAYS[month] + (1 if month == 2 and leap else 0):
        return -1, -1
    # days from 1970-01-01 (Howard Hinnant's days_from_civil)
    y = year - 1 if month <= 2 else year
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = month - 3 if month > 2 else month + 9
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
    return seconds * 1_000_000 + fraction, j + 1


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
    earliest = state[_EARLIEST]
    latest = state[_LATEST]
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
        ts, i = _time_us(buf, i, stop)
        if ts < earliest or ts > latest or not _match(buf, i, stop, _P_OFFICER):
            return pos
        i = i + _P_OFFICER.shape[0]
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


@njit(cache=True)
def _dirty_parts(dirty: np.ndarray, count: int, ints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` slots of ``dirty`` (moved since the last sync) apart: those
    moved into another neighbourhood (``_REPLACED``: the World must store them now), and
    the others, marked ``_FIXED`` only (no longer listed: their fix may lag)."""
    replaced = np.empty(count, dtype=np.int64)
    plain = np.empty(count, dtype=np.int64)
    r = p = 0
    for i in range(count):
        slot = dirty[i]
        if ints[slot, _UNSYNCED] & _REPLACED:
            replaced[r] = slot
            r += 1
        else:
            ints[slot, _UNSYNCED] = _FIXED
            plain[p] = slot
            p += 1
    return replaced[:r], plain[:p]
