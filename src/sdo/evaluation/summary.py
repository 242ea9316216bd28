"""The parts of the report a superintendent reads first: where the data came from (the
banner), what was compared and what came of it (the summary), and the breakdowns by place
and by who did the work. Plain words; every figure is from metrics.json."""

from __future__ import annotations

import html
from typing import Any, Final

__all__ = [
    "banner",
    "breakdown_tables",
    "measured",
    "sensitivity_table",
    "status_quo",
    "summary",
    "workload_table",
]

_MISSING: Final = "not measured"


def _min(seconds: Any) -> str:
    return _MISSING if seconds is None else f"{seconds / 60:.1f} min"


def _pct(share: Any) -> str:
    return _MISSING if share is None else f"{share:.0%}"


def banner(document: dict[str, Any]) -> str:
    """What the data is, in a coloured box: simulated (seed), imported from police.uk
    (with its caveats) or recorded."""
    about = document.get("provenance") or {"kind": "recorded", "caveats": []}
    m: dict[str, Any] = next(iter(document["policies"].values()), {})
    period = m.get("period") or {}
    span = f"{period.get('hours', 0):.0f} hours" if period else "an unknown period"
    kind = about.get("kind")
    if kind == "simulated":
        text = (
            f"<b>Simulated data.</b> This log was made by <code>sdo simulate</code> (seed "
            f"{about.get('seed')}): {span}, {m.get('incidents', 0):,} calls, officers, shifts "
            "and movements all invented by a model of the pilot area. None of it happened; "
            "the figures say how the policies behave in that model, not what they would do "
            "in Birmingham. The simulated dispatch in it stands for the status quo."
        )
        colour = "#fff4d6"
    elif kind == "police.uk":
        caveats = "".join(f"<li>{html.escape(c)}</li>" for c in about.get("caveats", []))
        officers = (
            "Officers, shifts and movements are simulated."
            if about.get("officers_simulated")
            else "The log has no officers: attendance and cover are not measured."
        )
        text = (
            f"<b>Imported from police.uk</b> (<code>sdo import police-uk</code>, seed "
            f"{about.get('seed')}): {span}, {m.get('incidents', 0):,} recorded crimes. "
            f"{officers} Caveats:<ul>{caveats}</ul>"
        )
        colour = "#e8f0fe"
    else:
        text = (
            f"<b>Recorded log</b> (not made by sdo): {span}, {m.get('incidents', 0):,} "
            "calls, as the log records them."
        )
        colour = "#e9f7ef"
    return f'<div class="banner" style="background:{colour}">{text}</div>'


def status_quo(document: dict[str, Any]) -> str:
    """Which policy stands for the present way of working, and what each baseline does."""
    quo = document.get("status_quo") or {}
    parts = []
    if quo.get("recorded"):
        parts.append(
            "<b>recorded</b> is the status quo as the log records it: the deployments its "
            "own dispatch made, and when its officers got there"
        )
    if quo.get("closest"):
        restricted = (
            f"to the {quo.get('attended_incidents', 0):,} calls the log's dispatch sent "
            "someone to (the others it left alone, as the force did)"
            if quo.get("closest_restricted_to_attended")
            else "to every call (the log records no deployment to say which the force attends)"
        )
        parts.append(
            "<b>closest</b> is a model of the status quo run through the same machinery as "
            f"thrive: the nearest available response officer, {restricted}"
        )
    return "<p>" + "; ".join(parts) + ".</p>" if parts else ""


def _policy_line(name: str, m: dict[str, Any]) -> str:
    g1, g2 = m["grades"]["1"], m["grades"]["2"]
    return (
        f"<b>{html.escape(name)}</b>: grade 1 median {_min(g1['attend_median_s'])}, "
        f"{_pct(g1.get('share_within_15_min'))} within 15 min; grade 2 median "
        f"{_min(g2['attend_median_s'])}, {_pct(g2.get('share_within_60_min'))} within 60 min"
    )


def _points(share: float) -> str:
    """A difference of shares in percentage points ("-9 points", "0 points")."""
    points = share * 100
    text = f"{points:+.1f}" if abs(points) < 1 else f"{points:+.0f}"
    return ("0" if text.strip("+-0.") == "" else text) + " points"


def _verdict(ci: list[float]) -> str:
    return "the data shows a difference" if ci[0] > 0 or ci[1] < 0 else "this may be chance"


def _diff(c: dict[str, Any], g: str) -> str:
    grade = c["grades"][g]
    d, ci = grade.get("attend_median_s_diff"), grade.get("attend_median_s_diff_ci95")
    if d is None:
        return f"grade {g}: not measured"
    word = "slower" if d > 0 else "faster"
    text = f"grade {g} median {abs(d) / 60:.1f} min {word}"
    if ci is None:
        text += " (too few calls for an interval)"
    else:
        text += f" (95% interval {ci[0] / 60:+.1f} to {ci[1] / 60:+.1f} min: {_verdict(ci)})"
    key = f"share_within_{grade['target_min']}_min_diff"
    share, interval = grade.get(key), grade.get(f"{key}_ci95")
    if share is not None and interval:
        text += (
            f", {_points(share)} within {grade['target_min']} min "
            f"({_points(interval[0])} to {_points(interval[1])}: {_verdict(interval)})"
        )
    return text


def measured(policies: dict[str, Any]) -> bool:
    """Whether the log has officers: without, nobody is sent and no attendance, cover or
    workload can be measured (only how calls are graded and routed)."""
    return all(m.get("officers", 1) for m in policies.values())


def summary(document: dict[str, Any]) -> str:
    """The paragraph up front: what was compared, on what, and the headline differences."""
    policies = document["policies"]
    names = list(policies)
    first = policies[names[0]]
    closed = document.get("loop") == "closed"
    how = (
        "Each policy's recommendations were carried out as an SDO accepting every one would: "
        "the officers it sends are busy and cannot take the next call, so the times, cover "
        "gaps and workload below are outcomes of the policy."
        if closed
        else (
            "Officers moved and were deployed as the log records"
            if first.get("agreement_with_recorded_deployments") is not None
            else "Officers moved as the log records (it records no deployments)"
        )
        + " (open loop): the policies' times are estimates of what their first "
        "recommendation would have achieved (travel only: no dispatch delay, no "
        "mobilisation), and cover gaps are the log's own, the same for every policy."
    )
    meaning = {
        "thrive": "routes each call by its THRIVE+ grading (the product being piloted)",
        "closest": "sends the nearest free response officer (a model of today's dispatch)",
        "recorded": "is what the log's own dispatch did (the status quo as it happened)",
    }
    said = "; ".join(
        f"<b>{html.escape(n)}</b> {meaning[n]}" if n in meaning else f"<b>{html.escape(n)}</b>"
        for n in names
    )
    parts = [f"<p><b>What was compared.</b> {said}; on {first['incidents']:,} calls. {how}</p>"]
    timed = measured(policies)
    if not timed:
        parts.append(
            "<p><b>The log has no officers</b>: attendance, cover and workload are not "
            "measured; only how the calls are graded and routed is.</p>"
        )
    lines = [_policy_line(n, m) for n, m in policies.items() if m.get("officers", 1)]
    off = [
        f"<b>{html.escape(n)}</b> {m['share_off_response_officers']:.0%}"
        for n, m in policies.items()
    ]
    parts.append(
        "<p><b>What came of it.</b> Calls sent to someone other than a response officer "
        f"(investigators, neighbourhood officers, partner services): {', '.join(off)}.</p>"
    )
    if lines:
        parts.append("<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>")
    for c in document.get("comparisons") or [] if timed else ():
        a, b = html.escape(c["policy"]), html.escape(c["against"])
        parts.append(
            f"<p>On the same calls, <b>{a}</b> against <b>{b}</b>: {_diff(c, '1')}; "
            f"{_diff(c, '2')}.</p>"
        )
    skills = _skill_line(document) if timed else ""
    if skills:
        parts.append(skills)
    if timed:
        gaps = ", ".join(
            f"<b>{html.escape(n)}</b> {sum(m['cover_gap_minutes'].values()):,.0f} min"
            for n, m in policies.items()
        )
        period = first.get("period") or {}
        over = f" over the {period['hours']:.0f} hours" if period else ""
        parts.append(
            f"<p>Time some response cluster was below its minimum cover{over}: {gaps}"
            + ("" if closed else " (the log's, the same for every policy in open loop)")
            + ".</p>"
        )
    return "\n".join(parts)


def _skill_line(document: dict[str, Any]) -> str:
    """Grade 1 within target for calls that need a skill and those that need none: where
    a policy that treats skills as a constraint pays for it."""
    data = document.get("breakdown") or {}
    parts = []
    for name, groups in data.items():
        need = groups.get("skills", {})
        yes, no = need.get("needs a skill"), need.get("needs no skill")
        if not yes or not no or not yes["grade_1"]:
            continue
        parts.append(
            f"<b>{html.escape(name)}</b> {_pct(yes['grade_1_share_within_target'])} of "
            f"{yes['grade_1']} (needing none: {_pct(no['grade_1_share_within_target'])})"
        )
    if not parts:
        return ""
    return (
        "<p>Grade 1 calls that need a skill (taser, PPU, mental health, ...) reached within "
        f"15 min: {'; '.join(parts)}.</p>"
    )


