"""Grading THRIVE+ answers with the packaged rule set (CONTRACT §2) and rule-set validation."""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

import sdo.domain.grading as grading_module
from sdo.config import package_data
from sdo.domain.grading import Grading, Rules, grade
from sdo.errors import ConfigError
from sdo.events import Incident, Response

NOISE_TEAM = "Local authority environmental health noise team"


def default_mapping() -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(package_data("rules.json").read_bytes())
    return obj


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules.from_mapping(default_mapping())


def incident(
    *,
    category: str = "other",
    grade: int | None = None,
    ongoing: bool = False,
    offender_present: bool = False,
    persistent: bool = False,
    **thrive: Any,
) -> Incident:
    """An incident whose THRIVE+ answers are all quiet unless given."""
    answers: dict[str, Any] = {
        "threat": "low",
        "harm": "low",
        "risk": "low",
        "vulnerability": "none",
        "investigation": False,
        "engagement": False,
        "prevention": False,
    }
    answers.update(thrive)
    return Incident.model_validate(
        {
            "event_id": "e-1",
            "ts": "2015-12-01T09:00:00Z",
            "incident_id": "inc-1",
            "lat": 52.52,
            "lon": -1.83,
            "category": category,
            "thrive": answers,
            "ongoing": ongoing,
            "offender_present": offender_present,
            "persistent": persistent,
            "grade": grade,
        }
    )


# --- the worked examples of the seed report -----------------------------------------------


def test_criminal_damage_offender_gone_with_description_goes_to_investigator(
    rules: Rules,
) -> None:
    """Criminal damage, offender gone, a witness can describe them -> investigator, grade 4."""
    result = grade(
        incident(category="criminal_damage", harm="low", investigation=True, engagement=True),
        rules,
    )
    assert result == Grading(
        grade=4,
        response=Response.INVESTIGATOR,
        reasons=("rule 5 investigator: investigation opportunity and not ongoing",),
        rule="investigator",
        service=None,
        deadline_s=None,
    )


def test_regular_asb_stones_at_window_goes_to_neighbourhood(rules: Rules) -> None:
    """Persistent ASB (stones thrown at a window) with prevention -> neighbourhood."""
    result = grade(
        incident(category="asb", persistent=True, prevention=True, engagement=True), rules
    )
    assert (result.grade, result.response, result.rule) == (
        4,
        Response.NEIGHBOURHOOD,
        "neighbourhood",
    )
    assert result.reasons == ("rule 4 neighbourhood: persistent and prevention opportunity",)


def test_noisy_neighbours_not_ongoing_no_vulnerability_is_signposted_to_noise_team(
    rules: Rules,
) -> None:
    """Noisy neighbours, not ongoing, no vulnerability -> signpost to the noise team."""
    result = grade(incident(category="noise", threat="none", harm="none", risk="low"), rules)
    assert (result.grade, result.response, result.service) == (4, Response.SIGNPOST, NOISE_TEAM)
    assert result.reasons == (
        "rule 6 signpost: vulnerability is none and threat, harm and risk all at most low"
        " and no investigation opportunity and no prevention opportunity",
        f"refer to {NOISE_TEAM}",
    )


def test_ongoing_assault_with_offender_present_is_an_emergency(rules: Rules) -> None:
    """An ongoing assault with the offender still there and high harm -> emergency, 15 min."""
    result = grade(
        incident(category="assault", ongoing=True, offender_present=True, harm="high"), rules
    )
    assert (result.grade, result.response, result.deadline_s) == (1, Response.EMERGENCY, 900)
    assert result.reasons == ("rule 2 emergency: harm is high and ongoing and offender present",)


# --- every rule and its boundaries -------------------------------------------------------

