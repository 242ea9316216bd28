"""The wire contract: what decodes, what is rejected and why (CONTRACT §1)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from sdo.errors import InvalidEvent
from sdo.events import (
    MAX_EVENT_BYTES,
    Candidate,
    Decision,
    Deployment,
    Fix,
    OfficerLocation,
    PolicyRef,
    Recommendation,
    Response,
    Role,
    decode,
    decode_line,
    encode,
    trusted,
)

LOC = {
    "type": "officer.location",
    "event_id": "e1",
    "ts": "2015-12-01T09:00:00Z",
    "officer_id": "o1",
    "lat": 52.5,
    "lon": -1.8,
}


def test_round_trip_normalises_time_to_utc() -> None:
    """An offset timestamp decodes to UTC and encodes back with a Z, type first."""
    event = decode(orjson.dumps({**LOC, "ts": "2015-12-01T10:00:00+01:00"}))
    assert isinstance(event, OfficerLocation)
    assert event.ts == datetime(2015, 12, 1, 9, tzinfo=UTC)
    data = orjson.loads(encode(event))
    assert next(iter(data)) == "type"
    assert data["ts"] == "2015-12-01T09:00:00Z"
    assert decode(encode(event)) == event


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "a JSON object"),
        (
            orjson.dumps({**LOC, "type": "officer.teleport"}),
            "unknown event type 'officer.teleport' (known: officer.location, officer.status,",
        ),
        (
            orjson.dumps({k: v for k, v in LOC.items() if k != "type"}),
            "type: Field required (an event says which it is: officer.location,",
        ),
        (orjson.dumps({**LOC, "colour": "blue"}), "colour: Extra inputs are not permitted"),
        (
            orjson.dumps({k: v for k, v in LOC.items() if k != "officer_id"}),
            "officer_id: Field required",
        ),
        (
            orjson.dumps({**LOC, "event_id": ""}),
            "event_id: String should have at least 1 character",
        ),
        (
            orjson.dumps({**LOC, "officer_id": "   "}),
            "officer_id: String should have at least 1 character",
        ),
        (orjson.dumps({**LOC, "lat": 91}), "lat: Input should be less than or equal to 90"),
        (orjson.dumps({**LOC, "lon": -181}), "lon: Input should be greater than or equal to -180"),
        (orjson.dumps({**LOC, "lat": "north"}), "lat: Input should be a valid number"),
        (orjson.dumps({**LOC, "ts": "2015-12-01T09:00:00"}), "ts: Input should have timezone info"),
        (
            orjson.dumps({**LOC, "speed_mps": -1}),
            "speed_mps: Input should be greater than or equal to 0",
        ),
        (orjson.dumps({**LOC, "heading_deg": 360}), "heading_deg: Input should be less than 360"),
        (orjson.dumps({**LOC, "pad": "x" * MAX_EVENT_BYTES}), "larger than the"),
        (
            orjson.dumps(
                {
                    "type": "officer.status",
                    "event_id": "e",
                    "ts": LOC["ts"],
                    "officer_id": "o",
                    "status": "napping",
                }
            ),
            "status: Input should be",
        ),
    ],
)
def test_invalid_events_are_rejected_with_a_specific_reason(raw: bytes, reason: str) -> None:
    """Each kind of bad input raises InvalidEvent whose reason names the problem."""
    with pytest.raises(InvalidEvent) as info:
        decode(raw)
    assert reason in info.value.reason


def test_expected_type_is_enforced() -> None:
    """An event of the wrong type for its topic is rejected."""
    with pytest.raises(InvalidEvent, match="does not belong here"):
        decode(orjson.dumps(LOC), expect="incident")


#: A deployment's envelope, without its decision.
DEPLOYMENT = {
    "type": "deployment",
    "event_id": "d",
    "ts": LOC["ts"],
    "incident_id": "i",
    "by": "sdo1",
}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"decision": "declined"}, "needs a reason"),
        (
            {"decision": "declined", "reason": "duplicate call", "officer_ids": ["o1"]},
            "names no officers",
        ),
        ({"decision": "overridden", "reason": "nearer"}, "at least one officer"),
        ({"decision": "overridden", "officer_ids": ["o1"]}, "needs a reason"),
        ({"decision": "accepted", "officer_ids": ["o1", "o1"]}, "duplicates"),
    ],
)
def test_deployment_consistency(fields: dict[str, object], reason: str) -> None:
    """Deployment decisions must be internally consistent (reason for decline/override)."""
    with pytest.raises(InvalidEvent, match=reason):
        decode(orjson.dumps({**DEPLOYMENT, **fields}))


def test_an_accepted_signpost_names_no_officer() -> None:
    """Accepting a recommendation that names nobody by design (a signpost) is a valid
    decision: the call is referred, no officer is sent."""
    event = decode(orjson.dumps({**DEPLOYMENT, "decision": "accepted", "recommendation_id": "r1"}))
    assert event.decision is Decision.ACCEPTED and event.officer_ids == ()


def test_valid_deployment() -> None:
    """An accepted deployment with officers decodes."""
    event = decode(orjson.dumps({**DEPLOYMENT, "decision": "accepted", "officer_ids": ["o1"]}))
    assert isinstance(event, Deployment) and event.officer_ids == ("o1",)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"ts": "2015-12-01T10:00:00.250+01:00"},
        {"accuracy_m": 4.5, "speed_mps": 12.0, "heading_deg": 359.5},
        {"lat": -90.0, "lon": 180.0},
        {"lat": 52, "lon": -2},  # ints: pydantic's path
        {"ts": "2015-12-01 09:00:00Z"},  # space separator: pydantic's path
        {"event_id": " padded "},  # stripped by pydantic
        {"accuracy_m": None},
    ],
)
def test_fast_location_path_equals_pydantic(fields: dict[str, object]) -> None:
    """The AVL fast path yields exactly the model pydantic validation yields."""
    raw = {**LOC, **fields}
    fast = decode(orjson.dumps(raw))
    slow = OfficerLocation.model_validate(raw)
    assert fast == slow
    assert encode(fast) == encode(slow)
    assert fast.model_fields_set == slow.model_fields_set
    assert list(fast.__dict__) == list(slow.__dict__)
    assert repr(fast) == repr(slow)


@pytest.mark.parametrize(
    "fields",
    [{"lat": 90.5}, {"heading_deg": 360.0}, {"speed_mps": -0.1}, {"ts": "2015-12-01T09:00:00"}],
)
def test_fast_location_path_leaves_errors_to_pydantic(fields: dict[str, object]) -> None:
    """Out-of-range or odd values are rejected with pydantic's message, fast path or not."""
    with pytest.raises(InvalidEvent):
        decode(orjson.dumps({**LOC, **fields}))