def breakdown_tables(document: dict[str, Any]) -> str:
    """Grade 1 and 2 by NPU and by response cluster, per policy."""
    data = document.get("breakdown") or {}
    if not data:
        return ""
    timed = measured(document["policies"])
    out = ["<h2>By NPU and by response cluster</h2>"]
    if not timed:
        out.append(
            "<p>Calls by grade only: attendance is not measured (the log has no officers).</p>"
        )
    for key, title in (
        ("npu", "NPU"),
        ("cluster", "Response cluster"),
        ("skills", "Calls that need a skill (taser, PPU, mental health, ...)"),
    ):
        groups = sorted({g for p in data.values() for g in p.get(key, {})})
        head = "".join(f"<th>{html.escape(n)}</th>" for n in data)
        rows = []
        for group in groups:
            cells = []
            for policy in data.values():
                e = policy.get(key, {}).get(group)
                if e is None:
                    cells.append(f"<td>{_MISSING}</td>")
                    continue
                if not timed:
                    cells.append(
                        f"<td>{e['incidents']:,} calls; grade 1: {e.get('grade_1', 0):,}; "
                        f"grade 2: {e.get('grade_2', 0):,}</td>"
                    )
                    continue
                cells.append(
                    f"<td>{e['incidents']:,} calls; grade 1: "
                    f"{_min(e['grade_1_attend_median_s'])}, "
                    f"{_pct(e['grade_1_share_within_target'])} in 15 min; grade 2: "
                    f"{_min(e['grade_2_attend_median_s'])}, "
                    f"{_pct(e['grade_2_share_within_target'])} in 60 min</td>"
                )
            rows.append(f"<tr><th>{html.escape(group)}</th>{''.join(cells)}</tr>")
        out.append(f"<table class='wide'><tr><th>{title}</th>{head}</tr>{''.join(rows)}</table>")
    out.append(
        "<p class='note'>Medians and shares from fewer than 3 calls of a grade are "
        f"<i>{_MISSING}</i>. Every call, with its place, grade, who was sent and its "
        "attendance, is in <code>incidents.csv</code> beside this report (opens in Excel)."
        "</p>"
    )
    return "\n".join(out)


def _by_grade(counts: dict[str, int]) -> str:
    return ", ".join(f"grade {g}: {n}" for g, n in counts.items())


def workload_table(document: dict[str, Any]) -> str:
    """Who did the work under each policy (closed loop only)."""
    policies = {n: m["loop"] for n, m in document["policies"].items() if "loop" in m}
    if not policies:
        return ""
    roles = sorted({r for loop in policies.values() for r in loop["workload"]})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in policies)
    rows = []
    for role in roles:
        cells = []
        for loop in policies.values():
            w = loop["workload"].get(role)
            if w is None:
                cells.append("<td>none</td>")
            elif w["officers"] == 0:
                cells.append(
                    f"<td>{w['calls']:,} calls allocated at the desk to "
                    f"{w.get('desk_officers', 0)} officers (busiest "
                    f"{w.get('busiest_desk_officer_calls', 0)})</td>"
                )
            else:
                cells.append(
                    f"<td>{w['calls']:,} calls, {w['officer_hours_on_calls']:,.0f} officer-hours"
                    f" ({w['officers']} officers; busiest {w['busiest_officer_hours']:.1f} h)</td>"
                )
        rows.append(f"<tr><th>{html.escape(role.replace('_', ' '))}</th>{''.join(cells)}</tr>")
    unattended = "".join(
        "<td>" + (_by_grade(loop["unattended_by_grade"]) or "none") + "</td>"
        for loop in policies.values()
    )
    rows.append(f"<tr><th>grade 1 and 2 calls nobody reached</th>{unattended}</tr>")
    return (
        "<h2>Workload</h2><p>Calls each role took under each policy and the time officers "
        "spent on them (from deployment until free again, custody and statements "
        "included); investigators take calls at the desk.</p>"
        f"<table class='wide'><tr><th>role</th>{head}</tr>{''.join(rows)}</table>"
    )


def sensitivity_table(document: dict[str, Any]) -> str:
    """How the headline moves under other travel assumptions (``--sensitivity``)."""
    rows = document.get("sensitivity")
    if document.get("loop") != "closed":
        return ""
    head = (
        "<h2>How much the headline rests on the travel assumptions</h2>"
        "<p>The closed loop turns distance into time with a detour factor and average "
        "speeds (see Assumptions). "
    )
    if not rows:
        return head + (
            "Run <code>sdo evaluate --sensitivity</code> to see the headline again with a "
            "detour factor of 1.2 and 1.6 and speeds 20% lower and higher.</p>"
        )
    cells = []
    for row in rows:
        parts = []
        for c in row["comparisons"]:
            for g in ("1", "2"):
                d = c.get(f"grade_{g}_attend_median_s_diff")
                ci = c.get(f"grade_{g}_attend_median_s_diff_ci95")
                text = _MISSING if d is None else f"{d / 60:+.1f} min"
                if ci:
                    text += f" ({ci[0] / 60:+.1f} to {ci[1] / 60:+.1f})"
                parts.append(f"<td>{text}</td>")
        medians = "; ".join(
            f"{html.escape(n)} {_min(p['grade_1_attend_median_s'])}"
            for n, p in row["policies"].items()
        )
        cells.append(
            f"<tr><th>{html.escape(row['timing'])}</th>{''.join(parts)}<td>{medians}</td></tr>"
        )
    first = rows[0]["comparisons"][0] if rows[0]["comparisons"] else None
    pair = f"{html.escape(first['policy'])} − {html.escape(first['against'])}" if first else ""
    return head + (
        "The headline difference again, with each assumption changed in turn: if it keeps "
        "its sign, it does not rest on the exact figures.</p>"
        f"<table><tr><th>assumption</th><th>{pair}: grade 1 median</th>"
        f"<th>{pair}: grade 2 median</th><th>grade 1 medians</th></tr>{''.join(cells)}</table>"
    )