BOUNDARIES = [
    # rule 2: any of threat/harm/risk high
    ("threat high", {"threat": "high"}, Response.EMERGENCY),
    ("harm high", {"harm": "high"}, Response.EMERGENCY),
    ("risk high", {"risk": "high"}, Response.EMERGENCY),
    ("vulnerability high alone is not an emergency", {"vulnerability": "high"}, Response.PRIORITY),
    # rule 2: ongoing and (offender present or vulnerability >= medium)
    ("ongoing + offender", {"ongoing": True, "offender_present": True}, Response.EMERGENCY),
    ("ongoing + vuln medium", {"ongoing": True, "vulnerability": "medium"}, Response.EMERGENCY),
    ("ongoing + vuln high", {"ongoing": True, "vulnerability": "high"}, Response.EMERGENCY),
    ("ongoing + vuln low -> rule 3", {"ongoing": True, "vulnerability": "low"}, Response.PRIORITY),
    ("offender present, not ongoing", {"offender_present": True}, Response.SIGNPOST),
    # rule 3: any of threat/harm/risk medium, or vulnerability >= medium, or ongoing
    ("threat medium", {"threat": "medium"}, Response.PRIORITY),
    ("harm medium", {"harm": "medium"}, Response.PRIORITY),
    ("risk medium", {"risk": "medium"}, Response.PRIORITY),
    ("vulnerability medium", {"vulnerability": "medium"}, Response.PRIORITY),
    ("ongoing alone", {"ongoing": True}, Response.PRIORITY),
    ("ongoing beats investigation", {"ongoing": True, "investigation": True}, Response.PRIORITY),
    (
        "medium beats neighbourhood",
        {"risk": "medium", "persistent": True, "prevention": True},
        Response.PRIORITY,
    ),
    # rule 4: persistent and prevention
    ("persistent + prevention", {"persistent": True, "prevention": True}, Response.NEIGHBOURHOOD),
    (
        "neighbourhood before investigator",
        {"persistent": True, "prevention": True, "investigation": True},
        Response.NEIGHBOURHOOD,
    ),
    ("persistent without prevention", {"persistent": True}, Response.SIGNPOST),
    ("prevention without persistence", {"prevention": True}, Response.SCHEDULED),
    # rule 5: investigation and not ongoing
    ("investigation, not ongoing", {"investigation": True}, Response.INVESTIGATOR),
    (
        "investigation, vuln low",
        {"investigation": True, "vulnerability": "low"},
        Response.INVESTIGATOR,
    ),
    # rule 6: vulnerability none, threat/harm/risk <= low, no investigation/prevention
    ("all none", {"threat": "none", "harm": "none", "risk": "none"}, Response.SIGNPOST),
    ("all low", {}, Response.SIGNPOST),
    ("engagement does not stop a signpost", {"engagement": True}, Response.SIGNPOST),
    ("vulnerability low -> rule 7", {"vulnerability": "low"}, Response.SCHEDULED),
    # rule 7: otherwise
    ("vuln low + engagement", {"vulnerability": "low", "engagement": True}, Response.SCHEDULED),
]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [pytest.param(f, e, id=name) for name, f, e in BOUNDARIES],
)
def test_default_rules_pick_the_contract_response(
    rules: Rules, facts: dict[str, Any], expected: Response
) -> None:
    """Each CONTRACT §2 rule fires exactly at its thresholds, first match wins."""
    result = grade(incident(**facts), rules)
    assert result.response is expected
    expected_grade = {"emergency": 1, "priority": 2, "scheduled": 3}.get(expected.value, 4)
    assert result.grade == expected_grade
    assert result.rule == expected.value
    assert (result.service is not None) is (expected is Response.SIGNPOST)


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"threat": "high", "risk": "high"}, "rule 2 emergency: threat is high and risk is high"),
        (
            {"ongoing": True, "vulnerability": "high"},
            "rule 2 emergency: ongoing and vulnerability is high",
        ),
        (
            {"harm": "medium", "vulnerability": "medium"},
            "rule 3 priority: harm is medium and vulnerability is medium",
        ),
        ({"ongoing": True}, "rule 3 priority: ongoing"),
        ({"vulnerability": "low"}, "rule 7 scheduled: no earlier rule matched"),
    ],
)
def test_reasons_name_the_rule_and_the_factors_that_fired(
    rules: Rules, facts: dict[str, Any], reason: str
) -> None:
    """The reason names the rule number, its name and every factor that made it hold."""
    assert grade(incident(**facts), rules).reasons == (reason,)


