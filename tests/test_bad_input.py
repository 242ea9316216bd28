"""The bad-input catalogue (issue 7 §1), table-driven, without a broker.

Every row is one thing a producer can get wrong. Each ends in exactly one of:

* ``dead``: a dead letter on ``sdo.deadletter`` whose ``error`` contains a specific reason;
* ``ignored``: a documented benign ignore, counted under its reason (duplicates, out of
  order);
* ``benign``: accepted on purpose (documented per row), and harmless.

It never stops the agent (the next valid event is applied) and never alters state (the
tables hold exactly what they held before, for ``dead`` and ``ignored`` rows).

The rows are checked at four levels: :func:`sdo.events.decode` (contract rows), the
admission rule every component applies (:func:`sdo.admission.admit`: tombstones, absurd
times against this process's clock, Kafka keys), the pure
:class:`~sdo.domain.world.World` (state rows), and the Faust adapter's
:meth:`sdo.stream.app.Runtime.handle` with in-memory tables and a recording output (every
row, and dead-letter encoding). ``tests/integration/test_faults.py`` sends the same
catalogue through a real ``sdo worker``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Final

import orjson
import pytest

from sdo.admission import admit
from sdo.areas import load_areas
from sdo.config import DEFAULT_AREAS, DEFAULT_RULES, package_data
from sdo.domain.geo import Areas
from sdo.domain.grading import Rules
from sdo.domain.world import World
from sdo.errors import InvalidEvent, Rejected
from sdo.events import MAX_EVENT_BYTES, decode
from sdo.grade import load_rules

T0: Final = datetime(2015, 12, 1, 9, 0, tzinfo=UTC)
#: The broker timestamp of the records in the adapter-level checks (a minute after T0).
RECORD_TIME: Final = T0 + timedelta(minutes=1)
#: Inside the pilot area (north NPU); NEAR is ~1.5 km from the incidents.
INCIDENT_AT: Final = (-1.8300, 52.5500)
NEAR: Final = (-1.8300, 52.5640)
#: Central London: valid coordinates, outside every area of the (Birmingham) force.
LONDON: Final = (-0.1276, 51.5072)
#: Officer and incidents the setup creates; bad rows aim at them.
VICTIM: Final = "victim"
OPEN: Final = "I-open"
CLOSED: Final = "I-closed"

_THRIVE: Final = {
    "threat": "high",
    "harm": "medium",
    "risk": "medium",
    "vulnerability": "low",
    "investigation": True,
    "engagement": False,
    "prevention": False,
}


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def at(seconds: float) -> str:
    return iso(T0 + timedelta(seconds=seconds))


def location(
    oid: str = VICTIM, eid: str = "bad-l", ts: str | None = None, pos: tuple[float, float] = NEAR
) -> dict[str, Any]:
    return {
        "type": "officer.location",
        "event_id": eid,
        "ts": ts or at(100),
        "officer_id": oid,
        "lat": pos[1],
        "lon": pos[0],
    }


def status(
    oid: str = VICTIM, value: str = "available", eid: str = "bad-s", t: float = 100
) -> dict[str, Any]:
    return {
        "type": "officer.status",
        "event_id": eid,
        "ts": at(t),
        "officer_id": oid,
        "status": value,
    }


def profile(oid: str = VICTIM, eid: str = "bad-p", t: float = 100) -> dict[str, Any]:
    return {
        "type": "officer.profile",
        "event_id": eid,
        "ts": at(t),
        "officer_id": oid,
        "callsign": oid.upper(),
        "role": "response",
        "skills": ["taser"],
        "transport": "car",
    }


def incident(
    iid: str = OPEN,
    eid: str = "bad-i",
    t: float = 100,
    state: str = "open",
    pos: tuple[float, float] = INCIDENT_AT,
) -> dict[str, Any]:
    return {
        "type": "incident",
        "event_id": eid,
        "ts": at(t),
        "incident_id": iid,
        "lat": pos[1],
        "lon": pos[0],
        "category": "violence",
        "state": state,
        "thrive": dict(_THRIVE),
        "ongoing": True,
        "offender_present": True,
        "persistent": False,
    }


def deployment(
    iid: str = OPEN, officers: tuple[str, ...] = (VICTIM,), eid: str = "bad-d", t: float = 100
) -> dict[str, Any]:
    return {
        "type": "deployment",
        "event_id": eid,
        "ts": at(t),
        "incident_id": iid,
        "decision": "accepted",
        "officer_ids": list(officers),
        "by": "sgt.test",
    }


def setup_events() -> list[tuple[str, bytes, dict[str, Any]]]:
    """(topic attribute, key, event) the catalogue's state rows rely on, in order."""
    events = [
        ("profile", profile(eid="victim-p", t=0)),
        ("status", status(eid="victim-s", t=0)),
        ("location", location(eid="victim-l", ts=at(0))),
        ("incident", incident(OPEN, eid="open-v1", t=10)),
        ("incident", incident(CLOSED, eid="closed-v1", t=20)),
        ("incident", incident(CLOSED, eid="closed-v2", t=30, state="closed")),
    ]
    return [(topic, _key_of(event).encode(), event) for topic, event in events]


