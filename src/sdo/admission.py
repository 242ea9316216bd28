"""The one admission rule: what the worker, the console and the evaluator take in.

Theory of operation
-------------------
Every input record passes :func:`admit` before it changes anything, in every component
that reads events (ARCHITECTURE, "Time and order"): the worker's input loop, the console's
feed and ``sdo evaluate``'s reader. So what one refuses, none shows. A record is refused
(:class:`~sdo.errors.InvalidEvent`, with the reason the dead letter carries) when:

* it has no value: a tombstone, Kafka's ordinary delete on a compacted topic. sdo's topics
  carry events, never deletes;
* it is not a valid event of the type its topic carries (:func:`sdo.events.decode`: size,
  JSON, the contract);
* its Kafka key is not the id of what the event is about (CONTRACT §1: the key decides
  the partition, and an officer's or an incident's events must share one), or, read from
  Kafka, it has none (a log's lines have no keys to check);
* a time in it is not sane: ``ts`` before :data:`EARLIEST` (2000-01-01), or more than
  ``max_ahead_s`` past the *wall clock of the process admitting it* (a producer-set Kafka
  record time proves nothing about the event: the record time is the producer's to
  choose); a profile's ``shift_end`` before 2000 or more than :data:`SHIFT_AHEAD` after
  its ``ts``;
* an incident lies outside the force area (every component would have to refuse it).

The wall clock is the caller's, passed in (``wall``): the rule itself reads no clock.
``max_ahead_s`` is a setting (``--max-ahead``, ``SDO_MAX_AHEAD``): the allowed clock skew
of producers, which a sped-up feed (``sdo demo --speed``) raises to what it needs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sdo.domain.geo import Areas
from sdo.errors import InvalidEvent
from sdo.events import Fix, Incident, OfficerProfile, decode, rfc3339

__all__ = [
    "DEFAULT_MAX_AHEAD_S",
    "EARLIEST",
    "KEY_FIELDS",
    "SHIFT_AHEAD",
    "Admission",
    "admit",
    "check_times",
]

#: No event time before this is believed (a zeroed or defaulted clock: 0001-01-01, 1970).
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
#: Default of ``--max-ahead``: how far past the admitting process's clock an event may be.
DEFAULT_MAX_AHEAD_S: Final = 300.0
#: A shift ends at most this long after the profile that announces it.
SHIFT_AHEAD: Final = timedelta(days=7)
#: The field each event type's Kafka key must equal (CONTRACT §1).
KEY_FIELDS: Final = {
    "officer.location": "officer_id",
    "officer.status": "officer_id",
    "officer.profile": "officer_id",
    "incident": "incident_id",
    "deployment": "incident_id",
    "recommendation": "incident_id",
}


def check_times(ts: datetime, wall: datetime, max_ahead_s: float) -> None:
    """Refuse an event time before :data:`EARLIEST` or more than ``max_ahead_s`` past
    ``wall`` (the admitting process's clock)."""
    if ts < EARLIEST:
        raise InvalidEvent(
            f"ts {rfc3339(ts)} is before {EARLIEST.date().isoformat()}: not a time sdo believes"
        )
    ahead = (ts - wall).total_seconds()
    if ahead > max_ahead_s:
        raise InvalidEvent(
            f"ts {rfc3339(ts)} is {_span(ahead)} ahead of this process's clock "
            f"({rfc3339(wall.replace(microsecond=0))}; at most {_span(max_ahead_s)} "
            "allowed, --max-ahead)"
        )


def admit(
    raw: bytes | str | None,
    *,
    expect: str,
    wall: datetime,
    max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
    key: bytes | str | None = None,
    areas: Areas | None = None,
    keyed: bool = False,
) -> Any:
    """The event in ``raw`` (the value of a record on the topic of type ``expect``), if
    admitted; else :class:`~sdo.errors.InvalidEvent` with the reason (see the module
    docstring). ``key``: the record's Kafka key (None or empty: not checked, unless
    ``keyed``: a Kafka record, which must have one). ``areas``: the force area an incident
    must lie in (None: not checked)."""
    if raw is None:
        raise InvalidEvent(
            "tombstone: a record with no value (a Kafka delete); sdo topics carry events"
        )
    event = decode(raw, expect=expect)
    _check_event(event, wall, max_ahead_s, areas)
    field = KEY_FIELDS.get(expect)
    if field is not None and keyed and key in (None, b"", ""):
        raise InvalidEvent(
            f"no Kafka key: a {expect} record is keyed by its {field} "
            f"({getattr(event, field)!r}), which decides its partition"
        )
    if field is not None and key is not None and key not in (b"", ""):
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        subject = getattr(event, field)
        if text != subject:
            raise InvalidEvent(f"Kafka key {text!r} does not match {field} {subject!r}")
    return event


def _check_event(event: Any, wall: datetime, max_ahead_s: float, areas: Areas | None) -> None:
    check_times(event.ts, wall, max_ahead_s)
    if (
        areas is not None
        and isinstance(event, Incident)
        and areas.locate(event.lon, event.lat) is None
    ):
        raise InvalidEvent(
            f"incident location (lat {event.lat}, lon {event.lon}) is outside the force area"
        )
    if isinstance(event, OfficerProfile) and event.shift_end is not None:
        end = event.shift_end
        if end < EARLIEST or end > event.ts + SHIFT_AHEAD:
            raise InvalidEvent(
                f"shift_end {rfc3339(end)} is not within {SHIFT_AHEAD.days} days after the "
                f"profile's ts {rfc3339(event.ts)}"
            )


class Admission:
    """:func:`admit` with one component's settings and clock; also for a log's lines.

    ``clock()`` is the wall clock (an adapter's, read at each call); ``areas`` and
    ``keyed`` (records read from Kafka: each must have its key) as for :func:`admit`.
    """

    __slots__ = ("areas", "clock", "keyed", "max_ahead_s")

    def __init__(
        self,
        *,
        max_ahead_s: float = DEFAULT_MAX_AHEAD_S,
        areas: Areas | None = None,
        clock: Any = None,
        keyed: bool = False,
    ) -> None:
        self.max_ahead_s = max_ahead_s
        self.areas = areas
        self.clock = clock or _utc_now
        self.keyed = keyed

    def __call__(self, raw: bytes | str | None, expect: str, key: bytes | str | None = None) -> Any:
        return admit(
            raw,
            expect=expect,
            wall=self.clock(),
            max_ahead_s=self.max_ahead_s,
            key=key,
            areas=self.areas,
            keyed=self.keyed,
        )

    def event(self, event: Any) -> Any:
        """Check an already decoded event (a log line): its times and, for an incident,
        its place. Returns it, or raises :class:`~sdo.errors.InvalidEvent`."""
        if isinstance(event, Fix):
            check_times(event.ts, self.clock(), self.max_ahead_s)
            return event
        _check_event(event, self.clock(), self.max_ahead_s, self.areas)
        return event

    def window_us(self) -> tuple[int, int]:
        """(earliest, latest) event time admitted now, in microseconds since the epoch:
        the bounds the evaluator's compiled fix lane applies (a line outside goes the
        general way, and is refused here)."""
        latest = self.clock() + timedelta(seconds=self.max_ahead_s)
        return _us(EARLIEST), _us(latest)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _us(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _span(seconds: float) -> str:
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