@pytest.mark.parametrize(
    ("facts", "deadline"),
    [
        ({"threat": "high"}, 900),
        ({"ongoing": True}, 3600),
        ({"vulnerability": "low"}, 172800),
        ({"investigation": True}, None),
    ],
)
def test_deadline_follows_the_grade(
    rules: Rules, facts: dict[str, Any], deadline: int | None
) -> None:
    """Grade 1 -> 15 min, grade 2 -> 60 min, grade 3 -> 48 h, grade 4 -> no deadline."""
    assert grade(incident(**facts), rules).deadline_s == deadline


# --- rule 1: the handler's grade ---------------------------------------------------------

HANDLER = [
    ("1 stands over quiet facts", 1, {}, 1, Response.EMERGENCY, "handler_grade"),
    ("2 stands over quiet facts", 2, {}, 2, Response.PRIORITY, "handler_grade"),
    ("3 stands over high threat", 3, {"threat": "high"}, 3, Response.SCHEDULED, "handler_grade"),
    ("1 stands over a signpost", 1, {"category": "noise"}, 1, Response.EMERGENCY, "handler_grade"),
    (
        "4 -> neighbourhood",
        4,
        {"persistent": True, "prevention": True},
        4,
        Response.NEIGHBOURHOOD,
        "neighbourhood",
    ),
    ("4 -> investigator", 4, {"investigation": True}, 4, Response.INVESTIGATOR, "investigator"),
    (
        "4 -> investigator even if threat high",
        4,
        {"investigation": True, "threat": "high"},
        4,
        Response.INVESTIGATOR,
        "investigator",
    ),
    ("4 -> signpost by rule 6", 4, {}, 4, Response.SIGNPOST, "signpost"),
    (
        "4 with nothing matching -> signpost",
        4,
        {"threat": "high"},
        4,
        Response.SIGNPOST,
        "handler_grade",
    ),
    (
        "4 ongoing investigation -> signpost",
        4,
        {"ongoing": True, "investigation": True},
        4,
        Response.SIGNPOST,
        "handler_grade",
    ),
]


@pytest.mark.parametrize(
    ("given", "facts", "grade_", "response", "rule"),
    [pytest.param(*row[1:], id=row[0]) for row in HANDLER],
)
def test_handler_grade_stands(
    rules: Rules,
    given: int,
    facts: dict[str, Any],
    grade_: int,
    response: Response,
    rule: str,
) -> None:
    """A handler's grade 1-3 stands; grade 4 lets rules 4-6 pick, signpost if none matches."""
    result = grade(incident(grade=given, **facts), rules)
    assert (result.grade, result.response, result.rule) == (grade_, response, rule)
    assert result.reasons[0].startswith(f"handler set grade {given}")


def test_handler_grade_reasons(rules: Rules) -> None:
    """The reasons say the handler set the grade and, for 4, which route was taken and why."""
    assert grade(incident(grade=2), rules).reasons == ("handler set grade 2",)
    assert grade(incident(grade=4, investigation=True), rules).reasons == (
        "handler set grade 4 (non-attendance)",
        "rule 5 investigator: investigation opportunity and not ongoing",
    )
    fallback = grade(incident(grade=4, category="neighbour_dispute", threat="high"), rules)
    assert fallback.reasons == (
        "handler set grade 4 (non-attendance)",
        "no non-attendance rule matched: signpost",
        "refer to Mediation service",
    )
    assert fallback.service == "Mediation service"


@pytest.mark.parametrize(
    ("category", "service"),
    [
        ("noise", NOISE_TEAM),
        ("neighbour_dispute", "Mediation service"),
        ("NOISE", NOISE_TEAM),
        ("something_new", "Local authority community safety partnership"),
    ],
)
def test_signpost_service_by_category(rules: Rules, category: str, service: str) -> None:
    """A signpost names the partner service of the category, the default for any other."""
    result = grade(incident(category=category), rules)
    assert result.service == service
    assert rules.service_for(category.lower()) == service


