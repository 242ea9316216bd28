"""The wire contract (CONTRACT.md §1): every event as a frozen pydantic model.

Bytes become models here and nowhere else: :func:`decode` turns one JSON document
(a Kafka value or a line of an event log) into the matching model or raises
:class:`sdo.errors.InvalidEvent` with a reason a person can act on.

Conventions
-----------
* ``extra="forbid"``: unknown fields are rejected, never silently dropped.
* ``ts`` and every other datetime must carry a zone and is normalised to UTC.
* Coordinates are WGS84 decimal degrees (``lat`` in [-90, 90], ``lon`` in [-180, 180]).
* Identifiers are non-empty, trimmed strings of at most 128 characters.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeVar

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from sdo.errors import InvalidEvent

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "Alert",
    "AlertAck",
    "AlertKind",
    "Candidate",
    "DeadLetter",
    "Decision",
    "Deployment",
    "Event",
    "Fix",
    "Incident",
    "IncidentNote",
    "IncidentState",
    "InputEvent",
    "Level",
    "OfficerLocation",
    "OfficerProfile",
    "OfficerStatus",
    "PolicyRef",
    "Recommendation",
    "Response",
    "Role",
    "Severity",
    "Status",
    "Thrive",
    "Transport",
    "alert_key",
    "decode",
    "decode_line",
    "encode",
    "kafka_key",
    "plain_fix",
    "to_json_dict",
    "trusted",
]

#: Largest event accepted, in bytes. Real events are well under 4 KiB; anything
#: bigger is a broken or hostile producer and goes to the dead-letter topic.
MAX_EVENT_BYTES: Final = 64 * 1024

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=2000)]
Skill = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9_]+(:[a-z0-9_ \-]+)?$",
    ),
]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class Status(StrEnum):
    """What an officer is doing (CONTRACT §1)."""

    OFF_DUTY = "off_duty"
    AVAILABLE = "available"
    EN_ROUTE = "en_route"
    AT_SCENE = "at_scene"
    COMMITTED = "committed"
    REFRESHMENT = "refreshment"


class Role(StrEnum):
    RESPONSE = "response"
    NEIGHBOURHOOD = "neighbourhood"
    PCSO = "pcso"
    INVESTIGATOR = "investigator"
    FORCE_SUPPORT = "force_support"
    SUPERVISOR = "supervisor"


class Transport(StrEnum):
    CAR = "car"
    VAN = "van"
    MOTORCYCLE = "motorcycle"
    BICYCLE = "bicycle"
    FOOT = "foot"
    DESK = "desk"


class IncidentState(StrEnum):
    OPEN = "open"
    RESOURCED = "resourced"
    CLOSED = "closed"


class Level(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK: Final = {Level.NONE: 0, Level.LOW: 1, Level.MEDIUM: 2, Level.HIGH: 3}


class Decision(StrEnum):
    ACCEPTED = "accepted"
    OVERRIDDEN = "overridden"
    DECLINED = "declined"


class Response(StrEnum):
    """The response options of CONTRACT §2."""

    EMERGENCY = "emergency"
    PRIORITY = "priority"
    SCHEDULED = "scheduled"
    NEIGHBOURHOOD = "neighbourhood"
    INVESTIGATOR = "investigator"
    SIGNPOST = "signpost"


class AlertKind(StrEnum):
    COVER_GAP = "cover_gap"
    STALE_LOCATION = "stale_location"
    UNRESOURCED = "unresourced"
    UNRESOURCED_WARNING = "unresourced_warning"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=4000)


class _Envelope(_Model):
    event_id: Id
    ts: AwareDatetime

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class OfficerLocation(_Envelope):
    """An AVL fix."""

    type: Literal["officer.location"] = "officer.location"
    officer_id: Id
    lat: Lat
    lon: Lon
    accuracy_m: NonNegative | None = None
    speed_mps: NonNegative | None = None
    heading_deg: Annotated[float, Field(ge=0.0, lt=360.0, allow_inf_nan=False)] | None = None


class OfficerStatus(_Envelope):
    """A change of what an officer is doing."""

    type: Literal["officer.status"] = "officer.status"
    officer_id: Id
    status: Status
    incident_id: Id | None = None
    note: Text | None = None
    #: the console user who made the change (absent when it came from the officer or CAD)
    by: Id | None = None


class OfficerProfile(_Envelope):
    """Who an officer is and what they can do (sent at shift start and on change)."""

    type: Literal["officer.profile"] = "officer.profile"
    officer_id: Id
    callsign: Id
    role: Role
    skills: tuple[Skill, ...] = ()
    transport: Transport
    npu: Id | None = None
    neighbourhoods: tuple[Id, ...] = ()
    shift_end: AwareDatetime | None = None

    @field_validator("shift_end")
    @classmethod
    def _utc_shift_end(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @field_validator("skills")
    @classmethod
    def _unique_skills(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))


class Thrive(_Model):
    """The THRIVE+ answers recorded by the contact handler."""

    threat: Level
    harm: Level
    risk: Level
    vulnerability: Level
    investigation: bool
    engagement: bool
    prevention: bool


class Incident(_Envelope):
    """The latest state of an incident, as the contact handler records it."""

    type: Literal["incident"] = "incident"
    incident_id: Id
    lat: Lat
    lon: Lon
    category: Annotated[
        str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64)
    ]
    summary: Text | None = None
    state: IncidentState = IncidentState.OPEN
    thrive: Thrive
    ongoing: bool
    offender_present: bool
    persistent: bool
    required_skills: tuple[Skill, ...] = ()
    officers_required: Annotated[int, Field(ge=1, le=20)] = 1
    grade: Annotated[int, Field(ge=1, le=4)] | None = None


class Deployment(_Envelope):
    """An SDO's decision on a recommendation: the audit trail.

    ``accepted`` takes the recommendation as given: its officers, or none when it names
    none by design (a signpost: the call is referred to the partner service it names).
    ``overridden`` names at least one officer; ``declined`` none, and a reason.
    ``shortfalls`` records what the deployment lacks as the SDO was shown it (a required
    skill nobody sent holds, fewer officers than the call needs, an officer sent anyway
    while off duty or committed elsewhere)."""

    type: Literal["deployment"] = "deployment"
    incident_id: Id
    decision: Decision
    officer_ids: tuple[Id, ...] = ()
    by: Id
    reason: Text | None = None
    recommendation_id: Id | None = None
    shortfalls: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Deployment:
        if self.decision is Decision.DECLINED:
            if not (self.reason and self.reason.strip()):
                raise ValueError("a declined deployment needs a reason")
            if self.officer_ids:
                raise ValueError("a declined deployment names no officers")
        elif self.decision is Decision.OVERRIDDEN and not self.officer_ids:
            raise ValueError("an overridden deployment names at least one officer")
        if self.decision is Decision.OVERRIDDEN and not (self.reason and self.reason.strip()):
            raise ValueError("an overridden deployment needs a reason")
        if len(set(self.officer_ids)) != len(self.officer_ids):
            raise ValueError("officer_ids has duplicates")
        return self


class Candidate(_Model):
    officer_id: Id
    callsign: Id
    role: Role
    eta_s: NonNegative | None = None  # None: the officer need not travel (desk)
    distance_m: NonNegative | None = None
    score: float
    reasons: tuple[str, ...] = ()


class PolicyRef(_Model):
    name: Id
    version: Id


class Recommendation(_Envelope):
    """Output: the recommended deployment for one incident (CONTRACT §3)."""

    type: Literal["recommendation"] = "recommendation"
    recommendation_id: Id
    incident_id: Id
    #: the incident's recommendations are numbered 1, 2, ...: a consumer keeps the one
    #: with the highest ``seq`` (0: not numbered, an older producer; ordered by ``ts``)
    seq: Annotated[int, Field(ge=0)] = 0
    grade: Annotated[int, Field(ge=1, le=4)]
    response: Response
    reasons: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    recommended: tuple[Id, ...] = ()
    shortfalls: tuple[str, ...] = ()
    service: Text | None = None
    policy: PolicyRef


class Alert(_Envelope):
    """Output: something the SDO should look at."""

    type: Literal["alert"] = "alert"
    kind: AlertKind
    severity: Severity
    subject: Id
    message: Text
    area_id: Id | None = None
    active: bool = True


def kafka_key(event: Any) -> bytes | None:
    """The Kafka key of an event (CONTRACT §1): an officer's events by officer, an
    incident's (incident, deployment, recommendation, note) by incident, an alert and its
    acknowledgement by the alert's identity (:func:`alert_key`); None for a dead letter
    (its original key is not known any more)."""
    kind = event.type
    if kind.startswith("officer."):
        key: str | None = event.officer_id
    elif kind in ("incident", "deployment", "recommendation", "incident.note"):
        key = event.incident_id
    elif kind in ("alert", "alert.ack"):
        key = f"{event.kind}:{event.subject}"
    else:
        key = None
    return None if key is None else key.encode()


def alert_key(alert: Alert) -> str:
    """An alert's identity, ``kind:subject``: its Kafka key, shared by its raise and its
    clear (so both go to one partition, in order), and what a console keys it by."""
    return f"{alert.kind.value}:{alert.subject}"


NoteText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class IncidentNote(_Envelope):
    """An SDO's note on an incident, written at the console: part of the call's story,
    shown on every console."""

    type: Literal["incident.note"] = "incident.note"
    incident_id: Id
    text: NoteText
    by: Id


class AlertAck(_Envelope):
    """An SDO's acknowledgement of a raised alert (who and when). It holds while the alert
    stays raised; once the alert is cleared, a new raise needs a new acknowledgement."""

    type: Literal["alert.ack"] = "alert.ack"
    kind: AlertKind
    subject: Id
    #: the ``event_id`` of the alert as the SDO saw it when acknowledging
    alert_event_id: Id
    by: Id


class DeadLetter(_Envelope):
    """Output: an input that could not be used, with why.

    ``raw`` holds the input as received, cut at :data:`MAX_EVENT_BYTES` (``raw_truncated``
    says so), as UTF-8 text or, for bytes that are not UTF-8, base64.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=4 * MAX_EVENT_BYTES)

    type: Literal["deadletter"] = "deadletter"
    source_topic: str
    error: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    raw_truncated: bool = False
    received_at: AwareDatetime


