"""``sdo evaluate``, the command: what to run on each log (its provenance, the policies,
open or closed loop), the files it writes, the lines it prints, and the errors a user
gets in one line. The passes themselves are :mod:`sdo.evaluation.evaluate`'s.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path
from typing import Any, Final

import orjson

from sdo.cli import settings_from
from sdo.config import DEFAULT_AREAS, DEFAULT_RULES, Settings
from sdo.domain.recommend import Policy
from sdo.errors import ConfigError
from sdo.evaluation.breakdown import breakdown, write_incidents_csv
from sdo.evaluation.evaluate import (
    PolicySpec,
    default_jobs,
    evaluate,
    specs_of,
)
from sdo.evaluation.figures import RECORDED, compare
from sdo.evaluation.intervals import (
    BOOTSTRAP_RESAMPLES,
    CI_MIN_VALUES,
)
from sdo.evaluation.timing import Timing
from sdo.events import (
    Transport,
)
from sdo.progress import LineReporter, ProgressLine, eta_text

__all__ = ["cli"]


def cli(args: argparse.Namespace) -> int:
    from sdo.grade import rules_changes  # noqa: PLC0415

    settings = settings_from(args)
    given = args.policy or []
    variants = {}
    for spec in specs_of(given):
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
    specs = specs_of(given or default)
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
