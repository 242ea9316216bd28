"""Write the README's pictures: ``docs/images/console.png`` and ``docs/images/report.png``.

* **console**: starts ``sdo demo`` on a free loopback port (stopped at the end, and by its
  own ``--duration`` should this script die), logs in with the token it prints, in
  headless Chromium driven by Playwright as the browser tests do (Debian's
  ``/usr/bin/chromium``, the same flags), waits until the map shows officers and the
  queue pending and resourced incidents, selects the most urgent one (the first in the
  queue) and takes the page at 1440×900.
* **report**: ``sdo simulate`` a pilot day, ``sdo evaluate`` it under ``thrive`` and
  ``closest``, and takes the top of ``report.html`` at 1440×900.

Usage::

    .venv/bin/python tools/screenshots.py                  # both pictures
    .venv/bin/python tools/screenshots.py --only console   # one of them
    .venv/bin/python tools/screenshots.py --out /tmp/pics  # elsewhere

Each picture is written only when whole (a temporary file renamed). A PNG larger than
``--max-kib`` is reduced to 256 colours (Pillow, which matplotlib brings), which keeps a
flat user interface legible and the repository small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
CHROMIUM: Final = "/usr/bin/chromium"
#: As tests/console/test_browser.py launches it.
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: Final = {"width": 1440, "height": 900}

#: ``sdo demo`` up to its console's URL and token (broker, worker start, console).
DEMO_READY_TIMEOUT_S: Final = 180.0
#: From login until the map has officers and the queue pending incidents (the simulated
#: shift starts at once; incidents arrive every few simulated minutes).
DEMO_BUSY_TIMEOUT_S: Final = 300.0
#: The demo stops itself after this long, should this script die before it stops it.
DEMO_MAX_S: Final = DEMO_READY_TIMEOUT_S + DEMO_BUSY_TIMEOUT_S + 120.0
#: ``sdo demo`` winding down after SIGINT (feed, console, worker, broker).
DEMO_STOP_TIMEOUT_S: Final = 60.0
BROWSER_LAUNCH_TIMEOUT_S: Final = 60.0
PAGE_TIMEOUT_MS: Final = 30_000
#: ``sdo simulate`` plus ``sdo evaluate`` of the pilot day.
EVALUATE_TIMEOUT_S: Final = 600.0

#: Officers on the map, incidents pending and incidents resourced before the console is
#: taken (a shift under way, not its first minute).
MIN_OFFICERS: Final = 20
MIN_PENDING: Final = 3
MIN_RESOURCED: Final = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/screenshots.py",
        description="Write the README's pictures of the console (from sdo demo) and of an "
        "evaluation report (from sdo simulate and sdo evaluate).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "images",
        help="directory for console.png and report.png (default: docs/images)",
    )
    parser.add_argument(
        "--only", choices=["console", "report"], default=None, help="take one picture only"
    )
    parser.add_argument(
        "--chromium", default=CHROMIUM, help=f"the Chromium to drive (default {CHROMIUM})"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="the demo's simulated time per real second (default 60)",
    )
    parser.add_argument(
        "--max-kib",
        type=int,
        default=400,
        help="reduce a PNG above this size to 256 colours (default 400)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if not Path(args.chromium).exists():
        parser.error(f"no Chromium at {args.chromium} (Debian: apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "console"):
        path = args.out / "console.png"
        asyncio.run(_console(path, args.chromium, args.speed))
        _shrink(path, args.max_kib)
        _say(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    if args.only in (None, "report"):
        path = args.out / "report.png"
        asyncio.run(_report(path, args.chromium))
        _shrink(path, args.max_kib)
        _say(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


def _say(text: str) -> None:
    sys.stderr.write(f"screenshots: {text}\n")
    sys.stderr.flush()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _demo(speed: float) -> Iterator[tuple[str, str]]:
    """``sdo demo`` on a free port: (console URL, token); stopped (SIGINT) on leaving."""
    cmd = [sys.executable, "-m", "sdo", "demo", "--bind", f"127.0.0.1:{_free_port()}",
           "--speed", str(speed), "--duration", str(DEMO_MAX_S)]  # fmt: skip
    _say(" ".join(["sdo", *cmd[3:]]))
    proc = subprocess.Popen(  # noqa: S603  (argv is ours, no shell)
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
    )
    lines: Queue[str] = Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        url = token = None
        seen: list[str] = []
        deadline = time.monotonic() + DEMO_READY_TIMEOUT_S
        while url is None or token is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "screenshots: sdo demo did not print its URL and token:\n" + "".join(seen[-20:])
                )
            try:
                line = lines.get(timeout=0.5)
            except Empty:
                continue
            seen.append(line)
            if line.startswith("console ready at "):
                url = line.removeprefix("console ready at ").strip()
            elif line.startswith("login token for "):
                token = line.rsplit(": ", 1)[1].strip()
        _say(f"demo console at {url}")
        yield url, token
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(DEMO_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _console(path: Path, chromium: str, speed: float) -> None:
    from playwright.async_api import async_playwright  # noqa: PLC0415 (a test dependency)

    with _demo(speed) as (url, token):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium,
                args=CHROMIUM_ARGS,
                headless=True,
                timeout=BROWSER_LAUNCH_TIMEOUT_S * 1000,
            )
            try:
                page = await browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                await page.goto(url)
                await page.fill("#token", token)
                await page.click("#login-btn")
                await page.wait_for_selector("#login", state="hidden")
                _say(
                    f"waiting for {MIN_OFFICERS} officers, {MIN_PENDING} incidents pending "
                    f"and {MIN_RESOURCED} resourced"
                )
                await page.wait_for_function(
                    "([officers, pending, resourced]) =>"
                    " document.querySelectorAll('#layer-officers > *').length >= officers"
                    " && document.querySelectorAll('#queue > li').length >= pending"
                    " && document.querySelectorAll('#resourced > li').length >= resourced",
                    arg=[MIN_OFFICERS, MIN_PENDING, MIN_RESOURCED],
                    timeout=DEMO_BUSY_TIMEOUT_S * 1000,
                )
                await page.click("#queue > li:first-child")  # the most urgent
                await page.wait_for_selector("#rec", state="visible")
                await page.wait_for_selector("#cands tbody tr")
                await page.mouse.move(0, 0)  # no hover tooltip in the picture
                _save(path, await page.screenshot(type="png"))
            finally:
                await browser.close()


async def _report(path: Path, chromium: str) -> None:
    from playwright.async_api import async_playwright  # noqa: PLC0415 (a test dependency)

    with tempfile.TemporaryDirectory(prefix="sdo-screenshots-") as tmp:
        # relative paths, run in tmp: the report names its log as given ("day.jsonl.gz")
        log, out = "day.jsonl.gz", "eval"
        for argv in (
            ["simulate", "--seed", "1", "--hours", "24", "--officers", "120", "--out", log],
            ["evaluate", log, "--policy", "thrive", "--policy", "closest", "--out", out],
        ):
            _say("sdo " + " ".join(argv))
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "sdo", *argv],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=EVALUATE_TIMEOUT_S,
                cwd=tmp,
            )
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium,
                args=CHROMIUM_ARGS,
                headless=True,
                timeout=BROWSER_LAUNCH_TIMEOUT_S * 1000,
            )
            try:
                page = await browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                await page.goto((Path(tmp) / out / "report.html").as_uri())
                await page.wait_for_load_state("load")
                _save(path, await page.screenshot(type="png"))
            finally:
                await browser.close()


def _save(path: Path, png: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(png)
    tmp.replace(path)


def _shrink(path: Path, max_kib: int) -> None:
    """Reduce ``path`` to a 256-colour PNG when it is larger than ``max_kib``."""
    if path.stat().st_size <= max_kib * 1024:
        return
    from PIL import Image  # noqa: PLC0415 (only when a picture is too large)

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    tmp = path.with_name(path.name + ".part")
    small.save(tmp, format="PNG", optimize=True)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