InputEvent = Annotated[
    OfficerLocation | OfficerStatus | OfficerProfile | Incident | Deployment,
    Field(discriminator="type"),
]
Event = Annotated[
    OfficerLocation
    | OfficerStatus
    | OfficerProfile
    | Incident
    | Deployment
    | Recommendation
    | Alert
    | IncidentNote
    | AlertAck
    | DeadLetter,
    Field(discriminator="type"),
]

#: Every event model by its ``type``.
EVENT_TYPES: Final[dict[str, type[_Envelope]]] = {
    m.model_fields["type"].default: m
    for m in (
        OfficerLocation,
        OfficerStatus,
        OfficerProfile,
        Incident,
        Deployment,
        Recommendation,
        Alert,
        IncidentNote,
        AlertAck,
        DeadLetter,
    )
}

_EVENT: Final[TypeAdapter[Any]] = TypeAdapter(Event)


def decode(raw: bytes | str, *, expect: str | None = None) -> Any:
    """Parse one JSON event into its model.

    ``expect`` names the only ``type`` acceptable here (e.g. the type that belongs on
    the topic the bytes came from). Raises :class:`InvalidEvent` with a short,
    specific reason on anything else.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is {size} bytes, larger than the {MAX_EVENT_BYTES}-byte limit")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"malformed JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(f"an event is a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        known = ", ".join(EVENT_TYPES)
        if kind is None:
            raise InvalidEvent(f"type: Field required (an event says which it is: {known})")
        raise InvalidEvent(f"unknown event type {kind!r} (known: {known})")
    if expect is not None and kind != expect:
        raise InvalidEvent(f"event type {kind!r} does not belong here (expected {expect!r})")
    if kind == "officer.location":
        fast = _fast_location(obj)
        if fast is not None:
            return fast
    try:
        # strict: no "52.5" for a number, no true for a coordinate, no epoch for a time
        return EVENT_TYPES[kind].model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc), event_type=kind) from None


_LOCATION_KEYS: Final = frozenset(OfficerLocation.model_fields)
_LOCATION_REQUIRED: Final = frozenset({"type", "event_id", "ts", "officer_id", "lat", "lon"})


def _fast_location(obj: dict[str, Any]) -> OfficerLocation | None:
    """An AVL fix without pydantic's machinery, or None to let pydantic decide."""
    fix = plain_fix(obj)
    return None if fix is None else fix.model()


