"""Liveness and readiness of ``sdo worker`` and ``sdo console``, served beside /metrics.

Theory of operation
-------------------
``--metrics-port`` serves, besides ``/metrics``, two probes for an orchestrator
(Kubernetes, Docker's healthcheck, a load balancer):

* ``GET /healthz`` (liveness): 200 while the process's asyncio loop runs a callback
  within :data:`LOOP_ANSWER_S`; 503 when it does not (a loop stuck in a blocking call, a
  dead-locked process): restarting it is the cure. Not the broker's state: a broker
  outage is not cured by restarting the worker, so it does not fail this probe.
* ``GET /readyz`` (readiness): 200 when live and the process's own check finds nothing
  wrong (the worker: its tables restored, not rebalancing, the broker answering its
  fetches; the console: its feed read to the end once and not down); 503 with the
  problems otherwise.

Both answer JSON: ``{"status": "ok" | "unavailable" | "starting", "problems": [...],
"loop_answer_s": ...}``. The HTTP server is a thread (:mod:`sdo.metrics`); the check runs
*on the loop* (:func:`asyncio.run_coroutine_threadsafe`), so it reads the loop's objects
(Faust's consumer, the console's feed) without racing them, and its answering at all is
the liveness test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["LOOP_ANSWER_S", "LoopProbes", "probe_response"]

log = logging.getLogger(__name__)

#: Liveness: the loop must run the probe's callback within this many seconds.
LOOP_ANSWER_S: Final = 5.0


class LoopProbes:
    """The probes of a process whose work runs on one asyncio loop.

    ``check`` runs on the loop and returns the reasons the process is not ready (empty:
    ready). ``loop`` is set once known (before it runs: the process is starting).
    Thread-safe: :meth:`live` and :meth:`ready` are called from the HTTP thread.
    """

    def __init__(
        self,
        check: Callable[[], list[str]],
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        answer_s: float = LOOP_ANSWER_S,
    ) -> None:
        self.check = check
        self.loop = loop
        self.answer_s = answer_s

    def live(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/healthz``."""
        return self._ask(run_check=False)

    def ready(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/readyz``."""
        return self._ask(run_check=True)

    def _ask(self, *, run_check: bool) -> tuple[int, dict[str, Any]]:
        loop = self.loop
        if loop is None or not loop.is_running():
            closed = loop is not None and loop.is_closed()
            if closed:
                return 503, _body("unavailable", ["its event loop has stopped"])
            # starting (imports, set-up): alive, not ready
            return (503 if run_check else 200), _body("starting", ["starting"])

        async def ask() -> list[str]:
            return self.check() if run_check else []

        asked = time.monotonic()
        future: concurrent.futures.Future[list[str]] | None = None
        try:
            future = asyncio.run_coroutine_threadsafe(ask(), loop)
            problems = future.result(self.answer_s)
        except TimeoutError:
            if future is not None:
                future.cancel()
            why = f"its event loop did not answer within {self.answer_s:g} s"
            return 503, _body("unavailable", [why])
        except (concurrent.futures.CancelledError, RuntimeError) as exc:
            # the loop closed, or stopped while asked (shutting down)
            return 503, _body("unavailable", [f"its event loop stopped ({exc or 'cancelled'})"])
        except Exception as exc:
            # our bug in a check: loud in the log, and the probe still answers
            log.exception("the readiness check failed")
            return 503, _body("unavailable", [f"the readiness check failed: {exc!r}"])
        answered = round(time.monotonic() - asked, 4)
        if problems:
            return 503, _body("unavailable", problems, answered)
        return 200, _body("ok", [], answered)


def _body(status: str, problems: list[str], answered: float | None = None) -> dict[str, Any]:
    return {"status": status, "problems": problems, "loop_answer_s": answered}


#: path -> which probe answers it
_PATHS: Final = {"/healthz": "live", "/readyz": "ready"}


def probe_response(probes: LoopProbes | None, path: str) -> tuple[int, dict[str, Any]] | None:
    """The probe answering ``path``, or None if ``path`` is not a probe's."""
    which = _PATHS.get(path.rstrip("/") or "/")
    if which is None or probes is None:
        return None
    return probes.live() if which == "live" else probes.ready()
