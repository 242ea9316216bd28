"""The committed JSON Schemas are exactly what the event models generate."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest

from sdo.cli import main
from sdo.events import EVENT_TYPES

REPO = Path(__file__).resolve().parent.parent


def test_committed_schemas_have_not_drifted(capsys: pytest.CaptureFixture[str]) -> None:
    """`sdo schemas --check` passes on the repository's schemas/ directory."""
    assert main(["schemas", "--check", "--dir", str(REPO / "schemas")]) == 0


def test_check_fails_on_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An edited schema file is reported by name and the check exits 1."""
    assert main(["schemas", "--dir", str(tmp_path)]) == 0
    target = tmp_path / "incident.schema.json"
    target.write_text(target.read_text().replace('"incident_id"', '"incident_ref"'))
    capsys.readouterr()
    assert main(["schemas", "--check", "--dir", str(tmp_path)]) == 1
    assert "incident.schema.json differs" in capsys.readouterr().err


def test_missing_directory_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checking a directory that does not exist is a user error: exit 2, one line."""
    assert main(["schemas", "--check", "--dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_schema_accepts_a_valid_event_and_rejects_extra_fields(kind: str) -> None:
    """Each schema validates a real encoded event and, like the model, rejects unknown fields."""
    schema = orjson.loads((REPO / "schemas" / f"{kind}.schema.json").read_bytes())
    example = EXAMPLES[kind]
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "surprise": 1}, schema)


TS = "2015-12-01T09:00:00Z"
THRIVE = {
    "threat": "low",
    "harm": "low",
    "risk": "low",
    "vulnerability": "none",
    "investigation": False,
    "engagement": False,
    "prevention": False,
}
EXAMPLES = {
    "officer.location": {
        "type": "officer.location",
        "event_id": "e1",
        "ts": TS,
        "officer_id": "o1",
        "lat": 52.5,
        "lon": -1.8,
    },
    "officer.status": {
        "type": "officer.status",
        "event_id": "e2",
        "ts": TS,
        "officer_id": "o1",
        "status": "available",
        "by": "sdo1",
    },
    "officer.profile": {
        "type": "officer.profile",
        "event_id": "e3",
        "ts": TS,
        "officer_id": "o1",
        "callsign": "AB12",
        "role": "response",
        "skills": ["taser"],
        "transport": "car",
        "neighbourhoods": [],
    },
    "incident": {
        "type": "incident",
        "event_id": "e4",
        "ts": TS,
        "incident_id": "i1",
        "lat": 52.5,
        "lon": -1.8,
        "category": "noise",
        "state": "open",
        "thrive": THRIVE,
        "ongoing": False,
        "offender_present": False,
        "persistent": False,
        "required_skills": [],
    },
    "deployment": {
        "type": "deployment",
        "event_id": "e5",
        "ts": TS,
        "incident_id": "i1",
        "decision": "accepted",
        "officer_ids": ["o1"],
        "by": "sdo1",
        "shortfalls": ["nobody sent holds taser"],
    },
    "recommendation": {
        "type": "recommendation",
        "event_id": "e6",
        "ts": TS,
        "recommendation_id": "r1",
        "incident_id": "i1",
        "grade": 1,
        "response": "emergency",
        "reasons": [],
        "candidates": [
            {
                "officer_id": "o1",
                "callsign": "AB12",
                "role": "response",
                "eta_s": 60.0,
                "distance_m": 500.0,
                "score": 60.0,
                "reasons": [],
            }
        ],
        "recommended": ["o1"],
        "policy": {"name": "thrive", "version": "1"},
    },
    "alert": {
        "type": "alert",
        "event_id": "e7",
        "ts": TS,
        "kind": "cover_gap",
        "severity": "critical",
        "subject": "north-1",
        "message": "below cover",
    },
    "incident.note": {
        "type": "incident.note",
        "event_id": "e9",
        "ts": TS,
        "incident_id": "i1",
        "text": "caller rang again: the offender has left",
        "by": "sdo1",
    },
    "alert.ack": {
        "type": "alert.ack",
        "event_id": "e10",
        "ts": TS,
        "kind": "cover_gap",
        "subject": "north-1",
        "alert_event_id": "e7",
        "by": "sdo1",
    },
    "deadletter": {
        "type": "deadletter",
        "event_id": "e8",
        "ts": TS,
        "source_topic": "sdo.incident",
        "error": "malformed JSON",
        "raw": "{",
        "received_at": TS,
    },
}
