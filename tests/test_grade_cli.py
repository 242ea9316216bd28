"""``sdo grade``: incidents as JSON lines on stdin, one grading per line on stdout."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from sdo.cli import main
from sdo.config import package_data
from sdo.domain.recommend import Policy
from sdo.errors import ConfigError
from sdo.events import Response
from sdo.grade import load_rules, rules_changes


@pytest.fixture(autouse=True)
def _no_rules_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaged rules apply unless a test says otherwise."""
    monkeypatch.delenv("SDO_RULES", raising=False)


def incident_line(incident_id: str, **facts: Any) -> str:
    """One ``incident`` event as a JSON line; THRIVE+ answers quiet unless given."""
    thrive = {
        "threat": "low",
        "harm": "low",
        "risk": "low",
        "vulnerability": "none",
        "investigation": False,
        "engagement": False,
        "prevention": False,
    }
    thrive.update({k: v for k, v in facts.items() if k in thrive})
    event = {
        "type": "incident",
        "event_id": f"ev-{incident_id}",
        "ts": "2015-12-01T09:00:00Z",
        "incident_id": incident_id,
        "lat": 52.52,
        "lon": -1.83,
        "category": facts.get("category", "other"),
        "thrive": thrive,
        "ongoing": facts.get("ongoing", False),
        "offender_present": facts.get("offender_present", False),
        "persistent": facts.get("persistent", False),
    }
    return orjson.dumps(event).decode()


def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str,
    *argv: str,
) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["grade", *argv])
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines()], err


def test_grades_each_line_and_reports_a_bad_one_in_place(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 lines, the middle malformed -> 3 output lines, the middle an error at line 2; exit 1."""
    stdin = "\n".join(
        [
            incident_line("inc-1", threat="high"),
            '{"type": "incident", "incident_id": ',
            incident_line("inc-3", category="noise"),
        ]
    )
    code, lines, err = run(monkeypatch, capsys, stdin + "\n")
    assert code == 1
    assert err == ""
    assert len(lines) == 3
    assert lines[0] == {
        "incident_id": "inc-1",
        "grade": 1,
        "response": "emergency",
        "reasons": ["rule 2 emergency: threat is high"],
    }
    assert lines[1]["line"] == 2
    assert set(lines[1]) == {"line", "error"}
    assert "malformed JSON" in lines[1]["error"]
    assert lines[2]["incident_id"] == "inc-3"
    assert lines[2]["response"] == "signpost"
    assert lines[2]["service"] == "Local authority environmental health noise team"


def test_all_good_lines_exit_zero_and_blank_lines_are_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blank lines give no output; all graded -> exit 0; no service unless signpost."""
    stdin = "\n".join(
        [
            incident_line("a", investigation=True),
            "",
            "   ",
            incident_line("b", persistent=True, prevention=True),
        ]
    )
    code, lines, _ = run(monkeypatch, capsys, stdin)
    assert code == 0
    assert [(r["incident_id"], r["grade"], r["response"]) for r in lines] == [
        ("a", 4, "investigator"),
        ("b", 4, "neighbourhood"),
    ]
    assert all("service" not in r for r in lines)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"type": "officer.status"}', "does not belong here (expected 'incident')"),
        ("[1, 2]", "an event is a JSON object"),
        (incident_line("x").replace('"ongoing":false', '"ongoing":false,"colour":1'), "colour"),
        (incident_line("x").replace('"threat":"low"', '"threat":"extreme"'), "thrive.threat"),
    ],
)
def test_invalid_incidents_are_reported_with_their_reason(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    line: str,
    fragment: str,
) -> None:
    """Wrong type, non-object, unknown field or bad level -> an error line saying why."""
    code, lines, _ = run(monkeypatch, capsys, f"\n{line}\n")
    assert code == 1
    assert len(lines) == 1
    assert lines[0]["line"] == 2
    assert fragment in lines[0]["error"]


