"""The compiled decision core (sdo.compiled.COMPILED, built by scripts/setup with mypyc):
tests run what ships, it decides exactly as its source does, and a build older than its
source is never run."""

from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sdo
import sdo.compiled
from sdo.cli import main
from sdo.compiled import COMPILED, DEPENDS

PURE = os.environ.get("SDO_PURE") == "1"
SRC = Path(sdo.__file__).resolve().parent.parent

#: prints whether the core runs compiled, and from which files two of its modules came
PROBE = (
    "import sdo.compiled as c, sdo.domain.world as w, sdo.domain.state as s; "
    "print(c.in_use(), w.__file__.endswith('.py'), s.__file__.endswith('.py'))"
)


def test_the_decision_core_runs_compiled() -> None:
    """Every module of COMPILED is imported from its extension (unless SDO_PURE=1): so the
    tests check the build that `sdo` runs. Failing after an edit: run scripts/setup."""
    for name in COMPILED:
        module = importlib.import_module(f"sdo.domain.{name}")
        assert module.__file__ is not None
        assert module.__file__.endswith(".py") is PURE, module.__file__
    assert sdo.compiled.in_use() is not PURE


def _probe(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "SDO_PURE"}
    environ |= {"PYTHONPATH": str(root), **env}
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, check=True
    )


def test_a_source_edited_after_the_build_runs_from_source(tmp_path: Path) -> None:
    """A copy of the installed package (times kept): compiled as built; with a compiled
    module's source touched, or a module they import (events.py), every compiled module
    comes from source, with one warning naming the file; SDO_PURE=1 asks for the sources
    without a warning."""
    shutil.copytree(SRC / "sdo", tmp_path / "sdo", ignore=shutil.ignore_patterns("__pycache__"))
    for lib in SRC.glob("sdo_domain__mypyc*"):
        shutil.copy2(lib, tmp_path / lib.name)

    built = _probe(tmp_path)
    assert built.stdout.split() == ["True", "False", "False"], built.stderr
    assert built.stderr == ""

    asked = _probe(tmp_path, SDO_PURE="1")
    assert asked.stdout.split() == ["False", "True", "True"]
    assert asked.stderr == ""

    later = max(p.stat().st_mtime for p in (tmp_path / "sdo" / "domain").iterdir()) + 10
    for edited_file in ("sdo/domain/world.py", "sdo/events.py"):  # compiled, imported by them
        copy = tmp_path / "copy"
        shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("copy"))
        os.utime(copy / edited_file, (later, later))
        edited = _probe(copy)
        assert edited.stdout.split() == ["False", "True", "True"], edited_file
        assert f"{edited_file} changed since the decision core was compiled" in edited.stderr
        assert len(edited.stderr.splitlines()) == 1
        shutil.rmtree(copy)


def _sdo_imports(path: Path) -> set[str]:
    """The sdo modules a source file imports (as paths relative to the package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith("sdo.") and name != "sdo.compiled":
                out.add(name.removeprefix("sdo.").replace(".", "/") + ".py")
    return out


def test_the_build_is_checked_against_every_sdo_module_it_imports() -> None:
    """DEPENDS holds every sdo module the compiled ones import, and what those import, so
    an edit to any of them is noticed (a build may keep a constant it read)."""
    package = SRC / "sdo"
    todo = [f"domain/{name}.py" for name in COMPILED]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_sdo_imports(package / module))
    assert "events.py" in seen  # (the walk follows imports)
    assert seen - {f"domain/{name}.py" for name in COMPILED} == set(DEPENDS)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "four-hours.jsonl"
    args = ["simulate", "--seed", "3", "--hours", "4", "--officers", "90", "--out", str(path)]
    assert main(args) == 0
    return path


def test_compiled_and_source_decide_alike(log: Path, tmp_path: Path) -> None:
    """`sdo evaluate` (both policies) in this process and, from source, in another: the same
    recommendations and metrics, byte for byte."""
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["evaluate", str(log), "--out", str(here), "--jobs", "1"]) == 0
    environ = {**os.environ, "SDO_PURE": "1"}
    subprocess.run(
        [sys.executable, "-m", "sdo", "evaluate", str(log), "--out", str(there), "--jobs", "1"],
        env=environ,
        capture_output=True,
        check=True,
    )
    recs = (here / "recommendations.jsonl").read_bytes()
    assert recs.count(b"\n") > 50  # (enough decisions to differ in)
    assert recs == (there / "recommendations.jsonl").read_bytes()
    assert (here / "metrics.json").read_bytes() == (there / "metrics.json").read_bytes()
