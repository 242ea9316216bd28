"""``sdo evaluate`` in closed loop (the default for a simulated log): each policy's
recommendations carried out, so outcomes differ by policy; the recorded baseline; the
report's banner and summary; several logs; the outside-areas refusal."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sdo.cli import main
from sdo.config import Settings
from sdo.evaluation.closed_loop import BY, attended
from sdo.evaluation.evaluate import evaluate
from sdo.evaluation.replay import read_log
from sdo.events import decode


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight simulated hours of the pilot (default roster: 120 on duty), seed 4."""
    path = tmp_path_factory.mktemp("sim") / "shift.jsonl.gz"
    args = ["simulate", "--seed", "4", "--hours", "8", "--start", "2015-12-01T12:00:00Z"]
    assert main([*args, "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def evaluated(log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    assert main(["evaluate", str(log), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def document(evaluated: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((evaluated / "metrics.json").read_text())
    return doc


def test_a_simulated_log_is_evaluated_in_closed_loop_against_recorded(
    document: dict[str, Any],
) -> None:
    """By default: closed loop, thrive, closest and recorded; attendance observed."""
    assert document["loop"] == "closed"
    assert list(document["policies"]) == ["thrive", "closest", "recorded"]
    assert document["provenance"] == {"kind": "simulated", "seed": 4, "caveats": []}
    for m in document["policies"].values():
        assert m["attendance"] == "observed"
        assert m["officers"] > 200
    assert "loop" in document["policies"]["thrive"]
    assert "loop" not in document["policies"]["recorded"]  # (what happened, not a loop)


def test_closed_loop_outcomes_differ_between_policies(document: dict[str, Any]) -> None:
    """Officers are used up by each policy's own deployments: cover gaps, workload and
    attendance are each policy's (in open loop cover gaps are the same by construction)."""
    thrive, closest = document["policies"]["thrive"], document["policies"]["closest"]
    assert thrive["cover_gap_minutes"] != closest["cover_gap_minutes"]
    work_t, work_c = thrive["loop"]["workload"], closest["loop"]["workload"]
    assert set(work_c) == {"response"}  # closest sends response officers only
    assert {"investigator", "neighbourhood"} <= set(work_t)
    desk = work_t["investigator"]
    assert desk["calls"] >= desk["desk_officers"] > 1  # calls spread over investigators
    assert 0 < desk["busiest_desk_officer_calls"] <= desk["calls"]
    assert work_t["response"]["calls"] != work_c["response"]["calls"]
    times = [
        [r["grade_1_attend_median_s"] for r in (m["by_hour"]["hours"])] for m in (thrive, closest)
    ]
    assert times[0] != times[1]


def test_closed_loop_closest_is_close_to_the_recorded_dispatch(document: dict[str, Any]) -> None:
    """A check of the loop itself: closest carried out by the loop does much what the
    simulated dispatch (the nearest free officer, the same timing model) did: grade 1
    medians within 2 minutes of each other."""
    closest, recorded = document["policies"]["closest"], document["policies"]["recorded"]
    a = closest["grades"]["1"]["attend_median_s"]
    b = recorded["grades"]["1"]["attend_median_s"]
    assert a is not None and b is not None
    assert abs(a - b) <= 120


def test_lane_and_no_lane_give_the_same_closed_loop(log: Path) -> None:
    """The fix lane stops at the loop's next action: with or without it, the same figures
    (the loop's events land between the same log lines)."""
    reader = read_log(log)
    try:
        seen = attended(reader)
    finally:
        reader.close()
    runs = []
    for lane in (True, False):
        results = evaluate(log, Settings(), ["thrive"], lane=lane, closed_loop=True, attended=seen)
        runs.append(json.dumps(results, sort_keys=True))
    assert runs[0] == runs[1]


def test_the_loop_deploys_as_an_sdo_accepting_would(log: Path, tmp_path: Path) -> None:
    """Every recommendation the loop acts on becomes an accepted deployment of the
    officers it names, by the loop; the recommendations file holds the policy's."""
    out = tmp_path / "out"
    assert main(["evaluate", str(log), "--out", str(out), "--policy", "thrive"]) == 0
    recs = [decode(line) for line in (out / "recommendations.jsonl").read_bytes().splitlines()]
    assert recs and {r.policy.name for r in recs} == {"thrive"}
    doc = json.loads((out / "metrics.json").read_text())
    loop = doc["policies"]["thrive"]["loop"]
    assert loop["deployments"] > 0.5 * doc["policies"]["thrive"]["incidents"]
    assert BY == "closed-loop"


def test_the_report_has_a_banner_and_a_summary(evaluated: Path) -> None:
    """The report opens with what the data is (simulated, its seed) and a summary in
    words: what was compared, the headline differences with intervals, the status quo."""
    page = (evaluated / "report.html").read_text()
    assert page.index("Simulated data.") < page.index("<h2>In short</h2>")
    assert "made by <code>sdo simulate</code> (seed 4)" in page
    assert "None of it happened" in page
    assert "<b>What was compared.</b>" in page
    assert "On the same calls, <b>thrive</b> against <b>closest</b>: grade 1 median" in page
    assert "95% interval" in page
    assert "<b>recorded</b> is the status quo as the log records it" in page
    assert "<h2>By NPU and by response cluster</h2>" in page
    assert "<h2>Workload</h2>" in page
    assert "estimated attendance" not in page.lower().split("<h2>headline figures</h2>")[1][:4000]


def test_incidents_csv_has_a_row_per_incident_and_policy(
    evaluated: Path, document: dict[str, Any]
) -> None:
    """incidents.csv (for Excel): one row per incident per policy, with place and grade."""
    with (evaluated / "incidents.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    per_policy = Counter(r["policy"] for r in rows)
    for name, m in document["policies"].items():
        assert per_policy[name] == m["incidents"]
    assert {r["npu"] for r in rows} == {"north", "east"}
    assert {r["within_target"] for r in rows if r["grade"] == "1"} <= {"yes", "no"}


def test_several_logs_give_means_and_intervals_across_them(log: Path, tmp_path: Path) -> None:
    """Two logs: each evaluated in a directory of its own, and the figures across them
    (mean, 95% interval, per-log values) in DIR/metrics.json and DIR/report.html."""
    other = tmp_path / "other.jsonl.gz"
    args = ["simulate", "--seed", "5", "--hours", "8", "--start", "2015-12-01T12:00:00Z"]
    assert main([*args, "--out", str(other)]) == 0
    out = tmp_path / "out"
    policies = ["--policy", "thrive", "--policy", "closest"]
    assert main(["evaluate", str(log), str(other), "--out", str(out), *policies]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert [r["dir"] for r in doc["logs"]] == ["1-shift", "2-other"]
    g1 = doc["across"]["policies"]["thrive"]["grades.1.attend_median_s"]
    assert g1["logs"] == 2 and len(g1["values"]) == 2
    low, high = g1["ci95"]
    assert low <= g1["mean"] <= high
    assert "thrive - closest" in doc["across"]["differences"]
    page = (out / "report.html").read_text()
    assert "across 2 logs" in page and 'href="1-shift/report.html"' in page
    assert (out / "2-other" / "report.html").is_file()


def test_a_log_mostly_outside_the_areas_is_refused_in_one_line(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An area file that is not the log's (here: the north NPU alone, about half the
    calls outside it) is one line and exit 2, nothing written; --allow-outside evaluates
    the calls inside it."""
    pilot = json.loads(Settings().areas_path.read_text())
    pilot["features"] = [f for f in pilot["features"] if f["properties"]["npu"] == "north"]
    pilot["clusters"] = {"north-1": {"min_cover": 4}, "north-east": {"min_cover": 4}}
    north = tmp_path / "north.geojson"
    north.write_text(json.dumps(pilot))
    out = tmp_path / "out"
    args = ["evaluate", str(log), "--areas", str(north), "--out", str(out), "--open-loop"]
    capsys.readouterr()
    assert main([*args, "--policy", "thrive"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1, err
    assert "fall outside the areas of --areas" in errors[0]
    assert "(--allow-outside evaluates the rest)" in errors[0]
    assert not out.exists()
    assert main([*args, "--policy", "thrive", "--allow-outside"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["policies"]["thrive"]["outside_incident_events"] > 0


def test_sensitivity_reruns_the_headline_under_other_travel_assumptions(
    log: Path, tmp_path: Path
) -> None:
    """--sensitivity: the headline again with detour 1.2 and 1.6 and speeds -20%/+20%;
    slower travel gives longer grade 1 attendance; the report shows the table."""
    out = tmp_path / "out"
    policies = ["--policy", "thrive", "--policy", "closest"]
    assert main(["evaluate", str(log), "--out", str(out), "--sensitivity", *policies]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    rows = {r["timing"]: r for r in doc["sensitivity"]}
    assert set(rows) == {"detour factor 1.2", "detour factor 1.6", "speeds -20%", "speeds +20%"}
    for r in rows.values():
        assert set(r["policies"]) == {"thrive", "closest"}
        (c,) = r["comparisons"]
        assert (c["policy"], c["against"]) == ("thrive", "closest")
    slow = rows["speeds -20%"]["policies"]["closest"]["grade_1_attend_median_s"]
    fast = rows["speeds +20%"]["policies"]["closest"]["grade_1_attend_median_s"]
    assert slow > fast
    page = (out / "report.html").read_text()
    assert "How much the headline rests on the travel assumptions" in page
    assert "<th>detour factor 1.6</th>" in page
