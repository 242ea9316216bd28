"""THRIVE+ answers to a grade and a response option (CONTRACT §2).

Theory of operation
-------------------
The rule set is data (``sdo/data/rules.json``, replaceable with ``--rules``/``SDO_RULES``).
:meth:`Rules.from_mapping` validates it once and compiles every ``when`` condition into a
pair of closures; :func:`grade` then only walks those closures, so grading one incident
costs a few microseconds and cannot fail on a validated rule set.

Rule numbering follows CONTRACT §2: rule 1 is the handler's own grade (the
``handler_grade`` section); the entries of ``rules`` are rules 2, 3, … in file order, and
the first whose ``when`` holds wins. The last rule must be unconditional
(``{"always": true}``) so that every incident gets a grade.

A handler-given ``grade`` stands: ``handler_grade`` maps it to a response whose grade is
that number, or (only for 4) to ``"non_attendance"``, meaning the rules tagged
``"non_attendance": true`` pick the route, first match wins, and ``signpost`` if none does.

Conditions (a small JSON expression language)
---------------------------------------------
Each condition is an object with exactly one operator:

``{"any": [c, …]}``
    true if at least one ``c`` holds (all of those that hold are given as reasons).
``{"all": [c, …]}``
    true if every ``c`` holds.
``{"not": c}``
    true if ``c`` does not hold.
``{"level": [name, …], "at_least": L, "at_most": L, "of": "any" | "all"}``
    compares THRIVE levels (``threat``, ``harm``, ``risk``, ``vulnerability``; levels
    ``none < low < medium < high``). At least one of ``at_least``/``at_most`` is needed.
    ``of`` says whether any or every named level must lie in the range; it defaults to
    ``"any"``, except with ``at_most`` alone, where it defaults to ``"all"`` — so
    ``at_least high`` reads "any of them is high" and ``at_most low`` reads "all of them
    are at most low".
``{"flag": name}``
    a THRIVE opportunity (``investigation``, ``engagement``, ``prevention``) or an incident
    fact (``ongoing``, ``offender_present``, ``persistent``) is true.
``{"category": [name, …]}``
    the incident's category is one of these (lower case).
``{"always": true}``
    always holds (the final fallback rule).

Reasons
-------
Every condition is compiled to ``(holds, fails)``: ``holds(incident)`` returns the factors
that make it true, or ``None``; ``fails(incident)`` the factors that make it false, or
``None``. ``not`` swaps the two (De Morgan), so a reason always names the facts of this
incident in words an SDO uses, e.g. ``"rule 5 investigator: investigation opportunity and
not ongoing"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final

from sdo.errors import ConfigError
from sdo.events import Incident, Level, Response

__all__ = [
    "CONDITION_KEYS",
    "FLAGS",
    "LEVEL_NAMES",
    "NON_ATTENDANCE",
    "RESPONSE_GRADE",
    "Grading",
    "Rule",
    "Rules",
    "grade",
]

#: The grade each response option carries (CONTRACT §2); ``then.grade`` must agree.
RESPONSE_GRADE: Final[Mapping[Response, int]] = MappingProxyType(
    {
        Response.EMERGENCY: 1,
        Response.PRIORITY: 2,
        Response.SCHEDULED: 3,
        Response.NEIGHBOURHOOD: 4,
        Response.INVESTIGATOR: 4,
        Response.SIGNPOST: 4,
    }
)

#: ``handler_grade`` value meaning "the non-attendance rules pick".
NON_ATTENDANCE: Final = "non_attendance"

#: THRIVE levels a ``level`` condition may name.
LEVEL_NAMES: Final = ("threat", "harm", "risk", "vulnerability")

#: flag -> (attribute path on the incident, phrase when true, phrase when false)
FLAGS: Final[Mapping[str, tuple[str, str, str]]] = MappingProxyType(
    {
        "investigation": (
            "thrive.investigation",
            "investigation opportunity",
            "no investigation opportunity",
        ),
        "engagement": ("thrive.engagement", "engagement need", "no engagement need"),
        "prevention": ("thrive.prevention", "prevention opportunity", "no prevention opportunity"),
        "ongoing": ("ongoing", "ongoing", "not ongoing"),
        "offender_present": ("offender_present", "offender present", "offender not present"),
        "persistent": ("persistent", "persistent", "not persistent"),
    }
)

#: The operators a condition may use, and the extra keys each allows.
CONDITION_KEYS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "any": frozenset(),
        "all": frozenset(),
        "not": frozenset(),
        "level": frozenset({"at_least", "at_most", "of"}),
        "flag": frozenset(),
        "category": frozenset(),
        "always": frozenset(),
    }
)

_TOP_KEYS: Final = frozenset(
    {"version", "rules", "handler_grade", "services", "deadlines_s", "recommend"}
)
_RULE_KEYS: Final = frozenset({"name", "description", "when", "then", "non_attendance"})
_THEN_KEYS: Final = frozenset({"response", "grade"})
_GRADES: Final = ("1", "2", "3", "4")
_LEVELS: Final = tuple(level.value for level in Level)
_RANK: Final[Mapping[str, int]] = MappingProxyType({v: i for i, v in enumerate(_LEVELS)})
_HIGHEST: Final = len(_LEVELS) - 1
_MEMO_MAX: Final = 4096
_HANDLER: Final = "handler_grade"

Factors = tuple[str, ...]
Test = Callable[[Incident], Factors | None]


@dataclass(frozen=True, slots=True)
class Grading:
    """The outcome of grading one incident.

    ``rule`` is the name of the rule that decided (``"handler_grade"`` when the handler's
    grade stood with no rule involved); ``service`` is set for ``signpost`` only;
    ``deadline_s`` is the attendance deadline of the grade (``None``: no deadline).
    """

    grade: int
    response: Response
    reasons: tuple[str, ...]
    rule: str
    service: str | None
    deadline_s: int | None


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule; ``number`` is its CONTRACT §2 number (first list entry is 2)."""

    number: int
    name: str
    description: str
    response: Response
    grade: int
    non_attendance: bool
    holds: Test = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Rules:
    """A validated, compiled rule set. Build it with :meth:`from_mapping`."""

    version: str
    rules: tuple[Rule, ...]
    handler_grade: Mapping[int, Response | str]
    services: Mapping[str, str]
    deadlines_s: Mapping[int, int | None]
    recommend: Mapping[str, Any]
    # Gradings are immutable and a pure function of (rule, reasons, service), a small
    # finite set, so they are built once and shared: building a frozen dataclass costs
    # more than the whole rule walk. Not part of equality; bounded by _MEMO_MAX.
    _memo: dict[tuple[Any, ...], Grading] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> Rules:
        """Validate and compile a rule set (the parsed ``rules.json``).

        Raises :class:`ConfigError` naming the rule and the offending key.
        """
        if not isinstance(obj, Mapping):
            raise ConfigError(f"a rule set is a JSON object, got {_kind(obj)}")
        unknown = sorted(set(obj) - _TOP_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown top-level key {_q(unknown[0])} (allowed: {_list(_TOP_KEYS)})"
            )
        missing = sorted(_TOP_KEYS - set(obj))
        if missing:
            raise ConfigError(f"missing top-level key {_q(missing[0])}")
        version = obj["version"]
        if not isinstance(version, str) or not version.strip():
            raise ConfigError("version: must be a non-empty string")
        recommend = obj["recommend"]
        if not isinstance(recommend, Mapping):
            raise ConfigError(f"recommend: must be an object, got {_kind(recommend)}")
        return cls(
            version=version,
            rules=_rules(obj["rules"]),
            handler_grade=_handler_grade(obj["handler_grade"]),
            services=_services(obj["services"]),
            deadlines_s=_deadlines(obj["deadlines_s"]),
            recommend=MappingProxyType(dict(recommend)),
        )

    def service_for(self, category: str) -> str:
        """The partner service a ``signpost`` of this category refers to."""
        return self.services.get(category) or self.services["default"]


