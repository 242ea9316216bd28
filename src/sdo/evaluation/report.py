"""The evaluation report: one self-contained HTML page, policies side by side.

Written for a pilot evaluator, not a programmer: plain words, the headline comparison
first, plots embedded as PNG (matplotlib, no network), and the assumptions spelled out.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import matplotlib

from sdo.evaluation.intervals import BOOTSTRAP_RESAMPLES, CI_MIN_VALUES
from sdo.evaluation.summary import (
    banner,
    breakdown_tables,
    measured,
    sensitivity_table,
    status_quo,
    summary,
    workload_table,
)

matplotlib.use("Agg")  # no display here; must precede pyplot
import matplotlib.pyplot as plt

__all__ = ["write_report"]

_WHO = [
    "response",
    "force_support",
    "neighbourhood",
    "pcso",
    "investigator",
    "partner service (no officer)",
    "nobody available",
]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _who_plot(policies: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    names = list(policies)
    left = [0.0] * len(names)
    colours = ["#c0392b", "#e67e22", "#27ae60", "#2ecc71", "#2980b9", "#8e44ad", "#7f8c8d"]
    for who, colour in zip(_WHO, colours, strict=True):
        shares = []
        for name in names:
            m = policies[name]
            shares.append(m["first_recommendation_sends"].get(who, 0) / max(m["incidents"], 1))
        ax.barh(names, shares, left=left, color=colour, label=who)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of incidents")
    ax.set_title("Who the recommendation sends")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=4, fontsize=8, frameon=False)
    return _png(fig)


def _attendance_plot(policies: dict[str, Any], observed: bool) -> str:
    """A panel per grade, each on its own scale (a long grade 3 tail no longer flattens
    grade 1): median bars, 90th percentile ticks, the target dashed."""
    names = list(policies)
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.0))
    targets = {"1": 15, "2": 60}
    for ax, g in zip(axes, ("1", "2", "3"), strict=True):
        meds = [(policies[n]["grades"][g]["attend_median_s"] or 0) / 60 for n in names]
        p90 = [(policies[n]["grades"][g]["attend_p90_s"] or 0) / 60 for n in names]
        xs = list(range(len(names)))
        ax.bar(xs, meds, color=[f"C{k}" for k in xs])
        ax.scatter(xs, p90, marker="_", s=400, color="black")
        top = max([*p90, *meds, 1.0])
        if g in targets:
            ax.axhline(targets[g], color="#c0392b", linestyle="--", linewidth=1)
            top = max(top, targets[g])
        ax.set_ylim(0, top * 1.15)
        ax.set_xticks(xs, names, fontsize=8, rotation=20)
        ax.set_title(f"grade {g}" + (f" (target {targets[g]} min)" if g in targets else ""))
        ax.set_ylabel("minutes", fontsize=8)
    what = "Attendance" if observed else "Estimated attendance"
    fig.suptitle(f"{what}: median bars, 90th percentile ticks", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _cover_plot(policies: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    names = list(policies)
    clusters = sorted({c for m in policies.values() for c in m["cover_gap_minutes"]})
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        values = [policies[name]["cover_gap_minutes"].get(c, 0) for c in clusters]
        ax.bar([i + k * width for i in range(len(clusters))], values, width=width, label=name)
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(clusters))], clusters)
    ax.set_ylabel("minutes below minimum cover")
    ax.set_title("Cover gaps by response cluster")
    ax.legend(fontsize=8)
    return _png(fig)


def _hours_plot(policies: dict[str, Any]) -> str | None:
    """Three panels by hour of the day: the share sent off response officers, and grade 1's
    and 2's median estimated attendance, a line per policy (None if metrics.json has no
    hours: an older one)."""
    if not all("by_hour" in m for m in policies.values()):
        return None
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 6.6), sharex=True)
    panels = (
        ("share_off_response_officers", "sent off response officers", 1.0, None),
        ("grade_1_attend_median_s", "grade 1 median (min)", 1 / 60, 15),
        ("grade_2_attend_median_s", "grade 2 median (min)", 1 / 60, 60),
    )
    nan = float("nan")
    for ax, (key, label, scale, target) in zip(axes, panels, strict=True):
        for name, m in policies.items():
            rows = m["by_hour"]["hours"]
            values = [nan if r[key] is None else r[key] * scale for r in rows]
            ax.plot([r["hour"] for r in rows], values, marker="o", markersize=3, label=name)
        if target is not None:
            ax.axhline(target, color="#c0392b", linestyle="--", linewidth=1)
        ax.set_ylabel(label, fontsize=8)
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=8, ncol=min(len(policies), 4))
    first = next(iter(policies.values()))
    counts = [r["incidents"] for r in first["by_hour"]["hours"]]
    axes[-1].set_xticks(range(24), [f"{h}\n{n}" for h, n in enumerate(counts)], fontsize=7)
    zone = first["by_hour"]["time_zone"]
    axes[-1].set_xlabel(f"hour of the day the call came in ({zone}), and calls in it")
    return _png(fig)


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "not measured"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "min":
        return f"{value / 60:.1f} min"
    return html.escape(str(value))


#: A headline row: its label, how to read its figure from a policy's metrics, how to show
#: it, and where its 95% interval is (None: it has none).
_Row = tuple[str, Callable[[dict[str, Any]], Any], str, Callable[[dict[str, Any]], Any] | None]


def _grade(g: str, key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda m: m["grades"][g].get(key)


#: How the parts of the demand sent off response officers read in the report.
_OFF_PART_LABELS: Final = {
    "investigator": "… to an investigator",
    "neighbourhood": "… to a neighbourhood officer",
    "pcso": "… to a PCSO",
    "force_support": "… to force support (blue-light units)",
    "supervisor": "… to a supervisor",
    "partner service (no officer)": "… signposted to a partner service",
}


def _off_response_parts(policies: dict[str, Any]) -> list[_Row]:
    """A row per place the demand off response officers went, largest first: the rows add
    up to the headline share."""
    largest: dict[str, float] = {}
    for m in policies.values():
        for part, share in (m.get("share_off_response_officers_by") or {}).items():
            largest[part] = max(largest.get(part, 0.0), share)
    rows: list[_Row] = []
    for part in sorted(largest, key=lambda p: (-largest[p], p)):
        label = _OFF_PART_LABELS.get(part, f"… {part.replace('_', ' ')}")

        def get(m: dict[str, Any], part: str = part) -> Any:
            return (m.get("share_off_response_officers_by") or {}).get(part, 0.0)

        rows.append((label, get, "pct", None))
    return rows


def _without_officer(g: str) -> Callable[[dict[str, Any]], Any]:
    def shown(m: dict[str, Any]) -> str:
        grade = m["grades"][g]
        return f"{grade['without_officer']} of {grade['incidents']}"

    return shown


def _rows(policies: dict[str, Any]) -> str:
    what = "attendance" if _observed(policies) else "estimated attendance"
    lines: list[_Row] = [
        ("Incidents graded", lambda m: m["incidents"], "", None),
        ("Recommendations issued", lambda m: m["recommendations"], "", None),
        (
            "Sent somewhere other than a response officer",
            lambda m: m["share_off_response_officers"],
            "pct",
            lambda m: m.get("share_off_response_officers_ci95"),
        ),
        *_off_response_parts(policies),
        (
            f"Grade 1: median {what}",
            _grade("1", "attend_median_s"),
            "min",
            _grade("1", "attend_median_ci95_s"),
        ),
        (
            "Grade 1: within 15 min",
            _grade("1", "share_within_15_min"),
            "pct",
            _grade("1", "share_within_15_min_ci95"),
        ),
        ("Grade 1: no officer named", _without_officer("1"), "", None),
        (
            f"Grade 2: median {what}",
            _grade("2", "attend_median_s"),
            "min",
            _grade("2", "attend_median_ci95_s"),
        ),
        (
            "Grade 2: within 60 min",
            _grade("2", "share_within_60_min"),
            "pct",
            _grade("2", "share_within_60_min_ci95"),
        ),
        ("Grade 2: no officer named", _without_officer("2"), "", None),
        ("Grade 1: recommended officer ETA, median", _grade("1", "eta_median_s"), "min", None),
        (
            "Over 30 min (grade 2)",
            _grade("2", "share_over_30_min"),
            "pct",
            _grade("2", "share_over_30_min_ci95"),
        ),
        (
            "Required skills matched",
            lambda m: m["skill_match_rate"],
            "pct",
            lambda m: m.get("skill_match_rate_ci95"),
        ),
        (
            "Neighbourhood calls to the named officer",
            lambda m: m["named_officer_alignment"],
            "pct",
            lambda m: m.get("named_officer_alignment_ci95"),
        ),
        (
            "Agrees with the log's own deployment (its first officer)",
            lambda m: m["agreement_with_recorded_deployments"],
            "pct",
            lambda m: m.get("agreement_with_recorded_deployments_ci95"),
        ),
        (
            "Grade 2: sending leaves a cluster below minimum cover",
            _grade("2", "share_leaving_cluster_below_min_cover"),
            "pct",
            _grade("2", "share_leaving_cluster_below_min_cover_ci95"),
        ),
        (
            "Cover-gap minutes (all clusters)",
            lambda m: round(sum(m["cover_gap_minutes"].values())),
            "",
            None,
        ),
    ]
    names = list(policies)
    out = ["<tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>"]
    unmeasured = not measured(policies)
    for label, get, kind, interval in lines:
        if unmeasured and (label.startswith(("Grade", "Cover-gap")) or "30 min" in label):
            cell = "<td>not measured (no officers in the log)</td>" * len(names)
            out.append(f"<tr><th>{html.escape(label)}</th>{cell}</tr>")
            continue
        cells = "".join(
            f"<td>{_fmt(get(policies[n]), kind)}"
            + _interval(None if interval is None else interval(policies[n]), kind)
            + "</td>"
            for n in names
        )
        out.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return "\n".join(out)


def _observed(policies: dict[str, Any]) -> bool:
    return all(m.get("attendance") == "observed" for m in policies.values())


def _interval(bounds: Any, kind: str) -> str:
    """A figure's 95% interval, small beside it ("3.3–3.9"), or nothing."""
    if not bounds or bounds[0] == bounds[1]:
        return ""  # (every resample the same: all or none of them, say)
    low, high = bounds
    text = f"{low / 60:.1f}–{high / 60:.1f}" if kind == "min" else f"{low:.0%}–{high:.0%}"
    return f' <small class="ci" title="95% interval">({text})</small>'


