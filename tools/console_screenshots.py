"""Screenshots of the SDO console for the README: ``docs/images/console-WxH.png``.

Runs ``sdo demo`` (embedded broker, worker, console, simulated feed) as a child process,
lets a simulated evening build up for ``--settle`` seconds, then opens the console in
Debian's Chromium at 1440×900 and 1920×1080 as an SDO working all areas with a second
SDO working NPU east, selects the most urgent call, and saves a picture of each size.
The simulated dispatcher is held off (a long ``--sdo-window``) so the queue fills as it
would for an SDO who has not acted yet. The demo is stopped (SIGINT) at the end.

Usage::

    .venv/bin/python tools/console_screenshots.py            # docs/images/console-*.png
    .venv/bin/python tools/console_screenshots.py --settle 120 --out /tmp/shots
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SIZES = [(1440, 900), (1920, 1080)]
#: Bounds on the waits.
DEMO_READY_TIMEOUT_S = 120.0
PAGE_TIMEOUT_MS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_demo(port: int, users: Path, speed: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "sdo", "demo", "--bind", f"127.0.0.1:{port}", "--users",
           str(users), "--speed", str(speed), "--sdo-window", "3600"]  # fmt: skip
    # (our own command line, no outside input)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603
    assert proc.stdout is not None
    deadline = time.monotonic() + DEMO_READY_TIMEOUT_S
    token = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        found = re.search(r"login token for \S+ \(role sdo\): (\S+)", line)
        if found:
            token = found.group(1)
            break
    if token is None:
        proc.kill()
        raise SystemExit("console_screenshots: the demo did not start")
    return proc, token


async def _shoot(url: str, tokens: dict[str, str], out: Path) -> list[Path]:
    paths = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        # a second SDO working NPU east: every console shows who works what
        other = await browser.new_page(viewport={"width": 1280, "height": 800})
        await other.goto(url)
        await other.fill("#token", tokens["sgt.khan"])
        await other.click("#login-btn")
        await other.select_option("#work", "npu:east")
        for width, height in SIZES:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            await page.goto(url)
            await page.fill("#token", tokens["demo-sdo"])
            await page.click("#login-btn")
            await page.wait_for_selector("#queue .queue-item")
            await page.click("#queue .queue-item >> nth=0")
            await page.wait_for_selector("#story li")
            await page.wait_for_timeout(1500)  # the map's labels settle
            path = out / f"console-{width}x{height}.png"
            await page.screenshot(path=str(path))
            paths.append(path)
            await page.close()
        await browser.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds of demo first")
    parser.add_argument("--speed", type=float, default=30.0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.json"
        port = _free_port()
        proc, token = _start_demo(port, users, args.speed)
        try:
            add = [sys.executable, "-m", "sdo", "users", "add", "sgt.khan", "--role", "sdo",
                   "--users", str(users)]  # fmt: skip
            khan = subprocess.run(add, capture_output=True, text=True, check=True)  # noqa: S603
            khan_token = khan.stdout.strip()
            time.sleep(args.settle)
            tokens = {"demo-sdo": token, "sgt.khan": khan_token}
            for path in asyncio.run(_shoot(f"http://127.0.0.1:{port}/", tokens, args.out)):
                sys.stdout.write(f"{path}\n")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