class Fix(NamedTuple):
    """An AVL fix in its plain form, checked, before (and often instead of) its model.

    Nearly every event is one. The evaluator applies most of them from these fields alone
    (:meth:`sdo.domain.world.World.plain_fix`); :meth:`model` gives the
    :class:`OfficerLocation` that :func:`decode` would have returned, for the rest.
    """

    officer_id: str
    ts: datetime
    event_id: str
    lon: float
    lat: float
    fields: dict[str, Any]

    def model(self) -> OfficerLocation:
        values = _LOCATION_TEMPLATE.copy()
        values.update(self.fields)
        values["ts"] = self.ts
        # What OfficerLocation.model_construct builds, without its per-call field walk (a
        # third of the cost of a whole fix): plain_fix checked the values.
        return _built(OfficerLocation, values, set(self.fields))


def plain_fix(obj: dict[str, Any]) -> Fix | None:
    """A parsed AVL fix in the plain, unambiguous form, or None to let pydantic decide.

    Accepts only exact types, values in range and an RFC 3339 time with a zone; anything
    else, valid or not, goes the full way, so every result and error message is pydantic's
    (``tests/test_events.py`` checks the two agree).
    """
    keys = obj.keys()
    if keys != _LOCATION_KEYS and not (_LOCATION_REQUIRED <= keys <= _LOCATION_KEYS):
        return None
    if obj["type"] != "officer.location":
        return None
    event_id, officer_id, ts = obj["event_id"], obj["officer_id"], obj["ts"]
    # identifiers: non-empty, trimmed strings of at most 128 characters (as `Id` says)
    if (
        type(event_id) is not str
        or type(officer_id) is not str
        or not (0 < len(event_id) <= 128 and 0 < len(officer_id) <= 128)
        or event_id != event_id.strip()
        or officer_id != officer_id.strip()
        or type(ts) is not str
        or len(ts) < 20
    ):
        return None
    lat, lon = obj["lat"], obj["lon"]
    if type(lat) is not float or type(lon) is not float:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    value = obj.get("accuracy_m")
    if value is not None and (type(value) is not float or not 0.0 <= value < math.inf):
        return None
    value = obj.get("speed_mps")
    if value is not None and (type(value) is not float or not 0.0 <= value < math.inf):
        return None
    value = obj.get("heading_deg")
    if value is not None and (type(value) is not float or not 0.0 <= value < 360.0):
        return None
    when = _TIMES.get(ts)
    if when is None:
        try:
            when = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if when.tzinfo is None or ts[10] != "T":
            return None
        when = when.astimezone(UTC)
        if len(_TIMES) >= _TIMES_MAX:
            _TIMES.clear()
        _TIMES[ts] = when
    return Fix(officer_id, when, event_id, lon, lat, obj)