def grade(incident: Incident, rules: Rules) -> Grading:
    """Grade one incident: the first rule that holds decides (CONTRACT §2)."""
    given = incident.grade
    if given is not None:
        route = rules.handler_grade[given]
        head = f"handler set grade {given}"
        if isinstance(route, Response):
            return _outcome(rules, incident, given, route, reasons=(head,), rule=_HANDLER)
        for rule in rules.rules:
            if rule.non_attendance:
                factors = rule.holds(incident)
                if factors is not None:
                    reasons = (f"{head} (non-attendance)", _because(rule, factors))
                    return _outcome(
                        rules, incident, 4, rule.response, reasons=reasons, rule=rule.name
                    )
        reasons = (f"{head} (non-attendance)", "no non-attendance rule matched: signpost")
        return _outcome(rules, incident, 4, Response.SIGNPOST, reasons=reasons, rule=_HANDLER)
    for rule in rules.rules:
        factors = rule.holds(incident)
        if factors is not None:
            reason = _because(rule, factors)
            return _outcome(
                rules, incident, rule.grade, rule.response, reasons=(reason,), rule=rule.name
            )
    # Unreachable: validation makes the last rule unconditional.
    raise AssertionError("rule set without a final unconditional rule")


def _because(rule: Rule, factors: Factors) -> str:
    why = " and ".join(factors) if factors else "no earlier rule matched"
    return f"rule {rule.number} {rule.name}: {why}"


