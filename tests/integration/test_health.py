"""/healthz and /readyz of a real ``sdo worker`` and a real console, through a broker
outage: a broker of the test's own, frozen (SIGSTOP) and thawed.

Both become ready once they process; while the broker does not answer, both are live
(restarting them would not help) and not ready, each saying why; both are ready again
once it answers. A worker told to stop is not ready until it is gone.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from uuid import uuid4

import pytest

from sdo.broker import EmbeddedBroker
from sdo.config import Settings
from sdo.console.auth import Users, add_user
from sdo.console.server import Console

from .conftest import WorkerProcess
from .test_faults import start_worker_on
from .test_workers import metrics_url

pytestmark = pytest.mark.integration

#: A probe follows the broker within this: the worker's fetch silence limit (10 s) or
#: the console's probe timeout, plus their polling, with room for a loaded machine.
FOLLOW_TIMEOUT_S: Final = 60.0
#: One HTTP request to a local probe (the probe itself waits at most 5 s for its loop).
REQUEST_TIMEOUT_S: Final = 15.0
POLL_S: Final = 0.2


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


async def until(url: str, status: int, what: str) -> dict[str, Any]:
    """Poll ``url`` (from a thread: the console's loop is this one) until it answers
    ``status``; its body."""
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while True:
        got, body = await asyncio.to_thread(get, url)
        if got == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {url} still {got} after {FOLLOW_TIMEOUT_S:g} s: {body}")
        await asyncio.sleep(POLL_S)


async def test_worker_and_console_probes_follow_a_broker_outage(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"t{uuid4().hex[:8]}."
    users = tmp_path / "users.json"
    add_user(users, "sgt.probe", "sdo")
    started: list[WorkerProcess] = []
    try:
        worker = start_worker_on(own_broker, prefix, started, "--metrics-port", "127.0.0.1:0")
        worker_base = metrics_url(worker).removesuffix("/metrics")
        await until(worker_base + "/readyz", 200, "the worker, once it printed ready")
        settings = Settings(broker=own_broker.url, topic_prefix=prefix)
        async with Console(
            settings, Users(users), bind="127.0.0.1:0", metrics_port="127.0.0.1:0"
        ) as console:
            assert console.metrics_server is not None
            console_base = console.metrics_server.url.removesuffix("/metrics")
            await until(console_base + "/readyz", 200, "the console, once its feed is read")
            own_broker.pause()
            try:
                worker_says = await until(worker_base + "/readyz", 503, "the worker, broker frozen")
                console_says = await until(
                    console_base + "/readyz", 503, "the console, broker frozen"
                )
                for base in (worker_base, console_base):
                    status, body = await asyncio.to_thread(get, base + "/healthz")
                    assert (status, body["status"]) == (200, "ok"), (base, body)
                assert worker.proc.poll() is None
            finally:
                own_broker.resume()
            await until(worker_base + "/readyz", 200, "the worker, broker thawed")
            await until(console_base + "/readyz", 200, "the console, broker thawed")
        print(
            f"\nwhile frozen: worker {worker_says['problems']}, console {console_says['problems']}"
        )
        assert any("broker" in p or "group" in p for p in worker_says["problems"]), worker_says
        assert any("feed is down" in p for p in console_says["problems"]), console_says
    finally:
        for w in started:
            w.close()


async def test_a_stopping_worker_is_not_ready(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """After SIGTERM, until its probes' port closes, the worker answers 503 (stopping),
    never 200 once it has said so: a load balancer or a rollout sees it go."""
    worker = start_worker(None, "--metrics-port", "127.0.0.1:0")
    base = metrics_url(worker).removesuffix("/metrics")
    await until(base + "/readyz", 200, "the worker, once it printed ready")
    worker.proc.send_signal(signal.SIGTERM)
    answers: list[tuple[int, list[str]]] = []
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            status, body = await asyncio.to_thread(get, base + "/readyz")
        except (urllib.error.URLError, ConnectionError):
            break  # the port closed: the worker is gone
        answers.append((status, body["problems"]))
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"the worker did not stop within {FOLLOW_TIMEOUT_S:g} s")
    assert worker.proc.wait(FOLLOW_TIMEOUT_S) == 0
    first = next((k for k, (status, _) in enumerate(answers) if status != 200), None)
    assert first is not None, f"never unready while stopping: {answers[-5:]}"
    assert all(status == 503 for status, _ in answers[first:]), answers
    assert answers[first][1] in (["stopping"], ["its event loop has stopped"]), answers[first]


async def test_a_starting_worker_says_whether_it_joins_its_group_or_restores(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Before it is ready, the worker's /readyz says which it waits for: its consumer
    group (the embedded broker lets a member join after about half the session timeout),
    then its tables; it said "restoring its tables" all along, a user found, even with
    nothing to restore."""
    worker = start_worker(None, "--metrics-port", "127.0.0.1:0", wait=False)
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while not any("metrics at" in line for line in worker.output):
        assert time.monotonic() < deadline, "no metrics line:\n" + "".join(worker.output)
        await asyncio.sleep(0.02)
    base = metrics_url(worker).removesuffix("/metrics")
    said: list[str] = []
    while True:
        try:
            status, body = await asyncio.to_thread(get, base + "/readyz")
        except (urllib.error.URLError, ConnectionError):
            status, body = 0, {"problems": []}  # (its server not answering yet)
        if status == 200:
            break
        said += [p for p in body["problems"] if not said or said[-1] != p]
        assert time.monotonic() < deadline, f"not ready within {FOLLOW_TIMEOUT_S:g} s: {said}"
        await asyncio.sleep(0.02)
    joining = "joining its consumer group (then it restores its tables)"
    assert joining in said, said
    if "restoring its tables from their changelogs" in said:
        after = said[said.index("restoring its tables from their changelogs") :]
        assert joining not in after, said
    worker.wait_ready()
