"""What a peer of ``bench/ingest.py`` measures about itself, and the line it reports.

A peer runs in its own virtual environment (``bench/peer_runs.py``), so it shares no code
with the benchmark but this file. Timed like the naive Faust agent: from the first event it
applies (or decodes, see :meth:`Span.start`) to the moment its state is durable, the events
of a first call to :meth:`Span.apply` that started the clock left out of the count. CPU is
``time.process_time()``: every thread of the process (librdkafka's included), the same
count as ``/proc/PID/stat``, at a finer grain.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class Span:
    """Counts applied events; knows when the last of ``expect`` came."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.applied = 0
        self.first_call = 0
        self.t0 = 0.0
        self.cpu0 = 0.0
        self.t_last = 0.0

    def start(self) -> None:
        """Start the clock now, if not started (for a peer whose first step before the state
        sees every record first: bytewax's decode step; its events all count)."""
        if not self.t0:
            self.t0 = time.monotonic()
            self.cpu0 = time.process_time()

    def apply(self, n: int = 1) -> bool:
        """``n`` more events applied; True once all ``expect`` are."""
        if not self.t0:
            self.start()
            self.first_call = n
        self.applied += n
        if self.applied >= self.expect:
            if not self.t_last:
                self.t_last = time.monotonic()
            return True
        return False

    def report(self, **extra: Any) -> None:
        """Print ``PEER {json}`` (call it once the state is durable)."""
        now = time.monotonic()
        cpu = time.process_time() - self.cpu0
        timed = self.applied - self.first_call
        out = {
            "events": self.applied,
            "timed_events": timed,
            "seconds": round(now - self.t0, 3),
            "applied_s": round(self.t_last - self.t0, 3) if self.t_last else None,
            "cpu_s": round(cpu, 3),
            "rss_mb": rss_mb(),
            **extra,
        }
        print("PEER " + json.dumps(out), flush=True)


def rss_mb() -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None
