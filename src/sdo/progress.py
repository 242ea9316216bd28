"""What the long commands (``sdo replay``, ``sdo evaluate``) say while they work.

A progress line is refreshed in place on a terminal; without one (a pipe, a CI log) it is
printed as a plain line now and then, so a log file is not flooded. Invalid input lines
are reported one by one up to a limit, then only counted.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import IO, Final

__all__ = [
    "MAX_REPORTED",
    "PLAIN_PROGRESS_EVERY_S",
    "REFRESH_S",
    "LineReporter",
    "ProgressLine",
    "duration",
    "eta_text",
]

#: Least time between two refreshes of a progress line (twice a second).
REFRESH_S: Final = 0.5
#: Without a terminal, a plain progress line this often.
PLAIN_PROGRESS_EVERY_S: Final = 10.0
#: Invalid lines reported one by one; beyond this they are only counted.
MAX_REPORTED: Final = 20


class ProgressLine:
    """One refreshed line on a terminal; otherwise a plain line now and then."""

    def __init__(self, stream: IO[str], plain_every_s: float = PLAIN_PROGRESS_EVERY_S) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.plain_every_s = plain_every_s
        self.shown = False
        self.last_plain = time.monotonic()
        self.refreshed = -math.inf

    def due(self) -> bool:
        """Whether the progress is due to be shown again (at most every
        :data:`REFRESH_S`): a caller asks before it puts the text together. Once true, not
        again until then."""
        now = time.monotonic()
        if now - self.refreshed < REFRESH_S:
            return False
        self.refreshed = now
        return True

    def show(self, text: str) -> None:
        """The current progress (replaces the last on a terminal)."""
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self.shown = True
        elif time.monotonic() - self.last_plain >= self.plain_every_s:
            self.last_plain = time.monotonic()
            self.stream.write(text + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line that stays (a pass has ended, a line was skipped)."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class LineReporter:
    """Reports invalid lines of ``path`` on stderr, the first :data:`MAX_REPORTED` one by
    one (``command: path:line: skipped: reason``), then that more were counted."""

    def __init__(
        self,
        command: str,
        path: Path,
        line: ProgressLine | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.command = command
        self.path = path
        self.count = 0
        self.line = line
        self.stream = stream

    def __call__(self, lineno: int, reason: str) -> None:
        self.count += 1
        if self.count > MAX_REPORTED + 1:
            return
        if self.count <= MAX_REPORTED:
            text = f"{self.command}: {self.path}:{lineno}: skipped: {reason}"
        else:
            text = f"{self.command}: more invalid lines; counted, not shown"
        if self.line is not None:
            self.line.say(text)
        else:
            stream = self.stream or sys.stderr
            stream.write(text + "\n")
            stream.flush()


def eta_text(seconds: float, fraction: float | None) -> str:
    """``", ETA m:ss"`` for work ``fraction`` done in ``seconds``, at the same pace; empty
    before there is anything to go on, and once it is done."""
    if not fraction or not 0 < fraction < 1 or seconds <= 0:
        return ""
    return f", ETA {duration(seconds * (1 - fraction) / fraction)}"


def duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour."""
    s = round(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )
