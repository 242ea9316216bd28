"""``sdo evaluate``: outputs, THRIVE+ vs closest, errors and determinism (issue #5)."""

from __future__ import annotations

import gc
import importlib.metadata
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdo.cli import main
from sdo.config import Settings
from sdo.evaluation import evaluate as ev
from sdo.evaluation.command import _comparison_line
from sdo.evaluation.intervals import CI_MIN_VALUES, ci95
from sdo.events import Recommendation, decode
from sdo.progress import MAX_REPORTED

POLICIES = ("thrive", "closest")


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated hours with 80 officers (seed 1): a few dozen incidents."""
    path = tmp_path_factory.mktemp("sim") / "three-hours.jsonl"
    assert main(["simulate", "--hours", "3", "--officers", "80", "--out", str(path)]) == 0
    return path


def _evaluate(log: Path, out: Path, *policies: str) -> int:
    args = ["evaluate", str(log), "--out", str(out), "--open-loop"]
    for p in policies:
        args += ["--policy", p]
    return main(args)


@pytest.fixture(scope="module")
def evaluated(log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    assert _evaluate(log, out, *POLICIES) == 0
    return out


@pytest.fixture(scope="module")
def metrics(evaluated: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((evaluated / "metrics.json").read_text())
    return document


def test_writes_metrics_with_every_figure_for_both_policies(metrics: dict[str, Any]) -> None:
    """metrics.json holds both policies, each with the figures the issue lists."""
    assert set(metrics["policies"]) == set(POLICIES)
    assert "eta" in metrics["assumptions"]
    for m in metrics["policies"].values():
        for key in (
            "incidents",
            "by_grade",
            "by_response",
            "share_off_response_officers",
            "share_by_route",
            "grades",
            "skill_match_rate",
            "named_officer_alignment",
            "agreement_with_recorded_deployments",
            "cover_gap_minutes",
        ):
            assert key in m, key
        assert m["incidents"] > 10
        assert m["invalid_lines"] == 0
        for g in ("1", "2"):
            assert {"attend_median_s", "eta_p90_s", "share_over_30_min"} <= set(m["grades"][g])
        assert "share_within_15_min" in m["grades"]["1"]
        assert "share_within_60_min" in m["grades"]["2"]
        assert "share_leaving_cluster_below_min_cover" in m["grades"]["3"]
    thrive, closest = metrics["policies"]["thrive"], metrics["policies"]["closest"]
    # the grading is a property of the incidents, not of the policy; closest is given the
    # calls the log's dispatch attended only (graded 1-3), thrive every call
    attending = {"emergency", "priority", "scheduled"}
    assert set(closest["by_response"]) <= attending
    for response, n in closest["by_response"].items():
        assert n <= thrive["by_response"][response]
    assert closest["by_response"]["emergency"] == thrive["by_response"]["emergency"]
    assert closest["incidents"] < thrive["incidents"]
    assert metrics["status_quo"]["closest_restricted_to_attended"]


def test_recommendations_file_holds_recommendation_events_of_both_policies(
    evaluated: Path,
) -> None:
    """Every line of recommendations.jsonl decodes as a CONTRACT §3 recommendation."""
    seen = set()
    lines = (evaluated / "recommendations.jsonl").read_bytes().splitlines()
    assert lines
    for line in lines:
        rec = decode(line)
        assert isinstance(rec, Recommendation)
        assert rec.policy.name in POLICIES
        seen.add(rec.policy.name)
    assert seen == set(POLICIES)


def test_report_names_both_policies_and_embeds_plots(evaluated: Path) -> None:
    """report.html is self-contained: policy names, PNG plots inline, assumptions stated."""
    page = (evaluated / "report.html").read_text(encoding="utf-8")
    assert "thrive" in page and "closest" in page
    assert page.count('src="data:image/png;base64,') >= 4
    assert '<img alt="by hour of the day"' in page
    assert "Assumptions" in page and "Reading the figures" in page
    # the speeds as a table in km/h, not a dump of the figures in metres per second
    assert "<th>transport</th><th>grade 1</th>" in page and " km/h</td>" in page
    assert "speed_mps" not in page and "{'" not in page


def test_metrics_and_report_say_what_else_decided_the_figures(
    evaluated: Path, metrics: dict[str, Any]
) -> None:
    """Besides the log, the areas, the rules and sdo's version decide an evaluation: both
    files name them, so it can be run again the same way."""
    inputs = metrics["inputs"]
    assert inputs["areas"] == "packaged areas_pilot.geojson"
    assert inputs["rules"] == "packaged rules.json"
    assert inputs["sdo"] == importlib.metadata.version("sdo")
    page = " ".join((evaluated / "report.html").read_text(encoding="utf-8").split())
    assert (
        f"areas: packaged areas_pilot.geojson; rules: packaged rules.json; sdo {inputs['sdo']}"
        in page
    )


def test_report_explains_how_often_recommendations_change(
    evaluated: Path, metrics: dict[str, Any]
) -> None:
    """Closest issues several times as many recommendations as thrive: the report says why,
    with each policy's recommendations per incident, and that grade 3 under thrive is a
    booking, not an attendance."""
    page = " ".join((evaluated / "report.html").read_text(encoding="utf-8").split())
    reading = page.split("<h2>Reading the figures</h2>")[1].split("</ul>")[0]
    for name, m in metrics["policies"].items():
        ratio = m["recommendations"] / m["incidents"]
        assert f"{ratio:.1f} per incident under <b>{name}</b>" in reading
    assert "Grade 3 has no target" in reading
    assert "{" not in reading  # (every placeholder filled)


def test_thrive_moves_demand_off_response_officers(metrics: dict[str, Any]) -> None:
    """THRIVE+ sends a share of calls elsewhere; closest sends a response officer to all."""
    thrive, closest = metrics["policies"]["thrive"], metrics["policies"]["closest"]
    assert closest["share_off_response_officers"] == 0
    assert thrive["share_off_response_officers"] > 0.3
    assert closest["share_by_route"] == {"closest response officer": 1.0}
    assert thrive["share_by_route"].get("investigator", 0) > 0


def test_closest_agrees_with_the_closest_available_dispatcher_more(
    metrics: dict[str, Any],
) -> None:
    """The simulated dispatcher sends the closest available officer: so does `closest`."""
    thrive, closest = metrics["policies"]["thrive"], metrics["policies"]["closest"]
    assert closest["recorded_deployments_compared"] > 0
    assert closest["agreement_with_recorded_deployments"] > (
        thrive["agreement_with_recorded_deployments"] or 0
    )


def test_same_log_gives_identical_recommendation_bytes(
    log: Path, evaluated: Path, tmp_path: Path
) -> None:
    """Evaluation is deterministic: a second run writes byte-identical recommendations."""
    assert _evaluate(log, tmp_path, *POLICIES) == 0
    first = (evaluated / "recommendations.jsonl").read_bytes()
    assert (tmp_path / "recommendations.jsonl").read_bytes() == first


def test_unknown_policy_is_one_line_and_exit_2(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown --policy names the known ones, on one line, exit status 2."""
    assert _evaluate(log, tmp_path / "out", "thrive", "fastest") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "fastest" in err[0] and "closest" in err[0]
    assert not (tmp_path / "out").exists()


