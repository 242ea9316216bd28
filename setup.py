"""Build hook: compile sdo's decision core with mypyc when ``SDO_COMPILE=1``.

Everything else about the package is in pyproject.toml. Without ``SDO_COMPILE`` the
package is pure Python (what ``pip install .`` gives anywhere). ``scripts/setup``
compiles, in place, once the dependencies are installed (the compiler type-checks these
modules against them, so it runs without build isolation)::

    SDO_COMPILE=1 pip install --no-build-isolation --no-deps -e .

The modules compiled are listed in ``sdo.compiled.COMPILED``; see its docstring for how a
stale build is noticed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def _compiled() -> list[str]:
    # (read, not imported: the build environment may not hold sdo's dependencies)
    text = (HERE / "src/sdo/compiled.py").read_text()
    match = re.search(r"COMPILED(?:: [^=]+)? = \(([^)]*)\)", text)
    assert match is not None, "sdo.compiled.COMPILED not found"
    return re.findall(r'"(\w+)"', match.group(1))


if os.environ.get("SDO_COMPILE") == "1":
    from mypyc.build import mypycify

    paths = [f"src/sdo/domain/{name}.py" for name in _compiled()]
    setup(ext_modules=mypycify(paths, opt_level="3", group_name="sdo_domain"))
else:
    setup()
