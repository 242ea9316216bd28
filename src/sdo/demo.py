"""``sdo demo``: the whole system on one machine, from one command.

Starts the embedded broker on a free loopback port, creates the topics, runs ``sdo worker``
as a child process (a real Faust worker, as in production), runs the console in this
process, and feeds a simulated pilot shift (``sdo.evaluation.simulate``) into Kafka at ``--speed`` ×
real time, starting at the current wall-clock time so the page's clocks read sensibly.
The simulated dispatcher leaves each new call to the SDO for ``--sdo-window`` seconds of
wall time and never sends officers to a call an SDO decided (:mod:`sdo.demo_feed`).
Users come from ``--users FILE`` (kept across restarts; a demo SDO is added, its token
printed once, when the file has none) or a fresh file in a temporary directory; the
demo prints where the file is. A line of live availability is printed every few seconds.
Ctrl-C stops everything cleanly (feed, console, worker, broker, in that order).

The feed runs ahead of the wall clock (``--speed`` × real time): its events' times are
up to :data:`FEED_HOURS` past now by its end. The worker and the console admit event
times that far ahead (``--max-ahead``, the admission rule's skew: :mod:`sdo.admission`),
so nothing the demo feeds, and no decision an SDO takes in it, is refused at any speed.
Decisions are stamped with the feed's clock, so the simulated officers' later status
events follow them as they would live: the latest time the feed has sent, which the
console reads a moment later, so that a decision sorts after a simulated deployment
released before the SDO took it (and a call with an SDO's decision in flight is not
given to the simulated dispatcher: :func:`_sdo_window`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sdo.broker import EmbeddedBroker, ensure_topics, topic_specs
from sdo.cli import settings_from
from sdo.config import Settings
from sdo.console.auth import add_user, load_users
from sdo.console.server import Console, run_console
from sdo.demo_feed import SdoWindow
from sdo.errors import BrokerError
from sdo.events import Status

__all__ = ["cli"]

WORKER_READY_TIMEOUT_S = 90.0
STATUS_EVERY_S = 5.0
#: How long the feed and the console may take to end once the demo stops, before they are
#: cancelled.
_GRACE_S = 10.0
DEMO_USER = "demo-sdo"
#: Hours of simulated feed (a week), and so how far ahead of the clock its times run.
FEED_HOURS = 24 * 7
#: The admission skew the demo's worker and console allow: the whole feed, and an hour.
MAX_AHEAD_S = (FEED_HOURS + 1) * 3600.0


def cli(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args))


async def _demo(args: argparse.Namespace) -> int:
    # the console's consumer reconnects while the broker stops; that is not news here
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    base = settings_from(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workdir = Path(tempfile.mkdtemp(prefix="sdo-demo-"))
    async with EmbeddedBroker(port=0) as broker:
        settings = Settings(
            broker=broker.url,
            topic_prefix=base.topic_prefix,
            areas=base.areas,
            rules=base.rules,
            max_ahead_s=MAX_AHEAD_S,
        )
        await ensure_topics(broker.bootstrap, topic_specs(settings.topics))
        _say(f"broker ready at {broker.bootstrap}")
        worker = await _start_worker(settings, workdir)
        try:
            drains: list[asyncio.Task[None]] = []
            await _wait_worker(worker, drains)
            _say("worker ready")
            users, token = _users(args.users, workdir)
            consoles: list[Console] = []

            def announce(console: Console) -> None:
                consoles.append(console)
                _say(f"console ready at {console.url}")
                _say(f"users file: {users} (sdo users add NAME --role sdo|viewer --users {users})")
                if token is not None:
                    _say(f"login token for {DEMO_USER} (role sdo): {token}")
                else:
                    _say("log in with a token of a user in that file (tokens are shown once)")
                _say("Ctrl-C stops the demo.")

            window = _sdo_window(args.sdo_window, consoles)
            console_task = asyncio.create_task(
                run_console(
                    settings,
                    users,
                    args.bind,
                    ready=announce,
                    stop=stop,
                    decision_clock=_decision_clock(window, consoles),
                    insecure_http=args.insecure_http,
                )
            )
            feed_task = asyncio.create_task(_feed(settings, args, stop, window))
            status_task = asyncio.create_task(_status(consoles, stop, window))
            timer = (
                asyncio.get_running_loop().call_later(args.duration, stop.set)
                if args.duration
                else None
            )
            finished, _ = await asyncio.wait(
                {console_task, feed_task, asyncio.create_task(stop.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
            failure = next(
                (
                    t.exception()
                    for t in (console_task, feed_task)
                    if t in finished and not t.cancelled() and t.exception() is not None
                ),
                None,
            )
            stop.set()
            if timer is not None:
                timer.cancel()
            await _wind_down((feed_task, console_task), (status_task, *drains), _GRACE_S)
            if failure is not None:
                raise failure
        finally:
            await _stop_worker(worker)
    _say("demo stopped")
    return 0


async def _wind_down(
    ending: tuple[asyncio.Task[Any], ...], others: tuple[asyncio.Task[Any], ...], grace_s: float
) -> None:
    """Give the tasks that end on their own once the demo stops (the feed, the console)
    up to ``grace_s`` to close their Kafka clients, then cancel what is left and the
    ``others``. Cancelled half way through a close, a producer keeps its connection, and
    the broker then waits for it (seconds) before it exits."""
    await asyncio.wait(ending, timeout=grace_s)
    for task in (*ending, *others):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _users(path: Path | None, workdir: Path) -> tuple[Path, str | None]:
    """The users file, and the demo SDO's token if one was made now (shown once)."""
    users = path if path is not None else workdir / "users.json"
    if users.exists() and load_users(users):
        return users, None
    token, _ = add_user(users, DEMO_USER, "sdo")
    return users, token