def _comparisons(comparisons: list[dict[str, Any]], timed: bool = True) -> str:
    """Each policy against the status quo on the same incidents: the difference, its
    paired 95% interval, and whether the log shows one (the interval leaves out zero).
    Not ``timed`` (no officers in the log): where calls are sent only."""
    if not comparisons:
        return ""
    parts = []
    for c in comparisons:
        name, base = html.escape(c["policy"]), html.escape(c["against"])
        rows = [
            _difference_row(
                "Sent somewhere other than a response officer",
                c,
                "share_off_response_officers",
                "pct",
                c["incidents"],
            )
        ]
        for g, grade in c["grades"].items() if timed else ():
            minutes = grade["target_min"]
            within = f"share_within_{minutes}_min"
            rows += [
                _difference_row(
                    f"Grade {g}: median estimated attendance",
                    grade,
                    "attend_median_s",
                    "min",
                    grade["both_with_officer"],
                ),
                _difference_row(
                    f"Grade {g}: within {minutes} min", grade, within, "pct", grade["incidents"]
                ),
            ]
        parts.append(
            f"<h3>{name} against {base}</h3><table><tr><th></th><th>{name} − {base}</th>"
            "<th>95% interval</th><th>does the log show a difference?</th>"
            "<th>incidents</th></tr>" + "".join(rows) + "</table>"
        )
    return (
        "<h2>Differences on the same incidents</h2>"
        "<p>Each policy against the status quo (or the policy <code>--against</code> "
        "names), incident by incident: the share sent off "
        "response officers over every incident both graded; the share within target over "
        "every incident of the grade (one a policy named no officer for missed it); the "
        "median attendance over the incidents of the grade both sent an officer to (so it "
        "can differ from the difference of the headline medians). The interval comes from "
        "resampling the incidents under both policies at once, which is sharper than comparing the "
        "headline intervals. Where it leaves out zero, the log shows a difference; where it "
        "spans zero, the difference may be chance."
        + (
            ""
            if timed
            else " Attendance is not measured: the log has no officers, so nobody is sent."
        )
        + "</p>"
        + "".join(parts)
    )