def _same_outcome(raw: bytes) -> tuple[str, object]:
    try:
        return ("ok", decode(raw))
    except InvalidEvent as exc:
        return ("invalid", exc.reason)


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(LOC),
        orjson.dumps({**LOC, "accuracy_m": 4.5, "speed_mps": 12.0, "heading_deg": 359.5}),
        orjson.dumps({**LOC, "ts": "2015-12-01T10:00:00.250+01:00"}),
        orjson.dumps({**LOC, "accuracy_m": None}),
        orjson.dumps({**LOC, "lat": 52, "lon": -2}),
        orjson.dumps({**LOC, "lat": 90.5}),
        orjson.dumps({**LOC, "heading_deg": 360.0}),
        orjson.dumps({**LOC, "colour": "blue"}),
        orjson.dumps({**LOC, "event_id": ""}),
        orjson.dumps({**LOC, "event_id": 5}),
        orjson.dumps({**LOC, "officer_id": "o" * 129}),
        orjson.dumps({**LOC, "officer_id": "o" * 128}),
        orjson.dumps({**LOC, "officer_id": "o1 "}),
        orjson.dumps({**LOC, "speed_mps": -1.0, "heading_deg": 10.0}),
        orjson.dumps({**LOC, "accuracy_m": 1, "speed_mps": 1.0}),
        orjson.dumps({**LOC, "ts": 1449000000}),
        # a second "type" wins in JSON: the line is not a fix whatever it starts with
        orjson.dumps(LOC)[:-1] + b',"type":"officer.status","status":"available"}',
        orjson.dumps(LOC)[:-1] + b',"type":"officer.teleport"}',
        b'{"type":"officer.location","event_id":',  # malformed
        b'{"type":"officer.location",' + b" " * MAX_EVENT_BYTES + b'"x":1}',  # too big
        orjson.dumps({"officer_id": "o1", **LOC}),  # another key order: pydantic's path
    ],
)
def test_decode_line_agrees_with_decode(raw: bytes) -> None:
    """A log line gives what decode gives: a Fix whose model is decode's model (same
    fields set and repr), or decode's model, or decode's error message."""
    expected = _same_outcome(raw)
    try:
        got = decode_line(raw)
    except InvalidEvent as exc:
        assert ("invalid", exc.reason) == expected
        return
    if isinstance(got, Fix):
        model = got.model()
        assert expected[0] == "ok" and model == expected[1]
        assert (got.officer_id, got.ts, got.event_id) == (
            model.officer_id,
            model.ts,
            model.event_id,
        )
        assert (got.lon, got.lat) == (model.lon, model.lat)
        assert model.model_fields_set == expected[1].model_fields_set  # type: ignore[union-attr]
        assert repr(model) == repr(expected[1])
    else:
        assert ("ok", got) == expected


