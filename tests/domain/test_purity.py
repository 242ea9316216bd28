"""sdo.domain stays pure: no I/O framework, no environment, no clock, no randomness (STYLE 2, 3).

The check walks the source of every module under ``src/sdo/domain`` with :mod:`ast`, so it
sees imports inside functions and ``TYPE_CHECKING`` blocks too, and it never imports the
code it checks.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

import sdo.domain

DOMAIN: Final = Path(sdo.domain.__file__).resolve().parent

#: Top-level modules the pure core must not import.
FORBIDDEN_MODULES: Final = frozenset(
    {"faust", "aiokafka", "websockets", "asyncio", "os", "time", "random", "socket", "subprocess"}
)
#: (class name, method) calls that read the clock.
CLOCK_CALLS: Final = frozenset(
    {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
)


def violations(source: str, filename: str = "<string>") -> list[str]:
    """``"file:line: what"`` for every forbidden import or clock read in ``source``."""
    tree = ast.parse(source, filename=filename)
    found: list[str] = []
    # local name -> the datetime class it stands for ("datetime" or "date")
    clock_names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(
                f"{filename}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] in FORBIDDEN_MODULES
            )
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{filename}:{node.lineno}: from {module} import ...")
            if node.level == 0 and module == "datetime":
                for alias in node.names:
                    if alias.name in ("datetime", "date"):
                        clock_names[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        # datetime.now() after "from datetime import datetime [as x]",
        # or datetime.datetime.now() / dt.date.today() after "import datetime [as dt]"
        if isinstance(owner, ast.Name):
            cls = clock_names.get(owner.id)
        elif isinstance(owner, ast.Attribute):
            cls = owner.attr if owner.attr in ("datetime", "date") else None
        else:
            cls = None
        if cls is not None and (cls, node.func.attr) in CLOCK_CALLS:
            found.append(f"{filename}:{node.lineno}: reads the clock with {cls}.{node.func.attr}()")
    return found


def _modules() -> list[Path]:
    return sorted(DOMAIN.rglob("*.py"))


def test_domain_modules_found() -> None:
    """The walk sees the domain package (a typo in the path must not make the check vacuous)."""
    names = {p.name for p in _modules()}
    assert {"state.py", "fleet.py", "recommend.py", "world.py", "geo.py", "grading.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_domain_module_is_pure(path: Path) -> None:
    """No domain module imports an adapter, the OS, the clock or randomness, or reads the clock."""
    found = violations(
        path.read_text(encoding="utf-8"), str(path.relative_to(DOMAIN.parent.parent))
    )
    assert not found, "sdo.domain must stay pure:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio\n", ["<string>:1: import asyncio"]),
        ("x = 1\nimport os.path\n", ["<string>:2: import os.path"]),
        ("from faust import App\n", ["<string>:1: from faust import ..."]),
        ("def f():\n    import random\n", ["<string>:2: import random"]),
        (
            "from aiokafka.errors import KafkaError\n",
            ["<string>:1: from aiokafka.errors import ..."],
        ),
        (
            "from datetime import datetime\nx = datetime.now()\n",
            ["<string>:2: reads the clock with datetime.now()"],
        ),
        (
            "from datetime import datetime as dt\nx = dt.utcnow()\n",
            ["<string>:2: reads the clock with datetime.utcnow()"],
        ),
        (
            "import datetime\nx = datetime.date.today()\n",
            ["<string>:2: reads the clock with date.today()"],
        ),
        (
            "from datetime import date\nx = date.today()\n",
            ["<string>:2: reads the clock with date.today()"],
        ),
        # allowed: the standard library's pure parts, and datetimes built from data
        ("import math\nfrom datetime import datetime\nx = datetime.fromisoformat(s)\n", []),
        ("from sdo.events import Status\nimport numpy as np\n", []),
        ("from .time import x\n", []),  # a relative module that happens to be called time
    ],
)
def test_checker_flags_what_it_should(source: str, expected: list[str]) -> None:
    """The checker itself: it flags forbidden imports and clock reads, with line numbers."""
    assert violations(source) == expected