def _difference_row(label: str, where: dict[str, Any], key: str, kind: str, n: int) -> str:
    diff, interval = where.get(f"{key}_diff"), where.get(f"{key}_diff_ci95")

    def signed(v: float) -> str:
        text = f"{v / 60:+.1f} min" if kind == "min" else f"{v * 100:+.0f} points"
        return text.replace("-", "−").replace("+0 points", "0 points")

    shown, spread = "–", "–"
    if interval is not None:
        low, high = interval
        shown = "yes" if low > 0 or high < 0 else "no: it may be chance"
        if low == high == 0:
            shown = "no: the same on every incident"
        elif low != high:
            spread = f"{signed(low)} to {signed(high)}"
    return (
        f"<tr><th>{html.escape(label)}</th><td>{'–' if diff is None else signed(diff)}</td>"
        f"<td>{spread}</td><td>{shown}</td><td>{n:,}</td></tr>"
    )


def _grading(policies: dict[str, Any]) -> str:
    first_name, first = next(iter(policies.items()), ("", None))
    if not first or not first["incidents"]:
        return "<p>No incidents were graded.</p>"
    text = (
        f"<p>THRIVE+ grades the {first['incidents']} incidents as: {_graded(first)}. The "
        "grading is the same under every policy run with the same rules; a policy only "
        "changes who is recommended."
    )
    # a variant's rules may grade otherwise
    others = [
        f"under <b>{html.escape(n)}</b>: {_graded(m)}"
        for n, m in policies.items()
        if m["incidents"] and m["share_by_response"] != first["share_by_response"]
    ]
    if others:
        text += (
            f" That is the grading under <b>{html.escape(first_name)}</b>; with rules of "
            f"their own, {'; '.join(others)}."
        )
    return text + "</p>"


