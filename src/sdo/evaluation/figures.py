"""What a pass of ``sdo evaluate`` measures: the :class:`Metrics` accumulator that watches
the World's inputs and outputs, the figures it gives for metrics.json, and
:func:`compare`, each policy against another on the same incidents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from sdo.domain.world import World
from sdo.evaluation.intervals import (
    ci95,
    difference,
    quantile,
)
from sdo.events import (
    AlertKind,
    Decision,
    Deployment,
    Incident,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
    Response,
    Role,
    Status,
    rfc3339,
)

if TYPE_CHECKING:
    pass


__all__ = [
    "PAIRED",
    "RECORDED",
    "TARGET_S",
    "Metrics",
    "compare",
    "local_hour",
]

#: Grade → attendance target in seconds (West Midlands: 15 min grade 1, 60 min grade 2).
TARGET_S = {1: 15 * 60, 2: 60 * 60}
LONG_WAIT_S = 30 * 60
#: The force's clock, for the hours of the day (the log's times are UTC).
LOCAL_TIME: Final = "Europe/London"
_LOCAL = ZoneInfo(LOCAL_TIME)
#: An hour's median is given from this many calls of a grade (fewer: None).
HOUR_MIN_CALLS: Final = 3
#: The key of a pass's per-incident figures in its results until :func:`evaluate` hands
#: them to its ``paired`` (they are not written to metrics.json).
PAIRED: Final = "_paired"
#: The pseudo-policy of the log's own deployments (the status quo as it happened).
RECORDED: Final = "recorded"
#: Where ``recorded`` sent an incident its deployments sent nobody to.
_NOT_ATTENDED: Final = "not attended (closed from the queue)"
#: The route of every incident under the ``closest`` policy (no THRIVE+ routing).
_CLOSEST_ROUTE = "closest response officer"
#: Routes whose incidents wait for someone other than a response officer.
_NON_RESPONSE_POOLS = frozenset({Response.INVESTIGATOR.value, Response.NEIGHBOURHOOD.value})


@dataclass(slots=True)
class _Incident:
    created: datetime
    grade: int = 0
    response: str = ""
    first_rec: Recommendation | None = None
    attend_s: float | None = None
    eta_s: float | None = None
    roles: tuple[str, ...] = ()
    skill_ok: bool | None = None
    named: bool | None = None
    last_rec: Recommendation | None = None
    agreed: bool | None = None
    signposted: bool = False
    #: whether the response officers first recommended would leave a cluster of theirs
    #: below its minimum cover (None: no available response officer among them)
    below_cover: bool | None = None
    #: seconds from creation to the first officer at the scene, as the events say
    arrived_s: float | None = None
    #: whether a deployment sent anyone (the recorded dispatch)
    deployed: bool = False
    #: where and what (for the breakdowns and the per-incident CSV)
    npu: str = ""
    cluster: str = ""
    category: str = ""
    skills: str = ""


@dataclass
class Metrics:
    """Accumulates the figures of one policy over one pass."""

    policy: str
    #: whether the policy routes incidents by their THRIVE+ grading (not ``closest``)
    thrive_routing: bool = True
    #: attendance as the events show it (an officer ``at_scene``), not estimated: the
    #: closed loop and ``recorded``
    observed: bool = False
    #: the log's own deployments are what is measured (``recorded``)
    recorded: bool = False
    #: the closed loop that hears the World's outputs (None: open loop)
    loop: Any = None
    #: incident events applied, and those refused as outside the areas
    incident_events: int = 0
    outside: int = 0
    officer_ids: set[str] = field(default_factory=set)
    events: int = 0
    invalid: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: the first reason given, per kind of event rejected (what to tell the evaluator)
    rejected_example: dict[str, str] = field(default_factory=dict)
    recommendations: int = 0
    incidents: dict[str, _Incident] = field(default_factory=dict)
    gap_open: dict[str, datetime] = field(default_factory=dict)
    gap_minutes: dict[str, float] = field(default_factory=dict)
    alerts: Counter[str] = field(default_factory=Counter)
    #: the times of the first and the last event applied (the period the log covers)
    first_ts: datetime | None = None
    last_ts: datetime | None = None

    def reject(self, reason: str, *, counted: bool = False) -> None:
        """Count an event the World could not apply, by kind (its reason's first word);
        ``counted``: it is among the events already (it waited, then was refused)."""
        kind = reason.split(" ", 2)[0]
        self.rejected[kind] += 1
        self.rejected_example.setdefault(kind, reason)
        if not counted:
            self.events += 1
        self.outside += kind == "incident" and "outside" in reason

    def before(self, world: World, event: Any) -> None:
        """Look at an input event before the World applies it (recorded decisions)."""
        if self.observed and type(event) is OfficerStatus and event.status is Status.AT_SCENE:
            inc = self.incidents.get(event.incident_id or "")
            if inc is not None and inc.arrived_s is None:
                inc.arrived_s = (event.ts - inc.created).total_seconds()
            return
        if self.recorded and isinstance(event, Deployment) and event.officer_ids:
            inc = self.incidents.get(event.incident_id)
            if inc is not None and not inc.deployed:
                inc.deployed = True
                officers = world.officers
                inc.roles = tuple(_role(officers.get(o)) for o in event.officer_ids)
        if (
            self.loop is None
            and isinstance(event, Deployment)
            and event.decision is not Decision.DECLINED
        ):
            inc = self.incidents.get(event.incident_id)
            if inc is not None and inc.last_rec is not None and inc.agreed is None:
                rec = inc.last_rec
                inc.agreed = bool(rec.recommended) and rec.recommended[0] in event.officer_ids

    def after(self, world: World, event: Any, outputs: Iterable[Any]) -> None:
        self.events += 1
        self.last_ts = event.ts
        if type(event) is OfficerProfile:
            self.officer_ids.add(event.officer_id)
        elif isinstance(event, Incident):
            self.incident_events += 1
            if event.incident_id not in self.incidents:
                record = world.incidents.get(event.incident_id)
                if record is not None:
                    self.incidents[event.incident_id] = _placed(world, record)
        if self.loop is not None:
            outputs = list(outputs)
            self.loop.react(world, outputs)
        for out in outputs:
            if isinstance(out, Recommendation):
                self._recommendation(world, out)
            else:
                if out.active:  # (raises; each is cleared once)
                    self.alerts[out.kind.value] += 1
                if out.kind is AlertKind.COVER_GAP:
                    self._gap(out.subject, out.ts, out.active)

    def _recommendation(self, world: World, rec: Recommendation) -> None:
        self.recommendations += 1
        inc = self.incidents.get(rec.incident_id)
        if inc is None:
            record = world.incidents.get(rec.incident_id)
            if record is None:
                return
            inc = self.incidents[rec.incident_id] = _placed(world, record)
        inc.last_rec = rec
        if inc.first_rec is None:
            inc.first_rec = rec
            inc.grade, inc.response = rec.grade, rec.response.value
            inc.signposted = rec.service is not None
        if inc.attend_s is not None or not rec.recommended or self.recorded:
            return
        lead = rec.candidates[0]
        waited = (rec.ts - inc.created).total_seconds()
        inc.eta_s = lead.eta_s
        inc.attend_s = waited + lead.eta_s if lead.eta_s is not None else None
        officers = world.officers
        inc.roles = tuple(c.role.value for c in rec.candidates[: len(rec.recommended)])
        inc.below_cover = _below_cover(world, rec.recommended)
        record = world.incidents.get(rec.incident_id)
        if record is not None and record.incident.required_skills:
            need = set(record.incident.required_skills)
            inc.skill_ok = all(
                need.issubset(officers[o].skills) for o in rec.recommended if o in officers
            )
        if record is not None and inc.response == Response.NEIGHBOURHOOD.value:
            place = world.areas.locate(record.incident.lon, record.incident.lat)
            named = world.areas.neighbourhoods[place.neighbourhood].named_officer if place else None
            if named is not None:
                inc.named = rec.recommended[0] == named

    def _gap(self, cluster: str, ts: datetime, active: bool) -> None:
        if active:
            self.gap_open.setdefault(cluster, ts)
        elif cluster in self.gap_open:
            minutes = (ts - self.gap_open.pop(cluster)).total_seconds() / 60
            self.gap_minutes[cluster] = self.gap_minutes.get(cluster, 0.0) + minutes

    def finish(self) -> dict[str, Any]:  # noqa: PLR0915 (one figure after another)
        if self.last_ts is not None:
            for cluster, since in list(self.gap_open.items()):
                minutes = max(0.0, (self.last_ts - since).total_seconds() / 60)
                self.gap_minutes[cluster] = self.gap_minutes.get(cluster, 0.0) + minutes
            self.gap_open.clear()
        ids = [iid for iid, i in self.incidents.items() if i.first_rec is not None]
        graded = [self.incidents[iid] for iid in ids]
        if self.observed:  # what happened, not the estimate
            for i in graded:
                i.attend_s = i.arrived_s
        by_response = Counter(i.response for i in graded)
        by_grade = Counter(str(i.grade) for i in graded)
        total = len(graded) or 1
        # Where the policy routes each incident: its THRIVE+ response, or (closest) always
        # the nearest response officer whatever the grading says.
        thrive_routing = self.thrive_routing
        by_route = Counter(i.response if thrive_routing else _CLOSEST_ROUTE for i in graded)
        # who the first recommendation naming an officer sends (signposted: nobody, by design)
        sent_to: Counter[str] = Counter()
        off: list[bool] = []  # per graded incident, in order
        off_to: Counter[str] = Counter()  # where the demand off response officers went
        for i in graded:
            if self.recorded:
                who = i.roles[0] if i.deployed and i.roles else _NOT_ATTENDED
            elif i.signposted:
                who = "partner service (no officer)"
            elif not i.roles:
                who = "nobody available"
            else:
                who = i.roles[0]
            sent_to[who] += 1
            # Demand off response officers: someone else was named, nobody by design, or
            # it waits for a non-response pool (an investigator, the neighbourhood team).
            if who.startswith("not attended"):
                moved, where = True, who
            elif who == "nobody available":
                moved = thrive_routing and i.response in _NON_RESPONSE_POOLS
                where = f"waiting for the {i.response} pool"
            else:
                moved, where = who != Role.RESPONSE.value, who
            off.append(moved)
            if moved:
                off_to[where] += 1
        off_response = sum(off)
        grades: dict[str, Any] = {}
        for g in (1, 2, 3, 4):
            rows = [i for i in graded if i.grade == g]
            times = sorted(i.attend_s for i in rows if i.attend_s is not None)
            etas = sorted(i.eta_s for i in rows if i.eta_s is not None)
            entry: dict[str, Any] = {
                "incidents": len(rows),
                "with_officer": len(times),
                "without_officer": len(rows) - len(times),
                "eta_median_s": quantile(etas, 0.5),
                "eta_p90_s": quantile(etas, 0.9),
                "attend_median_s": quantile(times, 0.5),
                "attend_mean_s": round(sum(times) / len(times), 1) if times else None,
                "attend_median_ci95_s": ci95(times, median=True),
                "attend_p90_s": quantile(times, 0.9),
                **_rated("share_over_30_min", [t > LONG_WAIT_S for t in times]),
            }
            if g in TARGET_S:
                # over every incident of the grade: one no officer was named for missed it
                within = [_within(i.attend_s, TARGET_S[g]) for i in rows]
                entry.update(_rated(f"share_within_{TARGET_S[g] // 60}_min", within))
            cover = [i.below_cover for i in rows if i.below_cover is not None]
            entry["sends_response_officer"] = len(cover)
            entry.update(_rated("share_leaving_cluster_below_min_cover", cover))
            grades[str(g)] = entry
        paired = {  # per graded incident, for comparing policies on the same incidents
            "ids": ids,
            "grade": [i.grade for i in graded],
            "attend_s": [i.attend_s for i in graded],
            "off": off,
            "created": [rfc3339(i.created) for i in graded],
            "hour": [local_hour(i.created) for i in graded],
            "npu": [i.npu for i in graded],
            "cluster": [i.cluster for i in graded],
            "category": [i.category for i in graded],
            "response": [i.response for i in graded],
            "sent": [i.roles[0] if i.roles else "" for i in graded],
            "skills": [i.skills for i in graded],
        }
        skill = [i.skill_ok for i in graded if i.skill_ok is not None]
        named = [i.named for i in graded if i.named is not None]
        agreed = [i.agreed for i in self.incidents.values() if i.agreed is not None]
        return {
            "policy": self.policy,
            "events": self.events,
            "invalid_lines": self.invalid,
            "rejected_events": dict(self.rejected),
            "rejected_examples": dict(sorted(self.rejected_example.items())),
            "period": _period(self.first_ts, self.last_ts),
            "recommendations": None if self.recorded else self.recommendations,
            "incidents": len(graded),
            "by_grade": dict(sorted(by_grade.items())),
            "by_response": dict(sorted(by_response.items())),
            "first_recommendation_sends": dict(sent_to.most_common()),
            "share_off_response_officers": round(off_response / total, 4),
            "share_off_response_officers_ci95": ci95(off),
            # (its parts: where that demand went; they add up to it)
            "share_off_response_officers_by": {
                k: round(n / total, 4) for k, n in off_to.most_common()
            },
            "share_by_response": {r: round(n / total, 4) for r, n in sorted(by_response.items())},
            "share_by_route": {r: round(n / total, 4) for r, n in sorted(by_route.items())},
            "grades": grades,
            **_rated("skill_match_rate", skill),
            "skill_match_incidents": len(skill),
            **_rated("named_officer_alignment", named),
            "named_officer_incidents": len(named),
            **_rated("agreement_with_recorded_deployments", agreed),
            "recorded_deployments_compared": len(agreed),
            "by_hour": _by_hour(graded, off),
            "cover_gap_minutes": {k: round(v, 1) for k, v in sorted(self.gap_minutes.items())},
            "alerts": dict(sorted(self.alerts.items())),
            "attendance": (
                "not measured"
                if not self.officer_ids
                else "observed"
                if self.observed
                else "estimated"
            ),
            "officers": len(self.officer_ids),
            "outside_incident_events": self.outside,
            "incident_events": self.incident_events + self.outside,
            **_loop_figures(self),
            PAIRED: paired,
        }


def _placed(world: World, record: Any) -> _Incident:
    incident = record.incident
    place = world.areas.locate(incident.lon, incident.lat)
    return _Incident(
        created=record.created_ts,
        npu=place.npu if place else "",
        cluster=place.cluster if place else "",
        category=incident.category,
        skills=" ".join(incident.required_skills),
    )


def _role(officer: Any) -> str:
    role = getattr(officer, "role", None)
    return role.value if role is not None else "unknown"


def _loop_figures(metrics: Metrics) -> dict[str, Any]:
    """What only the closed loop measures: who did the work, and the calls nobody reached."""
    loop = metrics.loop
    if loop is None:
        return {}
    waiting = [
        i for i in metrics.incidents.values() if i.first_rec is not None and i.arrived_s is None
    ]
    return {
        "loop": {
            "deployments": loop.deployed,
            "workload": loop.workload.summary(),
            "unattended_by_grade": dict(
                sorted(Counter(str(i.grade) for i in waiting if i.grade in TARGET_S).items())
            ),
            "timing": loop.timing.label,
        }
    }


def _period(first: datetime | None, last: datetime | None) -> dict[str, Any] | None:
    """The period a log covers: from its first event to its last (None without one)."""
    if first is None or last is None:
        return None
    return {
        "from": rfc3339(first),
        "to": rfc3339(last),
        "hours": round((last - first).total_seconds() / 3600, 2),
    }


def local_hour(when: datetime) -> int:
    """The hour of the day of ``when`` on the force's clock (:data:`LOCAL_TIME`)."""
    return when.astimezone(_LOCAL).hour


def _by_hour(graded: list[_Incident], off: list[bool]) -> dict[str, Any]:
    """Per hour of the day the calls came in (local time): how many, the share sent off
    response officers, and grade 1's and 2's median estimated attendance (None from fewer
    than :data:`HOUR_MIN_CALLS` calls)."""
    hours: list[list[tuple[_Incident, bool]]] = [[] for _ in range(24)]
    for inc, away in zip(graded, off, strict=True):
        hours[local_hour(inc.created)].append((inc, away))
    rows = []
    for hour, calls in enumerate(hours):
        row: dict[str, Any] = {
            "hour": hour,
            "incidents": len(calls),
            "share_off_response_officers": round(sum(a for _, a in calls) / len(calls), 4)
            if calls
            else None,
        }
        for g in (1, 2):
            times = sorted(i.attend_s for i, _ in calls if i.grade == g and i.attend_s is not None)
            row[f"grade_{g}_attend_median_s"] = (
                quantile(times, 0.5) if len(times) >= HOUR_MIN_CALLS else None
            )
        rows.append(row)
    return {"time_zone": LOCAL_TIME, "hours": rows}


def _below_cover(world: World, recommended: tuple[str, ...]) -> bool | None:
    """Whether sending the ``recommended`` available response officers would leave one of
    their clusters below its minimum cover, as it stands now (None: none of them is an
    available response officer in a cluster)."""
    clusters = world.areas.clusters
    taken: Counter[str] = Counter()
    for oid in recommended:
        officer = world.officers.get(oid)
        if officer is None or officer.role is not Role.RESPONSE:
            continue
        cluster = officer.cluster
        if officer.status is Status.AVAILABLE and cluster is not None and cluster in clusters:
            taken[cluster] += 1
    if not taken:
        return None
    return any(world.cover_count(c) - n < clusters[c].min_cover for c, n in taken.items())


def compare(
    paired: dict[str, dict[str, list[Any]]], against: str | None = None
) -> list[dict[str, Any]]:
    """Each policy against ``against`` (by default the status quo: ``closest`` if it was
    evaluated, else the first policy), on the same incidents: the difference in the share
    sent off response officers (every incident graded under both) and, per grade 1 and
    2, in the share within target (every incident of that grade under both; one with no
    officer named missed it) and in median estimated attendance (those both named an
    officer for), each with a paired 95% interval: the same resamples of the incidents
    under both policies, so what the incidents have in common cancels out."""
    names = list(paired)
    if len(names) < 2:
        return []
    base = against or ("closest" if "closest" in paired else names[0])
    out = []
    for name in names:
        if name == base:
            continue
        a, b = paired[name], paired[base]
        where_b = {iid: k for k, iid in enumerate(b["ids"])}
        both = [(k, where_b[iid]) for k, iid in enumerate(a["ids"]) if iid in where_b]
        off_a = [float(a["off"][k]) for k, _ in both]
        off_b = [float(b["off"][j]) for _, j in both]
        entry: dict[str, Any] = {"policy": name, "against": base, "incidents": len(both)}
        entry.update(difference("share_off_response_officers", off_a, off_b))
        grades: dict[str, Any] = {}
        for g, target in sorted(TARGET_S.items()):
            pairs = [
                (a["attend_s"][k], b["attend_s"][j])
                for k, j in both
                if a["grade"][k] == b["grade"][j] == g
            ]
            rows = [(x, y) for x, y in pairs if x is not None and y is not None]
            within = f"share_within_{target // 60}_min"
            grades[str(g)] = {
                "incidents": len(pairs),
                "both_with_officer": len(rows),
                "only_this_without_officer": sum(x is None and y is not None for x, y in pairs),
                "only_against_without_officer": sum(x is not None and y is None for x, y in pairs),
                "target_min": target // 60,
                **difference(
                    "attend_median_s", [x for x, _ in rows], [y for _, y in rows], median=True
                ),
                **difference(
                    within,
                    [float(_within(x, target)) for x, _ in pairs],
                    [float(_within(y, target)) for _, y in pairs],
                ),
            }
        entry["grades"] = grades
        out.append(entry)
    return out


def _within(attend_s: float | None, target_s: int) -> bool:
    """Attended within target, by the estimate; no officer named: not within it."""
    return attend_s is not None and attend_s <= target_s


def _rated(key: str, flags: list[bool]) -> dict[str, Any]:
    """A share of ``flags`` (``key``) and its 95% interval (``{key}_ci95``)."""
    return {key: _rate(flags), f"{key}_ci95": ci95(flags)}


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None