def test_missing_rules_file_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--rules`` naming a missing file -> exit 2 and exactly one line on stderr."""
    missing = tmp_path / "nope.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(incident_line("a")))
    code = main(["grade", "--rules", str(missing)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert f"rules file {missing}: no such file" in err


def test_user_rules_file_changes_the_outcome(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A user rules file with an edited investigator rule grades the same incident differently."""
    obj = orjson.loads(package_data("rules.json").read_bytes())
    investigator = next(r for r in obj["rules"] if r["name"] == "investigator")
    investigator["when"]["all"].append({"level": ["harm"], "at_least": "medium"})
    custom = tmp_path / "rules.json"
    custom.write_bytes(orjson.dumps(obj))
    line = incident_line("a", investigation=True, category="criminal_damage") + "\n"

    _, default, _ = run(monkeypatch, capsys, line)
    code, changed, _ = run(monkeypatch, capsys, line, "--rules", str(custom))
    assert default[0]["response"] == "investigator"
    assert code == 0
    assert changed[0]["response"] == "scheduled"
    assert changed[0]["reasons"] == ["rule 7 scheduled: no earlier rule matched"]


def test_rules_from_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """SDO_RULES names the rules file when ``--rules`` is not given."""
    obj = orjson.loads(package_data("rules.json").read_bytes())
    obj["services"]["noise"] = "Council noise line"
    custom = tmp_path / "env-rules.json"
    custom.write_bytes(orjson.dumps(obj))
    monkeypatch.setenv("SDO_RULES", str(custom))
    _, lines, _ = run(monkeypatch, capsys, incident_line("n", category="noise"))
    assert lines[0]["service"] == "Council noise line"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"version": "x"}', 'missing top-level key "deadlines_s"'),
        (b"[]", "a rule set is a JSON object"),
    ],
)
def test_load_rules_reports_the_file_and_the_problem(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    """load_rules raises ConfigError "rules file PATH: ..." for unreadable or invalid files."""
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"rules file {path}: ")
    assert fragment in str(caught.value)