def _graded(metrics: dict[str, Any]) -> str:
    order = ["emergency", "priority", "scheduled", "neighbourhood", "investigator", "signpost"]
    shares = metrics["share_by_response"]
    return ", ".join(f"{html.escape(r)} {shares[r]:.0%}" for r in sorted(shares, key=_rank(order)))


def _hours(policies: dict[str, Any]) -> str:
    if not measured(policies):
        return ""  # (its attendance panels would be empty; the routing is in the table)
    png = _hours_plot(policies)
    if png is None:
        return ""
    return (
        "<h2>By hour of the day</h2>\n<p>Does a policy hold up when calls peak and officers "
        "are busy? The share of calls sent somewhere other than a response officer, and the "
        "median estimated attendance of grades 1 and 2 (targets dashed), by the hour the "
        "call came in. An hour with fewer than 3 calls of a grade has no median there; the "
        "number of calls in each hour is under it.</p>\n"
        f'<img alt="by hour of the day" src="data:image/png;base64,{png}">'
    )


def _variants_assume(policies: dict[str, Any]) -> str:
    if not any("variant_of" in m for m in policies.values()):
        return ""
    return (
        "<p>These follow from the evaluation's rules; a variant runs with the changes its "
        "rules file makes to them (listed at the top).</p>"
    )


def _variants(policies: dict[str, Any]) -> str:
    """What each variant is: the policy it varies and what its rules file changes."""
    out = []
    for name, m in policies.items():
        if "variant_of" not in m:
            continue
        changes = m.get("rules_changes") or []
        what = (
            "which change, from the evaluation's rules:</p><ul>"
            + "".join(f"<li><code>{html.escape(c)}</code></li>" for c in changes)
            + "</ul>"
            if changes
            else "which say the same as the evaluation's rules.</p>"
        )
        out.append(
            f"<p><b>{html.escape(name)}</b> is <b>{html.escape(m['variant_of'])}</b> run with "
            f"the rules in {html.escape(str(m.get('rules', '?')))}, {what}"
        )
    return "\n".join(out)


def _rank(order: list[str]) -> Callable[[str], tuple[int, str]]:
    return lambda r: (order.index(r) if r in order else len(order), r)


