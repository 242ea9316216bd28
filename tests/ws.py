"""Reading the console's websocket in tests as the page does."""

from __future__ import annotations

from typing import Any

import orjson


def messages(raw: str | bytes) -> list[dict[str, Any]]:
    """The messages in one websocket message: itself, or those of a ``batch`` (officers'
    and availability deltas sent together, docs/console-protocol.md)."""
    msg = orjson.loads(raw)
    return list(msg["messages"]) if msg.get("type") == "batch" else [msg]