def _key_of(event: dict[str, Any]) -> str:
    return str(event.get("officer_id") or event.get("incident_id"))


def next_event(n: int = 0) -> tuple[str, bytes, dict[str, Any]]:
    """A valid event after a bad one: a first fix for a fresh officer."""
    oid = f"next-{n}"
    return "location", oid.encode(), location(oid, eid=f"next-{n}-l", ts=at(200 + n))


def with_(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out.update(changes)
    return out


def without(event: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    del out[name]
    return out


def js(obj: Any) -> bytes:
    return orjson.dumps(obj)


@dataclass(frozen=True)
class Case:
    """One row: what is sent, where, and how it must end."""

    name: str
    topic: str  # attribute of sdo.config.Topics
    build: Callable[[datetime], bytes | None]  # record time -> the value bytes (None: none)
    outcome: str  # dead | ignored | benign
    reason: str  # substring of the dead letter's error, or the ignore reason
    key: bytes | None = VICTIM.encode()
    #: the row needs the setup's state (officer, open and closed incidents)
    stateful: bool = False
    #: checked by decode() alone (no state, no adapter)
    contract: bool = True
    #: refused by the admission rule (sdo.admission), before any state is looked at
    admission: bool = False

    def value(self, record_time: datetime = RECORD_TIME) -> bytes | None:
        return self.build(record_time)


def _const(value: bytes | None) -> Callable[[datetime], bytes | None]:
    return lambda _rt: value


def _ahead_of_the_clock(_rt: datetime) -> bytes:
    """A fix a day ahead of this machine's clock (and of its record time: a producer may
    set that to anything), however long after T0 the test runs."""
    return js(location(eid="bad-future", ts=iso(datetime.now(UTC) + timedelta(days=1))))


def _at_time(text: str, topic: str) -> Callable[[datetime], bytes]:
    build = {
        "location": lambda: with_(location(eid=f"bad-{topic}-t"), ts=text),
        "status": lambda: with_(status(eid=f"bad-{topic}-t"), ts=text),
        "incident": lambda: with_(incident("I-absurd", eid=f"bad-{topic}-t"), ts=text),
        "deployment": lambda: with_(deployment(eid=f"bad-{topic}-t"), ts=text),
    }[topic]
    return lambda _rt: js(build())


_KEYS: Final = {
    "location": VICTIM.encode(),
    "status": VICTIM.encode(),
    "profile": VICTIM.encode(),
    "incident": b"I-absurd",
    "deployment": OPEN.encode(),
}


_BIG_SUMMARY: Final = "x" * (MAX_EVENT_BYTES + 1024)

CATALOGUE: Final[list[Case]] = [
    # -- malformed bytes ---------------------------------------------------------------
    Case(
        "malformed_json",
        "location",
        _const(b'{"type": "officer.location", '),
        "dead",
        "malformed JSON",
    ),
    Case("json_array", "location", _const(b"[1, 2, 3]"), "dead", "JSON object"),
    Case("json_scalar", "status", _const(b'"available"'), "dead", "JSON object"),
    Case("empty_value", "location", _const(b""), "dead", "malformed JSON"),
    Case(
        "trailing_garbage", "location", _const(js(location()) + b"\x00"), "dead", "malformed JSON"
    ),
    Case(
        "non_utf8_bytes", "location", _const(b"\xff\xfe\x00{\x80garbage"), "dead", "malformed JSON"
    ),
    Case(
        "oversized_payload",
        "incident",
        _const(js(with_(incident(eid="bad-big"), summary=_BIG_SUMMARY))),
        "dead",
        "larger than",
        key=OPEN.encode(),
    ),
    # -- wrong types -------------------------------------------------------------------
    Case("lat_as_string", "location", _const(js(with_(location(), lat="52.564"))), "dead", "lat"),
    Case("lat_as_bool", "location", _const(js(with_(location(), lat=True))), "dead", "lat"),
    Case(
        "ts_as_epoch_number", "location", _const(js(with_(location(), ts=1448960400))), "dead", "ts"
    ),
    Case(
        "bool_as_string",
        "incident",
        _const(js(with_(incident(), ongoing="yes"))),
        "dead",
        "ongoing",
        key=OPEN.encode(),
    ),
    Case(
        "skills_as_string",
        "profile",
        _const(js(with_(profile(), skills="taser"))),
        "dead",
        "skills",
    ),
    Case("unknown_status_value", "status", _const(js(status(value="asleep"))), "dead", "status"),
    Case(
        "officer_id_as_number",
        "location",
        _const(js(with_(location(), officer_id=7))),
        "dead",
        "officer_id",
        key=b"7",
    ),
    # -- unknown type, extra fields ----------------------------------------------------
    Case(
        "unknown_type",
        "location",
        _const(js(with_(location(), type="officer.teleport"))),
        "dead",
        "unknown event type",
    ),
    Case(
        "missing_type",
        "location",
        _const(js(without(location(), "type"))),
        "dead",
        "type: Field required",
    ),
    Case(
        "output_type_on_input_topic",
        "incident",
        _const(js({"type": "recommendation", "event_id": "r", "ts": at(1)})),
        "dead",
        "does not belong",
        key=OPEN.encode(),
    ),
    Case("type_of_other_topic", "status", _const(js(location())), "dead", "does not belong"),
    Case(
        "extra_field",
        "location",
        _const(js(with_(location(), altitude_m=140.0))),
        "dead",
        "altitude_m: Extra inputs are not permitted",
    ),
    Case(
        "extra_nested_field",
        "incident",
        _const(js(with_(incident(), thrive={**_THRIVE, "mood": "low"}))),
        "dead",
        "thrive.mood",
        key=OPEN.encode(),
    ),
    # -- missing or empty ids ----------------------------------------------------------
    Case(
        "missing_event_id",
        "location",
        _const(js(without(location(), "event_id"))),
        "dead",
        "event_id: Field required",
    ),
    Case(
        "blank_event_id",
        "location",
        _const(js(with_(location(), event_id="   "))),
        "dead",
        "event_id",
    ),
    Case(
        "overlong_event_id",
        "location",
        _const(js(with_(location(), event_id="e" * 200))),
        "dead",
        "event_id",
    ),
    Case(
        "missing_officer_id",
        "location",
        _const(js(without(location(), "officer_id"))),
        "dead",
        "officer_id: Field required",
    ),
    Case(
        "missing_incident_id",
        "incident",
        _const(js(without(incident(), "incident_id"))),
        "dead",
        "incident_id: Field required",
        key=OPEN.encode(),
    ),
    # -- places ------------------------------------------------------------------------
    Case(
        "lat_out_of_range",
        "location",
        _const(js(with_(location(), lat=123.0))),
        "dead",
        "lat: Input should be less than or equal to 90",
    ),
    Case(
        "lon_out_of_range",
        "location",
        _const(js(with_(location(), lon=-200.0))),
        "dead",
        "lon: Input should be greater than or equal to -180",
    ),
    # A dispatchable incident nobody can reach (a swapped lat/lon or a mis-geocoded address):
    # recommending officers to it is harmful, so it is refused with the reason.
    Case(
        "incident_outside_force_area",
        "incident",
        _const(js(incident("I-london", eid="bad-far", pos=LONDON))),
        "dead",
        "outside",
        key=b"I-london",
        contract=False,
    ),
    Case(
        "incident_lat_lon_swapped",
        "incident",
        _const(js(incident("I-swap", eid="bad-swap", pos=(INCIDENT_AT[1], INCIDENT_AT[0])))),
        "dead",
        "outside",
        key=b"I-swap",
        contract=False,
    ),
    # -- time --------------------------------------------------------------------------
    Case(
        "naive_timestamp",
        "location",
        _const(js(with_(location(), ts="2015-12-01T09:05:00"))),
        "dead",
        "timezone",
    ),
    Case(
        "garbage_timestamp", "location", _const(js(with_(location(), ts="yesterday"))), "dead", "ts"
    ),
    # The domain has no clock; the admission rule judges event time against the wall clock
    # of the process admitting it (a producer may stamp its record with any time): more
    # than --max-ahead past it is a broken producer clock. Before 2000 is no time at all.
    Case(
        "far_future_timestamp",
        "location",
        _ahead_of_the_clock,
        "dead",
        "ahead of this process's clock",
        contract=False,
        admission=True,
    ),
    *[
        Case(
            f"ts_{label}_{topic}",
            topic,
            _at_time(text, topic),
            "dead",
            reason,
            key=_KEYS[topic],
            contract=False,
            admission=True,
        )
        for label, text, reason in (
            ("9999", "9999-12-31T23:59:59Z", "ahead of this process's clock"),
            ("2100", "2100-01-01T00:00:00Z", "ahead of this process's clock"),
            ("0001", "0001-01-01T00:00:00Z", "before 2000-01-01"),
            ("1999", "1999-12-31T23:59:59Z", "before 2000-01-01"),
        )
        for topic in ("location", "status", "incident", "deployment")
    ],
    Case(
        "shift_end_9999",
        "profile",
        _const(js(with_(profile(eid="bad-shift"), shift_end="9999-12-31T23:59:59Z"))),
        "dead",
        "shift_end",
        contract=False,
        admission=True,
    ),
    # A tombstone (no value: Kafka's delete, ordinary on the compacted profile topic)
    *[
        Case(
            f"tombstone_{topic}",
            topic,
            _const(None),
            "dead",
            "tombstone",
            key=_KEYS[topic],
            contract=False,
            admission=True,
        )
        for topic in ("location", "status", "profile", "incident", "deployment")
    ],
    # -- semantic ----------------------------------------------------------------------
    Case(
        "declined_without_reason",
        "deployment",
        _const(js(with_(deployment(officers=()), decision="declined"))),
        "dead",
        "reason",
        key=OPEN.encode(),
    ),
    Case(
        "deployment_duplicate_officers",
        "deployment",
        _const(js(deployment(officers=(VICTIM, VICTIM)))),
        "dead",
        "duplicates",
        key=OPEN.encode(),
    ),
    # -- against state -----------------------------------------------------------------
    Case(
        "duplicate_event_id",
        "location",
        _const(js(location(eid="victim-l", ts=at(0)))),
        "ignored",
        "duplicate",
        stateful=True,
        contract=False,
    ),
    Case(
        "out_of_order_fix",
        "location",
        _const(js(location(eid="bad-old", ts=at(-60), pos=LONDON))),
        "ignored",
        "out_of_order",
        stateful=True,
        contract=False,
    ),
    Case(
        "update_for_closed_incident",
        "incident",
        _const(js(incident(CLOSED, eid="closed-v3", t=40))),
        "dead",
        "closed",
        key=CLOSED.encode(),
        stateful=True,
        contract=False,
    ),
    # Late but valid: it waits for its incident (bounded; refused after waiting: see
    # test_a_deployment_for_an_incident_that_never_comes_is_dead_lettered_after_waiting)
    Case(
        "deployment_unknown_incident",
        "deployment",
        _const(js(deployment("I-nowhere"))),
        "ignored",
        "waiting_for_incident",
        key=b"I-nowhere",
        stateful=True,
        contract=False,
    ),
    Case(
        "deployment_closed_incident",
        "deployment",
        _const(js(deployment(CLOSED))),
        "dead",
        "closed",
        key=CLOSED.encode(),
        stateful=True,
        contract=False,
    ),
    # Late but valid too: it waits for the officer (another worker's, not yet in the
    # table; see test_a_deployment_naming_an_officer_who_never_appears_...)
    Case(
        "deployment_unknown_officer",
        "deployment",
        _const(js(deployment(OPEN, officers=("nobody",)))),
        "ignored",
        "waiting_for_officer",
        key=OPEN.encode(),
        stateful=True,
        contract=False,
    ),
    # -- the adapter's checks ----------------------------------------------------------
    Case(
        "kafka_key_not_the_id",
        "location",
        _const(js(location(eid="bad-key"))),
        "dead",
        "does not match",
        key=b"someone-else",
        contract=False,
        admission=True,
    ),
    Case(
        "kafka_key_missing",
        "location",
        _const(js(location(eid="no-key"))),
        "dead",
        "no Kafka key",
        key=None,
        contract=False,
        admission=True,
    ),
    # -- accepted on purpose -----------------------------------------------------------
    # The three officer feeds interleave freely, so a status may arrive before the
    # profile: kept on a profile-less record that counts nowhere and is never recommended.
    Case(
        "status_for_unknown_officer",
        "status",
        _const(js(status("ghost", eid="ghost-s"))),
        "benign",
        "",
        key=b"ghost",
        stateful=True,
        contract=False,
    ),
]

#: Rows whose outcome leaves every table as it was.
UNCHANGING: Final = ("dead", "ignored")


def ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def name_of(case: Case) -> str:
    return case.name


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def areas() -> Areas:
    return load_areas(package_data(DEFAULT_AREAS))


@pytest.fixture(scope="module")
def rules() -> Rules:
    return load_rules(package_data(DEFAULT_RULES))


class Recorder:
    """An output topic that records what is sent (the shape of a Faust topic's ``send``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.stamps: list[float | None] = []

    async def send(
        self, *, key: bytes | None = None, value: bytes, timestamp: float | None = None
    ) -> None:
        self.sent.append((key, value))
        self.stamps.append(timestamp)


def make_runtime(areas: Areas, rules: Rules) -> Any:
    from sdo.admission import Admission  # noqa: PLC0415
    from sdo.stream.app import Runtime  # noqa: PLC0415  (imports Faust: only these tests)

    return Runtime(
        world=World(areas, rules),
        admit=Admission(areas=areas, keyed=True),
        topic_of={kind: f"sdo.{topic}" for topic, kind in EXPECT.items()},
        # every record is the last of its partition: caught up, every change written;
        # the one worker, assigned every input partition
        app=SimpleNamespace(
            consumer=SimpleNamespace(highwater=lambda tp: 1),
            assignor=SimpleNamespace(
                assigned_actives=lambda: [
                    SimpleNamespace(topic=f"sdo.{t}", partition=p) for t in EXPECT for p in range(4)
                ]
            ),
        ),
        input_topics=frozenset(f"sdo.{t}" for t in EXPECT),
        officers={},
        incidents={},
        availability={},
        outputs={"recommendation": Recorder(), "alert": Recorder(), "deadletter": Recorder()},
    )


EXPECT: Final = {
    "location": "officer.location",
    "status": "officer.status",
    "profile": "officer.profile",
    "incident": "incident",
    "deployment": "deployment",
}


def handle(runtime: Any, topic: str, key: bytes | None, value: bytes | None) -> None:
    # (as the worker's input loop gives a record: its partition, offset, key and value)
    asyncio.run(runtime.handle_record((f"sdo.{topic}", 0), 0, key, value, EXPECT[topic]))
    runtime.flush()  # what the consumer does before each commit: officer records to the table


def tables(runtime: Any) -> dict[str, Any]:
    return copy.deepcopy(
        {
            "officers": runtime.officers,
            "incidents": runtime.incidents,
            "availability": runtime.availability,
            "world_officers": {k: v.to_dict() for k, v in runtime.world.officers.items()},
            "world_incidents": {k: v.to_dict() for k, v in runtime.world.incidents.items()},
            "world_availability": runtime.world.availability(),
        }
    )


# -- decode: the contract rows ----------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CATALOGUE if c.contract], ids=name_of)
def test_decode_refuses_with_a_specific_reason(case: Case) -> None:
    """Every contract row fails in :func:`decode` with :class:`InvalidEvent` naming why."""
    value = case.value()
    assert value is not None
    with pytest.raises(InvalidEvent) as err:
        decode(value, expect=EXPECT[case.topic])
    assert case.reason in err.value.reason, err.value.reason


@pytest.mark.parametrize("case", [c for c in CATALOGUE if c.admission], ids=name_of)
def test_the_admission_rule_refuses_with_a_specific_reason(case: Case) -> None:
    """Every admission row fails in :func:`sdo.admission.admit` (what the worker, the
    console and the evaluator all apply) with :class:`InvalidEvent` naming why; the same
    value with an honest time and key would pass."""
    with pytest.raises(InvalidEvent) as err:
        admit(
            case.value(),
            expect=EXPECT[case.topic],
            wall=datetime.now(UTC),
            key=case.key,
            keyed=True,  # (as the worker and the console read Kafka records)
        )
    assert case.reason in err.value.reason, err.value.reason


def test_a_logs_lines_have_no_keys_to_check() -> None:
    """The evaluator admits a log's lines without keys: a keyless event passes there."""
    event = admit(js(location(eid="log-line")), expect="officer.location", wall=datetime.now(UTC))
    assert event.event_id == "log-line"


# -- the pure World: the state rows -----------------------------------------------------


def seeded_world(areas: Areas, rules: Rules) -> World:
    world = World(areas, rules)
    for _topic, _key, event in setup_events():
        world.apply(decode(js(event)))
    return world


def snapshot(world: World) -> dict[str, Any]:
    return {
        "officers": {k: v.to_dict() for k, v in world.officers.items()},
        "incidents": {k: v.to_dict() for k, v in world.incidents.items()},
        "availability": world.availability(),
        "recommendations": {
            r.incident_id: r.recommendation_id for r in world.open_recommendations()
        },
    }


@pytest.mark.parametrize(
    "case",
    [c for c in CATALOGUE if not c.contract and not c.admission],
    ids=name_of,
)
def test_world_rejects_or_ignores_without_changing_state(
    case: Case, areas: Areas, rules: Rules
) -> None:
    """State rows: ``dead`` rows raise :class:`Rejected` naming why, ``ignored`` rows return
    the ignore reason; neither changes a record, a count or a recommendation, nor emits."""
    world = seeded_world(areas, rules)
    before = snapshot(world)
    value = case.value()
    assert value is not None
    event = decode(value)
    if case.outcome == "dead":
        with pytest.raises(Rejected) as err:
            world.apply(event)
        assert case.reason in err.value.reason, err.value.reason
        assert snapshot(world) == before
    elif case.outcome == "ignored":
        effects = world.apply(event)
        assert effects.ignored == case.reason
        assert (effects.officers, effects.incidents, effects.outputs) == ([], [], [])
        assert snapshot(world) == before
    else:
        effects = world.apply(event)
        assert effects.outputs == []
        assert world.availability() == before["availability"]


def test_status_for_unknown_officer_counts_nowhere_and_is_never_recommended(
    areas: Areas, rules: Rules
) -> None:
    """A status before any profile is kept (the feeds interleave), but a profile-less
    officer is in no availability bucket and is not a candidate for an open incident."""
    world = seeded_world(areas, rules)
    world.apply(decode(js(status("ghost", eid="ghost-s", t=50))))
    world.apply(decode(js(location("ghost", eid="ghost-l", ts=at(51)))))
    assert world.officers["ghost"].status == "available"
    counted = {k: v.get("total", 0) for k, v in world.availability().items()}
    assert all(v == 1 for v in counted.values()), counted  # only the victim
    world.apply(decode(js(incident("I-2", eid="i2-v1", t=60))))
    rec = world.recommendation("I-2")
    assert rec is not None
    assert "ghost" not in [c.officer_id for c in rec.candidates]


def test_fix_outside_the_force_area_is_kept_unplaced(areas: Areas, rules: Rules) -> None:
    """Decision: an AVL fix outside every area is the truth about where the officer is
    (officers cross force borders): it is applied, unplaced, and the officer leaves every
    availability bucket rather than being counted where they no longer are."""
    world = seeded_world(areas, rules)
    assert world.availability()
    effects = world.apply(decode(js(location(eid="victim-away", ts=at(50), pos=LONDON))))
    officer = world.officers[VICTIM]
    assert (officer.lon, officer.lat) == LONDON
    assert (officer.neighbourhood, officer.npu, officer.cluster) == (None, None, None)
    assert effects.officers == [officer]
    assert all(v.get("total", 0) == 0 for v in world.availability().values())


# -- the adapter: every row -------------------------------------------------------------


@pytest.mark.parametrize("case", CATALOGUE, ids=name_of)
def test_adapter_dead_letters_or_counts_and_carries_on(
    case: Case, areas: Areas, rules: Rules
) -> None:
    """Through :meth:`Runtime.handle`: a ``dead`` row produces one dead letter (source
    topic, original key, specific error, the raw bytes as UTF-8 text or base64) and is
    counted; an ``ignored`` row is counted under its reason; neither writes a table. The
    next valid event is then applied."""
    runtime = make_runtime(areas, rules)
    if case.stateful:
        for topic, key, event in setup_events():
            handle(runtime, topic, key, js(event))
    before = tables(runtime)
    dead_before = runtime.dead.total()
    value = case.value(RECORD_TIME)

    handle(runtime, case.topic, case.key, value)

    letters = [orjson.loads(v) for _, v in runtime.outputs["deadletter"].sent]
    if case.outcome == "dead":
        assert len(letters) == 1, letters
        letter = letters[0]
        assert case.reason in letter["error"], letter["error"]
        assert letter["source_topic"] == f"sdo.{case.topic}"
        assert runtime.outputs["deadletter"].sent[0][0] == case.key
        kept = (
            base64.b64decode(letter["raw"])
            if letter.get("raw_encoding") == "base64"
            else letter["raw"].encode()
        )
        if value is None:  # a tombstone: nothing to keep
            assert kept == b""
        elif letter.get("raw_truncated"):
            # an oversized input is kept up to the size limit, and says so
            assert len(kept) == MAX_EVENT_BYTES and value.startswith(kept)
        else:
            assert kept == value
        assert runtime.dead.total() == dead_before + 1
    else:
        assert letters == [], letters
    if case.outcome == "ignored":
        assert runtime.ignored[case.reason] == 1, dict(runtime.ignored)
    if case.outcome in UNCHANGING:
        assert tables(runtime) == before

    topic, key, event = next_event()
    handle(runtime, topic, key, js(event))
    assert runtime.officers["next-0"]["fix_event"] == "next-0-l"


def test_non_utf8_bytes_are_kept_as_base64() -> None:
    """The raw bytes of a value that is not UTF-8 reach the dead letter intact (base64)."""
    case = next(c for c in CATALOGUE if c.name == "non_utf8_bytes")
    runtime = make_runtime(
        load_areas(package_data(DEFAULT_AREAS)), load_rules(package_data(DEFAULT_RULES))
    )
    handle(runtime, case.topic, case.key, case.value())
    ((_, value),) = runtime.outputs["deadletter"].sent
    letter = orjson.loads(value)
    assert letter["raw_encoding"] == "base64"
    assert base64.b64decode(letter["raw"]) == case.value()


def test_catalogue_covers_issue_7() -> None:
    """The catalogue names every kind of bad input issue 7 lists (a guard against rows
    being dropped)."""
    names = set(ids(CATALOGUE))
    required = {
        "malformed_json",
        "lat_as_string",
        "unknown_type",
        "extra_field",
        "missing_officer_id",
        "lat_out_of_range",
        "incident_outside_force_area",
        "naive_timestamp",
        "far_future_timestamp",
        "oversized_payload",
        "duplicate_event_id",
        "out_of_order_fix",
        "status_for_unknown_officer",
        "update_for_closed_incident",
        "deployment_unknown_incident",
        "deployment_unknown_officer",
        "kafka_key_not_the_id",
        "non_utf8_bytes",
        # issue 25: tombstones and absurd times on every input topic
        *(f"tombstone_{t}" for t in ("location", "status", "profile", "incident", "deployment")),
        *(f"ts_9999_{t}" for t in ("location", "status", "incident", "deployment")),
        *(f"ts_2100_{t}" for t in ("location", "status", "incident", "deployment")),
        *(f"ts_0001_{t}" for t in ("location", "status", "incident", "deployment")),
    }
    assert required <= names, required - names
    assert len(names) == len(CATALOGUE)


def test_an_unexpected_exception_is_an_internal_error_dead_letter_and_the_next_applies(
    areas: Areas, rules: Rules
) -> None:
    """A bug that raises while one record is applied (anything but bad input) never stops
    the agent: the record is dead-lettered as ``internal error: <type>: <message>``,
    counted, logged with its traceback, and the next record is applied."""

    class Buggy(World):
        def apply(self, event: Any) -> Any:
            if getattr(event, "event_id", "") == "boom-l":
                raise OverflowError("date value out of range")
            return super().apply(event)

    runtime = make_runtime(areas, rules)
    runtime.world = Buggy(areas, rules)
    handle(runtime, "location", VICTIM.encode(), js(location(eid="boom-l")))
    ((key, value),) = runtime.outputs["deadletter"].sent
    letter = orjson.loads(value)
    assert letter["error"] == "internal error: OverflowError: date value out of range"
    assert letter["source_topic"] == "sdo.location" and key == VICTIM.encode()
    assert runtime.internal_errors == 1
    topic, key, event = next_event()
    handle(runtime, topic, key, js(event))
    assert runtime.officers["next-0"]["fix_event"] == "next-0-l"


def test_a_deployment_for_an_incident_that_never_comes_is_dead_lettered_after_waiting(
    areas: Areas, rules: Rules
) -> None:
    """A deployment read before its incident waits (no dead letter); once event time is
    the waiting bound past it with no incident, it is dead-lettered from the deployment
    topic, keyed by its incident, with its own JSON as raw and the reason."""
    from sdo.domain.waiting import WAIT  # noqa: PLC0415

    runtime = make_runtime(areas, rules)
    for topic, key, event in setup_events():
        handle(runtime, topic, key, js(event))
    handle(runtime, "deployment", b"I-nowhere", js(deployment("I-nowhere", t=100)))
    assert runtime.outputs["deadletter"].sent == []
    later = location("next-9", eid="later-l", ts=at(100 + WAIT.total_seconds()))
    handle(runtime, "location", b"next-9", js(later))
    ((key, value),) = runtime.outputs["deadletter"].sent
    letter = orjson.loads(value)
    assert key == b"I-nowhere" and letter["source_topic"] == "sdo.deployment"
    assert letter["error"].startswith("deployment for unknown incident I-nowhere (waited")
    assert orjson.loads(letter["raw"])["event_id"] == "bad-d"


def test_a_deployment_naming_an_officer_who_never_appears_is_dead_lettered_after_waiting(
    areas: Areas, rules: Rules
) -> None:
    """A deployment naming an officer not known waits (no dead letter, no commit past
    it); once event time is the waiting bound past it, it is dead-lettered with the
    reason, keyed by its incident, and the incident still awaits a decision."""
    from sdo.domain.waiting import WAIT  # noqa: PLC0415

    runtime = make_runtime(areas, rules)
    for topic, key, event in setup_events():
        handle(runtime, topic, key, js(event))
    handle(runtime, "deployment", OPEN.encode(), js(deployment(OPEN, officers=("nobody",))))
    assert runtime.outputs["deadletter"].sent == []
    assert "bad-d" in runtime.waiting, "held: no commit past it"
    later = location("next-9", eid="later-l", ts=at(100 + WAIT.total_seconds()))
    handle(runtime, "location", b"next-9", js(later))
    ((key, value),) = runtime.outputs["deadletter"].sent
    letter = orjson.loads(value)
    assert key == OPEN.encode() and letter["source_topic"] == "sdo.deployment"
    assert letter["error"].startswith("deployment names unknown officer nobody (waited")
    assert runtime.world.incidents[OPEN].awaiting_deployment


def test_a_deployment_naming_an_officer_not_known_yet_is_applied_when_they_are(
    areas: Areas, rules: Rules
) -> None:
    """The officer's first event (here their profile, as another worker's record merged
    from the table would be) applies the deployment that waited for them: the incident
    is resourced with both officers, and both are en route."""
    runtime = make_runtime(areas, rules)
    for topic, key, event in setup_events():
        handle(runtime, topic, key, js(event))
    two = deployment(OPEN, officers=(VICTIM, "late"), t=110)
    handle(runtime, "deployment", OPEN.encode(), js(two))
    assert not runtime.world.incidents[OPEN].assigned
    handle(runtime, "profile", b"late", js(profile("late", eid="late-p", t=120)))
    record = runtime.world.incidents[OPEN]
    assert record.assigned == (VICTIM, "late") and record.decision_event == "bad-d"
    statuses = {oid: runtime.world.officers[oid].status.value for oid in (VICTIM, "late")}
    assert statuses == {VICTIM: "en_route", "late": "en_route"}
    assert runtime.outputs["deadletter"].sent == []
    runtime.flush()
    assert "bad-d" not in runtime.waiting, "applied: the commit may pass it"


def test_outputs_carry_the_worlds_clock_as_record_time_and_alerts_their_identity_as_key(
    areas: Areas, rules: Rules
) -> None:
    """Recommendations and alerts are published with the record time of their ``ts`` (the
    World's clock, not the wall clock), recommendations keyed by incident and numbered,
    alerts keyed by kind and subject (a raise and its clear share a partition)."""
    runtime = make_runtime(areas, rules)
    for topic, key, event in setup_events():
        handle(runtime, topic, key, js(event))
    # a deadline alert: event time passes the open incident's grade 1 deadline
    handle(runtime, "location", b"next-1", js(location("next-1", eid="n1", ts=at(10 + 15 * 60))))
    recs = runtime.outputs["recommendation"]
    assert recs.sent, "the open incident was recommended"
    for (key, value), stamp in zip(recs.sent, recs.stamps, strict=True):
        rec = orjson.loads(value)
        assert key == rec["incident_id"].encode() and rec["seq"] >= 1
        assert stamp == datetime.fromisoformat(rec["ts"]).timestamp()
    alerts = runtime.outputs["alert"]
    kinds = [orjson.loads(v)["kind"] for _, v in alerts.sent]
    assert "unresourced" in kinds, kinds
    for (key, value), stamp in zip(alerts.sent, alerts.stamps, strict=True):
        alert = orjson.loads(value)
        assert key == f"{alert['kind']}:{alert['subject']}".encode()
        assert stamp == datetime.fromisoformat(alert["ts"]).timestamp()