_READING = """<ul>
<li><b>Figures in brackets</b>: the 95% interval of the figure beside them, from resampling
the incidents ({resamples:,} times, a bootstrap): how far it could move on another log like
this one. Where two policies' intervals do not overlap, the log shows a difference; where
they overlap, it may be chance (more days of log narrow them). None from fewer than
{few} incidents.</li>
<li><b>Recommendations issued</b>: an incident gets one when it is graded, and another each
time what the SDO would act on changes: who it names (a nearer officer comes free, its officer
is taken by a more urgent call) or what it lacks. {per_incident} Calls waiting for the same
kind of officer change each other's recommendations: under <b>closest</b> every call waits for
a response officer.</li>
<li><b>Sent somewhere other than a response officer</b>: incidents whose first recommendation
naming an officer names an investigator, neighbourhood officer, PCSO or force-support officer;
plus those referred to a partner service (no officer, by design) and those waiting for an
investigator or the neighbourhood team. The rows below it split it by where that demand
went (they add up to it); force support takes some priority calls (blue-light units).
<b>closest</b> sends a response officer to everything,
so its share is zero by construction; the difference is the demand THRIVE+ moves.</li>
<li><b>Estimated attendance</b>: from the call until the first recommendation that names an
officer, plus that officer's estimated travel time. An estimate from positions, not an
observed arrival. Medians and shares within target, as the force reports them. A call no
recommendation named an officer for (<i>no officer named</i>: nobody eligible with the
skills it needs, or everyone committed) has no estimate: it counts as missing its target,
and is left out of the median. Grade 3
has no target: <b>thrive</b> books a scheduled call with the lightest-loaded suitable officer
(an appointment), so its figure there is how soon an officer was named plus their travel time,
not when the appointment is kept; <b>closest</b> sends the nearest free response officer, when
one comes free.</li>
<li><b>Agrees with the log's own deployment</b>: of the deployments recorded in the log,
the share whose officers include the first officer this policy recommended just before. In
a simulated log those deployments are the simulated dispatcher's (the nearest free officer
by straight line), not a person's. <i>Not measured</i> when the log records no deployments,
and in closed loop (the policy's own deployments replace them).</li>
<li><b>Who is sent</b> (the first plot): the role of the officer the first recommendation
naming anyone names. <i>Nobody available</i>: no recommendation named an officer before the
incident was dealt with in the log (every suitable officer within reach was committed, or
recommended for another waiting call of the same or a higher grade).</li>
<li><b>Sending leaves a cluster below minimum cover</b>: of the grade 2 incidents whose
first recommendation naming an officer names available response officers, the share where
sending them would leave their response cluster with fewer available response officers than
its minimum cover, as things stood when it was recommended (metrics.json has it for every
grade). This is the policy's own choice: <b>thrive</b> weighs it for grades 2 to 4, and
would rather send an officer from a cluster that can spare one; <b>closest</b> does not.
For grade 1 the fastest goes, cover or not.</li>
<li><b>Cover-gap minutes</b>: minutes a response cluster spent below its minimum number of
available response officers. Officers move and are deployed as the log recorded, not as a
policy would have sent them, so this is the log's figure and, on one log, the same under
every policy; the share left below minimum cover, above, is the policy's.</li>
</ul>"""


def _inputs(document: dict[str, Any]) -> str:
    """The areas, rules and sdo version the evaluation ran with (if metrics.json says)."""
    inputs = document.get("inputs")
    if not isinstance(inputs, dict):
        return ""
    labels = (("areas", "areas:"), ("rules", "rules:"), ("sdo", "sdo"))
    parts = [f"{label} {html.escape(str(inputs[key]))}" for key, label in labels if key in inputs]
    return "; " + "; ".join(parts) if parts else ""


def _log_read(policies: dict[str, Any]) -> str:
    """What was read of the log (the same in every pass): its events and the period they
    cover, the lines skipped as invalid and the events that could not be applied."""
    m = next(iter(policies.values()), None)
    if m is None or "events" not in m:
        return ""
    parts = [f"{m['events']:,} events"]
    period = m.get("period")
    if period:
        parts[0] += (
            f" over {period['hours']:g} hours, from {_when(period['from'])} "
            f"to {_when(period['to'])} UTC"
        )
    invalid = m.get("invalid_lines", 0)
    if invalid:
        parts.append(
            f"{invalid:,} line(s) were not valid events and were skipped "
            "(<code>sdo evaluate</code> lists the first of them)"
        )
    rejected = m.get("rejected_events") or {}
    if rejected:
        kinds = ", ".join(f"{html.escape(k)} {n:,}" for k, n in sorted(rejected.items()))
        parts.append(
            f"{sum(rejected.values()):,} event(s) could not be applied and were left out, "
            f"as the live worker sends them to the dead-letter topic ({kinds})"
        )
    return f"<p>The log: {'; '.join(parts)}.</p>"


