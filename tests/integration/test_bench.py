"""The broker benchmarks run: ``--quick`` of ingest, latency and memory exits 0 and prints
its JSON, each with its own embedded broker (see ``tests/test_bench.py``). Nothing is
timed against a limit; the correctness checks the scripts make themselves are asserted."""

from __future__ import annotations

import pytest

from tests.test_bench import run_bench

pytestmark = pytest.mark.integration


def test_ingest_quick_runs_and_every_latest_fix_is_in_the_table() -> None:
    result = run_bench("ingest.py", "--quick", timeout=600)
    assert result["sdo_worker"]["all_latest_fixes_in_table"] is True
    assert result["sdo_worker"]["events_per_s"] > 0
    assert result["naive_faust"]["events_per_s"] > 0


def test_latency_quick_runs_and_no_incident_goes_missing() -> None:
    result = run_bench("latency.py", "--quick", timeout=600)
    assert result["websocket"]["missing"] == 0 and result["kafka"]["missing"] == 0
    assert result["websocket"]["n"] == result["incidents"]


def test_memory_quick_runs_and_the_worker_holds_every_officer() -> None:
    result = run_bench("memory.py", "--quick", timeout=900)
    assert result["worker"] and all(row["all_latest_fixes_in_table"] for row in result["worker"])
    assert result["console"]["console_rss_mb_with_clients"] > 0
