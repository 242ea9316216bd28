"""sdo.progress: the refreshed progress line and the report of invalid lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sdo.progress import (
    MAX_REPORTED,
    REFRESH_S,
    LineReporter,
    ProgressLine,
    duration,
    eta_text,
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_refreshed_in_place_and_cleared() -> None:
    out = _Terminal()
    line = ProgressLine(out)
    line.show("a 10%")
    line.show("a 20%")
    line.say("a: done")
    line.clear()  # nothing shown: writes nothing
    assert out.getvalue() == "\r\x1b[Ka 10%\r\x1b[Ka 20%\r\x1b[Ka: done\n"


def test_without_a_terminal_a_plain_line_now_and_then(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe gets no control characters, and a line only every plain_every_s."""
    clock = [100.0]
    monkeypatch.setattr("sdo.progress.time.monotonic", lambda: clock[0])
    out = io.StringIO()
    line = ProgressLine(out, plain_every_s=10.0)
    line.show("too soon")
    clock[0] += 10.0
    line.show("a 50%")
    line.show("too soon again")
    line.say("a: done")
    assert out.getvalue() == "a 50%\na: done\n"


def test_a_refresh_is_due_at_once_then_every_refresh_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callers ask ``due()`` before they put a progress text together: true at first, then
    not again until REFRESH_S has passed."""
    clock = [100.0]
    monkeypatch.setattr("sdo.progress.time.monotonic", lambda: clock[0])
    line = ProgressLine(io.StringIO())
    assert line.due()
    assert not line.due()
    clock[0] = 100.0 + REFRESH_S * 0.9
    assert not line.due()
    clock[0] = 100.0 + REFRESH_S
    assert line.due()


def test_invalid_lines_beyond_the_limit_are_only_counted() -> None:
    out = io.StringIO()
    report = LineReporter("sdo x", Path("log.jsonl"), stream=out)
    for n in range(1, MAX_REPORTED + 10):
        report(n, "bad")
    lines = out.getvalue().splitlines()
    assert lines[0] == "sdo x: log.jsonl:1: skipped: bad"
    assert len(lines) == MAX_REPORTED + 1
    assert lines[-1] == "sdo x: more invalid lines; counted, not shown"
    assert report.count == MAX_REPORTED + 9


def test_a_reported_line_clears_the_progress_line_first() -> None:
    out = _Terminal()
    line = ProgressLine(out)
    line.show("a 10%")
    LineReporter("sdo x", Path("log"), line)(7, "bad")
    assert out.getvalue() == "\r\x1b[Ka 10%\r\x1b[Ksdo x: log:7: skipped: bad\n"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (59.6, "1:00"), (754, "12:34"), (3600, "1:00:00")]
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "fraction", "text"),
    [(30, 0.25, ", ETA 1:30"), (30, None, ""), (30, 0.0, ""), (30, 1.0, ""), (0, 0.5, "")],
)
def test_eta_text(seconds: float, fraction: float | None, text: str) -> None:
    """At the pace so far; nothing before there is anything to go on, or once done."""
    assert eta_text(seconds, fraction) == text