def _sdo_window(window_s: float, consoles: list[Console]) -> SdoWindow:
    from sdo.evaluation.simulate import DISPATCHER  # noqa: PLC0415

    def record(incident_id: str) -> Any:
        return consoles[0].view.incidents.get(incident_id) if consoles else None

    def decided(incident_id: str) -> bool:
        if consoles and consoles[0].deciding(incident_id):
            return True  # sent by the SDO, not yet read back
        found = record(incident_id)
        return found is not None and found.decided_by not in (None, DISPATCHER)

    def assigned(incident_id: str) -> tuple[str, ...]:
        found = record(incident_id)
        return found.assigned if found is not None and decided(incident_id) else ()

    return SdoWindow(window_s, DISPATCHER, decided, assigned)


def _decision_clock(window: SdoWindow, consoles: list[Console]) -> Callable[[], datetime]:
    """The time stamped on an SDO's decision: the latest the feed has sent, or the
    console's clock when that is later (nothing sent yet, or a user's own event).

    The console reads the feed a moment after it is sent; a decision stamped with the
    console's clock alone could sort before a simulated deployment released in that
    moment, and lose to it though the SDO decided after it.
    """

    def clock() -> datetime:
        seen = consoles[0].view.event_time if consoles else None
        sent = window.last_ts
        times = [t for t in (seen, sent) if t is not None]
        return max(times) if times else datetime.now(UTC)

    return clock


async def _feed(
    settings: Settings, args: argparse.Namespace, stop: asyncio.Event, window: SdoWindow
) -> None:
    from sdo.areas import load_areas  # noqa: PLC0415
    from sdo.evaluation.replay import replay_events  # noqa: PLC0415
    from sdo.evaluation.simulate import simulate  # noqa: PLC0415

    areas = load_areas(settings.areas_path)
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    events = simulate(areas, seed=args.seed, hours=FEED_HOURS, officers=args.officers, start=start)
    await replay_events(window(events), settings, speed=args.speed, stop=stop)


async def _status(consoles: list[Console], stop: asyncio.Event, window: SdoWindow) -> None:
    """A line of live availability, for a terminal."""
    while not stop.is_set():
        await asyncio.sleep(STATUS_EVERY_S)
        if not consoles:
            continue
        view = consoles[0].view
        on_duty = [o for o in view.officers.values() if o.status is not Status.OFF_DUTY]
        available = sum(1 for o in on_duty if o.status is Status.AVAILABLE)
        pending = sum(1 for r in view.incidents.values() if r.awaiting_deployment)
        avail = view.availability()
        clusters = " ".join(
            f"{cid}:{avail.get(f'cluster:{cid}', {}).get('role:response', 0)}/{c.min_cover}"
            for cid, c in view.areas.clusters.items()
        )
        clock = view.event_time.strftime("%H:%M") if view.event_time else "--:--"
        _say(
            f"[{clock}] on duty {len(on_duty)}, available {available}; response cover {clusters}; "
            f"incidents awaiting a decision {pending}; "
            f"recommendations {len(view.recommendations)}; "
            f"simulated dispatches held for the SDO {window.holding}, "
            f"dropped (an SDO decided) {window.dropped}"
        )


async def _start_worker(settings: Settings, workdir: Path) -> asyncio.subprocess.Process:
    cmd = [
        sys.executable,
        "-m",
        "sdo",
        "worker",
        "--broker",
        settings.broker,
        "--topic-prefix",
        settings.topic_prefix,
        "--app-id",
        "sdo-demo",
        "--session-timeout",
        "3",
        "--max-ahead",
        str(settings.max_ahead_s),
        "-l",
        "warn",
        "--data-dir",
        str(workdir / "worker"),
    ]
    if settings.areas is not None:
        cmd += ["--areas", str(settings.areas)]
    if settings.rules is not None:
        cmd += ["--rules", str(settings.rules)]
    return await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


async def _wait_worker(
    worker: asyncio.subprocess.Process, drains: list[asyncio.Task[None]]
) -> None:
    assert worker.stdout is not None
    lines: list[str] = []

    async def ready() -> None:
        assert worker.stdout is not None
        while line := await worker.stdout.readline():
            text = line.decode(errors="replace")
            lines.append(text)
            if "worker ready (" in text:
                drains.append(asyncio.create_task(_drain(worker)))
                return
        raise BrokerError("the worker exited during start-up:\n" + "".join(lines[-20:]))

    try:
        await asyncio.wait_for(ready(), WORKER_READY_TIMEOUT_S)
    except TimeoutError:
        raise BrokerError(
            f"the worker was not ready within {WORKER_READY_TIMEOUT_S:.0f} s"
        ) from None


async def _drain(worker: asyncio.subprocess.Process) -> None:
    """Keep reading the worker's output so it never blocks on a full pipe; show problems."""
    assert worker.stdout is not None
    while line := await worker.stdout.readline():
        text = line.decode(errors="replace").rstrip()
        if "ERROR" in text or "CRITICAL" in text:
            _say(f"worker: {text}")


async def _stop_worker(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), 30)
        except TimeoutError:
            worker.kill()
            await worker.wait()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
