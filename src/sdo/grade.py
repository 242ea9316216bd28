"""``sdo grade``: grade incidents read as JSON lines on stdin (CONTRACT §5).

Also the one place a rules file becomes :class:`~sdo.domain.grading.Rules`
(:func:`load_rules`), used by every command that grades.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import orjson

from sdo.config import DEFAULT_RULES, package_data
from sdo.domain.grading import Rules, grade
from sdo.errors import BadInput, ConfigError
from sdo.events import Incident, decode

__all__ = ["cli", "grade_lines", "load_rules"]


def load_rules(path: Path) -> Rules:
    """Read, validate and compile a rules file.

    Raises :class:`ConfigError` ``"rules file PATH: ..."`` if the file is missing,
    unreadable, not JSON or not a valid rule set.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"rules file {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"rules file {path}: cannot read: {exc.strerror or exc}") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"rules file {path}: not valid JSON: {exc}") from None
    try:
        return Rules.from_mapping(obj)
    except ConfigError as exc:
        raise ConfigError(f"rules file {path}: {exc}") from None


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