def _outcome(
    rules: Rules,
    incident: Incident,
    grade_: int,
    response: Response,
    *,
    reasons: tuple[str, ...],
    rule: str,
) -> Grading:
    service = rules.service_for(incident.category) if response is Response.SIGNPOST else None
    key = (grade_, rule, reasons, service)  # these fix the response too
    memo = rules._memo
    found = memo.get(key)
    if found is None:
        if service is not None:
            reasons = (*reasons, f"refer to {service}")
        found = Grading(grade_, response, reasons, rule, service, rules.deadlines_s[grade_])
        if len(memo) < _MEMO_MAX:
            memo[key] = found
    return found


# --- validation -------------------------------------------------------------------------


def _rules(raw: Any) -> tuple[Rule, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("rules: must be a non-empty list of rules")
    out: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        rule = _rule(index, item)
        if rule.name in seen:
            raise ConfigError(f"rule {_q(rule.name)} (rules[{index}]): name used twice")
        seen.add(rule.name)
        out.append(rule)
    last = raw[-1]["when"]
    if last != {"always": True}:
        raise ConfigError(
            f"rule {_q(out[-1].name)}: the last rule must have "
            '"when": {"always": true} so that every incident gets a grade'
        )
    return tuple(out)


def _rule(index: int, item: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a rule is an object, got {_kind(item)}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f'{where}: "name" must be a non-empty string')
    if name == _HANDLER:
        raise ConfigError(f'{where}: the name "{_HANDLER}" is reserved for the handler\'s grade')
    where = f"rule {_q(name)} ({where})"
    unknown = sorted(set(item) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {_q(unknown[0])} (allowed: {_list(_RULE_KEYS)})")
    for key in ("description", "when", "then"):
        if key not in item:
            raise ConfigError(f"{where}: missing key {_q(key)}")
    if not isinstance(item["description"], str):
        raise ConfigError(f'{where}: "description" must be a string')
    non_attendance = item.get("non_attendance", False)
    if not isinstance(non_attendance, bool):
        raise ConfigError(f'{where}: "non_attendance" must be true or false')
    response, grade_ = _then(where, item["then"])
    if non_attendance and grade_ != 4:
        raise ConfigError(
            f'{where}: "non_attendance" rules must give a grade 4 response, not {response.value}'
        )
    holds, _ = _compile(where, "when", item["when"])
    return Rule(index + 2, name, item["description"], response, grade_, non_attendance, holds)


def _then(where: str, then: Any) -> tuple[Response, int]:
    if not isinstance(then, Mapping):
        raise ConfigError(f'{where}: "then" must be an object')
    unknown = sorted(set(then) - _THEN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key then.{unknown[0]} (allowed: response, grade)")
    response = _response(f"{where}: then.response", then.get("response"))
    grade_ = then.get("grade")
    if grade_ != RESPONSE_GRADE[response] or isinstance(grade_, bool):
        raise ConfigError(
            f"{where}: then.grade must be {RESPONSE_GRADE[response]} for response "
            f"{response.value}, got {grade_!r}"
        )
    return response, RESPONSE_GRADE[response]


def _response(where: str, value: Any) -> Response:
    try:
        return Response(value if isinstance(value, str) else repr(value))
    except ValueError:
        raise ConfigError(
            f"{where} {value!r} is not a response (one of {_list([r.value for r in Response])})"
        ) from None


def _handler_grade(raw: Any) -> Mapping[int, Response | str]:
    where = "handler_grade"
    _grade_keys(where, raw)
    out: dict[int, Response | str] = {}
    for key in _GRADES:
        value = raw[key]
        if key == "4" and value == NON_ATTENDANCE:
            out[4] = NON_ATTENDANCE
            continue
        response = _response(f"{where}.{key}:", value)
        if RESPONSE_GRADE[response] != int(key):
            raise ConfigError(
                f"{where}.{key}: {response.value} is a grade {RESPONSE_GRADE[response]} "
                f"response; a handler's grade {key} stands"
            )
        out[int(key)] = response
    return MappingProxyType(out)


def _services(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"services: must be an object, got {_kind(raw)}")
    if "default" not in raw:
        raise ConfigError('services: missing "default" (the service for any other category)')
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"services.{key}: must be a non-empty string")
    return MappingProxyType({str(k).lower(): v for k, v in raw.items()})


def _deadlines(raw: Any) -> Mapping[int, int | None]:
    where = "deadlines_s"
    _grade_keys(where, raw)
    out: dict[int, int | None] = {}
    for key in _GRADES:
        value = raw[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{where}.{key}: must be whole seconds or null, got {value!r}")
        if value is not None and value <= 0:
            raise ConfigError(f"{where}.{key}: must be positive, got {value}")
        out[int(key)] = value
    return MappingProxyType(out)


def _grade_keys(where: str, raw: Any) -> None:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be an object, got {_kind(raw)}")
    unknown = sorted(set(raw) - set(_GRADES))
    if unknown:
        raise ConfigError(f"{where}: unknown key {_q(unknown[0])} (grades are 1, 2, 3, 4)")
    missing = [g for g in _GRADES if g not in raw]
    if missing:
        raise ConfigError(f"{where}: missing grade {_q(missing[0])}")


# --- compiling conditions ---------------------------------------------------------------


def _compile(rule: str, path: str, cond: Any) -> tuple[Test, Test]:
    """``(holds, fails)`` closures for a condition; ConfigError if it is not valid."""
    where = f"{rule}: {path}"
    if not isinstance(cond, Mapping):
        raise ConfigError(f"{where}: a condition is an object, got {_kind(cond)}")
    ops = [k for k in cond if k in CONDITION_KEYS]
    unknown = sorted(k for k in cond if k not in CONDITION_KEYS and k not in _extras(ops))
    if unknown:
        raise ConfigError(
            f"{where}: unknown condition key {_q(unknown[0])} "
            f"(expected one of: {_list(CONDITION_KEYS)})"
        )
    if len(ops) != 1:
        raise ConfigError(
            f"{where}: a condition has exactly one of {_list(CONDITION_KEYS)}, got "
            + (_list(ops) if ops else "none")
        )
    op = ops[0]
    arg = cond[op]
    if op in ("any", "all"):
        if not isinstance(arg, list):
            raise ConfigError(f"{where}.{op}: must be a list of conditions")
        parts = [_compile(rule, f"{path}.{op}[{i}]", c) for i, c in enumerate(arg)]
        holds = [p[0] for p in parts]
        fails = [p[1] for p in parts]
        return (_any(holds), _all(fails)) if op == "any" else (_all(holds), _any(fails))
    if op == "not":
        holds_, fails_ = _compile(rule, f"{path}.not", arg)
        return fails_, holds_
    if op == "flag":
        return _flag(where, arg)
    if op == "category":
        return _category(where, arg)
    if op == "level":
        return _level(where, cond)
    if arg is not True:
        raise ConfigError(f"{where}.always: must be true")
    return _yes, _no


def _extras(ops: Sequence[str]) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for op in ops:
        out |= CONDITION_KEYS[op]
    return out


def _yes(_: Incident) -> Factors:
    return ()


def _no(_: Incident) -> None:
    return None


def _any(tests: Sequence[Test]) -> Test:
    """Holds if one test holds; the factors are those of every test that holds."""
    tests = tuple(tests)

    def any_(incident: Incident) -> Factors | None:
        found: Factors | None = None
        for test in tests:
            factors = test(incident)
            if factors is not None:
                found = factors if found is None else found + factors
        return found

    return any_


def _all(tests: Sequence[Test]) -> Test:
    """Holds if every test holds; the factors are all of theirs."""
    tests = tuple(tests)

    def all_(incident: Incident) -> Factors | None:
        found: Factors = ()
        for test in tests:
            factors = test(incident)
            if factors is None:
                return None
            found += factors
        return found

    return all_


def _flag(where: str, name: Any) -> tuple[Test, Test]:
    if not isinstance(name, str) or name not in FLAGS:
        raise ConfigError(f"{where}.flag: unknown flag {name!r} (one of {_list(FLAGS)})")
    path, yes, no = FLAGS[name]
    get = attrgetter(path)
    yes_t, no_t = (yes,), (no,)

    def holds(incident: Incident) -> Factors | None:
        return yes_t if get(incident) else None

    def fails(incident: Incident) -> Factors | None:
        return None if get(incident) else no_t

    return holds, fails


def _category(where: str, names: Any) -> tuple[Test, Test]:
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise ConfigError(f"{where}.category: must be a non-empty list of category names")
    wanted = frozenset(n.strip().lower() for n in names)
    not_t = (f"category not {' or '.join(sorted(wanted))}",)

    def holds(incident: Incident) -> Factors | None:
        category = incident.category
        return (f"category {category}",) if category in wanted else None

    def fails(incident: Incident) -> Factors | None:
        return None if incident.category in wanted else not_t

    return holds, fails


def _level(where: str, cond: Mapping[str, Any]) -> tuple[Test, Test]:
    names = cond["level"]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{where}.level: must be a non-empty list of {_list(LEVEL_NAMES)}")
    for name in names:
        if name not in LEVEL_NAMES:
            raise ConfigError(
                f"{where}.level: unknown level {name!r} (one of {_list(LEVEL_NAMES)})"
            )
    if "at_least" not in cond and "at_most" not in cond:
        raise ConfigError(f'{where}: a level condition needs "at_least" or "at_most"')
    low = _rank(where, "at_least", cond.get("at_least", _LEVELS[0]))
    high = _rank(where, "at_most", cond.get("at_most", _LEVELS[-1]))
    if low > high:
        raise ConfigError(f"{where}: at_least {_LEVELS[low]} is above at_most {_LEVELS[high]}")
    of = cond.get("of", "all" if "at_least" not in cond else "any")
    if of not in ("any", "all"):
        raise ConfigError(f'{where}.of: must be "any" or "all", got {of!r}')
    unique = tuple(dict.fromkeys(names))
    subject = _and(unique)
    if low == high:
        inside, outside = f"is {_LEVELS[low]}", f"not {_LEVELS[low]}"
    elif high == _HIGHEST:
        inside, outside = f"at least {_LEVELS[low]}", f"below {_LEVELS[low]}"
    elif low == 0:
        inside, outside = f"at most {_LEVELS[high]}", f"above {_LEVELS[high]}"
    else:
        inside = f"between {_LEVELS[low]} and {_LEVELS[high]}"
        outside = f"outside {_LEVELS[low]}-{_LEVELS[high]}"
    plural = len(unique) > 1
    # Membership in a tuple of the enum members tests identity first, which is much
    # faster than hashing an Enum; this is the hot path of grade().
    in_range = tuple(Level(v) for v in _LEVELS[low : high + 1])
    values = _thrive_levels(unique)

    # "threat is high" etc., built once; looked up by comparison, not by hashing.
    phrases = tuple(
        tuple((level, f"{name} is {level.value}") for level in Level) for name in unique
    )

    def matching(incident: Incident, want: bool) -> Factors:
        found: list[str] = []
        for row, value in zip(phrases, values(incident), strict=True):
            if (value in in_range) is want:
                found.extend(text for level, text in row if level == value)
        return tuple(found)

    if of == "any":
        none_t = (f"{subject} {'all ' if plural else ''}{outside}",)

        def holds(incident: Incident) -> Factors | None:
            for value in values(incident):
                if value in in_range:
                    return matching(incident, True)
            return None

        def fails(incident: Incident) -> Factors | None:
            for value in values(incident):
                if value in in_range:
                    return None
            return none_t

    else:
        every_t = (f"{subject} {'all ' if plural else ''}{inside}",)

        def holds(incident: Incident) -> Factors | None:
            for value in values(incident):
                if value not in in_range:
                    return None
            # One level: say its value ("risk is low"); several: the range they share.
            return every_t if plural else matching(incident, True)

        def fails(incident: Incident) -> Factors | None:
            for value in values(incident):
                if value not in in_range:
                    return matching(incident, False)
            return None

    return holds, fails


def _thrive_levels(names: tuple[str, ...]) -> Callable[[Incident], tuple[Level, ...]]:
    """One C-level call that fetches the named THRIVE levels of an incident, as a tuple."""
    paths = [f"thrive.{name}" for name in names]
    if len(paths) > 1:
        many: Callable[[Incident], tuple[Level, ...]] = attrgetter(*paths)
        return many
    one = attrgetter(paths[0])

    def single(incident: Incident) -> tuple[Level, ...]:
        return (one(incident),)

    return single


def _rank(where: str, key: str, value: Any) -> int:
    if not isinstance(value, str) or value not in _RANK:
        raise ConfigError(f"{where}.{key}: unknown level {value!r} (one of {_list(_LEVELS)})")
    return _RANK[value]


# --- wording ----------------------------------------------------------------------------


def _q(value: str) -> str:
    return f'"{value}"'


def _list(values: Any) -> str:
    return ", ".join(sorted(str(v) for v in values))


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__