def test_repeated_grading_is_equal_and_stable(rules: Rules) -> None:
    """Grading the same facts twice gives equal results (shared immutable outcomes)."""
    first = grade(incident(category="noise"), rules)
    again = grade(incident(category="noise"), rules)
    other = grade(incident(category="neighbour_dispute"), rules)
    assert first == again
    assert other.service == "Mediation service"
    assert first.service == NOISE_TEAM


def test_packaged_rules_expose_version_and_recommend(rules: Rules) -> None:
    """The packaged rule set has a version and passes ``recommend`` through untouched."""
    assert rules.version == "1.0"
    assert dict(rules.recommend) == {}
    assert [r.name for r in rules.rules] == [
        "emergency",
        "priority",
        "neighbourhood",
        "investigator",
        "signpost",
        "scheduled",
    ]
    assert [r.number for r in rules.rules] == [2, 3, 4, 5, 6, 7]


def test_recommend_section_passes_through() -> None:
    """Whatever ``recommend`` holds is handed on as given (validated elsewhere)."""
    obj = default_mapping()
    obj["recommend"] = {"weights": {"eta": 1.0}, "anything": [1, 2]}
    assert dict(Rules.from_mapping(obj).recommend) == obj["recommend"]


# --- the condition language ---------------------------------------------------------------


def one_rule(when: dict[str, Any]) -> Rules:
    """The default rule set with a single 'hit' (investigator) rule before the fallback."""
    obj = default_mapping()
    obj["rules"] = [
        {
            "name": "hit",
            "description": "test",
            "when": when,
            "then": {"response": "investigator", "grade": 4},
        },
        obj["rules"][-1],
    ]
    return Rules.from_mapping(obj)


CONDITIONS = [
    ("at_most alone means all", {"level": ["threat", "harm"], "at_most": "low"}, {}, True),
    (
        "at_most all fails on one",
        {"level": ["threat", "harm"], "at_most": "low"},
        {"harm": "medium"},
        False,
    ),
    (
        "at_least of all",
        {"level": ["threat", "harm"], "at_least": "medium", "of": "all"},
        {"threat": "medium"},
        False,
    ),
    (
        "at_most of any",
        {"level": ["threat", "harm"], "at_most": "none", "of": "any"},
        {"harm": "none"},
        True,
    ),
    (
        "range",
        {"level": ["risk"], "at_least": "low", "at_most": "medium"},
        {"risk": "medium"},
        True,
    ),
    (
        "range excludes high",
        {"level": ["risk"], "at_least": "low", "at_most": "medium"},
        {"risk": "high"},
        False,
    ),
    ("category match", {"category": ["noise", "asb"]}, {"category": "asb"}, True),
    ("category miss", {"category": ["noise"]}, {"category": "burglary"}, False),
    ("not", {"not": {"flag": "persistent"}}, {}, True),
    ("not not", {"not": {"not": {"flag": "persistent"}}}, {}, False),
    ("empty all holds", {"all": []}, {}, True),
    ("empty any fails", {"any": []}, {}, False),
    ("engagement flag", {"flag": "engagement"}, {"engagement": True}, True),
]


@pytest.mark.parametrize(
    ("when", "facts", "holds"),
    [pytest.param(w, f, h, id=name) for name, w, f, h in CONDITIONS],
)
def test_condition_language(when: dict[str, Any], facts: dict[str, Any], holds: bool) -> None:
    """Each operator of the condition language holds exactly when documented."""
    result = grade(incident(**facts), one_rule(when))
    assert (result.rule == "hit") is holds