def _when(text: str) -> str:
    """An RFC 3339 time of metrics.json as "2015-12-01 06:00"."""
    return html.escape(text[:16].replace("T", " "))


_CLOSED_ATTENDANCE = """<li><b>Attendance</b> (closed loop): from the call being logged
to the first officer at the scene, as the loop carried each policy's recommendations out:
the SDO accepts the recommendation in force after the dispatch delay, the officers named
mobilise, travel by the timing model and stay for the time on scene; the same call gets
the same delays under every policy. A call nobody reached before it was closed or the log
ended counts as missing its target and is left out of the median.</li>"""
_CLOSED_COVER = """<li><b>Cover-gap minutes</b> (closed loop): minutes a response cluster
spent below its minimum number of available response officers, as each policy's own
deployments left it: a policy that sends officers from a cluster that cannot spare them
shows it here.</li>"""


def _reading(policies: dict[str, Any], closed: bool = False) -> str:
    """How to read the figures, with each policy's recommendations per incident."""
    ratios = [
        f"{m['recommendations'] / m['incidents']:.1f} per incident under <b>{html.escape(n)}</b>"
        for n, m in policies.items()
        if m["incidents"] and m["recommendations"] is not None
    ]
    per_incident = f"Here: {', '.join(ratios)}." if ratios else ""
    text = _READING.format(
        per_incident=per_incident, resamples=BOOTSTRAP_RESAMPLES, few=CI_MIN_VALUES
    )
    if closed:
        items = text.split("<li>")
        for k, item in enumerate(items):
            if item.startswith("<b>Estimated attendance</b>"):
                items[k] = _CLOSED_ATTENDANCE.removeprefix("<li>") + "\n"
            elif item.startswith("<b>Cover-gap minutes</b>"):
                items[k] = _CLOSED_COVER.removeprefix("<li>") + "\n</ul>"
        text = "<li>".join(items)
    return text


#: What each assumption of metrics.json is called in the report, in this order (any other
#: is shown under its own name, after these).
_ASSUMED = {
    "eta": "Travel time (ETA)",
    "attendance": "Estimated attendance",
    "stale_fix_after_s": "Stale location",
    "cover": "Cover",
    "targets": "Targets",
    "intervals": "Intervals",
}


def _assumptions(assumed: dict[str, Any]) -> str:
    """The assumptions in words, and the speeds as a table in km/h (metrics.json keeps
    them as figures, in metres per second)."""
    order = {key: n for n, key in enumerate(_ASSUMED)}
    items = []
    for key, value in sorted(assumed.items(), key=lambda kv: order.get(kv[0], len(order))):
        if key == "speed_mps_by_grade_1_2_3":
            continue
        if key == "stale_fix_after_s":
            text = (
                f"an officer whose last AVL fix is older than {float(value) / 60:g} min counts "
                "as stale: their position is uncertain, and the recommendation says so"
            )
        else:
            text = str(value)
        items.append(f"<li><b>{html.escape(_ASSUMED.get(key, key))}</b>: {html.escape(text)}</li>")
    out = f"<ul>{''.join(items)}</ul>"
    speeds = assumed.get("speed_mps_by_grade_1_2_3")
    if isinstance(speeds, dict) and speeds:
        grades = max(len(v) for v in speeds.values())
        head = "".join(f"<th>grade {g}</th>" for g in range(1, grades + 1))
        rows = "".join(
            f"<tr><th>{html.escape(str(transport))}</th>"
            + "".join(f"<td>{float(v) * 3.6:.0f} km/h</td>" for v in values)
            + "</tr>"
            for transport, values in speeds.items()
        )
        out += (
            "<p>Average speeds assumed for the ETA, by transport and the incident's grade "
            "(a grade 1 call is driven to under blue lights):</p>"
            f"<table><tr><th>transport</th>{head}</tr>{rows}</table>"
        )
    return out


