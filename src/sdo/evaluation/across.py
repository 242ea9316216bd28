"""Several logs evaluated alike (simulated days of different seeds, weeks of a pilot):
each headline figure's mean over the logs, with a 95% interval from their spread (a t
interval over the per-log figures), written as DIR/metrics.json and DIR/report.html."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Final

import orjson

__all__ = ["HEADLINES", "across", "write_across"]

#: (key, label, kind) of the figures taken across logs; a key path into a policy's results.
HEADLINES: Final = (
    ("grades.1.attend_median_s", "grade 1 median attendance", "min"),
    ("grades.1.attend_mean_s", "grade 1 mean attendance", "min"),
    ("grades.1.share_within_15_min", "grade 1 within 15 min", "pct"),
    ("grades.2.attend_median_s", "grade 2 median attendance", "min"),
    ("grades.2.share_within_60_min", "grade 2 within 60 min", "pct"),
    ("share_off_response_officers", "calls sent to someone other than response", "pct"),
    ("cover_gap_minutes_total", "minutes some cluster was below its minimum cover, per log", "num"),
)
#: Figures from the breakdown by skill: (group, label).
_SKILL_ROWS: Final = (
    ("needs a skill", "grade 1 within 15 min: calls that need a skill"),
    ("needs no skill", "grade 1 within 15 min: calls that need none"),
)
#: Two-sided 95% t quantiles by degrees of freedom (1-10; then 2.0).
_T95: Final = (12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23)


def _get(results: dict[str, Any], key: str) -> float | None:
    if key == "cover_gap_minutes_total":
        gaps = results.get("cover_gap_minutes")
        return round(sum(gaps.values()), 1) if isinstance(gaps, dict) else None
    value: Any = results
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


def _mean_ci(values: list[float]) -> dict[str, Any]:
    n = len(values)
    if not n:
        return {"mean": None, "ci95": None, "logs": 0}
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": round(mean, 4), "ci95": None, "logs": n}
    t = _T95[n - 2] if n - 2 < len(_T95) else 2.0
    half = t * statistics.stdev(values) / math.sqrt(n)
    return {
        "mean": round(mean, 4),
        "ci95": [round(mean - half, 4), round(mean + half, 4)],
        "logs": n,
        "values": [round(v, 4) for v in values],
    }


def across(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Per policy and headline figure, and per comparison's differences: mean over the
    logs, its 95% interval, the per-log values."""
    policies: dict[str, Any] = {}
    names = list(dict.fromkeys(p for d in documents for p in d["policies"]))
    for name in names:
        per = [d["policies"][name] for d in documents if name in d["policies"]]
        policies[name] = {
            key: {"label": label, "kind": kind, **_mean_ci(_values(per, key))}
            for key, label, kind in HEADLINES
        }
        for group, label in _SKILL_ROWS:
            values = [
                float(v)
                for d in documents
                if (v := (d.get("breakdown") or {}).get(name, {}).get("skills", {}).get(group, {})
                    .get("grade_1_share_within_target")) is not None
            ]  # fmt: skip
            policies[name][f"skills.{group}"] = {"label": label, "kind": "pct", **_mean_ci(values)}
    diffs: dict[str, Any] = {}
    for d in documents:
        for c in d["comparisons"]:
            entry = diffs.setdefault(f"{c['policy']} - {c['against']}", {})
            for g in ("1", "2"):
                grade = c["grades"][g]
                within = f"share_within_{grade['target_min']}_min_diff"
                for key, value in (
                    (f"grade {g} median attendance", grade.get("attend_median_s_diff")),
                    (f"grade {g} within {grade['target_min']} min", grade.get(within)),
                ):
                    if value is not None:
                        entry.setdefault(key, []).append(float(value))
    differences = {
        pair: {key: _mean_ci(values) for key, values in figures.items()}
        for pair, figures in diffs.items()
    }
    return {"policies": policies, "differences": differences}


def _values(per: list[dict[str, Any]], key: str) -> list[float]:
    return [v for r in per if (v := _get(r, key)) is not None]


def write_across(out: Path, runs: list[tuple[Path, Path]]) -> None:
    """DIR/metrics.json and DIR/report.html across the logs of ``runs`` (log, its DIR)."""
    from sdo.evaluation.report import write_across_report  # noqa: PLC0415

    documents = [orjson.loads((where / "metrics.json").read_bytes()) for _, where in runs]
    summary = {
        "logs": [{"log": str(log), "dir": str(where.relative_to(out))} for log, where in runs],
        "provenance": [d.get("provenance") for d in documents],
        "loop": documents[0].get("loop"),
        "across": across(documents),
    }
    (out / "metrics.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    write_across_report(summary, out / "report.html")