def test_decode_line_takes_the_plain_way_for_encoded_fixes() -> None:
    """What encode writes for an AVL fix comes back as a Fix (the evaluator's fast path)."""
    fix = decode_line(encode(decode(orjson.dumps({**LOC, "speed_mps": 3.5}))))
    assert isinstance(fix, Fix)


# -- models built from checked values --------------------------------------------------

_CANDIDATE = {"officer_id": "o1", "callsign": "A1", "role": Role.RESPONSE, "score": 3.25}
_RECOMMENDATION = {
    "event_id": "rec-1",
    "ts": datetime(2015, 12, 1, 9, tzinfo=UTC),
    "recommendation_id": "rec-1",
    "incident_id": "inc-1",
    "grade": 1,
    "response": Response.EMERGENCY,
    "recommended": ("o1",),
    "policy": PolicyRef(name="thrive", version="1"),
}


def test_trusted_builds_what_model_construct_builds() -> None:
    """The same fields, defaults, order and fields-set as model_construct; the same JSON;
    and what it builds validates (the values were valid)."""
    for cls, values in (
        (Candidate, {**_CANDIDATE, "eta_s": 12.5}),
        (Recommendation, {**_RECOMMENDATION, "candidates": (Candidate(**_CANDIDATE),)}),
    ):
        fast, slow = trusted(cls, **values), cls.model_construct(**values)
        assert fast == slow
        assert list(fast.__dict__.items()) == list(slow.__dict__.items())
        assert fast.model_fields_set == slow.model_fields_set == set(values)
        assert encode(fast) == encode(slow)
        if cls is Recommendation:  # an event: it decodes back to itself
            assert decode(encode(fast)) == fast
        assert cls.model_validate(fast.model_dump()) == fast


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**_CANDIDATE, "colour": "red"}, r"unknown fields \['colour'\], missing fields \[\]"),
        ({"officer_id": "o1", "score": 1.0}, r"missing fields \['callsign', 'role'\]"),
    ],
)
def test_trusted_refuses_unknown_and_missing_fields(
    values: dict[str, object], message: str
) -> None:
    """Unlike model_construct, which drops an unknown field and leaves a missing one out."""
    with pytest.raises(TypeError, match=message):
        trusted(Candidate, **values)