def _how_fast(policies: dict[str, Any], observed: bool) -> str:
    """The attendance section: the chart per grade, or why there is none."""
    if not measured(policies):
        return (
            "<h2>How fast</h2><p>Not measured: the log has no officers, so nobody is sent "
            "and no attendance can be timed (<code>sdo import police-uk --officers K</code> "
            "simulates some).</p>"
        )
    what = (
        "Attendance (logged to first officer at the scene)"
        if observed
        else ("Estimated attendance")
    )
    return f"""<h2>How fast</h2>
<p>{what} for graded calls, against the force's targets (grade 1 within 15
min, grade 2 within 60 min). Grade 3 has no target, and under <b>thrive</b> its figure is not
an attendance (see "Estimated attendance" above).</p>
<img alt="attendance" src="data:image/png;base64,{_attendance_plot(policies, observed)}">"""


def _cover(policies: dict[str, Any], closed: bool) -> str:
    if not measured(policies):
        return (
            "<h2>Cover</h2><p>Not measured: the log has no officers, so no cluster's "
            "available cover can be counted.</p>"
        )
    how = (
        ", as each policy's own deployments left it (closed loop)."
        if closed
        else ", as the log recorded it (the same under every policy: see Cover-gap minutes above)."
    )
    return (
        f"<h2>Cover</h2>\n<p>Minutes each response cluster spent below its minimum available "
        f'cover{how}</p>\n<img alt="cover gaps" src="data:image/png;base64,'
        f'{_cover_plot(policies)}">'
    )


def write_report(document: dict[str, Any], path: Path) -> None:
    policies = document["policies"]
    assumptions = _assumptions(document["assumptions"])
    closed = document.get("loop") == "closed"
    observed = closed or all(m.get("attendance") == "observed" for m in policies.values())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdo evaluation</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35em .8em; text-align: right; }}