def test_missing_log_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log that does not exist: one line naming it, exit 2, nothing written."""
    missing = tmp_path / "nope.jsonl"
    assert _evaluate(missing, tmp_path / "out", "thrive") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nope.jsonl" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_bad_line_is_reported_with_its_number_and_evaluation_goes_on(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt line is skipped with its line number on stderr; the rest is evaluated."""
    lines = log.read_bytes().splitlines()[:4000]
    lines[99] = b'{"type": "officer.location", "lat": "north"'
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join(lines) + b"\n")
    assert _evaluate(broken, tmp_path / "out", "thrive") == 0
    captured = capsys.readouterr()
    assert "broken.jsonl:100: skipped" in captured.err
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["policies"]["thrive"]
    assert m["invalid_lines"] == 1
    assert m["events"] == len(lines) - 1


def test_what_was_read_of_the_log_is_accounted_for(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The evaluator is told, after the pass, how many lines were skipped (beyond the first
    few shown) and how many events were evaluated; metrics.json and the report give the
    period the log covers (its first event to its last), the skipped lines and the events
    that could not be applied (a deployment for an unknown incident)."""
    lines = log.read_bytes().splitlines()[:3000]
    lines[9] = b"{not json"
    lines[19] = b"[1, 2]"
    stray = {
        "type": "deployment",
        "event_id": "stray-1",
        "ts": json.loads(lines[1000])["ts"],
        "incident_id": "INC-NOT-IN-THE-LOG",
        "decision": "declined",
        "officer_ids": [],
        "by": "sgt.test",
        "reason": "not ours",
    }
    lines.insert(1000, json.dumps(stray).encode())
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert _evaluate(broken, out, "thrive") == 0
    err = capsys.readouterr().err.splitlines()
    events = len(lines) - 2
    assert (
        f"sdo evaluate: 2 invalid line(s) of {broken} skipped; {events:,} events evaluated" in err
    )
    assert (
        f"sdo evaluate: 1 event(s) of {broken} could not be applied and were left out: "
        "deployment 1, e.g. deployment for unknown incident INC-NOT-IN-THE-LOG "
        "(its incident never came)" in err
    )
    m = json.loads((out / "metrics.json").read_text())["policies"]["thrive"]
    assert m["events"] == events
    assert m["rejected_events"] == {"deployment": 1}
    assert m["rejected_examples"] == {
        "deployment": "deployment for unknown incident INC-NOT-IN-THE-LOG (its incident never came)"
    }
    valid = [json.loads(x) for x in lines if x.startswith(b'{"')]
    first, last = valid[0]["ts"], valid[-1]["ts"]
    assert m["period"]["from"] == first and m["period"]["to"] == last
    hours = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds() / 3600
    assert m["period"]["hours"] == round(hours, 2) > 0
    report = (out / "report.html").read_text()
    assert f"The log: {events:,} events over {m['period']['hours']:g} hours, from " in report
    assert f"from {first[:16].replace('T', ' ')} to {last[:16].replace('T', ' ')} UTC" in report
    assert "2 line(s) were not valid events and were skipped" in report
    assert "1 event(s) could not be applied" in report and "(deployment 1)" in report


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "(the log is empty)"),
        (b"\n\n", "(the log is empty)"),
        (b"not json\n" * 30 + b'{"type": "nothing"}\n', "(31 invalid line(s) skipped)"),
    ],
)
def test_a_log_without_one_valid_event_is_an_error_not_an_empty_report(
    content: bytes, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Evaluating the wrong file (or an empty one) says so in one line, exit 2, and leaves
    no DIR behind, rather than a report of nothing."""
    bad = tmp_path / "wrong.jsonl"
    bad.write_bytes(content)
    out = tmp_path / "out"
    assert _evaluate(bad, out, "thrive") == 2
    err = [x for x in capsys.readouterr().err.splitlines() if ": error: " in x]
    assert err == [f"sdo evaluate: error: {bad}: no valid event to evaluate {said}"]
    assert not out.exists()


def test_incidents_outside_the_area_file_are_an_error_that_says_why(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log evaluated with another force's area file (every incident outside it): one
    line naming how many incidents were rejected, an example reason and the likely
    mistake; exit 2, no DIR left. Not a report of 0 incidents and exit 0."""
    far = tmp_path / "far.geojson"
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {
                            "id": "n1",
                            "name": "Far",
                            "npu": "p",
                            "cluster": "c",
                            "typology": 1,
                        },
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[0, 51], [0.01, 51], [0.01, 51.01], [0, 51]]],
                        },
                    }
                ],
            }
        )
    )
    out = tmp_path / "out"
    assert main(["evaluate", str(log), "--areas", str(far), "--out", str(out), "--open-loop"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if ": error: " in x]
    assert len(err) == 1, err
    incidents = sum(1 for x in log.read_bytes().splitlines() if b'"type":"incident"' in x)
    assert f"{log}: no incident to evaluate (events that could not be applied: " in err[0]
    assert f"incident {incidents:,}, e.g. incident location (lat " in err[0]
    assert "is outside the force area" in err[0]
    assert err[0].endswith("Is --areas the area file the log was made for?")
    assert not out.exists()


def test_an_evaluations_own_output_is_not_a_log_to_evaluate(
    evaluated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """recommendations.jsonl given as the log: its events are valid but no input (they
    are outputs), so there is no incident to evaluate: one line, exit 2."""
    out = tmp_path / "out"
    assert _evaluate(evaluated / "recommendations.jsonl", out, "thrive") == 2
    err = [x for x in capsys.readouterr().err.splitlines() if ": error: " in x]
    assert len(err) == 1 and ": no incident to evaluate" in err[0], err
    assert not out.exists()


def test_policies_one_at_a_time_or_at_once_write_the_same(
    log: Path, evaluated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """By default the policies run at once, a process each (``evaluated``); with
    ``--jobs 1`` one after the other, in this process. Same files, and each skipped line
    reported once either way."""
    lines = log.read_bytes().splitlines()
    lines[99] = b'{"type": "officer.location", "lat": "north"'
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join(lines) + b"\n")
    outs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs-{jobs}"
        args = ["evaluate", str(broken), "--out", str(out), "--jobs", jobs]
        assert main([*args, "--policy", "thrive", "--policy", "closest"]) == 0
        assert capsys.readouterr().err.count("broken.jsonl:100: skipped") == 1
        outs[jobs] = out
    for name in ("recommendations.jsonl", "metrics.json"):
        assert (outs["1"] / name).read_bytes() == (outs["2"] / name).read_bytes(), name
    recs = (outs["1"] / "recommendations.jsonl").read_bytes()
    assert recs.count(b"\n") > 20
    one = json.loads((outs["1"] / "metrics.json").read_text())["policies"]
    assert {p: one[p]["invalid_lines"] for p in POLICIES} == {"thrive": 1, "closest": 1}


def test_jobs_below_one_is_one_line_and_exit_2(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(log), "--out", str(tmp_path / "out"), "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--jobs" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_pass_collects_cycles_less_often_and_restores_the_collector(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a pass the collector's first threshold is raised; after it, even after
    one that fails, the thresholds are as before."""
    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []
    step = ev._step

    def watching(*args: Any, **kwargs: Any) -> None:
        seen.append(gc.get_threshold())
        step(*args, **kwargs)

    monkeypatch.setattr(ev, "_step", watching)
    ev.evaluate(log, Settings(), ["thrive"], jobs=1)
    assert seen and set(seen) == {(ev.GC_THRESHOLD, *before[1:])}
    assert gc.get_threshold() == before

    def failing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ev, "_step", failing)
    with pytest.raises(RuntimeError, match="boom"):
        ev.evaluate(log, Settings(), ["thrive"], jobs=1)
    assert gc.get_threshold() == before


# -- progress ------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_each_pass_reports_its_progress_to_its_end(log: Path, jobs: int) -> None:
    """Each pass tells how far it has read and how many events it has applied, in order,
    and ends with a last report of all its events. One at a time every block is heard;
    at once, the passes in other processes are looked at now and then (a short pass may
    be seen only at its end)."""
    heard: dict[str, list[tuple[float, int, float, bool]]] = {p: [] for p in POLICIES}

    def progress(name: str, fraction: float, events: int, seconds: float, ended: bool) -> None:
        heard[name].append((fraction, events, seconds, ended))

    results = ev.evaluate(log, Settings(), list(POLICIES), jobs=jobs, progress=progress)
    for name in POLICIES:
        reports = heard[name]
        assert reports[-1][0] == 1.0 and reports[-1][3], name
        assert reports[-1][1] == results[name]["events"] > 0
        assert [r[3] for r in reports].count(True) == 1
        for key in (0, 1, 2):  # fraction, events, seconds: never backwards
            values = [r[key] for r in reports]
            assert values == sorted(values), (name, key)
        if jobs == 1:  # a 3-hour log is several blocks of a megabyte
            assert len(reports) > 2 and 0 < reports[0][0] < 1


def test_cli_says_when_each_pass_ends(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a terminal (a pipe, a CI log) no refreshed line, but one line per pass when
    it ends: its events, seconds and rate."""
    assert _evaluate(log, tmp_path / "out", *POLICIES) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["policies"]
    for name in POLICIES:
        (done,) = [x for x in err.splitlines() if x.startswith(f"sdo evaluate: {name}: ")]
        assert f"{metrics[name]['events']:,} events in " in done and done.endswith("/s)")


def test_many_bad_lines_are_counted_and_only_the_first_are_shown(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged log is not echoed line by line: the first MAX_REPORTED are shown with
    their numbers, then one line says more were counted; metrics count them all."""
    lines = log.read_bytes().splitlines()[:4000]
    bad = list(range(100, 100 + 3 * (MAX_REPORTED + 5), 3))
    for n in bad:
        lines[n - 1] = b"{not json"
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"\n".join(lines) + b"\n")
    assert _evaluate(broken, tmp_path / "out", "thrive") == 0
    err = capsys.readouterr().err.splitlines()
    shown = [x for x in err if ": skipped: " in x]
    assert [x.split(":")[2] for x in shown] == [str(n) for n in bad[:MAX_REPORTED]]
    assert err.count("sdo evaluate: more invalid lines; counted, not shown") == 1
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["policies"]["thrive"]
    assert m["invalid_lines"] == len(bad)


# -- what an evaluation leaves in DIR ------------------------------------------------------


def test_an_interrupted_evaluation_leaves_the_last_results_as_they_were(
    log: Path,
    evaluated: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C half way (here: a KeyboardInterrupt from the 200th line the lane refuses, one
    pass at a time): one line, exit 130, and DIR holds the earlier evaluation's three
    files, unchanged, and nothing else (no half-written recommendations beside the old
    metrics)."""
    out = tmp_path / "out"
    out.mkdir()
    before = {}
    for name in ("recommendations.jsonl", "metrics.json", "report.html"):
        before[name] = (evaluated / name).read_bytes()
        (out / name).write_bytes(before[name])
    step, calls = ev._step, [0]

    def interrupted(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 200:
            raise KeyboardInterrupt
        step(*args, **kwargs)

    monkeypatch.setattr(ev, "_step", interrupted)
    args = ["evaluate", str(log), "--out", str(out), "--jobs", "1"]
    assert main([*args, "--policy", "thrive", "--policy", "closest"]) == 130
    assert calls[0] == 200
    assert capsys.readouterr().err.strip().splitlines()[-1] == "sdo evaluate: interrupted"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_file_that_cannot_be_written_is_one_line_and_exit_2(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DIR cannot take the recommendations (here a directory stands where their file is
    written first, which stops root as well as anyone): one line naming DIR, exit 2,
    and what stood there is left alone."""
    out = tmp_path / "out"
    (out / ".recommendations.jsonl.partial").mkdir(parents=True)
    assert _evaluate(log, out, "thrive") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write in {out}" in err[0], err
    assert [p.name for p in out.iterdir()] == [".recommendations.jsonl.partial"]


def _rules(tmp_path: Path, name: str, change: Any = None) -> Path:
    """The packaged rules, changed by ``change(rules)`` if given, in ``tmp_path/name``."""
    rules = json.loads(Settings().rules_path.read_text())
    if change is not None:
        change(rules)
    path = tmp_path / name
    path.write_text(json.dumps(rules))
    return path


def _recs(path: Path) -> list[Recommendation]:
    recs = []
    for line in path.read_bytes().splitlines():
        rec = decode(line)
        assert isinstance(rec, Recommendation)
        recs.append(rec)
    return recs


def test_a_variant_with_the_same_rules_decides_as_its_policy_under_a_name_of_its_own(
    log: Path, evaluated: Path, tmp_path: Path
) -> None:
    """``thrive@FILE`` with FILE the rules in force: the same recommendations, one for one,
    named ``thrive@same`` and with ids of their own; the same figures; no rules change."""
    same = _rules(tmp_path, "same.json")
    out = tmp_path / "out"
    assert _evaluate(log, out, "thrive", f"thrive@{same}") == 0
    document = json.loads((out / "metrics.json").read_text())
    base, variant = document["policies"]["thrive"], document["policies"]["thrive@same"]
    assert variant.pop("variant_of") == "thrive"
    assert variant.pop("rules") == str(same)
    assert variant.pop("rules_changes") == []
    assert variant.pop("policy") == "thrive@same"
    assert {k: v for k, v in base.items() if k != "policy"} == variant
    recs = _recs(out / "recommendations.jsonl")
    ours = [r for r in recs if r.policy.name == "thrive"]
    theirs = [r for r in recs if r.policy.name == "thrive@same"]
    assert len(ours) == len(theirs) == len(recs) / 2 > 20
    for a, b in zip(ours, theirs, strict=True):
        assert (a.ts, a.incident_id, a.recommended, a.candidates, a.reasons) == (
            b.ts,
            b.incident_id,
            b.recommended,
            b.candidates,
            b.reasons,
        )
    assert not {r.recommendation_id for r in ours} & {r.recommendation_id for r in theirs}
    # the policy run without a variant is as it was
    alone = _recs(evaluated / "recommendations.jsonl")
    assert [r for r in alone if r.policy.name == "thrive"] == ours


def _attend_all(rules: dict[str, Any]) -> None:
    """Rules that signpost nothing: a call once signposted falls to the next rule."""
    rules["rules"] = [r for r in rules["rules"] if r["name"] != "signpost"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_variant_with_other_rules_is_graded_by_them_and_the_report_says_what_changed(
    log: Path, metrics: dict[str, Any], tmp_path: Path, jobs: str
) -> None:
    """A variant without the signpost rule: nothing signposted (thrive signposts some), the
    change listed in metrics.json and the report, the variant's grading in the report."""
    assert metrics["policies"]["thrive"]["by_response"].get("signpost", 0) > 0
    rules = _rules(tmp_path, "attend-all.json", _attend_all)
    out = tmp_path / "out"
    policies = ["--policy", "thrive", "--policy", "closest", "--policy", f"thrive@{rules}"]
    assert main(["evaluate", str(log), "--out", str(out), "--jobs", jobs, *policies]) == 0
    document = json.loads((out / "metrics.json").read_text())
    assert list(document["policies"]) == ["thrive", "closest", "thrive@attend-all"]
    variant = document["policies"]["thrive@attend-all"]
    assert variant["rules_changes"] == ["rules.signpost: removed"]
    # (a handler's grade 4 that no non-attendance rule matches is still signposted)
    signposted = metrics["policies"]["thrive"]["by_response"]["signpost"]
    assert variant["by_response"].get("signpost", 0) < signposted
    assert variant["incidents"] == document["policies"]["thrive"]["incidents"]
    assert (
        variant["share_off_response_officers"]
        < metrics["policies"]["thrive"]["share_off_response_officers"]
    )
    names = {r.policy.name for r in _recs(out / "recommendations.jsonl")}
    assert names == {"thrive", "closest", "thrive@attend-all"}
    report = (out / "report.html").read_text()
    assert "<b>thrive@attend-all</b> is <b>thrive</b> run with the rules in" in report
    assert "<code>rules.signpost: removed</code>" in report
    assert "under <b>thrive@attend-all</b>: emergency" in report


@pytest.mark.parametrize(
    ("policies", "says"),
    [
        (["thrive@"], "a rules file must follow the @"),
        (["thrive@{tmp}/none.json"], "none.json: no such file"),
        (["fastest@{tmp}/same.json"], "unknown policy 'fastest'"),
        (["thrive@{tmp}/same.json", "thrive@{tmp}/b/same.json"], "both called 'thrive@same'"),
        (["thrive", "thrive"], "each --policy may be given once"),
        ([f"thrive@{'r' * 130}.json"], "at most 128 characters"),
    ],
)
def test_a_variant_that_cannot_run_is_one_line_and_exit_2(
    log: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    policies: list[str],
    says: str,
) -> None:
    (tmp_path / "b").mkdir()
    _rules(tmp_path, "same.json")
    _rules(tmp_path / "b", "same.json")
    given = [p.format(tmp=tmp_path) for p in policies]
    assert _evaluate(log, tmp_path / "out", *given) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "out").exists()


def test_figures_by_hour_of_the_day_add_up_to_the_day(metrics: dict[str, Any]) -> None:
    """Each policy's calls by the hour they came in (UK time): 24 hours, every graded call
    in one of them, shares and medians only where there are calls."""
    for m in metrics["policies"].values():
        by_hour = m["by_hour"]
        assert by_hour["time_zone"] == "Europe/London"
        hours = by_hour["hours"]
        assert [h["hour"] for h in hours] == list(range(24))
        assert sum(h["incidents"] for h in hours) == m["incidents"]
        for h in hours:
            if not h["incidents"]:
                assert h["share_off_response_officers"] is None
                assert h["grade_1_attend_median_s"] is h["grade_2_attend_median_s"] is None
            else:
                assert 0 <= h["share_off_response_officers"] <= 1
    closest = metrics["policies"]["closest"]["by_hour"]["hours"]
    assert {h["share_off_response_officers"] for h in closest if h["incidents"]} == {0.0}


@pytest.mark.parametrize(
    ("utc", "hour"),
    [
        ("2015-07-01T23:30:00+00:00", 0),  # British Summer Time: an hour ahead
        ("2015-12-01T23:30:00+00:00", 23),  # winter: UTC
        ("2015-03-29T01:30:00+00:00", 2),  # the clocks went forward at 01:00 UTC
    ],
)
def test_the_hour_of_a_call_is_on_the_force_s_clock(utc: str, hour: int) -> None:
    assert ev.local_hour(datetime.fromisoformat(utc)) == hour


# -- 95% intervals -------------------------------------------------------------------------


def test_an_interval_is_the_spread_of_the_figure_over_resamples() -> None:
    """A share of 1 in 2 over 400 incidents: its 95% interval is about ±1.96 standard
    errors (0.025) either side, as the binomial says; a median of 0..999 holds the
    median; the same values give the same interval; too few values, none."""
    flags = [i % 2 == 0 for i in range(400)]
    low, high = ci95(flags)  # type: ignore[misc]
    assert 0.44 < low < 0.47 and 0.53 < high < 0.56
    assert ci95(flags) == [low, high]
    values = [float(v) for v in range(1000)]
    low, high = ci95(values, median=True)  # type: ignore[misc]
    assert 440 < low < 499.5 < high < 560
    assert ci95(values[: CI_MIN_VALUES - 1], median=True) is None
    assert ci95(values[:CI_MIN_VALUES], median=True) is not None


def test_more_incidents_narrow_the_interval() -> None:
    few = [float(v % 97) for v in range(0, 3000, 7)][:40]
    many = few * 50
    low_few, high_few = ci95(few, median=True)  # type: ignore[misc]
    low_many, high_many = ci95(many, median=True)  # type: ignore[misc]
    assert high_many - low_many < (high_few - low_few) / 3


def test_headline_figures_have_their_intervals(metrics: dict[str, Any], evaluated: Path) -> None:
    """metrics.json gives the 95% interval of each headline share and of grade 1's and
    2's median attendance, each around its figure; the report shows them in brackets and
    says what they are."""
    shares = (
        "share_off_response_officers",
        "skill_match_rate",
        "named_officer_alignment",
        "agreement_with_recorded_deployments",
    )
    given = 0
    for m in metrics["policies"].values():
        pairs = [(key, m) for key in shares]
        for g, target in (("1", 15), ("2", 60)):
            grade = m["grades"][g]
            pairs += [("attend_median_s", grade), (f"share_within_{target}_min", grade)]
            pairs += [("share_over_30_min", grade)]
            pairs += [("share_leaving_cluster_below_min_cover", grade)]
        for key, where in pairs:
            interval = where[f"{key}_ci95" if key != "attend_median_s" else "attend_median_ci95_s"]
            if interval is None:  # (fewer than CI_MIN_VALUES: the fixture's hours are few)
                assert where[key] is None or key != "share_off_response_officers"
                continue
            given += 1
            low, high = interval
            assert low <= where[key] <= high, (key, where[key], interval)
    assert given >= 2
    thrive = metrics["policies"]["thrive"]
    assert thrive["share_off_response_officers_ci95"] is not None
    assert "intervals" in metrics["assumptions"]
    report = (evaluated / "report.html").read_text()
    low, high = thrive["share_off_response_officers_ci95"]
    assert f'<small class="ci" title="95% interval">({low:.0%}–{high:.0%})</small>' in report
    assert "<b>Figures in brackets</b>: the 95% interval" in report


# -- policies compared on the same incidents -----------------------------------------------


def _paired(ids: list[str], attend: list[float | None], grade: int = 1) -> dict[str, list[Any]]:
    return {
        "ids": ids,
        "grade": [grade] * len(ids),
        "attend_s": attend,
        "off": [t is not None and t > 300 for t in attend],
    }


def test_a_difference_on_every_incident_is_shown_and_exact() -> None:
    """thrive a minute faster on each of 40 grade 1 incidents: the median difference is
    -60 s in every resample (the paired interval is exactly that), the log shows it; the
    status quo (closest) is what the others are compared against."""
    ids = [f"I{n}" for n in range(40)]
    times = [200.0 + 13 * n for n in range(40)]
    paired = {
        "closest": _paired(ids, times),
        "thrive": _paired(ids, [t - 60 for t in times]),
    }
    (c,) = ev.compare(paired)
    assert (c["policy"], c["against"], c["incidents"]) == ("thrive", "closest", 40)
    g1 = c["grades"]["1"]
    assert (g1["incidents"], g1["target_min"]) == (40, 15)
    assert g1["attend_median_s_diff"] == -60.0
    assert g1["attend_median_s_diff_ci95"] == [-60.0, -60.0]
    assert c["grades"]["2"]["incidents"] == 0 and c["grades"]["2"]["attend_median_s_diff"] is None


def test_incidents_are_paired_by_id_and_only_where_both_have_a_figure() -> None:
    """Another order, an incident only one policy graded, one only one sent an officer
    to: paired by id; the median over those both sent an officer to, the share within
    target over all (no officer named: a miss)."""
    ids = [f"I{n}" for n in range(30)]
    times: list[float | None] = [100.0 + 10 * n for n in range(30)]
    other = list(reversed(ids[1:]))  # I0 not graded by the other
    other_times = [None if iid == "I5" else 100.0 + 10 * int(iid[1:]) for iid in other]
    (c,) = ev.compare({"thrive": _paired(ids, times), "closest": _paired(other, other_times)})
    assert c["incidents"] == 29
    g1 = c["grades"]["1"]
    assert (g1["incidents"], g1["both_with_officer"]) == (29, 28)
    assert (g1["only_this_without_officer"], g1["only_against_without_officer"]) == (0, 1)
    assert g1["attend_median_s_diff"] == 0.0
    assert g1["attend_median_s_diff_ci95"] == [0.0, 0.0]
    # I5: within 15 min under thrive, no officer named under closest: +1 of 29
    assert g1["share_within_15_min_diff"] == round(1 / 29, 4)


def test_no_officer_named_misses_the_target_and_is_counted(metrics: dict[str, Any]) -> None:
    """Per grade, those no officer was named for are counted, and the share within target
    is over every incident of the grade: it is at most the share of those with one."""
    for m in metrics["policies"].values():
        for g, minutes in (("1", 15), ("2", 60)):
            grade = m["grades"][g]
            assert grade["with_officer"] + grade["without_officer"] == grade["incidents"]
            share = grade[f"share_within_{minutes}_min"]
            if grade["incidents"]:
                assert share * grade["incidents"] <= grade["with_officer"] + 1e-9


def test_the_parts_of_the_demand_off_response_officers_add_up_to_it(
    metrics: dict[str, Any], evaluated: Path
) -> None:
    """Where that demand went, by role or pool: the parts add up to the headline share,
    and the report shows them under it."""
    thrive = metrics["policies"]["thrive"]
    parts = thrive["share_off_response_officers_by"]
    assert parts and set(parts) <= {
        "investigator", "neighbourhood", "pcso", "force_support", "supervisor",
        "partner service (no officer)", "waiting for the investigator pool",
        "waiting for the neighbourhood pool",
    }  # fmt: skip
    assert sum(parts.values()) == pytest.approx(thrive["share_off_response_officers"], abs=1e-3)
    assert metrics["policies"]["closest"]["share_off_response_officers_by"] == {}
    page = (evaluated / "report.html").read_text()
    assert "… to an investigator" in page


def test_noise_alone_is_not_shown_as_a_difference() -> None:
    """Two policies whose times differ only by noise (no shift): the interval spans zero.
    A whole share's worth of difference in flags: exactly one."""
    rng = np.random.default_rng(7)
    ids = [f"I{n}" for n in range(200)]
    base = rng.uniform(100, 900, 200)
    noisy = base + rng.normal(0, 120, 200)
    (c,) = ev.compare({"closest": _paired(ids, list(base)), "thrive": _paired(ids, list(noisy))})
    low, high = c["grades"]["1"]["attend_median_s_diff_ci95"]
    assert low < 0 < high
    everyone = {"ids": ids, "grade": [3] * 200, "attend_s": [None] * 200, "off": [True] * 200}
    nobody = {**everyone, "off": [False] * 200}
    (c,) = ev.compare({"thrive": everyone, "closest": nobody})
    assert c["share_off_response_officers_diff"] == 1.0
    assert c["share_off_response_officers_diff_ci95"] == [1.0, 1.0]


def test_the_evaluation_compares_thrive_with_closest(
    metrics: dict[str, Any], evaluated: Path
) -> None:
    """metrics.json's comparisons and the report's section: thrive against closest, its
    share off response officers the difference of the two policies' shares."""
    (c,) = metrics["comparisons"]
    assert (c["policy"], c["against"]) == ("thrive", "closest")
    thrive, closest = metrics["policies"]["thrive"], metrics["policies"]["closest"]
    # on the calls both were given: those the log's dispatch attended
    assert c["incidents"] == closest["incidents"] < thrive["incidents"]
    assert 0 <= c["share_off_response_officers_diff"] < thrive["share_off_response_officers"]
    low, high = c["share_off_response_officers_diff_ci95"]
    assert low <= c["share_off_response_officers_diff"] <= high
    report = (evaluated / "report.html").read_text()
    assert "<h2>Differences on the same incidents</h2>" in report
    assert "<h3>thrive against closest</h3>" in report


def test_against_names_the_policy_the_others_are_compared_with(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--against thrive: closest is compared with thrive (a rules change is weighed
    against the product, not the status quo); a policy not evaluated is one line, exit 2,
    before anything is written."""
    out = tmp_path / "out"
    policies = ["--policy", "thrive", "--policy", "closest"]
    assert main(["evaluate", str(log), "--out", str(out), "--against", "thrive", *policies]) == 0
    (c,) = json.loads((out / "metrics.json").read_text())["comparisons"]
    assert (c["policy"], c["against"]) == ("closest", "thrive")
    capsys.readouterr()
    args = ["evaluate", str(log), "--out", str(tmp_path / "o2"), "--against", "fastest"]
    args += ["--policy", "thrive", "--policy", "closest"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sdo evaluate: error: --against 'fastest' is not one of the policies evaluated: "
        "thrive, closest"
    ]
    assert not (tmp_path / "o2").exists()


def test_the_comparison_is_one_line_of_the_command_s_output() -> None:
    """A shown difference is marked *, one that may be chance is not; a grade with no
    incident says n/a."""
    ids = [f"I{n}" for n in range(40)]
    times = [200.0 + 13 * n for n in range(40)]
    closest = _paired(ids, times)
    thrive = {**_paired(ids, [t - 60 for t in times]), "off": [n % 2 == 0 for n in range(40)]}
    (c,) = ev.compare({"closest": closest, "thrive": thrive})
    line = _comparison_line(c)
    off = c["share_off_response_officers_diff"] * 100
    low, high = (v * 100 for v in c["share_off_response_officers_diff_ci95"])
    assert line == (
        f"thrive - closest, same incidents: off response officers {off:+.0f} pts"
        f"{'*' if low > 0 or high < 0 else ''} ({low:+.0f} pts to {high:+.0f} pts), grade 1 "
        "median attendance -1.0 min* (-1.0 min to -1.0 min), within 15 min +0 pts "
        "(+0 pts to +0 pts), grade 2 median attendance n/a, within 60 min n/a "
        "(95% intervals; * the log shows it)\n"
    )


def test_every_headline_share_has_its_interval_on_a_pilot_day(tmp_path: Path) -> None:
    """A simulated pilot day has enough incidents for every headline share's interval
    (the three-hour fixture has too few for most): each is given, and holds its figure."""
    day = tmp_path / "day.jsonl"
    assert main(["simulate", "--hours", "24", "--officers", "120", "--out", str(day)]) == 0
    assert _evaluate(day, tmp_path / "out", "thrive") == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["policies"]["thrive"]
    grade2 = m["grades"]["2"]
    figures = [
        (m, "share_off_response_officers"),
        (m, "skill_match_rate"),
        (m, "named_officer_alignment"),
        (m, "agreement_with_recorded_deployments"),
        (grade2, "share_over_30_min"),
        (grade2, "share_leaving_cluster_below_min_cover"),
        (grade2, "share_within_60_min"),
        (m["grades"]["1"], "share_within_15_min"),
    ]
    for where, key in figures:
        low, high = where[f"{key}_ci95"]
        assert low <= where[key] <= high, (key, where[key], (low, high))


def test_a_file_that_is_not_an_event_log_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV given as the log: one line from its first lines (not twenty "skipped" lines
    and a pass over the whole file), exit 2, no DIR."""
    csv_file = tmp_path / "crimes.csv"
    csv_file.write_text(
        "type,street,month,latitude,longitude\n"
        + "burglary,On or near A,2017-03,52.48,-1.89\n" * 5000
    )
    out = tmp_path / "out"
    assert _evaluate(csv_file, out, "thrive") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        f"sdo evaluate: error: {csv_file}: not an event log: none of its first 50 lines is "
        "an event (line 1: malformed JSON"
    )
    assert not out.exists()
