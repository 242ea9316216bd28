"""``sdo grade``: grade incidents read as JSON lines on stdin (CONTRACT §5).

Also the one place a rules file becomes :class:`~sdo.domain.grading.Rules`
(:func:`load_rules`), used by every command that grades, and what one rules file changes
from another, in words (:func:`rules_changes`, for ``sdo evaluate``'s policy variants).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

import orjson

from sdo.config import DEFAULT_RULES, package_data
from sdo.domain.grading import Rules, grade
from sdo.domain.recommend import Policy
from sdo.errors import BadInput, ConfigError
from sdo.events import Incident, decode

__all__ = ["cli", "grade_lines", "load_rules", "rules_changes"]


def load_rules(path: Path) -> Rules:
    """Read, validate and compile a rules file.

    Raises :class:`ConfigError` ``"rules file PATH: ..."`` if the file is missing,
    unreadable, not JSON or not a valid rule set.
    """
    obj = _read(path)
    try:
        rules = Rules.from_mapping(obj)
        Policy.from_mapping("thrive", rules.recommend)  # its `recommend` settings, checked
    except ConfigError as exc:
        raise ConfigError(f"rules file {path}: {exc}") from None
    return rules


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"rules file {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"rules file {path}: cannot read: {exc.strerror or exc}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"rules file {path}: not valid JSON: {exc}") from None


#: A value longer than this (as compact JSON) is cut short in :func:`rules_changes`.
_SHOWN_MAX = 80


def rules_changes(base: Path, other: Path) -> list[str]:
    """What ``other`` changes from ``base``, a line each: ``"recommend.better_by_s: 60 →
    120"``, ``"rules.signpost.then.grade: 4 → 3"`` (a list of rules by their names, and
    their order), ``"rules.emergency.when.any[0].at_least: "high" → "medium"``,
    ``"services.noise: removed"``; empty if the files say the same. Both files are read as
    :func:`load_rules` reads them (same errors)."""
    out: list[str] = []
    _changes(_with_defaults(_read(base)), _with_defaults(_read(other)), "", out)
    return out


def _with_defaults(obj: Any) -> Any:
    """The rules with every ``recommend`` setting, the defaults of those not given (a file
    that sets ``better_by_s`` to 120 changes it from 60, not from nothing)."""
    # (here, not at the top: the recommender loads numba, which `sdo grade` does not need)
    from sdo.domain.recommend import Policy  # noqa: PLC0415

    if not isinstance(obj, dict) or not isinstance(obj.get("recommend", {}), dict):
        return obj
    policy = Policy()
    defaults = orjson.loads(
        orjson.dumps(
            {f.name: getattr(policy, f.name) for f in fields(Policy) if f.init},
            option=orjson.OPT_NON_STR_KEYS,
        )
    )
    del defaults["name"], defaults["label"]
    given = obj.get("recommend", {})
    merged = {
        key: {**value, **given[key]}
        if isinstance(value, dict) and isinstance(given.get(key), dict)
        else given.get(key, value)
        for key, value in defaults.items()
    }
    merged.update((k, v) for k, v in given.items() if k not in merged)
    return {**obj, "recommend": merged}


def _changes(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            _changes(a.get(key, _NONE), b.get(key, _NONE), f"{where}.{key}" if where else key, out)
    elif _named(a) and _named(b):
        # the first rule that matches decides: their order is part of what they say
        kept = [r["name"] for r in a if any(r["name"] == q["name"] for q in b)]
        order = [r["name"] for r in b if r["name"] in kept]
        if kept != order:
            out.append(f"{where} in the order: {', '.join(kept)} → {', '.join(order)}")
        _changes({r["name"]: r for r in a}, {r["name"]: r for r in b}, where, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _changes(x, y, f"{where}[{n}]", out)
    elif b is _NONE:
        out.append(f"{where}: removed")
    elif a is _NONE:
        out.append(f"{where}: added, {_shown(b)}")
    elif a != b:
        out.append(f"{where}: {_shown(a)} → {_shown(b)}")


def _named(value: Any) -> bool:
    """A list of objects each with a name of its own (the grading rules)."""
    if not isinstance(value, list) or not value:
        return False
    names = [v.get("name") for v in value if isinstance(v, dict)]
    return len(names) == len(value) and None not in names and len(set(names)) == len(names)


_NONE: Any = object()


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # (60.0 and 60 are one setting)
    text = orjson.dumps(value).decode()
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 1] + "…"


def grade_lines(lines: TextIO, out: TextIO, rules: Rules) -> int:
    """Grade every incident line of ``lines``, writing one JSON line each to ``out``.

    A graded line prints ``{"incident_id", "grade", "response", "reasons"}`` (plus
    ``"service"`` for ``signpost``); a bad line prints ``{"line": N, "error": "..."}``
    (``N`` counts from 1, blank lines included) and grading goes on. Blank lines are
    skipped. Returns the number of bad lines.
    """
    bad = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record: dict[str, Any]
        try:
            incident: Incident = decode(line, expect="incident")
        except BadInput as exc:
            bad += 1
            record = {"line": number, "error": str(exc)}
        else:
            result = grade(incident, rules)
            record = {
                "incident_id": incident.incident_id,
                "grade": result.grade,
                "response": result.response.value,
                "reasons": result.reasons,
            }
            if result.service is not None:
                record["service"] = result.service
        out.write(orjson.dumps(record).decode())
        out.write("\n")
    out.flush()
    return bad


def cli(args: argparse.Namespace) -> int:
    """Run ``sdo grade``.

    Rules come from ``--rules`` (or ``SDO_RULES``), else the packaged default. Exit code:
    0 if every non-blank line was an incident and was graded, 1 if any line was bad (it
    is reported on stdout in its place, the rest still graded); a missing or invalid
    rules file raises :class:`ConfigError` (the CLI prints one line and exits 2).
    """
    path: Path | None = args.rules
    rules = load_rules(path if path is not None else package_data(DEFAULT_RULES))
    return 1 if grade_lines(sys.stdin, sys.stdout, rules) else 0