td {{ white-space: nowrap; }}
th:first-child {{ text-align: left; font-weight: normal; }}
img {{ max-width: 100%; }} .note {{ color: #555; }} .ci {{ color: #777; }}
.banner {{ padding: .8em 1em; border-radius: 6px; margin: 1em 0; }}
table.wide td {{ white-space: normal; text-align: left; }}
</style></head><body>
<h1>Dispatch policies compared</h1>
{banner(document)}
<h2>In short</h2>
{summary(document)}
<p class="note">Log: {html.escape(document["log"])}{_inputs(document)}. Each policy was run
over the same events with the same decision code as the live system
({"closed loop" if closed else "open loop"}). <b>thrive</b> routes each call by its
THRIVE+ grading (the product).</p>
{status_quo(document)}
{_log_read(policies)}
{_variants(policies)}
<h2>Headline figures</h2>
<table>{_rows(policies)}</table>
{_grading(policies)}
{_comparisons(document.get("comparisons") or [], measured(policies))}
{sensitivity_table(document)}
<h2>Reading the figures</h2>
{_reading(policies, closed)}
<h2>Who is sent</h2>
<p>THRIVE+ is meant to move demand that needs no blue-light attendance away from response
officers: to investigators, the neighbourhood's named officer, or a partner service.</p>
<img alt="who is sent" src="data:image/png;base64,{_who_plot(policies)}">
{_how_fast(policies, observed)}
{_hours(policies)}
{breakdown_tables(document)}
{workload_table(document)}
{_cover(policies, closed)}
<h2>Assumptions</h2>
{assumptions}{_variants_assume(policies)}
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def write_across_report(summary: dict[str, Any], path: Path) -> None:
    """The report across several logs: each headline figure's mean and 95% interval over
    the logs, the differences likewise, and a link to each log's own report."""
    data = summary["across"]
    names = list(data["policies"])

    def shown(entry: dict[str, Any]) -> str:
        kind = entry.get("kind", "")

        def fmt(v: float) -> str:
            if kind == "min":
                return f"{v / 60:.1f} min"
            return f"{min(max(v, 0.0), 1.0):.0%}" if kind == "pct" else f"{v:,.0f}"

        if entry["mean"] is None:
            return "not measured"
        ci = entry.get("ci95")
        interval = f' <small class="ci">({fmt(ci[0])} to {fmt(ci[1])})</small>' if ci else ""
        return fmt(entry["mean"]) + interval

    rows = []
    first = data["policies"][names[0]]
    for key, entry in first.items():
        cells = "".join(f"<td>{shown(data['policies'][n][key])}</td>" for n in names)
        rows.append(f"<tr><th>{html.escape(entry['label'])}</th>{cells}</tr>")
    diffs = []
    for pair, figures in data["differences"].items():
        for label, entry in figures.items():
            if entry["mean"] is None:
                continue
            minutes = "median" in label

            def fmt(v: float, minutes: bool = minutes) -> str:
                return f"{v / 60:+.1f} min" if minutes else _points(v)

            ci = entry.get("ci95")
            verdict = ""
            if ci:
                shows = ci[0] > 0 or ci[1] < 0
                verdict = " (shows a difference)" if shows else " (may be chance)"
                interval = f"{fmt(ci[0])} to {fmt(ci[1])}{verdict}"
            else:
                interval = "one log: no interval"
            diffs.append(
                f"<tr><th>{html.escape(pair)}: {html.escape(label)}</th>"
                f"<td>{fmt(entry['mean'])}</td><td>{interval}</td></tr>"
            )
    logs = "".join(
        f'<li><a href="{html.escape(r["dir"])}/report.html">{html.escape(r["log"])}</a></li>'
        for r in summary["logs"]
    )
    kinds_seen = {p.get("kind") for p in summary["provenance"] if p}
    note = (
        "<b>Simulated data</b>: every log here was made by <code>sdo simulate</code>; none of "
        "it happened."
        if kinds_seen == {"simulated"}
        else "Data: " + ", ".join(sorted(str(k) for k in kinds_seen))
    )
    n = len(summary["logs"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdo evaluation across {n} logs</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35em .8em; text-align: right; }}
th:first-child {{ text-align: left; font-weight: normal; }} .ci {{ color: #777; }}
.banner {{ padding: .8em 1em; border-radius: 6px; margin: 1em 0; background: #fff4d6; }}
</style></head><body>
<h1>Dispatch policies compared across {n} logs</h1>
<div class="banner">{note} {_loop_words(summary.get("loop"))}</div>
<h2>In short</h2>
{_across_summary(data, n)}
<p>Each figure is the mean over the {n} logs, with a 95% interval from how much it varied
between them (in brackets): what another log like these would most likely give. Where an
interval of a difference leaves out zero, the logs show a difference.</p>
<table><tr><th></th>{"".join(f"<th>{html.escape(x)}</th>" for x in names)}</tr>
{"".join(rows)}</table>
<h2>Differences on the same calls (mean over the logs)</h2>
<table><tr><th></th><th>mean</th><th>95% interval</th></tr>{"".join(diffs)}</table>
<h2>Each log's own report</h2><ul>{logs}</ul>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def _loop_words(loop: Any) -> str:
    if loop == "closed":
        return (
            "Each policy's recommendations were carried out as an SDO accepting them would "
            "(closed loop): times, cover and workload are outcomes of the policy."
        )
    return (
        "The logs' own deployments were applied (open loop): the policies' times are "
        "estimates from their first recommendations."
    )


def _across_summary(data: dict[str, Any], n: int) -> str:
    """The differences the logs show, in words, for each pair compared."""
    out = []
    for pair, figures in data["differences"].items():
        shown: list[str] = []
        chance: list[str] = []
        for label, entry in figures.items():
            ci = entry.get("ci95")
            if entry["mean"] is None or not ci:
                continue
            mean = entry["mean"]
            value = f"{mean / 60:+.1f} min" if "median" in label else _points(mean)
            text = f"{html.escape(label)} {value}"
            (shown if ci[0] > 0 or ci[1] < 0 else chance).append(text)
        a, _, b = pair.partition(" - ")
        parts = [f"<b>{html.escape(a)}</b> against <b>{html.escape(b)}</b> on the same calls"]
        parts.append(
            f"the {n} logs show {', '.join(shown)}" if shown else f"the {n} logs show no difference"
        )
        if chance:
            parts.append(f"may be chance: {', '.join(chance)}")
        out.append("<li>" + "; ".join(parts) + ".</li>")
    if not out:
        return ""
    return (
        "<p><b>thrive</b> routes each call by its THRIVE+ grading (the product); "
        "<b>closest</b> sends the nearest free response officer to the calls the force "
        "attended (a model of today's dispatch); <b>recorded</b> is what the dispatch in "
        "the logs did.</p><ul>" + "".join(out) + "</ul>"
    )


def _points(share: float) -> str:
    """A difference of shares in percentage points (one decimal under one point)."""
    points = share * 100
    text = f"{points:+.1f}" if abs(points) < 1 else f"{points:+.0f}"
    return ("0" if text.strip("+-0.") == "" else text) + " points"
