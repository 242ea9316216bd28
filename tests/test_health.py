"""``sdo.health``: the liveness and readiness probes, and their HTTP endpoints.

A real asyncio loop runs in a thread of its own, as the worker's and the console's do,
and the probes are asked from the test's thread, as the HTTP server's thread asks them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sdo.config import Settings
from sdo.console.auth import Users, add_user
from sdo.console.server import Console
from sdo.health import LoopProbes, probe_response
from sdo.metrics import WorkerMetrics, new_registry, serve_metrics

#: A loop-thread start or a local HTTP request completes well within this.
START_TIMEOUT_S = 5.0
#: How long the probes wait for the loop in these tests (short: one test blocks it).
ANSWER_S = 0.5


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, stopped and closed at the end."""
    running = asyncio.new_event_loop()
    started = threading.Event()
    running.call_soon(started.set)  # the loop's first callback: it runs
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    assert started.wait(START_TIMEOUT_S), "the loop did not start"
    try:
        yield running
    finally:
        running.call_soon_threadsafe(running.stop)
        thread.join(START_TIMEOUT_S)
        running.close()


def get(url: str) -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, content type) of a GET, 503 included."""
    try:
        with urllib.request.urlopen(url, timeout=START_TIMEOUT_S) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read()), exc.headers["Content-Type"]


def test_ready_runs_the_check_on_the_loop_and_says_its_problems(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The check runs on the loop's thread; its problems make /readyz 503, not /healthz."""
    seen: list[int] = []
    problems: list[str] = []

    def check() -> list[str]:
        seen.append(threading.get_ident())
        return list(problems)

    probes = LoopProbes(check, loop, answer_s=ANSWER_S)
    status, body = probes.ready()
    assert (status, body["status"], body["problems"]) == (200, "ok", [])
    assert body["loop_answer_s"] is not None
    assert body["loop_answer_s"] >= 0
    problems.append("its consumer group is rebalancing")
    status, body = probes.ready()
    assert (status, body["status"]) == (503, "unavailable")
    assert body["problems"] == ["its consumer group is rebalancing"]
    assert probes.live()[0] == 200  # liveness does not run the check
    assert len(seen) == 2
    assert threading.get_ident() not in seen
    assert all(ident == seen[0] for ident in seen)


def test_a_blocked_loop_is_not_live(loop: asyncio.AbstractEventLoop) -> None:
    """A loop stuck in a blocking call fails both probes, and says for how long it waited."""
    probes = LoopProbes(list, loop, answer_s=ANSWER_S)
    assert probes.live()[0] == 200
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait, ANSWER_S * 10)  # blocks the loop
    try:
        for probe in (probes.live, probes.ready):
            status, body = probe()
            assert status == 503
            assert body["problems"] == [f"its event loop did not answer within {ANSWER_S:g} s"]
    finally:
        release.set()
    assert probes.live()[0] == 200  # and live again once it runs


def test_a_check_that_fails_makes_the_probe_say_so(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a check is logged with its traceback; the probe still answers, 503."""

    def broken() -> list[str]:
        raise KeyError("assignment")

    status, body = LoopProbes(broken, loop, answer_s=ANSWER_S).ready()
    assert (status, body["problems"]) == (
        503,
        ["the readiness check failed: KeyError('assignment')"],
    )
    assert any(r.exc_info and "readiness check failed" in r.message for r in caplog.records)


def test_before_the_loop_runs_the_process_is_starting() -> None:
    """No loop yet, or one not running yet: alive (starting), not ready."""
    for probes in (LoopProbes(list), LoopProbes(list, asyncio.new_event_loop())):
        assert probes.live() == (
            200,
            {"status": "starting", "problems": ["starting"], "loop_answer_s": None},
        )
        assert probes.ready()[0] == 503
        if probes.loop is not None:
            probes.loop.close()


def test_a_closed_loop_is_not_live() -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    status, body = LoopProbes(list, closed).live()
    assert (status, body["problems"]) == (503, ["its event loop has stopped"])


@pytest.mark.parametrize(
    ("path", "which"),
    [
        ("/healthz", "live"),
        ("/healthz/", "live"),
        ("/readyz", "ready"),
        ("/metrics", None),
        ("/", None),
    ],
)
def test_probe_paths(path: str, which: str | None) -> None:
    class Probes(LoopProbes):
        def live(self) -> tuple[int, dict[str, Any]]:
            return 200, {"which": "live"}

        def ready(self) -> tuple[int, dict[str, Any]]:
            return 503, {"which": "ready"}

    answer = probe_response(Probes(list), path)
    assert (answer[1]["which"] if answer else None) == which


def test_endpoint_serves_the_probes_beside_the_metrics(loop: asyncio.AbstractEventLoop) -> None:
    """/healthz and /readyz answer JSON with 200 or 503; /metrics is still the registry."""
    problems: list[str] = []
    reg = new_registry(process=False)
    WorkerMetrics(reg).processed("incident")
    probes = LoopProbes(lambda: list(problems), loop, answer_s=ANSWER_S)
    with serve_metrics(reg, 0, probes) as server:
        base = server.url.removesuffix("/metrics")
        status, body, _ = get(base + "/healthz")
        assert (status, body["status"], body["problems"]) == (200, "ok", [])
        status, body, kind = get(base + "/readyz")
        assert (status, body["status"], kind) == (200, "ok", "application/json")
        problems.append("restoring its tables from their changelogs")
        status, body, _ = get(base + "/readyz")
        assert (status, body["problems"]) == (503, ["restoring its tables from their changelogs"])
        assert get(base + "/healthz")[0] == 200
        with urllib.request.urlopen(server.url, timeout=START_TIMEOUT_S) as response:
            assert 'sdo_events_processed_total{type="incident"} 1.0' in response.read().decode()


def console_states() -> list[tuple[Callable[[Console], None], list[str]]]:
    def set_state(
        state: str, *, caught_up: bool, detail: str | None = None
    ) -> Callable[[Console], None]:
        def apply(console: Console) -> None:
            console.health.state, console.health.caught_up = state, caught_up
            console.health.detail = detail

        return apply

    return [
        (
            set_state("connecting", caught_up=False),
            ["its Kafka feed is connecting, not read to the end yet"],
        ),
        (
            set_state("catching_up", caught_up=False),
            ["its Kafka feed is catching up, not read to the end yet"],
        ),
        (set_state("live", caught_up=True), []),
        (set_state("lagging", caught_up=True), []),
        (set_state("quiet", caught_up=True), []),
        (
            set_state("down", caught_up=True, detail="Kafka at 127.0.0.1:1 is not answering"),
            ["its Kafka feed is down (Kafka at 127.0.0.1:1 is not answering)"],
        ),
    ]


@pytest.mark.parametrize(("apply", "expected"), console_states())
def test_console_is_ready_once_its_feed_is_read_and_while_it_is_not_down(
    apply: Callable[[Console], None], expected: list[str], tmp_path: Path
) -> None:
    """A lagging or quiet feed is shown on the page: the console stays ready."""
    users = tmp_path / "users.json"
    add_user(users, "sgt.probe", "sdo")
    console = Console(Settings(broker="kafka://127.0.0.1:1"), Users(users))
    apply(console)
    assert console.problems() == expected
