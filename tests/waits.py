"""Waiting in tests on a condition, bounded: never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def wait_until(
    condition: Callable[[], Any], limit_s: float, what: str, poll_s: float = 0.02
) -> Any:
    """``condition()``'s first true value, looking every ``poll_s``; fails (saying it
    waited for ``what``) after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}")
        await asyncio.sleep(poll_s)
    return result
