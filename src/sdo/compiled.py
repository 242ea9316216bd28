"""Which build of the decision core runs: compiled with mypyc, or from source.

``scripts/setup`` compiles the modules in :data:`COMPILED` with mypyc (see setup.py): the
same source, as C extensions, which take 10–15% off an evaluation pass. Python
imports an extension in preference to its source, so a build older than its source
would run old code. So before any of them is imported (``sdo`` imports this module
first), if the source of a compiled module, or of a module they import (:data:`DEPENDS`:
a build may have taken constants from it), is newer than the extensions (edited since
the build), all of them are imported from source instead, with a warning;
``scripts/setup`` compiles them again. All of them, not only the edited one: compiled
modules share their native classes, and compiled and source modules would not fit
together. ``SDO_PURE=1`` imports them from source on purpose (for a profiler that reads
Python frames, for instance).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

__all__ = ["COMPILED", "DEPENDS", "in_use"]

#: Modules of sdo.domain that ``scripts/setup`` compiles (setup.py reads this tuple).
COMPILED: Final = (
    "state",
    "fleet",
    "grading",
    "recommend",
    "contest",
    "alarms",
    "waiting",
    "world",
    "lane",
)

#: The other sdo modules they import (tests/test_compiled.py checks that this is all).
DEPENDS: Final = (
    "domain/geo.py",
    "domain/lane_kernels.py",
    "domain/scans.py",
    "events.py",
    "errors.py",
)

_SDO: Final = Path(__file__).resolve().parent
_DOMAIN: Final = _SDO / "domain"


class _FromSource(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' sources, ahead of their extensions."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def _extension(name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = _DOMAIN / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def _choose() -> bool:
    """Import the compiled modules from their extensions (True) or from source."""
    built = {name: _extension(name) for name in COMPILED}
    if not all(built.values()):
        return False  # a pure install: there is nothing to choose
    oldest = min(ext.stat().st_mtime for ext in built.values() if ext is not None)
    sources = [_DOMAIN / f"{name}.py" for name in COMPILED] + [_SDO / d for d in DEPENDS]
    stale = [path for path in sources if path.stat().st_mtime > oldest]
    if stale:
        logging.getLogger("sdo").warning(
            "sdo: %s changed since the decision core was compiled; it runs from source "
            "(scripts/setup compiles it again)",
            stale[0].relative_to(_SDO.parent).as_posix(),
        )
    if stale or os.environ.get("SDO_PURE") == "1":
        by_name = {f"sdo.domain.{name}": _DOMAIN / f"{name}.py" for name in COMPILED}
        sys.meta_path.insert(0, _FromSource(by_name))
        return False
    return True


_IN_USE: Final = _choose()


def in_use() -> bool:
    """Whether the modules in :data:`COMPILED` run compiled in this process."""
    return _IN_USE
