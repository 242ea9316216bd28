"""tools/screenshots.py's command line (the pictures themselves are not taken by the tests:
the script starts ``sdo demo`` and a browser for minutes)."""

from __future__ import annotations

import runpy
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "screenshots.py"


@pytest.fixture(scope="module")
def screenshots_main() -> Callable[[list[str]], int]:
    main: Callable[[list[str]], int] = runpy.run_path(str(SCRIPT))["main"]
    return main


def test_help_names_the_pictures_and_the_options(
    screenshots_main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` exits 0 and lists where the pictures go and how to take one of them."""
    with pytest.raises(SystemExit) as exit_info:
        screenshots_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--out", "--only", "--chromium", "--speed", "--max-kib"):
        assert option in out
    assert "docs/images" in out and "{console,report}" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(["--only", "map"], "invalid choice: 'map'", id="unknown picture"),
        pytest.param(["--chromium", "/nonexistent/chromium"], "no Chromium at", id="no browser"),
        pytest.param(["--speed", "0"], "--speed must be positive", id="speed"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(
    screenshots_main: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    fragment: str,
) -> None:
    """A wrong argument stops the script before it starts anything: exit 2, the error on
    one line, nothing written."""
    out = tmp_path / "pictures"
    with pytest.raises(SystemExit) as exit_info:
        screenshots_main(["--out", str(out), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1]
    assert not out.exists()