def test_invalid_rules_file_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A rules file with a bad response -> exit 2 and a one-line error naming the rule."""
    obj = orjson.loads(package_data("rules.json").read_bytes())
    obj["rules"][0]["then"]["response"] = "blue_lights"
    path = tmp_path / "rules.json"
    path.write_bytes(orjson.dumps(obj))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["grade", "--rules", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert 'rule "emergency"' in err
    assert "'blue_lights' is not a response" in err


@pytest.mark.parametrize(
    ("recommend", "fragment"),
    [
        ({"better_by_s": "abc"}, "recommend.better_by_s must be a number, not 'abc'"),
        ({"better_by_s": True}, "recommend.better_by_s must be a number"),
        ({"better_by_s": -5}, "recommend.better_by_s must be a non-negative number"),
        ({"max_candidates": "x"}, "recommend.max_candidates must be a whole number ≥ 1"),
        ({"max_candidates": 0}, "recommend.max_candidates must be a whole number ≥ 1"),
        ({"max_candidates": 2.5}, "recommend.max_candidates must be a whole number ≥ 1"),
        ({"detour_factor": 0}, "recommend.detour_factor must be at least 1"),
        ({"cover_busy_p": 7}, "recommend.cover_busy_p is a probability (0 to 1)"),
        ({"cover_weight_s": [0, 0]}, "recommend.cover_weight_s must map grades to seconds"),
        ({"cover_weight_s": {"two": 0}}, "recommend.cover_weight_s: grades are 1 to 4, not 'two'"),
        ({"below_min_penalty_s": {"9": 5}}, "grades are 1 to 4, not '9'"),
        ({"cover_weight_s": {"2": -500}}, "recommend.cover_weight_s.2 must be a non-negative"),
        ({"speed_mps": [1, 2, 3]}, "recommend.speed_mps must map transports to speeds"),
        ({"speed_mps": {"car": 13}}, "recommend.speed_mps.car: three positive speeds"),
        ({"speed_mps": {"car": [13, "fast", 9]}}, "recommend.speed_mps.car must be a number"),
        ({"speed_mps": {"car": [13, 0, 9]}}, "recommend.speed_mps.car: three positive speeds"),
        ({"better_by": 60}, "recommend: unknown setting(s) better_by"),
    ],
)
def test_recommend_settings_are_checked_when_the_rules_load(
    tmp_path: Path, recommend: dict[str, Any], fragment: str
) -> None:
    """A wrong ``recommend`` setting is a one-line error naming the file and the setting,
    found when the rules file is read (not a traceback halfway through a run)."""
    obj = orjson.loads(package_data("rules.json").read_bytes())
    obj["recommend"] = recommend
    path = tmp_path / "typo.json"
    path.write_bytes(orjson.dumps(obj))
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(f"rules file {path}: ")
    assert fragment in str(caught.value)


def test_recommend_settings_in_range_load(tmp_path: Path) -> None:
    obj = orjson.loads(package_data("rules.json").read_bytes())
    obj["recommend"] = {
        "better_by_s": 300,
        "max_candidates": 3,
        "detour_factor": 1.2,
        "cover_busy_p": 0.25,
        "cover_weight_s": {"2": 600, "3": 0},
        "speed_mps": {"car": [14, 12.5, 9]},
    }
    path = tmp_path / "ok.json"
    path.write_bytes(orjson.dumps(obj))
    policy = Policy.from_mapping("closest", load_rules(path).recommend)
    assert (policy.better_by_s, policy.max_candidates, policy.cover_busy_p) == (300.0, 3, 0.25)
    assert policy.cover_weight_s == {2: 600.0, 3: 0.0}
    assert policy.speed_mps["car"] == (14.0, 12.5, 9.0)


def test_packaged_default_rules_load() -> None:
    """The shipped rules.json is valid and grades with the CONTRACT §2 responses."""
    rules = load_rules(package_data("rules.json"))
    assert {r.response for r in rules.rules} == set(Response)


def _changed(tmp_path: Path, change: Any) -> list[str]:
    """What :func:`rules_changes` says of the packaged rules changed by ``change``."""
    base = package_data("rules.json")
    rules = orjson.loads(base.read_bytes())
    change(rules)
    other = tmp_path / "other.json"
    other.write_bytes(orjson.dumps(rules))
    return rules_changes(base, other)


def test_rules_changes_says_nothing_of_the_same_rules(tmp_path: Path) -> None:
    assert _changed(tmp_path, lambda rules: None) == []
    # a recommend setting given at its default is no change
    assert _changed(tmp_path, lambda rules: rules["recommend"].update(better_by_s=60)) == []


def test_rules_changes_names_each_change_by_where_it_is(tmp_path: Path) -> None:
    """Settings against their defaults, rules by name, lists by position, removals and
    additions, and a value too long to read cut short."""

    def change(rules: dict[str, Any]) -> None:
        rules["recommend"]["better_by_s"] = 120
        rules["recommend"]["speed_mps"] = {"car": [20, 11, 9]}
        by_name = {r["name"]: r for r in rules["rules"]}
        by_name["signpost"]["then"]["grade"] = 3
        by_name["emergency"]["when"]["any"][0]["at_least"] = "medium"
        by_name["priority"]["description"] = "x" * 200
        del rules["services"]["noise"]
        rules["services"]["graffiti"] = "Council cleansing"

    said = _changed(tmp_path, change)
    assert said[:3] == [
        'rules.emergency.when.any[0].at_least: "high" → "medium"',
        "rules.priority.description: " + said[1].split(": ", 1)[1],
        "rules.signpost.then.grade: 4 → 3",
    ]
    assert said[1].endswith("xxx…") and len(said[1]) < 200
    assert said[3:] == [
        "services.noise: removed",
        'services.graffiti: added, "Council cleansing"',
        "recommend.speed_mps.car[0]: 13 → 20",
        "recommend.better_by_s: 60 → 120",
    ]


def test_rules_changes_sees_rules_reordered_and_removed(tmp_path: Path) -> None:
    """The first rule that matches decides, so the order of the rules is a change."""

    def change(rules: dict[str, Any]) -> None:
        names = [r["name"] for r in rules["rules"]]
        i, j = names.index("investigator"), names.index("signpost")
        rules["rules"][i], rules["rules"][j] = rules["rules"][j], rules["rules"][i]
        rules["rules"] = [r for r in rules["rules"] if r["name"] != "neighbourhood"]

    said = _changed(tmp_path, change)
    assert said == [
        "rules in the order: emergency, priority, investigator, signpost, scheduled → "
        "emergency, priority, signpost, investigator, scheduled",
        "rules.neighbourhood: removed",
    ]
