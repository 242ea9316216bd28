"""Where and when: an evaluation's figures by NPU, response cluster and hour, and the
per-incident rows behind them (``incidents.csv``, for a spreadsheet)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Final

from sdo.evaluation.intervals import quantile

__all__ = ["TARGET_S", "breakdown", "write_incidents_csv"]

#: Grade -> attendance target in seconds (West Midlands: 15 min grade 1, 60 min grade 2).
TARGET_S: Final = {1: 15 * 60, 2: 60 * 60}
#: A group's median is given from this many calls of a grade (fewer: None, "not measured").
MIN_CALLS: Final = 3


def breakdown(paired: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """Per policy, per NPU, per cluster, and by whether the call needs a skill: calls,
    grade 1 and 2 calls, their median attendance and share within target (None where
    fewer than :data:`MIN_CALLS`)."""
    out: dict[str, Any] = {}
    for policy, rows in paired.items():
        mine: dict[str, Any] = {}
        for key in ("npu", "cluster", "skills"):
            groups: dict[str, list[int]] = {}
            for k, name in enumerate(rows.get(key, [])):
                if key == "skills":
                    name = "needs a skill" if name else "needs no skill"  # noqa: PLW2901
                groups.setdefault(name or "(outside)", []).append(k)
            mine[key] = {name: _figures(rows, ks) for name, ks in sorted(groups.items())}
        out[policy] = mine
    return out


def _figures(rows: dict[str, list[Any]], ks: list[int]) -> dict[str, Any]:
    entry: dict[str, Any] = {"incidents": len(ks)}
    for g, target in TARGET_S.items():
        of_grade = [rows["attend_s"][k] for k in ks if rows["grade"][k] == g]
        times = sorted(s for s in of_grade if s is not None)
        entry[f"grade_{g}"] = len(of_grade)
        entry[f"grade_{g}_attend_median_s"] = (
            quantile(times, 0.5) if len(times) >= MIN_CALLS else None
        )
        entry[f"grade_{g}_share_within_target"] = (
            round(sum(s is not None and s <= target for s in of_grade) / len(of_grade), 4)
            if len(of_grade) >= MIN_CALLS
            else None
        )
    return entry


_COLUMNS: Final = (
    "policy",
    "incident_id",
    "created",
    "hour",
    "npu",
    "cluster",
    "category",
    "skills",
    "grade",
    "response",
    "sent",
    "attend_min",
    "within_target",
)


def write_incidents_csv(paired: dict[str, dict[str, list[Any]]], path: Path) -> None:
    """One row per incident and policy: when, where, what, how graded, who was sent, and
    the attendance in minutes (blank: nobody got there) and whether within target (blank:
    grade 3 or 4, no target)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(_COLUMNS)
        for policy, rows in paired.items():
            for k, iid in enumerate(rows["ids"]):
                g = rows["grade"][k]
                attend = rows["attend_s"][k]
                target = TARGET_S.get(g)
                writer.writerow(
                    (
                        policy,
                        iid,
                        rows["created"][k],
                        rows["hour"][k],
                        rows["npu"][k],
                        rows["cluster"][k],
                        rows["category"][k],
                        rows["skills"][k],
                        g,
                        rows["response"][k],
                        rows["sent"][k],
                        "" if attend is None else f"{attend / 60:.1f}",
                        ""
                        if target is None
                        else ("yes" if attend is not None and attend <= target else "no"),
                    )
                )