#: How an AVL fix written by :func:`encode` (or any producer using the contract's field
#: order) starts: the lines :func:`decode_line` tries the plain way first.
_FIX_PREFIX: Final = b'{"type":"officer.location",'


def decode_line(raw: bytes) -> Any:
    """:func:`decode` of one log line, except that a plain AVL fix comes back as a
    :class:`Fix` (``.model()`` is what :func:`decode` returns for it)."""
    if raw.startswith(_FIX_PREFIX) and len(raw) <= MAX_EVENT_BYTES:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return decode(raw)
        if type(obj) is dict:
            fix = plain_fix(obj)
            if fix is not None:
                return fix
    return decode(raw)


#: Parsed fix times by their text: fixes arrive in time order, so a few thousand recent
#: times cover the repeats (many officers report within the same second).
_TIMES: Final[dict[str, datetime]] = {}
_TIMES_MAX: Final = 4096
_LOCATION_TEMPLATE: Final[dict[str, Any]] = dict.fromkeys(OfficerLocation.model_fields)
_LOCATION_TEMPLATE["type"] = "officer.location"


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


_M = TypeVar("_M", bound=BaseModel)
#: Per model class: every field in order, with its default or :data:`_REQUIRED`.
_TEMPLATES: Final[dict[type[BaseModel], dict[str, Any]]] = {}
_REQUIRED: Final = object()


