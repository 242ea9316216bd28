"""``sdo evaluate``: run dispatch policies over an event log, offline, and compare them.

Theory of operation
-------------------
One streaming pass over the log per policy. Each pass feeds every event, in log order,
to a fresh :class:`sdo.domain.world.World` — the same code the live worker runs, so the
recommendations are the ones the live system would have made. The logged deployments are
applied too (they are what really happened: officers went en route), so each policy is
judged against the same unfolding day. A :class:`Metrics` accumulator watches the World's
outputs; nothing holds the log in memory.

Estimates, not observations: an incident's *estimated attendance* is the time from its
creation until the first recommendation that names an officer, plus that officer's ETA
(great-circle distance × detour factor ÷ speed; see README "Decisions"). The force reports
medians, and shares within 15 min (grade 1) and 60 min (grade 2); so does this.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import orjson

from sdo.cli import settings_from
from sdo.config import DEFAULT_AREAS, DEFAULT_RULES, Settings
from sdo.domain.recommend import POLICIES, Policy
from sdo.domain.world import World
from sdo.errors import BadInput, ConfigError
from sdo.evaluation.breakdown import breakdown, write_incidents_csv
from sdo.evaluation.intervals import (
    BOOTSTRAP_RESAMPLES,
    CI_MIN_VALUES,
    ci95,
    difference,
    quantile,
)
from sdo.evaluation.timing import Timing
from sdo.events import (
    AlertKind,
    Decision,
    Deployment,
    Fix,
    Incident,
    OfficerProfile,
    OfficerStatus,
    Recommendation,
    Response,
    Role,
    Status,
    Transport,
    encode,
    rfc3339,
)
from sdo.progress import REFRESH_S, LineReporter, ProgressLine, eta_text

if TYPE_CHECKING:
    from sdo.domain.geo import Areas
    from sdo.domain.grading import Rules

__all__ = ["Metrics", "PassProgress", "PolicySpec", "cli", "default_jobs", "evaluate"]

#: How a pass reports its progress: (policy, fraction of the log file read, events applied,
#: seconds since the pass began, whether it has ended). Called after every block of the log
#: read (about a megabyte), and once more at the end.
PassProgress = Callable[[str, float, int, float, bool], None]

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


#: The longest name a policy may have in a recommendation (``PolicyRef.name``, an ``Id``).
_LABEL_MAX: Final = 128


@dataclass(frozen=True)
class PolicySpec:
    """One ``--policy``: ``NAME`` (one of :data:`POLICIES`), run with the evaluation's
    rules, or ``NAME@RULES``, a variant of it run with the rules file ``RULES`` (grading
    and recommendation settings both) and labelled ``NAME@STEM`` by the file's name, e.g.
    ``thrive@faster`` for ``thrive@rules/faster.json``: what an evaluator asks when
    weighing a change to the rules against the rules in force."""

    label: str  # what metrics.json, the report and the recommendations call it
    name: str
    rules: Path | None = None  # None: the evaluation's (``--rules``)
    #: ``recorded``: not a policy but the log's own deployments, measured as they happened
    recorded: bool = False

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        name, at, path = text.partition("@")
        if text == RECORDED:
            return cls(RECORDED, "thrive", recorded=True)
        if name not in POLICIES:
            raise ConfigError(
                f"unknown policy {name!r}; known: {', '.join([*POLICIES, RECORDED])} "
                "(a variant with its own rules: NAME@RULES_FILE)"
            )
        if not at:
            return cls(name, name)
        if not path:
            raise ConfigError(f"--policy {text}: a rules file must follow the @")
        rules = Path(path)
        label = f"{name}@{rules.stem.strip()}"
        if len(label) > _LABEL_MAX:
            raise ConfigError(
                f"--policy {text}: a variant is called {name}@ and its rules file's name, "
                f"at most {_LABEL_MAX} characters: give the file a shorter name"
            )
        return cls(label, name, rules)

    def load(self, settings: Settings) -> tuple[Rules, Policy]:
        """The grading rules and the policy this pass runs with (a variant's policy
        carries its label into its recommendations)."""
        from sdo.grade import load_rules  # noqa: PLC0415

        rules = load_rules(self.rules or settings.rules_path)
        label = "" if self.rules is None else self.label
        return rules, Policy.from_mapping(self.name, rules.recommend, label)


def _specs(policies: Iterable[str | PolicySpec]) -> list[PolicySpec]:
    specs = [p if isinstance(p, PolicySpec) else PolicySpec.parse(p) for p in policies]
    labels = [s.label for s in specs]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:
        if "@" not in twice:
            raise ConfigError("each --policy may be given once")
        raise ConfigError(
            f"two --policy are both called {twice!r}: a variant is called by its rules "
            "file's name, so give the files different names"
        )
    return specs


@dataclass(frozen=True)
class PassMode:
    """How a pass runs: open loop (the log's deployments applied; attendance estimated) or
    closed (:mod:`sdo.evaluation.closed_loop`: the policy's own, carried out with
    ``timing``); ``attends``: the only incidents the policy is given (None: all)."""

    closed: bool = False
    timing: Timing = field(default_factory=Timing)
    attends: frozenset[str] | None = None


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

    def reject(self, reason: str) -> None:
        """Count an event the World could not apply, by kind (its reason's first word)."""
        kind = reason.split(" ", 2)[0]
        self.rejected[kind] += 1
        self.rejected_example.setdefault(kind, reason)
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
            "attendance": "observed" if self.observed else "estimated",
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


def evaluate(
    log: Path,
    settings: Settings,
    policies: list[str] | list[PolicySpec],
    *,
    sink: Any = None,
    on_invalid: Any = None,
    lane: bool = True,
    lane_stats: dict[str, dict[str, Any]] | None = None,
    jobs: int = 1,
    progress: PassProgress | None = None,
    paired: dict[str, dict[str, list[Any]]] | None = None,
    closed_loop: bool = False,
    timing: Timing | None = None,
    attended: frozenset[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run each policy over ``log``; write every recommendation to ``sink`` (a binary file),
    policy after policy. A policy is a :class:`PolicySpec` or its text (``thrive``,
    ``thrive@RULES``); the results are keyed by its label.

    ``lane``: plain AVL fixes go through the compiled fix lane (:mod:`sdo.domain.lane`);
    without it, every line is decoded and applied in Python. The results are the same.
    ``lane_stats`` receives, per policy, the fixes the lane applied (and how many of them
    into another neighbourhood) and the lines it refused, by reason
    (:data:`sdo.domain.lane.REASONS`). ``on_invalid(lineno, reason)`` hears of each line
    skipped (once, in the first policy's pass).

    ``jobs`` > 1 runs up to that many passes at once, each in a process of its own (a
    pass is one core's work): each writes its recommendations to a file of its own, copied
    to ``sink`` in policy order, so the results and the bytes are the same as one by one;
    ``on_invalid`` then hears of the skipped lines when the first pass has ended.

    ``progress`` (see :data:`PassProgress`) hears how each pass is getting on; passes in
    other processes are looked at every :data:`sdo.progress.REFRESH_S`.

    ``paired`` receives, per policy, its figures per graded incident (ids, grade,
    estimated attendance, sent off response officers), for :func:`compare`.

    ``closed_loop``: each policy's recommendations are carried out (:class:`PassMode`)
    with ``timing`` (default: the calibrated one); ``recorded`` always runs open loop.
    ``attended``: the incidents the log's own deployments sent someone to, to which
    ``closest`` is restricted (the status quo attends those only; None or empty: all).
    """
    specs = _specs(policies)
    modes = [_mode(spec, closed_loop, timing, attended) for spec in specs]
    if jobs > 1 and len(specs) > 1:
        results = _evaluate_in_parallel(
            log, settings, specs, modes, sink, on_invalid, lane, lane_stats, jobs, progress
        )
        return _take_paired(results, paired)
    from sdo.areas import load_areas  # noqa: PLC0415 (keep `sdo evaluate --help` fast)

    areas = load_areas(settings.areas_path)
    results = {}
    for n, (spec, mode) in enumerate(zip(specs, modes, strict=True)):
        rules, policy = spec.load(settings)
        results[spec.label], stats = _one_pass(
            log,
            areas,
            rules,
            policy,
            sink,
            on_invalid if n == 0 else None,
            lane,
            progress,
            spec,
            mode,
        )
        if lane_stats is not None and stats is not None:
            lane_stats[spec.label] = stats
    return _take_paired(results, paired)


def _mode(
    spec: PolicySpec, closed: bool, timing: Timing | None, attended: frozenset[str] | None
) -> PassMode:
    attends = attended if spec.name == "closest" and not spec.recorded and attended else None
    return PassMode(closed and not spec.recorded, timing or Timing(), attends)


def _take_paired(
    results: dict[str, dict[str, Any]], paired: dict[str, dict[str, list[Any]]] | None
) -> dict[str, dict[str, Any]]:
    for name, metrics in results.items():
        figures = metrics.pop(PAIRED)
        if paired is not None:
            paired[name] = figures
    return results


def default_jobs(policies: int) -> int:
    """How many passes ``sdo evaluate`` runs at once by default: one per policy, up to the
    number of CPUs."""
    return min(policies, os.cpu_count() or 1)


def _one_pass(
    log: Path,
    areas: Areas,
    rules: Rules,
    policy: Policy,
    sink: Any,
    on_invalid: Any,
    lane: bool,
    progress: PassProgress | None = None,
    spec: PolicySpec | None = None,
    mode: PassMode | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One policy's pass: its metrics, and the lane's stats (None without the lane)."""
    from sdo.evaluation.closed_loop import ClosedLoop, drive  # noqa: PLC0415
    from sdo.evaluation.replay import read_log  # noqa: PLC0415

    mode = mode or PassMode()
    recorded = spec is not None and spec.recorded
    name = RECORDED if recorded else policy.shown
    world = World(areas, rules, policy)
    metrics = Metrics(
        name,
        thrive_routing=policy.name != "closest" and not recorded,
        observed=recorded or mode.closed,
        recorded=recorded,
        loop=ClosedLoop(mode.timing) if mode.closed else None,
    )
    reader = read_log(log, on_invalid)
    start = time.perf_counter()
    tick = None
    if progress is not None:
        report = progress

        def tick() -> None:
            report(name, reader.fraction, metrics.events, time.perf_counter() - start, False)

    attends = mode.attends
    loop = metrics.loop

    def admit(item: Any) -> Any | None:
        if attends is not None and type(item) is Incident and item.incident_id not in attends:
            return None
        return item if loop is None else loop.admit(item)

    try:
        with _fewer_collections():
            stats = drive(world, metrics, reader, sink, _step, admit, loop, lane=lane, tick=tick)
    finally:
        reader.close()
    metrics.invalid = reader.skipped
    if progress is not None:
        progress(name, 1.0, metrics.events, time.perf_counter() - start, True)
    return metrics.finish(), stats


#: The cyclic collector's first threshold during a pass (Python's default is 700).
GC_THRESHOLD: Final = 100_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run a pass with the cyclic garbage collector called less often.

    A pass allocates millions of short-lived objects (records, recommendations) and
    makes almost no reference cycles, so at the default threshold the collector runs
    about every 2,000 log lines and finds next to nothing to free (its rarer full
    collections scan the whole World, which grows with the log). Raising the first
    threshold to ``GC_THRESHOLD`` took about 4% off a pass over the bench's week log,
    under either policy, at the same peak memory. What an earlier pass left is
    collected first (a process may run several); cycles are still collected during the
    pass, in bigger batches; the thresholds are restored after.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _evaluate_in_parallel(
    log: Path,
    settings: Settings,
    specs: list[PolicySpec],
    modes: list[PassMode],
    sink: Any,
    on_invalid: Any,
    lane: bool,
    lane_stats: dict[str, dict[str, Any]] | None,
    jobs: int,
    progress: PassProgress | None,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate`'s passes in processes of their own (see there)."""
    import multiprocessing  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait  # noqa: PLC0415

    # spawn: a fresh interpreter, not a fork of one that may hold threads and locks
    context = multiprocessing.get_context("spawn")
    # each pass's progress, _SLOT numbers from its slot on (written by its process alone)
    shared = context.Array("d", _SLOT * len(specs), lock=False)
    with (
        tempfile.TemporaryDirectory(prefix="sdo-evaluate-") as tmp,
        ProcessPoolExecutor(
            max_workers=min(jobs, len(specs)),
            mp_context=context,
            initializer=_share_progress,
            initargs=(shared,),
        ) as pool,
    ):
        outs = [None if sink is None else Path(tmp) / f"{n}.jsonl" for n in range(len(specs))]
        futures = [
            pool.submit(
                _pass_in_process,
                log,
                settings,
                spec,
                mode,
                out,
                n == 0,
                lane,
                None if progress is None else n,
            )
            for n, (spec, mode, out) in enumerate(zip(specs, modes, outs, strict=True))
        ]
        names = [spec.label for spec in specs]
        if progress is not None:
            told: set[str] = set()
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=REFRESH_S, return_when=FIRST_EXCEPTION)
                for n, name in enumerate(names):
                    fraction, events, seconds, ended = shared[_SLOT * n : _SLOT * (n + 1)]
                    if name not in told and seconds > 0:
                        progress(name, fraction, int(events), seconds, bool(ended))
                        if ended:
                            told.add(name)
                if any(f.done() and f.exception() is not None for f in futures):
                    break  # its result() below raises it
        results = {}
        for name, out, future in zip(names, outs, futures, strict=True):
            results[name], stats, skipped = future.result()
            if on_invalid is not None:
                for lineno, reason in skipped:
                    on_invalid(lineno, reason)
            if lane_stats is not None and stats is not None:
                lane_stats[name] = stats
            if out is not None:
                with out.open("rb") as part:
                    shutil.copyfileobj(part, sink, 1 << 20)
                out.unlink()
    return results


#: Numbers per pass in the shared progress array: fraction, events, seconds, ended.
_SLOT: Final = 4
#: The shared progress array, in a worker process (set by :func:`_share_progress`).
_SHARED: list[Any] = []


def _share_progress(shared: Any) -> None:
    _SHARED[:] = [shared]


def _pass_in_process(
    log: Path,
    settings: Settings,
    spec: PolicySpec,
    mode: PassMode,
    out: Path | None,
    report: bool,
    lane: bool,
    slot: int | None,
) -> tuple[dict[str, Any], dict[str, Any] | None, list[tuple[int, str]]]:
    """One pass in a worker process: metrics, lane stats, and (if ``report``) the lines
    skipped; the recommendations go to ``out``; its progress to the shared array's
    ``slot`` (None: not watched)."""
    from sdo.areas import load_areas  # noqa: PLC0415

    skipped: list[tuple[int, str]] = []
    on_invalid = (lambda n, why: skipped.append((n, why))) if report else None
    areas = load_areas(settings.areas_path)
    rules, policy = spec.load(settings)
    progress = None
    if slot is not None and _SHARED:
        shared, at = _SHARED[0], _SLOT * slot

        def progress(_: str, fraction: float, events: int, seconds: float, ended: bool) -> None:
            shared[at : at + _SLOT] = (fraction, float(events), seconds, float(ended))

    if out is None:
        metrics, stats = _one_pass(
            log, areas, rules, policy, None, on_invalid, lane, progress, spec, mode
        )
    else:
        with out.open("wb") as sink:
            metrics, stats = _one_pass(
                log, areas, rules, policy, sink, on_invalid, lane, progress, spec, mode
            )
    return metrics, stats, skipped


def _step(world: World, metrics: Metrics, event: Any, sink: Any) -> None:
    """Apply one item of :meth:`LogReader.items` (a model, or a plain fix's fields)."""
    if metrics.first_ts is None:
        # (with the lane too, the log's first event comes here: the World knows no
        # officer yet, so the lane applies none of their fixes)
        metrics.first_ts = event.ts
    if type(event) is Fix:
        # Nearly every event: applied from the line's fields when it can only move the
        # officer (no outputs, nothing else to count); else its model.
        if world.plain_fix(event.officer_id, event.ts, event.event_id, event.lon, event.lat):
            metrics.events += 1
            metrics.last_ts = event.ts
            return
        event = event.model()
    metrics.before(world, event)
    try:
        effects = world.apply(event)
    except BadInput as exc:
        metrics.reject(exc.reason)
        return
    metrics.after(world, event, effects.outputs)
    if sink is not None:
        for rec in effects.recommendations:
            sink.write(encode(rec) + b"\n")


def cli(args: argparse.Namespace) -> int:
    from sdo.grade import rules_changes  # noqa: PLC0415

    settings = settings_from(args)
    given = args.policy or []
    variants = {}
    for spec in _specs(given):
        if spec.rules is not None:
            spec.load(settings)  # a bad rules file fails here, before DIR is touched
            variants[spec.label] = _variant(spec, rules_changes(settings.rules_path, spec.rules))
    logs: list[Path] = args.log if isinstance(args.log, list) else [args.log]
    for log in logs:
        _sniff(log)  # a missing, unreadable or wrong file fails before DIR is touched
    out: Path = args.out
    runs = []
    for k, log in enumerate(logs):
        where = out if len(logs) == 1 else out / f"{k + 1}-{_stem(log)}"
        results, comparisons = _evaluate_log(args, settings, log, where, given, variants)
        runs.append((log, where, results, comparisons))
    if len(logs) > 1:
        from sdo.evaluation.across import write_across  # noqa: PLC0415

        write_across(out, [(log, where) for log, where, _, _ in runs])
    for log, where, results, comparisons in runs:
        if len(logs) > 1:
            sys.stderr.write(f"sdo evaluate: {log}:\n")
        _summary(results, comparisons, where)
    if len(logs) > 1:
        sys.stderr.write(f"wrote {out / 'metrics.json'}, {out / 'report.html'} (across the logs)\n")
    return 0


def _stem(log: Path) -> str:
    name = log.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name or "log"


def _evaluate_log(
    args: argparse.Namespace,
    settings: Settings,
    log: Path,
    out: Path,
    given: list[str],
    variants: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate one log into ``out`` (see :func:`cli`): its results and comparisons."""
    about, attended, closed, specs, jobs = _plan(args, log, given)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {out}: {exc.strerror or exc}") from None

    line = ProgressLine(sys.stderr)
    passes = _PassesLine(line, [spec.label for spec in specs])
    invalid = LineReporter("sdo evaluate", log, line)
    # Written beside their names and moved into place once all are whole: an
    # evaluation that fails or is interrupted leaves DIR as it was (no half file, no
    # metrics of one run beside the recommendations of another).
    names = ("recommendations.jsonl", "metrics.json", "incidents.csv", "report.html")
    partial = {name: out / f".{name}.partial" for name in names}
    try:
        try:
            recommendations = partial["recommendations.jsonl"].open("wb")
        except OSError as exc:
            raise ConfigError(f"cannot write in {out}: {exc.strerror or exc}") from None
        paired: dict[str, dict[str, list[Any]]] = {}
        with recommendations as sink:
            results = evaluate(
                log,
                settings,
                specs,
                sink=sink,
                on_invalid=invalid,
                jobs=jobs,
                progress=passes,
                paired=paired,
                closed_loop=closed,
                attended=attended,
            )
        line.clear()
        _check_read(log, next(iter(results.values())), allow_outside=args.allow_outside)
        for label, variant in variants.items():
            if label in results:
                results[label] = {**results[label], **variant}
        comparisons = compare(paired, args.against)
        sensitivity = (
            _sensitivity(log, settings, specs, attended, args.against)
            if getattr(args, "sensitivity", False) and closed
            else None
        )
        document = {
            "log": str(log),
            "provenance": about,
            "loop": "closed" if closed else "open",
            "status_quo": _status_quo(specs, attended),
            "inputs": _inputs(settings),
            "policies": results,
            "comparisons": comparisons,
            "breakdown": breakdown(paired),
            "assumptions": _assumptions(settings, closed=closed),
            "sensitivity": sensitivity,
        }
        partial["metrics.json"].write_bytes(
            orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
        )
        write_incidents_csv(paired, partial["incidents.csv"])
        from sdo.evaluation.report import write_report  # noqa: PLC0415 (matplotlib is slow to import)

        write_report(document, partial["report.html"])
        for name in names:
            partial[name].replace(out / name)
    finally:
        line.clear()
        for path in partial.values():
            if path.is_file():
                path.unlink()
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # (made for this evaluation, which failed)
    return results, comparisons


def _plan(
    args: argparse.Namespace, log: Path, given: list[str]
) -> tuple[dict[str, Any], frozenset[str], bool, list[PolicySpec], int]:
    """What to run on ``log``: its provenance, the incidents its deployments attended,
    whether the loop is closed (by default for a simulated log), the policies (by default
    thrive, closest, and recorded where the log has deployments) and how many at once."""
    from sdo.evaluation.closed_loop import attended as attended_in  # noqa: PLC0415
    from sdo.evaluation.provenance import provenance  # noqa: PLC0415
    from sdo.evaluation.replay import read_log  # noqa: PLC0415

    about = provenance(log)
    reader = read_log(log)
    try:
        attended = attended_in(reader)
    finally:
        reader.close()
    closed = args.closed_loop if args.closed_loop is not None else about["kind"] == "simulated"
    default = ["thrive", "closest", *([RECORDED] if attended else [])]
    specs = _specs(given or default)
    _check_against(args.against, specs)
    jobs = args.jobs if args.jobs is not None else default_jobs(len(specs))
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}")
    if any(s.recorded for s in specs) and not attended:
        raise ConfigError(f"{log}: --policy recorded: the log records no deployment")
    return about, attended, closed, specs, jobs


#: The travel assumptions the headline is re-run with (``--sensitivity``).
SENSITIVITY: Final[tuple[tuple[str, float | None, float], ...]] = (
    ("detour factor 1.2", 1.2, 1.0),
    ("detour factor 1.6", 1.6, 1.0),
    ("speeds -20%", None, 0.8),
    ("speeds +20%", None, 1.2),
)


def _sensitivity(
    log: Path,
    settings: Settings,
    specs: list[PolicySpec],
    attended: frozenset[str],
    against: str | None,
) -> list[dict[str, Any]]:
    """The headline (the first comparison's policies, grade 1 and 2) again under other
    travel assumptions of the closed loop: how much it rests on the timing model."""
    pair = [s for s in specs if not s.recorded][:2]
    if len(pair) < 2:
        return []
    base = Timing()
    rows = []
    for label, detour, speed in SENSITIVITY:
        timing = base.scaled(detour=detour, speed=speed, label=label)
        paired: dict[str, dict[str, list[Any]]] = {}
        results = evaluate(
            log, settings, pair, jobs=default_jobs(2), paired=paired, closed_loop=True,
            timing=timing, attended=attended,
        )  # fmt: skip
        row: dict[str, Any] = {"timing": timing.label, "policies": {}}
        for name, m in results.items():
            g1, g2 = m["grades"]["1"], m["grades"]["2"]
            row["policies"][name] = {
                "grade_1_attend_median_s": g1["attend_median_s"],
                "grade_1_share_within_15_min": g1.get("share_within_15_min"),
                "grade_2_attend_median_s": g2["attend_median_s"],
                "grade_2_share_within_60_min": g2.get("share_within_60_min"),
            }
        chosen = against if against in results else None
        row["comparisons"] = [
            {
                "policy": c["policy"],
                "against": c["against"],
                **{
                    f"grade_{g}_attend_median_s_diff": c["grades"][g]["attend_median_s_diff"]
                    for g in ("1", "2")
                },
                **{
                    f"grade_{g}_attend_median_s_diff_ci95": c["grades"][g][
                        "attend_median_s_diff_ci95"
                    ]
                    for g in ("1", "2")
                },
            }
            for c in compare(paired, chosen)
        ]
        rows.append(row)
    return rows


def _status_quo(specs: list[PolicySpec], attended: frozenset[str]) -> dict[str, Any]:
    """What stands for the force's present way of working, in words the report uses."""
    labels = {s.label for s in specs}
    return {
        "recorded": RECORDED in labels,
        "closest": "closest" in labels,
        "closest_restricted_to_attended": bool(attended),
        "attended_incidents": len(attended),
    }


def _summary(results: dict[str, Any], comparisons: list[dict[str, Any]], out: Path) -> None:
    """What ``sdo evaluate`` prints when it is done: a line per policy and comparison."""
    most = max(m["incidents"] for m in results.values())
    for name, m in results.items():
        g1 = m["grades"]["1"]
        missing = g1["without_officer"]
        if not m.get("officers", 1):
            sys.stdout.write(
                f"{name}: {m['incidents']} incidents, {m['share_off_response_officers']:.0%} "
                "sent off response officers; attendance not measured (no officers in the log)\n"
            )
            continue
        given = " (the calls the log's dispatch attended)" if m["incidents"] < most else ""
        sys.stdout.write(
            f"{name}: {m['incidents']} incidents{given}, "
            f"{m['share_off_response_officers']:.0%} sent off "
            f"response officers, grade 1 median attendance "
            f"{_minutes(g1['attend_median_s'])}, within 15 min "
            f"{_pct(g1.get('share_within_15_min'))}"
            + (f" ({missing} of {g1['incidents']} {_unreached(m)})" if missing else "")
            + "\n"
        )
    officers = all(m.get("officers", 1) for m in results.values())
    for c in comparisons:
        sys.stdout.write(_comparison_line(c) if officers else _routing_line(c))
    sys.stdout.write(
        f"wrote {out / 'report.html'}, {out / 'metrics.json'}, {out / 'incidents.csv'}, "
        f"{out / 'recommendations.jsonl'}\n"
    )


def _unreached(m: dict[str, Any]) -> str:
    return "not reached" if m.get("attendance") == "observed" else "with no officer named"


def _routing_line(c: dict[str, Any]) -> str:
    """A comparison of a log without officers: the routing only."""
    d, ci = c["share_off_response_officers_diff"], c["share_off_response_officers_diff_ci95"]
    interval = f" ({ci[0] * 100:+.0f} to {ci[1] * 100:+.0f} pts)" if ci else ""
    return (
        f"{c['policy']} - {c['against']}, same incidents: off response officers "
        f"{d * 100:+.0f} pts{interval}; attendance not measured (no officers in the log)\n"
    )


def _comparison_line(c: dict[str, Any]) -> str:
    """One comparison on the same incidents, in a line: each difference with its 95%
    interval, marked ``*`` where the interval leaves out zero (the log shows it)."""

    def part(label: str, where: dict[str, Any], key: str, minutes: bool) -> str:
        diff, interval = where[f"{key}_diff"], where[f"{key}_diff_ci95"]
        if diff is None:
            return f"{label} n/a"

        def fmt(v: float) -> str:
            return f"{v / 60:+.1f} min" if minutes else f"{v * 100:+.0f} pts"

        if interval is None:
            return f"{label} {fmt(diff)}"
        low, high = interval
        mark = "*" if low > 0 or high < 0 else ""
        return f"{label} {fmt(diff)}{mark} ({fmt(low)} to {fmt(high)})"

    parts = [part("off response officers", c, "share_off_response_officers", False)]
    for g, grade in c["grades"].items():
        parts.append(part(f"grade {g} median attendance", grade, "attend_median_s", True))
        within = f"share_within_{grade['target_min']}_min"
        parts.append(part(f"within {grade['target_min']} min", grade, within, False))
    return (
        f"{c['policy']} - {c['against']}, same incidents: {', '.join(parts)} "
        "(95% intervals; * the log shows it)\n"
    )


#: A file whose first this many lines are all invalid is not taken for an event log.
SNIFF_LINES: Final = 50


class _NotALog(Exception):
    pass


def _sniff(log: Path) -> None:
    """Refuse, in one line, a file that is not an event log (a CSV, a report): its first
    :data:`SNIFF_LINES` lines are all invalid. A log with a few bad lines passes; the
    passes report those."""
    from sdo.evaluation.replay import read_log  # noqa: PLC0415

    first: list[tuple[int, str]] = []

    def invalid(lineno: int, reason: str) -> None:
        first.append((lineno, reason))
        if len(first) >= SNIFF_LINES:
            raise _NotALog

    reader = read_log(log, invalid)
    try:
        next(iter(reader), None)
    except _NotALog:
        lineno, reason = first[0]
        raise ConfigError(
            f"{log}: not an event log: none of its first {SNIFF_LINES} lines is an event "
            f"(line {lineno}: {reason})"
        ) from None
    finally:
        reader.close()


def _check_against(against: str | None, specs: list[PolicySpec]) -> None:
    labels = [spec.label for spec in specs]
    if against is not None and against not in labels:
        raise ConfigError(
            f"--against {against!r} is not one of the policies evaluated: {', '.join(labels)}"
        )


#: A log with more of its incident events than this share outside the areas is refused.
OUTSIDE_MAX: Final = 0.10


def _check_read(log: Path, metrics: dict[str, Any], *, allow_outside: bool = False) -> None:
    """Say how many lines of ``log`` were skipped as invalid (the first few were shown as
    they came) and how many events could not be applied, with a reason of each kind; a
    log without one valid event, or without one incident to evaluate, is an error, not
    an empty report."""
    invalid = metrics["invalid_lines"]
    if not metrics["events"]:
        raise ConfigError(
            f"{log}: no valid event to evaluate"
            + (f" ({invalid:,} invalid line(s) skipped)" if invalid else " (the log is empty)")
        )
    rejected, examples = metrics["rejected_events"], metrics["rejected_examples"]
    why = "; ".join(
        f"{kind} {n:,}, e.g. {examples.get(kind, '?')}" for kind, n in sorted(rejected.items())
    )
    outside, total = metrics["outside_incident_events"], metrics["incident_events"]
    if total and outside / total > OUTSIDE_MAX and not allow_outside and metrics["incidents"]:
        raise ConfigError(
            f"{log}: {outside:,} of its {total:,} incident events ({outside / total:.0%}) fall "
            f"outside the areas of --areas: is it the area file the log was made for? "
            f"(--allow-outside evaluates the rest)"
        )
    if not metrics["incidents"]:
        hint = " Is --areas the area file the log was made for?" if "outside" in why else ""
        raise ConfigError(
            f"{log}: no incident to evaluate"
            + (f" (events that could not be applied: {why}).{hint}" if why else " in the log")
        )
    if invalid:
        sys.stderr.write(
            f"sdo evaluate: {invalid:,} invalid line(s) of {log} skipped; "
            f"{metrics['events']:,} events evaluated\n"
        )
    if rejected:
        sys.stderr.write(
            f"sdo evaluate: {sum(rejected.values()):,} event(s) of {log} could not be applied "
            f"and were left out: {why}\n"
        )


def _variant(spec: PolicySpec, changes: list[str]) -> dict[str, Any]:
    """What metrics.json says of a variant besides its figures: which policy it varies,
    its rules file, and what that changes from the evaluation's rules."""
    return {"variant_of": spec.name, "rules": str(spec.rules), "rules_changes": changes}


def _inputs(settings: Settings) -> dict[str, str]:
    """What besides the log decided the figures: the area and rule files (a packaged one
    by its name) and sdo's version, so that an evaluation can be run again the same way."""
    try:
        version = importlib.metadata.version("sdo")
    except importlib.metadata.PackageNotFoundError:  # (run from a source tree)
        version = "unknown"
    return {
        "areas": str(settings.areas) if settings.areas is not None else f"packaged {DEFAULT_AREAS}",
        "rules": str(settings.rules) if settings.rules is not None else f"packaged {DEFAULT_RULES}",
        "sdo": version,
    }


class _PassesLine:
    """``sdo evaluate``'s progress on stderr: each running pass's share of the log, rate
    and ETA on one line; a line of its own when a pass ends (events, seconds, rate)."""

    def __init__(self, line: ProgressLine, policies: list[str]) -> None:
        self.line = line
        self.running: dict[str, str] = dict.fromkeys(policies, "")

    def __call__(
        self, name: str, fraction: float, events: int, seconds: float, ended: bool
    ) -> None:
        rate = events / seconds if seconds > 0 else 0.0
        if ended:
            self.running.pop(name, None)
            self.line.say(
                f"sdo evaluate: {name}: {events:,} events in {seconds:.1f} s ({rate:,.0f}/s)"
            )
            return
        eta = eta_text(seconds, fraction)
        self.running[name] = f"{name} {fraction:.0%} ({rate:,.0f}/s{eta})"
        if self.line.due():
            self.line.show("sdo evaluate: " + ", ".join(t for t in self.running.values() if t))


def _assumptions(settings: Settings, *, closed: bool = False) -> dict[str, Any]:
    from sdo.grade import load_rules  # noqa: PLC0415

    policy = Policy.from_mapping("thrive", load_rules(settings.rules_path).recommend)
    return {
        "eta": f"straight-line (great-circle) distance × {policy.detour_factor} for the road "
        "network, ÷ the speed of the officer's transport for the incident's grade",
        "speed_mps_by_grade_1_2_3": dict(policy.speed_mps),
        "stale_fix_after_s": policy.stale_after_s,
        "attendance": (
            "closed loop: time from the incident being logged to the first officer at the "
            "scene, as the loop carried the policy's recommendations out (the SDO accepts "
            "each after the dispatch delay; officers mobilise and travel by the timing "
            "model: detour "
            f"{(timing := Timing()).detour_factor}, car {timing.speed_mps[Transport.CAR][0]} "
            "m/s for grade 1); recorded: as the log's own statuses show it"
            if closed
            else "time from incident creation to the first recommendation naming an "
            "officer, plus that officer's ETA (an estimate; no travel is observed); "
            "recorded: the log's own first officer at the scene"
        )
        + "; an incident nobody reached has none: it counts as not within target, and is "
        "left out of the medians (without_officer counts them)",
        "cover": "thrive weighs what sending a response officer costs their cluster: the "
        "expected share of its neighbourhoods that would lose cover (an available officer "
        f"within {policy.cover_time_s / 60:.0f} min), taking each officer to be busy with "
        f"probability {policy.cover_busy_p}; not for grade 1, where the fastest goes",
        "targets": "grade 1 within 15 min, grade 2 within 60 min (West Midlands Police)",
        "intervals": f"95% intervals (the fields ending in ci95) are percentiles of the "
        f"figure over {BOOTSTRAP_RESAMPLES:,} resamples of the incidents with replacement "
        f"(a bootstrap, seeded: the same log gives the same intervals); none from fewer "
        f"than {CI_MIN_VALUES} incidents",
    }


def _minutes(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min"


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"
