"""The benchmarks run: each script's small form exits 0 and prints its JSON (issues 3, 5, 6).

Nothing here times anything (speed is the benchmarks' business, on a quiet machine): these
only keep the scripts working as the code under them changes. `bench/recommend.py` once
failed on the compiled World (it stored an attribute on it) and nothing noticed. The
scripts that start a broker are in ``tests/integration/test_bench.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, timeout: float = 300.0) -> dict[str, Any]:
    """Run ``bench/SCRIPT ARGS`` as the README says; its stdout, one JSON document."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def test_recommend_bench_runs() -> None:
    result = run_bench("recommend.py", "--sizes", "300,1000", "--incidents", "20")
    assert [row["officers"] for row in result["results"]] == [300, 1000]
    assert all(row["p50_ms"] > 0 for row in result["results"])
    assert "met" in result["target"]


def test_evaluate_and_freshness_benches_run(tmp_path: Path) -> None:
    small = ("--days", "0.02", "--officers", "200", "--dir", str(tmp_path))
    result = run_bench("evaluate.py", *small)
    assert set(result["policies"]) == {"thrive", "closest"}
    for figures in result["policies"].values():
        assert figures["events_per_s"] > 0 and figures["incidents"] > 0
    closed = run_bench("evaluate.py", *small, "--closed-loop")
    assert closed["closed_loop"] is True
    assert closed["target_events_per_s"] == {"thrive": 100_000, "closest": 100_000}
    assert set(closed["policies"]) == {"thrive", "closest"}
    # the same cached log, recomputed from scratch every 200 events
    fresh = run_bench("freshness.py", *small, "--events", "5000", "--every", "200")
    assert fresh["events"] == 5000
    assert {"checks", "missed", "unavailable", "short_but_free"} <= set(fresh)