def trusted(cls: type[_M], **values: Any) -> _M:
    """What ``cls.model_construct(**values)`` builds, without its walk of the fields on
    every call: for values the caller built from checked data (they are not validated;
    ``tests/domain/test_properties.py`` checks recommendations would pass). Unlike
    ``model_construct``, an unknown or missing field is a ``TypeError``.

    A recommendation with ten candidates is eleven models, built for every recomputation.
    """
    template = _TEMPLATES.get(cls)
    if template is None:
        template = _TEMPLATES[cls] = _template(cls)
    data = template.copy()
    data.update(values)
    if len(data) != len(template) or _REQUIRED in data.values():
        unknown = sorted(values.keys() - template.keys())
        missing = sorted(k for k, v in data.items() if v is _REQUIRED)
        raise TypeError(f"{cls.__name__}: unknown fields {unknown}, missing fields {missing}")
    return _built(cls, data, set(values))


def _built(cls: type[_M], data: dict[str, Any], fields_set: set[str]) -> _M:
    """A ``cls`` holding ``data`` (every field, in order) as pydantic's ``model_construct``
    leaves it, unvalidated."""
    model = object.__new__(cls)
    _set = object.__setattr__
    _set(model, "__dict__", data)
    _set(model, "__pydantic_fields_set__", fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _template(cls: type[BaseModel]) -> dict[str, Any]:
    if cls.model_config.get("extra") != "forbid" or cls.__pydantic_post_init__ is not None:
        raise TypeError(f"{cls.__name__}: only plain models without extra fields are built here")
    out: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if field.default_factory is not None:
            raise TypeError(f"{cls.__name__}.{name}: a default factory is not supported")
        out[name] = _REQUIRED if field.is_required() else field.default
    return out


def to_json_dict(event: BaseModel) -> dict[str, Any]:
    """The event as plain JSON-ready data (datetimes as RFC 3339 with ``Z``), ``type`` first."""
    data = event.model_dump(mode="json", exclude_none=True)
    kind = data.pop("type", None)
    return data if kind is None else {"type": kind, **data}


def rfc3339(ts: datetime) -> str:
    """An event time as the wire writes it: RFC 3339, UTC as ``Z``."""
    return ts.isoformat().replace("+00:00", "Z")


def encode(event: BaseModel) -> bytes:
    """The event as compact UTF-8 JSON, the form used on Kafka and in logs."""
    return orjson.dumps(to_json_dict(event))
