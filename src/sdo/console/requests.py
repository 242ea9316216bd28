"""Idempotent requests: the same ``request_id`` from the same user is one action.

Theory of operation
-------------------
Every action a page sends carries a ``request_id`` it chose. The event an action
publishes gets an ``event_id`` derived from the user and the ``request_id``
(:func:`event_id_for`, a UUID 5), so:

* a request sent again while the console remembers it (:class:`Ledger`, per user, the
  latest :data:`PER_USER`) gets the same reply, and nothing is published again — a
  repeat that arrives while the first is still being published waits for its outcome;
* a request sent again after the console restarted is found in what the console read
  back from Kafka (:attr:`sdo.console.view.ConsoleView.recorded`, by that ``event_id``)
  and answered "already recorded" without publishing;
* a page that reconnects asks which of its unanswered requests Kafka holds (``resolve``).

A ``request_id`` reused for a different action is refused (``conflict``). Only a request
that was published is remembered: a refused one may be sent again, changed (e.g. with
``send_anyway`` after the SDO confirms).

Rate limits are per user, not per connection: five sockets of one user share one bucket.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = ["PER_USER", "Bucket", "Ledger", "event_id_for", "fingerprint"]

#: Requests remembered per user (a shift's worth of actions, many times over).
PER_USER: Final = 2000
_NAMESPACE: Final = uuid.UUID("6f1c3a52-3f5e-4b8e-9d0b-5d8f3c2a9e41")


def event_id_for(user: str, request_id: str) -> str:
    """The ``event_id`` of what ``user``'s request ``request_id`` publishes."""
    return str(uuid.uuid5(_NAMESPACE, f"{user}\n{request_id}"))


def fingerprint(message: Mapping[str, Any]) -> bytes:
    """What a request asks for, whatever its key order (its ``request_id`` left out)."""
    body = {k: v for k, v in message.items() if k != "request_id"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


@dataclass
class _Entry:
    fingerprint: bytes
    outcome: asyncio.Future[dict[str, Any]]


class Ledger:
    """The requests each user sent (see the module doc)."""

    def __init__(self, per_user: int = PER_USER) -> None:
        self.per_user = per_user
        self._users: dict[str, OrderedDict[str, _Entry]] = {}

    def find(self, user: str, request_id: str) -> _Entry | None:
        return self._users.get(user, OrderedDict()).get(request_id)

    def begin(self, user: str, request_id: str, print_: bytes) -> asyncio.Future[dict[str, Any]]:
        """Note a new request in flight; its future gets the reply."""
        entries = self._users.setdefault(user, OrderedDict())
        outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entries[request_id] = _Entry(print_, outcome)
        while len(entries) > self.per_user:
            entries.popitem(last=False)
        return outcome

    def end(self, user: str, request_id: str, reply: dict[str, Any]) -> None:
        """The reply to a request in flight; a refusal is forgotten (it may be sent again)."""
        entries = self._users.get(user)
        entry = None if entries is None else entries.get(request_id)
        if entry is None:
            return
        if not entry.outcome.done():
            entry.outcome.set_result(reply)
        if reply.get("type") != "ack" and entries is not None:
            del entries[request_id]

    def pending(self, user: str, request_id: str) -> asyncio.Future[dict[str, Any]] | None:
        """The outcome of a request still in flight, if it is."""
        entry = self.find(user, request_id)
        return entry.outcome if entry is not None and not entry.outcome.done() else None


@dataclass
class Bucket:
    """A token bucket: a burst of ``burst`` actions, refilled at ``rate`` per second."""

    burst: float
    rate: float
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