@pytest.mark.parametrize(
    ("when", "facts", "reason"),
    [
        (
            {"not": {"any": [{"flag": "ongoing"}, {"level": ["harm"], "at_least": "medium"}]}},
            {},
            "not ongoing and harm below medium",
        ),
        (
            {"not": {"level": ["threat", "harm"], "at_most": "low"}},
            {"harm": "high"},
            "harm is high",
        ),
        (
            {"not": {"all": [{"flag": "ongoing"}, {"flag": "persistent"}]}},
            {"persistent": True},
            "not ongoing",
        ),
        ({"category": ["noise"]}, {"category": "noise"}, "category noise"),
        ({"not": {"category": ["noise", "asb"]}}, {}, "category not asb or noise"),
        (
            {"level": ["risk"], "at_least": "low", "at_most": "medium", "of": "all"},
            {},
            "risk is low",
        ),
    ],
)
def test_negated_conditions_explain_with_the_incidents_facts(
    when: dict[str, Any], facts: dict[str, Any], reason: str
) -> None:
    """``not`` explains by the facts that make the inner condition false (De Morgan)."""
    assert grade(incident(**facts), one_rule(when)).reasons == (f"rule 2 hit: {reason}",)


# --- validation -------------------------------------------------------------------------


def _set(path: str, value: Any) -> Any:
    """An edit of the default mapping: set ``path`` (dots and list indices) to ``value``."""

    def edit(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


def _drop(path: str) -> Any:
    def edit(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return edit


INVALID = [
    ("unknown top-level key", _set("colour", "blue"), ['unknown top-level key "colour"']),
    ("missing top-level key", _drop("services"), ['missing top-level key "services"']),
    ("empty version", _set("version", ""), ["version: must be a non-empty string"]),
    (
        "recommend not an object",
        _set("recommend", []),
        ["recommend: must be an object, got a list"],
    ),
    (
        "unknown condition key",
        _set("rules.0.when", {"lvl": ["threat"], "at_least": "high"}),
        ['rule "emergency" (rules[0]): when: unknown condition key "at_least"'],
    ),
    (
        "unknown nested condition key",
        _set("rules.1.when.any.2", {"flagg": "ongoing"}),
        [
            'rule "priority" (rules[1]): when.any[2]: unknown condition key "flagg"',
            "expected one of: all, always, any, category, flag, level, not",
        ],
    ),
    (
        "two operators",
        _set("rules.2.when", {"flag": "persistent", "not": {"flag": "ongoing"}}),
        ['rule "neighbourhood"', "exactly one of", "got flag, not"],
    ),
    (
        "bad level name",
        _set("rules.0.when.any.0.level", ["threat", "danger"]),
        [
            'rule "emergency"',
            "when.any[0].level: unknown level 'danger'",
            "harm, risk, threat, vulnerability",
        ],
    ),
    (
        "bad level value",
        _set("rules.0.when.any.0.at_least", "severe"),
        ['rule "emergency"', "at_least: unknown level 'severe'", "high, low, medium, none"],
    ),
    (
        "level without bound",
        _drop("rules.0.when.any.0.at_least"),
        ['rule "emergency"', 'needs "at_least" or "at_most"'],
    ),
    (
        "inverted range",
        _set("rules.4.when.all.0", {"level": ["risk"], "at_least": "high", "at_most": "low"}),
        ['rule "signpost"', "at_least high is above at_most low"],
    ),
    ("bad of", _set("rules.0.when.any.0.of", "most"), ['of: must be "any" or "all"']),
    (
        "unknown flag",
        _set("rules.3.when.all.0.flag", "witness"),
        ['rule "investigator"', "unknown flag 'witness'"],
    ),
    (
        "bad category",
        _set("rules.3.when", {"category": "noise"}),
        ["category: must be a non-empty list"],
    ),
    (
        "bad response",
        _set("rules.1.then.response", "attend"),
        [
            "rule \"priority\" (rules[1]): then.response 'attend' is not a response",
            "emergency, investigator, neighbourhood, priority, scheduled, signpost",
        ],
    ),
    (
        "grade does not match response",
        _set("rules.1.then.grade", 3),
        ['rule "priority"', "then.grade must be 2 for response priority, got 3"],
    ),
    (
        "unknown rule key",
        _set("rules.0.priority", 1),
        ['rule "emergency"', 'unknown key "priority"'],
    ),
    ("unknown then key", _set("rules.0.then.eta", 1), ["unknown key then.eta"]),
    ("missing when", _drop("rules.2.when"), ['rule "neighbourhood"', 'missing key "when"']),
    (
        "duplicate name",
        _set("rules.1.name", "emergency"),
        ['rule "emergency" (rules[1]): name used twice'],
    ),
    ("reserved name", _set("rules.1.name", "handler_grade"), ['"handler_grade" is reserved']),
    (
        "non_attendance on grade 1",
        _set("rules.0.non_attendance", True),
        ['rule "emergency"', "must give a grade 4 response, not emergency"],
    ),
    (
        "no final fallback",
        _set("rules.5.when", {"flag": "ongoing"}),
        ['rule "scheduled"', "the last rule must have", '{"always": true}'],
    ),
    ("always false", _set("rules.0.when", {"always": False}), ["when.always: must be true"]),
    ("empty rules", _set("rules", []), ["rules: must be a non-empty list"]),
    (
        "handler grade mismatch",
        _set("handler_grade.2", "emergency"),
        ["handler_grade.2: emergency is a grade 1 response"],
    ),
    (
        "handler non_attendance on 3",
        _set("handler_grade.3", "non_attendance"),
        ["handler_grade.3: 'non_attendance' is not a response"],
    ),
    ("handler grade missing", _drop("handler_grade.4"), ['handler_grade: missing grade "4"']),
    ("handler grade 5", _set("handler_grade.5", "signpost"), ['handler_grade: unknown key "5"']),
    ("services without default", _drop("services.default"), ['services: missing "default"']),
    ("empty service", _set("services.noise", ""), ["services.noise: must be a non-empty string"]),
    (
        "deadline not whole seconds",
        _set("deadlines_s.1", 900.5),
        ["deadlines_s.1: must be whole seconds or null, got 900.5"],
    ),
    ("deadline negative", _set("deadlines_s.2", -1), ["deadlines_s.2: must be positive"]),
]


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [pytest.param(e, f, id=name) for name, e, f in INVALID],
)
def test_invalid_rule_sets_are_rejected_with_a_clear_message(
    edit: Any, fragments: list[str]
) -> None:
    """A bad rule set raises ConfigError naming the rule and the offending key or value."""
    obj = copy.deepcopy(default_mapping())
    edit(obj)
    with pytest.raises(ConfigError) as caught:
        Rules.from_mapping(obj)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("obj", [[], "rules", None])
def test_a_rule_set_must_be_an_object(obj: Any) -> None:
    """A rules document that is not a JSON object is rejected."""
    with pytest.raises(ConfigError, match="a rule set is a JSON object"):
        Rules.from_mapping(obj)


def test_a_replaced_rule_changes_the_outcome() -> None:
    """Rules are data: editing the signpost rule to exclude noise changes the grading."""
    noisy = incident(category="noise")
    obj = default_mapping()
    obj["rules"][4]["when"]["all"].append({"not": {"category": ["noise"]}})
    assert grade(noisy, Rules.from_mapping(default_mapping())).response is Response.SIGNPOST
    changed = grade(noisy, Rules.from_mapping(obj))
    assert (changed.response, changed.rule) == (Response.SCHEDULED, "scheduled")


def test_grading_module_is_pure() -> None:
    """sdo.domain.grading imports only the standard library, sdo.events and sdo.errors."""
    # (its source: the module itself may be compiled, see sdo.compiled)
    source = Path(grading_module.__file__).with_name("grading.py").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    allowed = {
        "__future__",
        "ast",
        "collections.abc",
        "dataclasses",
        "operator",
        "types",
        "typing",
        "sdo.events",
        "sdo.errors",
    }
    assert imported <= allowed, imported - allowed
    assert "os.environ" not in source
