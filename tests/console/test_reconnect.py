"""SIGKILL the console: the page in a real browser shows it lost the feed, reconnects by
itself (with back-off) when the console is back, and gets a fresh snapshot (issue 7)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, expect

from sdo.broker import EmbeddedBroker
from sdo.config import Topics
from sdo.console.auth import add_user
from sdo.events import encode

from .test_browser import (  # noqa: F401 (fixtures)
    PAGE_TIMEOUT_MS,
    browser,
    chromium,
    events_type,
    open_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CONSOLE_START_TIMEOUT_S = 60.0
#: The page's back-off tops out at 30 s; it should be back well within two rounds.
RECONNECT_TIMEOUT_MS = 70_000
LOST_TIMEOUT_MS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ConsoleProcess:
    """`sdo console` as a child process, restartable on the same port."""

    def __init__(self, broker: EmbeddedBroker, prefix: str, users: Path, port: int) -> None:
        self.cmd = [
            sys.executable,
            "-m",
            "sdo",
            "console",
            "--broker",
            broker.url,
            "--topic-prefix",
            prefix,
            "--users",
            str(users),
            "--bind",
            f"127.0.0.1:{port}",
        ]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + CONSOLE_START_TIMEOUT_S
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            seen.append(line)
            if "console ready at" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError("console did not start:\n" + "".join(seen[-20:]))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def console_process(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[ConsoleProcess, str, int]]:
    users = tmp_path / "users.json"
    token, _ = add_user(users, "sgt.jones", "sdo")
    port = _free_port()
    console = ConsoleProcess(broker, topic_prefix, users, port)
    try:
        yield console, token, port
    finally:
        console.kill()


async def test_page_reconnects_with_a_fresh_snapshot_after_the_console_is_killed(
    browser: Browser,
    broker: EmbeddedBroker,
    topic_prefix: str,
    events_type: Any,
    console_process: tuple[ConsoleProcess, str, int],
) -> None:
    """LIVE with an officer on the map; SIGKILL: the banner stops saying LIVE and says in
    words that the connection was lost; an officer added while the console is down
    appears after the restart, with no reload."""
    console, token, port = console_process
    ev = events_type(datetime.now(UTC) - timedelta(seconds=30))
    topics = Topics(topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()

    async def send(events: list[Any]) -> None:
        for e in events:
            await producer.send_and_wait(
                topics.for_type(e.type), key=e.officer_id.encode(), value=encode(e)
            )

    try:
        await send(
            [
                ev.profile("o1", callsign="NR11"),
                ev.status("o1", "available", at=1),
                ev.location("o1", at=2),
            ]
        )
        console.start()
        errors: list[str] = []
        page = await open_page(browser, f"http://127.0.0.1:{port}/", token, errors)
        await page.wait_for_selector("#map .officer[data-id='o1']")
        await expect(page.locator("#conn-state")).to_have_text("LIVE", timeout=PAGE_TIMEOUT_MS)

        console.kill()
        await expect(page.locator("#conn-state")).not_to_have_text("LIVE", timeout=LOST_TIMEOUT_MS)
        # the banner says what happened in words, not as a close code
        detail = page.locator("#conn-detail")
        await expect(detail).to_contain_text(
            "the connection to the console was lost", timeout=LOST_TIMEOUT_MS
        )
        await expect(detail).not_to_contain_text("1006")
        await send(
            [
                ev.profile("o2", callsign="NR12"),
                ev.status("o2", "available", at=3),
                ev.location("o2", (-1.83, 52.59), at=4),
            ]
        )
        console.start()
        await page.wait_for_selector("#map .officer[data-id='o2']", timeout=RECONNECT_TIMEOUT_MS)
        await expect(page.locator("#conn-state")).to_have_text("LIVE", timeout=RECONNECT_TIMEOUT_MS)
        assert await page.locator("#map .officer[data-id='o1']").count() == 1
    finally:
        await producer.stop()
