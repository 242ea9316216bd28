"""``sdo import police-uk``: police.uk street-level crime records → an incident event log.

Theory of operation
-------------------
police.uk publishes *recorded crime*, one row per crime, with a month (no day, no time), a
location snapped to one of a few thousand anonymous map points, a crime ``type`` and
nothing about the call that reported it. To replay such a file through ``sdo evaluate`` we
turn each row into one ``incident`` event (CONTRACT §1), a ``resourced`` update a few
minutes later and a ``closed`` update a few hours later, filling in what the data does not
say with seeded, documented guesses:

* **When.** Each row gets a day of its month and a local (Europe/London) time of day drawn
  from a profile for its type — the city-centre night-time economy for violence and
  public order, shop hours for shoplifting and theft, a general demand curve (the one the
  simulator uses) otherwise — with weekday weights (Friday and Saturday busier for the
  night-time economy). The time is converted to UTC for ``ts``.
* **What the handler recorded.** THRIVE+ answers are drawn from a per-type profile (table
  below); the grade and response then follow from the real grading rules, exactly as for
  a live call. Most recorded crime is reported after the event with a line of enquiry
  (investigation, not ongoing); violence, robbery, weapons and public order are more often
  ongoing with the offender present and higher threat or harm; ASB and drugs are often
  persistent with a prevention opportunity (the neighbourhood route).
* **Decisions.** police.uk records no deployments, so the log cannot say who went. Each
  incident is marked ``resourced`` 2-10 minutes after it opens (the SDO's decision window)
  and ``closed`` 2-6 hours after it opens. Without the first, every incident would await a
  decision for hours and hold its recommended officer all that time, starving later calls
  (worst under ``closest``) — an artefact of the missing data, not of either policy.
* **Where.** The row's latitude/longitude as published (already snapped by police.uk). Rows
  outside every area of ``--areas`` are skipped and counted; the ``ward`` column is not
  used (the point decides).

Determinism: every draw for a row comes from ``random.Random(f"{seed}:{row id}")``, so a
row gets the same time and answers whatever else is in the file, and the same file, seed
and areas give the same bytes (gzip with ``mtime=0``, as ``sdo simulate``). Rows are
read whole (a police.uk extract is a few tens of thousands of rows) and sorted by time.

Officers: police.uk has none. ``--officers K`` merges in a synthetic roster with shifts,
breaks and AVL from :func:`sdo.evaluation.simulate.simulate` (``incidents_per_day=0``: its own
incidents and dispatcher are switched off) over the span of the converted records, so the
recommendations have officers to name. Simulated shift hours are UTC hours (one hour early
in British Summer Time). There are no recorded deployments, so agreement with recorded
deployments is not measured on these logs.

Per-type profile (probabilities; ``sev`` = chance the named THRIVE dimension is medium /
high, the other two are none or low; ``off`` = offender present given ongoing; ``vuln`` =
vulnerability medium or high; ``inv``/``pers``/``prev`` = investigation, persistent,
prevention; ``hours`` = time-of-day profile):

====================== ================= ===== ==== =============== ==== ==== ==== ==== ======
police.uk type         category          ongo  off  sev (dim)       vuln inv  pers prev hours
====================== ================= ===== ==== =============== ==== ==== ==== ==== ======
anti-social-behaviour  asb               .15   .25  .08/.01 harm    .05  .10  .50  .60  general
violent-crime          violence          .25   .60  .35/.12 harm    .20  .85  .10  .10  night
vehicle-crime          vehicle_crime     .05   .50  .05/0 risk      .02  .60  .10  .15  general
shoplifting            shoplifting       .15   .60  .05/0 threat    .02  .80  .20  .20  retail
other-theft            theft             .05   .30  .05/0 harm      .05  .50  .05  .10  retail
criminal-damage-arson  criminal_damage   .10   .50  .10/.03 harm    .05  .60  .20  .25  general
theft-from-the-person  theft_from_person .10   .30  .10/0 harm      .15  .60  .05  .10  retail
public-order           public_order      .40   .70  .25/.05 threat  .10  .40  .15  .20  night
robbery                robbery           .30   .50  .40/.30 threat  .20  .90  .05  .10  night
burglary               burglary          .08   .60  .25/.03 risk    .15  .80  .05  .20  general
drugs                  drugs             .30   .90  .10/0 threat    .05  .70  .35  .35  night
bicycle-theft          theft             .03   .30  0/0 harm        .02  .35  .05  .10  retail
possession-of-weapons  weapons           .50   .80  .40/.35 threat  .05  .90  .05  .10  night
other-crime (and any)  other             .05   .50  .15/0 harm      .20  .60  .05  .05  general
====================== ================= ===== ==== =============== ==== ==== ==== ==== ======

Engagement is a coin toss. Ongoing violence, robbery, weapons and public order sometimes
need two officers and a skill (taser; public order at night); ongoing burglary sometimes a
dog; drugs sometimes a search-trained officer. Over the Birmingham city-centre file
(17,260 rows, seed 1) the default rules grade these answers to 13 % emergency, 23 %
priority, 14 % scheduled, 5 % neighbourhood, 33 % investigator and 12 % signpost.

Caveats, stated wherever the figures are quoted: month-only dates (times are synthetic),
snapped locations, recorded crime rather than calls for service (no non-crime demand;
drugs and weapons offences are mostly found by police rather than reported), and THRIVE+
answers that are plausible guesses per type, not what a handler recorded.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import heapq
import random
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from sdo.domain.geo import Areas
from sdo.errors import ConfigError
from sdo.events import Incident, IncidentState, Level, Thrive

__all__ = ["PROFILES", "Conversion", "Profile", "cli", "convert", "read_records"]

#: Columns a police.uk street-level CSV must have (``street`` and ``ward`` are optional).
REQUIRED_COLUMNS: Final = ("type", "month", "latitude", "longitude")
#: Local time of the records (police.uk covers England, Wales and Northern Ireland).
LOCAL: Final = ZoneInfo("Europe/London")
#: The ``resourced`` update (the SDO's decision) follows after this many seconds (uniform).
DECIDED_AFTER_S: Final = (2 * 60, 10 * 60)
#: The ``closed`` update follows the incident after this many seconds (uniform).
CLOSE_AFTER_S: Final = (2 * 3600, 6 * 3600)
#: Bad rows reported one by one on stderr; beyond this they are only counted.
MAX_REPORTED: Final = 10

_N, _L, _M, _H = Level.NONE, Level.LOW, Level.MEDIUM, Level.HIGH

#: Relative demand by local hour (0-23) and by weekday (Monday first), per profile.
_HOURS: Final[dict[str, tuple[float, ...]]] = {
    # the simulator's general demand curve: quiet 03-07, peaking late afternoon and evening
    "general": (
        1.00, 0.85, 0.65, 0.45, 0.35, 0.30, 0.40, 0.60, 0.80, 0.90, 1.00, 1.05,
        1.10, 1.15, 1.25, 1.40, 1.50, 1.55, 1.55, 1.50, 1.40, 1.30, 1.20, 1.10,
    ),
    # city-centre night-time economy: evenings and the small hours
    "night": (
        1.60, 1.50, 1.30, 0.90, 0.50, 0.30, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80,
        0.90, 0.90, 1.00, 1.00, 1.10, 1.20, 1.30, 1.40, 1.50, 1.60, 1.70, 1.70,
    ),
    # shop and office hours
    "retail": (
        0.10, 0.10, 0.05, 0.05, 0.05, 0.05, 0.10, 0.30, 0.80, 1.20, 1.50, 1.70,
        1.90, 1.90, 1.80, 1.80, 1.70, 1.50, 1.10, 0.80, 0.60, 0.40, 0.30, 0.20,
    ),
}  # fmt: skip
_WEEKDAYS: Final[dict[str, tuple[float, ...]]] = {
    "general": (1.0, 1.0, 1.0, 1.0, 1.05, 1.05, 0.95),
    "night": (0.8, 0.8, 0.9, 1.0, 1.3, 1.5, 1.2),
    "retail": (1.0, 1.0, 1.0, 1.0, 1.1, 1.3, 1.0),
}


@dataclass(frozen=True, slots=True)
class Profile:
    """How THRIVE+ answers are drawn for one police.uk crime type (see the module table)."""

    category: str
    ongoing: float
    offender: float
    medium: float
    high: float
    dimension: str  # "threat", "harm" or "risk": the one that can be raised
    vulnerable: float
    investigation: float
    persistent: float
    prevention: float
    hours: str
    two_officers: float = 0.0  # given ongoing
    skills: tuple[tuple[str, float], ...] = ()  # given ongoing (public_order: at night)


PROFILES: Final[dict[str, Profile]] = {
    "anti-social-behaviour": Profile(
        "asb", .15, .25, .08, .01, "harm", .05, .10, .50, .60, "general"),
    "violent-crime": Profile(
        "violence", .25, .60, .35, .12, "harm", .20, .85, .10, .10, "night",
        two_officers=.4, skills=(("taser", .15),)),
    "vehicle-crime": Profile(
        "vehicle_crime", .05, .50, .05, 0, "risk", .02, .60, .10, .15, "general"),
    "shoplifting": Profile(
        "shoplifting", .15, .60, .05, 0, "threat", .02, .80, .20, .20, "retail"),
    "other-theft": Profile(
        "theft", .05, .30, .05, 0, "harm", .05, .50, .05, .10, "retail"),
    "criminal-damage-arson": Profile(
        "criminal_damage", .10, .50, .10, .03, "harm", .05, .60, .20, .25, "general"),
    "theft-from-the-person": Profile(
        "theft_from_person", .10, .30, .10, 0, "harm", .15, .60, .05, .10, "retail"),
    "public-order": Profile(
        "public_order", .40, .70, .25, .05, "threat", .10, .40, .15, .20, "night",
        two_officers=.4, skills=(("public_order", .3),)),
    "robbery": Profile(
        "robbery", .30, .50, .40, .30, "threat", .20, .90, .05, .10, "night",
        two_officers=.3, skills=(("taser", .2),)),
    "burglary": Profile(
        "burglary", .08, .60, .25, .03, "risk", .15, .80, .05, .20, "general",
        skills=(("dog", .15),)),
    "drugs": Profile(
        "drugs", .30, .90, .10, 0, "threat", .05, .70, .35, .35, "night",
        skills=(("search", .3),)),
    "bicycle-theft": Profile(
        "theft", .03, .30, 0, 0, "harm", .02, .35, .05, .10, "retail"),
    "possession-of-weapons": Profile(
        "weapons", .50, .80, .40, .35, "threat", .05, .90, .05, .10, "night",
        two_officers=.5, skills=(("taser", .5),)),
    "other-crime": Profile(
        "other", .05, .50, .15, 0, "harm", .20, .60, .05, .05, "general"),
}  # fmt: skip
_FALLBACK: Final = "other-crime"


@dataclass(frozen=True, slots=True)
class Record:
    """One usable row of the CSV."""

    row_id: str
    line: int
    kind: str
    street: str
    year: int
    month: int
    lat: float
    lon: float


@dataclass(slots=True)
class Conversion:
    """What a conversion read, kept and skipped."""

    rows: int = 0
    incidents: int = 0
    outside: int = 0
    outside_window: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    unknown_types: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None


# -- reading ------------------------------------------------------------------------------


def read_records(path: Path, stats: Conversion, on_bad: Any = None) -> Iterator[Record]:
    """The usable rows of a police.uk street-level CSV, in file order.

    Raises :class:`ConfigError` if the file cannot be read or lacks a required column.
    A row with an unusable month or coordinates is skipped, counted in ``stats.bad`` by
    reason and passed to ``on_bad(line, reason)``.
    """
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"police.uk CSV {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"police.uk CSV {path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        try:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ConfigError(
                    f"police.uk CSV {path}: missing column(s) {', '.join(missing)} "
                    f"(need {','.join(REQUIRED_COLUMNS)}[,street]; "
                    f"found {','.join(header) or 'nothing'})"
                )
            col = {name: header.index(name) for name in header if name}
            id_col = header.index("") if "" in header else col.get("crime id")
            for line, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                stats.rows += 1
                try:
                    yield _record(row, line, col, id_col)
                except ValueError as exc:
                    reason = str(exc)
                    stats.bad[reason.split(":", 1)[0]] += 1
                    if on_bad is not None:
                        on_bad(line, reason)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"police.uk CSV {path}: not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            raise ConfigError(f"police.uk CSV {path}: not a readable CSV ({exc})") from None


def _record(row: list[str], line: int, col: dict[str, int], id_col: int | None) -> Record:
    def cell(name: str) -> str:
        k = col.get(name)
        return row[k].strip() if k is not None and k < len(row) else ""

    month = cell("month")
    try:
        year, mon = (int(part) for part in month.split("-"))
        date(year, mon, 1)
    except ValueError:
        raise ValueError(f"bad month: {month!r} is not YYYY-MM") from None
    lat_text, lon_text = cell("latitude"), cell("longitude")
    if not lat_text or not lon_text:
        raise ValueError("no location: latitude/longitude empty")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError(f"bad location: {lat_text!r}, {lon_text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"bad location: {lat_text!r}, {lon_text!r} out of range")
    raw_id = row[id_col].strip() if id_col is not None and id_col < len(row) else ""
    return Record(
        row_id=raw_id or f"L{line}",
        line=line,
        kind=cell("type").lower(),
        street=cell("street"),
        year=year,
        month=mon,
        lat=lat,
        lon=lon,
    )


# -- converting ---------------------------------------------------------------------------


def _weighted(rng: random.Random, weights: Sequence[float]) -> int:
    x = rng.random() * sum(weights)
    for k, w in enumerate(weights):
        x -= w
        if x < 0:
            return k
    return len(weights) - 1


def _when(rec: Record, profile: Profile, rng: random.Random) -> datetime:
    """A local day and time in the record's month, from the type's profile, as UTC."""
    days = calendar.monthrange(rec.year, rec.month)[1]
    weekday = _WEEKDAYS[profile.hours]
    first = date(rec.year, rec.month, 1).weekday()
    day = 1 + _weighted(rng, [weekday[(first + d) % 7] for d in range(days)])
    hour = _weighted(rng, _HOURS[profile.hours])
    local = datetime.combine(
        date(rec.year, rec.month, day), time(hour, rng.randrange(60), rng.randrange(60))
    ).replace(tzinfo=LOCAL)
    return local.astimezone(UTC)


def _level(rng: random.Random) -> Level:
    return _L if rng.random() < 0.5 else _N


def incident_for(rec: Record, seed: int) -> tuple[Incident, Incident, Incident]:
    """The ``incident`` event for one record, its ``resourced`` and ``closed`` updates."""
    profile = PROFILES.get(rec.kind) or PROFILES[_FALLBACK]
    rng = random.Random(f"{seed}:{rec.row_id}")  # noqa: S311  (synthesis, not security)
    ts = _when(rec, profile, rng)
    ongoing = rng.random() < profile.ongoing
    offender = ongoing and rng.random() < profile.offender
    levels = {"threat": _level(rng), "harm": _level(rng), "risk": _level(rng)}
    x = rng.random()
    if x < profile.high:
        levels[profile.dimension] = _H
    elif x < profile.high + profile.medium:
        levels[profile.dimension] = _M
    if rng.random() < profile.vulnerable:
        vulnerability = _H if rng.random() < 0.2 else _M
    else:
        vulnerability = _L if rng.random() < 0.4 else _N
    thrive = Thrive(
        threat=levels["threat"],
        harm=levels["harm"],
        risk=levels["risk"],
        vulnerability=vulnerability,
        investigation=rng.random() < profile.investigation,
        engagement=rng.random() < 0.5,
        prevention=rng.random() < profile.prevention,
    )
    persistent = rng.random() < profile.persistent
    skills: list[str] = []
    officers = 1
    if ongoing:
        night = ts.astimezone(LOCAL).hour >= 21 or ts.astimezone(LOCAL).hour < 4
        for skill, p in profile.skills:
            if rng.random() < p and (skill != "public_order" or night):
                skills.append(skill)
        if rng.random() < profile.two_officers:
            officers = 2
    decided_at = ts + timedelta(seconds=rng.randint(*DECIDED_AFTER_S))
    close_at = ts + timedelta(seconds=rng.randint(*CLOSE_AFTER_S))
    iid = f"PUK-{rec.row_id}"
    where = f": {rec.street}" if rec.street else ""
    event = Incident(
        event_id=f"puk-{seed}-{rec.row_id}",
        ts=ts,
        incident_id=iid,
        lat=rec.lat,
        lon=rec.lon,
        category=profile.category,
        summary=f"police.uk {rec.kind or 'unknown type'}{where}"[:2000],
        state=IncidentState.OPEN,
        thrive=thrive,
        ongoing=ongoing,
        offender_present=offender,
        persistent=persistent,
        required_skills=tuple(skills),
        officers_required=officers,
    )
    updates = (
        event.model_copy(
            update={"event_id": f"{event.event_id}-{state.value}", "ts": at, "state": state}
        )
        for state, at in ((IncidentState.RESOURCED, decided_at), (IncidentState.CLOSED, close_at))
    )
    resourced, closed = updates
    return event, resourced, closed


def convert(
    records: Iterator[Record],
    areas: Areas,
    *,
    seed: int,
    stats: Conversion,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Incident]:
    """Every ``incident`` event and update of the usable records, ordered by ``ts``.

    Ties keep a stable order (time, then record order, then open/resourced/closed).
    Records outside every area, or outside ``[since, until)``, are counted and dropped.
    """
    keyed: list[tuple[datetime, int, Incident]] = []
    for n, rec in enumerate(records):
        if areas.locate(rec.lon, rec.lat) is None:
            stats.outside += 1
            continue
        if rec.kind not in PROFILES:
            stats.unknown_types[rec.kind or "(empty)"] += 1
        event, resourced, closed = incident_for(rec, seed)
        if (since is not None and event.ts < since) or (until is not None and event.ts >= until):
            stats.outside_window += 1
            continue
        stats.incidents += 1
        stats.by_type[rec.kind] += 1
        keyed.append((event.ts, 3 * n, event))
        keyed.append((resourced.ts, 3 * n + 1, resourced))
        keyed.append((closed.ts, 3 * n + 2, closed))
    keyed.sort(key=lambda k: (k[0], k[1]))
    if keyed:
        stats.first, stats.last = keyed[0][0], keyed[-1][0]
    return [e for _, _, e in keyed]


def with_officers(
    incidents: list[Incident], areas: Areas, *, officers: int, seed: int, start: datetime
) -> Iterator[Any]:
    """``incidents`` merged in ``ts`` order with a simulated roster and AVL (no incidents).

    The simulation runs from ``start`` to the last incident event. At equal ``ts`` the
    simulated officer events come first, so an officer booking on at a second can be
    recommended for an incident of that second.
    """
    from sdo.evaluation.simulate import simulate  # noqa: PLC0415  (only with --officers)

    if not incidents:
        return iter(())
    end = incidents[-1].ts
    hours = max((end - start).total_seconds() / 3600, 1 / 3600) + 1 / 3600
    feed = simulate(
        areas, seed=seed, hours=hours, officers=officers, start=start, incidents_per_day=0
    )
    return heapq.merge(feed, incidents, key=lambda e: e.ts)


# -- command ------------------------------------------------------------------------------


def _parse_time(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a date (YYYY-MM-DD) or RFC 3339 time") from None
    if value.tzinfo is None:  # a bare date or local time: the records' local time
        value = value.replace(tzinfo=LOCAL)
    return value.astimezone(UTC)


def cli(args: argparse.Namespace) -> int:
    """``sdo import police-uk``: write the log, report what was skipped on stderr."""
    from sdo.areas import load_areas  # noqa: PLC0415  (shapely only when the command runs)
    from sdo.cli import settings_from  # noqa: PLC0415  (cli imports this module lazily)
    from sdo.evaluation.simulate import check_new, write_log  # noqa: PLC0415

    check_new(args.out, force=args.force)
    if args.officers is not None and args.officers < 1:
        raise ConfigError("--officers must be at least 1")
    since = _parse_time(args.since, "--since")
    until = _parse_time(args.until, "--until")
    if since is not None and until is not None and until <= since:
        raise ConfigError("--until must be after --since")
    areas = load_areas(settings_from(args).areas_path)
    stats = Conversion()
    reported = 0

    def bad(line: int, reason: str) -> None:
        nonlocal reported
        reported += 1
        if reported <= MAX_REPORTED:
            sys.stderr.write(f"{args.csv}:{line}: skipped: {reason}\n")

    records = read_records(args.csv, stats, bad)
    incidents = convert(records, areas, seed=args.seed, stats=stats, since=since, until=until)
    if not incidents:
        raise ConfigError(f"{args.csv}: no incident to import ({_left_out(stats)})")
    events: Iterator[Any] = iter(incidents)
    if args.officers and incidents:
        start = since or incidents[0].ts.astimezone(LOCAL).replace(
            hour=0, minute=0, second=0
        ).astimezone(UTC)
        events = with_officers(
            incidents, areas, officers=args.officers, seed=args.seed, start=start
        )
    counts = write_log(events, args.out)
    err = sys.stderr.write
    if stats.bad:
        why = ", ".join(f"{n} {reason}" for reason, n in stats.bad.most_common())
        err(f"sdo import: {sum(stats.bad.values())} row(s) skipped as unusable: {why}\n")
    if stats.outside:
        err(f"sdo import: {stats.outside} row(s) outside every area of the area file, skipped\n")
    if stats.outside_window:
        err(f"sdo import: {stats.outside_window} row(s) outside --since/--until, skipped\n")
    if stats.unknown_types:
        kinds = ", ".join(f"{t} ({n})" for t, n in stats.unknown_types.most_common())
        err(f"sdo import: unknown crime type(s) converted as other-crime: {kinds}\n")
    span = (
        f", events {stats.first:%Y-%m-%d} to {stats.last:%Y-%m-%d}"
        if stats.first and stats.last
        else ""
    )
    err(
        f"sdo import: {stats.rows} rows -> {stats.incidents} incidents{span}; "
        f"{counts.events} events ({args.officers or 0} simulated officers on duty at once, "
        f"{counts.officers} came on duty in the log) -> {args.out}; "
        "times within each month are synthetic (seeded)\n"
    )
    if not args.officers:
        err(
            "sdo import: the log has no officers (--officers K simulates some): evaluating "
            "it gives the grading and routing shares, not attendance times\n"
        )
    return 0


def _left_out(stats: Conversion) -> str:
    """Why a conversion kept nothing, in words."""
    parts = [f"{stats.rows} row(s) read"]
    if stats.outside:
        parts.append(
            f"{stats.outside} outside every area of the area file (is --areas the area file "
            "for these records?)"
        )
    if stats.outside_window:
        parts.append(f"{stats.outside_window} outside --since/--until")
    if stats.bad:
        parts.append(f"{sum(stats.bad.values())} unusable")
    return ", ".join(parts)
