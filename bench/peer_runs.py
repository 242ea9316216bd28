"""The stream-processing peers of ``bench/ingest.py``: Quix Streams and bytewax.

Each peer is a script under ``bench/peers/`` run as its own process, in its own virtual
environment the benchmark makes on first use (``bench/.peers-venv/<peer>/``, git-ignored;
``python -m venv`` and ``pip install`` of the pinned versions below), so the product never
depends on them. A peer whose environment cannot be made is reported as
``{"skipped": "<reason>"}``, never with a figure.

Both do the same work as the naive Faust agent and the worker: decode each JSON event and
keep the latest profile, status and fix per officer in the framework's own durable state.
Each times itself (``bench/peers/span.py``): from its first applied event to the moment its
state is durable, with its process's CPU over that span. Correctness is checked from that
durable state, as the worker's is from its changelog: every officer's latest fix is the last
one produced, and its profile and status are there.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import ROOT, Stack, log

VENV_ROOT = ROOT / "bench" / ".peers-venv"
PEERS_DIR = ROOT / "bench" / "peers"
#: Pinned; one confluent-kafka for both (Quix 3.28 wants < 2.13).
REQUIREMENTS: dict[str, list[str]] = {
    "quix": [
        "quixstreams==3.28.1",
        "confluent-kafka==2.12.2",
        "rocksdict==0.3.29",
        "orjson==3.13.0",
    ],
    "bytewax": ["bytewax[kafka]==0.21.1", "confluent-kafka==2.12.2", "orjson==3.13.0"],
}
IMPORTS = {"quix": "quixstreams", "bytewax": "bytewax.connectors.kafka"}
PIP_TIMEOUT_S = 900.0
MARKER = "bench-requirements.txt"


def ensure_venv(
    peer: str, *, root: Path = VENV_ROOT, base_python: str = sys.executable
) -> tuple[Path | None, str | None]:
    """The peer's Python, making its venv under ``root`` with ``base_python -m venv`` if
    needed (or if its pinned requirements changed); or ``(None, why not)``, one line."""
    venv = root / peer
    python = venv / "bin" / "python"
    marker = venv / MARKER
    wanted = "\n".join(REQUIREMENTS[peer]) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python, None
    log(f"making the {peer} peer's venv at {venv} (once) ...")
    logfile = root / f"{peer}-install.log"
    root.mkdir(parents=True, exist_ok=True)
    steps = [
        ("python -m venv", [base_python, "-m", "venv", "--clear", str(venv)]),
        ("pip install", [str(python), "-m", "pip", "install", "-q",
                         "--disable-pip-version-check", *REQUIREMENTS[peer]]),
        (f"import {IMPORTS[peer]}", [str(python), "-c", f"import {IMPORTS[peer]}"]),
    ]  # fmt: skip
    with logfile.open("w") as out:
        for what, argv in steps:
            try:
                done = subprocess.run(
                    argv, stdout=out, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_S, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"cannot make the {peer} venv: {what} failed: {exc}"
            if done.returncode != 0:
                out.flush()
                tail = [ln for ln in logfile.read_text().splitlines() if ln.strip()][-1:]
                why = tail[0].strip() if tail else ""
                return None, (
                    f"cannot make the {peer} venv: {what} exited {done.returncode}: {why} "
                    f"(see {logfile})"
                )
    marker.write_text(wanted)
    return python, None


def check_state(held: dict[str, dict[str, str]], last_fix: dict[str, str]) -> dict[str, Any]:
    """``held``: officer -> event type -> event id of the latest event the peer keeps."""
    fixes = sum(held.get(o, {}).get("officer.location") == f for o, f in last_fix.items())
    rest = sum(
        held.get(o, {}).get("officer.profile") == f"{o}-p"
        and held.get(o, {}).get("officer.status") == f"{o}-s"
        for o in last_fix
    )
    return {
        "all_latest_fixes_in_state": fixes == len(last_fix) and len(held) == len(last_fix),
        "officers_in_state": len(held),
        "officers_at_last_fix": fixes,
        "officers_with_profile_and_status": rest,
    }


def _figures(res: dict[str, Any]) -> dict[str, Any]:
    secs, timed = res["seconds"], res["timed_events"]
    return {
        "seconds": secs,
        "events_per_s": round(timed / secs, 1) if secs > 0 else None,
        "applied_s": res["applied_s"],
        "cpu_s": round(res["cpu_s"], 2),
        "cpu_us_per_event": round(res["cpu_s"] / res["events"] * 1e6, 1),
        "rss_mb": res["rss_mb"],
    }


async def _wait_report(proc: common.Proc, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    line = await asyncio.to_thread(proc.wait_for_line, "PEER ", timeout)
    res: dict[str, Any] = orjson.loads(line.split("PEER ", 1)[1])
    return res


async def run_quix(
    stack: Stack, topics: list[str], expect: int, last_fix: dict[str, str], bound_s: float
) -> dict[str, Any]:
    """Quix Streams (``bench/peers/quix_app.py``); the state checked from its changelogs."""
    python, why = await asyncio.to_thread(ensure_venv, "quix")
    if python is None:
        return {"skipped": why}
    group = f"bench-quix-{uuid.uuid4().hex[:6]}"
    state_dir = stack.tmp / group
    proc = stack.spawn(
        "quix peer",
        [str(python), str(PEERS_DIR / "quix_app.py"), "--bootstrap", stack.broker.bootstrap,
         "--group", group, "--state-dir", str(state_dir), "--expect", str(expect), *topics],
    )  # fmt: skip
    res = await _wait_report(proc, bound_s)
    stack.stop(proc)
    held: dict[str, dict[str, str]] = {}

    def on_records(records: list[Any]) -> None:
        for r in records:
            # key: <message key>|<state key as JSON>; value: the event as JSON (None: deleted)
            officer, _, name = r.key.partition(b"|")
            if r.value is not None:
                event_id = orjson.loads(r.value)["event_id"]
                held.setdefault(officer.decode(), {})[orjson.loads(name)] = event_id

    records = await common.read_to_end(stack.broker.bootstrap, res["changelogs"], on_records)
    return {
        **_figures(res),
        "state": "RocksDB + Kafka changelog",
        **check_state(held, last_fix),
        "changelog_records": records,
    }


async def run_bytewax(
    stack: Stack, topics: list[str], expect: int, last_fix: dict[str, str], bound_s: float
) -> dict[str, Any]:
    """bytewax (``bench/peers/bytewax_app.py``); the state checked from its SQLite recovery
    store, which the peer reads back after its run into a JSON file."""
    python, why = await asyncio.to_thread(ensure_venv, "bytewax")
    if python is None:
        return {"skipped": why}
    work = stack.tmp / f"bench-bytewax-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    state_out = work / "state.json"
    proc = stack.spawn(
        "bytewax peer",
        [str(python), str(PEERS_DIR / "bytewax_app.py"), "--bootstrap", stack.broker.bootstrap,
         "--expect", str(expect), "--work-dir", str(work), "--state-out", str(state_out),
         *topics],
    )  # fmt: skip
    res = await _wait_report(proc, bound_s)
    await asyncio.to_thread(proc.wait_for_line, "bytewax state written", bound_s)
    stack.stop(proc)
    held = orjson.loads(state_out.read_bytes())
    return {**_figures(res), "state": f"stateful_batch, recovery: {res['recovery']}",
            **check_state(held, last_fix)}  # fmt: skip
